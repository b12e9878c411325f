"""Paired effect sizes, efficacy ratios and cluster-bootstrap confidence intervals.

Scores come as arrays of shape ``(n_prompts, n_samples)``, one per steering condition,
aligned across conditions: row ``i`` is evaluation prompt ``i`` and column ``j`` is sample
``j`` generated with the same random numbers in every condition (common random numbers).

The bootstrap resamples prompts (rows) with replacement and keeps every sample of a row
together (cluster bootstrap). Within one replicate the same row indices are applied to every
array, so paired quantities stay paired. Confidence intervals are percentile intervals, except
the efficacy ratio's: Fieller's interval on prompt means (:func:`efficacy_ratio_ci`).

Equivalence statistics (TOST, its power, the E1 verdict, the sign-flip permutation null of
|d_z|) work on prompt-level means: the samples of each prompt are averaged first, so the unit
of analysis is the prompt and the tests stay valid when samples of one prompt are correlated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TypeGuard

import numpy as np
from scipy import stats as sps

__all__ = [
    "MARGIN_TOO_WIDE",
    "VERDICTS",
    "Estimate",
    "bootstrap",
    "cohens_d_ci",
    "compare_conditions",
    "effect",
    "effect_ci",
    "efficacy_ratio",
    "efficacy_ratio_ci",
    "holm",
    "judge",
    "margin_below_effect",
    "margin_from_baseline_sd",
    "margin_from_effect",
    "paired_cohens_d",
    "paired_cohens_dz",
    "permutation_null_d",
    "power_report",
    "required_n",
    "tost_paired",
    "tost_power",
    "verdict",
]

_MIN_BOOT = 100
_REL_TOL = 1e-12  # a standard deviation below this fraction of the data scale counts as 0


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval (``nan`` bounds when undefined)."""

    value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict:
        """Plain JSON-able dict ``{"value", "ci_low", "ci_high"}`` of Python floats."""
        return {key: float(val) for key, val in asdict(self).items()}


# --------------------------------------------------------------------------- validation


def _as_scores(name: str, x: object) -> np.ndarray:
    """Return ``x`` as a float64 2-D array with >= 2 rows and finite values, else raise."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"scores {name!r} are not numeric: {err}") from None
    if arr.ndim != 2:
        raise ValueError(f"scores {name!r} must be 2-D (n_prompts, n_samples), got shape {arr.shape}")
    if arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(f"scores {name!r} need at least 2 prompts (rows) and 1 sample, got shape {arr.shape}")
    n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if n_bad:
        raise ValueError(f"scores {name!r} contain {n_bad} non-finite value(s) (NaN or inf)")
    return arr


def _validate(named: Mapping[str, object]) -> list[np.ndarray]:
    """Validate several aligned score arrays; they must all share one shape."""
    arrays = {name: _as_scores(name, x) for name, x in named.items()}
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        detail = ", ".join(f"{name!r}: {shape}" for name, shape in shapes.items())
        raise ValueError(f"aligned score arrays must have the same shape, got {detail}")
    return list(arrays.values())


def _check_boot(n_boot: int, confidence: float) -> None:
    """Raise ValueError unless ``n_boot >= 100`` is an integer and ``0 < confidence < 1``."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < _MIN_BOOT:
        raise ValueError(f"n_boot must be an integer >= {_MIN_BOOT}, got n_boot={n_boot!r}")
    _check_confidence(confidence)


def _check_confidence(confidence: float) -> None:
    if not (isinstance(confidence, (int, float, np.floating)) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"confidence must lie strictly between 0 and 1, got confidence={confidence!r}")


# --------------------------------------------------------------------------- point estimates


def _ratio(num: np.ndarray, den: np.ndarray, zero: np.ndarray | bool) -> np.ndarray:
    """``num / den`` with ``nan`` wherever ``zero`` is true (no warnings)."""
    den = np.where(zero, 1.0, den)
    return np.where(zero, np.nan, num / den)


def _scale(*arrays: np.ndarray) -> float:
    """Largest absolute value across arrays: the yardstick for 'zero' spreads."""
    return float(max(np.max(np.abs(a)) for a in arrays))


def _d_av(mean_diff, var_a, var_b, scale: float):
    """Signed d_av = mean difference / sqrt of the average variance; nan if that is 0."""
    sd = np.sqrt(np.maximum((np.asarray(var_a) + np.asarray(var_b)) / 2.0, 0.0))
    return _ratio(np.asarray(mean_diff), sd, sd <= _REL_TOL * scale)


def effect(scores_condition: np.ndarray, scores_baseline: np.ndarray) -> float:
    """Steering effect Δ = mean(condition) − mean(baseline) over all aligned cells."""
    cond, base = _validate({"scores_condition": scores_condition, "scores_baseline": scores_baseline})
    return float(np.mean(cond - base))


def efficacy_ratio(scores_perturbed: np.ndarray, scores_v: np.ndarray, scores_baseline: np.ndarray) -> float:
    """Efficacy ratio R = Δ(v+δ) / Δ(v), both against the α = 0 baseline; nan if Δ(v) == 0."""
    pert, v, base = _validate(
        {"scores_perturbed": scores_perturbed, "scores_v": scores_v, "scores_baseline": scores_baseline}
    )
    delta_v = float(np.mean(v - base))
    return float("nan") if delta_v == 0.0 else float(np.mean(pert - base)) / delta_v


def paired_cohens_d(a: np.ndarray, b: np.ndarray) -> float:
    """Signed paired d_av = mean(b − a) / sqrt((var(a) + var(b)) / 2), ddof=1.

    Computed on all aligned cells flattened (not on prompt means). Positive when ``b`` is
    larger. ``nan`` when both arrays are constant (denominator 0).
    """
    a, b = _validate({"a": a, "b": b})
    var_a, var_b = np.var(a, ddof=1), np.var(b, ddof=1)
    return float(_d_av(np.mean(b - a), var_a, var_b, _scale(a, b)))


def paired_cohens_dz(a: np.ndarray, b: np.ndarray) -> float:
    """Paired d_z = mean(b − a) / sd(b − a, ddof=1) over all aligned cells flattened.

    Equals t / sqrt(n) of the paired t-test on the n flattened cells. ``nan`` when the
    differences are constant.
    """
    a, b = _validate({"a": a, "b": b})
    diff = b - a
    sd = np.std(diff, ddof=1)
    return float(_ratio(np.mean(diff), sd, sd <= _REL_TOL * _scale(a, b)))


# --------------------------------------------------------------------------- bootstrap core


def _draw_rows(n_rows: int, n_boot: int, seed: int) -> np.ndarray:
    """Row indices of shape (n_boot, n_rows), drawn once from ``default_rng(seed)``."""
    return np.random.default_rng(seed).integers(0, n_rows, size=(n_boot, n_rows))


def _summarise(value: float, replicates: np.ndarray, confidence: float) -> Estimate:
    """Percentile CI from replicates, dropping nan; (nan, nan) if more than half are nan."""
    reps = np.asarray(replicates, dtype=np.float64)
    finite = reps[~np.isnan(reps)]
    if 2 * (reps.size - finite.size) > reps.size or finite.size == 0:
        return Estimate(float(value), float("nan"), float("nan"))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return Estimate(float(value), float(low), float(high))


def _boot_sums(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per-replicate sum of all cells of ``x`` over the resampled rows, shape (n_boot,)."""
    return x.sum(axis=1)[rows].sum(axis=1)


def _boot_mean_var(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-replicate mean and variance (ddof=1) of all cells, via centred row moments."""
    centre = float(np.mean(x))
    xc = x - centre
    n = x.size
    s, ss = _boot_sums(xc, rows), _boot_sums(xc * xc, rows)
    return s / n + centre, (ss - s * s / n) / (n - 1)


def bootstrap(
    statistic: Callable[..., float],
    *arrays: np.ndarray,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Cluster (prompt-level) percentile bootstrap of ``statistic(*arrays)``.

    Each replicate resamples rows with replacement, applying the same row indices to every
    array so paired cells stay paired. ``value`` is the statistic on the full data.
    Replicates giving nan are dropped; if more than half are nan the CI is (nan, nan).
    """
    _check_boot(n_boot, confidence)
    data = _validate({f"arrays[{i}]": x for i, x in enumerate(arrays)})
    if not data:
        raise ValueError("bootstrap needs at least one score array, got none")
    rows = _draw_rows(data[0].shape[0], n_boot, seed)
    reps = np.array([float(statistic(*(x[r] for x in data))) for r in rows])
    return _summarise(float(statistic(*data)), reps, confidence)


# --------------------------------------------------------------------------- built-in CIs (vectorised)


def effect_ci(
    cond: np.ndarray, baseline: np.ndarray, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> Estimate:
    """Δ = mean(cond) − mean(baseline) with a paired cluster-bootstrap CI."""
    _check_boot(n_boot, confidence)
    cond, baseline = _validate({"cond": cond, "baseline": baseline})
    rows = _draw_rows(cond.shape[0], n_boot, seed)
    reps = _boot_sums(cond - baseline, rows) / cond.size
    return _summarise(effect(cond, baseline), reps, confidence)


def efficacy_ratio_ci(
    scores_perturbed: np.ndarray, scores_v: np.ndarray, scores_baseline: np.ndarray, confidence: float = 0.95
) -> Estimate:
    """R = Δ(v+δ)/Δ(v) with Fieller's interval on prompt means.

    The interval is every ρ that a one-sample t-test of the prompt means of
    (v+δ − base) − ρ·(v − base) does not reject at level 1 − ``confidence``: a quadratic
    inequality in ρ. It is bounded exactly when Δ(v) itself differs from 0 at that level, and
    then contains the estimate (a percentile bootstrap of a ratio need not: its replicates blow up
    as Δ(v) nears 0). Otherwise the set is unbounded (two rays, or every ρ) and is reported as
    (-inf, inf); with Δ(v) = 0 the estimate is nan.
    """
    _check_confidence(confidence)
    pert, v, base = _validate(
        {"scores_perturbed": scores_perturbed, "scores_v": scores_v, "scores_baseline": scores_baseline}
    )
    numerator, denominator = (pert - base).mean(axis=1), (v - base).mean(axis=1)
    n = numerator.size
    covariance = np.cov(np.stack([numerator, denominator]), ddof=1) / n
    t2 = float(sps.t.ppf(0.5 + confidence / 2.0, n - 1)) ** 2
    a, b = float(numerator.mean()), float(denominator.mean())
    value = efficacy_ratio(pert, v, base)
    # (a − ρb)² ≤ t²·Var(a − ρb)  ⇔  q2·ρ² + q1·ρ + q0 ≤ 0
    q2 = b * b - t2 * covariance[1, 1]
    q1 = -2.0 * (a * b - t2 * covariance[0, 1])
    q0 = a * a - t2 * covariance[0, 0]
    if q2 <= 0.0:
        return Estimate(value, -math.inf, math.inf)
    root = math.sqrt(max(q1 * q1 - 4.0 * q2 * q0, 0.0))
    return Estimate(value, (-q1 - root) / (2.0 * q2), (-q1 + root) / (2.0 * q2))


def cohens_d_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95) -> Estimate:
    """Signed paired d_av(a, b) (positive when ``b`` is larger) with a cluster-bootstrap CI."""
    _check_boot(n_boot, confidence)
    a, b = _validate({"a": a, "b": b})
    rows = _draw_rows(a.shape[0], n_boot, seed)
    (_, var_a), (_, var_b) = _boot_mean_var(a, rows), _boot_mean_var(b, rows)
    mean_diff = _boot_sums(b - a, rows) / a.size
    reps = _d_av(mean_diff, var_a, var_b, _scale(a, b))
    return _summarise(paired_cohens_d(a, b), reps, confidence)


# --------------------------------------------------------------------------- all conditions


def compare_conditions(
    scores: dict[str, np.ndarray], baseline: str, reference: str, n_boot: int = 2000, seed: int = 0
) -> dict:
    """Compare every condition with the baseline and with the reference (usually ``v``).

    For each condition ``c`` other than ``baseline``: ``{"delta": Δ(c)}``, and for
    ``c != reference`` also ``"efficacy_ratio"`` (Δ(c)/Δ(reference), Fieller's interval), ``"cohens_d"``
    (d_av(reference, c)) and ``"cohens_dz"`` (float). Estimates are JSON-able dicts. All
    bootstraps share ``seed``, hence the same resampled prompts across quantities.
    """
    _check_boot(n_boot, 0.95)
    for role, name in (("baseline", baseline), ("reference", reference)):
        if name not in scores:
            raise ValueError(f"{role} condition {name!r} not in scores (conditions: {sorted(scores)})")
    if baseline == reference:
        raise ValueError(f"reference condition must differ from the baseline, both are {baseline!r}")
    data = dict(zip(scores, _validate(scores)))
    base, ref = data[baseline], data[reference]
    out: dict[str, dict] = {}
    for name, x in data.items():
        if name != baseline:
            out[name] = _compare_one(x, ref, base, name == reference, n_boot, seed)
    return out


def _compare_one(x: np.ndarray, ref: np.ndarray, base: np.ndarray, is_reference: bool, n_boot: int, seed: int) -> dict:
    """The result entry of one condition for :func:`compare_conditions`."""
    entry: dict = {"delta": effect_ci(x, base, n_boot, seed).to_dict()}
    if not is_reference:
        entry["efficacy_ratio"] = efficacy_ratio_ci(x, ref, base).to_dict()
        entry["cohens_d"] = cohens_d_ci(ref, x, n_boot, seed).to_dict()
        entry["cohens_dz"] = paired_cohens_dz(ref, x)
    return entry


# --------------------------------------------------------------------------- equivalence: checks

# An equivalence margin at least |Δ(v)| would also pass a δ that cancels v: such a TOST cannot claim equivalence.
MARGIN_TOO_WIDE = "inconclusive (margin ≥ |Δ(v)|)"
VERDICTS = (
    "equivalent",
    "not equivalent",
    "inconclusive (underpowered)",
    "inconclusive",
    MARGIN_TOO_WIDE,
    "no effect of v",
)
_MAX_N = 2**31  # required_n gives up beyond this many prompts
_CHI_TAIL = 1e-15  # chi mass left out at each end by tost_power's quadrature
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(256)


def _is_number(value: object) -> TypeGuard[int | float | np.integer | np.floating]:
    """True for a real int/float (numpy included) that is not a bool."""
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _check_positive(name: str, value: object) -> float:
    """Return ``value`` as float if it is a finite number > 0, else raise naming it."""
    if not (_is_number(value) and np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {name}={value!r}")
    return float(value)


def _check_open(name: str, value: object, low: float, high: float) -> float:
    """Return ``value`` as float if ``low < value < high``, else raise naming it."""
    if not (_is_number(value) and low < value < high):
        raise ValueError(f"{name} must lie strictly between {low} and {high}, got {name}={value!r}")
    return float(value)


def _check_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as int if it is an integer >= ``minimum``, else raise naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    return int(value)


def _check_nonnegative(name: str, value: object) -> float:
    """Return ``value`` as float if it is a finite number >= 0, else raise naming it."""
    if not (_is_number(value) and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")
    return float(value)


def _check_finite(name: str, value: object) -> float:
    """Return ``value`` as float if it is a finite number, else raise naming it."""
    if not (_is_number(value) and np.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {name}={value!r}")
    return float(value)


# --------------------------------------------------------------------------- equivalence: TOST


def _one_sided(numerator: float, se: float, df: int, greater: bool) -> tuple[float, float]:
    """t = numerator / se and its one-sided p (H1: true value > 0 if ``greater``, else < 0).

    With ``se == 0`` (constant differences) t is ±inf (nan when the numerator is 0 too) and
    p is 0 when the numerator lies strictly on the H1 side, else 1.
    """
    if se == 0.0:
        t = math.copysign(math.inf, numerator) if numerator != 0.0 else math.nan
        on_h1_side = numerator > 0.0 if greater else numerator < 0.0
        return t, 0.0 if on_h1_side else 1.0
    t = numerator / se
    return t, float(sps.t.sf(t, df) if greater else sps.t.cdf(t, df))


def _two_sided_p(mean: float, se: float, df: int) -> float:
    """Two-sided p of the one-sample t test of ``mean == 0`` (0/1 when ``se == 0``)."""
    if se == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    return float(2.0 * sps.t.sf(abs(mean / se), df))


def _t_interval(mean: float, se: float, df: int, level: float) -> dict:
    """Two-sided t confidence interval ``mean ± t_{(1+level)/2, df} · se`` as an Estimate dict."""
    half = float(sps.t.ppf(0.5 + level / 2.0, df)) * se
    return Estimate(mean, mean - half, mean + half).to_dict()


def tost_paired(a: np.ndarray, b: np.ndarray, margin: float, alpha: float = 0.05) -> dict:
    """Paired two one-sided tests (TOST) for equivalence of the mean difference ``b − a``.

    The samples of each prompt are averaged first; the test is a one-sample t test on the
    ``n = n_prompts`` prompt-level differences ``d_i`` (df = n − 1), so the prompt is the unit
    and within-prompt correlation cannot inflate the evidence. With the margin ``m`` in score
    units, H0: |mean difference| >= m is rejected when both

    * lower test, H0: μ <= −m vs H1: μ > −m, ``t_lower = (mean + m)/se``, ``p_lower = P(T > t_lower)``;
    * upper test, H0: μ >= m vs H1: μ < m, ``t_upper = (mean − m)/se``, ``p_upper = P(T < t_upper)``

    reject at level ``alpha``: ``p = max(p_lower, p_upper)`` and ``equivalent = p < alpha``,
    which holds exactly when the (1 − 2α) CI (``ci``, 90% at α = 0.05) lies inside (−m, m).
    Also returned: the two-sided (1 − α) CI (``ci_two_sided``) and p (``p_difference``) of the
    ordinary paired t test of μ = 0, and ``sd_difference`` (the SD of the ``d_i``, the input
    of :func:`tost_power`). If the ``d_i`` are constant (e.g. identical generations) se = 0
    and the tests are decided by the sign of their numerators (p ∈ {0, 1}).
    """
    margin = _check_positive("margin", margin)
    alpha = _check_open("alpha", alpha, 0.0, 0.5)
    a, b = _validate({"a": a, "b": b})
    diffs = (b - a).mean(axis=1)
    n, df = diffs.size, diffs.size - 1
    mean, sd = float(np.mean(diffs)), float(np.std(diffs, ddof=1))
    if sd <= _REL_TOL * _scale(a, b):
        sd = 0.0
    se = sd / math.sqrt(n)
    t_lower, p_lower = _one_sided(mean + margin, se, df, greater=True)
    t_upper, p_upper = _one_sided(mean - margin, se, df, greater=False)
    p = max(p_lower, p_upper)
    return {
        "n": n,
        "df": df,
        "margin": margin,
        "alpha": alpha,
        "mean_difference": mean,
        "sd_difference": sd,
        "t_lower": t_lower,
        "t_upper": t_upper,
        "p_lower": p_lower,
        "p_upper": p_upper,
        "p": p,
        "equivalent": bool(p < alpha),
        "ci": _t_interval(mean, se, df, 1.0 - 2.0 * alpha),
        "ci_level": 1.0 - 2.0 * alpha,
        "ci_two_sided": _t_interval(mean, se, df, 1.0 - alpha),
        "ci_two_sided_level": 1.0 - alpha,
        "p_difference": _two_sided_p(mean, se, df),
    }


def margin_from_baseline_sd(baseline: np.ndarray, fraction: float = 0.2) -> float:
    """Equivalence margin ``fraction × SD`` (ddof=1) of the baseline scores over all cells."""
    fraction = _check_positive("fraction", fraction)
    (base,) = _validate({"baseline": baseline})
    sd = float(np.std(base, ddof=1))
    if sd <= _REL_TOL * _scale(base):
        raise ValueError(f"baseline scores are constant (SD = {sd!r}), so the margin would be 0")
    return fraction * sd


def margin_from_effect(scores_v: np.ndarray, baseline: np.ndarray, fraction: float = 0.1) -> float:
    """Equivalence margin ``fraction × |Δ(v)|`` with Δ(v) = mean(v) − mean(baseline)."""
    fraction = _check_positive("fraction", fraction)
    delta_v = effect(scores_v, baseline)
    if delta_v == 0.0:
        raise ValueError("Δ(v) = mean(scores_v) − mean(baseline) is 0, so the margin would be 0")
    return fraction * abs(delta_v)


# --------------------------------------------------------------------------- equivalence: power


def _power_args(n: object, margin: object, sd_diff: object, alpha: object, true_difference: object) -> tuple:
    """Validated ``(n, margin, sd_diff, alpha, true_difference)`` for the power functions."""
    return (
        _check_int("n", n, 2),
        _check_positive("margin", margin),
        _check_nonnegative("sd_diff", sd_diff),
        _check_open("alpha", alpha, 0.0, 0.5),
        _check_finite("true_difference", true_difference),
    )


def tost_power(n: int, margin: float, sd_diff: float, alpha: float = 0.05, true_difference: float = 0.0) -> float:
    """Exact power of the paired TOST of :func:`tost_paired` on ``n`` prompts.

    Model: prompt-level differences ``d_i ~ N(true_difference, sd_diff²)``. The TOST rejects
    iff both noncentral t statistics ``t_lower = (x̄ + m)/(s/√n)`` and ``t_upper = (x̄ − m)/(s/√n)``
    pass their critical value ``c = t_{1−α, n−1}``, i.e. iff ``−m + c·s/√n < x̄ < m − c·s/√n``.
    They share ``s``, so the joint probability is computed exactly (Owen's Q) by integrating the
    normal probability of ``x̄`` over the chi distribution of ``u = s/sd_diff``:
    ``power = E_u[max(0, Φ(h − c·u) − Φ(l + c·u))]`` with ``h = √n(m − δ)/σ``, ``l = √n(−m − δ)/σ``.
    The integral is a 256-node Gauss–Legendre rule over the window holding all but 2e-15 of
    the chi mass (cut where the interval empties), accurate to ~1e-9 for any ``n``.
    """
    n, margin, sd_diff, alpha, delta = _power_args(n, margin, sd_diff, alpha, true_difference)
    if sd_diff == 0.0:
        return _noiseless_power(margin, delta)
    df, crit, root = n - 1, float(sps.t.ppf(1.0 - alpha, n - 1)), math.sqrt(n)
    high, low = root * (margin - delta) / sd_diff, root * (-margin - delta) / sd_diff
    u_low, u_high = _chi_window(df)
    u_high = min(u_high, root * margin / (sd_diff * crit))  # beyond it the rejection interval is empty
    if u_high <= u_low:
        return 0.0
    u = u_low + (_GL_NODES + 1.0) * (u_high - u_low) / 2.0
    accept = np.maximum(0.0, sps.norm.cdf(high - crit * u) - sps.norm.cdf(low + crit * u))
    value = float(np.sum(_GL_WEIGHTS * accept * _chi_pdf(u, df))) * (u_high - u_low) / 2.0
    return min(1.0, max(0.0, value))


def _noiseless_power(margin: float, delta: float) -> float:
    """The σ → 0 limit: constant differences (identical generations under common random numbers)
    make se = 0, and :func:`tost_paired` then rejects exactly when |δ| < m."""
    return 1.0 if abs(delta) < margin else 0.0


def _chi_window(df: int) -> tuple[float, float]:
    """Quantiles 1e-15 and 1 − 1e-15 of ``u = sqrt(χ²_df / df)``: all but 2e-15 of its mass."""
    return (
        math.sqrt(float(sps.chi2.ppf(_CHI_TAIL, df)) / df),
        math.sqrt(float(sps.chi2.isf(_CHI_TAIL, df)) / df),
    )


def _chi_pdf(u: np.ndarray, df: int) -> np.ndarray:
    """Density of ``u = sqrt(χ²_df / df)`` (the sample SD over the true SD) at ``u > 0``."""
    return np.exp(sps.chi2.logpdf(df * u * u, df)) * 2.0 * df * u


def required_n(
    margin: float, sd_diff: float, power: float = 0.8, alpha: float = 0.05, true_difference: float = 0.0
) -> int:
    """Smallest number of prompts ``n >= 2`` whose :func:`tost_power` reaches ``power``.

    Doubling then bisection on ``n`` (the power grows with ``n`` while |true_difference| < margin).
    """
    power = _check_open("power", power, 0.0, 1.0)
    _, margin, sd_diff, alpha, delta = _power_args(2, margin, sd_diff, alpha, true_difference)
    if abs(delta) >= margin:
        raise ValueError(f"|true_difference| must be < margin, got true_difference={delta!r}, margin={margin!r}")

    def enough(n: int) -> bool:
        return tost_power(n, margin, sd_diff, alpha, delta) >= power

    high = 2
    while not enough(high):
        if high >= _MAX_N:
            raise ValueError(
                f"power={power!r} needs more than {_MAX_N} prompts (margin={margin!r}, sd_diff={sd_diff!r})"
            )
        high *= 2
    low = high // 2  # fails (or is 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return max(high, 2)


def power_report(n: int, margin: float, sd_diff: float, alpha: float = 0.05, target_power: float = 0.8) -> dict:
    """JSON-able statement of the TOST power computation for the stats output."""
    achieved = tost_power(n, margin, sd_diff, alpha)
    needed = required_n(margin, sd_diff, target_power, alpha)
    return {
        "n_prompts": int(n),
        "margin": float(margin),
        "sd_difference": float(sd_diff),
        "alpha": float(alpha),
        "true_difference": 0.0,
        "power": achieved,
        "target_power": float(target_power),
        "required_n": needed,
        "adequate": bool(achieved >= target_power),
        "method": (
            "Paired TOST on prompt-level mean differences d_i ~ N(0, sd_difference^2), df = n - 1: "
            "power = P(t_lower > t_{1-alpha} and t_upper < -t_{1-alpha}), computed exactly by "
            "integrating the normal law of the mean over the chi law of the sample SD (Owen's Q); "
            "required_n = smallest n with power >= target_power."
        ),
    }


# --------------------------------------------------------------------------- equivalence: verdict


def _ci_bounds(name: str, estimate: Mapping) -> tuple[float, float]:
    """``(ci_low, ci_high)`` of an Estimate-like mapping, raising if a key is missing."""
    missing = [key for key in ("ci_low", "ci_high") if key not in estimate]
    if missing:
        raise ValueError(f"{name} lacks key(s) {missing}, got keys {sorted(estimate)}")
    return float(estimate["ci_low"]), float(estimate["ci_high"])


def _excludes_zero(low: float, high: float) -> bool:
    """True when the interval [low, high] is finite and lies strictly on one side of 0."""
    return bool(np.isfinite(low) and np.isfinite(high) and (low > 0.0 or high < 0.0))


def significant(estimate: Mapping) -> bool:
    """True when an Estimate-like dict's CI is finite and excludes 0."""
    return _excludes_zero(*_ci_bounds("estimate", estimate))


def margin_below_effect(margin: float, delta_v: Mapping) -> bool:
    """True when the equivalence margin is narrower than |Δ(v)|, so that equivalence to v excludes
    "v + δ does not steer at all" (with m ≥ |Δ(v)| a δ cancelling v would pass the TOST too)."""
    return bool(abs(float(delta_v["value"])) > margin)


def judge(
    *,
    v_effective: bool,
    equivalent: bool,
    different: bool,
    margin_informative: bool,
    power: float,
    min_power: float = 0.8,
) -> str:
    """The verdict rules of :func:`verdict`, in order, on their already-decided ingredients (shared with
    the multiplicity-corrected verdicts, which decide ``equivalent`` and ``different`` on adjusted p)."""
    if not v_effective:
        return "no effect of v"
    if equivalent and margin_informative:
        return "equivalent"
    if different:
        return "not equivalent"
    if not margin_informative:
        return MARGIN_TOO_WIDE
    return "inconclusive (underpowered)" if power < min_power else "inconclusive"


def verdict(tost: Mapping, power: float, delta_v_ci: Mapping, min_power: float = 0.8) -> str:
    """The E1 verdict for one (model, trait, δ-type), one of :data:`VERDICTS`.

    Inputs: ``tost`` from :func:`tost_paired` on (v, v + δ); ``power`` of that design (e.g.
    :func:`tost_power` at true difference 0 with the observed ``sd_difference``); ``delta_v_ci``
    an Estimate-like dict of Δ(v) = mean(v) − mean(baseline) with its 95% CI. Rules, in order:

    1. ``"no effect of v"`` if Δ(v)'s CI contains 0 or is undefined (nan): v is not shown to
       steer, so equivalence to v would be meaningless.
    2. ``"equivalent"`` if the TOST rejects (``tost["equivalent"]``; its 1 − 2α CI lies
       inside (−m, m)) and the margin m is below |Δ(v)|, v having a significant effect by rule 1.
    3. ``"not equivalent"`` if rule 2 does not apply and the two-sided 1 − α CI of the paired
       difference (``tost["ci_two_sided"]``) excludes 0, i.e. the difference is significantly
       non-zero (p_difference < α). This includes the case where that CI lies entirely
       outside [−m, m] (significantly beyond the margin).
    4. :data:`MARGIN_TOO_WIDE` if m ≥ |Δ(v)|: at that margin even "v + δ does nothing" would count
       as equivalent (a small effect of v measured on a scale with a large baseline spread).
    5. Otherwise the data are compatible with both: ``"inconclusive (underpowered)"`` if
       ``power < min_power``, else ``"inconclusive"``.
    """
    power = _check_finite("power", power)
    if not 0.0 <= power <= 1.0:
        raise ValueError(f"power must lie in [0, 1], got power={power!r}")
    min_power = _check_open("min_power", min_power, 0.0, 1.0)
    for key in ("equivalent", "ci_two_sided", "margin"):
        if key not in tost:
            raise ValueError(f"tost lacks key {key!r} (expected the dict of tost_paired), got keys {sorted(tost)}")
    return judge(
        v_effective=_excludes_zero(*_ci_bounds("delta_v_ci", delta_v_ci)),
        equivalent=bool(tost["equivalent"]),
        different=_excludes_zero(*_ci_bounds("tost['ci_two_sided']", tost["ci_two_sided"])),
        margin_informative=margin_below_effect(tost["margin"], delta_v_ci),
        power=power,
        min_power=min_power,
    )


# --------------------------------------------------------------------------- permutation null of |d_z|


def _dz_rows(diffs: np.ndarray, tol: float) -> np.ndarray:
    """Signed d_z = mean / sd (ddof=1) of each row; ±inf for constant non-zero rows, 0 for all-zero rows."""
    mean, sd = diffs.mean(axis=1), diffs.std(axis=1, ddof=1)
    flat = sd <= tol
    safe = np.where(flat, 1.0, sd)
    shift = np.where(np.abs(mean) <= tol, 0.0, np.where(mean > 0.0, np.inf, -np.inf))
    return np.where(flat, shift, mean / safe)


def _sign_flips(n: int, n_perm: int, seed: int) -> tuple[np.ndarray, bool]:
    """Sign matrix: all 2**n flips if that is <= n_perm (exact), else n_perm random ones."""
    if 2**n <= n_perm:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
        return 1.0 - 2.0 * bits, True
    return 1.0 - 2.0 * np.random.default_rng(seed).integers(0, 2, size=(n_perm, n)), False


def permutation_null_d(a: np.ndarray, b: np.ndarray, n_perm: int = 2000, seed: int = 0) -> dict:
    """Sign-flip permutation null of the prompt-level |d_z| of the paired difference ``b − a``.

    d_z = mean(d_i) / sd(d_i) over the prompt-level differences ``d_i`` (samples of a prompt
    averaged first; this differs from :func:`paired_cohens_dz`, which uses all cells). Under H0
    (``d_i`` symmetric about 0) each sign is exchangeable, so flipping signs at random gives the
    null distribution of |d_z|. If ``2**n_prompts <= n_perm`` all flips are enumerated and
    ``p = #{null >= observed} / 2**n`` is exact; otherwise ``n_perm`` flips are drawn from
    ``default_rng(seed)`` and ``p = (1 + #{null >= observed}) / (n_perm + 1)``.
    ``null_abs_dz`` is an array: drop it before writing JSON. Constant non-zero differences
    give |d_z| = inf, all-zero differences give 0 (and p = 1).
    """
    n_perm = _check_int("n_perm", n_perm, 1)
    a, b = _validate({"a": a, "b": b})
    diffs = (b - a).mean(axis=1)
    tol = _REL_TOL * _scale(a, b)
    observed = float(_dz_rows(diffs[None, :], tol)[0])
    signs, exact = _sign_flips(diffs.size, n_perm, seed)
    null = np.abs(_dz_rows(signs * diffs[None, :], tol))
    hits = int(np.count_nonzero(null >= abs(observed) * (1.0 - 1e-12)))
    p_value = hits / null.size if exact else (1 + hits) / (null.size + 1)
    return {
        "n": int(diffs.size),
        "observed_dz": observed,
        "observed_abs_dz": abs(observed),
        "p_value": float(p_value),
        "n_perm": int(null.size),
        "exact": exact,
        "null_mean": float(np.mean(null)),
        "null_q95": float(np.quantile(null, 0.95)),
        "null_abs_dz": null,
    }


# --------------------------------------------------------------------------- multiplicity


def holm(pvalues: Mapping[str, float]) -> dict[str, float]:
    """Holm–Bonferroni adjusted p-values, keyed and ordered like the input.

    With the m p-values sorted ascending, ``adj_(k) = min(1, max_{j <= k} (m − j + 1)·p_(j))``
    (1-based k): monotone in the raw p-values and capped at 1. Ties keep input order.
    """
    names = list(pvalues)
    raw = np.array([_check_pvalue(name, pvalues[name]) for name in names], dtype=np.float64)
    order = np.argsort(raw, kind="stable")
    scaled = (raw.size - np.arange(raw.size)) * raw[order]
    adjusted = np.empty_like(raw)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return {name: float(adjusted[i]) for i, name in enumerate(names)}


def _check_pvalue(name: str, value: object) -> float:
    """Return ``value`` as float if it is a p-value in [0, 1], else raise naming its key."""
    if not (_is_number(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"p-value {name!r} must lie in [0, 1], got {value!r}")
    return float(value)
