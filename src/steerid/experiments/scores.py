"""What the score-reading experiments share: the score files of a condition set and the stats header."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from steerid import store
from steerid.engine.site import stored_site
from steerid.experiments.records import ScoreHeader
from steerid.pipeline.results import read_scores

Grids = dict[str, np.ndarray]


def by_environment(paths: Sequence[str]) -> tuple[dict[str, Grids], dict]:
    """Score grids of each environment's file, keyed by environment, and the attributes of the last."""
    grids: dict[str, Grids] = {}
    attrs: dict = {}
    for path in paths:
        found, attrs = read_scores(path)
        grids[attrs["environment"]] = found
    return grids, attrs


def header(attrs: Mapping, vector: str, validation: str) -> ScoreHeader:
    """The cell a stats JSON describes: model, layer, trait, scorer (and its validation), α, ‖v‖ and v's source."""
    vector_attrs = store.read_attrs(vector)
    scorer = json.loads(Path(validation).read_text())
    return {
        "model": attrs["model"],
        "layer": stored_site(attrs["layer"]),
        "trait": attrs["trait"],
        "scorer": attrs["scorer"],
        "alpha": None if attrs["alpha"] == "none" else float(attrs["alpha"]),
        "alpha_source": str(attrs["alpha_source"]),
        "v_norm": float(vector_attrs["norm"]),
        "mean_residual_norm": float(vector_attrs["mean_residual_norm"]),
        "vector_source": str(vector_attrs["source"]),
        "scorer_validation": {
            "auroc": scorer["auroc"],
            "min_auroc": scorer["min_auroc"],
            "valid": scorer["valid"],
            "n": scorer["n"],
        },
    }
