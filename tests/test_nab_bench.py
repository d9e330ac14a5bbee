"""``bench nab`` on a two-file miniature corpus: both protocols are scored and reported."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from evals.bench.nab import PROFILE_NAMES, run_nab


def _corpus(root: Path) -> None:
    rng = np.random.default_rng(7)
    windows = {}
    for k in range(2):
        n = 400
        ts = pd.date_range("2020-01-01", periods=n, freq="5min")
        x = 10 + 3 * np.sin(np.arange(n) * 2 * np.pi / 48) + rng.normal(0, 0.3, n)
        x[300 + 10 * k: 306 + 10 * k] += 25.0
        (root / "data" / "cat").mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": x}).to_csv(
            root / "data" / "cat" / f"f{k}.csv", index=False)
        windows[f"cat/f{k}.csv"] = [[str(ts[280 + 10 * k]) + ".000000", str(ts[320 + 10 * k]) + ".000000"]]
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))


def test_both_protocols_are_scored_and_labelled(tmp_path: Path) -> None:
    _corpus(tmp_path)
    out = run_nab(tmp_path, verify=False, workers=1)
    for p in PROFILE_NAMES:
        assert -100.0 <= out[p] <= 100.0
        assert -100.0 <= out[f"causal_{p}"] <= 100.0
    # a 25-sigma burst in each window: the NAB-protocol detector finds both, early
    assert out["standard"] > 50.0
    assert out["protocol"] == "nab" and "min/max" in out["protocol_note"]
    assert out["files"] == 2 and out["windows"] == 2 and out["rows"] == 800
    assert out["seconds"] >= 0.0
