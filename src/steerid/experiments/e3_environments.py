"""E3: does equivalence persist across prompt distributions, and do environments' vectors agree?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from steerid import store, vectors
from steerid.conditions import as_applied
from steerid.experiments import scores as score_files
from steerid.experiments.e1_orthogonal import endpoints
from steerid.experiments.records import E3Stats
from steerid.experiments.registry import Experiment, ScoreInput, one_claim, register
from steerid.experiments.settings import EndpointSettings
from steerid.experiments.text import MARGIN, cell, ci, short_kind
from steerid.pipeline import plots
from steerid.stats import analysis


def stats(
    scores: Sequence[str],
    vector: str,
    validation: str,
    settings: EndpointSettings,
    params: Mapping,
    output: str,
) -> None:
    """E3: E1's endpoints in each environment, per-environment vectors' cosines and cross-application."""
    by_environment, attrs = score_files.by_environment(scores)
    with store.open_complete(vector) as handle:
        env_vectors = {name: handle["environments"][name][()] for name in handle["environments"]}
        v = handle["v"][()]
    # Each as E1 applies it (at ‖v‖, at each layer of a site).
    applied = {name: as_applied(vec, v) for name, vec in {**env_vectors, "v": v}.items()}
    cosines = {a: {b: vectors.cosine(applied[a], applied[b]) for b in env_vectors} for a in env_vectors}
    record: E3Stats = {
        "experiment": EXPERIMENT.title,
        **score_files.header(attrs, vector, validation),
        "cosine_with_v": {name: vectors.cosine(applied[name], applied["v"]) for name in env_vectors},
        "cosines": cosines,
        "by_environment": {env: endpoints(grids, settings) for env, grids in by_environment.items()},
        "cross_application": analysis.cross_application(by_environment, settings.n_boot, settings.seed),
    }
    EXPERIMENT.write(output, record, params)


def finding(result: E3Stats) -> str:
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


EXPERIMENT = register(
    Experiment(
        name="e3",
        title="E3 environments",
        rule="stats_e3",
        stage=stats,
        figure=plots.e3_environments,
        claims=one_claim("Equivalence persists across prompt distributions (E3)", finding),
        generated_only=True,
        scores=ScoreInput("e1"),
        settings=EndpointSettings,
    )
)
