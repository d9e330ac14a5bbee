"""The SQL guard lets through one SELECT on allow-listed tables, and nothing else.

Layer by layer: the sqlglot gate (known injection shapes and hypothesis-generated statements),
the forced row cap, and the read-only session with its time limit, each tested on its own so
that a hole in one layer is caught even when another would have covered it.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from test_tools_fleet_fixture import build_fleet
from tools.sql_guard import (
    ALLOWED_TABLES,
    GuardedQuery,
    QueryTimeout,
    SqlRejected,
    _run_postgres,
    _run_sqlite,
    check_sql,
    run_guarded,
)
from tools.store.schema import AI_TABLES

DIALECTS = ["sqlite", "postgresql"]

INJECTIONS = [
    # stacked statements
    "SELECT * FROM alerts; DELETE FROM alerts",
    "SELECT 1; DROP TABLE devices",
    "SELECT * FROM alerts;UPDATE alerts SET status='resolved'",
    # comments hiding a second statement
    "SELECT * FROM alerts /* harmless */; DELETE FROM alerts",
    "SELECT * FROM alerts -- comment\n; DELETE FROM alerts",
    "/* leading */ DELETE FROM alerts",
    # CTE with DML
    "WITH x AS (DELETE FROM alerts RETURNING *) SELECT * FROM x",
    "WITH x AS (UPDATE alerts SET status='resolved' RETURNING id) SELECT count(*) FROM x",
    "WITH x AS (INSERT INTO alerts (title) VALUES ('x') RETURNING id) SELECT * FROM x",
    # side-effect functions
    "SELECT pg_sleep(10)",
    "SELECT pg_catalog.pg_sleep(10)",
    "SELECT * FROM alerts WHERE pg_sleep(1) IS NULL",
    "SELECT lo_import('/etc/passwd')",
    "SELECT lo_export(1, '/tmp/x')",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT * FROM dblink('host=x', 'select 1') AS t(a int)",
    "SELECT query_to_xml('DELETE FROM alerts', true, true, '')",
    "SELECT load_extension('/tmp/evil.so')",
    "SELECT writefile('/tmp/x', 'y')",
    # COPY, PRAGMA, ATTACH and friends
    "COPY alerts TO '/tmp/alerts.csv'",
    "COPY (SELECT * FROM alerts) TO PROGRAM 'sh'",
    "PRAGMA table_info(alerts)",
    "PRAGMA query_only=0",
    "ATTACH DATABASE '/tmp/x.db' AS evil",
    "DETACH DATABASE main",
    "VACUUM",
    "SELECT * INTO stolen FROM alerts",
    "SELECT * FROM alerts FOR UPDATE",
    "SET statement_timeout = 0",
    "BEGIN; DELETE FROM alerts; COMMIT",
    "EXPLAIN ANALYZE DELETE FROM alerts",
    # tables outside the list
    "SELECT * FROM ai_tool_calls",
    "SELECT * FROM ai_detector_state",
    "SELECT * FROM ai_models",
    "SELECT * FROM sqlite_master",
    "SELECT * FROM pg_catalog.pg_user",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM public.alerts",
    "SELECT a.* FROM alerts a JOIN ai_notifications n ON n.id = a.id",
    "SELECT (SELECT count(*) FROM ai_tool_calls) AS n FROM devices",
    "",
    "   ",
    "not sql at all",
]


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("sql", INJECTIONS)
def test_known_injection_shapes_are_rejected(sql: str, dialect: str) -> None:
    with pytest.raises(SqlRejected) as err:
        check_sql(sql, dialect)
    message = str(err.value)
    assert "only one SELECT" in message and "device_metrics" in message  # says what is allowed


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM devices",
        "select d.name, count(*) from alerts a join devices d on d.device_id = a.device_id group by d.name",
        "WITH recent AS (SELECT * FROM device_metrics WHERE timestamp > '2024-01-01') SELECT avg(cpu_percent) FROM recent",
        "SELECT 1 UNION ALL SELECT 2",
        "SELECT * FROM ai_anomalies ORDER BY score DESC LIMIT 5",
        "SELECT count(*) FROM ai_predictions WHERE p_fail_30d > 0.5",
    ],
)
def test_plain_selects_pass(sql: str, dialect: str) -> None:
    guarded = check_sql(sql, dialect, max_rows=50)
    assert "LIMIT" in guarded.sql.upper()


def test_limit_is_forced_and_can_only_be_lowered() -> None:
    assert check_sql("SELECT * FROM devices", "sqlite", max_rows=10).sql.endswith("LIMIT 11")
    assert check_sql("SELECT * FROM devices LIMIT 1000", "sqlite", max_rows=10).sql.endswith("LIMIT 11")
    assert check_sql("SELECT * FROM devices LIMIT 3", "sqlite", max_rows=10).sql.endswith("LIMIT 3")


_words = st.text(alphabet=string.ascii_letters + string.digits + " ;'\"()*,-=/_", max_size=80)


@settings(max_examples=200, deadline=None)
@given(
    verb=st.sampled_from(["INSERT INTO", "UPDATE", "DELETE FROM", "DROP TABLE", "CREATE TABLE", "ALTER TABLE",
                          "TRUNCATE", "PRAGMA", "ATTACH", "COPY", "GRANT ALL ON", "REPLACE INTO", "VACUUM", "REINDEX"]),
    table=st.sampled_from(sorted(ALLOWED_TABLES)),
    rest=_words,
    dialect=st.sampled_from(DIALECTS),
)
def test_generated_non_select_statements_never_pass(verb: str, table: str, rest: str, dialect: str) -> None:
    with pytest.raises(SqlRejected):
        check_sql(f"{verb} {table} {rest}", dialect)


@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from(["SELECT 1", "SELECT * FROM devices", "WITH x AS (SELECT 1) SELECT * FROM x"]),
       tail=st.sampled_from(["DELETE FROM alerts", "DROP TABLE sites", "UPDATE devices SET name='x'",
                             "INSERT INTO alerts (title) VALUES ('x')", "PRAGMA writable_schema=1"]),
       sep=st.sampled_from([";", "; ", ";\n", " /* x */ ;", ";--\n"]),
       dialect=st.sampled_from(DIALECTS))
def test_generated_stacked_statements_never_pass(prefix: str, tail: str, sep: str, dialect: str) -> None:
    with pytest.raises(SqlRejected):
        check_sql(prefix + sep + tail, dialect)


@settings(max_examples=300, deadline=None)
@given(junk=st.text(max_size=120), dialect=st.sampled_from(DIALECTS))
def test_random_strings_never_pass_unless_they_are_a_select(junk: str, dialect: str) -> None:
    try:
        guarded = check_sql(junk, dialect)
    except SqlRejected:
        return
    # the rare random string that parses as a SELECT must still be a single read of allowed tables
    assert guarded.sql.upper().startswith(("SELECT", "WITH", "("))
    assert set(guarded.tables) <= ALLOWED_TABLES


@settings(max_examples=150, deadline=None)
@given(
    table=st.sampled_from(sorted(ALLOWED_TABLES)),
    where=st.sampled_from(["", " WHERE id > 3", " WHERE id IN (1, 2, 3)", " WHERE id IS NOT NULL ORDER BY id DESC"]),
    agg=st.sampled_from(["*", "count(*)", "max(id)", "id"]),
    limit=st.one_of(st.none(), st.integers(min_value=1, max_value=10_000)),
    dialect=st.sampled_from(DIALECTS),
)
def test_generated_simple_selects_on_allowed_tables_pass(table, where, agg, limit, dialect) -> None:
    sql = f"SELECT {agg} FROM {table}{where}" + (f" LIMIT {limit}" if limit else "")
    guarded = check_sql(sql, dialect, max_rows=100)
    assert guarded.tables == [table]
    assert "LIMIT" in guarded.sql.upper()


@settings(max_examples=50, deadline=None)
@given(table=st.sampled_from(sorted(set(AI_TABLES) - ALLOWED_TABLES) + ["sqlite_master", "pg_shadow", "secrets"]),
       dialect=st.sampled_from(DIALECTS))
def test_generated_selects_on_other_tables_are_rejected(table: str, dialect: str) -> None:
    with pytest.raises(SqlRejected, match="not allowed"):
        check_sql(f"SELECT * FROM {table}", dialect)


# --------------------------------------------------------------------------- execution layers


@pytest.fixture
def fleet_store(store):
    build_fleet(store)
    return store


def test_row_cap_sets_truncated(fleet_store) -> None:
    result = run_guarded(fleet_store, "SELECT * FROM device_metrics ORDER BY id", max_rows=7)
    assert len(result.rows) == 7 and result.truncated
    result = run_guarded(fleet_store, "SELECT * FROM devices", max_rows=50)
    assert len(result.rows) == 10 and not result.truncated


def test_caller_cannot_raise_the_configured_cap(fleet_store) -> None:
    result = run_guarded(fleet_store, "SELECT * FROM device_metrics", max_rows=10_000, settings_max_rows=5)
    assert len(result.rows) == 5 and result.truncated


def test_slow_query_times_out_naming_the_setting(fleet_store) -> None:
    if fleet_store.is_sqlite:
        slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    else:
        slow = "SELECT count(*) FROM generate_series(1, 500000000) AS g"
    with pytest.raises(QueryTimeout, match="HOMEPOT_AI_SQL_TIMEOUT_MS"):
        run_guarded(fleet_store, slow, timeout_ms=50)


def test_json_extraction_of_extra_metrics_is_allowed(fleet_store) -> None:
    if fleet_store.is_sqlite:
        sql = "SELECT avg(json_extract(extra_metrics, '$.temperature_celsius')) AS t FROM device_metrics"
    else:
        sql = "SELECT avg((extra_metrics->>'temperature_celsius')::float) AS t FROM device_metrics"
    assert run_guarded(fleet_store, sql).rows[0][0] > 0


def _bypass(sql: str) -> GuardedQuery:
    """A statement that skipped the gate: what the second layer must still stop."""
    return GuardedQuery(original=sql, sql=sql, max_rows=10, tables=[], ctes=[])


def _alert_statuses(store) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT status FROM alerts ORDER BY id"))]


def test_sqlite_session_refuses_writes_even_without_the_gate(sqlite_store) -> None:
    build_fleet(sqlite_store)
    before = _alert_statuses(sqlite_store)
    for sql in ["UPDATE alerts SET status = 'resolved'", "DELETE FROM alerts", "SELECT * FROM ai_tool_calls",
                "ATTACH DATABASE ':memory:' AS x", "PRAGMA query_only=0"]:
        with pytest.raises(Exception) as err:
            _run_sqlite(sqlite_store, _bypass(sql), 1000)
        assert "not authorized" in str(err.value) or "readonly" in str(err.value).lower() or "refused" in str(err.value)
    assert _alert_statuses(sqlite_store) == before


def test_postgres_session_is_read_only_even_without_the_gate(pg_store) -> None:
    build_fleet(pg_store)
    before = _alert_statuses(pg_store)
    with pytest.raises(SqlRejected, match="refused a write"):
        _run_postgres(pg_store, _bypass("UPDATE alerts SET status = 'resolved' RETURNING id"), 1000)
    with pytest.raises(QueryTimeout):
        _run_postgres(pg_store, _bypass("SELECT pg_sleep(2)"), 50)
    assert _alert_statuses(pg_store) == before
