"""A researcher's own experiment, registered from outside steerid: the mean score shift of v and of
−v against the baseline, read from the E1 condition set's scores. Named in a config's
``experiment_modules``, it gets a stats rule, a figure and a claim in the summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from steerid import store
from steerid.experiments import Experiment, ScoreInput, register
from steerid.experiments.scores import by_environment, header
from steerid.io import atomic_write_json
from steerid.stats import analysis


def stats(scores: Sequence[str], vector: str, validation: str, seed: int, params: Mapping, output: str) -> None:
    grids, attrs = by_environment(scores)
    pooled = analysis.pool_environments(grids)
    baseline = float(np.mean(pooled["baseline"]))
    shifts = {name: float(np.mean(pooled[name])) - baseline for name in ("v", "-v")}
    atomic_write_json(
        output,
        {
            "experiment": "toy shift",
            **header(attrs, vector, validation),
            "shift": shifts,
            "seed": seed,
            "provenance": store.provenance(params),
        },
    )


def figure(results: Sequence[dict]):
    fig, axis = plt.subplots()
    for result in results:
        axis.bar(list(result["shift"]), list(result["shift"].values()), label=result["trait"])
    axis.legend()
    return fig


def claims(results: Sequence[Mapping], corrected: Mapping[str, dict]):
    lines = [f"{r['model']}/{r['trait']}: v shifts {r['shift']['v']:+.3f}, −v {r['shift']['-v']:+.3f}" for r in results]
    return [("Toy: v and −v move the score in opposite directions", lines)]


register(
    Experiment(
        name="toy",
        title="toy shift",
        rule="stats_toy",
        stage=stats,
        figure=figure,
        claims=claims,
        scores=ScoreInput("e1"),
        settings={"seed": "seed"},
    )
)
