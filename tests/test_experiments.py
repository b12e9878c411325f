"""The experiment registry: one record per experiment, in the paper's order, with names the workflow can use."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
import yaml
from snakemake_runner import REPO, TEST_CONFIG

from steerid import experiments
from steerid.experiments import EXPERIMENTS, by_rule, register, scored
from steerid.experiments.settings import EndpointSettings, Equivalence, config_keys, config_values
from steerid.pipeline import workflow
from steerid.pipeline.config_checks import validate_schema


def test_the_registry_holds_the_papers_experiments_in_order():
    assert list(EXPERIMENTS) == [f"e{i}" for i in range(1, 11)]
    assert [e.rule for e in scored()] == ["stats_e1", "stats_e2", "stats_e3", "stats_e5", "stats_e7"]
    assert {e.scores.condition_set for e in scored()} == {"e1", "e2", "e7"}


def test_targets_are_per_steering_site_per_steered_layer_or_per_model():
    assert EXPERIMENTS["e1"].target == "results/{model}/stats/e1/L{layer}/{trait}.json"
    assert EXPERIMENTS["e6"].target == "results/{model}/stats/e6/{trait}.json"
    scopes = {name: experiment.scope for name, experiment in EXPERIMENTS.items()}
    assert {name for name, scope in scopes.items() if scope == "layer"} == {"e9", "e10"}
    assert scopes["e8"] == "layers_and_site"
    assert {name for name, scope in scopes.items() if scope == "model"} == {"e6"}


def test_rules_map_back_to_their_experiment():
    assert by_rule("null_space") is EXPERIMENTS["e6"]
    with pytest.raises(KeyError, match="no experiment is written by rule 'stats_e9'"):
        by_rule("stats_e9")


def test_a_clashing_or_badly_named_experiment_is_refused():
    with pytest.raises(ValueError, match="clashes with 'e1'"):
        register(dataclasses.replace(EXPERIMENTS["e1"], rule="stats_other"))
    with pytest.raises(ValueError, match="clashes with 'e1'"):
        register(dataclasses.replace(EXPERIMENTS["e1"], name="other"))
    with pytest.raises(ValueError, match="experiment name 'E 9' must match"):
        register(dataclasses.replace(EXPERIMENTS["e1"], name="E 9", rule="stats_e9"))
    assert list(EXPERIMENTS) == [f"e{i}" for i in range(1, 11)]


def test_an_unimportable_module_is_named():
    with pytest.raises(ImportError, match="config experiment_modules: cannot import 'no_such_module_here'"):
        experiments.load(["no_such_module_here"])


def test_every_setting_names_a_key_of_the_schema():
    config = yaml.safe_load(TEST_CONFIG.read_text())
    assert validate_schema(config, yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())) == []
    for experiment in EXPERIMENTS.values():
        values = config_values(experiment.settings, config)
        assert set(values) == set(config_keys(experiment.settings) if experiment.settings else {})
        assert None not in values.values(), experiment.name


def test_stage_settings_are_built_from_the_rules_flat_params():
    params = {"n_boot": 200, "seed": 7, "margin_sd": 0.2, "extra": 1}
    assert workflow.settings(Equivalence, params, "here") == Equivalence(n_boot=200, seed=7, margin_sd=0.2)
    with pytest.raises(TypeError, match=r"here: settings EndpointSettings need \['margin_effect', 'n_perm'\]"):
        workflow.settings(EndpointSettings, params, "here")


def test_the_snakefiles_imports_leave_the_model_stack_unloaded():
    # Every Snakemake start and every cluster job parses the Snakefile; torch and transformers cost
    # it about 6 s there, and only model jobs need them.
    snakefile_imports = "; ".join(
        line.strip()
        for path in (REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk")))
        for line in path.read_text().splitlines()
        if line.startswith(("import ", "from ")) and "steerid" in line
    )
    code = f"import sys; {snakefile_imports}; print(sorted({{'torch', 'transformers'}} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "steerid.experiments" in snakefile_imports
    assert result.stdout.strip() == "[]"
