"""Strengths for imported directions, in units of the mean residual norm.

Imported directions are often unit vectors (repeng's PCA components, IBM's), for which steerid's
"own norm" strength (alpha = 1 adds the vector as it is) means little. A strength in units of the
mean norm of the residual stream at the layer means the same for every source: strength 0.5 adds
a vector half as long as a typical activation there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from steerid.interchange.vector_file import VectorFileError


@dataclass(frozen=True, eq=False)
class ScaledDirection:
    """A direction scaled to ``strength`` mean residual norms, with what it was scaled from."""

    vector: np.ndarray
    strength: float
    mean_residual_norm: float
    source_coefficient: float | None


def at_residual_strength(
    direction: np.ndarray, mean_residual_norm: float, strength: float, source_coefficient: float | None = None
) -> ScaledDirection:
    """``strength * mean_residual_norm * direction / |direction|`` (float32), recording the source's coefficient.

    Only the direction's orientation counts: its own length (unit or raw) is divided out. The
    source coefficient (the strength the file recorded, if any) is kept for the record, not applied.

    Raises:
        VectorFileError: the direction is not a finite non-zero 1-D vector, or the mean residual
            norm is not a finite positive number, or the strength is not finite.
    """
    values = np.asarray(direction, dtype=np.float64)
    length = float(np.linalg.norm(values)) if values.ndim == 1 else math.nan
    if not math.isfinite(length) or length == 0:
        raise VectorFileError(
            f"direction has shape {values.shape} and norm {length}: expected a finite non-zero 1-D vector"
        )
    if not math.isfinite(mean_residual_norm) or mean_residual_norm <= 0:
        raise VectorFileError(f"mean residual norm is {mean_residual_norm}: expected a finite positive number")
    if not math.isfinite(strength):
        raise VectorFileError(f"strength is {strength}: expected a finite number of mean residual norms")
    vector = (values * (strength * mean_residual_norm / length)).astype(np.float32)
    return ScaledDirection(vector, float(strength), float(mean_residual_norm), source_coefficient)
