"""Import: good rows stored, bad rows reported with file, line and reason, re-import idempotent."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from tools.store.bulk import insert_frame
from tools.store.ingest import import_files
from tools.store.metrics_io import load_metrics

NOW = datetime(2025, 3, 2, 0, 0)
DEV_A = "DEVICE-AAAA-BBBB-CCCC"
DEV_B = "DEVICE-AAAA-BBBB-DDDD"


@pytest.fixture
def fleet(store):
    insert_frame(store, "sites", pd.DataFrame({"site_id": ["SITE-AAAA-BBBB"], "name": ["Shop"]}))
    insert_frame(store, "devices", pd.DataFrame({
        "device_id": [DEV_A, DEV_B], "name": ["till", "sensor"],
        "device_type": ["pos_terminal", "iot_sensor"], "site_id": [1, 1]}))
    ids = dict(pd.read_sql("SELECT device_id, id FROM devices", store.engine).itertuples(index=False))
    return store, ids


def _rows(store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM device_metrics")).scalar())


def _write(tmp_path: Path, name: str, body: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    return path


WIDE = (
    "device_id,timestamp,cpu_percent,memory_percent,transaction_count,extra_metrics\n"
    f"{DEV_A},2025-03-01T10:00:00Z,12.5,40,3,\"{{\"\"temperature_celsius\"\": 31.5}}\"\n"
    f"{DEV_A},2025-03-01T10:05:00Z,14.0,41,5,\n"
    f"{DEV_B},2025-03-01 10:00:00,3.0,20,,\n"
)


def test_wide_csv_is_stored_and_reimport_is_idempotent(fleet, tmp_path):
    store, ids = fleet
    path = _write(tmp_path, "m.csv", WIDE)
    first = import_files(store, [path], now=NOW)
    assert first.ok and first.rows_read == 3 and first.rows_stored == 3
    assert first.values_stored == 3 + 3 + 2 + 1
    assert first.files[0].shape == "wide"
    second = import_files(store, [path], now=NOW)
    assert second.ok, "duplicates alone are not a failure"
    assert (second.rows_stored, second.duplicates) == (0, 3)
    assert _rows(store) == 3
    long = load_metrics(store, device_ids=[ids[DEV_A]])
    temp = long[long.metric == "temperature_celsius"]
    assert temp["value"].tolist() == [31.5]
    assert long[long.metric == "transaction_count"]["value"].tolist() == [3.0, 5.0]


def test_long_shape_is_pivoted_to_one_row_per_device_and_timestamp(fleet, tmp_path):
    store, ids = fleet
    body = "device_id,timestamp,metric,value\n" + "".join(
        f"{DEV_A},2025-03-01T10:0{m}:00,{name},{v}\n"
        for m in (0, 5)
        for name, v in (("cpu_percent", 10 + m), ("queue_depth", 2), ("fan_rpm", 1200))
    )
    path = _write(tmp_path, "long.csv", body)
    report = import_files(store, [path], now=NOW)
    assert report.ok and report.files[0].shape == "long"
    assert (report.rows_read, report.rows_stored, report.values_stored) == (6, 6, 6)
    assert _rows(store) == 2
    wide = pd.read_sql("SELECT cpu_percent, queue_depth, extra_metrics FROM device_metrics ORDER BY timestamp",
                       store.engine)
    assert wide["cpu_percent"].tolist() == [10.0, 15.0]
    extra = wide["extra_metrics"].iloc[0]
    assert (json.loads(extra) if isinstance(extra, str) else extra) == {"fan_rpm": 1200.0}
    again = import_files(store, [path], now=NOW)
    assert (again.rows_stored, again.duplicates) == (0, 6)


def test_long_values_for_an_existing_row_are_merged_not_lost(fleet, tmp_path):
    store, ids = fleet
    import_files(store, [_write(tmp_path, "m.csv", WIDE)], now=NOW)
    path = _write(tmp_path, "more.csv", "device_id,timestamp,metric,value\n"
                  f"{DEV_B},2025-03-01T10:00:00,cpu_percent,99\n"  # already 3.0: stored value wins
                  f"{DEV_B},2025-03-01T10:00:00,queue_depth,7\n"  # new value for an existing row
                  f"{ids[DEV_B]},2025-03-01T10:00:00,humidity_percent,55\n")
    report = import_files(store, [path], now=NOW)
    assert (report.values_stored, report.duplicates) == (2, 1)
    got = load_metrics(store, device_ids=[ids[DEV_B]]).set_index("metric")["value"]
    assert got["cpu_percent"] == 3.0 and got["queue_depth"] == 7 and got["humidity_percent"] == 55
    assert _rows(store) == 3


def test_jsonl_wide_with_object_extras(fleet, tmp_path):
    store, ids = fleet
    lines = [
        {"device_id": DEV_A, "timestamp": "2025-03-01T10:00:00Z", "cpu_percent": 5, "extra_metrics": {"fan_rpm": 900}},
        {"device_id": ids[DEV_B], "timestamp": 1740823200, "disk_percent": 70.5},  # epoch seconds
    ]
    path = _write(tmp_path, "m.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    report = import_files(store, [path], now=NOW)
    assert report.ok and report.rows_stored == 2 and report.values_stored == 3
    b = load_metrics(store, device_ids=[ids[DEV_B]])
    assert b["timestamp"].tolist() == [pd.Timestamp("2025-03-01 10:00:00")]


def _problems(report) -> dict[int, str]:
    return {p.line: p.code for p in report.problems}


def test_each_bad_row_is_reported_with_line_and_reason_and_good_rows_are_kept(fleet, tmp_path):
    store, _ = fleet
    body = (
        "device_id,timestamp,cpu_percent,memory_percent\n"  # 1
        f"{DEV_A},2025-03-01T10:00:00,10,20\n"  # 2 good
        f"{DEV_A},2025-03-01T10:05:00,NaN,20\n"  # 3 NaN
        f"{DEV_A},2025-03-01T10:10:00,high,20\n"  # 4 text
        "DEVICE-ZZZZ-ZZZZ-ZZZZ,2025-03-01T10:15:00,1,2\n"  # 5 unknown device
        f"{DEV_A},2030-01-01T00:00:00,1,2\n"  # 6 future
        f"{DEV_A},01/03/2025 10:20,1,2\n"  # 7 unparseable
        "\n"  # 8 blank: not a record
        f"{DEV_A},2025-03-01T10:00:00,11,21\n"  # 9 duplicate of line 2
        f"{DEV_A},2025-03-01T10:25:00,1,2,3,4\n"  # 10 too many fields
        f"{DEV_A},,1,2\n"  # 11 missing timestamp
        f"{DEV_B},2025-03-01T10:30:00,inf,2\n"  # 12 infinite
        f"{DEV_B},2025-03-01T10:35:00,5,6\n"  # 13 good
        f"{DEV_B},2025-03-01T10:40:00,5"  # 14 cut off mid-line, no newline
    )
    path = _write(tmp_path, "bad.csv", body)
    report = import_files(store, [path], now=NOW)
    assert _problems(report) == {
        3: "nan", 4: "not_a_number", 5: "unknown_device", 6: "future_timestamp", 7: "bad_timestamp",
        10: "too_many_fields", 11: "missing_timestamp", 12: "infinite", 14: "truncated",
    }
    assert all(p.file == str(path) and p.reason for p in report.problems)
    assert "high" in next(p.reason for p in report.problems if p.line == 4)
    assert [d.line for d in report.duplicate_rows] == [9]
    assert (report.rows_read, report.rows_stored, report.duplicates, report.n_rejected) == (12, 2, 1, 9)
    assert not report.ok
    assert _rows(store) == 2


def test_missing_required_column_is_one_clear_file_error(fleet, tmp_path):
    store, _ = fleet
    path = _write(tmp_path, "nots.csv", f"device_id,cpu_percent\n{DEV_A},1\n")
    report = import_files(store, [path], now=NOW)
    assert not report.ok
    assert "lacks required column(s) timestamp" in report.files[0].error


def test_extra_unknown_columns_warn_and_keep_their_data(fleet, tmp_path):
    store, ids = fleet
    path = _write(tmp_path, "x.csv", f"device_id,timestamp,cpu_percent,door_open_count,note\n"
                  f"{DEV_A},2025-03-01T10:00:00,1,4,front\n")
    report = import_files(store, [path], now=NOW)
    assert report.ok and any("door_open_count" in w for w in report.files[0].warnings)
    extra = pd.read_sql("SELECT extra_metrics FROM device_metrics", store.engine)["extra_metrics"].iloc[0]
    assert (json.loads(extra) if isinstance(extra, str) else extra) == {"door_open_count": 4.0, "note": "front"}


def test_empty_file_and_header_only_file(fleet, tmp_path):
    store, _ = fleet
    empty = _write(tmp_path, "empty.csv", "")
    header = _write(tmp_path, "header.csv", "device_id,timestamp,cpu_percent\n")
    report = import_files(store, [empty, header], now=NOW)
    assert "is empty" in report.files[0].error
    assert report.files[1].error is None and "no data rows" in report.files[1].warnings[0]
    assert not report.ok


@pytest.mark.parametrize("encoding", ["utf-16", "latin-1"])
def test_wrong_encoding_is_decoded_with_a_warning(fleet, tmp_path, encoding):
    store, _ = fleet
    body = f"device_id,timestamp,cpu_percent,site_note\n{DEV_A},2025-03-01T10:00:00,7,café\n"
    path = _write(tmp_path, f"{encoding}.csv", body.encode(encoding))
    report = import_files(store, [path], now=NOW)
    assert report.ok and report.rows_stored == 1
    assert any(("UTF-16" in w) or ("not valid UTF-8" in w) for w in report.files[0].warnings)


def test_jsonl_bad_lines_are_reported(fleet, tmp_path):
    store, _ = fleet
    body = (
        json.dumps({"device_id": DEV_A, "timestamp": "2025-03-01T10:00:00", "cpu_percent": 1}) + "\n"
        + "{not json}\n"
        + '{"device_id": "%s", "timestamp": "2025-03-01T10:05:00", "cpu_percent": NaN}\n' % DEV_A
        + '{"device_id": "%s", "timestamp": "2025-03-01T10:10:00", "cpu_' % DEV_A
    )
    report = import_files(store, [_write(tmp_path, "b.jsonl", body)], now=NOW)
    assert _problems(report) == {2: "invalid_json", 3: "nan", 4: "truncated"}
    assert report.rows_stored == 1


def test_long_shape_bad_values(fleet, tmp_path):
    store, _ = fleet
    body = ("device_id,timestamp,metric,value\n"
            f"{DEV_A},2025-03-01T10:00:00,cpu_percent,1\n"
            f"{DEV_A},2025-03-01T10:00:00,memory_percent,\n"
            f"{DEV_A},2025-03-01T10:00:00,,3\n"
            f"{DEV_A},2025-03-01T10:00:00,cpu_percent,2\n")
    report = import_files(store, [_write(tmp_path, "l.csv", body)], now=NOW)
    assert _problems(report) == {3: "missing_value", 4: "missing_metric"}
    assert [d.line for d in report.duplicate_rows] == [5]
    assert report.values_stored == 1


def test_bulk_expect_new_falls_back_safely_when_a_key_exists(fleet):
    store, ids = fleet
    row = {"device_id": ids[DEV_A], "timestamp": pd.Timestamp("2025-03-01 10:00"), "cpu_percent": 1.0}
    assert insert_frame(store, "device_metrics", pd.DataFrame([row]), conflict=("device_id", "timestamp")) == 1
    both = pd.DataFrame([row | {"cpu_percent": 2.0}, row | {"timestamp": pd.Timestamp("2025-03-01 10:05")}])
    stored = insert_frame(store, "device_metrics", both, conflict=("device_id", "timestamp"), expect_new=True)
    assert stored == 1 and _rows(store) == 2
    assert load_metrics(store, metrics=["cpu_percent"])["value"].tolist() == [1.0, 1.0]
