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
from steerid.engine.decoder import decoder_for
from steerid.engine.hooks import capture_residual
from steerid.engine.models import decoder_layers, tokenize_prompts

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
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    if architectures.supported(model):
        return decoder_for(model).forward(input_ids, mask.bool(), positions, stop_after=layer).float(), mask
    with (
        capture_residual(decoder_layers(model)[layer], stop=_SiteReached) as captured,
        contextlib.suppress(_SiteReached),
    ):
        model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=False)
    return captured[0].float(), mask


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
