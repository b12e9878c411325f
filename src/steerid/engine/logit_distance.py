"""E4: how far apart steering conditions put the next-token distributions of fixed continuations.

Each sequence is a formatted prompt (chat template, :func:`steerid.engine.models.tokenize_prompts`)
followed by a fixed continuation, teacher-forced in one forward pass. A condition's delta is
added at the site at the positions generation steers under the study's position mode
(:mod:`steerid.engine.positions`; the continuation's tokens are the generated ones), with the
same norm-preserving choice: by default (``last``) from the last prompt token onward, exactly
the positions that generation with a KV cache steers (the last prompt token, then every
generated token), so the distributions compared are those the steered model would sample the
continuation from.

The distributions compared are those at the last prompt token ... the second-to-last
continuation token: the ones that predict the continuation's tokens. Per sequence and requested
pair (a, b) the mean over those positions is reported of

- ``kl``: KL(p_a ‖ p_b) in nats;
- ``js``: the Jensen-Shannon divergence (natural log, so at most ln 2);
- ``logit_l2``: the Euclidean distance between the centred logit vectors (logits minus their
  mean over the vocabulary: softmax ignores a common shift, so this is the part that matters).

Batches come from :class:`steerid.engine.teacher.TeacherBatch` (prompts share their prefix
across conditions). Memory: one batch at a time, one condition's (batch, continuation, V)
float32 log-probabilities at a time plus those still needed by a pair; the distances are
computed per sequence in float64 as soon as both members of a pair exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from steerid.engine import architectures
from steerid.engine.generate import prompt_token_ids
from steerid.engine.positions import PositionMode, position_mode
from steerid.engine.site import Layers, site_layers
from steerid.engine.teacher import LOGIT_BUDGET, TeacherBatch, batches

__all__ = ["METRICS", "distances"]

METRICS = ("kl", "js", "logit_l2")

Pair = tuple[str, str]


def _pair_distances(logp_a: torch.Tensor, logp_b: torch.Tensor, predicting: torch.Tensor) -> dict[str, np.ndarray]:
    """Per row, the mean over its predicting positions of KL, JS and the centred-logit L2 distance."""
    values: dict[str, list[float]] = {name: [] for name in METRICS}
    for row in range(logp_a.shape[0]):
        a, b = logp_a[row, predicting[row]].double(), logp_b[row, predicting[row]].double()
        p_a, p_b = a.exp(), b.exp()
        log_mixture = torch.logaddexp(a, b) - math.log(2.0)
        js = 0.5 * (p_a * (a - log_mixture)).sum(-1) + 0.5 * (p_b * (b - log_mixture)).sum(-1)
        # log p differs from the logits by a per-position constant, which centring removes.
        centred = (a - a.mean(-1, keepdim=True)) - (b - b.mean(-1, keepdim=True))
        values["kl"].append(float((p_a * (a - b)).sum(-1).mean()))
        values["js"].append(float(js.mean()))
        values["logit_l2"].append(float(centred.norm(dim=-1).mean()))
    return {name: np.array(v, dtype=np.float64) for name, v in values.items()}


def _batch_distances(
    batch: TeacherBatch,
    layer: Layers,
    conditions: Mapping[str, torch.Tensor],
    pairs: Sequence[Pair],
    mode: PositionMode,
    norm_preserving: bool,
) -> dict[Pair, dict[str, np.ndarray]]:
    """Every pair's distances on one batch, keeping only log-probabilities some pending pair needs."""
    pending = {name: sum(name in pair for pair in pairs) for name in dict.fromkeys(n for pair in pairs for n in pair)}
    logprobs: dict[str, torch.Tensor] = {}
    results: dict[Pair, dict[str, np.ndarray]] = {}
    for name in pending:
        logits = batch.logits(conditions[name], layer, positions=mode, norm_preserving=norm_preserving)
        logprobs[name] = torch.log_softmax(logits, dim=-1)
        for pair in pairs:
            if pair not in results and all(member in logprobs for member in pair):
                results[pair] = _pair_distances(logprobs[pair[0]], logprobs[pair[1]], batch.predicting)
                for member in set(pair):
                    pending[member] -= 1
        logprobs = {kept: value for kept, value in logprobs.items() if pending[kept] > 0}
    return results


def _check_inputs(prompts, continuations, conditions, pairs, layer: Layers, batch_size) -> None:
    if len(prompts) == 0 or len(prompts) != len(continuations):
        raise ValueError(
            f"need one continuation per prompt and at least one of each; got {len(prompts)} prompts "
            f"and {len(continuations)} continuations"
        )
    empty = [i for i, tokens in enumerate(continuations) if len(tokens) == 0]
    if empty:
        raise ValueError(f"continuation(s) {empty[:10]} have no tokens: there is no distribution to compare")
    unknown = sorted({name for pair in pairs for name in pair} - set(conditions))
    if not pairs or unknown:
        raise ValueError(
            f"pairs must be a non-empty list of condition names; unknown: {unknown}, conditions: {sorted(conditions)}"
        )
    shapes = {name: tuple(conditions[name].shape) for pair in pairs for name in pair}
    layers = site_layers(layer)
    rows = () if len(layers) == 1 else (len(layers),)
    if any(shape[:-1] != rows for shape in shapes.values()):
        expected = "(d,)" if len(layers) == 1 else f"({len(layers)}, d) for the layers {list(layers)}"
        raise ValueError(f"each condition must be one {expected} delta; got shapes {shapes}")
    if batch_size != "auto" and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {batch_size!r}")


def distances(
    model: PreTrainedModel,
    tokenizer,
    layer: Layers,
    prompts: Sequence[str],
    continuations: Sequence[Sequence[int]],
    conditions: Mapping[str, torch.Tensor],
    pairs: Sequence[tuple[str, str]],
    batch_size: int | str = "auto",
    positions: str = "last",
    norm_preserving: bool = False,
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Teacher-forced distances between steering conditions (see the module docstring).

    Args:
        layer: decoder layer at whose output the conditions' deltas are added; a sequence of layers
            steers each with its own row of a condition's (len(layer), d) delta.
        prompts: raw prompt texts (formatted with the chat template here).
        continuations: per prompt, the token ids that follow it (at least one each).
        conditions: name -> steering delta (d,), or (len(layer), d) at several layers, added at ``positions``.
        pairs: (a, b) condition names; KL is KL(p_a ‖ p_b), so order matters for it only.
        batch_size: sequences per forward pass, or "auto" (a budget of logits per batch).
        positions: the position mode (``last``: from the last prompt token onward; the
            continuation's tokens are the generated ones).
        norm_preserving: each steered residual rescaled to its unsteered norm.

    Returns:
        {pair: {"kl", "js", "logit_l2": float64 array (n_sequences,)}}, one entry per distinct pair.

    Raises:
        ValueError: mismatched or empty inputs, an empty continuation, an unknown condition name
            or a bad batch_size or position mode.
    """
    _check_inputs(prompts, continuations, conditions, pairs, layer, batch_size)
    mode = position_mode(positions)
    pairs = list(dict.fromkeys((a, b) for a, b in pairs))
    results = {pair: {name: np.empty(len(prompts)) for name in METRICS} for pair in pairs}
    prompt_ids = prompt_token_ids(tokenizer, prompts)
    budget = (
        LOGIT_BUDGET
        if batch_size == "auto"
        else int(batch_size) * max(len(c) for c in continuations) * int(architectures.text_config(model).vocab_size)
    )
    for index, batch in batches(model, prompt_ids, continuations, budget):
        for pair, values in _batch_distances(batch, layer, conditions, pairs, mode, norm_preserving).items():
            for name, array in values.items():
                results[pair][name][index] = array
    return results
