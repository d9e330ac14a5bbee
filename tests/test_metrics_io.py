"""Reading metrics back: long and wide shapes, SQL-side filters, extra_metrics expansion."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from tools.store.bulk import insert_frame
from tools.store.metrics_io import (
    SQLITE_MAX_SQL_EXTRACTS,
    list_metric_names,
    load_metrics,
    load_metrics_wide,
)
from tools.store.schema import NAMED_METRICS

T0 = datetime(2025, 3, 1, 12, 0)


def _fleet(store) -> list[int]:
    """Two devices, six 5-minute rows each; extras differ per row on purpose."""
    insert_frame(store, "sites", pd.DataFrame({"site_id": ["SITE-AAAA-BBBB"], "name": ["Shop"]}))
    insert_frame(
        store,
        "devices",
        pd.DataFrame(
            {
                "device_id": ["DEVICE-AAAA-BBBB-CCCC", "DEVICE-AAAA-BBBB-DDDD"],
                "name": ["till 1", "sensor 1"],
                "device_type": ["pos_terminal", "iot_sensor"],
                "site_id": [1, 1],
            }
        ),
    )
    ids = sorted(pd.read_sql("SELECT id FROM devices", store.engine)["id"].tolist())
    rows = []
    for d in ids:
        for i in range(6):
            extra = {"temperature_celsius": 20.0 + i + d, "fan_rpm": 1000 + i}
            if i % 2 == 0:
                extra["battery_health"] = 0.9
            extra["firmware_note"] = "text is not a metric"
            rows.append(
                {
                    "device_id": d,
                    "timestamp": T0 + timedelta(minutes=5 * i),
                    "cpu_percent": 10.0 * i + d,
                    "memory_percent": None if i == 3 else 50.0,
                    "transaction_count": i,
                    "extra_metrics": extra,
                }
            )
    insert_frame(
        store,
        "device_metrics",
        pd.DataFrame(rows),
        conflict=("device_id", "timestamp"),
        json_cols=("extra_metrics",),
    )
    return ids


def test_long_shape_has_one_row_per_non_null_value(store):
    ids = _fleet(store)
    long = load_metrics(store)
    assert list(long.columns) == ["device_id", "timestamp", "metric", "value"]
    assert long["device_id"].dtype == np.int64
    assert pd.api.types.is_datetime64_any_dtype(long["timestamp"])
    assert long["value"].dtype == float
    # per device: 6 cpu + 5 memory + 6 tx + 6 temperature + 6 fan + 3 battery; text extras dropped
    counts = long.groupby("device_id").size().to_dict()
    assert counts == {ids[0]: 32, ids[1]: 32}
    assert "firmware_note" not in set(long["metric"])
    cpu = long[(long.device_id == ids[1]) & (long.metric == "cpu_percent")]
    assert cpu["value"].tolist() == [10.0 * i + ids[1] for i in range(6)]
    assert cpu["timestamp"].iloc[0] == pd.Timestamp(T0)


def test_filters_are_applied_half_open(store):
    ids = _fleet(store)
    got = load_metrics(
        store,
        device_ids=[ids[0]],
        start=T0 + timedelta(minutes=5),
        end=T0 + timedelta(minutes=20),
        metrics=["cpu_percent", "temperature_celsius"],
    )
    assert set(got["device_id"]) == {ids[0]}
    assert got["timestamp"].min() == pd.Timestamp(T0 + timedelta(minutes=5))
    assert got["timestamp"].max() == pd.Timestamp(T0 + timedelta(minutes=15))
    assert sorted(set(got["metric"])) == ["cpu_percent", "temperature_celsius"]
    assert len(got) == 6


def test_wide_keeps_requested_columns_in_order_even_without_data(store):
    ids = _fleet(store)
    wide = load_metrics_wide(store, metrics=["fan_rpm", "queue_depth", "no_such_metric", "cpu_percent"])
    assert list(wide.columns) == ["device_id", "timestamp", "fan_rpm", "queue_depth", "no_such_metric", "cpu_percent"]
    assert len(wide) == 12
    assert wide["queue_depth"].isna().all() and wide["no_such_metric"].isna().all()
    assert wide["fan_rpm"].tolist()[:6] == [1000.0 + i for i in range(6)]
    assert wide["device_id"].tolist() == [ids[0]] * 6 + [ids[1]] * 6


def test_many_extras_take_the_python_path_with_the_same_answer(store):
    _fleet(store)
    few = load_metrics_wide(store, metrics=["battery_health", "temperature_celsius"])
    many_names = ["battery_health", "temperature_celsius"] + [f"pad_{i}" for i in range(SQLITE_MAX_SQL_EXTRACTS)]
    many = load_metrics_wide(store, metrics=many_names)
    pd.testing.assert_frame_equal(few, many[few.columns])
    everything = load_metrics_wide(store)
    pd.testing.assert_frame_equal(few, everything[few.columns])


def test_list_metric_names_has_named_then_sorted_numeric_and_text_keys(store):
    _fleet(store)
    names = list_metric_names(store)
    assert names[: len(NAMED_METRICS)] == list(NAMED_METRICS)
    assert names[len(NAMED_METRICS) :] == ["battery_health", "fan_rpm", "firmware_note", "temperature_celsius"]


@pytest.mark.parametrize("loader", [load_metrics, load_metrics_wide])
def test_empty_store_gives_empty_typed_frames(store, loader):
    got = loader(store, metrics=["cpu_percent", "fan_rpm"])
    assert got.empty
    assert {"device_id", "timestamp"} <= set(got.columns)
    assert list_metric_names(store) == list(NAMED_METRICS)
