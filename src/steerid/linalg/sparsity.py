"""Sparsity as a route back to identifiability (the paper's H10): among the vectors that steer like v,
{v + δ : δ inert}, is the one of least L1 norm unique, and would it recover a sparse direction?

The inert subspace N is spanned by the Jacobian Gram's eigenvectors whose gain σ = √λ is below
``rtol`` of the largest; its orthogonal complement B carries every direction the model responds
to. x steers like v (to first order) iff Bᵀx = Bᵀv, so the sparsest equivalent vector is the basis
pursuit solution min ‖x‖₁ s.t. Bᵀx = Bᵀv, a linear program. It is the unique solution iff B_Sᵀ
(S its support) has full column rank and a dual vector y has A_Sᵀy = sign(x_S) with
‖A_{S^c}ᵀy‖∞ < 1 strictly (A = Bᵀ; Zhang, Yin and Cheng 2015); a second LP finds the y with the
largest margin, so uniqueness is decided exactly up to the tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

__all__ = [
    "SparsestEquivalent",
    "basis_pursuit",
    "gain_split",
    "planted_recovery",
    "sparsest_equivalent",
]

# Entries below this fraction of the largest |x_i| are zero (HiGHS returns vertices; this only
# absorbs its rounding).
SUPPORT_RTOL = 1e-7
# A planted vector counts as recovered when the solution is this close to it, relative to its norm.
RECOVERY_RTOL = 1e-5


@dataclass(frozen=True)
class SparsestEquivalent:
    """The least-L1 vector equivalent to v, and whether it is the only one."""

    vector: np.ndarray
    support: int
    unique: bool
    certificate_margin: float
    """1 − max |a_jᵀy| off the support for the best dual y (> 0: unique); −inf where A_S is rank deficient."""


def gain_split(eigenvalues: np.ndarray, eigenvectors: np.ndarray, rtol: float) -> tuple[np.ndarray, np.ndarray]:
    """(responsive B, inert N) orthonormal bases from a Gram's eigenpairs: σ = √λ above or below rtol·σ_max."""
    values = np.clip(np.asarray(eigenvalues, np.float64), 0.0, None)
    vectors = np.asarray(eigenvectors, np.float64)
    if values.ndim != 1 or vectors.shape != (values.size, values.size):
        raise ValueError(f"need eigenvalues (d,) and eigenvectors (d, d); got {values.shape} and {vectors.shape}")
    if not 0 < rtol < 1:
        raise ValueError(f"rtol must be in (0, 1), got {rtol!r}")
    sigma = np.sqrt(values)
    responsive = sigma > rtol * sigma.max()
    return vectors[:, responsive], vectors[:, ~responsive]


def sparsest_equivalent(v: np.ndarray, responsive: np.ndarray) -> SparsestEquivalent:
    """min ‖x‖₁ subject to responsiveᵀ x = responsiveᵀ v, with its uniqueness decided (module docstring)."""
    x = basis_pursuit(v, responsive)
    support = x != 0
    margin = _certificate_margin(np.asarray(responsive, np.float64).T, support, np.sign(x))
    return SparsestEquivalent(x, int(support.sum()), bool(margin > 1e-9), margin)


def basis_pursuit(v: np.ndarray, responsive: np.ndarray) -> np.ndarray:
    """A least-L1 x with responsiveᵀ x = responsiveᵀ v (a vertex of the LP: entries off its support exactly 0)."""
    v = np.asarray(v, np.float64)
    a = np.asarray(responsive, np.float64).T
    if v.ndim != 1 or a.ndim != 2 or a.shape[1] != v.size or a.shape[0] == 0:
        raise ValueError(f"need v (d,) and a responsive basis (d, r) with r >= 1; got {v.shape} and {a.T.shape}")
    d = v.size
    # x = u − w with u, w ≥ 0: the L1 norm becomes linear.
    result = linprog(np.ones(2 * d), A_eq=np.hstack([a, -a]), b_eq=a @ v, bounds=(0, None), method="highs")
    if result.status != 0:
        raise RuntimeError(f"basis pursuit did not solve: {result.message}")
    x = result.x[:d] - result.x[d:]
    return np.where(np.abs(x) > SUPPORT_RTOL * np.abs(x).max(), x, 0.0)


def _certificate_margin(a: np.ndarray, support: np.ndarray, signs: np.ndarray) -> float:
    """max t such that some y has A_Sᵀy = sign(x_S) and |a_jᵀy| ≤ 1 − t off S (−inf when A_S is rank deficient)."""
    on, off = a[:, support], a[:, ~support]
    if np.linalg.matrix_rank(on) < on.shape[1]:
        return -np.inf
    if off.shape[1] == 0:
        return 1.0
    r = a.shape[0]
    # Variables (y, t); maximise t.
    objective = np.zeros(r + 1)
    objective[-1] = -1.0
    bound = np.hstack([np.vstack([off.T, -off.T]), np.ones((2 * off.shape[1], 1))])
    equal = np.hstack([on.T, np.zeros((on.shape[1], 1))])
    result = linprog(
        objective,
        A_ub=bound,
        b_ub=np.ones(2 * off.shape[1]),
        A_eq=equal,
        b_eq=signs[support],
        bounds=[(None, None)] * r + [(None, 1.0)],
        method="highs",
    )
    return float(result.x[-1]) if result.status == 0 else -np.inf


def planted_recovery(responsive: np.ndarray, inert: np.ndarray, k: int, trials: int, seed: int) -> float:
    """Share of random k-sparse vectors s that basis pursuit recovers from a random member s + N c of their
    equivalence class (c scaled so that the inert part is as large as s)."""
    d = responsive.shape[0]
    if not 1 <= k <= d or trials < 1:
        raise ValueError(f"need 1 <= k <= d={d} and trials >= 1; got k={k}, trials={trials}")
    rng = np.random.default_rng(seed)
    recovered = 0
    for _ in range(trials):
        planted = np.zeros(d)
        planted[rng.choice(d, size=k, replace=False)] = rng.standard_normal(k)
        hidden = inert @ rng.standard_normal(inert.shape[1]) if inert.shape[1] else np.zeros(d)
        scale = float(np.linalg.norm(planted)) / max(float(np.linalg.norm(hidden)), 1e-300)
        found = basis_pursuit(planted + scale * hidden, responsive)
        recovered += bool(np.linalg.norm(found - planted) <= RECOVERY_RTOL * np.linalg.norm(planted))
    return recovered / trials
