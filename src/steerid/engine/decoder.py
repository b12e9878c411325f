"""The decoder forward pass with fused weights, a preallocated KV cache and steering at one site
(one layer or several, :mod:`steerid.engine.site`).

Numerically it follows the Hugging Face implementation operation for operation (RMSNorm in
float32 with the family's weight convention, RoPE tables taken from the model's own rotary
module, SDPA attention), so hidden states and logits agree with ``model(...)`` to float
rounding; tests/test_engine.py holds it to that on every family it runs.

Sequences are left-padded: ``valid`` marks real tokens, every query also sees itself (a
padding query would otherwise attend to nothing and turn its keys and values into NaN, which
a masked-out key still multiplies into the output as 0 * NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from steerid.engine.architectures import Block, Weights, gather, rotary_module
from steerid.engine.positions import add_delta
from steerid.engine.site import Layers, site_deltas, site_layers


@dataclass
class Steer:
    """Add ``deltas[i, j]`` to row i's residual at the output of block ``layers[j]`` where ``where``
    is True (with ``norm_preserving``, each steered position rescaled to its unsteered norm).

    Build it with :meth:`at`, which takes any layout :func:`steerid.engine.site.site_deltas` does.
    """

    layers: tuple[int, ...]
    deltas: torch.Tensor  # (B, len(layers), d)
    where: torch.Tensor | None = None  # (B, T) bool; None = every position of the call
    norm_preserving: bool = False

    @classmethod
    def at(
        cls, layers: Layers, deltas: torch.Tensor, where: torch.Tensor | None = None, norm_preserving: bool = False
    ) -> Steer:
        site = site_layers(layers)
        return cls(site, site_deltas(deltas, site), where, norm_preserving)

    def apply(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        """``hidden``, the output of block ``layer`` (one of :attr:`layers`), steered."""
        shift = self.deltas[:, self.layers.index(layer)].to(hidden.dtype).unsqueeze(1)
        steered = add_delta(hidden, shift, self.norm_preserving)
        if self.where is None:
            return steered
        # where(), not hidden + mask * shift: unsteered positions stay bit-identical.
        return torch.where(self.where.unsqueeze(-1), steered, hidden)

    def rows(self, index: torch.Tensor) -> Steer:
        return replace(self, deltas=self.deltas[index], where=None if self.where is None else self.where[index])


@dataclass
class KVCache:
    """Keys and values of every layer, (B, kv_heads, capacity, head_dim), and which slots hold real tokens."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    valid: torch.Tensor  # (B, capacity) bool

    @property
    def rows(self) -> int:
        return self.valid.shape[0]

    def select(self, index: torch.Tensor) -> KVCache:
        """The cache of the rows ``index`` (a copy, in that order)."""
        return KVCache([k[index] for k in self.keys], [v[index] for v in self.values], self.valid[index])


class Decoder:
    """A Hugging Face causal LM of a supported family, run by the engine (see :mod:`architectures`)."""

    def __init__(self, model: PreTrainedModel):
        self.model = model
        self.weights: Weights = gather(model)
        parameter = self.weights.embedding
        self.device, self.dtype = parameter.device, parameter.dtype
        self.n_layers = len(self.weights.blocks)
        self.d_model = int(parameter.shape[1])
        self.vocab = int(self.weights.unembedding.shape[0])
        self._rope: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- pieces --------------------------------------------------------------------------------

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        offset = self.weights.family.norm_offset
        hidden = x.float()
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.weights.eps)
        if offset:
            return (hidden * (offset + weight.float())).type_as(x)
        return weight * hidden.to(x.dtype)

    def rope(self, key: str, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin (B, T, head_dim) at ``positions``, from a table the model's rotary module filled."""
        needed = int(positions.max()) + 1 if positions.numel() else 1
        table = self._rope.get(key)
        if table is None or table[0].shape[0] < needed:
            length = max(256, 1 << (needed - 1).bit_length())
            ids = torch.arange(length, device=self.device)[None]
            probe = torch.empty(1, length, self.weights.head_dim, device=self.device, dtype=self.dtype)
            rotary = rotary_module(self.model)
            # Outside inference mode even when called from a forward pass: the tables are also
            # constants of the differentiable paths (engine.linearize).
            with torch.inference_mode(False), torch.no_grad():
                cos, sin = rotary(probe, ids) if key == "default" else rotary(probe, ids, key)
            table = self._rope[key] = (cos[0], sin[0])
        return table[0][positions], table[1][positions]

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _project_qkv(self, block: Block, x: torch.Tensor, positions: torch.Tensor):
        """Queries (B, H, T, hd), keys and values (B, KV, T, hd) of ``x`` (B, T, d), rotated."""
        w = self.weights
        batch, length, _ = x.shape
        qkv = F.linear(x, block.qkv, block.qkv_bias)
        q, k, v = qkv.split([w.n_heads * w.head_dim, w.n_kv_heads * w.head_dim, w.n_kv_heads * w.head_dim], dim=-1)
        q = q.view(batch, length, w.n_heads, w.head_dim).transpose(1, 2)
        k = k.view(batch, length, w.n_kv_heads, w.head_dim).transpose(1, 2)
        v = v.view(batch, length, w.n_kv_heads, w.head_dim).transpose(1, 2)
        if block.q_norm is not None and block.k_norm is not None:
            q, k = self._norm(q, block.q_norm), self._norm(k, block.k_norm)
        cos, sin = self.rope(block.rope_key, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        return self._rotate(q, cos, sin), self._rotate(k, cos, sin), v

    def _mlp(self, block: Block, h: torch.Tensor) -> torch.Tensor:
        x = self._norm(h, block.mlp_norm)
        gate, up = F.linear(x, block.gate_up).chunk(2, dim=-1)
        out = F.linear(self.weights.activation(gate) * up, block.down)
        if block.mlp_out_norm is not None:
            out = self._norm(out, block.mlp_out_norm)
        return h + out

    def _attention_output(self, block: Block, h: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        batch, _, length, _ = attended.shape
        out = F.linear(attended.transpose(1, 2).reshape(batch, length, -1), block.out)
        if block.attn_out_norm is not None:
            out = self._norm(out, block.attn_out_norm)
        return h + out

    @staticmethod
    def _mask(valid: torch.Tensor, query_slots: torch.Tensor, window: int | None) -> torch.Tensor:
        """(B, 1, T, K) bool: causal over cache slots, real keys only, within the window, self always."""
        slots = torch.arange(valid.shape[1], device=valid.device)
        allowed = valid[:, None, :] & (slots[None, None, :] <= query_slots[None, :, None])
        if window is not None:
            allowed &= query_slots[None, :, None] - slots[None, None, :] < window
        allowed |= slots[None, None, :] == query_slots[None, :, None]
        return allowed.unsqueeze(1)

    def _attend(self, q, keys, values, mask):
        w = self.weights
        if q.shape[2] == 1:
            return self._attend_one(q, keys, values, mask)
        return F.scaled_dot_product_attention(
            q, keys, values, attn_mask=mask, scale=w.scale, enable_gqa=w.n_heads != w.n_kv_heads
        )

    def _attend_one(self, q, keys, values, mask):
        """One query per row (a decode step): batched products over (row, key-value head), each key-value
        head's query heads as the rows of one product; a third faster than SDPA for this shape on a CPU."""
        w = self.weights
        batch, length = keys.shape[0], keys.shape[2]
        groups = w.n_heads // w.n_kv_heads
        bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, float("-inf"))
        bias = bias.view(batch, 1, 1, length).expand(batch, w.n_kv_heads, groups, length)
        scores = torch.baddbmm(
            bias.reshape(-1, groups, length),
            q.reshape(-1, groups, w.head_dim),
            keys.reshape(-1, length, w.head_dim).transpose(1, 2),
            alpha=w.scale,
        )
        weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        out = torch.bmm(weights, values.reshape(-1, length, w.head_dim))
        return out.view(batch, w.n_heads, 1, w.head_dim)

    # -- passes --------------------------------------------------------------------------------

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = F.embedding(ids, self.weights.embedding)
        if self.weights.family.embed_scale:
            hidden = hidden * self.weights.embed_multiplier.to(hidden.device)
        return hidden

    def new_cache(self, rows: int, capacity: int) -> KVCache:
        """An empty cache. Its key and value slots are left uninitialised: every pass writes a slot
        before any query reads it (a padding slot too), and zero-filling gigabytes per batch cost 3 %."""
        w = self.weights
        shape = (rows, w.n_kv_heads, capacity, w.head_dim)
        make = lambda: torch.empty(shape, device=self.device, dtype=self.dtype)  # noqa: E731
        return KVCache(
            [make() for _ in w.blocks],
            [make() for _ in w.blocks],
            torch.zeros(rows, capacity, dtype=torch.bool, device=self.device),
        )

    def shared_prefix_cache(
        self, prefixes: Sequence[Sequence[int]], member: Sequence[int], extra: int, steer: Steer | None = None
    ) -> KVCache:
        """A cache for ``len(member)`` rows: row i starts with ``prefixes[member[i]]`` (run once per
        prefix, left-padded to the longest) followed by ``extra`` empty slots.

        ``steer`` (one delta per prefix, ``where=None``) steers every real prefix token.
        """
        width = max((len(p) for p in prefixes), default=0)
        index = torch.as_tensor(list(member), device=self.device)
        cache = self.new_cache(len(index), width + extra)
        if width == 0:
            return cache
        ids, valid = left_padded(prefixes, width, self.device)
        shared = self.new_cache(len(prefixes), width)
        if steer is not None:
            steer = replace(steer, where=valid)
        self.forward(ids, valid, (valid.cumsum(-1) - 1).clamp(min=0), cache=shared, steer=steer)
        for target, source in zip(cache.keys + cache.values, shared.keys + shared.values):
            target[:, :, :width] = source[index]
        cache.valid[:, :width] = shared.valid[index]
        return cache

    @torch.inference_mode()
    def forward(
        self,
        ids: torch.Tensor,
        valid: torch.Tensor,
        positions: torch.Tensor,
        *,
        cache: KVCache | None = None,
        offset: int = 0,
        steer: Steer | None = None,
        stop_after: int | None = None,
    ) -> torch.Tensor:
        """Run ``ids`` (B, T) through the blocks; returns the residual after the last block run.

        ``valid`` (B, T) marks real tokens, ``positions`` (B, T) their position ids. With a
        ``cache``, the tokens fill slots ``offset .. offset + T`` and attend to every real slot
        before them; without one they attend among themselves. ``stop_after`` ends the pass at
        that block's output (nothing above the site runs).
        """
        last = self.n_layers - 1 if stop_after is None else stop_after
        length = ids.shape[1]
        if cache is not None:
            cache.valid[:, offset : offset + length] = valid
            key_valid = cache.valid[:, : offset + length]
        else:
            key_valid = valid
        query_slots = torch.arange(offset, offset + length, device=ids.device)
        masks: dict[int | None, torch.Tensor] = {}
        hidden = self.embed(ids)
        for index, block in enumerate(self.weights.blocks[: last + 1]):
            if block.window not in masks:
                masks[block.window] = self._mask(key_valid, query_slots, block.window)
            x = self._norm(hidden, block.attn_norm)
            q, k, v = self._project_qkv(block, x, positions)
            if cache is not None:
                cache.keys[index][:, :, offset : offset + length] = k
                cache.values[index][:, :, offset : offset + length] = v
                k, v = cache.keys[index][:, :, : offset + length], cache.values[index][:, :, : offset + length]
            hidden = self._mlp(block, self._attention_output(block, hidden, self._attend(q, k, v, masks[block.window])))
            if steer is not None and index in steer.layers:
                hidden = steer.apply(hidden, index)
        return hidden

    @torch.inference_mode()
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits of final residuals (..., d), in float32."""
        return F.linear(self._norm(hidden, self.weights.final_norm), self.weights.unembedding).float()


def left_padded(sequences: Sequence[Sequence[int]], width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, valid) of shape (n, width): each sequence right-aligned, padding before it."""
    ids = torch.zeros(len(sequences), width, dtype=torch.long)
    valid = torch.zeros(len(sequences), width, dtype=torch.bool)
    for i, tokens in enumerate(sequences):
        if len(tokens):
            ids[i, width - len(tokens) :] = torch.as_tensor(list(tokens))
            valid[i, width - len(tokens) :] = True
    return ids.to(device), valid.to(device)


def decoder_for(model: PreTrainedModel) -> Decoder:
    """The model's engine view, built once per device and dtype and kept on the model (fusing
    re-points the model's parameters, so building it twice would only cost time)."""
    parameter = next(model.parameters())
    decoder = getattr(model, "_steerid_decoder", None)
    if decoder is None or (decoder.device, decoder.dtype) != (parameter.device, parameter.dtype):
        decoder = Decoder(model)
        model._steerid_decoder = decoder  # type: ignore[assignment]  # nn.Module types attributes as submodules
    return decoder
