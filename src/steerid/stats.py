"""Paired effect sizes, efficacy ratios and cluster-bootstrap confidence intervals.

Scores come as arrays of shape ``(n_prompts, n_samples)``, one per steering condition,
aligned across conditions: row ``i`` is evaluation prompt ``i`` and column ``j`` is sample
``j`` generated with the same random numbers in every condition (common random numbers).

The bootstrap resamples prompts (rows) with replacement and keeps every sample of a row
together (cluster bootstrap). Within one replicate the same row indices are applied to every
array, so paired quantities stay paired. Confidence intervals are percentile intervals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "Estimate",
    "effect",
    "efficacy_ratio",
    "paired_cohens_d",
    "paired_cohens_dz",
    "bootstrap",
    "efficacy_ratio_ci",
    "cohens_d_ci",
    "effect_ci",
    "compare_conditions",
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
    scores_perturbed: np.ndarray,
    scores_v: np.ndarray,
    scores_baseline: np.ndarray,
    n_boot: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Estimate:
    """R = Δ(v+δ)/Δ(v) with a paired cluster-bootstrap CI (replicates with Δ(v) = 0 are nan)."""
    _check_boot(n_boot, confidence)
    pert, v, base = _validate(
        {"scores_perturbed": scores_perturbed, "scores_v": scores_v, "scores_baseline": scores_baseline}
    )
    rows = _draw_rows(v.shape[0], n_boot, seed)
    num, den = _boot_sums(pert - base, rows), _boot_sums(v - base, rows)
    return _summarise(efficacy_ratio(pert, v, base), _ratio(num, den, den == 0.0), confidence)


def cohens_d_ci(
    a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> Estimate:
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
    ``c != reference`` also ``"efficacy_ratio"`` (Δ(c)/Δ(reference)), ``"cohens_d"``
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


def _compare_one(
    x: np.ndarray, ref: np.ndarray, base: np.ndarray, is_reference: bool, n_boot: int, seed: int
) -> dict:
    """The result entry of one condition for :func:`compare_conditions`."""
    entry: dict = {"delta": effect_ci(x, base, n_boot, seed).to_dict()}
    if not is_reference:
        entry["efficacy_ratio"] = efficacy_ratio_ci(x, ref, base, n_boot, seed).to_dict()
        entry["cohens_d"] = cohens_d_ci(ref, x, n_boot, seed).to_dict()
        entry["cohens_dz"] = paired_cohens_dz(ref, x)
    return entry
