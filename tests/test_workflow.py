"""The whole DAG on the test config, with the real embedded model, run once and shared."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from snakemake_runner import TEST_CONFIG, snakemake, write_config

from steerid import store
from steerid.stats import VERDICTS

MODEL, LAYER, TRAIT = "smollm2-135m", 15, "sentiment"
pytestmark = pytest.mark.workflow


def results(run: Path, relative: str) -> Path:
    return run / "results" / relative


def test_summary_and_figure(run):
    summary = results(run, "summary.md").read_text()
    assert "## smollm2-135m" in summary and "| sentiment | 15 |" in summary
    assert "excluding_sinks" in summary and "all_tokens" in summary
    assert "v+orthogonal" in summary and "v+null" in summary and "v+top" in summary
    figure = results(run, "figures/e1_orthogonal.png").read_bytes()
    assert figure.startswith(b"\x89PNG") and len(figure) > 10_000


def test_activations_shapes_and_provenance(run):
    contrast = results(run, f"{MODEL}/activations/L{LAYER}/contrast-{TRAIT}.h5")
    positive, negative = store.read(contrast, "positive", "negative")
    assert positive.shape == negative.shape == (16, 576)
    assert np.isfinite(positive).all() and np.isfinite(negative).all()
    attrs = store.read_attrs(contrast)
    assert attrs["model"] == MODEL and attrs["layer"] == LAYER and attrs["architecture"] == "llama"
    assert len(attrs["params_sha256"]) == 64 and attrs["steerid_version"]


def test_background_is_token_level(run):
    path = results(run, f"{MODEL}/activations/L{LAYER}/background.h5")
    activations, position, text_index = store.read(path, "activations", "position", "text_index")
    assert activations.shape[1] == 576 and len(activations) == len(position) == len(text_index)
    assert set(np.unique(text_index)) == set(range(24))
    assert (position == 0).sum() == 24  # one first token per text


def test_covariances_equal_numpy_on_the_dump(run):
    activations, position = store.read(results(run, f"{MODEL}/activations/L{LAYER}/background.h5"), "activations", "position")
    path = results(run, f"{MODEL}/covariance/L{LAYER}.h5")
    for view, rows in (("all_tokens", slice(None)), ("excluding_sinks", position != 0)):
        covariance, mean = store.read(path, f"{view}/covariance", f"{view}/mean")
        selected = activations[rows].astype(np.float64)
        expected = np.cov(selected, rowvar=False)
        assert np.abs(covariance - expected).max() / np.abs(expected).max() < 1e-10
        np.testing.assert_allclose(mean, selected.mean(axis=0), rtol=1e-10, atol=1e-9)


def test_spectrum_views(run):
    with h5py.File(results(run, f"{MODEL}/spectra/L{LAYER}.h5")) as handle:
        assert handle.attrs["complete"]
        views = {view: dict(handle[view].attrs) for view in ("all_tokens", "excluding_sinks")}
        eigenvalues = handle["excluding_sinks/eigenvalues"][()]
        eigenvectors = handle["excluding_sinks/eigenvectors"][()]
    assert eigenvalues.shape == (576,) and eigenvectors.shape == (576, 576)
    assert np.all(np.diff(eigenvalues) <= 0)
    for attrs in views.values():
        for key in ("fraction_of_d_at_0.01_of_max", "fraction_of_d_at_0.05_of_max",
                    "fraction_of_d_for_0.99_of_variance", "fraction_of_d_for_0.999_of_variance"):
            assert 0 < attrs[key] <= 1
        assert 1 <= attrs["participation_ratio"] <= 576 and attrs["randomized_max_rel_error"] < 1e-2
    # The first-token attention sink dominates the raw spectrum; excluding it spreads the variance.
    assert views["all_tokens"]["top_eigenvalue_ratio"] > 10 * views["excluding_sinks"]["top_eigenvalue_ratio"]
    assert views["excluding_sinks"]["participation_ratio"] > views["all_tokens"]["participation_ratio"]
    assert views["all_tokens"]["count"] - views["excluding_sinks"]["count"] == 24


def test_perturbation_geometry(run):
    path = results(run, f"{MODEL}/perturbations/L{LAYER}/{TRAIT}.h5")
    v, orthogonal, null, top = store.read(path, "v", "orthogonal", "null", "top")
    assert orthogonal.shape == (2, 576) and null.shape == (1, 576) and top.shape == (1, 576)
    for deltas in (orthogonal, null, top):
        np.testing.assert_allclose(np.linalg.norm(deltas, axis=1), np.linalg.norm(v), rtol=1e-10)
        assert np.abs(deltas @ v).max() / np.linalg.norm(v) ** 2 < 1e-6
    (basis,) = store.read(results(run, f"{MODEL}/spectra/L{LAYER}.h5"), "excluding_sinks/eigenvectors")
    basis = basis.astype(np.float64)
    # null_fraction 0.5 → the 288 lowest-variance eigenvectors; top_k 8 → the 8 leading ones.
    for deltas, subspace in ((null, basis[:, -288:]), (top, basis[:, :8])):
        outside = deltas - (deltas @ subspace) @ subspace.T
        assert np.abs(outside).max() / np.linalg.norm(v) < 1e-5


def test_generations_cover_every_condition(run):
    lines = results(run, f"{MODEL}/generations/e1/L{LAYER}/{TRAIT}.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    conditions = {r["condition"] for r in records}
    assert conditions == {"baseline", "v", "orthogonal-0", "orthogonal-1", "null-0", "top-0"}
    assert len(records) == len(conditions) * 6 * 2
    assert all(r["n_tokens"] <= 12 for r in records)


def test_scores_and_stats(run):
    with h5py.File(results(run, f"{MODEL}/scores/e1/L{LAYER}/{TRAIT}.h5")) as handle:
        grids = {name: handle["scores"][name][()] for name in handle["scores"]}
    assert all(grid.shape == (6, 2) and np.isfinite(grid).all() for grid in grids.values())
    stats = json.loads(results(run, f"{MODEL}/stats/e1/L{LAYER}/{TRAIT}.json").read_text())
    assert set(stats["by_type"]) == {"v", "v+orthogonal", "v+null", "v+top"}
    for kind in ("v+orthogonal", "v+null", "v+top"):
        ratio = stats["by_type"][kind]["efficacy_ratio"]
        assert ratio["ci_low"] <= ratio["value"] <= ratio["ci_high"]
    equivalence = stats["equivalence"]
    assert equivalence["margin"] == pytest.approx(0.2 * grids["baseline"].std(ddof=1))
    for kind in ("v+orthogonal", "v+null", "v+top"):
        entry = equivalence["by_type"][kind]
        assert entry["verdict"] in VERDICTS and 0 <= entry["power"]["power"] <= 1 and entry["tost"]["n"] == 6
    expected_delta = grids["v"].mean() - grids["baseline"].mean()
    assert stats["by_type"]["v"]["delta"]["value"] == pytest.approx(expected_delta)


def test_logs_and_benchmarks_written(run):
    assert (run / "logs" / MODEL / f"L{LAYER}" / f"evaluate-{TRAIT}.log").read_text().strip()
    assert (run / "logs" / MODEL / f"L{LAYER}" / f"evaluate-{TRAIT}.benchmark.tsv").is_file()


def test_second_run_has_nothing_to_do(run):
    result = snakemake(run, "--configfile", str(TEST_CONFIG), "--cores", "2", "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_default_config_lists_the_whole_chain(tmp_path):
    result = snakemake(tmp_path, "-n", "--cores", "8", "--quiet", "rules")
    assert result.returncode == 0, result.stderr
    for rule in ("prepare_model", "prompts", "dump_contrast", "dump_background", "steering_vectors", "covariance",
                 "spectrum", "perturbations", "evaluate", "score", "stats", "figure_e1", "summary"):
        assert rule in result.stdout


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"traits": ["sentiment", "happiness"]}, "happiness"),
        ({"perturbations": {"n_orthogonal": -2}}, "-2"),
        ({"models": {"m": {"spec": "no/such/model/anywhere", "layer": 3}}}, "no/such/model/anywhere"),
        ({"colour": "blue"}, "colour"),
        ({"prompts": {"n_pairs": 16, "n_eval": 500, "environment": "in_distribution"}}, "n_eval=500"),
    ],
    ids=["unknown-trait", "negative-seeds", "unresolvable-model", "unknown-key", "too-many-eval-prompts"],
)
def test_bad_config_fails_at_parse_time(tmp_path, changes, named):
    result = snakemake(tmp_path, "--configfile", str(write_config(tmp_path, **changes)), "-n", "--cores", "1")
    assert result.returncode != 0
    assert named in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_unfetchable_hub_model_fails_in_the_first_rule(tmp_path):
    config = write_config(tmp_path, models={"ghost": {"spec": "steerid-test/no-such-model", "layer": 1}})
    result = snakemake(tmp_path, "--configfile", str(config), "--cores", "1", "resources/models/ghost")
    assert result.returncode != 0
    log = (tmp_path / "logs" / "ghost" / "prepare_model.log").read_text()
    assert "'steerid-test/no-such-model'" in log and "could not be fetched" in log
    assert not (tmp_path / "resources" / "models" / "ghost" / "model.json").exists()


def test_second_workflow_takes_cacheable_stages_from_the_cache(run, output_cache, tmp_path):
    targets = [f"results/{MODEL}/spectra/L{LAYER}.h5", f"results/{MODEL}/activations/L{LAYER}/contrast-{TRAIT}.h5"]
    result = snakemake(tmp_path, "--configfile", str(TEST_CONFIG), "--cores", "2", *targets, "--cache",
                       env={"SNAKEMAKE_OUTPUT_CACHE": str(output_cache)}, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    cached = [f"resources/models/{MODEL}/model.json", f"results/{MODEL}/activations/L{LAYER}/background.h5",
              f"results/{MODEL}/covariance/L{LAYER}.h5", *targets]
    for path in cached:
        assert f"Symlinking output file {path} from cache." in output
        assert (tmp_path / path).is_symlink()
    # Cached jobs never ran their scripts: Snakemake leaves their logs empty.
    assert (tmp_path / "logs" / MODEL / f"L{LAYER}" / "dump_background.log").read_text() == ""
    (here,) = store.read(tmp_path / targets[0], "excluding_sinks/eigenvalues")
    (there,) = store.read(run / targets[0], "excluding_sinks/eigenvalues")
    np.testing.assert_array_equal(here, there)


def test_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, "--lint", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations, your workflow is in a good condition!" in result.stdout + result.stderr
