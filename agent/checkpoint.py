"""Working memory: the LangGraph checkpointer next to the store.

Embedded default: ``SqliteSaver`` in ``<data dir>/checkpoints.db`` (a separate file, so the
checkpointer's frequent small writes never contend with the store's bulk loads). When the store
is PostgreSQL, ``PostgresSaver`` in the same database, so a server deployment keeps one place
of state. Either way a conversation survives a process restart: same thread id, same history.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from typing import Any

from tools.config import Settings
from tools.store.engine import Store


class Checkpointer(AbstractContextManager["Checkpointer"]):
    """A saver plus the connection it owns; ``close()`` releases it."""

    def __init__(self, saver: Any, conn: Any, kind: str) -> None:
        self.saver = saver
        self._conn = conn
        self.kind = kind

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # pragma: no cover - closing twice or a dead server
            pass

    def __exit__(self, *exc: object) -> None:
        self.close()


def _psycopg_url(url: str) -> str:
    """SQLAlchemy's ``postgresql+psycopg://`` URL as a libpq one."""
    scheme, sep, rest = url.partition("://")
    return "postgresql://" + rest if sep else url


def open_checkpointer(settings: Settings, store: Store | None = None) -> Checkpointer:
    """The saver for this deployment: PostgreSQL when the store is, else SQLite in the data dir."""
    if store is not None and store.is_postgres:
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        conn = psycopg.connect(_psycopg_url(store.engine.url.render_as_string(hide_password=False)),
                               autocommit=True, prepare_threshold=0, row_factory=dict_row)
        saver = PostgresSaver(conn)
        saver.setup()
        return Checkpointer(saver, conn, "postgres")
    from langgraph.checkpoint.sqlite import SqliteSaver

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(settings.data_dir / "checkpoints.db"), check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    saver = SqliteSaver(conn)
    saver.setup()
    return Checkpointer(saver, conn, "sqlite")


__all__ = ["Checkpointer", "open_checkpointer"]
