"""Shared fixtures: every test gets its own data directory; stores on both backends.

``store`` is parametrised over SQLite and PostgreSQL. The PostgreSQL variant lives in its own
schema (so parallel workers never see each other's rows) and skips with a clear reason when no
server answers at ``HOMEPOT_AI_TEST_PG_URL`` (default: 127.0.0.1:5432, database ``test``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tools.store.engine import Store, open_store, scratch_postgres_store

PG_URL = os.environ.get("HOMEPOT_AI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

_pg_reachable: bool | None = None


def pg_reachable() -> bool:
    global _pg_reachable
    if _pg_reachable is None:
        try:
            eng = create_engine(PG_URL, connect_args={"connect_timeout": 3})
            with eng.connect() as conn:
                conn.execute(text("SELECT 1"))
            eng.dispose()
            _pg_reachable = True
        except Exception:
            _pg_reachable = False
    return _pg_reachable


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All local state under tmp_path; no setting leaks in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("HOMEPOT_AI_") and name not in {"HOMEPOT_AI_TEST_PG_URL", "HOMEPOT_AI_BENCHMARKS_DIR"}:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOMEPOT_AI_DATA_DIR", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield store
    store.dispose()


@pytest.fixture
def pg_store() -> Iterator[Store]:
    if not pg_reachable():
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}; start it or set HOMEPOT_AI_TEST_PG_URL")
    with scratch_postgres_store(PG_URL, prefix="t") as store:
        yield store


@pytest.fixture(params=["sqlite", "pg"])
def store(request: pytest.FixtureRequest) -> Store:
    """The same test on both backends."""
    return request.getfixturevalue(f"{request.param}_store")
