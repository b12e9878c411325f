"""Linear algebra for the covariance and spectrum stages: the typed face of ``steerid._native``.

The heavy kernels live in the C++ extension ``steerid._native`` (pybind11 + Eigen, sources in
``csrc/``); this module re-exports them under stable names and adds the small pure-NumPy helpers.

``StreamingCovariance``
    Streams (n, d) activation blocks (float16/32/64, C-contiguous, read without a copy) into a
    float64 covariance with Chan's parallel merge; accumulators of shards can be merged and
    checkpointed (``state()`` / ``from_state()``). O(d^2) memory whatever the number of rows.
``randomized_eigh``
    Top-k eigenpairs of a symmetric PSD matrix (Halko-Martinsson-Tropp), deterministic for a seed.
``numerical_rank``
    Number of eigenvalues above ``rtol`` times the largest one.

The native calls release the GIL while they compute, so a reader thread (e.g. HDF5 prefetch)
can run alongside them. Bad input raises ``TypeError``/``ValueError`` naming the offending value.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerid._native import StreamingCovariance, randomized_eigh

__all__ = ["StreamingCovariance", "numerical_rank", "randomized_eigh"]

# Relative asymmetry tolerated in a matrix passed as symmetric: about sqrt(machine epsilon).
_SYMMETRY_RTOL = {np.dtype(np.float32): 3.5e-4, np.dtype(np.float64): 1.5e-8}


def _eigenvalues(values_or_matrix: ArrayLike) -> NDArray[np.float64]:
    """Return the eigenvalues of a 1-D array of eigenvalues or of a symmetric (d, d) matrix.

    Raises:
        TypeError: the input is not real numeric (e.g. complex or object).
        ValueError: the input is empty, not 1-D or square 2-D, not finite, or not symmetric.
    """
    arr = np.asarray(values_or_matrix)
    if arr.dtype.kind not in "fiu":
        raise TypeError(
            f"numerical_rank: input has dtype {arr.dtype}; expected real eigenvalues or a real symmetric matrix"
        )
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"numerical_rank: input has ndim={arr.ndim} (shape {arr.shape}); "
            "expected a 1-D array of eigenvalues or a square (d, d) matrix"
        )
    if arr.size == 0:
        raise ValueError(f"numerical_rank: input has shape {arr.shape}; expected at least one eigenvalue")
    if arr.ndim == 2 and arr.shape[0] != arr.shape[1]:
        raise ValueError(f"numerical_rank: matrix has shape {arr.shape}; expected a square (d, d) matrix")
    values = arr.astype(np.float64, copy=False) if arr.dtype.kind != "f" else arr
    finite = np.isfinite(values)
    if not finite.all():
        bad = np.argwhere(~finite)
        raise ValueError(
            f"numerical_rank: input contains {bad.shape[0]} non-finite value(s) (NaN or Inf); "
            f"the first is at index {tuple(int(i) for i in bad[0])}; expected only finite values"
        )
    if arr.ndim == 1:
        return np.asarray(values, dtype=np.float64)
    tol = _SYMMETRY_RTOL.get(values.dtype, 1.5e-8) * float(np.abs(values).max())
    asymmetry = float(np.abs(values - values.T).max())
    if asymmetry > tol:
        raise ValueError(
            f"numerical_rank: matrix is not symmetric (max |A - A^T| = {asymmetry:.3g} > {tol:.3g}); "
            "expected a symmetric matrix or its eigenvalues"
        )
    return np.linalg.eigvalsh(values.astype(np.float64, copy=False))


def numerical_rank(eigenvalues_or_matrix: ArrayLike, rtol: float) -> int:
    """Count the eigenvalues greater than ``rtol`` times the largest eigenvalue.

    Args:
        eigenvalues_or_matrix: either a 1-D array of eigenvalues (any order), or a real
            symmetric (d, d) matrix, whose eigenvalues are then computed exactly with LAPACK
            (``numpy.linalg.eigvalsh``).
        rtol: relative threshold, a finite number >= 0 (e.g. 1e-2 keeps the eigenvalues above
            1 % of the largest).

    Returns:
        The number of eigenvalues ``> rtol * max(eigenvalues)``; 0 when the largest eigenvalue
        is <= 0 (e.g. a zero matrix). Negative eigenvalues (round-off of a PSD matrix) never count.

    Raises:
        TypeError: non-real input, or ``rtol`` that is not a real number.
        ValueError: ``rtol`` negative or not finite; input empty, of the wrong shape,
            non-finite or (for a matrix) not symmetric.
    """
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float, np.integer, np.floating)):
        raise TypeError(f"numerical_rank: rtol must be a real number, got {type(rtol).__name__} {rtol!r}")
    if not math.isfinite(float(rtol)) or rtol < 0:
        raise ValueError(f"numerical_rank: rtol={rtol!r} is invalid; expected a finite number >= 0")
    values = _eigenvalues(eigenvalues_or_matrix)
    largest = float(values.max())
    if largest <= 0.0:
        return 0
    return int(np.count_nonzero(values > float(rtol) * largest))
