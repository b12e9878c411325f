"""Changing one setting reruns exactly the stages that depend on it (real Snakemake, real model)."""

from __future__ import annotations

import shutil

import pytest
import yaml
from snakemake_runner import (
    TEST_CONFIG,
    copy_study,
    executed_rules,
    planned_jobs,
    printed,
    snakemake,
    write_config,
)

from steerid.experiments import EXPERIMENTS

pytestmark = pytest.mark.workflow

BASE = yaml.safe_load(TEST_CONFIG.read_text())
# Generations of E1 and E7 (two environments each) use alpha; E2 sweeps its own strengths; E4 steers
# teacher-forced; truthfulness's E1 and E7 statement likelihoods (E5 reads E1's) steer at alpha too.
AFTER_ALPHA = {
    "evaluate": 4,
    "score": 4,
    "score_statements": 2,
    "stats_e1": 2,
    "stats_e3": 1,
    "stats_e5": 2,
    "stats_e7": 2,
    "logit_distance": 1,
    "figure": 5,
    "summary": 1,
    "all": 1,
}
# Only the generated trait's scorer changes: truthfulness's likelihood stages stay.
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
# A new steering layer: everything at that layer, for both traits and the perturbing one (not the survey
# layer 8's background, the prompts, the model or the scorer checks).
AFTER_LAYER = {
    "dump_contrast": 3,
    "steering_vectors": 3,
    "export_vector": 4,
    "dump_background": 1,
    "covariance": 1,
    "spectrum": 1,
    "jacobian": 2,
    "perturbations": 2,
    "evaluate": 5,
    "score": 5,
    "score_statements": 2,
    "stats_e1": 2,
    "stats_e2": 1,
    "stats_e3": 1,
    "stats_e5": 2,
    "stats_e7": 2,
    "logit_distance": 1,
    "null_space": 2,
    "recovery": 2,
    "sparsity": 2,
    "independence": 2,
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


# The generated trait's stats that steer at alpha, rerun for real (its generations are what an alpha
# change costs; the dry-run set above already holds the likelihood trait's statement scores).
GENERATED_AT_ALPHA = [
    EXPERIMENTS[name].target.format(model="smollm2-135m", layer=15, trait="sentiment")
    for name in ("e1", "e3", "e4", "e5", "e7")
]
AFTER_ALPHA_GENERATED = {
    "evaluate": 4,
    "score": 4,
    "stats_e1": 1,
    "stats_e3": 1,
    "stats_e5": 1,
    "stats_e7": 1,
    "logit_distance": 1,
}


def test_real_rerun_after_alpha_change_runs_only_the_generations_that_use_it(run, tmp_path):
    workdir = copy_study(run, tmp_path / "copy")
    config = write_config(tmp_path, **with_change("steering", "alpha", 2.0))
    result = snakemake(workdir, "--configfile", str(config), "--cores", "2", *GENERATED_AT_ALPHA)
    assert result.returncode == 0, printed(result)[-3000:]
    executed = executed_rules(result.stdout + result.stderr)
    assert {rule: executed.count(rule) for rule in set(executed)} == AFTER_ALPHA_GENERATED
    again = snakemake(workdir, "--configfile", str(config), "--cores", "2", "-n", *GENERATED_AT_ALPHA)
    assert planned_jobs(again.stdout + again.stderr) == {}


# A likelihood-scored trait's chain is its own (no generations: no E2, E3 or E4). With its outputs gone
# from the finished two-trait study, exactly that chain is planned again, with the cross-trait summary
# and the figures that hold its cells; never a stage of the generated trait.
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


def test_a_likelihood_traits_chain_is_its_own(run, tmp_path):
    workdir = copy_study(run, tmp_path / "copy")
    owned = sorted((workdir / "results").rglob("*truthfulness*"))
    assert owned, "the test study has no truthfulness outputs"
    for path in owned:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    result = snakemake(workdir, "--configfile", str(TEST_CONFIG), "--cores", "2", "-n")
    assert result.returncode == 0, printed(result)[-3000:]
    assert planned_jobs(result.stdout + result.stderr) == AFTER_TRUTHFULNESS
