"""E6/E8: directions that are behaviourally inert for several Jacobian sets at once.

A Jacobian set (one environment's prompts, or one layer) is summarised by its gain matrix
``G = sum_i J_i^T J_i`` (:func:`steerid.engine.jacobian.stacked_gram_spectrum`): a direction u is inert
for the set when ``u^T G u`` is small, i.e. no next-token distribution of it moves to first order.
Directions inert for *all* of several sets form the null space of the stacked Jacobian
[J_1; J_2; ...], whose Gram is the sum of the sets' Grams.

Normalisation: before summing, each Gram is divided by its own largest eigenvalue, i.e. each
set's Jacobians by their largest singular value. Gains are then measured relative to each set's
most sensitive direction, so a set (or a deeper layer) whose Jacobians are larger overall does
not decide alone which directions count. A direction counts as sensitive when a singular value
of the normalised stacked Jacobian exceeds ``rtol``, that is rtol x every set's own largest
singular value (1 after normalisation). For one set this is exactly
:func:`steerid.linalg.effective_rank`; for several it makes intersecting monotone (adding a
PSD Gram never lowers an eigenvalue, by Weyl). Thresholding at rtol x the *stacked* sigma_max
instead would raise the bar as sets are added (that sigma_max grows up to sqrt(m)), and the
inert dimension could then grow with m: on SmolLM2 (layer 26, last token of two prompts,
rtol 0.1) it gave 323 and 396 alone but 335 together.

:func:`recovery_curve` (E8) intersects the sets in every combination of m = 1, 2, ... of them to
show how the inert subspace shrinks as environments or layers are added.
:func:`subspace_overlap_vs_random` compares two subspaces with the level chance would give.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from steerid.linalg import (
    principal_angles,
    singular_values_from_eigenvalues,
    spectrum_eigvalsh,
    subspace_overlap,
    symmetrised,
)

__all__ = ["gram_from_spectrum", "inert_dimension", "recovery_curve", "subspace_overlap_vs_random"]


def gram_from_spectrum(eigenvalues: np.ndarray, eigenvectors: np.ndarray) -> np.ndarray:
    """G = V diag(λ) V^T (float64, exactly symmetric), e.g. from a GramSpectrum's fields.

    Raises:
        ValueError: eigenvalues not (m,) or eigenvectors not (d, m).
    """
    values, vectors = np.asarray(eigenvalues, np.float64), np.asarray(eigenvectors, np.float64)
    if values.ndim != 1 or vectors.ndim != 2 or vectors.shape[1] != values.size:
        raise ValueError(f"need eigenvalues (m,) and eigenvectors (d, m); got {values.shape} and {vectors.shape}")
    return symmetrised((vectors * values) @ vectors.T)


def _normalised(gram: np.ndarray) -> np.ndarray:
    """The Gram divided by its largest eigenvalue (see the module docstring for why)."""
    largest = float(spectrum_eigvalsh(gram)[0])
    if largest <= 0:
        raise ValueError("a Gram matrix has no positive eigenvalue: its Jacobians are zero and cannot be normalised")
    return np.asarray(gram, np.float64) / largest


def _inert_of_sum(normalised: Sequence[np.ndarray], rtol: float) -> int:
    """d minus the number of singular values above rtol of the stacked normalised Jacobian."""
    shapes = {g.shape for g in normalised}
    if len(shapes) != 1:
        raise ValueError(f"Gram matrices of different shapes cannot be intersected: {sorted(shapes)}")
    if not 0 <= rtol < math.inf:
        raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}")
    total = np.sum(normalised, axis=0)
    singular_values = singular_values_from_eigenvalues(spectrum_eigvalsh(total))
    # Absolute, not relative to the stack's own σ_max: each set's largest gain is already 1.
    return total.shape[0] - int(np.count_nonzero(singular_values > rtol))


def inert_dimension(grams: Sequence[np.ndarray], rtol: float) -> int:
    """Dimension of the directions inert for all the given Jacobian sets at once.

    ``d − #{σ > rtol}`` for the singular values σ = sqrt(λ) of the sum of the Grams, each
    first divided by its own largest eigenvalue: rtol is relative to every set's own largest
    singular value (module docstring). Never increases when a Gram is added.

    Raises:
        ValueError: no Grams, Grams of different shapes, non-symmetric or zero Grams, rtol < 0.
    """
    if len(grams) == 0:
        raise ValueError("inert_dimension needs at least one Gram matrix")
    return _inert_of_sum([_normalised(g) for g in grams], rtol)


def recovery_curve(grams: Mapping[str, np.ndarray], rtol: float) -> list[dict]:
    """Inert dimension of every subset of the named Jacobian sets, summarised by subset size m.

    Returns one dict per m = 1..len(grams): ``m``, ``mean``/``min``/``max`` inert dimension over
    the subsets of size m, the same as ``*_fraction`` of d, and ``subsets`` (lists of names) with
    their ``inert_dimensions`` in the same order. Since adding a set never raises the inert
    dimension, min, mean and max are all non-increasing in m.

    Raises:
        ValueError: as :func:`inert_dimension`, or no Grams.
    """
    if len(grams) == 0:
        raise ValueError("recovery_curve needs at least one named Gram matrix")
    normalised = {name: _normalised(gram) for name, gram in grams.items()}
    d = next(iter(normalised.values())).shape[0]
    curve = []
    for m in range(1, len(normalised) + 1):
        subsets = [list(names) for names in itertools.combinations(normalised, m)]
        dims = np.array([_inert_of_sum([normalised[name] for name in names], rtol) for names in subsets])
        curve.append(
            {
                "m": m,
                "mean": float(dims.mean()),
                "min": int(dims.min()),
                "max": int(dims.max()),
                "mean_fraction": float(dims.mean()) / d,
                "min_fraction": int(dims.min()) / d,
                "max_fraction": int(dims.max()) / d,
                "subsets": subsets,
                "inert_dimensions": dims.tolist(),
            }
        )
    return curve


def subspace_overlap_vs_random(A: np.ndarray, B: np.ndarray) -> dict:
    """Overlap of the column spans of A (d, p) and B (d, q), beside its chance level.

    ``overlap`` is :func:`steerid.linalg.subspace_overlap` (||Qa^T Qb||_F^2 / min(p, q)).
    ``random_overlap`` is its expectation when one of the subspaces is uniformly random:
    E||Qa^T Qb||_F^2 = p q / d, so max(p, q) / d (= q / d, B's dimension, when B is the wider
    one). ``max_angle_deg``/``min_angle_deg`` are the extreme principal angles in degrees.

    Raises:
        ValueError: as :func:`steerid.linalg.principal_angles` (different d, rank-deficient).
    """
    angles = np.degrees(principal_angles(A, B))
    d = np.shape(A)[0]
    p, q = (1 if np.ndim(M) == 1 else np.shape(M)[1] for M in (A, B))  # a 1-D input is one column
    return {
        "overlap": subspace_overlap(A, B),
        "random_overlap": max(p, q) / d,
        "d": int(d),
        "dim_a": int(p),
        "dim_b": int(q),
        "max_angle_deg": float(angles.max()),
        "min_angle_deg": float(angles.min()),
    }
