"""The store: one SQLAlchemy engine on SQLite (embedded default) or PostgreSQL (psycopg 3).

``Store`` is the one object the rest of the code passes around. It knows its dialect, whether
TimescaleDB is there, and how to open a fast raw DBAPI connection for bulk work. ``open_store``
creates the SQLite file's directory and applies migrations unless told the source is read-only.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError


class StoreError(RuntimeError):
    """A store problem worth one clear sentence to the user (bad URL, server down)."""


def _normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and route them to psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # pragma: no cover - exercised everywhere
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def make_engine(url: str) -> Engine:
    """Build an engine for ``url``; SQLite gets WAL and a busy timeout, PostgreSQL a pool check."""
    url = _normalise_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"HOMEPOT_AI_DATABASE_URL {url!r} is not a database URL; use e.g. "
            "sqlite:///var/homepot.db or postgresql+psycopg://user@host:5432/db"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    raise StoreError(
        f"Database {parsed.get_backend_name()!r} is not supported; use SQLite or PostgreSQL."
    )


@dataclass
class Store:
    """A handle on the fleet store: the engine plus what we know about it."""

    engine: Engine
    read_only_source: bool = False
    _checked: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @cached_property
    def has_timescale(self) -> bool:
        """True when the ``timescaledb`` extension is installed in this database."""
        if not self.is_postgres:
            return False
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
            ).first()
        return row is not None

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        db = self.engine.url.database
        return Path(db) if db and db != ":memory:" else None

    def raw_connection(self):
        """A DBAPI connection for bulk work (executemany, COPY); the caller commits and closes."""
        return self.engine.raw_connection()

    def ping(self) -> None:
        """Raise ``StoreError`` with one sentence when the database cannot be reached."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StoreError(f"Cannot reach the database at {self.url}: {first}") from exc

    def size_bytes(self) -> int:
        """Size of the database on disk (the SQLite file with its WAL, or pg_database_size)."""
        if self.is_sqlite:
            path = self.sqlite_path
            if path is None:
                return 0
            return sum(
                p.stat().st_size
                for p in (path, Path(str(path) + "-wal"), Path(str(path) + "-shm"))
                if p.exists()
            )
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, migrate: bool = True, read_only_source: bool = False) -> Store:
    """Open the store at ``url`` and bring its schema up to date (unless ``migrate=False``)."""
    store = Store(make_engine(url), read_only_source=read_only_source)
    store.ping()
    if migrate:
        from tools.store.migrations import migrate as run_migrations

        run_migrations(store)
    return store


_SAFE_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote_ident(name: str) -> str:
    """Quote a table or column name we built ourselves; refuses anything unusual."""
    if not _SAFE_IDENT.match(name):
        raise ValueError(f"Unsafe identifier {name!r}")
    return f'"{name}"'


@contextmanager
def scratch_postgres_store(server_url: str, *, prefix: str = "scratch") -> Iterator[Store]:
    """A migrated store in a fresh PostgreSQL schema of ``server_url``, dropped afterwards.

    Tests and benchmarks use it so that parallel runs on one server never see each other's rows.
    """
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {quote_ident(schema)}"))
    sep = "&" if "?" in server_url else "?"
    store = open_store(f"{server_url}{sep}options=-csearch_path%3D{schema}")
    try:
        yield store
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {quote_ident(schema)} CASCADE"))
        admin.dispose()
