"""Steering conditions: what is added to the residual, and the one place their names are made and read.

Every generation run evaluates a *condition set* — named additions on the same prompts with the same
sampling noise — so any two conditions of a set form a paired comparison. ``baseline`` (the zero
vector) is in every set: effects are measured against it, never assumed.

A :class:`Condition` encodes and decodes its name; nothing else builds or parses condition names.
The kinds of perturbation δ live in :data:`PERTURBATION_KINDS`: a new kind is one entry there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALPHA_UNITS",
    "BASELINE",
    "CONDITION_SETS",
    "PERTURBATION_KINDS",
    "PERTURBATION_TYPES",
    "POSITIVE_CONTROLS",
    "REFERENCE",
    "Condition",
    "PerturbationKind",
    "RandomDraw",
    "Span",
    "Subspace",
    "as_applied",
    "at_norm",
    "e1_conditions",
    "e2_conditions",
    "e7_conditions",
    "members",
    "perturbed",
    "pooled",
    "v_norms_per_alpha",
]

BASELINE, REFERENCE = "baseline", "v"
# E2's strengths: multiples of the layer's mean residual norm (comparable across models), or of ‖v‖ (the paper's).
ALPHA_UNITS = {"mean_residual_norm": "mean residual norm", "v_norm": "‖v‖"}
# The condition sets the model is run under; the experiments (steerid.experiments) read their scores.
CONDITION_SETS = ("e1", "e2", "e7")


@dataclass(frozen=True)
class Subspace:
    """Where a kind's δ is drawn: the ``end`` eigenvectors of ``basis``, as many as ``size`` says
    (``"null"``: the low-variance fraction of d, ``"top"``: ``perturbations.top_k``)."""

    basis: str  # "covariance" (of the background activations) or "jacobian" (pooled Gram)
    end: str  # "bottom" or "top"
    size: str  # "null" or "top"


@dataclass(frozen=True)
class RandomDraw:
    """How a kind's δ are drawn: ``perturbations.<count_key>`` mutually orthogonal directions ⟂ v,
    seeded with ``seed + seed_offset``, inside ``subspace`` (None: all of v's orthogonal complement)."""

    count_key: str
    seed_offset: int
    subspace: Subspace | None = None


@dataclass(frozen=True)
class PerturbationKind:
    """A kind of δ ⟂ v with ‖δ‖ = ‖v‖, judged for equivalence with v (E1)."""

    name: str
    figure_label: str
    report_label: str
    positive_control: bool  # must break equivalence if the test can detect anything at all
    draw: RandomDraw | None  # None: not drawn at random (the other traits' vectors, orthogonalised)


PERTURBATION_KINDS: dict[str, PerturbationKind] = {
    kind.name: kind
    for kind in (
        PerturbationKind("orthogonal", "random ⊥ v", "random ⟂ v", False, RandomDraw("n_orthogonal", 0)),
        PerturbationKind(
            "null",
            "low-variance",
            "low-variance ⟂ v",
            False,
            RandomDraw("n_null", 1, Subspace("covariance", "bottom", "null")),
        ),
        PerturbationKind(
            "top_variance",
            "top-variance",
            "top-variance ⟂ v",
            True,
            RandomDraw("n_top_variance", 2, Subspace("covariance", "top", "top")),
        ),
        PerturbationKind(
            "top_gain",
            "top-gain (control)",
            "top-gain ⟂ v (positive control)",
            True,
            RandomDraw("n_top_gain", 3, Subspace("jacobian", "top", "top")),
        ),
        PerturbationKind("other", "other traits", "other trait's vector ⟂ v", False, None),
    )
}
PERTURBATION_TYPES = tuple(PERTURBATION_KINDS)
POSITIVE_CONTROLS = tuple(kind.name for kind in PERTURBATION_KINDS.values() if kind.positive_control)
# The first random draws of these kinds are also applied without v (δ alone must do little).
ALONE_KIND = "orthogonal"
# Seeds of the E7 span draws start here, past every kind's offset.
SPAN_SEED_OFFSET = 10
# Layer i of a steering site draws its δ with seeds offset by i × this (above every offset one layer
# uses), so a site's layers get independent draws and a one-layer site keeps the seeds it always had.
SITE_SEED_STRIDE = 1000


@dataclass(frozen=True)
class Span:
    """E7: one δ drawn from the ``end``-``k`` eigenvectors of ``source``."""

    source: str
    end: str
    k: int

    @property
    def key(self) -> str:
        return f"{self.source}-{self.end}-{self.k}"

    @classmethod
    def parse(cls, key: str) -> Span:
        source, end, k = key.rsplit("-", 2)
        return cls(source, end, int(k))


# Directions an addition can start from; every other name is a δ, an environment or a span.
BASES = (BASELINE, REFERENCE, "-v", "pca", "probe")


@dataclass(frozen=True)
class Condition:
    """One steering condition, by what it adds.

    ``base`` is the direction the addition starts from (``"v"``, ``"-v"``, ``"baseline"``, or another
    estimate of it: ``"pca"``, ``"probe"``); ``None`` for a δ applied alone. ``kind``/``index`` name the
    δ added (``index`` None: the δ-type pooled over its draws); ``alpha`` is an E2 strength;
    ``environment`` names the vector extracted in that environment (E3); ``span`` an E7 draw.
    """

    base: str | None = REFERENCE
    kind: str | None = None
    index: int | None = None
    alpha: float | None = None
    environment: str | None = None
    span: Span | None = None

    @property
    def name(self) -> str:
        if self.span is not None:
            return f"span:{self.span.key}"
        if self.environment is not None:
            return f"env:{self.environment}"
        parts = [self.base or ""]
        if self.kind is not None:
            delta = self.kind if self.index is None else f"{self.kind}-{self.index}"
            parts.append(f"+{delta}" if self.base else delta)
        if self.alpha is not None:
            parts.append(f"@{self.alpha:g}")
        return "".join(parts)

    @classmethod
    def parse(cls, name: str) -> Condition:
        """The condition a name denotes; ValueError for a name no condition has."""
        if not name:
            raise ValueError("an empty string is not a condition name")
        if name.startswith("span:"):
            return cls(span=Span.parse(name.removeprefix("span:")))
        if name.startswith("env:"):
            return cls(environment=name.removeprefix("env:"))
        body, at, alpha = name.partition("@")
        before, plus, delta = body.partition("+")
        base: str | None = before
        if not plus:
            base, delta = (body, "") if body in BASES else (None, body)
        if base is not None and base not in BASES:
            raise ValueError(f"{name!r} is not a condition name: {base!r} is not one of {BASES}")
        kind, dash, index = delta.rpartition("-") if re.fullmatch(r".+-\d+", delta) else (delta, "", "")
        if kind and kind not in PERTURBATION_KINDS:
            raise ValueError(f"{name!r} names perturbation kind {kind!r}; expected one of {PERTURBATION_TYPES}")
        condition = cls(base, kind or None, int(index) if dash else None, float(alpha) if at else None)
        if condition.name != name:  # the one spelling of each condition is the one .name writes
            raise ValueError(f"{name!r} is not a condition name (did you mean {condition.name!r}?)")
        return condition


def perturbed(kind: str, index: int) -> str:
    """``v`` plus the ``index``-th draw of ``kind``."""
    return Condition(kind=kind, index=index).name


def pooled(kind: str) -> str:
    """``v`` plus a δ-type, pooled over its draws (the unit E1 judges)."""
    return Condition(kind=kind).name


def e1_conditions(
    v: np.ndarray,
    deltas: Mapping[str, np.ndarray],
    n_alone: int,
    directions: Mapping[str, np.ndarray],
    alpha: float,
) -> dict[str, np.ndarray]:
    """E1/E3/E5: baseline, ±v, v + every δ, the first ``n_alone`` random δ alone, and other directions.

    ``directions`` (PCA, probe, per-environment vectors, keyed by condition name) are applied at ‖v‖
    (at a site of several layers, at each layer's ‖v_ℓ‖) so that only their direction differs from v.
    """
    conditions = {BASELINE: np.zeros_like(v), REFERENCE: alpha * v, Condition("-v").name: -alpha * v}
    for kind in PERTURBATION_TYPES:
        for index, delta in enumerate(deltas.get(kind, ())):
            conditions[perturbed(kind, index)] = alpha * (v + delta)
    for index, delta in enumerate(deltas[ALONE_KIND][:n_alone]):
        conditions[Condition(None, ALONE_KIND, index).name] = alpha * delta
    for name, direction in directions.items():
        conditions[name] = alpha * at_norm(direction, np.linalg.norm(v, axis=-1))
    return conditions


def e2_conditions(
    v: np.ndarray,
    deltas: Mapping[str, np.ndarray],
    alphas: Sequence[float],
    residual_norm: float,
    kinds: Sequence[str] = ("orthogonal", "null"),
    units: str = "mean_residual_norm",
) -> dict[str, np.ndarray]:
    """E2: v and v + δ (first draw of each kind) at strengths α, in ``units`` (:data:`ALPHA_UNITS`).

    At strength α the addition is ``c (v + δ)``: in units of the mean residual norm ``c = α ·
    residual_norm / ‖v‖``, so ``c v`` has norm α · residual_norm; in units of ‖v‖ (the paper's)
    ``c = α``.
    """
    if units not in ALPHA_UNITS:
        raise ValueError(f"alpha units {units!r} are not one of {tuple(ALPHA_UNITS)}")
    conditions = {BASELINE: np.zeros_like(v)}
    for alpha in alphas:
        scale = alpha * v_norms_per_alpha(units, residual_norm, float(np.linalg.norm(v)))
        conditions[Condition(alpha=alpha).name] = scale * v
        for kind in kinds:
            conditions[Condition(kind=kind, alpha=alpha).name] = scale * (v + deltas[kind][0])
    return conditions


def e7_conditions(v: np.ndarray, span_deltas: Mapping[Span, np.ndarray], alpha: float) -> dict[str, np.ndarray]:
    """E7: v + δ with δ drawn from the bottom-k / top-k subspaces of each source."""
    conditions = {BASELINE: np.zeros_like(v), REFERENCE: alpha * v}
    for span, delta in span_deltas.items():
        conditions[Condition(span=span).name] = alpha * (v + delta)
    return conditions


def v_norms_per_alpha(units: str, residual_norm: float, v_norm: float) -> float:
    """How many ‖v‖ one unit of α is: residual_norm / ‖v‖ in residual-norm units, 1 in ‖v‖ units."""
    return residual_norm / v_norm if units == "mean_residual_norm" else 1.0


def at_norm(direction: np.ndarray, norm) -> np.ndarray:
    """``direction`` rescaled to ``norm``, row by row for a site's (layers, d) stack (``norm`` then one
    per layer); a zero direction is an error, not a silent zero vector."""
    length = np.linalg.norm(direction, axis=-1, keepdims=True)
    if np.any(length == 0.0):
        raise ValueError("cannot rescale a zero direction")
    return direction * (np.asarray(norm, dtype=np.float64)[..., None] / length)


def as_applied(direction: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``direction`` as the conditions apply it in v's place (at ‖v‖, at each layer of a site), flattened:
    cosines between the directions of a site compare these, weighting each layer as the steering does."""
    return at_norm(direction, np.linalg.norm(v, axis=-1)).ravel()


def members(names: Sequence[str], kind: str) -> list[str]:
    """Conditions v + (a draw of ``kind``), in seed order."""
    found = [(name, Condition.parse(name)) for name in names]
    return [
        name for name, c in found if c.base == REFERENCE and c.kind == kind and c.index is not None and c.alpha is None
    ]
