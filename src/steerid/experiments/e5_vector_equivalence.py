"""E5: do the mean-difference, PCA and probe directions steer alike?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from steerid import store, vectors
from steerid.conditions import BASELINE, as_applied
from steerid.experiments import scores as score_files
from steerid.experiments.records import E5Stats
from steerid.experiments.registry import Experiment, ScoreInput, one_claim, register
from steerid.experiments.settings import Equivalence
from steerid.experiments.text import cell, ci
from steerid.pipeline import plots
from steerid.stats import analysis


def stats(
    scores: Sequence[str],
    vector: str,
    validation: str,
    settings: Equivalence,
    params: Mapping,
    output: str,
) -> None:
    """E5: PCA and probe directions against the mean difference (cosines, Δ vs baseline, d and TOST vs v)."""
    by_environment, attrs = score_files.by_environment(scores)
    pooled = analysis.pool_environments(by_environment)
    with store.open_complete(vector) as handle:
        found = {name: handle[name][()] for name in ("v", "mean_difference", "pca", "probe")}
    # v is the mean difference unless the study imported it; the contrast's estimates are compared with v either way,
    # each as E1 applies it (at ‖v‖, at each layer of a site).
    applied = {name: as_applied(direction, found["v"]) for name, direction in found.items()}
    cosines = {name: vectors.cosine(applied["v"], applied[name]) for name in ("pca", "probe")}
    margin = analysis.margins(pooled, settings.margin_sd, 1.0)["baseline_sd"]
    record: E5Stats = {
        "experiment": EXPERIMENT.title,
        **score_files.header(attrs, vector, validation),
        "cosine_pca_probe": vectors.cosine(applied["pca"], applied["probe"]),
        "cosine_v_mean_difference": vectors.cosine(applied["v"], applied["mean_difference"]),
        "natural_norms": {name: float(np.linalg.norm(vec)) for name, vec in found.items() if name != "v"},
        "margin": margin,
        "n_prompts": int(pooled[BASELINE].shape[0]),
        "by_direction": analysis.direction_equivalence(
            pooled, ["pca", "probe"], cosines, margin["value"], settings.n_boot, settings.seed
        ),
    }
    EXPERIMENT.write(output, record, params)


def finding(result: E5Stats) -> str:
    return f"{cell(result)}: " + "; ".join(
        f"{name}: cos(v) {entry['cosine_with_v']:.2f}, beats baseline {entry['beats_baseline']}, "
        f"d(v, {name}) {ci(entry['cohens_d'])}, {entry['verdict']}"
        for name, entry in result["by_direction"].items()
    )


EXPERIMENT = register(
    Experiment(
        name="e5",
        title="E5 vector equivalence",
        rule="stats_e5",
        stage=stats,
        figure=plots.e5_vector_equivalence,
        claims=one_claim("Mean-difference, PCA and probe vectors act alike (E5)", finding),
        scores=ScoreInput("e1"),
        settings=Equivalence,
    )
)
