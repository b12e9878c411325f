"""Steered generation of named conditions with common random numbers, and the fluency of the result.

Every (prompt, sample) owns one stream of Gumbel noise per step (:mod:`steerid.engine.sampling`)
shared by every condition, so two steering vectors that give nearly the same next-token
distribution give the same token, and condition differences are not drowned in sampling noise.

Models of a family the engine runs (:mod:`steerid.engine.architectures`) generate on the engine:
shared prompt prefixes, a preallocated cache, batches sized to the memory. Any other causal LM
generates through its own Hugging Face forward with the steering hook of :mod:`steerid.engine.hooks`,
one batch of full prompts at a time, drawing the same noise: both paths sample the same
distribution with the same coupling.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel

from steerid.engine import architectures
from steerid.engine.decoder import decoder_for
from steerid.engine.generation import Row, generate
from steerid.engine.hooks import add_at_layers
from steerid.engine.models import decoder_layers, format_prompt, kv_cache_argument, tokenize_prompts
from steerid.engine.positions import position_mode
from steerid.engine.sampling import Sampling, choose_tokens, gumbel_noise
from steerid.engine.site import Layers, site_layers
from steerid.engine.teacher import continuation_logprobs

__all__ = ["Job", "Sampling", "generate_conditions", "generate_rows", "perplexities", "plan_jobs", "prompt_token_ids"]

HF_BATCH_ROWS = 32  # rows per batch on the Hugging Face path, which holds full prompts and a growing cache


@dataclass(frozen=True)
class Job:
    """One generation: a condition applied to one sample of one prompt."""

    condition: str
    prompt_index: int
    sample_index: int


def plan_jobs(conditions: Iterable[str], n_prompts: int, n_samples: int) -> list[Job]:
    """Every condition × prompt × sample."""
    return [Job(c, p, s) for c in conditions for p in range(n_prompts) for s in range(n_samples)]


def prompt_token_ids(tokenizer, prompts: Sequence[str]) -> list[list[int]]:
    """Each prompt formatted (chat template when the tokenizer has one) and tokenized, unpadded."""
    add_special = tokenizer.chat_template is None
    return [list(tokenizer(format_prompt(tokenizer, p), add_special_tokens=add_special)["input_ids"]) for p in prompts]


def stop_ids(model: PreTrainedModel, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    found = set(ids if isinstance(ids, list) else [ids]) | {tokenizer.eos_token_id}
    return sorted(i for i in found if i is not None)


def generate_rows(
    model: PreTrainedModel,
    tokenizer,
    layers: Layers,
    prompts: Sequence[str],
    rows: Sequence[Row],
    deltas: torch.Tensor,
    sampling: Sampling,
    seed: int,
    *,
    positions: str = "last",
    norm_preserving: bool = False,
    batch_size: int | str | None = "auto",
    progress=None,
    engine: bool | None = None,
) -> list[list[int]]:
    """Completions (token ids, without the stop token) of ``rows``, each steered by ``deltas[row.delta]``
    at the output of decoder ``layers`` (one int, or several with deltas (n, len(layers), d)).

    ``positions`` is a position mode (:mod:`steerid.engine.positions`), ``norm_preserving`` keeps
    each steered residual's norm. ``batch_size`` is rows per batch, or ``"auto"``: sized from the
    memory on the engine path.
    ``engine=None`` runs the engine when it supports the model; False forces the Hugging Face path.
    """
    position_mode(positions)  # an unknown mode or site fails here, before any model work
    blocks = decoder_layers(model)
    site = site_layers(layers, len(blocks))
    update = None if progress is None else progress.update
    rows_per_batch = None if batch_size in (None, "auto") else int(batch_size)
    if engine is None:
        engine = architectures.supported(model)
    if engine:
        return generate(
            decoder_for(model),
            prompt_token_ids(tokenizer, prompts),
            rows,
            deltas,
            site,
            sampling,
            seed,
            stop_ids(model, tokenizer),
            positions=positions,
            norm_preserving=norm_preserving,
            batch_rows=rows_per_batch,
            progress=update,
        )
    outputs: list[list[int]] = [[] for _ in rows]
    lengths = [len(ids) for ids in prompt_token_ids(tokenizer, prompts)]
    for batch in _batches_by_length(rows, lengths, rows_per_batch or HF_BATCH_ROWS):
        texts = [prompts[rows[i].prompt] for i in batch]
        batch_deltas = deltas[torch.tensor([rows[i].delta for i in batch])]
        streams = [(rows[i].prompt, rows[i].sample) for i in batch]
        for i, tokens in zip(
            batch,
            _hf_batch(
                model,
                tokenizer,
                blocks,
                site,
                texts,
                batch_deltas,
                streams,
                sampling,
                seed,
                positions,
                norm_preserving,
            ),
        ):
            outputs[i] = tokens
        if update is not None:
            update(len(batch))
    return outputs


def _batches_by_length(rows: Sequence[Row], lengths: Sequence[int], size: int) -> Iterator[list[int]]:
    order = sorted(range(len(rows)), key=lambda i: (lengths[rows[i].prompt], rows[i].prompt, rows[i].delta))
    for start in range(0, len(order), size):
        yield order[start : start + size]


@torch.inference_mode()
def _hf_batch(
    model: PreTrainedModel,
    tokenizer,
    blocks: nn.ModuleList,
    layers: tuple[int, ...],
    prompts: Sequence[str],
    deltas: torch.Tensor,
    streams: Sequence[tuple[int, int]],
    sampling: Sampling,
    seed: int,
    positions: str,
    norm_preserving: bool,
) -> list[list[int]]:
    """One batch through the model's own forward and KV cache, steered by the residual hook (its
    first call is the prompt, every later one a generated token: what ``prompt`` and ``generated`` need)."""
    device = next(model.parameters()).device
    input_ids, mask = tokenize_prompts(tokenizer, list(prompts), device)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    stops = torch.tensor(stop_ids(model, tokenizer), device=device)
    finished = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    tokens: list[torch.Tensor] = []
    cache_argument, cache = kv_cache_argument(model), None
    with add_at_layers(blocks, layers, deltas, positions, norm_preserving):
        for step in range(sampling.max_new_tokens):
            out = model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=position_ids,
                use_cache=True,
                logits_to_keep=1,
                **{cache_argument: cache},
            )
            cache = getattr(out, cache_argument)
            logits = out.logits[:, -1].float()
            noise = (
                None
                if sampling.greedy
                else torch.stack(
                    [gumbel_noise(seed, prompt, sample, step, logits.shape[-1]) for prompt, sample in streams]
                )
            )
            chosen = choose_tokens(logits, noise, sampling).to(device)
            tokens.append(chosen)
            finished |= torch.isin(chosen, stops)
            if bool(finished.all()):
                break
            input_ids = chosen.unsqueeze(-1)
            mask = torch.cat([mask, torch.ones_like(input_ids)], dim=-1)
            position_ids = position_ids[:, -1:] + 1
    stop_set = set(stops.tolist())
    return [_until_stop(row, stop_set) for row in torch.stack(tokens, dim=1).tolist()]


def _until_stop(row: list[int], stops: set[int]) -> list[int]:
    for i, token in enumerate(row):
        if token in stops:
            return row[:i]
    return row


def generate_conditions(
    model: PreTrainedModel,
    tokenizer,
    layers: Layers,
    prompts: Sequence[str],
    conditions: dict[str, torch.Tensor],
    n_samples: int,
    sampling: Sampling,
    seed: int,
    batch_size: int | str | None = "auto",
    positions: str = "last",
    progress=None,
    fluency: bool = False,
    norm_preserving: bool = False,
) -> list[dict]:
    """Completions for every condition × prompt × sample, as JSON-able records in job order.

    The conditions' vectors ((d,), or (len(layers), d) for several layers) are added at the
    output of decoder ``layers``, at the ``positions``
    of that mode (:mod:`steerid.engine.positions`), rescaled to the residual's norm with
    ``norm_preserving``. With ``fluency``, each
    record also has the completion's perplexity under the unsteered model.
    """
    names = list(conditions)
    jobs = plan_jobs(names, len(prompts), n_samples)
    rows = [Row(job.prompt_index, job.sample_index, names.index(job.condition)) for job in jobs]
    deltas = torch.stack([conditions[name].float() for name in names])
    completions = generate_rows(
        model,
        tokenizer,
        layers,
        prompts,
        rows,
        deltas,
        sampling,
        seed,
        positions=positions,
        norm_preserving=norm_preserving,
        batch_size=batch_size,
        progress=progress,
    )
    scores = (
        perplexities(model, tokenizer, [prompts[job.prompt_index] for job in jobs], completions)
        if fluency
        else [None] * len(jobs)
    )
    return [
        _record(job, prompts[job.prompt_index], tokenizer.decode(ids, skip_special_tokens=True), len(ids), value)
        for job, ids, value in zip(jobs, completions, scores)
    ]


def perplexities(
    model: PreTrainedModel, tokenizer, prompts: Sequence[str], completions: Sequence[Sequence[int]]
) -> list[float]:
    """Perplexity of each completion under the model with no steering: the fluency of steered text.

    nan for an empty completion.
    """
    logprobs = continuation_logprobs(model, prompt_token_ids(tokenizer, prompts), completions)
    return [float(torch.exp(-values.mean())) if values.numel() else float("nan") for values in logprobs]


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
