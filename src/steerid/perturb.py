"""Perturbations δ of a steering vector v, each orthogonal to v and of norm ‖v‖.

Draws inside a subspace S (spanned by orthonormal columns B) stay exactly inside S: for s ∈ S,
s·v = s·v_S with v_S = B Bᵀ v, so removing the v_S component keeps s in S and makes it ⟂ v.
Draws of one call are mutually orthogonal (QR), so n seeds give n independent directions.
"""

from __future__ import annotations

import numpy as np

# Perturbation subspaces come from the data manifold without the attention-sink outliers.
PERTURBATION_VIEW = "excluding_sinks"


def orthogonal_draws(v: np.ndarray, n: int, seed: int, basis: np.ndarray | None = None) -> np.ndarray:
    """(n, d) mutually orthogonal vectors ⟂ v with norm ‖v‖, inside span(basis) when given."""
    v = np.asarray(v, np.float64)
    basis = np.eye(v.size) if basis is None else np.asarray(basis, np.float64)
    if basis.shape[0] != v.size:
        raise ValueError(f"basis has {basis.shape[0]} rows, expected d = {v.size}")
    if not 1 <= n <= basis.shape[1] - 1:
        raise ValueError(
            f"cannot draw {n} orthogonal directions from a {basis.shape[1]}-dimensional subspace; "
            f"expected 1 <= n <= {basis.shape[1] - 1}"
        )
    in_subspace = basis @ (basis.T @ v)
    draws = basis @ np.random.default_rng(seed).standard_normal((basis.shape[1], n))
    if np.linalg.norm(in_subspace) > 0:
        unit = in_subspace / np.linalg.norm(in_subspace)
        draws -= np.outer(unit, unit @ draws)
    orthonormal, _ = np.linalg.qr(draws)
    return orthonormal.T * np.linalg.norm(v)


def eigen_subspace(eigenvectors: np.ndarray, k: int, end: str) -> np.ndarray:
    """The k eigenvectors at the ``top`` (highest variance) or ``bottom`` of a basis sorted by descending eigenvalue."""
    if end not in ("bottom", "top"):
        raise ValueError(f"end {end!r} is not a subspace end; expected 'bottom' or 'top'")
    if not 2 <= k <= eigenvectors.shape[1]:
        raise ValueError(f"subspace size {k} out of range; expected 2 <= k <= {eigenvectors.shape[1]}")
    return eigenvectors[:, :k] if end == "top" else eigenvectors[:, -k:]


def orthogonalised(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The component of ``u`` orthogonal to ``v``, rescaled to ‖v‖ (another trait's vector as a δ)."""
    u, v = np.asarray(u, np.float64), np.asarray(v, np.float64)
    if u.shape != v.shape:
        raise ValueError(f"u has shape {u.shape}, expected v's shape {v.shape}")
    residual = u - (u @ v) / (v @ v) * v
    length = np.linalg.norm(residual)
    if length <= 1e-12 * np.linalg.norm(u):
        raise ValueError("u is parallel to v: nothing of it is orthogonal to v")
    return residual * (np.linalg.norm(v) / length)
