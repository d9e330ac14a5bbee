"""Scope, metric-name and time-window resolution: loose words in, exact keys out."""

from __future__ import annotations

from datetime import datetime

import pytest

from test_tools_fleet_fixture import NOW, build_fleet
from tools.scopes import (
    MetricNotFound,
    ScopeNotFound,
    match_names,
    resolve_device_type,
    resolve_metric,
    resolve_scope,
)
from tools.store.schema import NAMED_METRICS
from tools.timewindow import WINDOWS, WindowError, previous_period, resolve_window


@pytest.fixture
def fleet_store(sqlite_store):
    build_fleet(sqlite_store)
    return sqlite_store


def test_partial_case_insensitive_site_name_resolves(fleet_store) -> None:
    scope = resolve_scope(fleet_store, "site", "camden")
    assert scope.label == "Camden High St"
    assert scope.device_ids == [1, 2, 3, 4]
    assert scope.site_ids == [1]


def test_site_by_public_id_and_typo(fleet_store) -> None:
    assert resolve_scope(fleet_store, "site", "site-brxt-nmkt").label == "Brixton Market"
    assert resolve_scope(fleet_store, "site", "Brixtn Markt").label == "Brixton Market"


def test_unknown_site_lists_close_matches(fleet_store) -> None:
    with pytest.raises(ScopeNotFound) as err:
        resolve_scope(fleet_store, "site", "Soho Square")
    assert "closest sites" in str(err.value)
    assert len(err.value.suggestions) == 3


def test_ambiguous_device_name_is_reported_not_guessed(fleet_store) -> None:
    with pytest.raises(ScopeNotFound) as err:
        resolve_scope(fleet_store, "device", "camden till")
    assert "Camden Till 1" in str(err.value) and "Camden Till 2" in str(err.value)
    assert resolve_scope(fleet_store, "device", "camden till 2").device_ids == [2]


def test_device_by_public_id(fleet_store) -> None:
    scope = resolve_scope(fleet_store, "device", "DEVICE-SHRD-PLC1-AAAA")
    assert scope.device_ids == [9] and scope.device_type == "industrial_controller"


@pytest.mark.parametrize(
    "words,expected",
    [("POS", "pos_terminal"), ("tills", "pos_terminal"), ("terminals", "pos_terminal"),
     ("sensors", "iot_sensor"), ("controllers", "industrial_controller"), ("gateways", "gateway"),
     ("pos_terminal", "pos_terminal")],
)
def test_device_type_synonyms(words: str, expected: str) -> None:
    assert resolve_device_type(words) == expected


def test_device_type_scope_collects_devices(fleet_store) -> None:
    scope = resolve_scope(fleet_store, "device_type", "tills")
    assert scope.device_ids == [1, 2, 5, 6, 8, 10]
    assert scope.site_ids == [1, 2, 3]
    with pytest.raises(ScopeNotFound, match="not a device type"):
        resolve_scope(fleet_store, "device_type", "toasters")


def test_fleet_scope_and_missing_target(fleet_store) -> None:
    assert len(resolve_scope(fleet_store, "fleet").device_ids) == 10
    with pytest.raises(ScopeNotFound, match="needs a target"):
        resolve_scope(fleet_store, "site", None)


@pytest.mark.parametrize(
    "words,expected",
    [("temp", "temperature_celsius"), ("temperature", "temperature_celsius"), ("latency", "network_latency_ms"),
     ("cpu", "cpu_percent"), ("CPU usage", "cpu_percent"), ("card reader errors", "card_reader_errors"),
     ("error rate", "error_rate"), ("memory", "memory_percent"), ("disk", "disk_percent"),
     ("queue", "queue_depth"), ("transactions", "transaction_count"), ("sales", "transaction_volume"),
     ("revenue", "transaction_volume"), ("humidity", "humidity_percent"), ("packet loss", "packet_loss_percent"),
     ("cpu_percent", "cpu_percent"), ("network latency ms", "network_latency_ms")],
)
def test_metric_synonyms(words: str, expected: str) -> None:
    assert resolve_metric(NAMED_METRICS, words) == expected


def test_metric_names_are_discovered_from_data(fleet_store) -> None:
    assert resolve_metric(fleet_store, "temp") == "temperature_celsius"
    # the store has extra metrics, so names it does not hold are no longer offered
    with pytest.raises(MetricNotFound):
        resolve_metric(fleet_store, "humidity")


def test_unknown_metric_lists_choices() -> None:
    with pytest.raises(MetricNotFound) as err:
        resolve_metric(NAMED_METRICS, "flux capacitance")
    assert "cpu_percent" in str(err.value)


def test_named_windows_relative_to_now() -> None:
    now = NOW  # Wednesday 2024-05-15 12:00
    assert resolve_window("yesterday", now=now)[:2] == (datetime(2024, 5, 14), datetime(2024, 5, 15))
    assert resolve_window("this_week", now=now)[:2] == (datetime(2024, 5, 13), now)
    assert resolve_window("last_week", now=now)[:2] == (datetime(2024, 5, 6), datetime(2024, 5, 13))
    assert resolve_window("last_month", now=now)[:2] == (datetime(2024, 4, 1), datetime(2024, 5, 1))
    assert resolve_window("last_hour", now=now)[:2] == (datetime(2024, 5, 15, 11), now)
    assert resolve_window(None, now=now)[2] == "the last 24 hours"
    for name in WINDOWS:
        start, end, label = resolve_window(name, now=now)
        assert start < end <= now and label


def test_explicit_window_wins_and_bad_input_is_one_sentence() -> None:
    start, end, label = resolve_window("last_7d", "2024-05-01T00:00:00Z", "2024-05-02", now=NOW)
    assert (start, end) == (datetime(2024, 5, 1), datetime(2024, 5, 2))
    assert label == "2024-05-01 (UTC)"
    with pytest.raises(WindowError, match="before the end"):
        resolve_window(start="2024-05-03", end="2024-05-02", now=NOW)
    with pytest.raises(WindowError, match="ISO-8601"):
        resolve_window(start="last tuesday", now=NOW)
    with pytest.raises(WindowError, match="use one of"):
        resolve_window("fortnight", now=NOW)


def test_previous_period() -> None:
    start, end, _ = resolve_window("this_month", now=NOW)
    assert previous_period(start, end, "this_month")[:2] == (datetime(2024, 4, 1), datetime(2024, 5, 1))
    s, e, _ = resolve_window("last_7d", now=NOW)
    ps, pe, _ = previous_period(s, e, "last_7d")
    assert pe == s and pe - ps == e - s


def test_match_names_prefers_word_prefixes() -> None:
    names = ["Camden High St", "Camberwell Green", "Brixton Market"]
    assert match_names("camden", names) == ["Camden High St"]
    assert match_names("cam", names) == ["Camden High St", "Camberwell Green"]
