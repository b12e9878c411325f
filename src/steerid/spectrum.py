"""Covariance spectra and the sizes of their low-variance ("null") subspaces.

The exact decomposition comes from LAPACK (numpy ``eigh``): at d ≤ 4096 it costs seconds,
gives every eigenvalue (effective ranks need the whole spectrum) and the bottom eigenvectors
the null-space perturbations are drawn from. The native randomized eigensolver recomputes the
top of the spectrum as a cross-check that the two agree on real activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from steerid.linalg import numerical_rank, randomized_eigh


@dataclass(frozen=True)
class Spectrum:
    """Eigenpairs sorted by descending eigenvalue, plus rank summaries."""

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    rank_thresholds: tuple[float, ...]
    randomized_top_k: int
    randomized_max_rel_error: float

    @property
    def dim(self) -> int:
        return self.eigenvalues.size

    def effective_rank(self, rtol: float) -> int:
        """Eigenvalues above ``rtol`` × the largest."""
        return numerical_rank(self.eigenvalues, rtol)

    def participation_ratio(self) -> float:
        """(Σλ)² / Σλ²: how many directions carry the variance."""
        values = np.clip(self.eigenvalues, 0, None)
        return float(values.sum() ** 2 / np.square(values).sum())

    def summary(self) -> dict:
        summary = {"d": self.dim, "participation_ratio": self.participation_ratio(),
                   "randomized_top_k": self.randomized_top_k, "randomized_max_rel_error": self.randomized_max_rel_error}
        for rtol in self.rank_thresholds:
            rank = self.effective_rank(rtol)
            summary[f"rank_at_{rtol:g}"] = rank
            summary[f"rank_fraction_at_{rtol:g}"] = rank / self.dim
        return summary


def analyse(covariance: np.ndarray, top_k: int, rank_thresholds: Sequence[float], seed: int) -> Spectrum:
    """Exact spectrum of ``covariance`` and the native randomized top-k as a cross-check."""
    values, vectors = np.linalg.eigh(covariance)
    values, vectors = values[::-1].copy(), np.ascontiguousarray(vectors[:, ::-1])
    k = min(top_k, values.size)
    approx, _ = randomized_eigh(np.ascontiguousarray(covariance), k, seed=seed)
    error = float(np.max(np.abs(approx - values[:k]) / np.abs(values[:k])))
    return Spectrum(values, vectors, tuple(rank_thresholds), k, error)
