"""E2: does equivalence hold over the operational range of steering strengths α?"""

from __future__ import annotations

from collections.abc import Mapping

from steerid import operating_point
from steerid.conditions import ALPHA_UNITS, pooled, v_norms_per_alpha
from steerid.experiments import scores as score_files
from steerid.experiments.records import E2Stats
from steerid.experiments.registry import Experiment, ScoreInput, one_claim, register
from steerid.experiments.settings import Sweep
from steerid.experiments.text import cell, ci
from steerid.pipeline import plots
from steerid.pipeline.results import read_scores
from steerid.stats import analysis


def stats(
    scores: str,
    vector: str,
    validation: str,
    settings: Sweep,
    params: Mapping,
    output: str,
) -> None:
    """E2: Δ(v), Δ(v + δ) and fluency against α (in both units), and the operational range."""
    grids, attrs = read_scores(scores)
    fluency, _ = read_scores(scores, "perplexity")
    header = score_files.header(attrs, vector, validation)
    curves = analysis.alpha_curves(
        grids,
        fluency,
        settings.alphas,
        ("orthogonal", "null"),
        settings.max_perplexity_ratio,
        settings.n_boot,
        settings.seed,
    )
    per_alpha = v_norms_per_alpha(settings.units, header["mean_residual_norm"], header["v_norm"])
    for row in curves["by_alpha"]:
        row["alpha_in_v_norms"] = row["alpha"] * per_alpha
        row["alpha_in_residual_norms"] = row["alpha_in_v_norms"] * header["v_norm"] / header["mean_residual_norm"]
    record: E2Stats = {
        "experiment": EXPERIMENT.title,
        **header,
        "alpha_units": ALPHA_UNITS[settings.units],
        **curves,
        "operating_point": operating_point.choose(curves["by_alpha"], ALPHA_UNITS[settings.units]).to_dict(),
    }
    EXPERIMENT.write(output, record, params)


def finding(result: E2Stats) -> str:
    rows = result["by_alpha"]
    curve = "; ".join(
        f"α={row['alpha']:g} ({row['alpha_in_v_norms']:.2f}‖v‖): Δ(v) {ci(row['delta']['v'], 3)}, "
        f"Δ(v+δ⟂) {ci(row['delta'][pooled('orthogonal')], 3)}, ppl {row['median_perplexity']['v']:.1f}"
        for row in rows
    )
    span = result["operational_range"]
    where = (
        f"operational range α ∈ [{span[0]:g}, {span[1]:g}]" if span else "no α where v is both significant and fluent"
    )
    point = result["operating_point"]
    return (
        f"{cell(result)}: {where} (baseline perplexity {result['baseline_median_perplexity']:.1f}); "
        f"operating point α = {point['alpha']:.3g}‖v‖ ({point['source']}). {curve}"
    )


EXPERIMENT = register(
    Experiment(
        name="e2",
        title="E2 alpha sweep",
        rule="stats_e2",
        stage=stats,
        figure=plots.e2_alpha,
        claims=one_claim("Equivalence holds over the operational α range (E2)", finding),
        generated_only=True,
        scores=ScoreInput("e2", environments="main"),
        settings=Sweep,
    )
)
