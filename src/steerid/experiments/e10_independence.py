"""E10 (H10, statistical independence): does an ICA estimator of the trait direction, run on the
paired contrast differences, find one direction stably across resampled prompts and environments,
where the mean difference (v) may not? (See :mod:`steerid.stats.independence` for the estimator and
its planted controls.)"""

from __future__ import annotations

from collections.abc import Mapping

from steerid import store
from steerid.experiments.records import E10Stats
from steerid.experiments.registry import Experiment, one_claim, register
from steerid.experiments.settings import IndependenceSettings
from steerid.pipeline import plots
from steerid.stats.independence import independence_summary


def stats(contrast: str, trait: str, settings: IndependenceSettings, params: Mapping, output: str) -> None:
    """E10 at the steering layer, on each environment's instructed contrast activations."""
    with store.open_complete(contrast) as handle:
        by_environment = {
            name: (group["positive"][()], group["negative"][()]) for name, group in handle["environments"].items()
        }
        model, layer = str(handle.attrs["model"]), int(handle.attrs["layer"])
    summary = independence_summary(by_environment, settings.n_boot, settings.components, settings.seed)
    record: E10Stats = {
        "experiment": EXPERIMENT.title,
        "model": model,
        "trait": trait,
        "layer": layer,
        "verdict": summary["verdict"],
        "ica": summary["ica"],
        "mean_difference": summary["mean_difference"],
        "thresholds": summary["thresholds"],
        "chance_abs_cosine": summary["chance_abs_cosine"],
        "d": summary["d"],
        "k": summary["k"],
        "n_boot": summary["n_boot"],
        "seed": summary["seed"],
        "n_pairs": summary["n_pairs"],
    }
    EXPERIMENT.write(output, record, params)


def _stability(entry: Mapping) -> str:
    return (
        f"{entry['verdict']} (bootstrap mean |cos| {entry['bootstrap_mean_abs_cosine']:.2f}, across environments "
        f"min {entry['environment_min_abs_cosine']:.2f})"
    )


def finding(result: E10Stats) -> str:
    ica = result["ica"]
    return (
        f"{result['model']}/{result['trait']} L{result['layer']}: the ICA direction (k = {result['k']} components) "
        f"is {_stability(ica)}, cosine {ica['cosine_with_mean_difference']:.2f} with v, excess kurtosis "
        f"{ica['excess_kurtosis']:.2f}; the mean difference is {_stability(result['mean_difference'])} "
        f"(chance |cos| {result['chance_abs_cosine']:.3f})"
    )


EXPERIMENT = register(
    Experiment(
        name="e10",
        title="E10 independence",
        rule="independence",
        stage=stats,
        scope="layer",
        figure=plots.e10_independence,
        claims=one_claim(
            "Independence identifies one direction where the mean difference does not (E10, H10)", finding
        ),
        settings=IndependenceSettings,
    )
)
