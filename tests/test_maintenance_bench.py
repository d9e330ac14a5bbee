"""The PdM benchmark's survival data and its JSON contract (skips without ../shared/benchmarks)."""

from __future__ import annotations

import json

import pytest

from tools.config import load_settings


@pytest.fixture
def pdm_dir():
    folder = load_settings().benchmarks_dir / "azure_pdm"
    if not (folder / "PdM_maint.csv").is_file():
        pytest.skip(f"Azure PdM data not found at {folder}; set HOMEPOT_AI_BENCHMARKS_DIR")
    return folder


def test_spells_match_the_readme_counts(pdm_dir) -> None:
    from tools.maintenance.pdm import build_spells, load_pdm

    spells = build_spells(load_pdm(pdm_dir))
    # README: 743 failure-ended spells; spells never overlap within a (machine, component)
    assert 700 <= int(spells["event"].sum()) <= 761
    assert (spells["duration_days"] > 0).all()
    nxt = spells.groupby(["machineID", "comp"])["start"].shift(-1)
    assert (spells["stop"][nxt.notna()] == nxt[nxt.notna()]).all()


def test_time_split_censors_training_at_the_cutoff(pdm_dir) -> None:
    import pandas as pd

    from tools.maintenance.pdm import build_spells, load_pdm, time_split

    cutoff = pd.Timestamp("2015-08-01")
    train, test = time_split(build_spells(load_pdm(pdm_dir)), cutoff)
    assert (train["stop"] <= cutoff).all() and (test["start"] >= cutoff).all()


def test_bench_pdm_json_beats_kaplan_meier(pdm_dir) -> None:
    from click.testing import CliRunner

    from evals.bench.pdm import command

    out = CliRunner().invoke(command, ["--json"])
    assert out.exit_code == 0, out.output
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"c_index", "integrated_brier", "models", "comparability"} <= set(r)
    assert r["c_index"] > 0.55
    assert r["integrated_brier"] < r["models"]["kaplan_meier"]["integrated_brier"]
