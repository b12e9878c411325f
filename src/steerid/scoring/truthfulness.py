"""Truthfulness under steering: the steered model's own preference for true over false statements.

A truthfulness vector is judged by likelihood, not by generated text: for each pair of a true
statement and its minimally different false twin, the score is mean logP(true) − mean logP(false)
under the model with the condition's vector added. Every position is steered: adding at the last
position of a forward call alone would leave every statement token's log-probability unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from steerid.engine.site import Layers
from steerid.scoring import TruthfulnessLikelihood, paired_validation_record

STEERED_POSITIONS = "all"


def steered_preferences(
    model,
    tokenizer,
    layer: Layers,
    statements: Sequence[tuple[str, str]],
    named: Mapping[str, torch.Tensor],
    norm_preserving: bool = False,
) -> dict[str, np.ndarray]:
    """Per condition, each pair's mean logP(true) − mean logP(false) with that condition's vector
    added at every position of the output of decoder ``layer`` (rescaled to the residual's norm
    with ``norm_preserving``)."""
    if not statements:
        raise ValueError("steered_preferences needs at least one (true, false) statement pair, got none")
    likelihood = TruthfulnessLikelihood(model, tokenizer, norm_preserving=norm_preserving)
    trues, falses = (list(column) for column in zip(*statements))
    return {name: likelihood.score_pairs(trues, falses, delta, layer) for name, delta in named.items()}


def paired_validation(preferences: np.ndarray, min_auroc: float) -> dict:
    """The likelihood scorer's check before it judges: the unsteered model must prefer the true statement.

    In a paired design the AUROC is the concordance P(score(true_i) > score(false_i)) over pairs
    (ties count one half); it is held to the same minimum as a text scorer's AUROC.
    """
    return paired_validation_record(
        TruthfulnessLikelihood.name,
        "paired: P(mean logP(true) > mean logP(false)) over statement pairs, unsteered model",
        preferences,
        min_auroc,
    )
