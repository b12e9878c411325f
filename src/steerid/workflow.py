"""Glue for workflow scripts: turn the ``snakemake`` object into plain arguments."""

from __future__ import annotations

import os

from steerid.stages import Runtime


def params(snakemake) -> dict:
    """The rule's params as a plain dict (also the input of the provenance digest)."""
    return dict(snakemake.params.items())


def runtime(snakemake) -> Runtime:
    """Runtime settings from ``params.runtime``, threads capped at the CPUs this job may use."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return Runtime(**snakemake.params.runtime, threads=max(1, min(snakemake.threads, usable)))
