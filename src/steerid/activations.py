"""Run prompts through the model and collect residual-stream activations at one site."""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from steerid.hooks import capture_residual
from steerid.models import tokenize_prompts


def _batches(texts: Sequence[str], batch_size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), batch_size):
        yield list(texts[start : start + batch_size])


@torch.inference_mode()
def _residuals(model: nn.Module, tokenizer, site: nn.Module, texts: list[str], max_length: int | None):
    device = next(model.parameters()).device
    input_ids, mask = tokenize_prompts(tokenizer, texts, device, max_length)
    with capture_residual(site) as captured:
        model(input_ids=input_ids, attention_mask=mask, use_cache=False, logits_to_keep=1)
    return captured[0].float(), mask


def last_token(model: nn.Module, tokenizer, site: nn.Module, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """(n, d) float32 activations at the final prompt token (left padding keeps it at index -1)."""
    blocks = [_residuals(model, tokenizer, site, batch, None)[0][:, -1] for batch in _batches(texts, batch_size)]
    return torch.cat(blocks).cpu().numpy()


def token_level(
    model: nn.Module, tokenizer, site: nn.Module, texts: Sequence[str], batch_size: int, max_length: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per batch: activations of every real token (rows, d), its position in its sequence, and the text index."""
    for first, batch in zip(range(0, len(texts), batch_size), _batches(texts, batch_size)):
        hidden, mask = _residuals(model, tokenizer, site, batch, max_length)
        real = mask.bool()
        positions = (mask.cumsum(-1) - 1)[real]
        text_index = (torch.arange(len(batch), device=mask.device).unsqueeze(1) + first).expand_as(mask)[real]
        yield hidden[real].cpu().numpy(), positions.cpu().numpy(), text_index.cpu().numpy()
