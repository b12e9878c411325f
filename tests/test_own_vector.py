"""A researcher's own vector and trait through every experiment: repeng's GGUF file, the example trait file.

The vector is examples/vectors/refusal-smollm2-135m.gguf, trained and exported by repeng itself
(examples/make_refusal_vector.py); the trait is examples/traits/refusal.json. The run adds them to a
copy of the finished test study, so the model, background dump and spectra are reused, and
exactly the trait's own chain runs. It steers at two of the file's layers at once (12 and 15), as the
control vector is meant to be applied: v is the file's direction at each, every δ is one δ_ℓ per layer.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import yaml
from snakemake_runner import REPO, TEST_CONFIG, copy_study, executed_rules, planned_jobs, printed, snakemake

from steerid import store
from steerid.cli import main
from steerid.experiments import EXPERIMENTS
from steerid.interchange import export_vector, read_vector
from steerid.pipeline.config_checks import ConfigError, check_config
from steerid.pipeline.study_config import DEFAULT_PROMPT_COUNTS

MODEL, LAYER, TRAIT = "smollm2-135m", 15, "refusal"
# The study's steering site: two of the file's three layers.
SITE, SITE_LABEL = (12, 15), "12+15"
VECTOR = REPO / "examples" / "vectors" / "refusal-smollm2-135m.gguf"
TRAIT_FILE = REPO / "examples" / "traits" / "refusal.json"
STRENGTH = 0.2
BASE = yaml.safe_load(TEST_CONFIG.read_text())
IMPORT = {TRAIT: {"file": str(VECTOR), "strength": STRENGTH}}

# The three keys a researcher writes (README, "Test your own vector"); everything else is a default.
MINIMAL = {
    "models": {MODEL: {"spec": MODEL, "layer": LAYER, "vectors": IMPORT}},
    "traits": [TRAIT],
    "trait_files": {TRAIT: str(TRAIT_FILE)},
}
# The trait's chain at both layers of the site (Jacobians and E8 also of the site as one), and of the rest
# only the background, covariance and spectrum of layer 12, which the finished study (layers 8 and 15) lacks.
OWN_CHAIN = {
    "prompts": 1,
    "dump_background": 1,
    "covariance": 1,
    "spectrum": 1,
    "dump_contrast": 2,
    "steering_vectors": 2,
    "stack_vectors": 1,
    "export_vector": 2,
    "jacobian": 4,
    "perturbations": 1,
    "validate_scorer": 1,
    "evaluate": 5,
    "score": 5,
    "stats_e1": 1,
    "stats_e2": 1,
    "stats_e3": 1,
    "stats_e5": 1,
    "stats_e7": 1,
    "logit_distance": 1,
    "null_space": 1,
    "recovery": 3,
    "sparsity": 2,
    "independence": 2,
    "figure": 10,
    "summary": 1,
    "all": 1,
}


SCHEMA = REPO / "schemas" / "config.schema.yaml"


def _problems(config: dict) -> list[str]:
    with pytest.raises(ConfigError) as err:
        check_config(copy.deepcopy(config), SCHEMA)
    return err.value.problems


def _with_import(**entry) -> dict:
    config = copy.deepcopy(MINIMAL)
    config["models"][MODEL]["vectors"][TRAIT].update(entry)
    return config


def test_the_minimal_config_passes_the_parse_time_checks():
    config = copy.deepcopy(MINIMAL)
    assert check_config(config, SCHEMA) == []
    assert config["models"][MODEL]["vectors"][TRAIT] == {
        "file": str(VECTOR),
        "format": None,
        "index_means": None,
        "strength": STRENGTH,
        "allow_model_mismatch": False,
    }


def test_a_vector_for_a_layer_the_file_lacks_is_named_before_any_job():
    config = copy.deepcopy(MINIMAL)
    config["models"][MODEL]["layer"] = 10
    (line,) = _problems(config)
    assert line.startswith(f"config models.{MODEL}.vectors.{TRAIT}.file = {str(VECTOR)!r}")
    assert "no direction for layers [10]" in line and "it has layers [12, 15, 18]" in line


def test_a_site_needs_the_files_direction_at_each_of_its_layers():
    config = copy.deepcopy(MINIMAL)
    config["models"][MODEL]["layer"] = [12, 15, 18]
    assert check_config(copy.deepcopy(config), SCHEMA) == []
    config["models"][MODEL]["layer"] = [12, 14]
    (line,) = _problems(config)
    assert "no direction for layers [14]" in line and line.endswith("expected a vector file that can steer layer 12+14")


def test_a_vector_of_another_width_is_named_before_any_job(tmp_path):
    wide = tmp_path / "wide.gguf"
    export_vector({LAYER: np.ones(640, np.float32)}, wide, model_hint="llama")
    (line,) = _problems(_with_import(file=str(wide)))
    assert "width 640 but the model's hidden size is 576" in line


def test_a_vector_made_for_another_architecture_is_an_error_unless_allowed(tmp_path):
    other = tmp_path / "gemma.gguf"
    export_vector({LAYER: np.ones(576, np.float32)}, other, model_hint="gemma3_text")
    (line,) = _problems(_with_import(file=str(other)))
    assert "model hint is 'gemma3_text' but the model is a 'llama'" in line
    warnings = check_config(_with_import(file=str(other), allow_model_mismatch=True), SCHEMA)
    assert len(warnings) == 1 and "gemma3_text" in warnings[0]


def test_a_missing_vector_file_and_a_vector_for_no_studied_trait_are_named(tmp_path):
    (line,) = _problems(_with_import(file=str(tmp_path / "absent.gguf")))
    assert line.endswith("expected a vector file that can steer layer 15") and "no such file" in line
    config = copy.deepcopy(MINIMAL)
    config["models"][MODEL]["vectors"]["honesty"] = {"file": str(VECTOR)}
    (line,) = _problems(config)
    assert line.startswith(f"config models.{MODEL}.vectors.honesty = {str(VECTOR)!r}: 'honesty' is not a trait")


def test_init_writes_a_config_that_passes_the_checks_and_plans_the_study(tmp_path, capsys):
    output = tmp_path / "study.yaml"
    arguments = ["--vector", str(VECTOR), "--trait-file", str(TRAIT_FILE), "-o", str(output)]
    assert main(["init", "--model", MODEL, "--strength", str(STRENGTH), *arguments]) == 0
    config = yaml.safe_load(output.read_text())
    assert config["models"][MODEL]["layer"] == LAYER and config["models"][MODEL]["vectors"] == IMPORT
    assert config["traits"] == [TRAIT] and config["trait_files"] == {TRAIT: str(TRAIT_FILE)}
    assert check_config(config, SCHEMA) == []
    assert main(["init", "--model", MODEL, *arguments]) == 1
    assert "exists" in capsys.readouterr().err


def test_init_steers_several_of_the_files_layers_or_all_of_them(tmp_path, capsys):
    arguments = ["--model", MODEL, "--vector", str(VECTOR), "--trait-file", str(TRAIT_FILE)]
    for layer, site in (("12+15", [12, 15]), ("all", [12, 15, 18])):
        output = tmp_path / f"{layer}.yaml"
        assert main(["init", *arguments, "--layer", layer, "-o", str(output)]) == 0
        config = yaml.safe_load(output.read_text())
        assert config["models"][MODEL]["layer"] == site and check_config(config, SCHEMA) == []
    assert main(["init", *arguments, "--layer", "12+14", "-o", str(tmp_path / "bad.yaml")]) == 1
    assert "--layer 12+14 has no direction in the file at [14]" in capsys.readouterr().err


def test_inits_prompt_defaults_are_the_schemas():
    prompts = yaml.safe_load(SCHEMA.read_text())["properties"]["prompts"]["properties"]
    assert {key: prompts[key]["default"] for key in DEFAULT_PROMPT_COUNTS} == DEFAULT_PROMPT_COUNTS


def test_init_refuses_a_vector_that_cannot_steer_the_model(tmp_path, capsys):
    arguments = ["--vector", str(VECTOR), "--trait-file", str(TRAIT_FILE), "-o", str(tmp_path / "study.yaml")]
    assert main(["init", "--model", "gemma3-270m", *arguments]) == 1
    assert "width 576 but the model's hidden size is 640" in capsys.readouterr().err
    assert main(["init", "--model", MODEL, "--layer", "3", *arguments]) == 1
    assert "--layer 3 has no direction" in capsys.readouterr().err
    assert not (tmp_path / "study.yaml").exists()


@pytest.mark.workflow
def test_a_model_a_vector_file_and_a_trait_file_plan_every_experiment(tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(MINIMAL))
    result = snakemake(tmp_path, "--configfile", str(config), "-n", "--cores", "2")
    assert result.returncode == 0, printed(result)[-3000:]
    planned = planned_jobs(printed(result))
    assert {experiment.rule for experiment in EXPERIMENTS.values()} <= set(planned)
    assert planned["export_vector"] == 2 and planned["summary"] == 1


@pytest.fixture(scope="module")
def own_study(run, tmp_path_factory):
    """The finished test study with its trait replaced by the imported refusal vector at two of its layers,
    run to the end."""
    workdir = copy_study(run, tmp_path_factory.mktemp("own") / "study")
    model = {**BASE["models"][MODEL], "layer": list(SITE), "vectors": IMPORT}
    config = {**BASE, **MINIMAL, "models": {MODEL: model}, "other_traits": []}
    path = workdir / "own.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(workdir, "--configfile", str(path), "--cores", "2")
    assert result.returncode == 0, printed(result)[-3000:]
    return workdir, executed_rules(printed(result))


@pytest.mark.workflow
def test_the_imported_study_runs_exactly_the_traits_chain(own_study):
    _, executed = own_study
    assert {rule: executed.count(rule) for rule in set(executed)} == OWN_CHAIN


@pytest.mark.workflow
def test_v_is_the_files_direction_at_each_layer_at_the_strength_asked_for(own_study):
    workdir, _ = own_study
    rows = []
    for layer in SITE:
        path = str(workdir / f"results/{MODEL}/vectors/L{layer}/{TRAIT}.h5")
        (v,) = store.read(path, "v")
        attrs = store.read_attrs(path)
        direction = read_vector(VECTOR).directions[layer].astype(np.float64)
        expected = direction / np.linalg.norm(direction) * STRENGTH * attrs["mean_residual_norm"]
        np.testing.assert_allclose(v, expected, rtol=1e-5)
        assert attrs["source_format"] == "gguf" and attrs["source_model_hint"] == "llama"
        rows.append(v)
    site = str(workdir / f"results/{MODEL}/vectors/L{SITE_LABEL}/{TRAIT}.h5")
    np.testing.assert_array_equal(store.read(site, "v")[0], np.stack(rows))
    assert json.loads(store.read_attrs(site)["layer"]) == list(SITE)


@pytest.mark.workflow
def test_every_delta_is_one_delta_per_layer_orthogonal_to_that_layers_v_at_its_norm(own_study):
    workdir, _ = own_study
    with store.open_complete(str(workdir / f"results/{MODEL}/perturbations/L{SITE_LABEL}/{TRAIT}.h5")) as handle:
        v = handle["v"][()]
        deltas = np.concatenate([handle[kind][()] for kind in ("orthogonal", "null", "top_variance", "top_gain")])
    assert v.shape == (2, 576) and deltas.shape[1:] == (2, 576)
    for row in range(len(SITE)):
        np.testing.assert_allclose(deltas[:, row] @ v[row], 0.0, atol=1e-6 * float(v[row] @ v[row]))
        np.testing.assert_allclose(np.linalg.norm(deltas[:, row], axis=-1), np.linalg.norm(v[row]), rtol=1e-6)


@pytest.mark.workflow
def test_the_site_is_steered_as_a_whole_and_its_layers_studied_one_by_one(own_study):
    workdir, _ = own_study
    generations = workdir / f"results/{MODEL}/generations/e1/L{SITE_LABEL}/{TRAIT}/in_distribution.jsonl"
    first = json.loads(generations.read_text().splitlines()[0])
    assert first["layer"] == list(SITE)
    e6 = json.loads((workdir / f"results/{MODEL}/stats/e6/{TRAIT}.json").read_text())
    assert [layer["layer"] for layer in e6["layers"]] == [8, *SITE]
    for name in ("e8", "e9", "e10"):
        for layer in SITE:
            record = json.loads((workdir / f"results/{MODEL}/stats/{name}/L{layer}/{TRAIT}.json").read_text())
            assert record["layer"] == layer, name
    e8 = json.loads((workdir / f"results/{MODEL}/stats/e8/L{LAYER}/{TRAIT}.json").read_text())
    assert [row["m"] for row in e8["layers"]] == [1, 2, 3]


@pytest.mark.workflow
def test_the_sites_joint_jacobian_is_studied_as_one_intervention(own_study):
    """E6 and E8 of the stacked shifts, cross-layer terms included: a (2d, 2d) gain, its inert set shrinking
    as environments are intersected (the joint Gram itself is tested against autograd in test_jacobian)."""
    workdir, _ = own_study
    e6 = json.loads((workdir / f"results/{MODEL}/stats/e6/{TRAIT}.json").read_text())
    (site,) = e6["sites"]
    assert site["layers"] == list(SITE) and site["size"] == 2 * 576
    e8 = {
        label: json.loads((workdir / f"results/{MODEL}/stats/e8/L{label}/{TRAIT}.json").read_text())
        for label in (*SITE, SITE_LABEL)
    }
    assert e8[SITE_LABEL]["layer"] == list(SITE) and e8[SITE_LABEL]["d"] == 2 * 576
    curve = [row["max_fraction"] for row in e8[SITE_LABEL]["environments"]]
    assert len(curve) == 2 and 0 < curve[1] <= curve[0] < 1
    assert e8[SITE_LABEL]["layers"] == e8[LAYER]["layers"]  # the cross-layer curve is the model's, whatever the cell


@pytest.mark.workflow
def test_every_stats_file_and_the_summary_name_the_vectors_source(own_study):
    workdir, _ = own_study
    source = f"imported from {VECTOR} (gguf, layers {SITE_LABEL})"
    for name in ("e1", "e2", "e3", "e5", "e7"):
        record = json.loads((workdir / f"results/{MODEL}/stats/{name}/L{SITE_LABEL}/{TRAIT}.json").read_text())
        assert record["vector_source"] == source and record["layer"] == list(SITE), name
    summary = (workdir / "results/summary.md").read_text()
    assert source in summary and f"{MODEL}/{TRAIT}" in summary


@pytest.mark.workflow
def test_the_own_traits_scorer_went_through_the_auroc_gate(own_study):
    workdir, _ = own_study
    validation = json.loads((workdir / f"results/{MODEL}/validation/{TRAIT}.json").read_text())
    assert validation["scorer"] == "minilm-exemplars" and validation["n"] > 0
    assert validation["valid"] == (validation["auroc"] >= validation["min_auroc"])


@pytest.mark.workflow
def test_the_exported_gguf_is_v_at_every_layer_of_the_site(own_study):
    workdir, _ = own_study
    (v,) = store.read(str(workdir / f"results/{MODEL}/vectors/L{SITE_LABEL}/{TRAIT}.h5"), "v")
    exported = read_vector(workdir / f"results/{MODEL}/vectors/L{SITE_LABEL}/{TRAIT}.gguf")
    assert exported.layers == list(SITE)
    for row, layer in enumerate(SITE):
        np.testing.assert_allclose(exported.directions[layer], v[row], rtol=1e-6)
