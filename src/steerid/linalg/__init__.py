"""Linear algebra for the covariance and spectrum stages: the typed face of ``steerid._native``.

The heavy kernels live in the C++ extension ``steerid._native`` (pybind11 + Eigen, sources in
``csrc/``); this module re-exports them under stable names and adds the small pure-NumPy helpers.

``StreamingCovariance``
    Streams (n, d) activation blocks (float16/32/64, C-contiguous, read without a copy) into a
    float64 covariance with Chan's parallel merge; accumulators of shards can be merged and
    checkpointed (``state()`` / ``from_state()``). O(d^2) memory whatever the number of rows.
``randomized_eigh``
    Top-k eigenpairs of a symmetric PSD matrix (Halko-Martinsson-Tropp), deterministic for a seed.
``randomized_eigh_adaptive``
    Grows k block by block until the spectrum falls below ``rtol`` x the largest eigenvalue,
    or reports that it saturated (the rank is then only known to be >= k).
``top_eigenpairs`` / ``spectrum_eigvalsh``
    Policy: exact LAPACK below the measured crossover, randomized above it / the full
    spectrum from LAPACK.
``numerical_rank``, ``explained_variance_rank``, ``participation_ratio``
    Rank summaries of a spectrum: relative to the largest eigenvalue, to the trace, and the
    effective number of directions.
``eigenvalue_rank_summary`` / ``singular_value_rank_summary``, ``effective_rank``
    The same ranks under the keys the results files use. The keys are the same in both, their
    basis is not: ``rank_at_{t}_of_max`` counts ``lambda > t lambda_max`` in the first (the
    spectra files) and ``sigma > t sigma_max`` in the second (E6, where sigma = sqrt(lambda)).
``descending_eigh``, ``fix_signs``, ``singular_values_from_eigenvalues``, ``symmetrised``
    Small spectral helpers every stage shares, so that all of them order, sign and clip alike.
``principal_angles``, ``subspace_overlap``
    Geometry of two column spans.
``covariance_from_hdf5``
    Streams an HDF5 dataset into a ``StreamingCovariance`` with a prefetching reader thread
    (defined in :mod:`steerid.linalg.streaming`).

Speed: the rank-k updates, products, QR and small eigenproblems run in SciPy's own BLAS and
LAPACK (OpenBLAS in the SciPy wheels), whose function pointers the extension takes from
SciPy's Cython API capsules (``scipy.linalg.cython_blas``/``cython_lapack``) on first use; the
float16/32 -> float64 conversion and centring run on all cores in std::threads. Without SciPy
the extension falls back to Eigen. See ``benchmarks/README.md`` for measurements.

The native calls release the GIL while they compute, so a reader thread (e.g. HDF5 prefetch)
can run alongside them. Bad input raises ``TypeError``/``ValueError`` naming the offending value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from steerid._native import StreamingCovariance, randomized_eigh, randomized_eigh_adaptive
from steerid.linalg.streaming import covariance_from_hdf5

__all__ = [
    "DEFAULT_RTOLS",
    "DEFAULT_VARIANCE_FRACTIONS",
    "EXACT_SPECTRUM_MAX_D",
    "RANDOMIZED_MAX_FRACTION",
    "StreamingCovariance",
    "covariance_from_hdf5",
    "descending_eigh",
    "effective_rank",
    "eigenvalue_rank_summary",
    "explained_variance_rank",
    "fix_signs",
    "numerical_rank",
    "participation_ratio",
    "principal_angles",
    "randomized_eigh",
    "randomized_eigh_adaptive",
    "singular_value_rank_summary",
    "singular_values_from_eigenvalues",
    "spectrum_eigvalsh",
    "subspace_overlap",
    "symmetrised",
    "top_eigenpairs",
]

DEFAULT_RTOLS = (0.01, 0.05, 0.10)
DEFAULT_VARIANCE_FRACTIONS = (0.99, 0.999)

# Relative asymmetry tolerated in a matrix passed as symmetric: about sqrt(machine epsilon).
_SYMMETRY_RTOL = {np.dtype(np.float32): 3.5e-4, np.dtype(np.float64): 1.5e-8}


def _eigenvalues(values_or_matrix: ArrayLike, who: str = "numerical_rank") -> NDArray[np.float64]:
    """Return the eigenvalues of a 1-D array of eigenvalues or of a symmetric (d, d) matrix.

    Raises:
        TypeError: the input is not real numeric (e.g. complex or object).
        ValueError: the input is empty, not 1-D or square 2-D, not finite, or not symmetric.
    """
    arr = np.asarray(values_or_matrix)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{who}: input has dtype {arr.dtype}; expected real eigenvalues or a real symmetric matrix")
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{who}: input has ndim={arr.ndim} (shape {arr.shape}); "
            "expected a 1-D array of eigenvalues or a square (d, d) matrix"
        )
    if arr.size == 0:
        raise ValueError(f"{who}: input has shape {arr.shape}; expected at least one eigenvalue")
    if arr.ndim == 2 and arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{who}: matrix has shape {arr.shape}; expected a square (d, d) matrix")
    values = arr.astype(np.float64, copy=False) if arr.dtype.kind != "f" else arr
    _require_finite(values, f"{who}: input")
    if arr.ndim == 1:
        return np.asarray(values, dtype=np.float64)
    tol = _SYMMETRY_RTOL.get(values.dtype, 1.5e-8) * float(np.abs(values).max())
    asymmetry = float(np.abs(values - values.T).max())
    if asymmetry > tol:
        raise ValueError(
            f"{who}: matrix is not symmetric (max |A - A^T| = {asymmetry:.3g} > {tol:.3g}); "
            "expected a symmetric matrix or its eigenvalues"
        )
    # Eigenvalues of the matrix scaled to max |entry| = 1: the rank summaries are scale-invariant,
    # and LAPACK cannot overflow on entries near the float64 limit.
    matrix = values.astype(np.float64, copy=False)
    return np.linalg.eigvalsh(matrix / _unit_scale(matrix)).astype(np.float64, copy=False)


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


def explained_variance_rank(eigenvalues: ArrayLike, fraction: float) -> int:
    """Smallest k whose k largest eigenvalues explain at least ``fraction`` of the trace.

    Robust to a few huge "attention-sink" eigenvalues only in the sense that it reports how many
    directions carry the variance *including* them; compare with :func:`participation_ratio`.

    Args:
        eigenvalues: 1-D eigenvalues (any order) or a real symmetric (d, d) matrix, whose
            eigenvalues are then computed with LAPACK. Negative eigenvalues (round-off of a PSD
            matrix) are clipped to 0.
        fraction: in (0, 1], e.g. 0.99 or 0.999.

    Returns:
        k in [1, d] with sum of the top k >= fraction * sum of all; 0 when the trace is 0.

    Raises:
        TypeError: non-real input or a ``fraction`` that is not a real number.
        ValueError: ``fraction`` outside (0, 1]; input empty, of the wrong shape,
            non-finite or (for a matrix) not symmetric.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"explained_variance_rank: fraction must be a real number, got {type(fraction).__name__} {fraction!r}"
        )
    if not (0.0 < float(fraction) <= 1.0):
        raise ValueError(f"explained_variance_rank: fraction={fraction!r} is invalid; expected 0 < fraction <= 1")
    values = np.sort(np.clip(_eigenvalues(eigenvalues, "explained_variance_rank"), 0.0, None))[::-1]
    largest = float(values[0])
    if largest <= 0.0:
        return 0
    cumulative = np.cumsum(values / largest)  # scaled: no overflow for eigenvalues near 1e308
    target = float(fraction) * float(cumulative[-1])
    k = int(np.searchsorted(cumulative, target, side="left")) + 1
    return min(k, int(values.size))


def participation_ratio(eigenvalues: ArrayLike) -> float:
    """Participation ratio ``(sum lambda)^2 / sum lambda^2`` of the eigenvalues clipped at 0.

    Between 1 (one direction carries all the variance) and d (isotropic); 0.0 for an all-zero
    spectrum. Accepts 1-D eigenvalues or a real symmetric matrix, like :func:`numerical_rank`.

    Raises:
        TypeError / ValueError: as :func:`numerical_rank` for the input.
    """
    values = np.clip(_eigenvalues(eigenvalues, "participation_ratio"), 0.0, None)
    largest = float(values.max())
    if largest <= 0.0:
        return 0.0
    scaled = values / largest  # avoids overflow of lambda^2
    return float(scaled.sum() ** 2 / np.square(scaled).sum())


def _float64_array(values: Any) -> NDArray[np.float64]:
    """``values`` as a float64 NumPy array; a torch tensor is detached and copied to the CPU first."""
    # Duck-typed so that this module never imports torch.
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def _rank_counts(
    thresholded: ArrayLike, energy: ArrayLike, rtols: Sequence[float], variance_fractions: Sequence[float]
) -> dict[str, int]:
    """``rank_at_{t}_of_max`` of ``thresholded`` and ``rank_for_{f}_of_variance`` of ``energy``, by key."""
    ranks = {f"rank_at_{rtol:g}_of_max": numerical_rank(thresholded, rtol) for rtol in rtols}
    ranks |= {f"rank_for_{f:g}_of_variance": explained_variance_rank(energy, f) for f in variance_fractions}
    return ranks


def eigenvalue_rank_summary(
    eigenvalues: ArrayLike, rtols: Sequence[float], variance_fractions: Sequence[float]
) -> dict[str, float]:
    """Ranks of a covariance spectrum thresholded on its eigenvalues, each with a ``fraction_of_d_*`` twin.

    ``rank_at_{t}_of_max`` counts ``lambda > t lambda_max`` (not sigma, unlike
    :func:`singular_value_rank_summary` under the same key) and ``rank_for_{f}_of_variance`` the
    fewest eigenvalues carrying f of the trace; d is the number of eigenvalues.
    """
    values = np.asarray(eigenvalues)
    d = values.size
    summary: dict[str, float] = {}
    for name, rank in _rank_counts(values, values, rtols, variance_fractions).items():
        summary[name] = rank
        summary[name.replace("rank", "fraction_of_d", 1)] = rank / d
    return summary


def effective_rank(singular_values: Any, rtol: float) -> int:
    """Number of singular values strictly above ``rtol * sigma_max`` (the paper's code used 0.05).

    Thresholds are on singular values of J (or of the stacked Jacobian), i.e. on the square root
    of G's eigenvalues: ``sigma_i > rtol sigma_max`` iff ``lambda_i > rtol^2 lambda_max``.
    Accepts NumPy arrays and torch tensors.
    """
    return numerical_rank(_float64_array(singular_values), rtol)


def singular_value_rank_summary(
    singular_values: Any,
    d: int,
    rtols: Sequence[float] = DEFAULT_RTOLS,
    variance_fractions: Sequence[float] = DEFAULT_VARIANCE_FRACTIONS,
) -> dict:
    """Effective ranks of a spectrum of singular values, each also as a fraction of d (never of probes).

    Keys: ``rank_at_{rtol}_of_max`` (sigma > rtol sigma_max, not lambda as in
    :func:`eigenvalue_rank_summary`) and ``rank_for_{f}_of_variance`` (the fewest directions
    carrying f of sum sigma^2, the Frobenius "energy"), each with a ``fraction_of_d_*`` twin and
    a ``null_fraction_*`` = 1 - fraction; ``participation_ratio`` of sigma^2 and ``stable_rank``
    = sum sigma^2 / sigma_max^2. Only meaningful for a complete spectrum of d values; a partial
    (top-k) spectrum gives lower bounds. Accepts NumPy arrays and torch tensors.
    """
    sigma = _float64_array(singular_values)
    if sigma.ndim != 1 or sigma.size == 0 or not np.isfinite(sigma).all():
        raise ValueError(f"singular values must be a finite, non-empty 1-D array, got shape {sigma.shape}")
    if sigma.size > d:
        raise ValueError(f"{sigma.size} singular values for d={d}: expected at most d")
    energy = np.square(np.clip(sigma, 0.0, None))
    summary: dict = {"d": int(d), "n_values": int(sigma.size), "sigma_max": float(sigma.max())}
    for name, rank in _rank_counts(sigma, energy, rtols, variance_fractions).items():
        summary[name] = rank
        summary[name.replace("rank", "fraction_of_d", 1)] = rank / d
        summary[name.replace("rank", "null_fraction", 1)] = 1.0 - rank / d
    summary["participation_ratio"] = participation_ratio(energy)
    summary["stable_rank"] = float(energy.sum() / energy.max()) if energy.max() > 0 else 0.0
    return summary


def singular_values_from_eigenvalues(eigenvalues: ArrayLike) -> NDArray[np.float64]:
    """sigma = sqrt(max(lambda, 0)): the singular values of A from the eigenvalues of A^T A (or of a covariance)."""
    # Rounding leaves tiny negative eigenvalues of a PSD matrix; they are zero singular values.
    return np.sqrt(np.clip(eigenvalues, 0.0, None))


def symmetrised(matrix: Any) -> Any:
    """The symmetric part (M + M^T) / 2 of a square NumPy array or torch tensor, same type and dtype."""
    # Products like A^T M A are symmetric only up to rounding, and the eigensolvers check symmetry.
    return 0.5 * (matrix + matrix.T)


def fix_signs(vectors: np.ndarray) -> np.ndarray:
    """The columns of ``vectors`` each multiplied by +-1 so that its largest-magnitude entry is positive."""
    # Eigen/singular vectors are defined up to sign; fixing it makes stored vectors deterministic.
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def descending_eigh(matrix: np.ndarray, *, fixed_signs: bool) -> tuple[np.ndarray, np.ndarray]:
    """All eigenpairs of a symmetric matrix (``numpy.linalg.eigh``), eigenvalues descending, vectors contiguous columns.

    ``fixed_signs=True`` applies :func:`fix_signs`; it is a required choice because files
    written without it must keep LAPACK's signs.
    """
    values, vectors = np.linalg.eigh(matrix)
    values, vectors = values[::-1].copy(), np.ascontiguousarray(vectors[:, ::-1])
    return values, fix_signs(vectors) if fixed_signs else vectors


def _orthonormal_basis(A: Any, name: str) -> NDArray[np.float64]:
    A = _float64_array(A)
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2 or A.shape[1] == 0 or not np.isfinite(A).all():
        raise ValueError(f"{name} must be a finite (d, p) matrix with p >= 1, got shape {A.shape}")
    U, s, _ = np.linalg.svd(A, full_matrices=False)
    rank = int(np.count_nonzero(s > s.max() * max(A.shape) * np.finfo(np.float64).eps)) if s.max() > 0 else 0
    if rank < A.shape[1]:
        raise ValueError(f"{name} has rank {rank} < {A.shape[1]} columns: it does not span a {A.shape[1]}-dim subspace")
    return U


def principal_angles(A: Any, B: Any) -> NDArray[np.float64]:
    """Principal angles (radians, ascending) between the column spans of A (d, p) and B (d, q).

    Both are orthonormalised (SVD; rank-deficient input raises). Cosines are the singular values
    of Qa^T Qb; angles below pi/4 are taken from the sines (singular values of Qb - Qa Qa^T Qb,
    Knyazev and Argentati 2002), which stay accurate where arccos of a cosine near 1 does not.
    Returns min(p, q) angles: 0 for a shared direction, pi/2 for an orthogonal one. A and B may
    be NumPy arrays or torch tensors; a 1-D input is one column.
    """
    Qa, Qb = _orthonormal_basis(A, "A"), _orthonormal_basis(B, "B")
    if Qa.shape[0] != Qb.shape[0]:
        raise ValueError(f"A and B live in different spaces: d={Qa.shape[0]} vs d={Qb.shape[0]}")
    if Qa.shape[1] > Qb.shape[1]:
        Qa, Qb = Qb, Qa
    m = Qa.shape[1]
    cosines = np.clip(np.linalg.svd(Qa.T @ Qb, compute_uv=False), 0.0, 1.0)  # descending
    sines = np.clip(np.linalg.svd(Qa - Qb @ (Qb.T @ Qa), compute_uv=False), 0.0, 1.0)[::-1]  # ascending
    from_cos = np.arccos(cosines[:m])
    from_sin = np.arcsin(sines[:m])
    return np.where(from_cos < math.pi / 4, from_sin, from_cos)


def subspace_overlap(A: Any, B: Any) -> float:
    """Mean squared cosine of the principal angles: ||Qa^T Qb||_F^2 / min(p, q), in [0, 1].

    1 when one span contains the other, 0 when they are orthogonal; a uniformly random
    q-subspace has expected overlap q / d with a fixed one, the chance level to compare with.
    """
    Qa, Qb = _orthonormal_basis(A, "A"), _orthonormal_basis(B, "B")
    if Qa.shape[0] != Qb.shape[0]:
        raise ValueError(f"A and B live in different spaces: d={Qa.shape[0]} vs d={Qb.shape[0]}")
    return float(np.square(Qa.T @ Qb).sum() / min(Qa.shape[1], Qb.shape[1]))


def _symmetric_matrix(C: ArrayLike, who: str) -> NDArray[np.float64]:
    arr = np.asarray(C)
    if arr.ndim != 2:
        raise ValueError(f"{who}: C has ndim={arr.ndim} (shape {arr.shape}); expected a square (d, d) matrix")
    values = _eigenvalues_matrix_checks(arr, who)
    return values


def _require_finite(values: np.ndarray, what: str) -> None:
    """A ValueError naming how many entries of ``values`` are NaN/Inf and where the first is."""
    finite = np.isfinite(values)
    if not finite.all():
        bad = np.argwhere(~finite)
        raise ValueError(
            f"{what} contains {bad.shape[0]} non-finite value(s) (NaN or Inf); "
            f"the first is at index {tuple(int(i) for i in bad[0])}; expected only finite values"
        )


def _eigenvalues_matrix_checks(arr: np.ndarray, who: str) -> NDArray[np.float64]:
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{who}: C has dtype {arr.dtype}; expected a real symmetric matrix")
    if arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"{who}: C has shape {arr.shape}; expected a square (d, d) matrix with d >= 1")
    matrix = np.asarray(arr, dtype=np.float64)
    _require_finite(matrix, f"{who}: C")
    tol = _SYMMETRY_RTOL.get(arr.dtype, 1.5e-8) * float(np.abs(matrix).max())
    asymmetry = float(np.abs(matrix - matrix.T).max())
    if asymmetry > tol:
        raise ValueError(f"{who}: C is not symmetric (max |C - C^T| = {asymmetry:.3g} > {tol:.3g})")
    return matrix


def spectrum_eigvalsh(C: ArrayLike) -> NDArray[np.float64]:
    """All eigenvalues of a real symmetric matrix, descending, from LAPACK.

    Uses ``numpy.linalg.eigvalsh`` (LAPACK ``dsyevd`` values only, i.e. tridiagonalisation and
    ``dsterf``), the fastest exact route measured (``benchmarks/README.md``); Eigen's own
    eigensolver is slower and is not used.

    Raises:
        TypeError: non-real input.
        ValueError: not a square 2-D matrix, empty, non-finite or not symmetric.
    """
    matrix = _symmetric_matrix(C, "spectrum_eigvalsh")
    scale = _unit_scale(matrix)
    with np.errstate(over="ignore"):
        values = np.linalg.eigvalsh(matrix / scale)[::-1] * scale
    _require_finite_spectrum(values, "spectrum_eigvalsh")
    return np.ascontiguousarray(values)


def _unit_scale(matrix: np.ndarray) -> float:
    scale = float(np.abs(matrix).max())
    return scale if scale > 0 else 1.0


def _require_finite_spectrum(values: np.ndarray, who: str) -> None:
    if not np.isfinite(values).all():
        raise ValueError(f"{who}: the eigenvalues overflow float64 (|entries| near 1e308); rescale C")


# Policy of top_eigenpairs, measured by benchmarks/bench_linalg.py on the 2-core machine (see
# benchmarks/README.md): the randomized solver (q = 2 power iterations) beats LAPACK's subset
# solver from d = 1024 on when k + oversample <= d / 4, and loses below that size.
EXACT_SPECTRUM_MAX_D = 1023
RANDOMIZED_MAX_FRACTION = 0.25


def top_eigenpairs(
    C: ArrayLike,
    k: int,
    *,
    oversample: int = 10,
    power_iters: int = 2,
    seed: int = 0,
    method: str = "auto",
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Top-k eigenpairs of a symmetric PSD matrix by the faster of LAPACK and randomized HMT.

    ``method="auto"`` picks LAPACK (``scipy.linalg.eigh`` with ``subset_by_index`` and the MRRR
    driver ``evr``, exact) when ``d <= EXACT_SPECTRUM_MAX_D`` (1023) or
    ``k + oversample > RANDOMIZED_MAX_FRACTION * d`` (a quarter of d), and
    :func:`randomized_eigh` otherwise; the crossover was measured by
    ``benchmarks/bench_linalg.py`` (``benchmarks/README.md``). The randomized path is accurate
    to ~1e-9 relative on the leading eigenvalues (top 10 on power-law spectra) but only to a
    few per cent near index k; ask for ``method="lapack"`` when every returned value must be
    exact, or raise ``power_iters``.

    Args:
        C: (d, d) float32/float64 symmetric matrix.
        k: 1 <= k <= d.
        oversample, power_iters, seed: passed to :func:`randomized_eigh`.
        method: "auto", "lapack" or "randomized".

    Returns:
        (values (k,) descending, vectors (d, k) orthonormal, each column's largest-magnitude
        entry positive), float64.

    Raises:
        TypeError / ValueError: as :func:`randomized_eigh`, and for an unknown ``method``.
    """
    if method not in ("auto", "lapack", "randomized"):
        raise ValueError(f"top_eigenpairs: method={method!r} is invalid; expected 'auto', 'lapack' or 'randomized'")
    arr = np.asarray(C)
    if arr.ndim != 2:
        raise ValueError(f"top_eigenpairs: C has ndim={arr.ndim} (shape {arr.shape}); expected a square (d, d) matrix")
    d = int(arr.shape[0])
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"top_eigenpairs: k must be an integer, got {type(k).__name__} {k!r}")
    if not 1 <= int(k) <= d:
        raise ValueError(f"top_eigenpairs: k={k} is out of range; expected 1 <= k <= d={d}")
    k = int(k)
    use_randomized = method == "randomized" or (
        method == "auto" and d > EXACT_SPECTRUM_MAX_D and k + oversample <= RANDOMIZED_MAX_FRACTION * d
    )
    if use_randomized:
        if arr.dtype not in (np.float32, np.float64):
            raise TypeError(f"top_eigenpairs: C has dtype {arr.dtype}; expected float32 or float64")
        return randomized_eigh(np.ascontiguousarray(arr), k, oversample=oversample, power_iters=power_iters, seed=seed)
    import scipy.linalg  # deferred: numpy-only callers do not pay for it

    matrix = _symmetric_matrix(arr, "top_eigenpairs")
    scale = _unit_scale(matrix)
    values, vectors = scipy.linalg.eigh(
        matrix / scale, subset_by_index=[d - k, d - 1], driver="evr", check_finite=False
    )
    with np.errstate(over="ignore"):
        values = np.ascontiguousarray(values[::-1] * scale)
    _require_finite_spectrum(values, "top_eigenpairs")
    vectors = fix_signs(np.ascontiguousarray(vectors[:, ::-1]))
    return values, vectors
