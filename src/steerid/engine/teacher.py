"""Teacher forcing: the log-probability of given continuations after their prompts.

On the engine, the prompt minus its last token is run once per prompt and shared by every
continuation of it (as in generation), and only the continuations' own positions go through
the vocabulary projection. Other models run prompt and continuation in one padded forward.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import nn

from steerid.engine import architectures
from steerid.engine.decoder import decoder_for, left_padded

ROW_LOGIT_BUDGET = 2**28  # float32 logits (about 1 GiB) one teacher-forced batch may hold


def continuation_logprobs(model: nn.Module, prompts: Sequence[Sequence[int]],
                          continuations: Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Per item i, log p(continuations[i][j] | prompts[i], continuations[i][:j]) for every j (float32, CPU)."""
    if len(prompts) != len(continuations):
        raise ValueError(f"{len(prompts)} prompts but {len(continuations)} continuations: expected one each")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    results: list[torch.Tensor] = [torch.zeros(0)] * len(prompts)
    forward = _engine_batch if architectures.supported(model) else _hf_batch
    for batch in _batches(prompts, continuations, model):
        for i, values in zip(batch, forward(model, [prompts[i] for i in batch], [continuations[i] for i in batch])):
            results[i] = values
    return results


def _batches(prompts, continuations, model: nn.Module) -> Iterator[list[int]]:
    vocab = int(architectures.text_config(model).vocab_size)
    width = max((len(c) for c in continuations), default=1) or 1
    size = max(1, ROW_LOGIT_BUDGET // (vocab * (width + 1)))
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), tuple(prompts[i])))
    for start in range(0, len(order), size):
        yield order[start : start + size]


def _right_padded(sequences, width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.zeros(len(sequences), width, dtype=torch.long)
    valid = torch.zeros(len(sequences), width, dtype=torch.bool)
    for row, tokens in enumerate(sequences):
        ids[row, : len(tokens)] = torch.as_tensor(list(tokens), dtype=torch.long)
        valid[row, : len(tokens)] = True
    return ids.to(device), valid.to(device)


def _gather(logits: torch.Tensor, targets: torch.Tensor, lengths: Sequence[int]) -> list[torch.Tensor]:
    logprobs = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return [logprobs[row, :n].cpu() for row, n in enumerate(lengths)]


@torch.inference_mode()
def _engine_batch(model: nn.Module, prompts, continuations) -> list[torch.Tensor]:
    decoder = decoder_for(model)
    width = max(len(c) for c in continuations)
    if width == 0:
        return [torch.zeros(0) for _ in prompts]
    groups = list(dict.fromkeys(tuple(p) for p in prompts))
    cache = decoder.shared_prefix_cache([list(g[:-1]) for g in groups], [groups.index(tuple(p)) for p in prompts], width)
    # The tail is the last prompt token, then the continuation but its final token: tail position j predicts token j.
    tails = [[p[-1], *list(c)[:-1]] if len(c) else [] for p, c in zip(prompts, continuations)]
    tail, tail_valid = _right_padded(tails, width, decoder.device)
    start = torch.tensor([len(p) - 1 for p in prompts], device=decoder.device)
    positions = start[:, None] + torch.arange(width, device=decoder.device)
    hidden = decoder.forward(tail, tail_valid, positions, cache=cache, offset=cache.valid.shape[1] - width)
    targets, _ = _right_padded(continuations, width, decoder.device)
    return _gather(decoder.logits(hidden), targets, [len(c) for c in continuations])


@torch.inference_mode()
def _hf_batch(model: nn.Module, prompts, continuations) -> list[torch.Tensor]:
    device = next(model.parameters()).device
    width = max(len(c) for c in continuations)
    if width == 0:
        return [torch.zeros(0) for _ in prompts]
    prompt_width = max(len(p) for p in prompts)
    prompt_ids, prompt_valid = left_padded(prompts, prompt_width, device)
    completion_ids, completion_valid = _right_padded(continuations, width, device)
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    mask = torch.cat([prompt_valid, completion_valid], dim=1).long()
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    # Logits at position t predict token t + 1: the continuation is predicted from the last prompt token on.
    logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False,
                   logits_to_keep=width + 1).logits[:, :-1]
    return _gather(logits, completion_ids, [len(c) for c in continuations])

