"""Glue for workflow scripts: turn the ``snakemake`` object into plain arguments."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from steerid.stages import Runtime


def params(snakemake) -> dict:
    """The rule's params as a plain dict (also the input of the provenance digest)."""
    return dict(snakemake.params.items())


def runtime(snakemake) -> Runtime:
    """Runtime settings from ``params.runtime``, threads capped at the CPUs this job may use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return Runtime(**snakemake.params.runtime, threads=max(1, min(snakemake.threads, usable)))


def call(stage: Callable, snakemake) -> None:
    """Call ``stage`` with the rule's named inputs, params and wildcards as keyword arguments.

    ``output`` is the rule's single output, ``params`` (when the stage takes it) all params for
    the provenance digest, and ``runtime`` the job's :class:`Runtime`. A stage argument the rule
    does not provide is an error naming it, not a silent default.
    """
    available = {
        **dict(snakemake.wildcards.items()),
        **dict(snakemake.input.items()),
        **params(snakemake),
        "output": snakemake.output[0],
        "params": params(snakemake),
    }
    if "runtime" in available:
        available["runtime"] = runtime(snakemake)
    if "layer" in available:
        available["layer"] = int(available["layer"])
    accepted = inspect.signature(stage).parameters
    missing = [name for name, p in accepted.items() if name not in available and p.default is inspect.Parameter.empty]
    if missing:
        raise TypeError(f"stage {stage.__name__} needs {missing}, which rule {snakemake.rule!r} does not provide")
    stage(**{name: available[name] for name in accepted if name in available})
