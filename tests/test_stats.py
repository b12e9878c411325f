"""Tests of steerid.stats: paired effect sizes, efficacy ratios, cluster bootstrap."""

from __future__ import annotations

import json
import math
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
    args = (data["v+orth"], data["v"], data["base"])
    assert stats.efficacy_ratio_ci(*args, n_boot=300, seed=5) == stats.efficacy_ratio_ci(*args, n_boot=300, seed=5)
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


def test_vectorised_efficacy_ci_matches_generic_bootstrap() -> None:
    data = _prompt_data(np.random.default_rng(2))
    args = (data["v+orth"], data["v"], data["base"])
    est_fast = stats.efficacy_ratio_ci(*args, n_boot=400, seed=4)
    est_slow = stats.bootstrap(stats.efficacy_ratio, *args, n_boot=400, seed=4)
    assert est_fast.to_dict() == pytest.approx(est_slow.to_dict(), rel=1e-9)
    assert est_fast.ci_low < 0.9 < est_fast.ci_high


def test_builtin_cis_are_fast() -> None:
    data = _prompt_data(np.random.default_rng(0), n_rows=100, n_cols=5)
    start = time.perf_counter()
    stats.efficacy_ratio_ci(data["v+orth"], data["v"], data["base"], n_boot=2000, seed=0)
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
