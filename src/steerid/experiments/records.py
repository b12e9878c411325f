"""The stats JSON of each experiment as a typed record: its stage builds one, its figure and its
claims read them, and mypy checks both sides against the same keys. Nested tables stay plain dicts."""

from __future__ import annotations

from typing import Any, TypedDict

from steerid.engine.site import Layers
from steerid.stats.analysis import AlphaCurves, Endpoints

Table = dict[str, Any]


class ScorerCheck(TypedDict):
    auroc: float
    min_auroc: float
    valid: bool
    n: int


class ScoreHeader(TypedDict):
    """The cell a score-reading experiment describes."""

    model: str
    layer: Layers  # one layer, or a steering site of several
    trait: str
    scorer: str
    alpha: float | None
    alpha_source: str
    v_norm: float
    mean_residual_norm: float
    vector_source: str
    scorer_validation: ScorerCheck


class E1Stats(ScoreHeader, Endpoints):
    experiment: str
    environments: list[str]


class E2Stats(ScoreHeader, AlphaCurves):
    experiment: str
    alpha_units: str
    operating_point: dict[str, Any]


class E3Stats(ScoreHeader):
    experiment: str
    cosine_with_v: dict[str, float]
    cosines: dict[str, dict[str, float]]
    by_environment: dict[str, Endpoints]
    cross_application: dict[str, dict[str, Table]]


class E4Stats(TypedDict):
    experiment: str
    model: str
    layer: Layers
    trait: str
    alpha: float | None
    alpha_source: str
    n_sequences: int
    pairs: dict[str, Table]
    relative_to_0_vs_v: dict[str, dict[str, float]]
    conditions: dict[str, str]


class E5Stats(ScoreHeader):
    experiment: str
    cosine_pca_probe: float
    cosine_v_mean_difference: float
    natural_norms: dict[str, float]
    margin: Table
    n_prompts: int
    by_direction: dict[str, Table]


class E6Stats(TypedDict):
    experiment: str
    model: str
    trait: str
    layers: list[Table]
    sites: list[Table]  # steering sites of several layers: their joint Jacobians


class E7Stats(ScoreHeader):
    experiment: str
    environments: list[str]
    n_prompts: int
    n_samples: int
    margin: Table
    delta_v: Table
    curves: dict[str, list[Table]]


class E8Stats(TypedDict):
    experiment: str
    model: str
    trait: str
    d: int
    layer: Layers  # a steered layer, or a steering site of several (its joint Jacobian)
    rank_threshold: float
    definition: str
    environments: list[Table]
    layers: list[Table]


class E9Stats(TypedDict):
    experiment: str
    model: str
    trait: str
    layer: int
    d: int
    rank_threshold: float
    inert_dim: int
    v: Table
    sparsest: Table
    recovery: list[Table]


class E10Stats(TypedDict):
    experiment: str
    model: str
    trait: str
    layer: int
    verdict: str
    ica: Table
    mean_difference: Table
    thresholds: dict[str, float]
    chance_abs_cosine: float
    d: int
    k: int
    n_boot: int
    seed: int
    n_pairs: dict[str, int]
