"""E7: does efficacy depend on the subspace δ comes from, and on its size k?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from steerid.conditions import BASELINE, REFERENCE
from steerid.experiments import scores as score_files
from steerid.experiments.records import E7Stats
from steerid.experiments.registry import Experiment, ScoreInput, one_claim, register
from steerid.experiments.settings import Equivalence
from steerid.experiments.text import cell, ci, units
from steerid.pipeline import plots
from steerid.stats import analysis, effect_ci


def stats(
    scores: Sequence[str],
    vector: str,
    validation: str,
    settings: Equivalence,
    params: Mapping,
    output: str,
) -> None:
    """E7 over the prompts of every environment pooled: R and d of v + δ against the subspace size k."""
    by_environment, attrs = score_files.by_environment(scores)
    grids = analysis.pool_environments(by_environment)
    margin = analysis.margins(grids, settings.margin_sd, 1.0)["baseline_sd"]
    record: E7Stats = {
        "experiment": EXPERIMENT.title,
        **score_files.header(attrs, vector, validation),
        "environments": list(by_environment),
        "n_prompts": int(grids[BASELINE].shape[0]),
        "n_samples": int(grids[BASELINE].shape[1]),
        "margin": margin,
        "delta_v": effect_ci(grids[REFERENCE], grids[BASELINE], settings.n_boot, settings.seed).to_dict(),
        "curves": analysis.spanning_curves(grids, settings.n_boot, margin["value"], settings.seed),
    }
    EXPERIMENT.write(output, record, params)


def finding(result: E7Stats) -> str:
    return f"{cell(result)} ({units(result)}, Δ(v) {ci(result['delta_v'], 3)}): " + "; ".join(
        f"{curve}: "
        + ", ".join(
            f"k={row['k']} R {ci(row['efficacy_ratio'])}, d {row['cohens_d']['value']:.2f} ({row['verdict']})"
            for row in rows
        )
        for curve, rows in result["curves"].items()
    )


EXPERIMENT = register(
    Experiment(
        name="e7",
        title="E7 spanning",
        rule="stats_e7",
        stage=stats,
        figure=plots.e7_spanning,
        claims=one_claim("Efficacy does not depend on the subspace δ comes from (E7)", finding),
        scores=ScoreInput("e7"),
        settings=Equivalence,
    )
)
