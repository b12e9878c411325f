"""The experiment record and the registry of the study's experiments.

An *experiment* (E1..E8) turns measurements into one stats JSON per cell and reports it: its
record names the stage that writes the JSON, the figure drawn from all cells and the claims it
answers in the summary. A *condition set* (see :mod:`steerid.conditions`) is what the model is run
under; several experiments can read the scores of one condition set (E1, E3 and E5 read "e1").
The workflow's stats rules, the figure targets and the summary all iterate this registry.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from matplotlib.figure import Figure

from steerid import store
from steerid.io import atomic_write_json

# A claim of the paper as the summary states it: its title and one finding per cell.
Claim = tuple[str, list[str]]
# What one stats JSON covers: a model's steering site (it steers there), each layer of that site (one
# layer's geometry), each layer and also a site of several layers as one, or the whole model (it compares layers).
Scope = Literal["site", "layer", "layers_and_site", "model"]


@dataclass(frozen=True)
class ScoreInput:
    """The score files an experiment reads: those of ``condition_set``, pooled over every
    environment or from the first (main) environment only."""

    condition_set: str
    environments: Literal["all", "main"] = "all"


@dataclass(frozen=True)
class Experiment:
    """One experiment: where its stats come from and go, and how they are drawn and reported.

    ``settings`` is the settings dataclass its stage takes (see :mod:`steerid.experiments.settings`);
    its fields are the rule's params, so changing one reruns only the experiments that use it.
    ``claims(results, corrected)`` gets this experiment's stats JSONs and E1's Holm-corrected verdicts.
    """

    name: str
    title: str
    rule: str
    stage: Callable[..., None]
    figure: Callable[[Sequence[Any]], Figure]
    claims: Callable[[Sequence[Any], Mapping[str, dict]], list[Claim]]
    scope: Scope = "site"
    generated_only: bool = False
    scores: ScoreInput | None = None
    settings: type | None = None
    section: Callable[[Sequence[Any], Mapping[str, dict]], list[str]] | None = None

    def write(self, output: str, record: Mapping, params: Mapping, **fields) -> None:
        """Write one stats JSON: the experiment's ``record`` (see :mod:`.records`) and the provenance of
        ``params``, with ``fields`` (such as how the vector was added) in it."""
        atomic_write_json(output, {**record, "provenance": store.provenance(params, **fields)})

    @property
    def target(self) -> str:
        """Path pattern of one stats JSON: per steering site (or layer) and trait, or per model and trait."""
        layer = "" if self.scope == "model" else "L{layer}/"
        return f"results/{{model}}/stats/{self.name}/{layer}{{trait}}.json"


def one_claim(title: str, finding: Callable[[Any], str]) -> Callable[[Sequence[Any], Mapping], list[Claim]]:
    """The claims of an experiment that answers one claim with one finding per cell."""

    def claims(results: Sequence[Any], corrected: Mapping[str, dict]) -> list[Claim]:
        return [(title, [finding(result) for result in results])]

    return claims


EXPERIMENTS: dict[str, Experiment] = {}
# A name is a path component, a figure file name and part of a rule name.
NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def register(experiment: Experiment) -> Experiment:
    """Add ``experiment`` to the registry (its name and rule must be new)."""
    if not NAME.match(experiment.name):
        raise ValueError(f"experiment name {experiment.name!r} must match {NAME.pattern} (it names files and rules)")
    for other in EXPERIMENTS.values():
        if experiment.name == other.name or experiment.rule == other.rule:
            raise ValueError(f"experiment {experiment.name!r} (rule {experiment.rule!r}) clashes with {other.name!r}")
    EXPERIMENTS[experiment.name] = experiment
    return experiment


def load(modules: Sequence[str]) -> None:
    """Import each of ``modules`` (config ``experiment_modules``), which registers its experiments."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise ImportError(
                f"config experiment_modules: cannot import {module!r} ({error}); expected a module on the "
                "Python path that registers experiments"
            ) from error


def unregister(name: str) -> None:
    """Remove a registered experiment (tests register toy ones)."""
    del EXPERIMENTS[name]


def by_rule(rule: str) -> Experiment:
    """The experiment whose stats the Snakemake rule ``rule`` writes."""
    for experiment in EXPERIMENTS.values():
        if experiment.rule == rule:
            return experiment
    raise KeyError(f"no experiment is written by rule {rule!r}; rules: {[e.rule for e in EXPERIMENTS.values()]}")


def scored() -> list[Experiment]:
    """Experiments computed from the scores of a condition set (one generated stats rule each)."""
    return [experiment for experiment in EXPERIMENTS.values() if experiment.scores is not None]
