"""The settings an experiment's stage takes, grouped, each field naming the config key it comes from.

A rule passes its params flat (their digest is the outputs' provenance); ``workflow.call`` builds a
stage's settings dataclass from those params by field name, and :func:`config_keys` gives the rule
the params a dataclass needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def _from(key: str):
    return field(metadata={"config": key})


@dataclass(frozen=True)
class Resampling:
    """Cluster-bootstrap replicates over prompts, and the seed of every random draw."""

    n_boot: int = _from("stats.n_boot")
    seed: int = _from("seed")


@dataclass(frozen=True)
class Equivalence(Resampling):
    """A paired TOST of v + δ against v at a margin of ``margin_sd`` baseline SDs."""

    margin_sd: float = _from("stats.equivalence_margin_sd")


@dataclass(frozen=True)
class EndpointSettings(Equivalence):
    """E1's full set of endpoints: also a margin relative to |Δ(v)| and a permutation null of |d|."""

    margin_effect: float = _from("stats.equivalence_margin_effect")
    n_perm: int = _from("stats.n_perm")


@dataclass(frozen=True)
class Sweep(Resampling):
    """E2's steering strengths and the fluency bound of the operational range."""

    alphas: Sequence[float] = _from("alpha_sweep.alphas")
    units: str = _from("alpha_sweep.units")
    max_perplexity_ratio: float = _from("alpha_sweep.max_perplexity_ratio")


def config_keys(settings: type) -> dict[str, str]:
    """Field name → dotted config key of a settings dataclass (the params of the rule that uses it)."""
    return {f.name: f.metadata["config"] for f in dataclasses.fields(settings)}


def config_values(settings: type | None, config: Mapping) -> dict[str, Any]:
    """Field name → its value in ``config`` (a validated study config); {} for an experiment without settings."""
    values = {}
    for name, key in (config_keys(settings) if settings else {}).items():
        value: Any = config
        for part in key.split("."):
            value = value[part]
        values[name] = value
    return values


@dataclass(frozen=True)
class SparsityGrid:
    """E9: the inert-set threshold, and the planted-recovery grid (sparsity k × inert dimension)."""

    rank_threshold: float = _from("jacobian.recovery_threshold")
    ks: Sequence[int] = _from("sparsity.ks")
    inert_fractions: Sequence[float] = _from("sparsity.inert_fractions")
    trials: int = _from("sparsity.trials")
    seed: int = _from("seed")


@dataclass(frozen=True)
class IndependenceSettings(Resampling):
    """E10: principal components kept before FastICA, and the bootstrap of prompts (``n_boot``)."""

    n_boot: int = _from("independence.n_boot")
    components: int = _from("independence.components")
