"""Building the store and tool context from settings: the one place surfaces do it."""

from __future__ import annotations

import getpass

from tools.config import Settings, load_settings
from tools.registry import ToolContext
from tools.store.engine import Store, open_store


def settings_from_env() -> Settings:
    return load_settings()


def store_from_settings(settings: Settings, *, migrate: bool = True) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return open_store(
        settings.database_url,
        migrate=migrate,
        read_only_source=bool(settings.get("HOMEPOT_AI_READ_ONLY_SOURCE")),
    )


def tool_context(settings: Settings | None = None, *, surface: str = "cli", thread_id: str | None = None,
                 store: Store | None = None) -> ToolContext:
    settings = settings or settings_from_env()
    user = settings.get("HOMEPOT_AI_USER") or _os_user()
    return ToolContext(store=store or store_from_settings(settings), settings=settings, user=user,
                       surface=surface, thread_id=thread_id)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry in some containers
        return "unknown"
