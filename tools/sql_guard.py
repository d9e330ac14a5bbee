"""The read-only SQL guard, in datasette's layers: gate, read-only session, time limit, row cap.

1. **Gate** (``check_sql``): sqlglot parses the text in the store's dialect. It must be exactly one
   statement, a SELECT (set operations and CTEs allowed only when every part is a SELECT), over
   allow-listed tables only, calling no side-effect functions (``pg_sleep``, ``lo_import``,
   ``dblink``, ``set_config``, ``load_extension``...). No ``SELECT INTO``, no locking clauses,
   no schema-qualified names. Anything else raises ``SqlRejected`` with one sentence that says
   what is allowed.
2. **Row cap**: the statement's LIMIT becomes at most ``max_rows + 1`` (HOMEPOT_AI_SQL_MAX_ROWS;
   a caller may lower it, never raise it), and ``truncated`` is set when the extra row arrives.
3. **Read-only session + time limit** (``run_guarded``):
   - SQLite: a separate connection opened ``mode=ro`` with ``PRAGMA query_only=1``, an
     authorizer that denies every write and every table outside the list, and a progress
     handler that aborts after HOMEPOT_AI_SQL_TIMEOUT_MS.
   - PostgreSQL: ``SET TRANSACTION READ ONLY`` and ``SET LOCAL statement_timeout`` in a
     transaction that is always rolled back.
   A timeout raises ``QueryTimeout``, which names the setting to change.

Writes (ingest, detectors, ``ai_*`` tables) never pass through here; they use their own engine.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import logging
import sqlite3
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tools.store.engine import Store
from tools.store.schema import HOMEPOT_TABLES

if TYPE_CHECKING:  # sqlglot is imported on first use: it costs ~0.3 s at start-up, and most turns run no SQL
    from sqlglot import exp

#: Tables the guarded SQL may read: HOMEPOT's, plus the analytics outputs (not the audit trail,
#: notifications, detector state or model blobs).
ALLOWED_TABLES: frozenset[str] = frozenset(HOMEPOT_TABLES) | {
    "ai_anomalies",
    "ai_predictions",
    "ai_device_events",
    "ai_reports",
}

#: Table-valued functions that only read.
ALLOWED_TABLE_FUNCTIONS: frozenset[str] = frozenset(
    {"generate_series", "json_each", "json_tree", "jsonb_each", "jsonb_each_text", "json_each_text",
     "json_array_elements", "jsonb_array_elements", "json_array_elements_text", "jsonb_array_elements_text",
     "unnest", "jsonb_object_keys", "json_object_keys"}
)

#: Functions with side effects, that read files or the server, or that run SQL given as text.
FORBIDDEN_FUNCTIONS: frozenset[str] = frozenset(
    {
        "pg_sleep", "pg_sleep_for", "pg_sleep_until", "lo_import", "lo_export", "lo_unlink", "lo_create",
        "lo_creat", "lo_open", "lo_put", "lo_get", "lo_from_bytea", "lo_truncate", "pg_read_file",
        "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "pg_file_write", "pg_file_unlink", "dblink",
        "dblink_exec", "dblink_connect", "dblink_open", "dblink_send_query", "set_config", "current_setting",
        "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal",
        "pg_create_restore_point", "pg_promote", "pg_notify", "pg_logical_emit_message", "nextval", "setval",
        "query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema", "cursor_to_xml", "table_to_xml",
        "table_to_xml_and_xmlschema", "schema_to_xml", "database_to_xml", "pg_advisory_lock",
        "pg_advisory_xact_lock", "pg_try_advisory_lock", "pg_import_system_collations", "txid_current",
        "load_extension", "readfile", "writefile", "edit", "fts3_tokenizer", "sqlite_offset", "zeroblob",
        "randomblob", "copy",
    }
)
FORBIDDEN_PREFIXES: tuple[str, ...] = ("pg_", "lo_", "dblink", "sqlite_", "xact_", "txid_")

#: Statement and clause types that write, lock, configure or run arbitrary commands (sqlglot names).
_FORBIDDEN_NODE_NAMES: tuple[str, ...] = (
    "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "AlterTable", "TruncateTable",
    "Command", "Copy", "Pragma", "Set", "Transaction", "Commit", "Rollback", "Use", "Lock", "Into",
    "Grant", "Revoke", "Attach", "Detach", "Analyze", "Cache", "Uncache", "LoadData", "Refresh",
    "Describe", "Summarize",
)


@lru_cache(maxsize=1)
def _forbidden_nodes() -> tuple[type, ...]:
    """The sqlglot node classes of ``_FORBIDDEN_NODE_NAMES`` that this sqlglot version has."""
    from sqlglot import exp

    return tuple(getattr(exp, name) for name in _FORBIDDEN_NODE_NAMES if hasattr(exp, name))

ALLOWED_SENTENCE = (
    "only one SELECT (a WITH ... SELECT is fine when every part is a SELECT) over these tables is allowed: "
    + ", ".join(sorted(ALLOWED_TABLES))
    + "; no writes, PRAGMA, ATTACH, COPY, SELECT INTO or side-effect functions"
)

log = logging.getLogger(__name__)


class SqlRejected(ValueError):
    """The SQL is not a single read-only SELECT over allow-listed tables."""


class QueryTimeout(RuntimeError):
    """The query ran past the time limit; the message names the setting that controls it."""

    def __init__(self, sql: str, timeout_ms: int) -> None:
        super().__init__(
            f"The query was stopped after {timeout_ms} ms; the limit is set by HOMEPOT_AI_SQL_TIMEOUT_MS. "
            "Narrow the time window or aggregate in SQL."
        )
        self.sql = sql
        self.timeout_ms = timeout_ms


@dataclass
class GuardedQuery:
    """A statement that passed the gate: the SQL that will run and the row cap it carries."""

    original: str
    sql: str
    max_rows: int
    tables: list[str]
    ctes: list[str]


@dataclass
class GuardedResult:
    columns: list[str]
    rows: list[tuple]
    truncated: bool
    sql: str
    seconds: float

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, (_jsonable(v) for v in row))) for row in self.rows]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat(sep=" ") if isinstance(value, _dt.datetime) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    return value


def _dialect(store_or_dialect: Store | str) -> str:
    name = store_or_dialect if isinstance(store_or_dialect, str) else store_or_dialect.dialect
    return "postgres" if name in ("postgresql", "postgres") else "sqlite"


def _function_names(node: exp.Func) -> set[str]:
    from sqlglot import exp

    names = {type(node).__name__.lower()}
    if isinstance(node, exp.Anonymous):
        names.add(str(node.name).lower())
    else:
        try:
            names.add(node.sql_name().lower())
        except Exception:  # pragma: no cover - sqlglot internals
            pass
    return names


def _forbidden(name: str) -> bool:
    return name in FORBIDDEN_FUNCTIONS or name.startswith(FORBIDDEN_PREFIXES)


def check_sql(sql: str, dialect: Store | str = "sqlite", *, max_rows: int = 200) -> GuardedQuery:
    """Pass ``sql`` through the gate and force its row cap, or raise ``SqlRejected``."""
    if not isinstance(sql, str) or not sql.strip():
        raise SqlRejected(f"The query is empty; {ALLOWED_SENTENCE}.")
    if len(sql) > 20_000:
        raise SqlRejected(f"The query is longer than 20000 characters; {ALLOWED_SENTENCE}.")
    if "\x00" in sql:
        raise SqlRejected(f"The query contains a NUL character; {ALLOWED_SENTENCE}.")
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    read = _dialect(dialect)
    sqlglot_log = logging.getLogger("sqlglot")
    level = sqlglot_log.level
    sqlglot_log.setLevel(logging.ERROR)
    try:
        statements = [s for s in sqlglot.parse(sql, read=read) if s is not None]
    except (ParseError, TokenError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SqlRejected(f"The query could not be parsed as {read} SQL ({first}); {ALLOWED_SENTENCE}.") from exc
    except Exception as exc:  # sqlglot raises assorted errors on garbage
        raise SqlRejected(f"The query could not be parsed as {read} SQL; {ALLOWED_SENTENCE}.") from exc
    finally:
        sqlglot_log.setLevel(level)
    if len(statements) != 1:
        raise SqlRejected(f"The query has {len(statements)} statements; {ALLOWED_SENTENCE}.")
    tree = statements[0]
    if not isinstance(tree, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
        kind = tree.key.upper()
        raise SqlRejected(f"The query is {'an' if kind[0] in 'AEIOU' else 'a'} {kind} statement; {ALLOWED_SENTENCE}.")
    for node in tree.walk():
        if isinstance(node, _forbidden_nodes()):
            raise SqlRejected(f"The query contains {node.key.upper()}; {ALLOWED_SENTENCE}.")
        if isinstance(node, (exp.Select, exp.Union, exp.Intersect, exp.Except)) and (node.args.get("into") or node.args.get("locks")):
            raise SqlRejected(f"The query uses SELECT INTO or a locking clause; {ALLOWED_SENTENCE}.")
        if isinstance(node, exp.Func):
            bad = sorted(n for n in _function_names(node) if _forbidden(n))
            if bad:
                raise SqlRejected(f"The query calls {bad[0]}(), which is not allowed; {ALLOWED_SENTENCE}.")
    ctes = {str(c.alias_or_name).lower() for c in tree.find_all(exp.CTE)}
    for cte in tree.find_all(exp.CTE):
        if not isinstance(cte.this, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
            raise SqlRejected(f"The WITH part {cte.alias_or_name!r} is not a SELECT; {ALLOWED_SENTENCE}.")
    tables: list[str] = []
    for table in tree.find_all(exp.Table):
        if isinstance(table.this, exp.Func):
            names = _function_names(table.this)
            if not names & ALLOWED_TABLE_FUNCTIONS and not any(n.replace("exploding", "").strip("_") in ALLOWED_TABLE_FUNCTIONS for n in names):
                raise SqlRejected(f"The table function {sorted(names)[-1]}() is not allowed; {ALLOWED_SENTENCE}.")
            continue
        name = str(table.name).lower()
        if table.args.get("db") or table.args.get("catalog"):
            raise SqlRejected(f"Schema-qualified table {table.sql(dialect=read)!r} is not allowed; {ALLOWED_SENTENCE}.")
        if name in ctes:
            continue
        if name not in ALLOWED_TABLES:
            raise SqlRejected(f"Table {name!r} is not allowed; {ALLOWED_SENTENCE}.")
        tables.append(name)
    cap = max(1, int(max_rows))
    limit_node = tree.args.get("limit")
    user_limit = None
    if limit_node is not None:
        expr = limit_node.expression if isinstance(limit_node, exp.Limit) else None
        if isinstance(expr, exp.Literal) and expr.is_int:
            user_limit = int(expr.this)
    if user_limit is not None and user_limit <= cap:
        final = tree
    else:
        final = tree.limit(cap + 1, copy=True)
    return GuardedQuery(original=sql, sql=final.sql(dialect=read), max_rows=cap, tables=sorted(set(tables)), ctes=sorted(ctes))


# --------------------------------------------------------------------------- execution

_SQLITE_READ_OK = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
_SQLITE_RECURSIVE = getattr(sqlite3, "SQLITE_RECURSIVE", 33)


def _sqlite_authorizer(ctes: frozenset[str]):
    """Allow SELECT, reads of allow-listed tables (and the query's own CTEs) and non-forbidden
    functions; deny everything else.

    SQLite's first use of an eponymous virtual table (``json_each``) registers it by touching
    ``sqlite_master``; that is allowed here because the connection is ``mode=ro`` with
    ``query_only`` (nothing can be written) and the gate never lets a query name that table.
    """
    readable = ALLOWED_TABLES | ALLOWED_TABLE_FUNCTIONS | ctes

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
        if action == sqlite3.SQLITE_SELECT or action == _SQLITE_RECURSIVE:
            return sqlite3.SQLITE_OK
        table = (arg1 or "").lower()
        if action == sqlite3.SQLITE_READ:
            return sqlite3.SQLITE_OK if table in readable or table == "sqlite_master" else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_UPDATE and table == "sqlite_master":
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_DENY if _forbidden((arg2 or "").lower()) else sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    return authorize


def _run_sqlite(store: Store, guarded: GuardedQuery, timeout_ms: int) -> GuardedResult:
    path = store.sqlite_path
    if path is None:
        raise SqlRejected("The guarded SQL tool needs a file-backed SQLite store (an in-memory store cannot be opened read-only).")
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, timeout=5, check_same_thread=False)
    started = time.perf_counter()
    try:
        conn.execute("PRAGMA query_only=1")
        deadline = time.monotonic() + timeout_ms / 1000.0
        conn.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 1000)
        conn.set_authorizer(_sqlite_authorizer(frozenset(guarded.ctes)))
        try:
            cur = conn.execute(guarded.sql)
            rows = cur.fetchmany(guarded.max_rows + 1)
        except sqlite3.DatabaseError as exc:
            if "interrupted" in str(exc).lower():
                raise QueryTimeout(guarded.sql, timeout_ms) from exc
            if "not authorized" in str(exc).lower() or "prohibited" in str(exc).lower():
                raise SqlRejected(f"The database refused the query ({exc}); {ALLOWED_SENTENCE}.") from exc
            raise
        columns = [d[0] for d in cur.description or []]
    finally:
        conn.close()
    return GuardedResult(columns, rows[: guarded.max_rows], len(rows) > guarded.max_rows, guarded.sql,
                         time.perf_counter() - started)


def _run_postgres(store: Store, guarded: GuardedQuery, timeout_ms: int) -> GuardedResult:
    import psycopg

    raw = store.raw_connection()
    started = time.perf_counter()
    try:
        dbapi = raw.driver_connection
        dbapi.rollback()  # start from a clean transaction
        with dbapi.cursor() as cur:
            cur.execute("SET TRANSACTION READ ONLY")
            cur.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            try:
                cur.execute(guarded.sql)
                rows = cur.fetchmany(guarded.max_rows + 1)
            except psycopg.errors.QueryCanceled as exc:
                raise QueryTimeout(guarded.sql, timeout_ms) from exc
            except psycopg.errors.ReadOnlySqlTransaction as exc:
                raise SqlRejected(f"The database refused a write; {ALLOWED_SENTENCE}.") from exc
            columns = [d.name for d in cur.description or []]
    finally:
        try:
            raw.driver_connection.rollback()
        finally:
            raw.close()
    return GuardedResult(columns, list(rows[: guarded.max_rows]), len(rows) > guarded.max_rows, guarded.sql,
                         time.perf_counter() - started)


def run_guarded(store: Store, sql: str, *, max_rows: int = 200, timeout_ms: int = 2000,
                settings_max_rows: int | None = None, settings_timeout_ms: int | None = None) -> GuardedResult:
    """Gate, cap and run ``sql`` read-only under a time limit.

    ``settings_*`` are the ceilings from settings: ``max_rows``/``timeout_ms`` may lower them,
    never raise them.
    """
    if settings_max_rows is not None:
        max_rows = min(max_rows, settings_max_rows)
    if settings_timeout_ms is not None:
        timeout_ms = min(timeout_ms, settings_timeout_ms)
    guarded = check_sql(sql, store, max_rows=max_rows)
    if store.is_sqlite:
        return _run_sqlite(store, guarded, int(timeout_ms))
    return _run_postgres(store, guarded, int(timeout_ms))
