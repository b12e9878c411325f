"""Teacher forcing: the next-token distributions along given continuations of given prompts.

One builder serves every teacher-forced measurement (the fluency perplexity of E2, the logit
distances of E4, the statement likelihoods of truthfulness): a :class:`TeacherBatch` holds the
prompts and continuations of a batch, and :meth:`TeacherBatch.logits` returns, for one steering
delta, the logits at every position that predicts a continuation token. The delta is added at
the positions of a position mode (:mod:`steerid.engine.positions`), the continuation's tokens
being the generated ones: ``last`` (the default) from the last prompt token onward, ``all`` at
every position, ``prompt`` on the prompt only, ``generated`` on the continuation only; with
``norm_preserving`` each steered residual keeps its norm.

On the engine, a prompt's tokens before its last one are run once per batch and their keys and
values reused by every continuation of that prompt and, unless the mode steers them, by every
delta asked of the batch; only the continuations' own positions are projected onto the
vocabulary. Any other model runs prompt and continuation in one padded forward with the
steering hook of :mod:`steerid.engine.hooks`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel

from steerid.engine import architectures
from steerid.engine.decoder import KVCache, Steer, decoder_for, left_padded
from steerid.engine.hooks import add_at_layers
from steerid.engine.models import decoder_layers
from steerid.engine.positions import PositionMode, position_mode
from steerid.engine.site import Layers, site_deltas, site_layers

LOGIT_BUDGET = 2**28  # float32 logits (1 GiB) one teacher-forced batch may produce per delta


def right_padded(sequences: Sequence[Sequence[int]], width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, valid) of shape (n, width): each sequence left-aligned, padding after it."""
    ids = torch.zeros(len(sequences), width, dtype=torch.long)
    valid = torch.zeros(len(sequences), width, dtype=torch.bool)
    for row, tokens in enumerate(sequences):
        ids[row, : len(tokens)] = torch.as_tensor(list(tokens), dtype=torch.long)
        valid[row, : len(tokens)] = True
    return ids.to(device), valid.to(device)


@dataclass
class TeacherBatch:
    """Prompts (token ids, each non-empty) and the continuations (token ids) to score after them."""

    model: PreTrainedModel
    prompts: Sequence[Sequence[int]]
    continuations: Sequence[Sequence[int]]
    engine: bool | None = None  # None: the engine whenever it runs the model; False: the Hugging Face forward
    _prefix: KVCache | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.prompts) != len(self.continuations) or not self.prompts:
            raise ValueError(
                f"{len(self.prompts)} prompts and {len(self.continuations)} continuations: expected "
                "the same number, at least one"
            )
        if any(len(p) == 0 for p in self.prompts):
            raise ValueError("every prompt needs at least one token")
        self.device = next(self.model.parameters()).device
        self.width = max(1, max(len(c) for c in self.continuations))
        self.targets, self.predicting = right_padded(self.continuations, self.width, self.device)
        self.on_engine = architectures.supported(self.model) if self.engine is None else self.engine

    @torch.inference_mode()
    def logits(
        self,
        delta: torch.Tensor | None = None,
        layer: Layers | None = None,
        positions: str | PositionMode = "last",
        norm_preserving: bool = False,
    ) -> torch.Tensor:
        """(B, width, V) float32: row i, column j predicts ``continuations[i][j]`` (where ``predicting``).

        ``delta`` (d,) or (B, d) is added at the output of block ``layer`` at the ``positions`` of
        that mode (the continuation's tokens are the generated ones), rescaled to the residual's
        norm with ``norm_preserving``; None = the unsteered model. Several layers at once:
        ``layer`` a sequence and ``delta`` (len(layer), d) or (B, len(layer), d).
        """
        mode = position_mode(positions)
        deltas: torch.Tensor | None = None
        site: tuple[int, ...] = ()
        if delta is not None:
            if layer is None:
                raise ValueError("a steering delta needs the layer it is added at")
            site = site_layers(layer, len(decoder_layers(self.model)))
            deltas = site_deltas(delta.to(self.device).float(), site, len(self.prompts))
        logits = self._engine_logits if self.on_engine else self._hf_logits
        return logits(deltas, site, mode, norm_preserving)

    def logprobs_of_continuations(self, **steering) -> list[torch.Tensor]:
        """Per row, log p of each continuation token (float32, CPU)."""
        logprobs = torch.log_softmax(self.logits(**steering), dim=-1)
        chosen = logprobs.gather(-1, self.targets.unsqueeze(-1)).squeeze(-1)
        return [chosen[row, : len(c)].cpu() for row, c in enumerate(self.continuations)]

    # -- engine ---------------------------------------------------------------------------------

    def _prefix_cache(self, deltas, site: tuple[int, ...], mode: PositionMode, norm_preserving: bool) -> KVCache:
        """Every row's prompt minus its last token, then ``width`` empty slots (shared when unsteered)."""
        decoder = decoder_for(self.model)
        if mode.prompt_before_last and deltas is not None:
            steer = Steer(site, deltas, norm_preserving=norm_preserving)
            return decoder.shared_prefix_cache(
                [list(p)[:-1] for p in self.prompts], range(len(self.prompts)), self.width, steer
            )
        if self._prefix is None:
            groups = list(dict.fromkeys(tuple(p) for p in self.prompts))
            member = [groups.index(tuple(p)) for p in self.prompts]
            self._prefix = decoder.shared_prefix_cache([list(g)[:-1] for g in groups], member, self.width)
        return self._prefix

    def _engine_logits(self, deltas, site: tuple[int, ...], mode: PositionMode, norm_preserving: bool) -> torch.Tensor:
        decoder = decoder_for(self.model)
        cache = self._prefix_cache(deltas, site, mode, norm_preserving)
        # The tail: the last prompt token, then the continuation but its final token.
        tails = [[p[-1], *list(c)[:-1]] if len(c) else [p[-1]] for p, c in zip(self.prompts, self.continuations)]
        ids, valid = right_padded(tails, self.width, self.device)
        start = torch.tensor([len(p) - 1 for p in self.prompts], device=self.device)
        positions = start[:, None] + torch.arange(self.width, device=self.device)
        # Column 0 is the last prompt token, the others the continuation's (generated) tokens.
        where = valid & mode.tail_mask(self.width, self.device)
        steer = None if deltas is None else Steer(site, deltas, where, norm_preserving)
        # Each call writes its tail into the same slots after the prefix, so the prefix is reused as is.
        hidden = decoder.forward(
            ids, valid, positions, cache=cache, offset=cache.valid.shape[1] - self.width, steer=steer
        )
        return decoder.logits(hidden)

    # -- Hugging Face forward -------------------------------------------------------------------

    def _hf_logits(self, deltas, site: tuple[int, ...], mode: PositionMode, norm_preserving: bool) -> torch.Tensor:
        prompt_width = max(len(p) for p in self.prompts)
        prompt_ids, prompt_valid = left_padded(self.prompts, prompt_width, self.device)
        ids = torch.cat([prompt_ids, self.targets], dim=1)
        valid = torch.cat([prompt_valid, self.predicting], dim=1)
        mask = valid.long()
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        forward = dict(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position_ids,
            use_cache=False,
            logits_to_keep=self.width + 1,
        )
        if deltas is None:
            logits = self.model(**forward).logits
        else:
            # Left padding aligns every last prompt token at column prompt_width - 1.
            columns = torch.cat(
                [
                    torch.full((prompt_width - 1,), mode.prompt_before_last, dtype=torch.bool, device=self.device),
                    mode.tail_mask(self.width + 1, self.device),
                ]
            )
            where = valid & columns
            with add_at_layers(decoder_layers(self.model), site, deltas, where, norm_preserving):
                logits = self.model(**forward).logits
        # Position t predicts token t + 1: the continuation is predicted from the last prompt token on.
        return logits[:, :-1].float()


def batches(
    model: PreTrainedModel,
    prompts: Sequence[Sequence[int]],
    continuations: Sequence[Sequence[int]],
    budget: int = LOGIT_BUDGET,
) -> Iterator[tuple[list[int], TeacherBatch]]:
    """(item indices, their batch) over all items, sorted by prompt so that prompts share prefixes."""
    vocab = int(architectures.text_config(model).vocab_size)
    width = max(1, max((len(c) for c in continuations), default=1))
    size = max(1, budget // (vocab * width))
    order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), tuple(prompts[i])))
    for start in range(0, len(order), size):
        index = order[start : start + size]
        yield index, TeacherBatch(model, [prompts[i] for i in index], [continuations[i] for i in index])


def continuation_logprobs(
    model: PreTrainedModel, prompts: Sequence[Sequence[int]], continuations: Sequence[Sequence[int]], **steering
) -> list[torch.Tensor]:
    """Per item i, log p(continuations[i][j] | prompts[i], continuations[i][:j]) for every j (float32, CPU)."""
    results: list[torch.Tensor] = [torch.zeros(0)] * len(prompts)
    for index, batch in batches(model, prompts, continuations):
        for i, values in zip(index, batch.logprobs_of_continuations(**steering)):
            results[i] = values
    return results
