"""A researcher's own experiment is one module plus one config line: the workflow gives it a stats
rule, a figure and its claim in the summary, and reruns nothing else (real Snakemake, real model)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from snakemake_runner import TEST_CONFIG, copy_study, executed_rules, printed, snakemake, write_config

from steerid.experiments import EXPERIMENTS

pytestmark = pytest.mark.workflow

MODULES = Path(__file__).parent / "experiments"
MODEL, LAYER, TRAIT = "smollm2-135m", 15, "sentiment"


def test_a_registered_experiment_runs_its_chain_and_reaches_the_summary(run, tmp_path):
    workdir = copy_study(run, tmp_path / "study")
    base = yaml.safe_load(TEST_CONFIG.read_text())
    config = write_config(tmp_path, experiment_modules=["toy_experiment"])
    paths = {"PYTHONPATH": os.pathsep.join(filter(None, [str(MODULES), os.environ.get("PYTHONPATH")]))}
    targets = ["results/summary.md", "results/figures/toy.png"]
    result = snakemake(workdir, "--configfile", str(config), "--cores", "2", *targets, env=paths)
    assert result.returncode == 0, printed(result)[-3000:]
    executed = executed_rules(printed(result))
    # one stats job per studied trait (the toy reads E1's scores, which the likelihood trait has too)
    assert sorted(executed) == ["figure", *["stats_toy"] * len(base["traits"]), "summary"]
    stats = json.loads((workdir / f"results/{MODEL}/stats/toy/L{LAYER}/{TRAIT}.json").read_text())
    # −v steers the other way: the toy's claim holds on the real run.
    assert stats["shift"]["v"] * stats["shift"]["-v"] < 0 and stats["seed"] == base["seed"]
    summary = (workdir / "results/summary.md").read_text()
    assert "**Toy: v and −v move the score in opposite directions.**" in summary
    assert f"{MODEL}/{TRAIT}: v shifts {stats['shift']['v']:+.3f}" in summary
    assert (workdir / "results/figures/toy.png").read_bytes().startswith(b"\x89PNG")
    assert "toy" not in EXPERIMENTS  # registered only in the workflow's process


def test_an_unimportable_experiment_module_is_named_before_any_job(tmp_path):
    config = write_config(tmp_path, experiment_modules=["no_such_steerid_experiment"])
    result = snakemake(tmp_path, "--configfile", str(config), "--cores", "1", "-n")
    assert result.returncode != 0
    assert "config experiment_modules: cannot import 'no_such_steerid_experiment'" in printed(result)
    assert not (tmp_path / "results").exists()
