"""Experiment endpoints on grids with known structure, checked against direct numpy computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from steerid import stats
from steerid.stats import analysis


def grids(effects: dict[str, float], n_prompts: int = 40, n_samples: int = 2, noise: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    prompt_level = rng.standard_normal((n_prompts, 1))
    return {
        name: prompt_level + shift + noise * rng.standard_normal((n_prompts, n_samples))
        for name, shift in effects.items()
    }


def test_pooling_environments_stacks_prompts_of_shared_conditions():
    a, b = grids({"baseline": 0, "v": 1, "only-a": 2}, n_prompts=5), grids({"baseline": 0, "v": 1}, n_prompts=7)
    pooled = analysis.pool_environments({"a": a, "b": b})
    assert set(pooled) == {"baseline", "v"} and pooled["v"].shape == (12, 2)
    np.testing.assert_array_equal(pooled["v"][5:], b["v"])


def test_pooled_type_is_the_cellwise_mean_of_its_draws():
    scores = grids({"baseline": 0, "v": 1, "v+null-0": 1.0, "v+null-1": 2.0})
    pooled = analysis.pooled_by_type(scores)
    np.testing.assert_allclose(pooled["v+null"], (scores["v+null-0"] + scores["v+null-1"]) / 2)


def test_endpoints_detect_equivalence_and_the_broken_control():
    scores = grids(
        {"baseline": 0.0, "v": 1.0, "-v": -1.0, "v+orthogonal-0": 1.0, "v+top_gain-0": 0.0, "orthogonal-0": 0.0},
        n_prompts=200,
        noise=0.05,
    )
    # Equal effects: make v and v+orthogonal share their noise so only the margin decides.
    scores["v+orthogonal-0"] = scores["v"] + 0.01 * np.random.default_rng(1).standard_normal(scores["v"].shape)
    result = analysis.orthogonality_endpoints(scores, n_boot=200, margin_sd=0.2, margin_effect=0.1, n_perm=200, seed=0)
    judged = result["judgements"]
    assert judged["v+orthogonal"]["equivalence"]["baseline_sd"]["verdict"] == "equivalent"
    assert judged["v+top_gain"]["equivalence"]["baseline_sd"]["verdict"] == "not equivalent"
    assert judged["v+top_gain"]["permutation"]["p_value"] < 0.01
    controls = result["controls"]
    assert controls["v_beats_baseline"] and controls["minus_v_opposite_sign"]
    assert result["margins"]["baseline_sd"]["value"] == pytest.approx(0.2 * scores["baseline"].std(ddof=1))
    delta_v = scores["v"].mean() - scores["baseline"].mean()
    assert result["margins"]["effect"]["value"] == pytest.approx(0.1 * abs(delta_v))
    # The TOST p matches two one-sided scipy t tests on prompt-mean differences.
    diffs = (scores["v+orthogonal-0"] - scores["v"]).mean(axis=1)
    m = result["margins"]["baseline_sd"]["value"]
    p_scipy = max(
        scipy_stats.ttest_1samp(diffs, -m, alternative="greater").pvalue,
        scipy_stats.ttest_1samp(diffs, m, alternative="less").pvalue,
    )
    assert judged["v+orthogonal"]["equivalence"]["baseline_sd"]["tost"]["p"] == pytest.approx(p_scipy, rel=1e-6)


def test_cross_application_reports_each_vector_in_each_environment():
    env = {e: grids({"baseline": 0, "v": 1, "env:a": 1, "env:b": 0.5}, seed=i) for i, e in enumerate("ab")}
    table = analysis.cross_application(env, n_boot=200, seed=0)
    assert set(table) == {"a", "b"} and set(table["a"]) == {"a", "b"}
    expected = env["b"]["env:a"].mean() - env["b"]["baseline"].mean()
    assert table["b"]["a"]["delta"]["value"] == pytest.approx(expected)


def test_alpha_curves_find_the_fluent_significant_range():
    alphas = [0.1, 0.2, 0.4]
    scores = grids(
        {"baseline": 0, **{f"{c}@{a:g}": 5 * a for a in alphas for c in ("v", "v+orthogonal", "v+null")}}, noise=0.05
    )
    scores["v@0.1"] = scores["baseline"] + 0.0  # no effect at the weakest strength
    perplexity = {name: np.full_like(grid, 5.0) for name, grid in scores.items()}
    for c in ("v", "v+orthogonal", "v+null"):
        perplexity[f"{c}@0.4"][:] = 50.0  # the strongest is no longer fluent
    result = analysis.alpha_curves(scores, perplexity, alphas, ("orthogonal", "null"), 2.0, n_boot=200, seed=0)
    assert [row["operational"] for row in result["by_alpha"]] == [False, True, False]
    assert result["operational_range"] == [0.2, 0.2]


def test_spanning_curves_sort_by_k_per_source_and_end():
    scores = grids(
        {
            "baseline": 0,
            "v": 1,
            "span:jacobian-top-64": 0.0,
            "span:jacobian-top-8": 0.5,
            "span:covariance-bottom-8": 1.0,
        }
    )
    curves = analysis.spanning_curves(scores, n_boot=200, margin=0.1, seed=0)
    assert set(curves) == {"jacobian-top", "covariance-bottom"}
    assert [row["k"] for row in curves["jacobian-top"]] == [8, 64]


def cell(p_tost: float, p_difference: float, power: float, verdict: str, margin_below_effect: bool = True) -> dict:
    return {
        "tost": {"p": p_tost, "p_difference": p_difference},
        "power": {"power": power},
        "verdict": verdict,
        "margin_below_effect": margin_below_effect,
    }


def test_holm_corrects_equivalence_and_difference_claims_across_cells():
    cells = {
        "a": cell(0.01, 0.9, 0.9, "equivalent"),
        "b": cell(0.03, 0.8, 0.6, "equivalent"),
        "c": cell(0.9, 0.001, 0.5, "not equivalent"),
        "d": cell(0.5, 0.5, 0.5, "no effect of v"),
    }
    corrected = analysis.holm_verdicts(cells)
    # TOST p sorted 0.01, 0.03, 0.5, 0.9 → Holm 0.04, 0.09, 1.0, 1.0 (x4, x3, x2, x1, running max).
    assert corrected["a"]["p_equivalence_holm"] == pytest.approx(0.04)
    assert corrected["b"]["p_equivalence_holm"] == pytest.approx(0.09)
    assert corrected["a"]["verdict"] == "equivalent"
    assert corrected["b"]["verdict"] == "inconclusive (underpowered)"  # equivalent alone, not after Holm
    assert corrected["c"]["verdict"] == "not equivalent" and corrected["c"]["p_difference_holm"] == pytest.approx(0.004)
    assert corrected["d"]["verdict"] == "no effect of v"


def test_holm_never_claims_equivalence_at_a_margin_as_wide_as_the_effect():
    cells = {
        "wide": cell(0.001, 0.9, 0.9, stats.MARGIN_TOO_WIDE, margin_below_effect=False),
        "wide, different": cell(0.001, 0.001, 0.9, "not equivalent", margin_below_effect=False),
        "narrow": cell(0.001, 0.9, 0.9, "equivalent"),
    }
    corrected = analysis.holm_verdicts(cells)
    assert corrected["wide"]["verdict"] == stats.MARGIN_TOO_WIDE
    assert corrected["wide, different"]["verdict"] == "not equivalent"
    assert corrected["narrow"]["verdict"] == "equivalent"


def test_equivalence_test_flags_a_margin_wider_than_the_effect():
    rng = np.random.default_rng(3)
    v = rng.normal(0.1, 1.0, size=(400, 2))
    delta_v = {"value": 0.1, "ci_low": 0.02, "ci_high": 0.18}
    close = v + rng.normal(0.0, 0.01, size=v.shape)
    assert analysis.equivalence_test(v, close, 0.05, delta_v)["verdict"] == "equivalent"
    wide = analysis.equivalence_test(v, close, 0.2, delta_v)
    assert wide["margin_below_effect"] is False and wide["verdict"] == stats.MARGIN_TOO_WIDE
