"""Readers of the stages' result files that analyses use: a generations file's records and a scores
file's per-condition grids. They live apart from :mod:`steerid.pipeline.stages` because the
Snakefile imports every experiment, and these must not load the model stack with it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from steerid import store


def read_generations(path: str) -> list[dict]:
    """The records of a generations file (JSON lines), in the file's order."""
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def read_scores(path: str, kind: str = "scores") -> tuple[dict[str, np.ndarray], dict]:
    """Per-condition grids (``scores`` or ``perplexity``) and the file's attributes (NaN = not measured)."""
    with store.open_complete(path, finite=False) as handle:
        return {name: handle[kind][name][()] for name in handle[kind]}, dict(handle.attrs)
