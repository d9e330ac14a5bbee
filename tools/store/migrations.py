"""Forward-only schema migrations, recorded by name in ``ai_migrations`` (llm's habit).

Each migration is a function named ``mNNN_what`` registered with ``@migration``. ``migrate``
runs those not yet recorded, in order. Code that opens the store calls ``migrate`` first.
When the store is a real HOMEPOT database opened read-only, HOMEPOT's own tables are never
created or altered; only our ``ai_*`` tables are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import Connection, inspect, text

from tools.store.engine import Store
from tools.store.schema import AI_TABLES, HOMEPOT_TABLES, Base

Migration = Callable[[Connection, Store], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_homepot_tables(conn: Connection, store: Store) -> None:
    """HOMEPOT's tables, as SCHEMA.md has them (skipped for a read-only HOMEPOT source)."""
    if store.read_only_source:
        return
    tables = [Base.metadata.tables[name] for name in HOMEPOT_TABLES]
    Base.metadata.create_all(conn, tables=tables, checkfirst=True)


@migration
def m002_ai_tables(conn: Connection, store: Store) -> None:
    """Our own ``ai_*`` tables."""
    tables = [Base.metadata.tables[name] for name in AI_TABLES if name != "ai_migrations"]
    Base.metadata.create_all(conn, tables=tables, checkfirst=True)


@migration
def m003_metric_indexes(conn: Connection, store: Store) -> None:
    """Indexes the analytics lean on: newest metric per device, alerts by device and status."""
    if store.read_only_source:
        return
    conn.execute(
        text("CREATE INDEX IF NOT EXISTS ix_error_logs_ts_severity ON error_logs (timestamp, severity)")
    )
    conn.execute(
        text("CREATE INDEX IF NOT EXISTS ix_alerts_device_status ON alerts (device_id, status)")
    )
    conn.execute(
        text("CREATE INDEX IF NOT EXISTS ix_ai_anomalies_device_start ON ai_anomalies (device_id, start)")
    )


@migration
def m004_timescale_hypertables(conn: Connection, store: Store) -> None:
    """Where TimescaleDB is installed, ``device_metrics`` and ``health_checks`` become hypertables.

    A hypertable's unique keys must include the time column, so the serial primary key is
    widened to (id, timestamp) first.
    """
    if store.read_only_source or not store.is_postgres or not store.has_timescale:
        return
    for table in ("device_metrics", "health_checks"):
        conn.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_pkey"))
        conn.execute(text(f"ALTER TABLE {table} ADD PRIMARY KEY (id, timestamp)"))
        conn.execute(
            text(
                f"SELECT create_hypertable('{table}', 'timestamp', migrate_data => true, "
                "if_not_exists => true, chunk_time_interval => INTERVAL '7 days')"
            )
        )


def applied_migrations(store: Store) -> list[str]:
    if "ai_migrations" not in inspect(store.engine).get_table_names():
        return []
    with store.engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT name FROM ai_migrations ORDER BY name"))]


def migrate(store: Store) -> list[str]:
    """Apply pending migrations; return the names applied now."""
    Base.metadata.tables["ai_migrations"].create(store.engine, checkfirst=True)
    done = set(applied_migrations(store))
    applied: list[str] = []
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        with store.engine.begin() as conn:
            fn(conn, store)
            conn.execute(
                text("INSERT INTO ai_migrations (name, applied_at) VALUES (:n, :t)"),
                {"n": name, "t": datetime.now(timezone.utc).replace(tzinfo=None)},
            )
        applied.append(name)
    return applied


@migration
def m005_device_metrics_named_cover(conn: Connection, store: Store) -> None:
    """A covering index so whole-fleet reads of the nine named metrics never touch JSON pages.

    ``device_metrics`` rows carry ~400-700 bytes of ``extra_metrics`` JSON; a scan for the named
    columns alone reads all of it. This index holds (device_id, timestamp) plus the nine named
    metrics (PostgreSQL: as INCLUDE columns), ~12% of the table's size, and serves
    ``ORDER BY device_id, timestamp`` reads as an index-only scan. HOMEPOT's own columns are not
    touched; on a read-only HOMEPOT source nothing is created.
    """
    if store.read_only_source:
        return
    from tools.store.schema import NAMED_METRICS

    named = ", ".join(f'"{m}"' for m in NAMED_METRICS)
    if store.is_postgres:
        conn.execute(text(
            "CREATE INDEX IF NOT EXISTS ix_ai_device_metrics_named ON device_metrics "
            f"(device_id, timestamp) INCLUDE ({named})"))
    else:
        conn.execute(text(
            f"CREATE INDEX IF NOT EXISTS ix_ai_device_metrics_named ON device_metrics (device_id, timestamp, {named})"))


@migration
def m006_named_cover_time_first(conn: Connection, store: Store) -> None:
    """Lead the covering index with ``timestamp``: the agent's common question is a time window
    over many devices ("error rate over the last 7 days"), which then becomes a range scan of the
    index alone (120 ms -> 30 ms on a 60-device x 14-day store). Whole-fleet reads ordered by
    device measured the same either way; per-device reads use the (device_id, timestamp) key.
    """
    if store.read_only_source:
        return
    from tools.store.schema import NAMED_METRICS

    named = ", ".join(f'"{m}"' for m in NAMED_METRICS)
    conn.execute(text("DROP INDEX IF EXISTS ix_ai_device_metrics_named"))
    if store.is_postgres:
        conn.execute(text(
            "CREATE INDEX IF NOT EXISTS ix_ai_device_metrics_named_ts ON device_metrics "
            f"(timestamp, device_id) INCLUDE ({named})"))
    else:
        conn.execute(text(
            f"CREATE INDEX IF NOT EXISTS ix_ai_device_metrics_named_ts ON device_metrics (timestamp, device_id, {named})"))
