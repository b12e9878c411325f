"""A researcher's own experiment, registered from outside steerid: the mean score shift of v and of
−v against the baseline, read from the E1 condition set's scores. Named in a config's
``experiment_modules``, it gets a stats rule, a figure and a claim in the summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from steerid.experiments import Experiment, ScoreInput, one_claim, register
from steerid.experiments.scores import by_environment, header
from steerid.experiments.settings import Resampling
from steerid.stats import analysis


def stats(
    scores: Sequence[str], vector: str, validation: str, settings: Resampling, params: Mapping, output: str
) -> None:
    grids, attrs = by_environment(scores)
    pooled = analysis.pool_environments(grids)
    baseline = float(np.mean(pooled["baseline"]))
    shifts = {name: float(np.mean(pooled[name])) - baseline for name in ("v", "-v")}
    record = {"experiment": TOY.title, **header(attrs, vector, validation), "shift": shifts, "seed": settings.seed}
    TOY.write(output, record, params)


def figure(results: Sequence[dict]):
    fig, axis = plt.subplots()
    for result in results:
        axis.bar(list(result["shift"]), list(result["shift"].values()), label=result["trait"])
    axis.legend()
    return fig


def finding(result: Mapping) -> str:
    return f"{result['model']}/{result['trait']}: v shifts {result['shift']['v']:+.3f}, −v {result['shift']['-v']:+.3f}"


TOY = register(
    Experiment(
        name="toy",
        title="toy shift",
        rule="stats_toy",
        stage=stats,
        figure=figure,
        claims=one_claim("Toy: v and −v move the score in opposite directions", finding),
        scores=ScoreInput("e1"),
        settings=Resampling,
    )
)
