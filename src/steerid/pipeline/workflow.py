"""Glue for workflow scripts: turn the ``snakemake`` object into plain arguments."""

from __future__ import annotations

import dataclasses
import inspect
import os
import typing
from collections.abc import Callable, Mapping

from steerid import experiments, prompts
from steerid.engine.site import parse_site_label
from steerid.pipeline.runtime import Runtime


def params(snakemake) -> dict:
    """The rule's params as a plain dict (also the input of the provenance digest)."""
    return dict(snakemake.params.items())


def runtime(snakemake) -> Runtime:
    """Runtime settings from ``params.runtime``, threads capped at the CPUs this job may use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return Runtime(**snakemake.params.runtime, threads=max(1, min(snakemake.threads, usable)))


def call(stage: Callable, snakemake) -> None:
    """Call ``stage`` with the rule's named inputs, params and wildcards as keyword arguments.

    The wildcard ``layer`` (a steering site's label) comes as the site: an int, or a tuple of layers.
    ``output`` is the rule's first output and ``outputs`` all of them, ``params`` (when the stage
    takes it) all params for the provenance digest, and ``runtime`` the job's :class:`Runtime`. An
    argument typed as a settings dataclass and not provided by name is built from the params named
    as its fields (rules keep their params flat: their digest is the outputs' provenance). A
    stage with ``**inputs`` also gets every named input no other argument takes. A stage argument
    the rule does not provide is an error naming it, not a silent default.
    """
    # A researcher's own experiments register themselves in every job's process too (stats, figure, summary).
    experiments.load(snakemake.config.get("experiment_modules", []))
    # ... and its own traits, so a stage can load or score a trait defined by a config's trait file.
    prompts.register_trait_files(snakemake.config.get("trait_files", {}))
    inputs = dict(snakemake.input.items())
    available = {
        **dict(snakemake.wildcards.items()),
        **inputs,
        **params(snakemake),
        "output": snakemake.output[0],
        "outputs": list(snakemake.output),
        "params": params(snakemake),
    }
    if "runtime" in available:
        available["runtime"] = runtime(snakemake)
    if "layer" in available:
        available["layer"] = parse_site_label(available["layer"])
    accepted = inspect.signature(stage).parameters
    named = {name: p for name, p in accepted.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    hints = typing.get_type_hints(stage)
    for name in named:
        if name not in available and dataclasses.is_dataclass(hints.get(name)):
            available[name] = settings(hints[name], available, f"stage {stage.__name__}, rule {snakemake.rule!r}")
    missing = [name for name, p in named.items() if name not in available and p.default is inspect.Parameter.empty]
    if missing:
        raise TypeError(f"stage {stage.__name__} needs {missing}, which rule {snakemake.rule!r} does not provide")
    arguments = {name: available[name] for name in named if name in available}
    if len(named) < len(accepted):
        arguments |= {name: value for name, value in inputs.items() if name not in named}
    stage(**arguments)


def settings(kind: type, available: Mapping, where: str):
    """A ``kind`` dataclass from the values in ``available`` named as its fields; missing ones are an error."""
    names = [f.name for f in dataclasses.fields(kind)]
    missing = [name for name in names if name not in available]
    if missing:
        raise TypeError(f"{where}: settings {kind.__name__} need {missing}, which the rule's params do not provide")
    return kind(**{name: available[name] for name in names})
