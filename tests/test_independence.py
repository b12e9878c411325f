import json
import math
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from steerid import store
from steerid.experiments import e10_independence
from steerid.experiments.settings import IndependenceSettings
from steerid.stats.independence import (
    PLANTED_KINDS,
    chance_abs_cosine,
    direction_stability,
    fit_ica,
    ica_direction,
    independence_summary,
    planted_mixture,
)
from steerid.vectors import mean_difference

REAL = {"n_pairs": 64, "d": 576, "environments": ("a", "b", "c")}


@pytest.fixture(scope="module")
def planted():
    """Per planted kind at the real sizes: (by_environment, trait column, summary with 50 bootstraps).

    One BLAS thread: these matrices are too small to gain from threads, and on shared cores the
    thread pool's waiting costs more than the arithmetic.
    """
    cases = {}
    with threadpool_limits(1):
        for kind in PLANTED_KINDS:
            by_environment, truth = planted_mixture(kind, **REAL, seed=0)
            cases[kind] = by_environment, truth, independence_summary(by_environment, n_boot=50, k=8, seed=0)
    return cases


def _rademacher_mixture(n, d, seed):
    """Differences (n, d) of 3 independent ±1 sources, the first shifted by 2, and the first column."""
    rng = np.random.default_rng(seed)
    columns = rng.normal(size=(3, d))
    sources = rng.choice([-1.0, 1.0], size=(n, 3)) + np.array([2.0, 0.0, 0.0])
    return sources @ columns + 0.01 * rng.normal(size=(n, d)), columns[0] / np.linalg.norm(columns[0])


def test_fit_ica_recovers_the_shifted_source_of_a_large_clean_mixture():
    differences, truth = _rademacher_mixture(n=2000, d=20, seed=1)
    fit = fit_ica(differences, np.zeros_like(differences), k=3)
    assert fit.converged
    assert fit.direction @ truth > 0.999
    assert fit.separation == pytest.approx(2.0, rel=0.05)
    assert fit.excess_kurtosis == pytest.approx(-2.0, abs=0.1)
    np.testing.assert_allclose(np.linalg.norm(fit.direction), 1.0)


def test_fit_ica_finds_the_column_scikit_learn_fastica_finds():
    decomposition = pytest.importorskip("sklearn.decomposition")
    differences, _ = _rademacher_mixture(n=500, d=20, seed=2)
    ours = fit_ica(differences, np.zeros_like(differences), k=3).direction
    reference = decomposition.FastICA(3, algorithm="parallel", fun="logcosh", whiten="unit-variance", random_state=0)
    reference.fit(differences)
    columns = reference.mixing_ / np.linalg.norm(reference.mixing_, axis=0)
    assert np.max(np.abs(ours @ columns)) > 0.999


def test_ica_direction_is_signed_along_the_mean_difference():
    differences, _ = _rademacher_mixture(n=300, d=20, seed=3)
    direction = ica_direction(-differences, np.zeros_like(differences), k=3)
    assert direction @ mean_difference(-differences, np.zeros_like(differences)) > 0


def test_ica_recovers_the_planted_independent_trait_in_every_environment(planted):
    by_environment, truth, summary = planted["independent"]
    recovery = {name: fit_ica(*pair).direction @ truth for name, pair in by_environment.items()}
    assert min(recovery.values()) >= 0.9, recovery
    ica = summary["ica"]
    assert summary["verdict"] == ica["verdict"] == "stable", ica
    assert ica["bootstrap_mean_abs_cosine"] >= 0.9
    assert ica["environment_min_abs_cosine"] >= 0.8


def test_the_mean_difference_tilts_with_the_planted_confound(planted):
    by_environment, truth, summary = planted["independent"]
    tilted = {
        name: abs(mean_difference(*pair) @ truth) / np.linalg.norm(mean_difference(*pair))
        for name, pair in by_environment.items()
    }
    assert min(tilted.values()) < 0.85, tilted
    md, ica = summary["mean_difference"], summary["ica"]
    # Resampling prompts barely moves it: its instability is the environment's, not the sample's.
    assert md["bootstrap_mean_abs_cosine"] >= 0.95
    assert md["environment_min_abs_cosine"] < ica["environment_min_abs_cosine"] - 0.4
    assert md["verdict"] == "unstable"


def test_ica_is_unstable_when_every_source_is_gaussian(planted):
    _, _, summary = planted["gaussian"]
    ica = summary["ica"]
    assert summary["verdict"] == ica["verdict"] == "unstable", ica
    assert ica["bootstrap_mean_abs_cosine"] < 0.8
    assert ica["environment_min_abs_cosine"] < 0.8


def test_summary_is_json_and_records_its_settings(planted):
    _, _, summary = planted["independent"]
    json.dumps(summary, allow_nan=False)
    assert summary["thresholds"] == {"bootstrap_mean_abs_cosine": 0.9, "environment_min_abs_cosine": 0.8}
    assert summary["chance_abs_cosine"] == pytest.approx(math.sqrt(2 / (math.pi * 576)), rel=0.01)
    assert summary["n_pairs"] == {"a": 64, "b": 64, "c": 64}
    assert (summary["d"], summary["k"], summary["n_boot"], summary["seed"]) == (576, 8, 50, 0)
    assert set(summary["ica"]["environment_abs_cosines"]) == {"a|b", "a|c", "b|c"}
    assert 0 < summary["ica"]["converged_fraction"] <= 1


def test_same_seed_same_output_and_another_seed_another():
    small = {"n_pairs": 20, "d": 32, "environments": ("x", "y")}
    first, truth = planted_mixture("independent", **small, seed=5)
    again, truth_again = planted_mixture("independent", **small, seed=5)
    np.testing.assert_array_equal(truth, truth_again)
    for name in first:
        np.testing.assert_array_equal(first[name][0], again[name][0])
        np.testing.assert_array_equal(first[name][1], again[name][1])
    assert independence_summary(first, n_boot=5, k=4, seed=1) == independence_summary(again, n_boot=5, k=4, seed=1)
    other, _ = planted_mixture("independent", **small, seed=6)
    assert not np.array_equal(first["x"][0], other["x"][0])


def test_one_real_size_float32_call_is_quick():
    by_environment, _ = planted_mixture("independent", **REAL, seed=0)
    by_environment = {name: (p.astype(np.float32), n.astype(np.float32)) for name, (p, n) in by_environment.items()}
    with threadpool_limits(1):
        start = time.perf_counter()
        summary = independence_summary(by_environment, n_boot=50, k=8, seed=0)
        elapsed = time.perf_counter() - start
    assert summary["verdict"] == "stable"
    # ~0.6 s on one idle core; the margin is for cores shared with other jobs.
    assert elapsed < 4.0, f"{elapsed:.2f} s"


def test_chance_abs_cosine_is_exact_in_two_dimensions_and_near_the_asymptote():
    assert chance_abs_cosine(2) == pytest.approx(2 / math.pi)
    assert chance_abs_cosine(10_000) == pytest.approx(math.sqrt(2 / (math.pi * 10_000)), rel=1e-3)
    with pytest.raises(ValueError, match="d >= 1; got d=0"):
        chance_abs_cosine(0)


def _pairs(n=10, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d))


@pytest.mark.parametrize(
    "positive, negative, match",
    [
        (np.zeros((10, 6)), np.zeros((9, 6)), r"\(10, 6\) and \(9, 6\)"),
        (np.zeros((10, 6)), np.zeros((10, 5)), r"\(10, 6\) and \(10, 5\)"),
        (np.zeros(6), np.zeros(6), r"\(6,\) and \(6,\)"),
        (np.zeros((1, 6)), np.zeros((1, 6)), "n >= 2 pairs"),
    ],
)
def test_fit_ica_rejects_bad_shapes(positive, negative, match):
    with pytest.raises(ValueError, match=match):
        fit_ica(positive, negative)


def test_fit_ica_rejects_non_finite_values():
    positive, negative = _pairs()
    positive[3, 2] = np.nan
    with pytest.raises(
        ValueError, match=r"must be finite; got NaN or infinite values \(counts: \{'positive': 1, 'negative': 0\}\)"
    ):
        fit_ica(positive, negative, k=3)


@pytest.mark.parametrize("k", [0, 10, 11])
def test_fit_ica_rejects_k_outside_its_range(k):
    with pytest.raises(ValueError, match=rf"1 <= k < n_pairs = 10 and k <= d = 6; got k={k}"):
        fit_ica(*_pairs(), k=k)


def test_fit_ica_rejects_k_above_the_rank_of_the_differences():
    positive, negative = _pairs()
    positive = negative + np.outer(np.arange(10.0), np.ones(6))  # one direction of variation
    with pytest.raises(ValueError, match="fewer than k=3 directions"):
        fit_ica(positive, negative, k=3)


@pytest.mark.parametrize("max_iter, tol", [(0, 1e-4), (10, 0.0)])
def test_fit_ica_rejects_bad_iteration_settings(max_iter, tol):
    with pytest.raises(ValueError, match=rf"max_iter={max_iter}, tol={tol}"):
        fit_ica(*_pairs(), k=3, max_iter=max_iter, tol=tol)


def test_ica_direction_warns_when_fastica_stops_early():
    with pytest.warns(RuntimeWarning, match="did not converge in 1 iterations"):
        ica_direction(*_pairs(n=40), k=4, max_iter=1)


def test_stability_needs_two_environments_of_one_width_and_two_replicates():
    with pytest.raises(ValueError, match=r">= 2 environments; got \['a'\]"):
        independence_summary({"a": _pairs()}, n_boot=5, k=3)
    with pytest.raises(ValueError, match=r"same d; got \{'a': 6, 'b': 5\}"):
        independence_summary({"a": _pairs(), "b": _pairs(d=5)}, n_boot=5, k=3)
    with pytest.raises(ValueError, match="n_boot >= 2 to compare replicates; got n_boot=1"):
        direction_stability(mean_difference, {"a": _pairs(), "b": _pairs(seed=1)}, n_boot=1, seed=0)
    with pytest.raises(ValueError, match=r"k < n_pairs = 8"):
        independence_summary({"a": _pairs(), "b": _pairs(n=8)}, n_boot=5, k=8)


def test_planted_mixture_rejects_unknown_kinds_and_sizes():
    with pytest.raises(ValueError, match=r"one of \('independent', 'gaussian'\); got 'laplace'"):
        planted_mixture("laplace")
    with pytest.raises(ValueError, match="got n_pairs=1, d=576"):
        planted_mixture("gaussian", n_pairs=1)


def write_contrast(directory, by_environment) -> str:
    """A contrast dump holding each environment's instructed activations, as the E10 stage reads it."""
    path = str(directory / "contrast.h5")
    datasets = {
        f"environments/{name}/{pole}": array
        for name, (positive, negative) in by_environment.items()
        for pole, array in (("positive", positive), ("negative", negative))
    }
    store.write(path, datasets, {"model": "toy", "layer": 3})
    return path


def test_the_e10_stage_calls_the_planted_independent_trait_stable(tmp_path):
    by_environment, _ = planted_mixture("independent", n_pairs=64, d=96, seed=0)
    settings = IndependenceSettings(seed=0, n_boot=10, components=8)
    output = tmp_path / "e10.json"
    with threadpool_limits(1):
        e10_independence.stats(write_contrast(tmp_path, by_environment), "toy", settings, {}, str(output))
    result = json.loads(output.read_text())
    assert result["verdict"] == "stable" and result["ica"]["verdict"] == "stable"
    assert result["model"] == "toy" and result["layer"] == 3 and result["n_pairs"] == {"a": 64, "b": 64, "c": 64}
    assert "the ICA direction (k = 8 components) is stable" in e10_independence.finding(result)
