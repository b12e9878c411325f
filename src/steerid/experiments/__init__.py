"""The study's experiments E1–E8, one module each, and the registry the workflow and summary iterate.

Importing this package registers every experiment in :data:`EXPERIMENTS`, in the paper's order.
"""

from steerid.experiments import (  # noqa: F401  (each module registers its experiment)
    e1_orthogonal,
    e2_alpha,
    e3_environments,
    e4_logit_distance,
    e5_vector_equivalence,
    e6_null_space,
    e7_spanning,
    e8_recovery,
    e9_sparsity,
    e10_independence,
)
from steerid.experiments.registry import (
    EXPERIMENTS,
    Claim,
    Experiment,
    ScoreInput,
    by_rule,
    load,
    one_claim,
    register,
    scored,
    unregister,
)

__all__ = [
    "EXPERIMENTS",
    "Claim",
    "Experiment",
    "ScoreInput",
    "by_rule",
    "load",
    "one_claim",
    "register",
    "scored",
    "unregister",
]
