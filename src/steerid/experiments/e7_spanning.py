"""E7: does efficacy depend on the subspace δ comes from, and on its size k?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from steerid import store
from steerid.conditions import BASELINE, REFERENCE
from steerid.experiments import scores as score_files
from steerid.experiments.registry import Claim, Experiment, ScoreInput, register
from steerid.experiments.text import cell, ci, units
from steerid.io import atomic_write_json
from steerid.pipeline import plots
from steerid.stats import analysis, effect_ci


def stats(
    scores: Sequence[str],
    vector: str,
    validation: str,
    n_boot: int,
    margin_sd: float,
    seed: int,
    params: Mapping,
    output: str,
) -> None:
    """E7 over the prompts of every environment pooled: R and d of v + δ against the subspace size k."""
    by_environment, attrs = score_files.by_environment(scores)
    grids = analysis.pool_environments(by_environment)
    margin = analysis.margins(grids, margin_sd, 1.0)["baseline_sd"]
    atomic_write_json(
        output,
        {
            "experiment": EXPERIMENT.title,
            **score_files.header(attrs, vector, validation),
            "environments": list(by_environment),
            "n_prompts": int(grids[BASELINE].shape[0]),
            "n_samples": int(grids[BASELINE].shape[1]),
            "margin": margin,
            "delta_v": effect_ci(grids[REFERENCE], grids[BASELINE], n_boot, seed).to_dict(),
            "curves": analysis.spanning_curves(grids, n_boot, margin["value"], seed),
            "provenance": store.provenance(params),
        },
    )


def finding(result: Mapping) -> str:
    return f"{cell(result)} ({units(result)}, Δ(v) {ci(result['delta_v'], 3)}): " + "; ".join(
        f"{curve}: "
        + ", ".join(
            f"k={row['k']} R {ci(row['efficacy_ratio'])}, d {row['cohens_d']['value']:.2f} ({row['verdict']})"
            for row in rows
        )
        for curve, rows in result["curves"].items()
    )


def claims(e7: Sequence[Mapping], corrected: Mapping[str, dict]) -> list[Claim]:
    return [("Efficacy does not depend on the subspace δ comes from (E7)", [finding(r) for r in e7])]


EXPERIMENT = register(
    Experiment(
        name="e7",
        title="E7 spanning",
        rule="stats_e7",
        stage=stats,
        figure=plots.e7_spanning,
        claims=claims,
        scores=ScoreInput("e7"),
        settings={"n_boot": "stats.n_boot", "margin_sd": "stats.equivalence_margin_sd", "seed": "seed"},
    )
)
