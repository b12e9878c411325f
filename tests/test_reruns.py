"""Changing one setting reruns exactly the stages that depend on it (real Snakemake, real model)."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml
from snakemake_runner import TEST_CONFIG, executed_rules, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

BASE = yaml.safe_load(TEST_CONFIG.read_text())
AFTER_GENERATION = {"evaluate", "score", "stats", "figure_e1", "summary", "all"}
LAYER_STAGES = {"dump_contrast", "dump_background", "steering_vectors", "covariance", "spectrum", "perturbations"}


def with_change(section: str, key: str, value) -> dict:
    return {section: {**BASE[section], key: value}}


CHANGES = {
    "figure-style": (with_change("figures", "dpi", 90), {"figure_e1", "all"}),
    "scorer": (with_change("scoring", "sentiment", "minilm-labels"), {"score", "stats", "figure_e1", "summary", "all"}),
    "alpha": (with_change("steering", "alpha", 2.0), AFTER_GENERATION),
    "layer": ({"models": {"smollm2-135m": {"spec": "smollm2-135m", "layer": 10}}}, LAYER_STAGES | AFTER_GENERATION),
    "nothing": ({}, set()),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_dry_run_plans_exactly_the_dependent_stages(run, tmp_path, change):
    changes, expected = CHANGES[change]
    config = write_config(tmp_path, **changes)
    result = snakemake(run, "--configfile", str(config), "--cores", "2", "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    planned = planned_jobs(result.stdout + result.stderr)
    assert set(planned) == expected
    assert all(count == 1 for count in planned.values())


def link_or_copy(source: str, destination: str) -> None:
    """Hard-link outputs (steerid writes each to a new file and renames it into place, so the
    shared run is untouched); copy Snakemake's metadata and the logs, which are rewritten in place."""
    in_place = any(part in source.split(os.sep) for part in (".snakemake", "logs"))
    (shutil.copy2 if in_place else os.link)(source, destination)


def test_real_rerun_after_alpha_change_runs_only_generation_onwards(run, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(run, workdir, copy_function=link_or_copy)
    config = write_config(tmp_path, **with_change("steering", "alpha", 2.0))
    result = snakemake(workdir, "--configfile", str(config), "--cores", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(executed_rules(result.stdout + result.stderr)) == sorted(AFTER_GENERATION)
    again = snakemake(workdir, "--configfile", str(config), "--cores", "2", "-n")
    assert planned_jobs(again.stdout + again.stderr) == {}
