"""Batched steered generation with common random numbers across conditions.

Every (prompt, sample) owns one ``torch.Generator``; it draws the uniforms that pick each token
by inverse-CDF sampling over the probability-sorted vocabulary. All conditions therefore share
the same sampling noise: two steering vectors that give the same next-token distribution give
the same token, so condition differences are not drowned in sampling variance.

Rows of one batch may carry different conditions (the hook adds a per-row vector), so a batch
mixes conditions freely and is formed from prompts of similar length to limit padding.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from steerid.hooks import add_to_residual
from steerid.models import tokenize_prompts


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; ``temperature == 0`` is greedy decoding."""

    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0


@dataclass(frozen=True)
class Job:
    """One generation: a condition applied to one sample of one prompt."""

    condition: str
    prompt_index: int
    sample_index: int


def generator_seed(seed: int, prompt_index: int, sample_index: int) -> int:
    """A well-mixed 63-bit seed for one (prompt, sample), independent of the condition."""
    return int(np.random.SeedSequence([seed, prompt_index, sample_index]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def sampling_uniforms(seed: int, prompt_index: int, sample_index: int, n_tokens: int) -> torch.Tensor:
    """The uniforms that choose the tokens of one (prompt, sample), shared by every condition."""
    generator = torch.Generator().manual_seed(generator_seed(seed, prompt_index, sample_index))
    return torch.rand(n_tokens, generator=generator, dtype=torch.float64)


def choose_tokens(logits: torch.Tensor, uniforms: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """Pick one token per row: argmax when greedy, else inverse CDF of the nucleus at ``uniforms``."""
    if sampling.temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.double() / sampling.temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    cdf = sorted_probs.cumsum(dim=-1)
    # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
    keep = (cdf - sorted_probs) < sampling.top_p
    cdf = (sorted_probs * keep).cumsum(dim=-1)
    targets = uniforms.to(cdf).unsqueeze(-1) * cdf[:, -1:]
    picks = torch.minimum(torch.searchsorted(cdf, targets, right=True), keep.sum(dim=-1, keepdim=True) - 1)
    return order.gather(-1, picks).squeeze(-1)


def kv_cache_argument(model: nn.Module) -> str:
    """The forward() keyword for the KV cache: ``cache`` from transformers 5, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _stop_ids(model: nn.Module, tokenizer) -> torch.Tensor:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids]) | {tokenizer.eos_token_id}
    return torch.tensor(sorted(i for i in ids if i is not None))


@torch.inference_mode()
def generate_batch(
    model: nn.Module,
    tokenizer,
    site: nn.Module,
    prompts: Sequence[str],
    deltas: torch.Tensor,
    uniforms: torch.Tensor,
    sampling: Sampling,
    positions: str = "last",
) -> list[list[int]]:
    """Generate one completion per row, row i steered by ``deltas[i]`` (zeros = unsteered)."""
    device = next(model.parameters()).device
    input_ids, mask = tokenize_prompts(tokenizer, list(prompts), device)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    stop_ids = _stop_ids(model, tokenizer).to(device)
    finished = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    tokens: list[torch.Tensor] = []
    cache_argument = kv_cache_argument(model)
    cache = None
    with add_to_residual(site, deltas, positions):
        for step in range(sampling.max_new_tokens):
            out = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                        use_cache=True, logits_to_keep=1, **{cache_argument: cache})
            cache = getattr(out, cache_argument)
            chosen = choose_tokens(out.logits[:, -1].float(), uniforms[:, step], sampling).to(device)
            chosen = torch.where(finished, torch.full_like(chosen, tokenizer.pad_token_id), chosen)
            tokens.append(chosen)
            finished |= torch.isin(chosen, stop_ids)
            if bool(finished.all()):
                break
            input_ids = chosen.unsqueeze(-1)
            mask = torch.cat([mask, torch.ones_like(input_ids)], dim=-1)
            position_ids = position_ids[:, -1:] + 1
    return [_trim(row, stop_ids) for row in torch.stack(tokens, dim=1).tolist()]


def _trim(row: list[int], stop_ids: torch.Tensor) -> list[int]:
    stops = set(stop_ids.tolist())
    for i, token in enumerate(row):
        if token in stops:
            return row[:i]
    return row


def plan_jobs(conditions: Iterable[str], n_prompts: int, n_samples: int) -> list[Job]:
    """Every condition × prompt × sample."""
    return [Job(c, p, s) for c in conditions for p in range(n_prompts) for s in range(n_samples)]


def batches_by_length(jobs: list[Job], prompt_lengths: Sequence[int], batch_size: int) -> Iterator[list[Job]]:
    """Batches of jobs whose prompts have similar token counts."""
    ordered = sorted(jobs, key=lambda job: (prompt_lengths[job.prompt_index], job.prompt_index, job.condition))
    for start in range(0, len(ordered), batch_size):
        yield ordered[start : start + batch_size]


def generate_conditions(
    model: nn.Module,
    tokenizer,
    site: nn.Module,
    prompts: Sequence[str],
    conditions: dict[str, torch.Tensor],
    n_samples: int,
    sampling: Sampling,
    seed: int,
    batch_size: int,
    positions: str = "last",
    progress=None,
    fluency: bool = False,
) -> list[dict]:
    """Completions for every condition × prompt × sample, as JSON-able records in job order.

    With ``fluency``, each record also has the completion's perplexity under the unsteered model
    (one more forward pass per batch, about half the cost of generating it).
    """
    jobs = plan_jobs(conditions, len(prompts), n_samples)
    lengths = [len(tokenizer(p)["input_ids"]) for p in prompts]
    records: dict[Job, dict] = {}
    for batch in batches_by_length(jobs, lengths, batch_size):
        deltas = torch.stack([conditions[job.condition] for job in batch])
        uniforms = torch.stack([sampling_uniforms(seed, j.prompt_index, j.sample_index, sampling.max_new_tokens) for j in batch])
        texts = [prompts[j.prompt_index] for j in batch]
        outputs = generate_batch(model, tokenizer, site, texts, deltas, uniforms, sampling, positions)
        scores = perplexities(model, tokenizer, texts, outputs) if fluency else [None] * len(batch)
        for job, token_ids, perplexity in zip(batch, outputs, scores):
            records[job] = _record(job, prompts[job.prompt_index], tokenizer.decode(token_ids, skip_special_tokens=True),
                                   len(token_ids), perplexity)
        if progress is not None:
            progress.update(len(batch))
    return [records[job] for job in jobs]


@torch.inference_mode()
def perplexities(model: nn.Module, tokenizer, prompts: Sequence[str], completions: Sequence[Sequence[int]]) -> list[float]:
    """Perplexity of each completion under the model with no hook: the fluency of steered text.

    Completions are scored teacher-forced after their left-padded prompt and right-padded to a
    common length; nan for an empty completion.
    """
    device = next(model.parameters()).device
    prompt_ids, prompt_mask = tokenize_prompts(tokenizer, list(prompts), device)
    width = max((len(c) for c in completions), default=0)
    if width == 0:
        return [float("nan")] * len(completions)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    completion_ids = torch.tensor([list(c) + [pad] * (width - len(c)) for c in completions], device=device)
    completion_mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in completions], device=device)
    input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
    mask = torch.cat([prompt_mask, completion_mask], dim=1)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    # The logits at position t predict token t + 1: the completion is predicted from the last prompt token on,
    # so only the last width + 1 positions need the vocabulary projection.
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False,
                   logits_to_keep=width + 1).logits
    predicting = logits[:, :-1].float().log_softmax(-1)
    token_logprobs = predicting.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1) * completion_mask
    counts = completion_mask.sum(-1)
    nll = -token_logprobs.sum(-1) / counts.clamp(min=1)
    return [float(torch.exp(value)) if count > 0 else float("nan") for value, count in zip(nll, counts)]


def _record(job: Job, prompt: str, completion: str, n_tokens: int, perplexity: float | None) -> dict:
    record = {
        "condition": job.condition,
        "prompt_index": job.prompt_index,
        "sample_index": job.sample_index,
        "prompt": prompt,
        "completion": completion,
        "n_tokens": n_tokens,
    }
    if perplexity is not None:
        record["perplexity"] = perplexity
    return record
