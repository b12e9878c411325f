"""E4: are the next-token distributions under v and v + δ close, relative to those under 0 and v?"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from steerid import conditions
from steerid.conditions import BASELINE, REFERENCE, pooled
from steerid.engine.site import Layers
from steerid.experiments.records import E4Stats
from steerid.experiments.registry import Experiment, one_claim, register
from steerid.experiments.text import cell, short_kind
from steerid.operating_point import resolve as resolve_strength
from steerid.pipeline import plots
from steerid.pipeline.results import read_generations
from steerid.pipeline.runtime import Runtime


def stats(
    model: str,
    generations: str,
    vector: str,
    perturbations: str,
    trait: str,
    layer: Layers,
    alpha: float | str,
    positions: str,
    norm_preserving: bool,
    n_sequences: int,
    runtime: Runtime,
    params: Mapping,
    output: str,
    operating_point: str | None = None,
) -> None:
    """E4: teacher-forced next-token distributions of the baseline's own completions under v and v + δ
    (matched ‖δ‖); KL, JS and centred-logit L2 of v vs v + δ per δ-type, and of 0 vs v for scale.
    The deltas are added as the generations were (``positions``, ``norm_preserving``)."""
    # The model stack loads when E4's job runs, not with the registry that the Snakefile imports.
    from steerid.engine.logit_distance import distances
    from steerid.pipeline.stages import open_model, read_condition_set

    model_, tokenizer, manifest = open_model(model, layer, runtime)
    records = [r for r in read_generations(generations) if r["condition"] == BASELINE and r["n_tokens"] > 0]
    records = records[:n_sequences]
    strength = resolve_strength(alpha, operating_point)
    assert strength is not None  # E4 runs at one strength, never a sweep
    named = read_condition_set("e1", vector, perturbations, strength.alpha, 0, ())
    kinds = {
        kind: conditions.members(list(named), kind)[0]
        for kind in conditions.PERTURBATION_TYPES
        if conditions.members(list(named), kind)
    }
    pairs = [(BASELINE, REFERENCE), *[(REFERENCE, name) for name in kinds.values()], (REFERENCE, "-v")]
    used = {name: named[name] for pair in pairs for name in pair}
    continuations = [tokenizer(r["completion"], add_special_tokens=False)["input_ids"] for r in records]
    found = distances(
        model_,
        tokenizer,
        layer,
        [r["prompt"] for r in records],
        continuations,
        used,
        pairs,
        runtime.batch_size,
        positions=positions,
        norm_preserving=norm_preserving,
    )
    summary = {
        f"{a} vs {b}": {
            metric: {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1))}
            for metric, values in found[(a, b)].items()
        }
        for a, b in pairs
    }
    reference = summary[f"{BASELINE} vs {REFERENCE}"]
    relative = {
        kind: {
            metric: summary[f"{REFERENCE} vs {name}"][metric]["mean"] / reference[metric]["mean"]
            for metric in reference
        }
        for kind, name in kinds.items()
    }
    record: E4Stats = {
        "experiment": EXPERIMENT.title,
        "model": manifest.spec,
        "layer": layer,
        "trait": trait,
        "alpha": strength.alpha,
        "alpha_source": strength.source,
        "n_sequences": len(records),
        "pairs": summary,
        "relative_to_0_vs_v": relative,
        "conditions": {kind: name for kind, name in kinds.items()},
    }
    EXPERIMENT.write(output, record, params, positions=positions, norm_preserving=norm_preserving)


def finding(result: E4Stats) -> str:
    relative = ", ".join(
        f"{short_kind(pooled(kind))}: KL {ratios['kl']:.2f}, JS {ratios['js']:.2f}"
        for kind, ratios in result["relative_to_0_vs_v"].items()
    )
    return (
        f"{cell(result)} ({result['n_sequences']} continuations): distance of v to v+δ relative to that of "
        f"0 to v — {relative}"
    )


EXPERIMENT = register(
    Experiment(
        name="e4",
        title="E4 logit distance",
        rule="logit_distance",
        stage=stats,
        figure=plots.e4_logit_distance,
        claims=one_claim("Next-token distributions of v and v + δ are close (E4)", finding),
        generated_only=True,
    )
)
