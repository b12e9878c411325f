"""The whole DAG on the test config, with the real embedded model, run once and shared."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from snakemake_runner import TEST_CONFIG, printed, snakemake, write_config

from steerid import store
from steerid.pipeline.results import read_scores
from steerid.prompts import load_trait
from steerid.stats import VERDICTS

MODEL, LAYER, TRAIT = "smollm2-135m", 15, "sentiment"
pytestmark = pytest.mark.workflow


def results(run: Path, relative: str) -> Path:
    return run / "results" / relative


ENVIRONMENTS = ("in_distribution", "topic_shift")
EXPERIMENT_FIGURES = [f"e{i}" for i in range(1, 11)]


def read_json(run: Path, relative: str) -> dict:
    return json.loads(results(run, relative).read_text())


def test_summary_states_every_claim_and_every_figure_exists(run):
    summary = results(run, "summary.md").read_text()
    for claim in (
        "(E1)",
        "(E2)",
        "(E3)",
        "(E4)",
        "(E5)",
        "(E6)",
        "(E7)",
        "(E8)",
        "Positive control",
        "Scorer validation",
    ):
        assert claim in summary
    assert "not run" not in summary
    assert "excluding_sinks" in summary and "all_tokens" in summary
    # The paper's claims, each answered over the grid with a standing the judges could reach.
    for key in (f"H{n}" for n in range(1, 11)):
        paragraph = next(line for line in summary.splitlines() if line.startswith(f"**{key}. "))
        assert paragraph.split(".** ", 1)[1].startswith(("Supported", "Contradicted", "Partly", "Undecided", "Sever"))
    for name in EXPERIMENT_FIGURES:
        png, pdf = results(run, f"figures/{name}.png").read_bytes(), results(run, f"figures/{name}.pdf").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5_000, name
        assert pdf.startswith(b"%PDF"), name


def test_activations_shapes_and_provenance(run):
    contrast = results(run, f"{MODEL}/activations/L{LAYER}/contrast-{TRAIT}.h5")
    positive, negative = store.read(contrast, "positive", "negative")
    assert positive.shape == negative.shape == (16, 576)
    assert np.isfinite(positive).all() and np.isfinite(negative).all()
    for environment in ENVIRONMENTS:
        (instructed,) = store.read(contrast, f"environments/{environment}/positive")
        assert instructed.shape == (4, 576)
    attrs = store.read_attrs(contrast)
    assert attrs["model"] == MODEL and attrs["layer"] == LAYER and attrs["architecture"] == "llama"
    assert len(attrs["params_sha256"]) == 64 and attrs["steerid_version"]


def test_vectors_of_every_method_and_environment(run):
    path = results(run, f"{MODEL}/vectors/L{LAYER}/{TRAIT}.h5")
    v, pca, probe = store.read(path, "mean_difference", "pca", "probe")
    positive, negative = store.read(
        results(run, f"{MODEL}/activations/L{LAYER}/contrast-{TRAIT}.h5"), "positive", "negative"
    )
    np.testing.assert_allclose(v, positive.astype(np.float64).mean(0) - negative.astype(np.float64).mean(0), rtol=1e-6)
    for direction in (pca, probe):
        assert direction @ v > 0  # sign-aligned to the mean difference
    with h5py.File(path) as handle:
        assert set(handle["environments"]) == set(ENVIRONMENTS)


def test_cached_dumps_of_different_traits_and_layers_are_different(run):
    # The session run uses --cache: jobs that differ only by a wildcard must not share a cache entry.
    (sentiment,) = store.read(results(run, f"{MODEL}/activations/L{LAYER}/contrast-{TRAIT}.h5"), "positive")
    (formality,) = store.read(results(run, f"{MODEL}/activations/L{LAYER}/contrast-formality.h5"), "positive")
    assert not np.allclose(sentiment, formality)
    (middle,) = store.read(results(run, f"{MODEL}/activations/L{LAYER}/background.h5"), "activations")
    (early,) = store.read(results(run, f"{MODEL}/activations/L8/background.h5"), "activations")
    assert middle.shape == early.shape and not np.allclose(middle, early)
    assert store.read_attrs(results(run, f"{MODEL}/activations/L8/background.h5"))["layer"] == 8


def test_background_is_token_level(run):
    path = results(run, f"{MODEL}/activations/L{LAYER}/background.h5")
    activations, position, text_index = store.read(path, "activations", "position", "text_index")
    assert activations.shape[1] == 576 and len(activations) == len(position) == len(text_index)
    assert set(np.unique(text_index)) == set(range(24))
    assert (position == 0).sum() == 24  # one first token per text


def test_covariances_equal_numpy_on_the_dump(run):
    activations, position = store.read(
        results(run, f"{MODEL}/activations/L{LAYER}/background.h5"), "activations", "position"
    )
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
        for key in (
            "fraction_of_d_at_0.01_of_max",
            "fraction_of_d_at_0.05_of_max",
            "fraction_of_d_for_0.99_of_variance",
            "fraction_of_d_for_0.999_of_variance",
        ):
            assert 0 < attrs[key] <= 1
        assert 1 <= attrs["participation_ratio"] <= 576 and attrs["randomized_max_rel_error"] < 1e-2
    # The first-token attention sink dominates the raw spectrum; excluding it spreads the variance.
    assert views["all_tokens"]["top_eigenvalue_ratio"] > 10 * views["excluding_sinks"]["top_eigenvalue_ratio"]
    assert views["excluding_sinks"]["participation_ratio"] > views["all_tokens"]["participation_ratio"]
    assert views["all_tokens"]["count"] - views["excluding_sinks"]["count"] == 24


def unit_norm_and_orthogonal(deltas: np.ndarray, v: np.ndarray) -> None:
    np.testing.assert_allclose(np.linalg.norm(np.atleast_2d(deltas), axis=1), np.linalg.norm(v), rtol=1e-10)
    assert np.abs(np.atleast_2d(deltas) @ v).max() / np.linalg.norm(v) ** 2 < 1e-6


def inside(deltas: np.ndarray, subspace: np.ndarray, v: np.ndarray) -> None:
    deltas = np.atleast_2d(deltas)
    outside = deltas - (deltas @ subspace) @ subspace.T
    assert np.abs(outside).max() / np.linalg.norm(v) < 1e-5


def test_perturbation_geometry(run):
    path = results(run, f"{MODEL}/perturbations/L{LAYER}/{TRAIT}.h5")
    v, orthogonal, null, top_variance, top_gain, other = store.read(
        path, "v", "orthogonal", "null", "top_variance", "top_gain", "other"
    )
    assert orthogonal.shape == (2, 576) and null.shape == top_variance.shape == top_gain.shape == other.shape == (
        1,
        576,
    )
    for deltas in (orthogonal, null, top_variance, top_gain, other):
        unit_norm_and_orthogonal(deltas, v)
    (covariance,) = store.read(results(run, f"{MODEL}/spectra/L{LAYER}.h5"), "excluding_sinks/eigenvectors")
    (gain,) = store.read(results(run, f"{MODEL}/jacobian/L{LAYER}/{TRAIT}.h5"), "pooled/eigenvectors")
    covariance = covariance.astype(np.float64)
    # null_fraction 0.5 → the 288 lowest-variance eigenvectors; top_k 8 → the 8 leading ones.
    inside(null, covariance[:, -288:], v)
    inside(top_variance, covariance[:, :8], v)
    inside(top_gain, gain[:, :8], v)
    (formality,) = store.read(results(run, f"{MODEL}/vectors/L{LAYER}/formality.h5"), "mean_difference")
    assert other[0] @ formality > 0
    for source, basis in (("covariance", covariance), ("jacobian", gain)):
        for k in (4, 32):
            bottom, top = store.read(path, f"span/{source}-bottom-{k}", f"span/{source}-top-{k}")
            unit_norm_and_orthogonal(bottom, v)
            inside(bottom, basis[:, -k:], v)
            inside(top, basis[:, :k], v)


def test_jacobian_pools_the_environments(run):
    with h5py.File(results(run, f"{MODEL}/jacobian/L{LAYER}/{TRAIT}.h5")) as handle:
        per_environment = {name: group["eigenvalues"][()] for name, group in handle["environments"].items()}
        pooled = handle["pooled/eigenvalues"][()]
    assert set(per_environment) == set(ENVIRONMENTS)
    # trace(Σ G_e) = Σ trace(G_e); Gram matrices are positive semi-definite.
    assert pooled.sum() == pytest.approx(sum(values.sum() for values in per_environment.values()), rel=1e-9)
    assert pooled.min() > -1e-9 * pooled.max() and np.all(np.diff(pooled) <= 1e-9 * pooled.max())


def generations(run: Path, condition_set: str, environment: str = "in_distribution") -> list[dict]:
    path = results(run, f"{MODEL}/generations/{condition_set}/L{LAYER}/{TRAIT}/{environment}.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generations_cover_every_condition_of_every_experiment(run):
    e1 = {
        "baseline",
        "v",
        "-v",
        "v+orthogonal-0",
        "v+orthogonal-1",
        "orthogonal-0",
        "v+null-0",
        "v+top_variance-0",
        "v+top_gain-0",
        "v+other-0",
        "pca",
        "probe",
        "env:in_distribution",
        "env:topic_shift",
    }
    e2 = {"baseline"} | {f"{c}@{a}" for a in ("0.1", "0.3") for c in ("v", "v+orthogonal", "v+null")}
    e7 = {"baseline", "v"} | {
        f"span:{s}-{e}-{k}" for s in ("covariance", "jacobian") for e in ("bottom", "top") for k in (4, 32)
    }
    for condition_set, names, environments in (
        ("e1", e1, ENVIRONMENTS),
        ("e2", e2, ENVIRONMENTS[:1]),
        ("e7", e7, ENVIRONMENTS),
    ):
        for environment in environments:
            records = generations(run, condition_set, environment)
            assert {r["condition"] for r in records} == names
            assert len(records) == len(names) * 4 * 2
            assert all(r["n_tokens"] <= 8 for r in records)
            # Fluency (perplexity under the unsteered model) is measured where it is an endpoint: E2.
            assert (
                all(r["perplexity"] > 1 or r["n_tokens"] == 0 for r in records)
                if condition_set == "e2"
                else all("perplexity" not in r for r in records)
            )


def test_conditions_share_prompts_and_sampling_noise(run):
    records = generations(run, "e1")
    by_condition = {}
    for record in records:
        by_condition.setdefault(record["condition"], []).append(
            (record["prompt_index"], record["sample_index"], record["prompt"])
        )
    cells = {name: sorted(c) for name, c in by_condition.items()}
    assert all(c == cells["baseline"] for c in cells.values())


def test_e1_stats_pool_the_environments(run):
    stats = read_json(run, f"{MODEL}/stats/e1/L{LAYER}/{TRAIT}.json")
    assert stats["n_prompts"] == 8 and stats["environments"] == list(ENVIRONMENTS)
    grids = {}
    for environment in ENVIRONMENTS:
        with h5py.File(results(run, f"{MODEL}/scores/e1/L{LAYER}/{TRAIT}/{environment}.h5")) as handle:
            for name in handle["scores"]:
                grids.setdefault(name, []).append(handle["scores"][name][()])
    pooled = {name: np.concatenate(parts) for name, parts in grids.items()}
    expected_delta = pooled["v"].mean() - pooled["baseline"].mean()
    assert stats["by_type"]["v"]["delta"]["value"] == pytest.approx(expected_delta)
    assert stats["margins"]["baseline_sd"]["value"] == pytest.approx(0.2 * pooled["baseline"].std(ddof=1))
    assert set(stats["judgements"]) == {"v+orthogonal", "v+null", "v+top_variance", "v+top_gain", "v+other"}
    for judged in stats["judgements"].values():
        for margin in ("baseline_sd", "effect"):
            entry = judged["equivalence"][margin]
            assert entry["verdict"] in VERDICTS and 0 <= entry["power"]["power"] <= 1 and entry["tost"]["n"] == 8
        assert 0 < judged["permutation"]["p_value"] <= 1
    assert stats["scorer_validation"]["min_auroc"] == 0.8


def test_per_experiment_stats(run):
    e3 = read_json(run, f"{MODEL}/stats/e3/L{LAYER}/{TRAIT}.json")
    assert set(e3["by_environment"]) == set(ENVIRONMENTS) and set(e3["cross_application"]) == set(ENVIRONMENTS)
    assert e3["cosines"]["topic_shift"]["topic_shift"] == pytest.approx(1.0)
    e5 = read_json(run, f"{MODEL}/stats/e5/L{LAYER}/{TRAIT}.json")
    assert set(e5["by_direction"]) == {"pca", "probe"}
    assert all(-1 <= entry["cosine_with_v"] <= 1 for entry in e5["by_direction"].values())
    e2 = read_json(run, f"{MODEL}/stats/e2/L{LAYER}/{TRAIT}.json")
    assert [row["alpha"] for row in e2["by_alpha"]] == [0.1, 0.3]
    scale = e2["mean_residual_norm"] / e2["v_norm"]
    assert e2["by_alpha"][1]["alpha_in_v_norms"] == pytest.approx(0.3 * scale)
    e7 = read_json(run, f"{MODEL}/stats/e7/L{LAYER}/{TRAIT}.json")
    assert set(e7["curves"]) == {"covariance-bottom", "covariance-top", "jacobian-bottom", "jacobian-top"}
    assert all([row["k"] for row in rows] == [4, 32] for rows in e7["curves"].values())
    assert tuple(e7["environments"]) == ENVIRONMENTS and e7["n_prompts"] == 4 * len(ENVIRONMENTS)


def test_logit_distances(run):
    e4 = read_json(run, f"{MODEL}/stats/e4/L{LAYER}/{TRAIT}.json")
    assert e4["n_sequences"] == 4
    reference = e4["pairs"]["baseline vs v"]
    assert reference["kl"]["mean"] > 0 and 0 < reference["js"]["mean"] <= np.log(2)
    assert set(e4["relative_to_0_vs_v"]) == {"orthogonal", "null", "top_variance", "top_gain", "other"}


def test_null_space_and_recovery(run):
    e6 = read_json(run, f"{MODEL}/stats/e6/{TRAIT}.json")
    assert [layer["layer"] for layer in e6["layers"]] == [8, 15] and e6["sites"] == []
    for layer in e6["layers"]:
        assert set(layer["covariance"]) == {"all_tokens", "excluding_sinks"}
        assert 0 <= layer["jacobian"]["fraction_of_d_at_0.05_of_max"] <= 1
        assert 0 <= layer["low_variance_vs_low_gain"]["overlap"] <= 1
    e8 = read_json(run, f"{MODEL}/stats/e8/L{LAYER}/{TRAIT}.json")
    for curve in (e8["environments"], e8["layers"]):
        assert [row["m"] for row in curve] == [1, 2]
        assert curve[1]["max"] <= curve[0]["max"]


def test_scorer_validation(run):
    validation = read_json(run, f"{MODEL}/validation/{TRAIT}.json")
    assert validation["n_positive"] == validation["n_negative"] == 4
    assert 0 <= validation["auroc"] <= 1 and validation["valid"] == (validation["auroc"] >= 0.8)


def test_the_likelihood_trait_is_scored_on_the_statements_its_validation_scored(run):
    e1 = read_json(run, f"{MODEL}/stats/e1/L{LAYER}/truthfulness.json")
    validation = read_json(run, f"{MODEL}/validation/truthfulness.json")
    assert e1["environments"] == ["statements"] and e1["n_samples"] == 1
    assert e1["n_prompts"] == validation["n"] == len(load_trait("truthfulness").statements)
    # The E1 baseline is the unsteered model on the same statements the validation scored.
    scores, attrs = read_scores(str(results(run, f"{MODEL}/scores/e1/L{LAYER}/truthfulness/statements.h5")))
    assert attrs["positions"] == "all"
    assert scores["baseline"].mean() == pytest.approx(validation["mean_preference"], rel=1e-5)
    assert (scores["baseline"] > 0).mean() == pytest.approx(validation["auroc"], abs=1 / (2 * validation["n"]))
    assert not np.allclose(scores["v"], scores["baseline"])


def test_the_grid_table_has_every_delta_type_of_both_traits(run):
    summary = results(run, "summary.md").read_text()
    grid = summary.split("## E1: are v and v + δ behaviourally equivalent?", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in grid.splitlines() if line.startswith(f"| {MODEL} |")]
    rows = [[cell.strip() for cell in line.split(" | ")] for line in lines]
    cells = {(row[1], row[2]) for row in rows}
    by_trait = {trait: {kind for cell_trait, kind in cells if cell_trait == trait} for trait in (TRAIT, "truthfulness")}
    assert len(rows) == len(cells) == 10 and by_trait[TRAIT] == by_trait["truthfulness"]
    assert "other trait's vector ⟂ v" in by_trait["truthfulness"] and "statement pairs" in summary


def test_logs_and_benchmarks_written(run):
    log = run / "logs" / MODEL / f"L{LAYER}" / f"evaluate-e1-{TRAIT}-in_distribution"
    assert Path(f"{log}.log").read_text().strip()
    assert Path(f"{log}.benchmark.tsv").is_file()


def test_second_run_has_nothing_to_do(run):
    result = snakemake(run, "--configfile", str(TEST_CONFIG), "--cores", "2", "-n")
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_default_config_lists_the_whole_chain(tmp_path):
    result = snakemake(tmp_path, "-n", "--cores", "8", "--quiet", "rules")
    assert result.returncode == 0, printed(result)[-3000:]
    for rule in (
        "prepare_model",
        "prompts",
        "dump_contrast",
        "dump_background",
        "steering_vectors",
        "covariance",
        "spectrum",
        "jacobian",
        "perturbations",
        "validate_scorer",
        "evaluate",
        "score",
        "stats_e1",
        "stats_e2",
        "stats_e3",
        "logit_distance",
        "stats_e5",
        "null_space",
        "stats_e7",
        "recovery",
        "figure",
        "summary",
    ):
        assert rule in result.stdout


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"traits": ["sentiment", "happiness"]}, "happiness"),
        ({"perturbations": {"n_orthogonal": -2}}, "-2"),
        ({"models": {"m": {"spec": "no/such/model/anywhere", "layer": 3}}}, "no/such/model/anywhere"),
        ({"colour": "blue"}, "colour"),
        ({"prompts": {"n_pairs": 16, "n_eval": 500, "environments": ["in_distribution"]}}, "n_eval=500"),
        ({"other_traits": ["sentiment"]}, "['sentiment'] are also in traits"),
        ({"scoring": {"sentiment": "likelihood"}}, "'likelihood' is not one of"),
    ],
    ids=[
        "unknown-trait",
        "negative-seeds",
        "unresolvable-model",
        "unknown-key",
        "too-many-eval-prompts",
        "trait-perturbing-itself",
        "likelihood-for-a-text-trait",
    ],
)
def test_bad_config_fails_at_parse_time(tmp_path, changes, named):
    result = snakemake(tmp_path, "--configfile", str(write_config(tmp_path, **changes)), "-n", "--cores", "1")
    assert result.returncode != 0
    assert named in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_unavailable_hub_model_fails_at_parse_time_before_any_rule(tmp_path):
    # Offline (the tests set HF_HUB_OFFLINE) and not in the cache: known before a job could delete anything.
    config = write_config(tmp_path, models={"ghost": {"spec": "steerid-test/no-such-model", "layer": 1}})
    result = snakemake(tmp_path, "--configfile", str(config), "--cores", "1", "resources/models/ghost")
    assert result.returncode != 0
    assert "config models.ghost.spec = 'steerid-test/no-such-model': not in the Hugging Face cache" in printed(result)
    assert not (tmp_path / "logs").exists() and not (tmp_path / "resources").exists()


def test_second_workflow_takes_cacheable_stages_from_the_cache(run, output_cache, tmp_path):
    targets = [f"results/{MODEL}/spectra/L{LAYER}.h5", f"results/{MODEL}/activations/L{LAYER}/contrast-{TRAIT}.h5"]
    result = snakemake(
        tmp_path,
        "--configfile",
        str(TEST_CONFIG),
        "--cores",
        "2",
        *targets,
        "--cache",
        env={"SNAKEMAKE_OUTPUT_CACHE": str(output_cache)},
        timeout=300,
    )
    assert result.returncode == 0, printed(result)[-3000:]
    output = result.stdout + result.stderr
    cached = [
        f"resources/models/{MODEL}/model.json",
        f"results/{MODEL}/activations/L{LAYER}/background.h5",
        f"results/{MODEL}/covariance/L{LAYER}.h5",
        *targets,
    ]
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
