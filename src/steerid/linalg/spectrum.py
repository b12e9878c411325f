"""Covariance spectra and robust sizes of their low-variance ("null") subspaces.

On real activations a few attention-sink positions carry enormous variance (on SmolLM2,
λ₁/λ₂ ≈ 3·10⁴), so a threshold relative to λ₁ alone reports rank 1 and a 99.8% "null space"
that is an artefact. Every spectrum is therefore summarised several ways: ranks relative to
λ₁, ranks that explain a fraction of the trace, the participation ratio — and the same again
for the covariance with sink positions excluded.

The exact decomposition comes from LAPACK (numpy ``eigh``): at d ≤ 4096 it costs seconds,
gives every eigenvalue (effective ranks need the whole spectrum) and the bottom eigenvectors
the null-space perturbations are drawn from. The native randomized eigensolver recomputes the
top of the spectrum as a cross-check that the two agree on real activations; a disagreement
above :data:`RANDOMIZED_TOLERANCE` stops the job. (On SmolLM2's covariances the top 8-288 of
576 eigenvalues agree to 1e-6-0.8 %; asking for all 576 gives 20-560 %, since the smallest are
at the noise floor: the config check keeps ``spectrum.top_k`` at most d/2.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from steerid.linalg import descending_eigh, eigenvalue_rank_summary, participation_ratio, randomized_eigh

VIEWS = ("all_tokens", "excluding_sinks")
# Largest relative difference between a randomized and the exact top-k eigenvalue that is accepted.
RANDOMIZED_TOLERANCE = 0.05


@dataclass(frozen=True)
class Spectrum:
    """Eigenpairs sorted by descending eigenvalue, and the randomized cross-check."""

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    randomized_top_k: int
    randomized_max_rel_error: float

    def summary(self, rank_thresholds: Sequence[float], variance_fractions: Sequence[float]) -> dict:
        """Ranks by every definition, each also as a fraction of d, thresholded on eigenvalues λ.

        ``rank_at_{t}_of_max`` here counts λ > t·λ_max (:func:`steerid.linalg.eigenvalue_rank_summary`);
        E6 writes the same key for σ > t·σ_max of the same covariance.
        """
        summary = {
            "d": self.eigenvalues.size,
            "participation_ratio": participation_ratio(self.eigenvalues),
            "top_eigenvalue_ratio": float(self.eigenvalues[0] / self.eigenvalues[1]),
            "randomized_top_k": self.randomized_top_k,
            "randomized_max_rel_error": self.randomized_max_rel_error,
        }
        return summary | eigenvalue_rank_summary(self.eigenvalues, rank_thresholds, variance_fractions)


def analyse(covariance: np.ndarray, top_k: int, seed: int, power_iters: int = 4) -> Spectrum:
    """Exact spectrum of ``covariance`` and the native randomized top-k as a cross-check."""
    values, vectors = descending_eigh(covariance, fixed_signs=False)
    k = min(top_k, values.size)
    approx, _ = randomized_eigh(np.ascontiguousarray(covariance), k, power_iters=power_iters, seed=seed)
    error = float(np.max(np.abs(approx - values[:k]) / np.abs(values[:k])))
    if not error <= RANDOMIZED_TOLERANCE:
        raise ValueError(
            f"randomized cross-check failed: the native top-{k} eigenvalues differ from LAPACK's by up to "
            f"{error:.3g} (relative), above the tolerance {RANDOMIZED_TOLERANCE}; expected spectrum.top_k well "
            f"below d = {values.size} and a working steerid._native"
        )
    return Spectrum(values, vectors, k, error)


def sink_mask(positions: np.ndarray, sink_positions: Sequence[int]) -> np.ndarray:
    """True for rows whose in-sequence position is not an attention-sink position."""
    return ~np.isin(positions, np.asarray(sink_positions, dtype=positions.dtype))
