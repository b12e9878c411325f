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
        """Empty accumulator for ``d`` columns; ValueError unless ``d >= 1``."""

    def update(self, X: NDArray[np.float16] | NDArray[np.float32] | NDArray[np.float64]) -> None:
        """Add the rows of a C-contiguous (n, d) float16/32/64 block, read in place; n may be 0.

        TypeError for a non-array or another dtype; ValueError for a non-2-D block, a column
        count other than ``d``, a non-C-contiguous block, or NaN/Inf entries (state unchanged).
        """

    def merge(self, other: StreamingCovariance) -> None:
        """Add everything ``other`` has seen (Chan's combination); ValueError if ``d`` differs."""

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
    PSD matrix by the Halko-Martinsson-Tropp randomized range finder; deterministic for a seed."""
