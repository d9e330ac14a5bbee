"""query_metric and compare_metric: numbers checked against pandas over the rows written."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from test_tools_fleet_fixture import NOW, build_fleet, window_values
from tools.config import load_settings
from tools.metric_tools import rnd
from tools.registry import ToolContext, call_tool


@pytest.fixture
def env(store):
    fleet = build_fleet(store)
    ctx = ToolContext(store, load_settings().replace(now=NOW.isoformat()), audit=False)
    return ctx, fleet


YESTERDAY = (datetime(2024, 5, 14), datetime(2024, 5, 15))
CAMDEN = [1, 2, 3, 4]


def test_average_cpu_at_a_site_yesterday(env) -> None:
    ctx, fleet = env
    r = call_tool(ctx, "query_metric", {"metric": "cpu", "scope": "site", "target": "camden", "window": "yesterday"})
    expected = window_values(fleet, *YESTERDAY, CAMDEN)["cpu_percent"]
    assert r.status == "ok"
    assert r.data["value"] == rnd(expected.mean())
    assert r.data["samples"] == len(expected) == 96
    assert str(r.data["value"]) in r.summary and "Camden High St" in r.summary


@pytest.mark.parametrize("agg,fn", [("min", "min"), ("max", "max"), ("sum", "sum"), ("count", "count")])
def test_aggregations_match_pandas(env, agg: str, fn: str) -> None:
    ctx, fleet = env
    r = call_tool(ctx, "query_metric", {"metric": "latency", "agg": agg, "window": "last_7d"})
    expected = getattr(window_values(fleet, NOW - timedelta(days=7), NOW)["network_latency_ms"], fn)()
    assert r.data["value"] == rnd(expected)


def test_p95_matches_pandas_quantile(env) -> None:
    ctx, fleet = env
    r = call_tool(ctx, "query_metric", {"metric": "cpu", "agg": "p95", "scope": "device_type", "target": "tills"})
    values = window_values(fleet, NOW - timedelta(hours=24), NOW, [1, 2, 5, 6, 8, 10])["cpu_percent"]
    # PostgreSQL's percentile_cont and pandas' linear quantile agree
    assert r.data["value"] == rnd(values.quantile(0.95))


def test_extra_metric_from_json(env) -> None:
    ctx, fleet = env
    r = call_tool(ctx, "query_metric", {"metric": "temp", "scope": "device", "target": "Camden Gateway", "window": "last_7d"})
    temps = window_values(fleet, NOW - timedelta(days=7), NOW, [4])["extra_metrics"].map(lambda e: e["temperature_celsius"])
    assert r.params["metric"] == "temperature_celsius"
    assert r.data["value"] == rnd(temps.mean()) and r.data["samples"] == len(temps)


def test_top_n_ranking_by_device(env) -> None:
    ctx, fleet = env
    r = call_tool(ctx, "query_metric", {"metric": "card reader errors", "agg": "sum", "group_by": "device",
                                        "top_n": 3, "window": "last_7d"})
    m = window_values(fleet, NOW - timedelta(days=7), NOW)
    m = m[m["extra_metrics"].map(lambda e: "card_reader_errors" in e)]
    sums = m.assign(v=m["extra_metrics"].map(lambda e: e["card_reader_errors"])).groupby("device_id")["v"].sum()
    names = fleet.devices.set_index("id")["name"]
    expected = sums.sort_values(ascending=False).head(3)
    assert [row["value"] for row in r.data] == [rnd(v) for v in expected.values]
    by_name = {names[i]: rnd(v) for i, v in sums.items()}
    assert all(by_name[row["device"]] == row["value"] for row in r.data)  # each name carries its own total
    assert r.truncated and r.rows == 3


def test_daily_buckets(env) -> None:
    ctx, fleet = env
    r = call_tool(ctx, "query_metric", {"metric": "transactions", "agg": "sum", "bucket": "day", "window": "last_7d"})
    m = window_values(fleet, NOW - timedelta(days=7), NOW)
    expected = m.groupby(m["timestamp"].dt.floor("D"))["transaction_count"].sum()
    assert [row["bucket"] for row in r.data] == [ts.strftime("%Y-%m-%d %H:%M:%S") for ts in expected.index]
    assert [row["value"] for row in r.data] == [rnd(v) for v in expected.values]


def test_weekly_buckets_start_on_monday(env) -> None:
    ctx, _ = env
    r = call_tool(ctx, "query_metric", {"metric": "cpu", "bucket": "week", "window": "last_7d"})
    assert {pd.Timestamp(row["bucket"]).weekday() for row in r.data} == {0}


def test_group_by_site_lowest_first(env) -> None:
    ctx, fleet = env
    r = call_tool(ctx, "query_metric", {"metric": "cpu", "group_by": "site", "order": "asc"})
    m = window_values(fleet, NOW - timedelta(hours=24), NOW).merge(fleet.devices[["id", "site_id"]], left_on="device_id", right_on="id")
    expected = m.groupby("site_id")["cpu_percent"].mean().sort_values()
    assert [row["value"] for row in r.data] == [rnd(v) for v in expected.values]


def test_latest_is_each_devices_newest_reading(env) -> None:
    ctx, fleet = env
    r = call_tool(ctx, "query_metric", {"metric": "cpu", "agg": "latest", "scope": "site", "target": "brixton"})
    m = fleet.metrics[fleet.metrics["device_id"].isin([5, 6, 7])]
    newest = m.sort_values("timestamp").groupby("device_id").tail(1).set_index("device_id")["cpu_percent"]
    got = {row["device_id"]: row["value"] for row in r.data}
    pub = fleet.devices.set_index("id")["device_id"]
    assert got == {pub[i]: rnd(v) for i, v in newest.items()}


def test_no_data_says_what_was_searched(env) -> None:
    ctx, _ = env
    r = call_tool(ctx, "query_metric", {"metric": "cpu", "window": "last_month"})
    assert r.status == "no_data" and "cpu_percent" in r.summary and "2024-04-01" in r.summary


def test_unknown_site_is_an_error_listing_sites(env) -> None:
    ctx, _ = env
    r = call_tool(ctx, "query_metric", {"metric": "cpu", "scope": "site", "target": "Atlantis"})
    assert r.status == "error" and "closest sites" in r.error


def test_compare_two_sites(env) -> None:
    ctx, fleet = env
    r = call_tool(ctx, "compare_metric", {"metric": "error rate", "scope_a": "site", "target_a": "camden",
                                          "scope_b": "site", "target_b": "brixton", "window": "last_7d"})
    m = window_values(fleet, NOW - timedelta(days=7), NOW)
    a = m[m["device_id"].isin(CAMDEN)]["error_rate"].mean()
    b = m[m["device_id"].isin([5, 6, 7])]["error_rate"].mean()
    assert r.data["a"]["value"] == rnd(a) and r.data["b"]["value"] == rnd(b)
    assert r.data["difference"] == rnd(rnd(a) - rnd(b))
    assert r.data["percent_difference"] == round((rnd(a) - rnd(b)) / rnd(b) * 100, 2)
    assert "lower" in r.summary


def test_compare_with_previous_period(env) -> None:
    ctx, fleet = env
    r = call_tool(ctx, "compare_metric", {"metric": "cpu", "scope_a": "site", "target_a": "camden", "window": "today"})
    today = window_values(fleet, datetime(2024, 5, 15), NOW, CAMDEN)["cpu_percent"].mean()
    yday = window_values(fleet, *YESTERDAY, CAMDEN)["cpu_percent"].mean()
    assert r.data["mode"] == "periods"
    assert (r.data["a"]["value"], r.data["b"]["value"]) == (rnd(today), rnd(yday))
    assert r.data["b"]["window"] == "yesterday"
