"""Batched steered generation on the engine: shared prefixes, a preallocated cache, Gumbel-max CRN.

A *row* is one completion: a prompt, a sample index (which noise stream it draws from) and the
steering delta it carries. Rows of any conditions share a batch. The position mode
(:mod:`steerid.engine.positions`) says where the delta reaches the residual. When it leaves the
prompt's tokens before its last one unsteered (``last``: the last prompt token and every
generated token; ``generated``: the generated tokens only), all rows of one prompt share their
keys and values: they are computed once per prompt, copied into each row's slots of the
preallocated cache, and the rows then advance one token per step together, the first step
feeding the last prompt token. When the prompt is steered (``all``, ``prompt``), rows share a
prefix only within one (prompt, delta).

Rows that have stopped are dropped from the batch once a quarter of it has, so a batch never
keeps paying for finished completions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from steerid.engine.decoder import Decoder, KVCache, Steer
from steerid.engine.memory import batch_rows_for
from steerid.engine.positions import PositionMode, position_mode
from steerid.engine.sampling import Sampling, choose_tokens, gumbel_noise
from steerid.engine.site import Layers, site_deltas, site_layers


@dataclass(frozen=True)
class Row:
    """One completion to generate: ``prompt`` and ``delta`` index the caller's lists."""

    prompt: int
    sample: int
    delta: int


@dataclass
class _Active:
    """The rows of a batch still generating, and their state."""

    index: torch.Tensor  # positions of these rows in the batch
    cache: KVCache
    tokens: torch.Tensor  # (B,) the token each row feeds next
    positions: torch.Tensor  # (B,) its position id
    steer: Steer
    streams: torch.Tensor  # (B,) index into the batch's noise streams
    done: torch.Tensor  # (B,) bool: the row has produced a stop token

    def keep(self, mask: torch.Tensor) -> _Active:
        kept = mask.nonzero().squeeze(-1)
        return _Active(
            self.index[kept],
            self.cache.select(kept),
            self.tokens[kept],
            self.positions[kept],
            self.steer.rows(kept),
            self.streams[kept],
            self.done[kept],
        )


def generate(
    decoder: Decoder,
    prompts: Sequence[Sequence[int]],
    rows: Sequence[Row],
    deltas: torch.Tensor,
    layers: Layers,
    sampling: Sampling,
    seed: int,
    stop_ids: Sequence[int],
    *,
    positions: str | PositionMode = "last",
    norm_preserving: bool = False,
    batch_rows: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[list[int]]:
    """Token ids of every row's completion (without its stop token), in the order of ``rows``.

    Row r is steered by ``deltas[r.delta]`` at the site ``layers`` (deltas (n, d) for one layer,
    (n, len(layers), d) for several; :mod:`steerid.engine.site`). ``positions`` is a position
    mode; ``norm_preserving`` keeps each steered residual's norm.
    """
    mode = position_mode(positions)
    site = site_layers(layers, decoder.n_layers)
    deltas = site_deltas(deltas, site)
    if any(len(prompts[row.prompt]) == 0 for row in rows):
        raise ValueError("every prompt needs at least one token")
    capacity = max(len(p) for p in prompts) + sampling.max_new_tokens
    size = batch_rows or batch_rows_for(decoder, capacity)
    outputs: list[list[int]] = [[] for _ in rows]
    for batch in _batches(prompts, rows, size):
        completions = _generate_batch(
            decoder,
            prompts,
            [rows[i] for i in batch],
            deltas,
            site,
            sampling,
            seed,
            stop_ids,
            mode,
            norm_preserving,
        )
        for i, tokens in zip(batch, completions):
            outputs[i] = tokens
        if progress is not None:
            progress(len(batch))
    return outputs


def _batches(prompts: Sequence[Sequence[int]], rows: Sequence[Row], size: int) -> Iterator[list[int]]:
    """Row indices in batches of ``size``, ordered so that a prompt's rows sit together."""
    order = sorted(
        range(len(rows)), key=lambda i: (len(prompts[rows[i].prompt]), rows[i].prompt, rows[i].delta, rows[i].sample)
    )
    for start in range(0, len(order), size):
        yield order[start : start + size]


def _prefilled(
    decoder: Decoder,
    prompts,
    rows: Sequence[Row],
    deltas: torch.Tensor,
    site: tuple[int, ...],
    capacity: int,
    mode: PositionMode,
    norm_preserving: bool,
) -> KVCache:
    """A cache for ``rows`` whose first slots hold each row's prompt minus its last token."""
    keys = [(row.prompt, None if mode.shares_prefix else row.delta) for row in rows]
    groups = list(dict.fromkeys(keys))
    steer = None
    if mode.prompt_before_last:
        steer = Steer(
            site,
            deltas[torch.tensor([delta for _, delta in groups])].to(decoder.device),
            norm_preserving=norm_preserving,
        )
    return decoder.shared_prefix_cache(
        [list(prompts[prompt])[:-1] for prompt, _ in groups], [groups.index(key) for key in keys], capacity, steer
    )


def _generate_batch(
    decoder: Decoder,
    prompts,
    rows: Sequence[Row],
    deltas: torch.Tensor,
    site: tuple[int, ...],
    sampling: Sampling,
    seed: int,
    stop_ids: Sequence[int],
    mode: PositionMode,
    norm_preserving: bool,
) -> list[list[int]]:
    device = decoder.device
    cache = _prefilled(decoder, prompts, rows, deltas, site, sampling.max_new_tokens + 1, mode, norm_preserving)
    start = cache.valid.shape[1] - sampling.max_new_tokens - 1
    streams = list(dict.fromkeys((row.prompt, row.sample) for row in rows))
    active = _Active(
        index=torch.arange(len(rows), device=device),
        cache=cache,
        tokens=torch.tensor([prompts[row.prompt][-1] for row in rows], device=device),
        positions=torch.tensor([len(prompts[row.prompt]) - 1 for row in rows], device=device),
        steer=Steer(site, deltas[torch.tensor([row.delta for row in rows])].to(device), None, norm_preserving),
        streams=torch.tensor([streams.index((row.prompt, row.sample)) for row in rows], device=device),
        done=torch.zeros(len(rows), dtype=torch.bool, device=device),
    )
    stops = torch.tensor(sorted(set(stop_ids)), device=device)
    chosen = torch.full((len(rows), sampling.max_new_tokens), -1, dtype=torch.long, device=device)
    for step in range(sampling.max_new_tokens):
        # Step 0 feeds the last prompt token, every later step the token sampled before it.
        steered = mode.last_prompt if step == 0 else mode.generated
        hidden = decoder.forward(
            active.tokens[:, None],
            torch.ones(len(active.index), 1, dtype=torch.bool, device=device),
            active.positions[:, None],
            cache=active.cache,
            offset=start + step,
            steer=active.steer if steered else None,
        )
        logits = decoder.logits(hidden[:, -1])
        if sampling.greedy:
            tokens = choose_tokens(logits, None, sampling)
        else:
            used = torch.unique(active.streams)  # sorted
            table = torch.stack(
                [gumbel_noise(seed, streams[i][0], streams[i][1], step, decoder.vocab) for i in used.tolist()]
            )
            tokens = choose_tokens(logits, table, sampling, torch.searchsorted(used, active.streams))
        chosen[active.index, step] = tokens
        active.done |= torch.isin(tokens, stops)
        active.tokens, active.positions = tokens, active.positions + 1
        if bool(active.done.all()):
            break
        # A stopped row runs on until a quarter of the batch has stopped; its extra tokens are trimmed below.
        if int(active.done.sum()) * 4 >= len(active.done):
            active = active.keep(~active.done)
    return [_until_stop(row, set(stop_ids)) for row in chosen.tolist()]


def _until_stop(tokens: list[int], stops: set[int]) -> list[int]:
    for i, token in enumerate(tokens):
        if token < 0 or token in stops:
            return tokens[:i]
    return tokens
