"""Bulk writes: the one fast path every writer (ingest, simulator, detectors) goes through.

SQLite gets ``INSERT OR IGNORE`` through ``executemany`` on a raw connection; PostgreSQL gets
``COPY`` into a temporary table followed by ``INSERT ... ON CONFLICT DO NOTHING``. Either way a
row whose conflict key is already stored is skipped, which is what makes ingest idempotent.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tools.store.engine import Store, quote_ident
from tools.store.schema import Base

SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


try:  # orjson is ~10x faster than json.dumps on the small dicts of extra_metrics
    import orjson

    def _dumps(value: Any) -> str:
        # NaN/inf become null, which keeps the text valid JSON for json_extract / jsonb casts.
        return orjson.dumps(value, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY).decode()

except ImportError:  # pragma: no cover - orjson comes with chromadb/langsmith

    def _dumps(value: Any) -> str:
        return json.dumps(value, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    """numpy scalars, timestamps and anything else: their Python value, else their text."""
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _json_or_none(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        return value
    return _dumps(value)


def _prepare(df: pd.DataFrame, table: str, json_cols: Sequence[str]) -> pd.DataFrame:
    """Cast columns to what the DBAPI wants: naive UTC timestamps, JSON text, Python ints."""
    out = df.copy()
    cols = Base.metadata.tables[table].c
    for name in out.columns:
        col = out[name]
        if name in json_cols:
            out[name] = [_json_or_none(v) for v in col.tolist()]
        elif pd.api.types.is_datetime64_any_dtype(col):
            if getattr(col.dt, "tz", None) is not None:
                col = col.dt.tz_convert("UTC").dt.tz_localize(None)
            out[name] = col
        elif name in cols and str(cols[name].type) in {"INTEGER", "BIGINT"} and col.dtype.kind == "f":
            out[name] = col.round().astype("Int64")
    return out


def insert_frame(
    store: Store,
    table: str,
    df: pd.DataFrame,
    *,
    conflict: Sequence[str] | None = None,
    json_cols: Sequence[str] = (),
    chunk_rows: int = 50_000,
    expect_new: bool = False,
) -> int:
    """Insert ``df`` into ``table``; skip rows whose ``conflict`` key exists. Returns rows stored.

    ``expect_new=True`` says the caller has checked that no row's key is stored yet (ingest does):
    PostgreSQL then COPYs straight into the table, skipping the temporary table and the
    ``ON CONFLICT`` pass; if a key turns out to exist after all (a concurrent writer), that
    chunk is rolled back and retried the safe way, so the result is the same.
    """
    if df.empty:
        return 0
    df = _with_defaults(df, table)
    columns = [str(c) for c in df.columns]
    for c in columns:
        quote_ident(c)
    prepared = _prepare(df, table, json_cols)
    if store.is_sqlite:
        return _insert_sqlite(store, table, prepared, columns, conflict is not None, chunk_rows)
    if expect_new and conflict:
        stored = _insert_postgres_direct(store, table, prepared, columns, conflict, chunk_rows)
    else:
        stored = _insert_postgres(store, table, prepared, columns, conflict, chunk_rows)
    if "id" in columns:
        _advance_id_sequence(store, table)
    return stored


def _advance_id_sequence(store: Store, table: str) -> None:
    """After explicit ids were written, move PostgreSQL's serial past them.

    Otherwise the next insert that relies on a generated id collides with ``<table>_pkey``.
    """
    from sqlalchemy import text

    with store.engine.begin() as conn:
        seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar()
        if seq:
            conn.execute(
                text(f"SELECT setval(:s, GREATEST((SELECT COALESCE(MAX(id), 0) FROM {quote_ident(table)}), 1))"),
                {"s": seq},
            )


def _with_defaults(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """Fill columns the frame lacks with the model's scalar defaults (ORM defaults are Python-side)."""
    missing = {}
    for col in Base.metadata.tables[table].c:
        if col.name in df.columns or col.primary_key:
            continue
        default = col.default
        if default is not None and getattr(default, "is_scalar", False) and not col.nullable:
            missing[col.name] = default.arg
    return df.assign(**missing) if missing else df


def _sqlite_rows(df: pd.DataFrame) -> list[tuple]:
    arrays: list[list[Any]] = []
    for name in df.columns:
        col = df[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            values = col.dt.strftime(SQLITE_TS_FORMAT)
            arrays.append([None if v is None or v is pd.NaT or (isinstance(v, float)) else v for v in values.tolist()])
        elif pd.api.types.is_bool_dtype(col):
            arrays.append([int(v) for v in col.tolist()])
        elif col.dtype.kind == "f":
            arr = col.to_numpy(dtype=float)
            arrays.append([None if v != v else v for v in arr.tolist()])
        else:
            arrays.append([None if v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v) else v for v in col.tolist()])
    return list(zip(*arrays))


def _insert_sqlite(
    store: Store, table: str, df: pd.DataFrame, columns: list[str], ignore: bool, chunk_rows: int
) -> int:
    verb = "INSERT OR IGNORE" if ignore else "INSERT"
    sql = (
        f"{verb} INTO {quote_ident(table)} ({', '.join(quote_ident(c) for c in columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)})"
    )
    raw = store.raw_connection()
    try:
        dbapi = raw.driver_connection
        before = dbapi.total_changes
        cur = dbapi.cursor()
        for start in range(0, len(df), chunk_rows):
            cur.executemany(sql, _sqlite_rows(df.iloc[start : start + chunk_rows]))
        dbapi.commit()
        return dbapi.total_changes - before
    finally:
        raw.close()


def _insert_postgres(
    store: Store,
    table: str,
    df: pd.DataFrame,
    columns: list[str],
    conflict: Sequence[str] | None,
    chunk_rows: int,
) -> int:
    cols_sql = ", ".join(quote_ident(c) for c in columns)
    tmp = quote_ident(f"tmp_{table}_{abs(hash(tuple(columns))) % 10**8}")
    raw = store.raw_connection()
    inserted = 0
    try:
        dbapi = raw.driver_connection
        with dbapi.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {tmp} ON COMMIT DELETE ROWS AS "
                f"SELECT {cols_sql} FROM {quote_ident(table)} WITH NO DATA"
            )
            for start in range(0, len(df), chunk_rows):
                part = df.iloc[start : start + chunk_rows]
                buf = io.StringIO()
                part.to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f")
                with cur.copy(f"COPY {tmp} ({cols_sql}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy:
                    copy.write(buf.getvalue())
                on_conflict = ""
                if conflict:
                    on_conflict = f" ON CONFLICT ({', '.join(quote_ident(c) for c in conflict)}) DO NOTHING"
                cur.execute(
                    f"INSERT INTO {quote_ident(table)} ({cols_sql}) SELECT {cols_sql} FROM {tmp}{on_conflict}"
                )
                inserted += cur.rowcount
                cur.execute(f"TRUNCATE {tmp}")
        dbapi.commit()
        return inserted
    except Exception:
        dbapi.rollback()
        raise
    finally:
        raw.close()


def _insert_postgres_direct(
    store: Store,
    table: str,
    df: pd.DataFrame,
    columns: list[str],
    conflict: Sequence[str],
    chunk_rows: int,
) -> int:
    """COPY straight into ``table``; a chunk that hits an existing key falls back to the safe path."""
    import psycopg

    cols_sql = ", ".join(quote_ident(c) for c in columns)
    inserted = 0
    raw = store.raw_connection()
    try:
        dbapi = raw.driver_connection
        for start in range(0, len(df), chunk_rows):
            part = df.iloc[start : start + chunk_rows]
            buf = io.StringIO()
            part.to_csv(buf, index=False, header=False, na_rep="\\N", date_format="%Y-%m-%d %H:%M:%S.%f")
            try:
                with dbapi.cursor() as cur:
                    with cur.copy(f"COPY {quote_ident(table)} ({cols_sql}) FROM STDIN WITH (FORMAT csv, NULL '\\N')") as copy:
                        copy.write(buf.getvalue())
                dbapi.commit()
                inserted += len(part)
            except psycopg.errors.UniqueViolation:
                dbapi.rollback()
                inserted += _insert_postgres(store, table, part, columns, conflict, chunk_rows)
        return inserted
    finally:
        raw.close()


def read_frame(store: Store, sql: str, params: dict[str, Any] | None = None, *, parse_dates: Sequence[str] = ()) -> pd.DataFrame:
    """Run a read query and return a DataFrame, with timestamp columns parsed as naive UTC."""
    from sqlalchemy import text

    with store.engine.connect() as conn:
        result = conn.execute(text(sql), params or {})
        df = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for name in parse_dates:
        if name in df.columns:
            df[name] = to_naive_utc(df[name])
    return df


def to_naive_utc(values: pd.Series) -> pd.Series:
    """Parse a column of timestamps (strings from SQLite, datetimes from PostgreSQL) to naive UTC."""
    parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    return parsed.dt.tz_localize(None)
