"""Tests of steerid.stats: effect sizes, bootstrap, TOST, power, verdict, permutation null, Holm."""

from __future__ import annotations

import itertools
import json
import math
import re
import time

import numpy as np
import pytest
from scipy import stats as sps

from steerid import stats
from steerid.stats import Estimate

A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
B = np.array([[2.0, 4.0], [3.0, 7.0], [6.0, 6.0]])


def _prompt_data(rng: np.random.Generator, n_rows: int = 60, n_cols: int = 5) -> dict[str, np.ndarray]:
    """Paired scores with a shared prompt effect: baseline, v (+1), v+δ (+0.9), off (+0.1)."""
    prompt = rng.normal(0.0, 2.0, size=(n_rows, 1))
    noise = rng.normal(0.0, 0.5, size=(n_rows, n_cols))
    return {
        "base": prompt + noise,
        "v": prompt + noise + 1.0 + rng.normal(0, 0.2, (n_rows, n_cols)),
        "v+orth": prompt + noise + 0.9 + rng.normal(0, 0.2, (n_rows, n_cols)),
        "off": prompt + noise + 0.1 + rng.normal(0, 0.2, (n_rows, n_cols)),
    }


# ----------------------------------------------------------------------------- point estimates


def test_effect_matches_hand_computation() -> None:
    # mean(B) = 28/6, mean(A) = 21/6
    assert stats.effect(B, A) == pytest.approx(7.0 / 6.0)
    assert stats.effect(A, A) == 0.0


def test_efficacy_ratio_matches_hand_computation() -> None:
    base = np.zeros((3, 2))
    v = np.full((3, 2), 2.0)
    pert = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])  # mean 1.5
    assert stats.efficacy_ratio(pert, v, base) == pytest.approx(0.75)
    assert stats.efficacy_ratio(B, B, A) == pytest.approx(1.0)


def test_efficacy_ratio_nan_when_v_has_no_effect() -> None:
    assert math.isnan(stats.efficacy_ratio(B, A, A))


def test_paired_cohens_d_matches_hand_computation() -> None:
    var_a = np.var(A.ravel(), ddof=1)  # 3.5
    var_b = np.var(B.ravel(), ddof=1)
    expected = (28.0 / 6.0 - 21.0 / 6.0) / math.sqrt((var_a + var_b) / 2.0)
    assert var_a == pytest.approx(3.5)
    assert stats.paired_cohens_d(A, B) == pytest.approx(expected)


def test_paired_cohens_d_sign_convention() -> None:
    assert stats.paired_cohens_d(A, B) > 0  # b larger -> positive
    assert stats.paired_cohens_d(B, A) == pytest.approx(-stats.paired_cohens_d(A, B))


def test_paired_cohens_d_nan_for_zero_spread() -> None:
    const = np.full((4, 3), 0.1)
    assert math.isnan(stats.paired_cohens_d(const, const + 0.7))
    assert math.isnan(stats.paired_cohens_dz(A, A + 0.3))


def test_paired_cohens_dz_matches_paired_t_test() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(20, 4))
    b = a + rng.normal(0.3, 1.0, size=(20, 4))
    t = sps.ttest_rel(b.ravel(), a.ravel()).statistic
    assert stats.paired_cohens_dz(a, b) * math.sqrt(a.size) == pytest.approx(t)
    assert stats.paired_cohens_dz(a, b) > 0


# ----------------------------------------------------------------------------- bootstrap


def test_estimate_to_dict_is_json_able() -> None:
    est = Estimate(np.float64(1.0), 0.5, 1.5)
    d = est.to_dict()
    assert d == {"value": 1.0, "ci_low": 0.5, "ci_high": 1.5}
    assert all(type(x) is float for x in d.values())
    json.dumps(d)


def test_bootstrap_mean_ci_covers_true_mean_about_95_percent() -> None:
    rng = np.random.default_rng(2024)
    hits = 0
    for k in range(200):
        x = rng.normal(1.0, 1.0, size=(50, 3))
        est = stats.bootstrap(np.mean, x, n_boot=400, seed=k)
        hits += est.ci_low <= 1.0 <= est.ci_high
    assert 0.90 <= hits / 200 <= 0.99


def test_bootstrap_ci_width_shrinks_as_one_over_sqrt_n() -> None:
    rng = np.random.default_rng(7)

    def width(n_rows: int) -> float:
        ests = [stats.bootstrap(np.mean, rng.normal(size=(n_rows, 2)), n_boot=500, seed=s) for s in range(20)]
        return float(np.mean([e.ci_high - e.ci_low for e in ests]))

    ratio = width(25) / width(100)  # expected 2
    assert 1.6 < ratio < 2.5


def test_bootstrap_value_is_statistic_on_full_data() -> None:
    est = stats.bootstrap(lambda a, b: float(np.mean(b - a)), A, B, n_boot=200)
    assert est.value == pytest.approx(stats.effect(B, A))
    assert est.ci_low <= est.value <= est.ci_high


def test_cluster_bootstrap_keeps_rows_and_pairs_together() -> None:
    a = np.arange(30.0)[:, None] * 10 + np.arange(4.0)[None, :]  # row identity in every cell
    b = a + 1.0

    def intact(x: np.ndarray, y: np.ndarray) -> float:
        rows_whole = np.all(np.diff(x, axis=1) == 1.0)
        return float(rows_whole and np.all(y - x == 1.0))

    est = stats.bootstrap(intact, a, b, n_boot=200, seed=1)
    assert (est.value, est.ci_low, est.ci_high) == (1.0, 1.0, 1.0)


def test_paired_bootstrap_much_narrower_than_unpaired() -> None:
    rng = np.random.default_rng(11)
    prompt = rng.normal(0.0, 3.0, size=(60, 1))  # strong prompt effect shared by the pair
    a = prompt + rng.normal(0.0, 0.3, size=(60, 5))
    b = prompt + 0.5 + rng.normal(0.0, 0.3, size=(60, 5))
    diff = lambda x, y: float(np.mean(y) - np.mean(x))  # noqa: E731
    paired = stats.bootstrap(diff, a, b, n_boot=500, seed=0)
    unpaired = stats.bootstrap(diff, a, rng.permutation(b), n_boot=500, seed=0)
    assert paired.ci_high - paired.ci_low < 0.25 * (unpaired.ci_high - unpaired.ci_low)
    assert paired.ci_low > 0.3


def test_bootstrap_drops_nan_replicates_then_gives_up() -> None:
    x = np.arange(40.0).reshape(20, 2)
    few_nan = stats.bootstrap(lambda y: np.nan if y[0, 0] == 0 else float(np.mean(y)), x, n_boot=300)
    assert np.isfinite(few_nan.ci_low) and np.isfinite(few_nan.ci_high)
    mostly_nan = stats.bootstrap(lambda y: np.nan if y[0, 0] < 30 else 1.0, x, n_boot=300)
    assert math.isnan(mostly_nan.value)  # full data: first row is row 0
    assert math.isnan(mostly_nan.ci_low) and math.isnan(mostly_nan.ci_high)


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    data = _prompt_data(np.random.default_rng(0))
    assert stats.bootstrap(stats.effect, data["v"], data["base"], n_boot=300, seed=5) == stats.bootstrap(
        stats.effect, data["v"], data["base"], n_boot=300, seed=5
    )
    assert stats.effect_ci(data["v"], data["base"], 300, 5) != stats.effect_ci(data["v"], data["base"], 300, 6)


@pytest.mark.parametrize(
    ("fast", "slow"),
    [
        (stats.effect_ci, stats.effect),
        (stats.cohens_d_ci, stats.paired_cohens_d),
    ],
)
def test_vectorised_cis_match_generic_bootstrap(fast, slow) -> None:
    data = _prompt_data(np.random.default_rng(1))
    est_fast = fast(data["v"], data["base"], n_boot=400, seed=9)
    est_slow = stats.bootstrap(slow, data["v"], data["base"], n_boot=400, seed=9)
    assert est_fast.to_dict() == pytest.approx(est_slow.to_dict(), rel=1e-9, abs=1e-12)


def _fieller_by_test_inversion(pert, v, base, grid: np.ndarray) -> np.ndarray:
    """The ρ of ``grid`` that scipy's one-sample t-test on prompt means of (pert − base) − ρ(v − base)
    does not reject at 5 %: the definition of Fieller's set, computed independently of the closed form."""
    numerator, denominator = (pert - base).mean(axis=1), (v - base).mean(axis=1)
    return np.array([sps.ttest_1samp(numerator - rho * denominator, 0.0).pvalue >= 0.05 for rho in grid])


def test_efficacy_ratio_ci_is_fiellers_set_of_unrejected_ratios() -> None:
    data = _prompt_data(np.random.default_rng(2))
    args = (data["v+orth"], data["v"], data["base"])
    estimate = stats.efficacy_ratio_ci(*args)
    assert estimate.value == pytest.approx(stats.efficacy_ratio(*args))
    assert estimate.ci_low < estimate.value < estimate.ci_high and estimate.ci_low < 0.9 < estimate.ci_high
    grid = np.linspace(estimate.ci_low - 0.2, estimate.ci_high + 0.2, 801)
    inside = (grid >= estimate.ci_low) & (grid <= estimate.ci_high)
    accepted = _fieller_by_test_inversion(*args, grid)
    # Agreement everywhere but on the grid points straddling a bound.
    assert np.sum(inside != accepted) <= 2
    assert accepted[inside][1:-1].all() and not accepted[~inside].any()


def test_efficacy_ratio_ci_is_unbounded_exactly_when_v_does_not_steer_significantly() -> None:
    rng = np.random.default_rng(7)
    data = _prompt_data(rng, n_rows=12)
    weak_v = data["base"] + 0.05 + rng.normal(0, 1.0, data["base"].shape)
    assert sps.ttest_1samp((weak_v - data["base"]).mean(axis=1), 0.0).pvalue > 0.05
    unbounded = stats.efficacy_ratio_ci(data["v+orth"], weak_v, data["base"])
    assert (unbounded.ci_low, unbounded.ci_high) == (-math.inf, math.inf)
    assert json.loads(json.dumps(unbounded.to_dict()))["ci_high"] == math.inf
    assert math.isnan(stats.efficacy_ratio_ci(data["v"], data["base"], data["base"]).value)


def test_where_v_barely_steers_fieller_is_unbounded_and_a_bootstrap_percentile_interval_misleads() -> None:
    """Δ(v) indistinguishable from 0: the ratio is not identified. Bootstrap replicates of it swing
    between large values of both signs, and their percentile interval is finite and here even
    excludes the estimate; Fieller's interval says what the data allow: any ratio."""
    rng = np.random.default_rng(19)
    base = rng.normal(0.0, 1.0, (10, 2))
    v = base + 0.5 + rng.normal(0.0, 1.0, base.shape)
    pert = base + 0.4 + rng.normal(0.0, 1.0, base.shape)
    assert sps.ttest_1samp((v - base).mean(axis=1), 0.0).pvalue > 0.05
    boot = stats.bootstrap(stats.efficacy_ratio, pert, v, base, n_boot=400, seed=0)
    assert math.isfinite(boot.ci_low) and math.isfinite(boot.ci_high)
    assert not boot.ci_low <= boot.value <= boot.ci_high
    fieller = stats.efficacy_ratio_ci(pert, v, base)
    assert fieller.value == boot.value and (fieller.ci_low, fieller.ci_high) == (-math.inf, math.inf)


def test_builtin_cis_are_fast() -> None:
    data = _prompt_data(np.random.default_rng(0), n_rows=100, n_cols=5)
    start = time.perf_counter()
    stats.efficacy_ratio_ci(data["v+orth"], data["v"], data["base"])
    stats.cohens_d_ci(data["v"], data["v+orth"], n_boot=2000, seed=0)
    stats.bootstrap(stats.effect, data["v"], data["base"], n_boot=2000, seed=0)
    assert time.perf_counter() - start < 1.0


# ----------------------------------------------------------------------------- compare_conditions


def test_compare_conditions_structure_and_values() -> None:
    data = _prompt_data(np.random.default_rng(5))
    out = stats.compare_conditions(data, baseline="base", reference="v", n_boot=300, seed=0)
    json.dumps(out)
    assert set(out) == {"v", "v+orth", "off"}
    assert set(out["v"]) == {"delta"}
    assert set(out["off"]) == {"delta", "efficacy_ratio", "cohens_d", "cohens_dz"}
    assert out["v"]["delta"]["ci_low"] > 0.8  # positive control: v beats the baseline
    assert out["off"]["efficacy_ratio"]["ci_high"] < 0.3  # a perturbation that breaks efficacy
    assert out["off"]["cohens_d"]["value"] < 0  # reference v scores higher than "off"
    assert out["v+orth"]["efficacy_ratio"]["value"] == pytest.approx(
        stats.efficacy_ratio(data["v+orth"], data["v"], data["base"])
    )
    assert out["off"]["cohens_dz"] == pytest.approx(stats.paired_cohens_dz(data["v"], data["off"]))


def test_compare_conditions_names_missing_or_bad_condition() -> None:
    data = _prompt_data(np.random.default_rng(5), n_rows=10)
    with pytest.raises(ValueError, match="'alpha0'"):
        stats.compare_conditions(data, baseline="alpha0", reference="v", n_boot=200, seed=0)
    with pytest.raises(ValueError, match="'base'"):
        stats.compare_conditions(data, baseline="base", reference="base", n_boot=200, seed=0)
    data["off"] = data["off"][:, :3]
    with pytest.raises(ValueError, match=r"'off': \(10, 3\)"):
        stats.compare_conditions(data, baseline="base", reference="v", n_boot=200, seed=0)


# ----------------------------------------------------------------------------- validation


def test_rejects_non_2d_and_names_shape() -> None:
    with pytest.raises(ValueError, match=r"\(6,\)"):
        stats.effect(np.ones(6), np.ones(6))


def test_rejects_single_row() -> None:
    with pytest.raises(ValueError, match=r"at least 2 prompts.*\(1, 4\)"):
        stats.paired_cohens_d(np.ones((1, 4)), np.ones((1, 4)))


def test_rejects_shape_mismatch_naming_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 3\)"):
        stats.effect(A, np.ones((3, 3)))


def test_rejects_non_finite_with_count_and_name() -> None:
    bad = A.copy()
    bad[0, 0], bad[2, 1] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"'scores_baseline'.* 2 non-finite"):
        stats.effect(A, bad)
    with pytest.raises(ValueError, match=r"'arrays\[1\]'.* 2 non-finite"):
        stats.bootstrap(np.mean, A, bad)


@pytest.mark.parametrize("n_boot", [0, 99, 1000.5])
def test_rejects_small_n_boot(n_boot) -> None:
    with pytest.raises(ValueError, match=f"n_boot={n_boot!r}"):
        stats.effect_ci(A, B, n_boot=n_boot, seed=0)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 1.5, -0.1])
def test_rejects_bad_confidence(confidence) -> None:
    with pytest.raises(ValueError, match=f"confidence={confidence!r}"):
        stats.bootstrap(np.mean, A, n_boot=100, confidence=confidence)


# ----------------------------------------------------------------------------- TOST


def _paired_prompts(
    rng: np.random.Generator, n_rows: int, n_cols: int, shift: float, prompt_sd: float = 1.0, noise_sd: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) with b − a = shift + prompt effect + cell noise (samples of a prompt correlated)."""
    a = rng.normal(0.0, 2.0, size=(n_rows, 1)) + rng.normal(0.0, 0.5, size=(n_rows, n_cols))
    diff = shift + rng.normal(0.0, prompt_sd, size=(n_rows, 1)) + rng.normal(0.0, noise_sd, size=(n_rows, n_cols))
    return a, a + diff


def test_tost_matches_scipy_one_sided_t_tests_on_prompt_means() -> None:
    a, b = _paired_prompts(np.random.default_rng(21), 30, 4, shift=0.1)
    out = stats.tost_paired(a, b, margin=0.5, alpha=0.05)
    diffs = (b - a).mean(axis=1)
    lower = sps.ttest_1samp(diffs, -0.5, alternative="greater")
    upper = sps.ttest_1samp(diffs, 0.5, alternative="less")
    assert out["t_lower"] == pytest.approx(lower.statistic)
    assert out["p_lower"] == pytest.approx(lower.pvalue)
    assert out["t_upper"] == pytest.approx(upper.statistic)
    assert out["p_upper"] == pytest.approx(upper.pvalue)
    assert out["p"] == max(out["p_lower"], out["p_upper"])
    rel = sps.ttest_rel(b.mean(axis=1), a.mean(axis=1))
    assert out["p_difference"] == pytest.approx(rel.pvalue)
    ci90, ci95 = sps.ttest_1samp(diffs, 0.0).confidence_interval(0.90), rel.confidence_interval(0.95)
    assert (out["ci"]["ci_low"], out["ci"]["ci_high"]) == pytest.approx((ci90.low, ci90.high))
    assert (out["ci_two_sided"]["ci_low"], out["ci_two_sided"]["ci_high"]) == pytest.approx((ci95.low, ci95.high))
    assert out["ci_level"] == pytest.approx(0.90) and out["ci_two_sided_level"] == pytest.approx(0.95)
    assert (out["n"], out["df"]) == (30, 29)
    assert out["mean_difference"] == pytest.approx(stats.effect(b, a))
    assert out["sd_difference"] == pytest.approx(np.std(diffs, ddof=1))
    json.dumps(out)


def test_tost_equivalent_iff_90_ci_inside_margin() -> None:
    rng = np.random.default_rng(22)
    seen = set()
    for shift, margin in [(0.0, 0.6), (0.0, 0.05), (0.4, 0.5), (1.0, 0.5), (-0.3, 0.4), (0.1, 0.3)]:
        a, b = _paired_prompts(rng, 40, 3, shift)
        out = stats.tost_paired(a, b, margin)
        inside = -margin < out["ci"]["ci_low"] and out["ci"]["ci_high"] < margin
        assert out["equivalent"] == inside == (out["p"] < 0.05)
        seen.add(out["equivalent"])
    assert seen == {True, False}


def test_tost_uses_prompt_means_so_repeated_samples_add_nothing() -> None:
    a, b = _paired_prompts(np.random.default_rng(23), 25, 2, shift=0.05)
    once = stats.tost_paired(a, b, 0.4)
    tiled = stats.tost_paired(np.tile(a, 10), np.tile(b, 10), 0.4)
    for key in ("t_lower", "t_upper", "p", "mean_difference", "sd_difference"):
        assert tiled[key] == pytest.approx(once[key])
    assert tiled["n"] == once["n"] == 25


def test_tost_type_i_error_held_under_within_prompt_correlation() -> None:
    rng = np.random.default_rng(24)
    margin, reps = 0.3, 600
    prompt_level = cell_level = 0
    for _ in range(reps):  # true difference on the margin: H0 is (just) true
        a, b = _paired_prompts(rng, 20, 5, shift=margin, prompt_sd=1.0, noise_sd=0.3)
        prompt_level += stats.tost_paired(a, b, margin)["equivalent"]
        cells = (b - a).ravel()  # the invalid analysis that treats correlated cells as independent
        cell_level += sps.ttest_1samp(cells, margin, alternative="less").pvalue < 0.05
    assert prompt_level / reps < 0.075
    assert cell_level / reps > 0.15


def test_tost_constant_differences() -> None:
    same = stats.tost_paired(A, A.copy(), margin=0.1)
    assert same["equivalent"] and same["p"] == 0.0 and same["sd_difference"] == 0.0
    assert same["p_difference"] == 1.0
    shifted = stats.tost_paired(A, A + 1.0, margin=0.5)
    assert not shifted["equivalent"] and shifted["p_upper"] == 1.0 and shifted["p_difference"] == 0.0


@pytest.mark.parametrize("margin", [0.0, -0.2, float("nan"), float("inf"), "0.2", True])
def test_tost_rejects_bad_margin(margin) -> None:
    with pytest.raises(ValueError, match=re.escape(f"margin={margin!r}")):
        stats.tost_paired(A, B, margin=margin)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.7, -0.01])
def test_tost_rejects_bad_alpha(alpha) -> None:
    with pytest.raises(ValueError, match=re.escape(f"alpha={alpha!r}")):
        stats.tost_paired(A, B, margin=0.2, alpha=alpha)


def test_tost_validates_scores() -> None:
    with pytest.raises(ValueError, match=r"at least 2 prompts.*\(1, 3\)"):
        stats.tost_paired(np.ones((1, 3)), np.ones((1, 3)), margin=0.2)
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 3\)"):
        stats.tost_paired(A, np.ones((3, 3)), margin=0.2)


# ----------------------------------------------------------------------------- margins


def test_margin_helpers_match_hand_computation() -> None:
    assert stats.margin_from_baseline_sd(A) == pytest.approx(0.2 * math.sqrt(3.5))
    assert stats.margin_from_baseline_sd(A, fraction=0.5) == pytest.approx(0.5 * math.sqrt(3.5))
    assert stats.margin_from_effect(B, A) == pytest.approx(0.1 * 7.0 / 6.0)
    assert stats.margin_from_effect(A, B, fraction=0.3) == pytest.approx(0.3 * 7.0 / 6.0)  # |Δ|


def test_margin_helpers_reject_zero_margins_and_bad_fractions() -> None:
    with pytest.raises(ValueError, match="constant"):
        stats.margin_from_baseline_sd(np.full((4, 2), 0.3))
    with pytest.raises(ValueError, match="Δ\\(v\\).* is 0"):
        stats.margin_from_effect(A, A.copy())
    for bad in (0.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=re.escape(f"fraction={bad!r}")):
            stats.margin_from_baseline_sd(A, fraction=bad)
        with pytest.raises(ValueError, match=re.escape(f"fraction={bad!r}")):
            stats.margin_from_effect(B, A, fraction=bad)


# ----------------------------------------------------------------------------- power


def _simulated_tost_power(
    rng: np.random.Generator, n: int, margin: float, sd: float, delta: float, reps: int = 20000, alpha: float = 0.05
) -> float:
    """Monte-Carlo power: the TOST decision of tost_paired, vectorised over replicates."""
    diffs = rng.normal(delta, sd, size=(reps, n))
    mean, half = diffs.mean(axis=1), sps.t.ppf(1 - alpha, n - 1) * diffs.std(axis=1, ddof=1) / math.sqrt(n)
    return float(np.mean((mean - half > -margin) & (mean + half < margin)))


def test_simulated_power_uses_the_same_decision_as_tost_paired() -> None:
    rng = np.random.default_rng(30)
    for k in range(40):
        a, b = _paired_prompts(rng, 12, 3, shift=0.05 * (k % 5))
        diffs = (b - a).mean(axis=1)
        mean, half = diffs.mean(), sps.t.ppf(0.95, 11) * diffs.std(ddof=1) / math.sqrt(12)
        assert stats.tost_paired(a, b, 0.6)["equivalent"] == ((mean - half > -0.6) and (mean + half < 0.6))


@pytest.mark.parametrize(
    ("n", "margin", "sd", "delta"),
    [(10, 0.5, 1.0, 0.0), (20, 0.5, 1.0, 0.2), (30, 0.4, 0.8, -0.1), (50, 0.3, 1.0, 0.0), (15, 1.0, 2.0, 0.9)],
)
def test_tost_power_matches_simulation(n, margin, sd, delta) -> None:
    simulated = _simulated_tost_power(np.random.default_rng(n), n, margin, sd, delta)
    assert stats.tost_power(n, margin, sd, true_difference=delta) == pytest.approx(simulated, abs=0.03)


def _nct_lower_bound(n: int, margin: float, sd_diff: float, alpha: float = 0.05) -> float:
    """The usual noncentral-t approximation of the TOST power, F(−c; ncp_U) − F(c; ncp_L) clipped at 0:
    built from the two marginal t's, so a lower bound of the exact (joint) power, tight when it is high."""
    df, crit, root = n - 1, float(sps.t.ppf(1.0 - alpha, n - 1)), math.sqrt(n)
    upper = sps.nct.cdf(-crit, df, root * -margin / sd_diff)
    lower = sps.nct.cdf(crit, df, root * margin / sd_diff)
    return float(max(0.0, upper - lower))


def test_tost_power_properties() -> None:
    powers = [stats.tost_power(n, 0.3, 1.0) for n in (5, 20, 50, 100, 200, 400)]
    assert all(x < y for x, y in itertools.pairwise(powers))
    assert powers[-1] > 0.95
    assert stats.tost_power(40, 0.3, 1.0, true_difference=0.1) == pytest.approx(
        stats.tost_power(40, 0.3, 1.0, true_difference=-0.1)
    )
    assert stats.tost_power(40, 0.3, 1.0) == pytest.approx(stats.tost_power(40, 3.0, 10.0))  # scale-free
    assert stats.tost_power(10**4, 0.1, 1.0, true_difference=0.1) == pytest.approx(0.05, abs=1e-3)  # on the margin
    for n in (30, 100, 300):  # high power: the noncentral-t bound is tight; always a lower bound
        exact, bound = stats.tost_power(n, 0.5, 1.0), _nct_lower_bound(n, 0.5, 1.0)
        assert bound <= exact + 1e-9
        if exact > 0.6:
            assert bound == pytest.approx(exact, abs=1e-4)


def test_required_n_is_the_smallest_adequate_n() -> None:
    n = stats.required_n(0.2, 1.0)
    assert stats.tost_power(n, 0.2, 1.0) >= 0.8 > stats.tost_power(n - 1, 0.2, 1.0)
    z = sps.norm.ppf(0.95) + sps.norm.ppf(0.9)
    assert (z / 0.2) ** 2 < n < (z / 0.2) ** 2 + 5  # normal approximation, slightly smaller
    assert stats.required_n(2.0, 10.0) == n
    assert stats.required_n(0.2, 1.0, power=0.9) > n
    assert stats.required_n(0.2, 1.0, true_difference=0.05) > n
    assert stats.required_n(5.0, 0.1) == 2


def test_power_report_is_json_able_and_consistent() -> None:
    report = stats.power_report(100, 0.2, 1.0)
    json.dumps(report)
    assert report["required_n"] == stats.required_n(0.2, 1.0)
    assert report["power"] == pytest.approx(stats.tost_power(100, 0.2, 1.0))
    assert report["adequate"] is False and "TOST" in report["method"]


def test_power_at_zero_sd_is_the_limit_of_the_tost_on_constant_differences() -> None:
    """Identical generations under common random numbers give sd_difference = 0: the power is the
    σ → 0 limit (the TOST on constant differences rejects iff |δ| < m), not an error."""
    constant = np.full((12, 2), 0.5)
    tost = stats.tost_paired(constant, constant, 0.2)
    report = stats.power_report(tost["n"], 0.2, tost["sd_difference"])
    assert tost["equivalent"] and report["power"] == 1.0 and report["required_n"] == 2
    assert stats.tost_power(12, 0.2, 1e-6) == pytest.approx(1.0)
    assert stats.tost_power(12, 0.2, 0.0, true_difference=0.3) == 0.0


def test_power_functions_reject_bad_values() -> None:
    for kwargs, text in [
        ({"n": 1}, "n=1"),
        ({"n": 10.0}, "n=10.0"),
        ({"margin": 0.0}, "margin=0.0"),
        ({"sd_diff": -1.0}, "sd_diff=-1.0"),
        ({"alpha": 0.5}, "alpha=0.5"),
        ({"true_difference": float("nan")}, "true_difference=nan"),
    ]:
        args = {"n": 10, "margin": 0.2, "sd_diff": 1.0} | kwargs
        with pytest.raises(ValueError, match=re.escape(text)):
            stats.tost_power(**args)
    with pytest.raises(ValueError, match=re.escape("power=1.0")):
        stats.required_n(0.2, 1.0, power=1.0)
    with pytest.raises(ValueError, match=re.escape("true_difference=0.3")):
        stats.required_n(0.2, 1.0, true_difference=0.3)


# ----------------------------------------------------------------------------- verdict


def _tost_dict(equivalent: bool, low: float, high: float, margin: float = 0.2) -> dict:
    return {
        "equivalent": equivalent,
        "margin": margin,
        "ci_two_sided": {"value": (low + high) / 2, "ci_low": low, "ci_high": high},
    }


EFFECT = {"value": 1.0, "ci_low": 0.6, "ci_high": 1.4}


@pytest.mark.parametrize(
    ("tost", "power", "delta_v", "expected"),
    [
        (_tost_dict(True, -0.05, 0.05), 0.9, EFFECT, "equivalent"),
        (_tost_dict(True, 0.01, 0.05), 0.9, EFFECT, "equivalent"),  # tiny but significant difference
        (_tost_dict(False, 0.6, 0.9), 0.9, EFFECT, "not equivalent"),  # CI beyond the margin
        (_tost_dict(False, -0.9, -0.05), 0.3, EFFECT, "not equivalent"),  # significant, straddles -m
        (_tost_dict(False, -0.3, 0.4), 0.5, EFFECT, "inconclusive (underpowered)"),
        (_tost_dict(False, -0.3, 0.4), 0.85, EFFECT, "inconclusive"),
        (_tost_dict(True, -0.05, 0.05), 0.9, {"value": 0.1, "ci_low": -0.1, "ci_high": 0.3}, "no effect of v"),
        (_tost_dict(False, 0.6, 0.9), 0.9, {"value": 0.1, "ci_low": 0.0, "ci_high": 0.3}, "no effect of v"),
        (_tost_dict(True, -0.05, 0.05), 0.9, {"value": 0.1, "ci_low": math.nan, "ci_high": math.nan}, "no effect of v"),
        (_tost_dict(False, 0.6, 0.9), 0.9, {"value": -1.0, "ci_low": -1.4, "ci_high": -0.6}, "not equivalent"),
        # A margin of at least |Δ(v)| would also admit a δ that cancels v: no equivalence claim at it.
        (_tost_dict(True, -0.05, 0.05, margin=1.2), 0.9, EFFECT, stats.MARGIN_TOO_WIDE),
        (_tost_dict(True, -0.05, 0.05, margin=1.0), 0.9, EFFECT, stats.MARGIN_TOO_WIDE),
        (_tost_dict(False, -0.9, 0.9, margin=1.2), 0.3, EFFECT, stats.MARGIN_TOO_WIDE),
        (_tost_dict(True, 0.01, 0.05, margin=1.2), 0.9, EFFECT, "not equivalent"),  # still significantly different
    ],
)
def test_verdict_rules(tost, power, delta_v, expected) -> None:
    assert stats.verdict(tost, power, delta_v) == expected
    assert expected in stats.VERDICTS


def test_verdict_end_to_end_with_positive_control() -> None:
    rng = np.random.default_rng(40)
    base = rng.normal(0.0, 1.0, size=(200, 1)) + rng.normal(0.0, 0.5, size=(200, 4))
    v = base + 1.0 + rng.normal(0.0, 0.3, size=base.shape)
    margin = stats.margin_from_baseline_sd(base)
    delta_v = stats.effect_ci(v, base, n_boot=500, seed=0).to_dict()

    def judge(other: np.ndarray) -> str:
        tost = stats.tost_paired(v, other, margin)
        return stats.verdict(tost, stats.tost_power(tost["n"], margin, tost["sd_difference"]), delta_v)

    assert judge(v + rng.normal(0.0, 0.3, size=v.shape)) == "equivalent"
    assert judge(v - 0.8 + rng.normal(0.0, 0.3, size=v.shape)) == "not equivalent"  # δ_top-like control
    short = stats.tost_paired(v[:6], v[:6] + rng.normal(0.0, 1.0, size=(6, 4)), margin)
    assert stats.verdict(short, stats.tost_power(6, margin, short["sd_difference"]), delta_v) == (
        "inconclusive (underpowered)"
    )


def test_verdict_rejects_bad_inputs() -> None:
    good = _tost_dict(True, -0.1, 0.1)
    with pytest.raises(ValueError, match=re.escape("power=1.5")):
        stats.verdict(good, 1.5, EFFECT)
    with pytest.raises(ValueError, match=re.escape("min_power=0.0")):
        stats.verdict(good, 0.9, EFFECT, min_power=0.0)
    with pytest.raises(ValueError, match="'ci_two_sided'"):
        stats.verdict({"equivalent": True}, 0.9, EFFECT)
    with pytest.raises(ValueError, match="'margin'"):
        stats.verdict({"equivalent": True, "ci_two_sided": good["ci_two_sided"]}, 0.9, EFFECT)
    with pytest.raises(ValueError, match="delta_v_ci lacks.*ci_high"):
        stats.verdict(good, 0.9, {"value": 1.0, "ci_low": 0.5})


# ----------------------------------------------------------------------------- permutation null


def _brute_force_abs_dz(diffs: np.ndarray) -> np.ndarray:
    """|d_z| of every one of the 2**n sign flips, by explicit enumeration."""
    out = []
    for signs in itertools.product((1.0, -1.0), repeat=diffs.size):
        flipped = np.array(signs) * diffs
        out.append(abs(flipped.mean() / flipped.std(ddof=1)))
    return np.array(out)


def test_permutation_exact_mode_matches_brute_force() -> None:
    a, b = _paired_prompts(np.random.default_rng(50), 8, 3, shift=0.5)
    out = stats.permutation_null_d(a, b, n_perm=2000)
    diffs = (b - a).mean(axis=1)
    brute = _brute_force_abs_dz(diffs)
    observed = diffs.mean() / diffs.std(ddof=1)
    assert out["exact"] and out["n_perm"] == 256
    assert out["observed_dz"] == pytest.approx(observed)
    np.testing.assert_allclose(np.sort(out["null_abs_dz"]), np.sort(brute), rtol=1e-12)
    assert out["p_value"] == pytest.approx(np.mean(brute >= abs(observed) * (1 - 1e-12)))
    assert 0.0 < out["p_value"] < 0.2


def test_permutation_monte_carlo_mode_close_to_brute_force() -> None:
    a, b = _paired_prompts(np.random.default_rng(51), 12, 2, shift=0.35)
    diffs = (b - a).mean(axis=1)
    brute = _brute_force_abs_dz(diffs)
    exact_p = float(np.mean(brute >= abs(diffs.mean() / diffs.std(ddof=1)) * (1 - 1e-12)))
    out = stats.permutation_null_d(a, b, n_perm=2000, seed=3)
    assert not out["exact"] and out["n_perm"] == 2000
    assert 0.02 < exact_p < 0.5
    assert out["p_value"] == pytest.approx(exact_p, abs=0.03)


def test_permutation_p_close_to_t_test_and_null_centred_near_zero() -> None:
    a, b = _paired_prompts(np.random.default_rng(52), 100, 3, shift=0.15)
    out = stats.permutation_null_d(a, b, n_perm=4000, seed=1)
    assert out["p_value"] == pytest.approx(sps.ttest_rel(b.mean(axis=1), a.mean(axis=1)).pvalue, abs=0.03)
    assert out["null_mean"] == pytest.approx(math.sqrt(2 / math.pi) / 10, abs=0.01)  # E|t|/sqrt(n)
    assert out["null_q95"] == pytest.approx(sps.t.ppf(0.975, 99) / 10, abs=0.02)


def test_permutation_is_deterministic_and_handles_degenerate_data() -> None:
    a, b = _paired_prompts(np.random.default_rng(53), 30, 2, shift=0.2)
    one, two = stats.permutation_null_d(a, b, 500, seed=7), stats.permutation_null_d(a, b, 500, seed=7)
    np.testing.assert_array_equal(one["null_abs_dz"], two["null_abs_dz"])
    assert one["p_value"] == two["p_value"]
    assert not np.array_equal(one["null_abs_dz"], stats.permutation_null_d(a, b, 500, seed=8)["null_abs_dz"])
    same = stats.permutation_null_d(A, A.copy())
    assert same["observed_abs_dz"] == 0.0 and same["p_value"] == 1.0
    shifted = stats.permutation_null_d(np.zeros((10, 2)), np.ones((10, 2)), n_perm=300, seed=0)
    assert shifted["observed_abs_dz"] == math.inf and shifted["p_value"] < 0.02
    for bad in (0, 10.5, True):
        with pytest.raises(ValueError, match=re.escape(f"n_perm={bad!r}")):
            stats.permutation_null_d(A, B, n_perm=bad)


# ----------------------------------------------------------------------------- Holm


def test_holm_matches_hand_computation() -> None:
    raw = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.005, "e": 0.5}
    # sorted d, a, c, b, e: ×5, ×4, ×3, ×2, ×1 = .025, .04, .09, .08, .5 -> running max
    expected = {"a": 0.04, "b": 0.09, "c": 0.09, "d": 0.025, "e": 0.5}
    out = stats.holm(raw)
    assert list(out) == list(raw)
    assert out == pytest.approx(expected)
    capped = stats.holm({"x": 0.3, "y": 0.6, "z": 0.9})
    assert capped == pytest.approx({"x": 0.9, "y": 1.0, "z": 1.0})
    assert stats.holm({}) == {} and stats.holm({"only": 0.02}) == {"only": 0.02}


def test_holm_is_monotone_in_the_raw_p_values() -> None:
    raw = dict(zip("abcdefghij", np.random.default_rng(60).uniform(0, 0.2, 10).tolist()))
    out = stats.holm(raw)
    ordered = sorted(raw, key=raw.get)
    assert all(out[x] <= out[y] for x, y in itertools.pairwise(ordered))
    assert all(out[k] >= raw[k] for k in raw)


def test_holm_matches_statsmodels() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    raw = dict(zip("abcdefghijkl", np.random.default_rng(61).uniform(0, 0.3, 12).tolist()))
    reference = multitest.multipletests(list(raw.values()), method="holm")[1]
    assert list(stats.holm(raw).values()) == pytest.approx(list(reference))


@pytest.mark.parametrize("bad", [-0.1, 1.2, float("nan"), "0.1"])
def test_holm_rejects_bad_pvalues(bad) -> None:
    with pytest.raises(ValueError, match="'trait_b'"):
        stats.holm({"trait_a": 0.1, "trait_b": bad})
