"""Steering vectors from contrast activations."""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit


def mean_difference(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """v = mean(positive) − mean(negative), in float64, at its natural (unnormalised) norm."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if positive.ndim != 2 or positive.shape[1:] != negative.shape[1:] or len(negative) == 0 or len(positive) == 0:
        raise ValueError(
            "contrast activations must be non-empty (n, d) arrays of equal d; "
            f"got {positive.shape} and {negative.shape}"
        )
    return positive.mean(axis=0) - negative.mean(axis=0)


def mean_norm(activations: np.ndarray) -> float:
    """Mean Euclidean norm of activation rows: the natural unit for steering strengths."""
    return float(np.linalg.norm(np.asarray(activations, np.float64), axis=1).mean())


def _paired_differences(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """positive[i] − negative[i] in float64, after checking the two are matching (n >= 2, d) arrays."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if positive.ndim != 2 or positive.shape != negative.shape or len(positive) < 2 or positive.shape[1] == 0:
        raise ValueError(
            f"paired contrast activations must be (n, d) arrays of the same shape with n >= 2 pairs; "
            f"got {positive.shape} and {negative.shape}"
        )
    return positive - negative


def _at_natural_norm(direction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Unit ``direction``, signed to agree with ``reference`` and scaled to |reference · u|.

    The natural norm is the length of the reference (mean-difference) vector projected on the
    direction: the shift the contrast itself makes along it, so methods compare at equal strength.
    """
    length = float(np.linalg.norm(direction))
    if length == 0:
        raise ValueError("the fitted direction is zero: the contrast gives it nothing to separate")
    unit = direction / length
    # Multiplying by the signed projection flips a direction that points away from the reference.
    return unit * float(reference @ unit)


def pca_direction(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """First principal component of the centred paired differences, at its natural norm.

    The top right singular vector of (D − mean D), D[i] = positive[i] − negative[i], signed so
    that it points along the mean difference and scaled to |mean_difference · u| (float64, (d,)).
    A component orthogonal to the mean difference has natural norm 0 and is returned as zeros.

    Raises:
        ValueError: the arrays differ in shape, are not 2-D, hold fewer than 2 pairs, or all
            pairs have the same difference (no principal component).
    """
    differences = _paired_differences(positive, negative)
    _, singular_values, vt = np.linalg.svd(differences - differences.mean(axis=0), full_matrices=False)
    # Centring rounds equal differences to ~eps·|D| rather than 0: treat that as no variation.
    if singular_values[0] <= max(differences.shape) * np.finfo(np.float64).eps * np.linalg.norm(differences):
        raise ValueError(f"all {len(differences)} paired differences are equal: their principal component is undefined")
    return _at_natural_norm(vt[0], differences.mean(axis=0))


def _logistic_loss(params: np.ndarray, features: np.ndarray, signs: np.ndarray, l2: float) -> tuple[float, np.ndarray]:
    """Mean log-loss of labels ``signs`` (±1) plus (l2 / 2)·|w|², and its gradient; params = (w, b).

    The intercept b is not penalised. softplus(−s·m) is computed as logaddexp(0, −s·m), which
    neither overflows for confident wrong margins nor loses precision for confident right ones.
    """
    weights, bias = params[:-1], params[-1]
    margins = signs * (features @ weights + bias)
    loss = np.logaddexp(0.0, -margins).mean() + 0.5 * l2 * weights @ weights
    residuals = -signs * expit(-margins) / len(signs)
    return float(loss), np.append(features.T @ residuals + l2 * weights, residuals.sum())


def probe_direction(positive: np.ndarray, negative: np.ndarray, l2: float = 1e-2, max_iter: int = 200) -> np.ndarray:
    """Weight of an L2-regularised logistic probe (positive = 1, negative = 0), at its natural norm.

    Features are centred and divided by their SD over all rows of both classes (the pooled SD;
    1 for a constant feature) so that L-BFGS sees a well-conditioned problem; ``l2`` penalises
    the squared weight on that standardised scale (with the mean log-loss, intercept free). The
    fitted weight is mapped back to raw activations (w / σ), unit-normalised, signed to point
    along the mean difference and scaled to |mean_difference · u|, as :func:`pca_direction`.

    The rows need not be paired. ``max_iter`` caps L-BFGS iterations; a fit that stops before
    converging warns (RuntimeWarning) and returns its last iterate.

    Raises:
        ValueError: empty inputs, different d, l2 <= 0 (separable data then has no optimum) or
            max_iter < 1.
    """
    reference = mean_difference(positive, negative)
    if not l2 > 0 or max_iter < 1:
        raise ValueError(f"probe_direction needs l2 > 0 and max_iter >= 1; got l2={l2!r}, max_iter={max_iter!r}")
    rows = np.concatenate([np.asarray(positive, np.float64), np.asarray(negative, np.float64)])
    signs = np.concatenate([np.ones(len(positive)), -np.ones(len(negative))])
    scale = rows.std(axis=0)
    scale[scale == 0] = 1.0
    features = (rows - rows.mean(axis=0)) / scale
    fit = minimize(
        _logistic_loss,
        np.zeros(rows.shape[1] + 1),
        args=(features, signs, l2),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": max_iter, "gtol": 1e-10, "ftol": 1e-15},
    )
    if not fit.success:
        message = f"probe_direction: L-BFGS stopped after {fit.nit} iterations: {fit.message}"
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return _at_natural_norm(fit.x[:-1] / scale, reference)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two vectors of the same length (float64).

    Raises:
        ValueError: different shapes, not 1-D, or a zero vector (the angle is undefined).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"cosine needs two 1-D vectors of the same length; got {a.shape} and {b.shape}")
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if norms == 0:
        raise ValueError("cosine of a zero vector is undefined")
    return float(a @ b) / norms
