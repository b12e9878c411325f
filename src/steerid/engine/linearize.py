"""The Jacobian of the next-token log-probabilities w.r.t. the site at the last prompt token, cheaply.

A shift ``u`` of the residual at the output of block L at the last position t changes nothing at
earlier positions, so the next-token log-probabilities depend on ``u`` only through that
position's path through the blocks above L, attending to the (fixed) keys and values of the
positions before it. Write that path as ``g(u)``, the final-normed residual (d), and
``A = dg/du`` (d x d). The rest is closed form: the logits are ``W g`` (W the (V, d)
unembedding) and ``d log_softmax / dz = I - 1 p^T``, so the Jacobian of the log-probabilities
is ``J = (I - 1 p^T) W A`` and its Gram

    J^T J = A^T M A,   M = sum_i (w_i - m)(w_i - m)^T = W^T W - s m^T - m s^T + V m m^T,

with ``w_i`` the rows of W, ``m = W^T p`` the p-weighted mean unembedding and ``s = W^T 1``
(both taken with W centred on its mean row, which changes neither J nor M; see
:class:`VocabularyGram`). ``W^T W`` is formed once per model, so a prompt costs d tangents through the blocks above L
(batched: each block's matrix products see d rows) and a few d x d products; the 49,152-way
vocabulary projection is never pushed through a tangent.

``A`` comes from forward-mode derivatives propagated by hand through the blocks (exact, float32;
:meth:`LastPositionPath.tangents`), checked against ``torch.func``; ``A^T Y`` for the
matrix-free path comes from ``torch.func.vjp``. The Grams are accumulated in float64.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from steerid.engine.decoder import Decoder
from steerid.linalg import symmetrised

Operator = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class LastPositionPath:
    """``g(u)`` of one prompt (see the module docstring), with everything it needs precomputed."""

    decoder: Decoder
    layer: int
    # Per block above the site: the transposed keys (1, heads, head_dim, s) and the values
    # (1, heads, s, head_dim) of the positions before t that it attends to, already repeated
    # over each key-value head's query heads. They do not depend on u, so under vmap they stay
    # one tensor instead of a copy per tangent.
    keys_t: dict[int, torch.Tensor]
    values: dict[int, torch.Tensor]
    hidden: torch.Tensor  # (d,) the site's output at t, before any shift
    position: int  # t

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """The final-normed residual at t when ``u`` (d,) is added at the site; differentiable."""
        decoder = self.decoder
        hidden = (self.hidden + u).view(1, 1, -1)
        positions = torch.tensor([[self.position]], device=decoder.device)
        for index in range(self.layer + 1, decoder.n_layers):
            block = decoder.weights.blocks[index]
            x = decoder._norm(hidden, block.attn_norm)
            q, k, v = decoder._project_qkv(block, x, positions)
            attended = self._attend(q, k, v, index)
            hidden = decoder._mlp(block, decoder._attention_output(block, hidden, attended))
        return decoder._norm(hidden, decoder.weights.final_norm).view(-1)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: int) -> torch.Tensor:
        """Attention of the one query over the fixed earlier keys and its own, in plain differentiable
        operations (forward-mode AD has no SDPA rule on CPU)."""
        w = self.decoder.weights
        groups = w.n_heads // w.n_kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (1, H, 1, hd)
        own = (q * k).sum(-1, keepdim=True)
        # einsum, not @: under vmap it folds the tangents into the rows of one product per head,
        # where matmul would first copy the fixed keys once per tangent.
        earlier = torch.einsum("bhqd,bhds->bhqs", q, self.keys_t[index])
        scores = torch.cat([earlier, own], dim=-1) * w.scale
        weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        return torch.einsum("bhqs,bhsd->bhqd", weights[..., :-1], self.values[index]) + weights[..., -1:] * v

    @torch.no_grad()
    def probabilities(self) -> torch.Tensor:
        """Next-token probabilities (V,) of the unshifted prompt."""
        final = self(torch.zeros_like(self.hidden))
        return torch.softmax(F.linear(final, self.decoder.weights.unembedding).float(), dim=-1)

    def tangents(self, directions: torch.Tensor) -> torch.Tensor:
        """``A X`` for a (d, k) block of input directions: forward-mode derivatives propagated by hand.

        Each block's linear maps are applied to all k tangents in one matrix product, and the
        fixed earlier keys and values enter per head as (k, head_dim) x (head_dim, s) products; the
        elementwise derivatives (norms, softmax, activation) are the exact closed forms. torch.func
        gives the same numbers (tests/test_jacobian.py) but, under vmap, copies the fixed keys once
        per tangent, which made it slower (``benchmarks/README.md``).
        """
        decoder = self.decoder
        hidden, tangent = self.hidden.view(1, -1), directions.T.to(self.hidden.dtype)  # (1, d), (k, d)
        positions = torch.tensor([[self.position]], device=decoder.device)
        with torch.no_grad():
            for index in range(self.layer + 1, decoder.n_layers):
                block = decoder.weights.blocks[index]
                x, dx = self._norm_jvp(hidden, tangent, block.attn_norm)
                (q, k, v), (dq, dk, dv) = self._qkv_jvp(block, x, dx, positions)
                attended, d_attended = self._attention_jvp(q, k, v, dq, dk, dv, index)
                out, d_out = self._linear_out_jvp(block.out, attended, d_attended, block.attn_out_norm)
                hidden, tangent = hidden + out, tangent + d_out
                x, dx = self._norm_jvp(hidden, tangent, block.mlp_norm)
                out, d_out = self._mlp_jvp(block, x, dx)
                hidden, tangent = hidden + out, tangent + d_out
            _, tangent = self._norm_jvp(hidden, tangent, decoder.weights.final_norm)
        return tangent.T

    def _norm_jvp(self, x: torch.Tensor, dx: torch.Tensor, weight: torch.Tensor):
        """RMSNorm over the last dim of x (..., n) and its derivative along each dx (k, ..., n)."""
        decoder = self.decoder
        r = torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + decoder.weights.eps)
        scale = weight.float() + decoder.weights.family.norm_offset
        projection = (dx.float() * x.float()).sum(-1, keepdim=True) * r.pow(2) / x.shape[-1]
        return decoder._norm(x, weight), ((dx.float() - projection * x.float()) * r * scale).to(dx.dtype)

    def _qkv_jvp(self, block, x, dx, positions):
        """Rotated queries, keys and values (1, heads, hd) and their tangents (k, heads, hd)."""
        decoder, w = self.decoder, self.decoder.weights
        sizes = [w.n_heads * w.head_dim, w.n_kv_heads * w.head_dim, w.n_kv_heads * w.head_dim]
        heads = [w.n_heads, w.n_kv_heads, w.n_kv_heads]
        primal = F.linear(x, block.qkv, block.qkv_bias).split(sizes, dim=-1)
        tangent = F.linear(dx, block.qkv).split(sizes, dim=-1)
        primal = [p.reshape(1, n, w.head_dim) for p, n in zip(primal, heads)]
        tangent = [t.reshape(-1, n, w.head_dim) for t, n in zip(tangent, heads)]
        if block.q_norm is not None:
            for i, norm in ((0, block.q_norm), (1, block.k_norm)):
                primal[i], tangent[i] = self._norm_jvp(primal[i], tangent[i], norm)
        cos, sin = decoder.rope(block.rope_key, positions)
        cos, sin = cos.view(1, 1, -1), sin.view(1, 1, -1)
        for i in (0, 1):
            primal[i], tangent[i] = decoder._rotate(primal[i], cos, sin), decoder._rotate(tangent[i], cos, sin)
        return primal, tangent

    def _attention_jvp(self, q, k, v, dq, dk, dv, index: int):
        """The one query's attention (1, heads * hd) and its tangents (k, heads * hd)."""
        w = self.decoder.weights
        groups = w.n_heads // w.n_kv_heads
        k, v, dk, dv = (t.repeat_interleave(groups, dim=1) for t in (k, v, dk, dv))
        keys_t, values = self.keys_t[index][0], self.values[index][0]  # (H, hd, s), (H, s, hd)
        scores = torch.cat([torch.einsum("qhd,hds->qhs", q, keys_t), (q * k).sum(-1, keepdim=True)], -1) * w.scale
        weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)  # (1, H, s + 1)
        earlier = torch.bmm(dq.transpose(0, 1), keys_t).transpose(0, 1)  # (k, H, s)
        own = (dq * k).sum(-1, keepdim=True) + (q * dk).sum(-1, keepdim=True)
        d_scores = torch.cat([earlier, own], dim=-1) * w.scale
        d_weights = weights * (d_scores - (weights * d_scores).sum(-1, keepdim=True))
        out = torch.einsum("qhs,hsd->qhd", weights[..., :-1], values) + weights[..., -1:] * v
        d_out = (
            torch.bmm(d_weights[..., :-1].transpose(0, 1), values).transpose(0, 1)
            + d_weights[..., -1:] * v
            + weights[..., -1:] * dv
        )
        return out.reshape(1, -1), d_out.reshape(d_out.shape[0], -1)

    def _linear_out_jvp(self, weight, x, dx, norm):
        out, d_out = F.linear(x, weight), F.linear(dx, weight)
        return (out, d_out) if norm is None else self._norm_jvp(out, d_out, norm)

    def _mlp_jvp(self, block, x, dx):
        activation = self.decoder.weights.activation
        gate, up = F.linear(x, block.gate_up).chunk(2, dim=-1)
        d_gate, d_up = F.linear(dx, block.gate_up).chunk(2, dim=-1)
        activated, slope = torch.func.jvp(activation, (gate,), (torch.ones_like(gate),))
        hidden = activated * up
        d_hidden = slope * up * d_gate + activated * d_up
        return self._linear_out_jvp(block.down, hidden, d_hidden, block.mlp_out_norm)

    def cotangents(self, outputs: torch.Tensor) -> torch.Tensor:
        """``A^T Y`` for a (d, k) block of output directions, by batched reverse-mode AD."""
        pull = torch.func.vjp(self, torch.zeros_like(self.hidden))[1]
        return torch.func.vmap(lambda y: pull(y)[0], in_dims=1, out_dims=1)(outputs)


def last_position_path(decoder: Decoder, ids: torch.Tensor, layer: int) -> LastPositionPath:
    """Run the prompt ``ids`` (1-D) once: the keys and values before its last token, and the site there."""
    length = int(ids.numel())
    ids = ids.view(1, -1).to(decoder.device)
    valid = torch.ones_like(ids, dtype=torch.bool)
    positions = torch.arange(length, device=decoder.device)[None]
    cache = decoder.new_cache(1, length)
    if length > 1:
        decoder.forward(ids[:, :-1], valid[:, :-1], positions[:, :-1], cache=cache)
    hidden = decoder.forward(
        ids[:, -1:], valid[:, -1:], positions[:, -1:], cache=cache, offset=length - 1, stop_after=layer
    )
    t = length - 1
    weights = decoder.weights
    groups = weights.n_heads // weights.n_kv_heads
    keys_t, values = {}, {}
    for index in range(layer + 1, decoder.n_layers):
        window = weights.blocks[index].window
        first = 0 if window is None else max(0, t - window + 1)  # the own key is the window's last
        # clone(): the cache was written in inference mode, and these enter autograd graphs.
        keys = cache.keys[index][:, :, first:t].repeat_interleave(groups, dim=1).clone()
        keys_t[index] = keys.transpose(-1, -2).contiguous()
        values[index] = cache.values[index][:, :, first:t].repeat_interleave(groups, dim=1).clone()
    return LastPositionPath(decoder, layer, keys_t, values, hidden.view(-1).clone(), t)


class VocabularyGram:
    """The unembedding centred on its mean row, and ``M(p)`` of the module docstring for any p.

    The softmax Jacobian removes any component shared by every row of W, and the rows of W share
    a large mean; centring W first keeps the float32 products ``W A X`` from carrying that
    component only to cancel it (which cost a factor 10 in accuracy). With ``W_c`` centred,
    ``s = 0`` and ``M(p) = W_c^T W_c + V m m^T``, ``m = W_c^T p``; ``W_c^T W_c`` is formed once.
    """

    def __init__(self, unembedding: torch.Tensor):
        weights = unembedding.double()
        centred = weights - weights.mean(dim=0, keepdim=True)
        self.vocab = weights.shape[0]
        self.centred = centred.to(unembedding.dtype)
        self._centred64 = centred
        self.outer = centred.T @ centred

    def at(self, probabilities: torch.Tensor) -> torch.Tensor:
        mean = self._centred64.T @ probabilities.double()
        return self.outer + self.vocab * torch.outer(mean, mean)


# One per decoder, dropped with it: the Gram of the unembedding costs a (V, d) pass to build.
_VOCABULARY_GRAMS: weakref.WeakKeyDictionary[Decoder, VocabularyGram] = weakref.WeakKeyDictionary()


def vocabulary_gram(decoder: Decoder) -> VocabularyGram:
    if decoder not in _VOCABULARY_GRAMS:
        _VOCABULARY_GRAMS[decoder] = VocabularyGram(decoder.weights.unembedding)
    return _VOCABULARY_GRAMS[decoder]


def last_position_gram(decoder: Decoder, ids: torch.Tensor, layers: int | tuple[int, ...]) -> torch.Tensor:
    """``J^T J`` float64 of one prompt at its last token, with J the Jacobian of the log-probabilities
    w.r.t. the shift at one layer (d, d), or at each layer of a site: J = [J_1 … J_k] of the shifts
    stacked, (k d, k d), so the Gram holds the cross-layer terms J_a^T J_b a stacked δ's gain has.

    Every J_l = (I - 1 p^T) W A_l passes through the same final-normed residual, so rank J <= d - 1
    for a site of any size: one prompt leaves at least (k - 1) d + 1 of its k d directions inert.
    """
    site = (layers,) if isinstance(layers, int) else layers
    paths = [last_position_path(decoder, ids, layer) for layer in site]
    identity = torch.eye(paths[0].hidden.numel(), device=decoder.device, dtype=paths[0].hidden.dtype)
    A = torch.cat([path.tangents(identity) for path in paths], dim=1).double()
    M = vocabulary_gram(decoder).at(paths[0].probabilities())
    return symmetrised(A.T @ M @ A)


def last_position_operators(decoder: Decoder, ids: torch.Tensor, layer: int) -> tuple[Operator, Operator]:
    """Matrix-free ``J X`` and ``J^T W`` of one prompt at its last token, J = (I - 1 p^T) W A (V x d)."""
    path = last_position_path(decoder, ids, layer)
    p = path.probabilities()
    unembedding = vocabulary_gram(decoder).centred.float()

    def matvec(X: torch.Tensor) -> torch.Tensor:
        Z = unembedding @ path.tangents(X.to(unembedding))
        return Z - (p @ Z)[None, :]  # (I - 1 p^T) Z

    def rmatvec(Y: torch.Tensor) -> torch.Tensor:
        Y = Y.to(unembedding)
        projected = Y - p[:, None] * Y.sum(dim=0, keepdim=True)  # (I - p 1^T) Y
        return path.cotangents(unembedding.T @ projected)

    return matvec, rmatvec
