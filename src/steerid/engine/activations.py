"""Run prompts through the model and collect residual-stream activations at one site.

The forward pass stops at the site: no block above it runs, and the vocabulary is never
projected. On the engine that is its ``stop_after``; on any other model the capturing hook
ends the pass by raising once it has the site's output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel

from steerid.engine import architectures
from steerid.engine.decoder import decoder_for, left_padded
from steerid.engine.hooks import capture_residual
from steerid.engine.models import answered_prompt_ids, decoder_layers, tokenize_prompts

# Tokens per forward pass when the batch size is "auto": enough rows to keep the matrix products
# efficient, few enough that the activations of one batch stay small next to the model.
TOKENS_PER_FORWARD = {"cpu": 8192, "cuda": 131072}


class _SiteReached(Exception):
    """Raised by the capturing hook to end a forward pass at the site."""


def rows_per_forward(batch_size: int | str | None, tokens_per_row: int, device: torch.device) -> int:
    """Rows per dump batch: ``batch_size``, or for ``"auto"`` a token budget over the rows' length."""
    if batch_size not in (None, "auto"):
        return int(batch_size)
    budget = TOKENS_PER_FORWARD.get(device.type, TOKENS_PER_FORWARD["cpu"])
    return max(1, budget // max(1, tokens_per_row))


def _batches(texts: Sequence[str], batch_size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), batch_size):
        yield list(texts[start : start + batch_size])


@torch.inference_mode()
def _residuals(model: PreTrainedModel, tokenizer, layer: int, texts: list[str], max_length: int | None):
    """(hidden at the output of ``layer`` (B, T, d) in float32, attention mask (B, T))."""
    device = next(model.parameters()).device
    input_ids, mask = tokenize_prompts(tokenizer, texts, device, max_length)
    return _site_output(model, layer, input_ids, mask), mask


@torch.inference_mode()
def _site_output(model: PreTrainedModel, layer: int, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden states at the output of ``layer`` (B, T, d) in float32 of a left-padded batch."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    if architectures.supported(model):
        return decoder_for(model).forward(input_ids, mask.bool(), positions, stop_after=layer).float()
    with (
        capture_residual(decoder_layers(model)[layer], stop=_SiteReached) as captured,
        contextlib.suppress(_SiteReached),
    ):
        model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=False)
    return captured[0].float()


def _rows(model: PreTrainedModel, batch_size, tokens_per_row: int) -> int:
    return rows_per_forward(batch_size, tokens_per_row, next(model.parameters()).device)


def last_token(
    model: PreTrainedModel, tokenizer, layer: int, texts: Sequence[str], batch_size: int | str
) -> np.ndarray:
    """(n, d) float32 activations at the final prompt token (left padding keeps it at index -1)."""
    longest = max((len(tokenize_prompts(tokenizer, [t], torch.device("cpu"))[0][0]) for t in texts), default=1)
    rows = _rows(model, batch_size, longest)
    blocks = [_residuals(model, tokenizer, layer, batch, None)[0][:, -1] for batch in _batches(texts, rows)]
    return torch.cat(blocks).cpu().numpy()


def last_answer_token(
    model: PreTrainedModel,
    tokenizer,
    layer: int,
    prompts: Sequence[str],
    answers: Sequence[str],
    batch_size: int | str,
) -> np.ndarray:
    """(n, d) float32 activations at the last token of each answer, the answer given as the start of
    the model's reply to its prompt (:func:`steerid.engine.models.answered_prompt_ids`): CAA's
    contrast site, where the model has just given the answer."""
    if len(prompts) != len(answers):
        raise ValueError(f"{len(prompts)} prompts but {len(answers)} answers; expected one answer per prompt")
    sequences = []
    for prompt, answer in zip(prompts, answers):
        context, reply = answered_prompt_ids(tokenizer, prompt, answer)
        sequences.append(context + reply)
    device = next(model.parameters()).device
    rows = _rows(model, batch_size, max((len(s) for s in sequences), default=1))
    blocks = []
    for start in range(0, len(sequences), rows):
        batch = sequences[start : start + rows]
        ids, valid = left_padded(batch, max(len(s) for s in batch), device)
        blocks.append(_site_output(model, layer, ids, valid.long())[:, -1])
    return torch.cat(blocks).cpu().numpy()


def token_level(
    model: PreTrainedModel, tokenizer, layer: int, texts: Sequence[str], batch_size: int | str, max_length: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per batch: activations of every real token (rows, d), its position in its sequence, and the text index."""
    rows = _rows(model, batch_size, max_length)
    for first, batch in zip(range(0, len(texts), rows), _batches(texts, rows)):
        hidden, mask = _residuals(model, tokenizer, layer, batch, max_length)
        real = mask.bool()
        positions = (mask.cumsum(-1) - 1)[real]
        text_index = (torch.arange(len(batch), device=mask.device).unsqueeze(1) + first).expand_as(mask)[real]
        yield hidden[real].cpu().numpy(), positions.cpu().numpy(), text_index.cpu().numpy()
