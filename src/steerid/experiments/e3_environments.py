"""E3: does equivalence persist across prompt distributions, and do environments' vectors agree?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from steerid import store, vectors
from steerid.experiments import scores as score_files
from steerid.experiments.registry import Claim, Experiment, ScoreInput, register
from steerid.experiments.text import MARGIN, cell, ci, short_kind
from steerid.io import atomic_write_json
from steerid.pipeline import plots
from steerid.stats import analysis


def stats(
    scores: Sequence[str],
    vector: str,
    validation: str,
    n_boot: int,
    margin_sd: float,
    margin_effect: float,
    n_perm: int,
    seed: int,
    params: Mapping,
    output: str,
) -> None:
    """E3: E1's endpoints in each environment, per-environment vectors' cosines and cross-application."""
    by_environment, attrs = score_files.by_environment(scores)
    with store.open_complete(vector) as handle:
        env_vectors = {name: handle["environments"][name][()] for name in handle["environments"]}
        v = handle["mean_difference"][()]
    cosines = {a: {b: vectors.cosine(env_vectors[a], env_vectors[b]) for b in env_vectors} for a in env_vectors}
    atomic_write_json(
        output,
        {
            "experiment": EXPERIMENT.title,
            **score_files.header(attrs, vector, validation),
            "cosine_with_v": {name: vectors.cosine(vec, v) for name, vec in env_vectors.items()},
            "cosines": cosines,
            "by_environment": {
                env: analysis.orthogonality_endpoints(grids, n_boot, margin_sd, margin_effect, n_perm, seed)
                for env, grids in by_environment.items()
            },
            "cross_application": analysis.cross_application(by_environment, n_boot, seed),
            "provenance": store.provenance(params),
        },
    )


def finding(result: Mapping) -> str:
    per_env = "; ".join(
        f"{env}: Δ(v) {ci(endpoints['by_type']['v']['delta'], 3)}, "
        + ", ".join(
            f"{short_kind(k)} {judged['equivalence'][MARGIN]['verdict']}"
            for k, judged in endpoints["judgements"].items()
        )
        for env, endpoints in result["by_environment"].items()
    )
    cosines = ", ".join(f"{env} {value:.2f}" for env, value in result["cosine_with_v"].items())
    return f"{cell(result)}: {per_env}. Cosine of each environment's vector with v: {cosines}."


def claims(e3: Sequence[Mapping], corrected: Mapping[str, dict]) -> list[Claim]:
    return [("Equivalence persists across prompt distributions (E3)", [finding(r) for r in e3])]


EXPERIMENT = register(
    Experiment(
        name="e3",
        title="E3 environments",
        rule="stats_e3",
        stage=stats,
        figure=plots.e3_environments,
        claims=claims,
        generated_only=True,
        scores=ScoreInput("e1"),
        settings={
            "n_boot": "stats.n_boot",
            "margin_sd": "stats.equivalence_margin_sd",
            "margin_effect": "stats.equivalence_margin_effect",
            "n_perm": "stats.n_perm",
            "seed": "seed",
        },
    )
)
