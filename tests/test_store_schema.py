"""The store: migrations build HOMEPOT's tables and ours, on both backends, and only once."""

from sqlalchemy import inspect

from tools.store.migrations import MIGRATIONS, applied_migrations, migrate
from tools.store.schema import AI_TABLES, HOMEPOT_TABLES, NAMED_METRICS


def test_migrations_create_every_table(store):
    tables = set(inspect(store.engine).get_table_names())
    assert set(HOMEPOT_TABLES) <= tables
    assert set(AI_TABLES) <= tables


def test_device_metrics_has_the_nine_named_metrics_and_extras(store):
    cols = {c["name"] for c in inspect(store.engine).get_columns("device_metrics")}
    assert set(NAMED_METRICS) <= cols
    assert {"extra_metrics", "provenance", "collection_interval_seconds", "timestamp", "device_id"} <= cols


def test_migrations_are_recorded_and_not_applied_twice(store):
    assert applied_migrations(store) == sorted(name for name, _ in MIGRATIONS)
    assert migrate(store) == []


def test_explicit_ids_do_not_break_later_generated_ids(store):
    """Writers that bring their own ids (the simulator) leave the id sequence past them."""
    import pandas as pd
    from sqlalchemy import text

    from tools.store.bulk import insert_frame

    insert_frame(store, "sites", pd.DataFrame({"id": [7], "site_id": ["SITE-AAAA-BBBB"], "name": ["Camden"]}),
                 conflict=("site_id",))
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO sites (site_id, name, is_active, is_monitored, lifecycle_state) "
                          "VALUES ('SITE-CCCC-DDDD', 'Leeds', true, true, 'active')"))
        ids = sorted(r[0] for r in conn.execute(text("SELECT id FROM sites")))
    assert ids[0] == 7 and ids[1] > 7


def test_binary_columns_round_trip_through_the_bulk_writer(store):
    """Detector state is pickled bytes: COPY on PostgreSQL and executemany on SQLite both keep it."""
    from datetime import datetime

    import pandas as pd
    from sqlalchemy import text

    from tools.store.bulk import insert_frame

    blob = bytes(range(256)) + b"\\\t\n"
    insert_frame(store, "ai_detector_state",
                 pd.DataFrame({"key": ["d1"], "state": [blob], "updated_at": [datetime(2026, 1, 1)]}),
                 conflict=("key",))
    with store.engine.connect() as conn:
        stored = conn.execute(text("SELECT state FROM ai_detector_state WHERE key = 'd1'")).scalar_one()
    assert bytes(stored) == blob
