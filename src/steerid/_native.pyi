"""Type stub of the private native module steerid._native (pybind11 + Eigen, built from csrc/).

Import the public names from :mod:`steerid.linalg` instead of from here.
"""

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

class StreamingCovariance:
    """Streaming covariance of row blocks, accumulated in float64 (Chan's parallel algorithm).

    Holds ``count``, ``mean`` (d,) and the lower triangle of the scatter matrix
    ``M2 = sum (x - mean)(x - mean)^T``. Every method releases the GIL while it computes and
    is safe to call from several threads.
    """

    def __init__(self, d: int) -> None:
        """Empty accumulator for ``d`` columns; ValueError unless ``d >= 1``; MemoryError if the
        (d, d) float64 state would not fit in physical memory."""

    def update(
        self,
        X: NDArray[np.float16] | NDArray[np.float32] | NDArray[np.float64],
        where: NDArray[np.bool_] | None = None,
    ) -> None:
        """Add the rows of a C-contiguous (n, d) float16/32/64 block, read in place; n may be 0.

        ``where``: optional (n,) bool row mask; only True rows are read and added (no copy).
        Conversion to float64 and centring run on all cores from d = 1024 (one thread below);
        the scatter, Chan's merge term included, goes through BLAS dsyrk (SciPy's OpenBLAS).
        TypeError for a non-array or another dtype, or a non-bool
        mask; ValueError for a non-2-D block, a column count other than ``d``, a
        non-C-contiguous or misaligned block, NaN/Inf in a selected row, a scatter that would
        overflow float64, or a mask of the wrong shape (state unchanged in every case).
        """

    def merge(self, other: StreamingCovariance) -> None:
        """Add everything ``other`` has seen (Chan's combination); ValueError if ``d`` differs
        or the merged scatter would overflow float64."""

    @property
    def count(self) -> int:
        """Number of rows seen so far."""

    @property
    def dim(self) -> int:
        """Number of columns ``d``."""

    @property
    def mean(self) -> NDArray[np.float64]:
        """Mean of the rows seen so far, a new (d,) array (zeros while ``count`` is 0)."""

    def covariance(self, ddof: int = 1) -> NDArray[np.float64]:
        """``M2 / (count - ddof)`` as a new symmetric (d, d) array; ValueError if ``count <= ddof``."""

    def state(self) -> dict[str, Any]:
        """Checkpoint ``{"format", "dim", "count", "mean", "m2"}`` (``m2`` full symmetric, float64)."""

    @staticmethod
    def from_state(state: Mapping[str, Any]) -> StreamingCovariance:
        """Rebuild an accumulator from a ``state()`` mapping; ValueError/TypeError if inconsistent."""

    def __getstate__(self) -> dict[str, Any]: ...
    def __setstate__(self, state: dict[str, Any]) -> None: ...

def randomized_eigh(
    C: NDArray[np.float32] | NDArray[np.float64],
    k: int,
    oversample: int = 10,
    power_iters: int = 2,
    seed: int = 0,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Top-k eigenpairs ``(values (k,) descending, vectors (d, k) orthonormal)`` of a symmetric
    PSD matrix by the Halko-Martinsson-Tropp randomized range finder (QR after every product,
    BLAS dgemm products); deterministic for a seed. TypeError/ValueError for bad input."""

def randomized_eigh_adaptive(
    C: NDArray[np.float32] | NDArray[np.float64],
    rtol: float,
    block: int = 64,
    max_k: int | None = None,
    seed: int = 0,
    oversample: int = 10,
    power_iters: int = 2,
) -> tuple[NDArray[np.float64], NDArray[np.float64], bool]:
    """Top eigenpairs with k grown by ``block`` until every eigenvalue > ``rtol`` x the largest
    is captured with a margin: ``(values (k,) descending, vectors (d, k), saturated)``.
    ``saturated`` is True when all k values are still above the threshold (rank >= k only)."""

def _blas_info() -> dict[str, Any]:
    """Diagnostics: BLAS/LAPACK source, whether used, float16 path, worker threads."""

def _set_blas_enabled(on: bool) -> None:
    """Testing hook: False routes every kernel to its Eigen fallback (process-wide)."""

def _set_lapack_factorisations(on: bool) -> None:
    """Tuning hook: True sends the randomized solvers' QR and small eigenproblems to LAPACK."""

def _set_threads(threads: int) -> None:
    """Tuning/testing hook: threads of the moment and conversion passes, whatever d (0 restores
    the default: all CPUs, but one conversion thread below d = 1024)."""

def _set_block_rows(rows: int) -> None:
    """Tuning/testing hook: rows per internal rank-k update (0 restores the default)."""

def _block_rows(d: int) -> int:
    """Rows per internal rank-k update for dimension ``d``."""
