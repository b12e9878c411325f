"""steering.alpha: auto: E2's operating point, chosen once and steered at by every fixed-α job."""

from __future__ import annotations

import json

import pytest
import yaml
from snakemake_runner import TEST_CONFIG, copy_study, executed_rules, printed, snakemake, write_config

from steerid.operating_point import NATURAL_NORM, OperatingPoint, choose, resolve
from steerid.pipeline.results import read_generations

MODEL, LAYER, TRAIT = "smollm2-135m", 15, "sentiment"


def row(alpha: float, operational: bool, per_alpha: float = 9.5) -> dict:
    return {"alpha": alpha, "alpha_in_v_norms": alpha * per_alpha, "operational": operational}


def test_the_strongest_operational_alpha_is_chosen_in_v_norms():
    point = choose([row(0.05, False), row(0.1, True), row(0.2, True), row(0.4, False)], "mean residual norm")
    assert point.alpha == pytest.approx(1.9)
    assert "α = 0.2 × mean residual norm" in point.source


def test_a_sweep_without_an_operational_alpha_falls_back_to_the_natural_norm_and_says_so():
    point = choose([row(0.1, False), row(0.4, False)], "‖v‖")
    assert point.alpha == NATURAL_NORM
    assert "no swept α" in point.source


def test_resolve_keeps_a_fixed_alpha_and_sweeps_none(tmp_path):
    assert resolve(2.0) == OperatingPoint(2.0, "steering.alpha")
    assert resolve(None) is None
    assert resolve("auto").alpha == NATURAL_NORM  # a likelihood-scored trait: no sweep
    with pytest.raises(ValueError, match="'strong' is neither a number nor 'auto'"):
        resolve("strong")


def test_resolve_reads_the_operating_point_e2_recorded(tmp_path):
    stats = tmp_path / "e2.json"
    stats.write_text(json.dumps({"operating_point": {"alpha": 0.95, "source": "auto: E2's strongest"}}))
    assert resolve("auto", str(stats)) == OperatingPoint(0.95, "auto: E2's strongest")
    stats.write_text(json.dumps({"by_alpha": []}))
    with pytest.raises(ValueError, match="has no operating_point"):
        resolve("auto", str(stats))


@pytest.mark.workflow
def test_generations_at_auto_steer_at_the_alpha_e2_chose(run, tmp_path):
    workdir = copy_study(run, tmp_path / "copy")
    base = yaml.safe_load(TEST_CONFIG.read_text())
    config = write_config(tmp_path, steering={**base["steering"], "alpha": "auto"})
    target = f"results/{MODEL}/generations/e1/L{LAYER}/{TRAIT}/in_distribution.jsonl"
    result = snakemake(workdir, "--configfile", str(config), "--cores", "2", target)
    assert result.returncode == 0, printed(result)[-3000:]
    assert executed_rules(result.stdout + result.stderr) == ["evaluate"]  # E2's stats are reused as they are

    e2 = json.loads((workdir / f"results/{MODEL}/stats/e2/L{LAYER}/{TRAIT}.json").read_text())
    expected = choose(e2["by_alpha"], e2["alpha_units"])
    assert e2["operating_point"] == expected.to_dict()
    records = read_generations(str(workdir / target))
    assert {(r["alpha"], r["alpha_source"]) for r in records} == {(expected.alpha, expected.source)}
    fixed = read_generations(str(run / target))
    assert {r["alpha"] for r in fixed} == {base["steering"]["alpha"]}
    # Same prompts and noise; where the two strengths differ, the steered completions differ too.
    if expected.alpha != base["steering"]["alpha"]:
        steered = [(a["completion"], b["completion"]) for a, b in zip(records, fixed) if a["condition"] == "v"]
        assert any(a != b for a, b in steered)
