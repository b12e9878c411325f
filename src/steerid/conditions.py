"""Steering conditions of each generation experiment: a name and the vector added to the residual.

Every experiment evaluates a set of named additions on the same prompts with the same sampling
noise, so any two conditions of a set form a paired comparison. ``baseline`` (the zero vector)
is in every set: effects are measured against it, never assumed.

Naming: ``v`` is the steering vector at strength α; ``v+<kind>-<i>`` adds the i-th perturbation
of a kind; ``<kind>-<i>`` alone is the perturbation without v; ``-v`` flips the sign; ``pca`` and
``probe`` are other estimates of the direction (E5); ``env:<environment>`` is the vector
extracted in that environment (E3); E2 names carry ``@<alpha>``, E7 names ``span:<source>-<end>-<k>``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

BASELINE, REFERENCE = "baseline", "v"
# δ-types judged for equivalence with v; each is drawn orthogonal to v with ‖δ‖ = ‖v‖.
PERTURBATION_TYPES = ("orthogonal", "null", "top_variance", "top_gain", "other")
# Perturbations that must break equivalence if the test can detect anything at all.
POSITIVE_CONTROLS = ("top_gain", "top_variance")
EXPERIMENTS = ("e1", "e2", "e7")


def perturbed(kind: str, index: int) -> str:
    return f"v+{kind}-{index}"


def e1_conditions(
    v: np.ndarray, deltas: Mapping[str, np.ndarray], n_alone: int, directions: Mapping[str, np.ndarray], alpha: float
) -> dict[str, np.ndarray]:
    """E1/E3/E5: baseline, ±v, v + every δ, the first ``n_alone`` random δ alone, and other directions.

    ``directions`` (PCA, probe, per-environment vectors) are applied at ‖v‖ so that only their
    direction differs from v.
    """
    conditions = {BASELINE: np.zeros_like(v), REFERENCE: alpha * v, "-v": -alpha * v}
    for kind in PERTURBATION_TYPES:
        for index, delta in enumerate(deltas.get(kind, ())):
            conditions[perturbed(kind, index)] = alpha * (v + delta)
    for index, delta in enumerate(deltas["orthogonal"][:n_alone]):
        conditions[f"orthogonal-{index}"] = alpha * delta
    for name, direction in directions.items():
        conditions[name] = alpha * at_norm(direction, float(np.linalg.norm(v)))
    return conditions


def e2_conditions(
    v: np.ndarray,
    deltas: Mapping[str, np.ndarray],
    alphas: Sequence[float],
    residual_norm: float,
    kinds: Sequence[str] = ("orthogonal", "null"),
) -> dict[str, np.ndarray]:
    """E2: v and v + δ (first draw of each kind) at strengths α in units of the mean residual norm.

    At strength α the addition is ``c (v + δ)`` with ``c = α · residual_norm / ‖v‖``, so ``c v``
    has norm α · residual_norm; ``c`` is the paper's α in units of ‖v‖.
    """
    conditions = {BASELINE: np.zeros_like(v)}
    for alpha in alphas:
        scale = alpha * residual_norm / float(np.linalg.norm(v))
        conditions[f"v@{alpha:g}"] = scale * v
        for kind in kinds:
            conditions[f"v+{kind}@{alpha:g}"] = scale * (v + deltas[kind][0])
    return conditions


def e7_conditions(v: np.ndarray, span_deltas: Mapping[str, np.ndarray], alpha: float) -> dict[str, np.ndarray]:
    """E7: v + δ with δ drawn from the bottom-k / top-k subspaces (``span_deltas`` keyed ``<source>-<end>-<k>``)."""
    conditions = {BASELINE: np.zeros_like(v), REFERENCE: alpha * v}
    for name, delta in span_deltas.items():
        conditions[f"span:{name}"] = alpha * (v + delta)
    return conditions


def at_norm(direction: np.ndarray, norm: float) -> np.ndarray:
    """``direction`` rescaled to ``norm``; a zero direction is an error, not a silent zero vector."""
    length = float(np.linalg.norm(direction))
    if length == 0.0:
        raise ValueError("cannot rescale a zero direction")
    return direction * (norm / length)


def members(names: Sequence[str], kind: str) -> list[str]:
    """Conditions ``v+<kind>-<i>`` of one δ-type, in seed order."""
    return [name for name in names if name.startswith(f"v+{kind}-")]
