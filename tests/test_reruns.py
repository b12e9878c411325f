"""Changing one setting reruns exactly the stages that depend on it (real Snakemake, real model)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from snakemake_runner import TEST_CONFIG, executed_rules, link_or_copy, planned_jobs, printed, snakemake, write_config

from steerid.pipeline.stages import read_scores
from steerid.prompts import load_trait

pytestmark = pytest.mark.workflow

BASE = yaml.safe_load(TEST_CONFIG.read_text())
# Generations of E1 and E7 (two environments each) use alpha; E2 sweeps its own strengths; E4 steers teacher-forced.
AFTER_ALPHA = {
    "evaluate": 4,
    "score": 4,
    "stats_e1": 1,
    "stats_e3": 1,
    "stats_e5": 1,
    "stats_e7": 1,
    "logit_distance": 1,
    "figure": 5,
    "summary": 1,
    "all": 1,
}
AFTER_SCORER = {
    "validate_scorer": 1,
    "score": 5,
    "stats_e1": 1,
    "stats_e2": 1,
    "stats_e3": 1,
    "stats_e5": 1,
    "stats_e7": 1,
    "figure": 5,
    "summary": 1,
    "all": 1,
}
# A new steering layer: everything at that layer (not the survey layer 8, the prompts, the model or the scorer check).
AFTER_LAYER = {
    "dump_contrast": 2,
    "steering_vectors": 2,
    "export_vector": 2,
    "dump_background": 1,
    "covariance": 1,
    "spectrum": 1,
    "jacobian": 1,
    "perturbations": 1,
    "evaluate": 5,
    "score": 5,
    "stats_e1": 1,
    "stats_e2": 1,
    "stats_e3": 1,
    "stats_e5": 1,
    "stats_e7": 1,
    "logit_distance": 1,
    "null_space": 1,
    "recovery": 1,
    "sparsity": 1,
    "independence": 1,
    "figure": 10,
    "summary": 1,
    "all": 1,
}


def with_change(section: str, key: str, value) -> dict:
    return {section: {**BASE[section], key: value}}


CHANGES = {
    "figure-style": (with_change("figures", "dpi", 90), {"figure": 10, "all": 1}),
    "scorer": (with_change("scoring", "sentiment", "minilm-labels"), AFTER_SCORER),
    # a fitted scorer's validation record is an input of every score job: the same stages rerun
    "fitted-scorer": (with_change("scoring", "sentiment", "minilm-probe"), AFTER_SCORER),
    "alpha": (with_change("steering", "alpha", 2.0), AFTER_ALPHA),
    # auto reads E2's finished stats: the same fixed-α stages rerun, E2 itself does not.
    "alpha-auto": (with_change("steering", "alpha", "auto"), AFTER_ALPHA),
    "layer": ({"models": {"smollm2-135m": {**BASE["models"]["smollm2-135m"], "layer": 10}}}, AFTER_LAYER),
    "nothing": ({}, {}),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_dry_run_plans_exactly_the_dependent_stages(run, tmp_path, change):
    changes, expected = CHANGES[change]
    config = write_config(tmp_path, **changes)
    result = snakemake(run, "--configfile", str(config), "--cores", "2", "-n")
    assert result.returncode == 0, printed(result)[-3000:]
    assert planned_jobs(result.stdout + result.stderr) == expected


def test_real_rerun_after_alpha_change_runs_only_the_generations_that_use_it(run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(run, workdir, copy_function=link_or_copy)
    config = write_config(tmp_path, **with_change("steering", "alpha", 2.0))
    result = snakemake(workdir, "--configfile", str(config), "--cores", "2")
    assert result.returncode == 0, printed(result)[-3000:]
    executed = executed_rules(result.stdout + result.stderr)
    assert {rule: executed.count(rule) for rule in set(executed)} == AFTER_ALPHA
    again = snakemake(workdir, "--configfile", str(config), "--cores", "2", "-n")
    assert planned_jobs(again.stdout + again.stderr) == {}


# A likelihood-scored trait added to a finished study: its own chain (no generations: no E2, E3 or E4),
# the cross-trait summary and the figures that gain a cell; never the other trait's stages.
AFTER_TRUTHFULNESS = {
    "prompts": 1,
    "dump_contrast": 1,
    "steering_vectors": 1,
    "export_vector": 2,
    "jacobian": 2,
    "perturbations": 1,
    "validate_scorer": 1,
    "score_statements": 2,
    "stats_e1": 1,
    "stats_e5": 1,
    "stats_e7": 1,
    "null_space": 1,
    "recovery": 1,
    "sparsity": 1,
    "independence": 1,
    "figure": 7,
    "summary": 1,
    "all": 1,
}


def test_adding_truthfulness_runs_its_likelihood_chain_only(run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(run, workdir, copy_function=link_or_copy)
    config = write_config(
        tmp_path, traits=[*BASE["traits"], "truthfulness"], scoring={**BASE["scoring"], "truthfulness": "likelihood"}
    )
    result = snakemake(workdir, "--configfile", str(config), "--cores", "2")
    assert result.returncode == 0, printed(result)[-3000:]
    executed = executed_rules(result.stdout + result.stderr)
    assert {rule: executed.count(rule) for rule in set(executed)} == AFTER_TRUTHFULNESS

    e1 = json.loads((workdir / "results/smollm2-135m/stats/e1/L15/truthfulness.json").read_text())
    validation = json.loads((workdir / "results/smollm2-135m/validation/truthfulness.json").read_text())
    assert e1["environments"] == ["statements"] and e1["n_samples"] == 1
    assert e1["n_prompts"] == validation["n"] == len(load_trait("truthfulness").statements)
    # The E1 baseline is the unsteered model on the same statements the validation scored.
    scores, attrs = read_scores(str(workdir / "results/smollm2-135m/scores/e1/L15/truthfulness/statements.h5"))
    assert attrs["positions"] == "all"
    assert scores["baseline"].mean() == pytest.approx(validation["mean_preference"], rel=1e-5)
    assert (scores["baseline"] > 0).mean() == pytest.approx(validation["auroc"], abs=1 / (2 * validation["n"]))
    assert not np.allclose(scores["v"], scores["baseline"])
    summary = (workdir / "results/summary.md").read_text()
    assert "smollm2-135m/truthfulness" in summary and "statement pairs" in summary
