"""Which library exceptions are meant for users: the CLI prints them as one sentence."""

from __future__ import annotations

from tools.store.engine import StoreError


class UserError(RuntimeError):
    """Raised by surfaces for a problem the user can fix; printed without a traceback."""


USER_ERRORS: tuple[type[BaseException], ...] = (StoreError, UserError, FileNotFoundError, ValueError)
