"""Exact Jacobian spectra of the next-token log-probabilities with respect to the steered site.

For a prompt x, a position t and a layer l, let h be the output of decoder layer l at position t
(the site :mod:`steerid.engine.hooks` reads and steers) and

    f(u) = log_softmax(logits at the last position | h shifted by u)  in R^V,   u in R^d,

so ``J = df/du`` at u = 0 is a (V x d) matrix. Its right singular vectors with small singular
values are the directions no next-token distribution of this prompt is sensitive to (to first
order); pooled over prompts and positions, the "gain" matrix ``G = sum_i J_i^T J_i`` has a low
eigenvalue exactly where *no* prompt is sensitive.

Everything is exact differentiation in float32 (forward and reverse mode), never finite
differences: the paper's code took fp16 central differences with an absolute step of 0.01, whose
rounding noise dominates the spectrum.

Two ways to compute it
    At the last prompt token (the steered site) of a model the engine runs, the closed form of
    :mod:`steerid.engine.linearize`: only that position's path through the blocks above the
    site carries tangents (d of them, in one matrix product per linear map), and the
    vocabulary projection and softmax enter as the d x d matrix ``M(p)``, never as V outputs
    per tangent. Everywhere else (another position, another architecture), the general path
    below, through the model's own forward; ``engine=False`` forces it.

    General path: the prompt's tokens before t are run once (no grad) into a KV cache. Each
    product then runs only tokens t..T-1 from a fresh copy of that cache, with ``u`` added at
    position t by :func:`steerid.engine.hooks.add_to_residual` (position mode ``last`` of a one-token
    forward call, the same site and hook the steering experiments use), exact because positions
    before t do not depend on u. The k columns of a block are batched with ``torch.func.vmap``
    over ``jvp`` / the ``vjp`` pullback (``vectorize=False`` loops instead). CPU SDPA kernels
    have no forward-mode derivative, so the model's attention implementation is switched to
    ``eager`` for the duration of each product and restored afterwards. The prefix runs under
    ``torch.no_grad`` rather than ``torch.inference_mode``: its KV cache enters the VJP graph,
    and inference tensors cannot be saved for backward. A non-final position t costs about
    (T - t) times the last one. benchmarks/bench_generation.py times both paths.

Structure worth knowing when reading a spectrum: a model with a final RMSNorm/LayerNorm has
rank(J) <= d - 1 at every layer (the norm ignores the scale of h_L, and that direction pulls
back through the invertible d h_L / d u).

The pooled spectrum (:func:`stacked_gram_spectrum`)
    ``method="exact"`` forms every J_i^T J_i in float64 (the float64 Gram of a float32 Jacobian
    keeps small eigenvalues to ~1e-13 of the largest, far below the float32 error of J itself).
    It gives the *whole* spectrum, which effective ranks as a fraction of d need, and the
    low-gain eigenvectors the null-space perturbations are drawn from. ``method="randomized"``
    gives only the top k eigenpairs of G, from products ``G X = sum_i J_i^T (J_i X)``; with power
    iterations q it costs (2q + 2)(k + p) tangents and as many cotangents per pair, which is
    *more* than the d tangents of the exact path unless k + p << d / (4q + 4). It is meant for
    large d where only the top of the spectrum (the high-gain positive control) is needed.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel

from steerid.engine import architectures
from steerid.engine.decoder import decoder_for
from steerid.engine.hooks import add_to_residual
from steerid.engine.linearize import last_position_gram, last_position_operators
from steerid.engine.models import decoder_layers, kv_cache_argument, tokenize_prompts
from steerid.engine.site import Layers, site_label, site_layers
from steerid.linalg import (
    DEFAULT_RTOLS,
    DEFAULT_VARIANCE_FRACTIONS,
    descending_eigh,
    fix_signs,
    principal_angles,
    singular_value_rank_summary,
    singular_values_from_eigenvalues,
    subspace_overlap,
    symmetrised,
)

__all__ = [
    "GramSpectrum",
    "full_jacobian",
    "jacobian_operator",
    "randomized_svd",
    "stacked_gram_spectrum",
]

Operator = Callable[[torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------------------
# The Jacobian as a matrix-free operator
# ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _differentiable_attention(model: PreTrainedModel) -> Iterator[None]:
    """Eager attention (restored afterwards) and the math SDPA kernel: both support forward AD."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    original = getattr(getattr(model, "config", None), "_attn_implementation", None)
    switched = False
    if original not in (None, "eager") and hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
            switched = True
        except (ValueError, ImportError, NotImplementedError):  # an architecture without eager attention
            switched = False
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        if switched and original is not None:
            model.set_attn_implementation(original)


def _output_cache(output):
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _prompt_ids(tokenizer, prompt, device: torch.device) -> torch.Tensor:
    """A 1-D tensor of token ids: a text prompt is formatted and tokenized like everywhere else."""
    if isinstance(prompt, str):
        if tokenizer is None:
            raise ValueError("a text prompt needs a tokenizer; pass token ids to use none")
        ids, _ = tokenize_prompts(tokenizer, [prompt], device)
        return ids[0]
    ids = torch.as_tensor(prompt, device=device)
    if ids.ndim == 2 and ids.shape[0] == 1:
        ids = ids[0]
    if ids.ndim != 1 or ids.numel() == 0 or ids.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"prompt must be a string or a non-empty 1-D sequence of token ids, got shape {tuple(ids.shape)} "
            f"and dtype {ids.dtype}"
        )
    return ids.long()


def _check_model(model: PreTrainedModel, layer: int) -> tuple[nn.Module, int, torch.device]:
    layers = decoder_layers(model)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(layers):
        raise ValueError(f"layer {layer!r} does not exist: expected an int with 0 <= layer < {len(layers)}")
    parameter = next(model.parameters())
    if parameter.dtype != torch.float32:
        raise ValueError(
            f"Jacobians are computed in float32, but the model's weights are {parameter.dtype}; "
            "load it with dtype='float32'"
        )
    return layers[layer], int(architectures.text_config(model).hidden_size), parameter.device


def jacobian_operator(
    model: PreTrainedModel,
    tokenizer,
    layer: int,
    prompt,
    position: int = -1,
    *,
    chunk_size: int = 256,
    vectorize: bool = True,
    cache_pullback: bool = True,
    engine: bool | None = None,
) -> tuple[Operator, Operator]:
    """Matrix-free ``J`` of one (prompt, position) at the output of decoder ``layer``.

    Args:
        model: a Hugging Face causal LM with float32 weights, in eval mode.
        tokenizer: formats and tokenizes a text prompt (chat template if it has one, like
            :func:`steerid.engine.models.tokenize_prompts`); may be None when ``prompt`` is token ids.
        layer: decoder layer whose output is the site (0-based).
        prompt: a text, or a 1-D sequence of token ids used as is.
        position: token index of the shifted residual, negative from the end (-1: the last
            prompt token, the paper's site). The output is always the next-token distribution
            after the whole prompt.
        chunk_size: columns per ``vmap`` call (memory grows with it, time per column falls).
        vectorize: batch the columns with ``torch.func.vmap``; False loops one column at a time.
        cache_pullback: keep the VJP's forward graph after the first ``rmatvec`` call, so later
            calls run only the backward pass (costs that graph's memory while the operator lives).
        engine: at the last position of a model the engine runs, use its closed-form path
            (:mod:`steerid.engine.linearize`; ``None`` = whenever possible, False = never).

    Returns:
        ``(matvec, rmatvec)``: ``matvec(X)`` maps a (d, k) block (or a (d,) vector) to ``J X``
        (V, k); ``rmatvec(W)`` maps (V, k) (or (V,)) to ``J^T W`` (d, k). Both return float32
        tensors on the model's device.

    Raises:
        ValueError: a missing layer, a position outside the prompt, non-float32 weights, or a
            block of the wrong shape.
    """
    site, d, device = _check_model(model, layer)
    ids = _prompt_ids(tokenizer, prompt, device)
    length = ids.numel()
    if isinstance(position, bool) or not isinstance(position, int) or not -length <= position < length:
        raise ValueError(f"position {position!r} is outside the prompt of {length} tokens")
    t = position % length
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if _on_engine(model, t, length, engine):
        return _checked(*last_position_operators(decoder_for(model), ids, layer), d, _vocab(model), device)
    cache_key = kv_cache_argument(model)
    backbone = getattr(model, "base_model", model)

    with _differentiable_attention(model), torch.no_grad():
        prefix = _output_cache(model(input_ids=ids[None, :t], use_cache=True)) if t > 0 else None

    def log_probs(u: torch.Tensor) -> torch.Tensor:
        """f(u): one forward pass of tokens t..T-1 from a fresh copy of the prefix cache."""
        cache = copy.deepcopy(prefix) if prefix is not None else None
        with add_to_residual(site, u, positions="last"):
            if t == length - 1:
                out = model(input_ids=ids[None, t:], use_cache=False, logits_to_keep=1, **{cache_key: cache})
                return torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            # Position t alone (so it is the "last" position of this call), through the backbone
            # only: its logits are not needed.
            step = backbone(input_ids=ids[None, t : t + 1], use_cache=True, **{cache_key: cache})
        out = model(input_ids=ids[None, t + 1 :], use_cache=False, logits_to_keep=1, **{cache_key: _output_cache(step)})
        return torch.log_softmax(out.logits[0, -1].float(), dim=-1)

    u0 = torch.zeros(d, dtype=torch.float32, device=device)
    pullback: list = []

    def column_jvp(v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(log_probs, (u0,), (v,))[1]

    def apply(block: torch.Tensor, one: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        outputs = []
        for chunk in block.split(chunk_size, dim=1):
            if vectorize:
                outputs.append(torch.func.vmap(one, in_dims=1, out_dims=1)(chunk))
            else:
                outputs.append(torch.stack([one(column) for column in chunk.unbind(1)], dim=1))
        return torch.cat(outputs, dim=1)

    def matvec(X: torch.Tensor) -> torch.Tensor:
        block, vector = _as_block(X, d, "matvec", device)
        with _differentiable_attention(model), torch.no_grad():
            result = apply(block, column_jvp)
        return result[:, 0] if vector else result

    def rmatvec(W: torch.Tensor) -> torch.Tensor:
        with _differentiable_attention(model), torch.no_grad():
            if pullback:
                vocab, pull = pullback[0]
            else:
                # torch.func transforms ignore the outer no_grad; it only keeps the weights off the graph.
                primal, pull = torch.func.vjp(log_probs, u0)[:2]
                vocab = primal.shape[0]
                if cache_pullback:
                    pullback.append((vocab, pull))
            block, vector = _as_block(W, vocab, "rmatvec", device)
            result = apply(block, lambda w: pull(w)[0])
        return result[:, 0] if vector else result

    return matvec, rmatvec


def _on_engine(model: PreTrainedModel, position: int, length: int, engine: bool | None) -> bool:
    """Whether the closed-form last-position path applies (and is wanted)."""
    return engine is not False and position == length - 1 and architectures.supported(model)


def _vocab(model: PreTrainedModel) -> int:
    return int(architectures.text_config(model).vocab_size)


def _checked(matvec: Operator, rmatvec: Operator, d: int, vocab: int, device) -> tuple[Operator, Operator]:
    """Operators that validate their blocks and accept vectors, like the Hugging Face path's."""

    def checked(operator: Operator, rows: int, who: str) -> Operator:
        def apply(X):
            block, vector = _as_block(X, rows, who, device)
            result = operator(block)
            return result[:, 0] if vector else result

        return apply

    return checked(matvec, d, "matvec"), checked(rmatvec, vocab, "rmatvec")


def _as_block(X, rows: int | None, who: str, device: torch.device) -> tuple[torch.Tensor, bool]:
    X = torch.as_tensor(X)
    vector = X.ndim == 1
    block = X[:, None] if vector else X
    if block.ndim != 2 or (rows is not None and block.shape[0] != rows) or block.shape[1] == 0:
        raise ValueError(f"{who}: expected a ({rows}, k) block or a ({rows},) vector, got shape {tuple(X.shape)}")
    if not torch.isfinite(block).all():
        raise ValueError(f"{who}: the block contains NaN or infinite values")
    return block.to(device=device, dtype=torch.float32), vector


def full_jacobian(matvec: Operator, d: int, chunk_size: int = 1024) -> torch.Tensor:
    """The explicit (V, d) Jacobian from d JVPs (``matvec`` of the identity, ``chunk_size`` columns at a time)."""
    columns = []
    for start in range(0, d, chunk_size):
        stop = min(start + chunk_size, d)
        identity = torch.zeros(d, stop - start)
        identity[torch.arange(start, stop), torch.arange(stop - start)] = 1.0
        columns.append(matvec(identity))
    return torch.cat(columns, dim=1)


# ----------------------------------------------------------------------------------------------
# Randomized SVD (Halko, Martinsson and Tropp 2011), matrix-free
# ----------------------------------------------------------------------------------------------


def _orthonormal(Y: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(Y, mode="reduced")[0]


def randomized_svd(
    matvec: Operator,
    rmatvec: Operator,
    d: int,
    k: int,
    oversample: int = 10,
    power_iters: int = 2,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k singular values (descending) and right singular vectors (d, k) of a matrix-free A.

    ``matvec(X)`` = A X for (d, l) blocks, ``rmatvec(W)`` = A^T W for (m, l) blocks. The range
    is sampled with l = min(k + oversample, d) Gaussian columns (a CPU generator seeded with
    ``seed``, so the result does not depend on the device), refined by ``power_iters`` power
    iterations, and every product is re-orthonormalised by QR (without it the power iterations
    lose all but the top direction to round-off). The small (d, l) SVD runs in float64. Each
    right vector's sign is fixed (largest-magnitude entry positive), so the output is
    deterministic for a seed. Cost: power_iters + 1 products with A and as many with A^T, on l
    columns each.
    """
    for name, value in (("d", d), ("k", k), ("oversample", oversample), ("power_iters", power_iters)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"randomized_svd: {name}={value!r} must be a non-negative int")
    if not 1 <= k <= d:
        raise ValueError(f"randomized_svd: k={k} must satisfy 1 <= k <= d={d}")
    width = min(k + oversample, d)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    omega = torch.randn(d, width, generator=generator, dtype=torch.float32)
    Q = _orthonormal(matvec(omega))
    for _ in range(power_iters):
        Z = _orthonormal(rmatvec(Q))
        Q = _orthonormal(matvec(Z))
    Bt = rmatvec(Q).double()  # (d, l) = (Q^T A)^T
    U, S, _ = torch.linalg.svd(Bt, full_matrices=False)
    U = torch.from_numpy(fix_signs(U[:, :k].cpu().numpy())).to(U.device)
    return S[:k].to(torch.float32), U.to(torch.float32)


# ----------------------------------------------------------------------------------------------
# The pooled gain matrix G = sum_i J_i^T J_i
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GramSpectrum:
    """Spectrum of ``G = sum_i J_i^T J_i`` over (prompt, position) pairs.

    ``eigenvalues`` (descending, float64) are the squared singular values of the stacked
    Jacobian [J_1; J_2; ...]; ``eigenvectors`` (d, m) are its right singular vectors (m = d when
    ``complete``). With ``method="exact"`` each pair's own singular values (n_pairs, d) and top
    right singular vectors (n_pairs, d, k) are kept for stability across prompts.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    d: int
    method: str
    complete: bool
    pairs: tuple[tuple[int, int], ...]  # (prompt index, absolute token position)
    pair_singular_values: np.ndarray | None = None
    pair_top_vectors: np.ndarray | None = None

    @property
    def singular_values(self) -> np.ndarray:
        """Singular values of the stacked Jacobian: sqrt of the eigenvalues clipped at 0."""
        return singular_values_from_eigenvalues(self.eigenvalues)

    def summary(
        self,
        rtols: Sequence[float] = DEFAULT_RTOLS,
        variance_fractions: Sequence[float] = DEFAULT_VARIANCE_FRACTIONS,
    ) -> dict:
        """:func:`~steerid.linalg.singular_value_rank_summary` of the stacked σ (lower bounds if not complete)."""
        summary = singular_value_rank_summary(
            self.singular_values, self.d, rtols, variance_fractions if self.complete else ()
        )
        summary |= {"n_pairs": len(self.pairs), "method": self.method, "complete": self.complete}
        return summary

    def stability(self, k: int) -> dict:
        """Principal angles between each pair's top-k right singular subspace and the pooled top-k.

        Returns the per-pair largest and mean angle (radians) and the mean squared cosine
        (:func:`subspace_overlap`), with the value a uniformly random k-subspace would have (k / d).
        """
        if self.pair_top_vectors is None:
            raise ValueError("stability needs the per-pair vectors of method='exact'")
        if not 1 <= k <= min(self.pair_top_vectors.shape[2], self.eigenvectors.shape[1]):
            raise ValueError(
                f"k={k} must be between 1 and {self.pair_top_vectors.shape[2]} (the kept per-pair vectors)"
            )
        pooled = self.eigenvectors[:, :k]
        angles = np.stack([principal_angles(vectors[:, :k], pooled) for vectors in self.pair_top_vectors])
        overlaps = np.array([subspace_overlap(vectors[:, :k], pooled) for vectors in self.pair_top_vectors])
        return {
            "k": k,
            "max_angle": angles.max(axis=1).tolist(),
            "mean_angle": angles.mean(axis=1).tolist(),
            "overlap": overlaps.tolist(),
            "random_overlap": k / self.d,
        }


def stacked_gram_spectrum(
    model: PreTrainedModel,
    tokenizer,
    layer: Layers,
    prompts: Sequence,
    positions: Sequence[int] = (-1,),
    *,
    method: str = "exact",
    k: int = 64,
    oversample: int = 10,
    power_iters: int = 2,
    seed: int = 0,
    pair_top_k: int = 16,
    chunk_size: int = 256,
    max_jacobian_elements: int = 2**28,
    progress: bool = False,
    engine: bool | None = None,
) -> GramSpectrum:
    """Eigen-decomposition of ``G = sum_i J_i^T J_i`` over every (prompt, position) pair.

    Args:
        prompts: texts or 1-D token-id sequences (see :func:`jacobian_operator`).
        positions: token positions per prompt (negative from the end); one Jacobian per pair.
        method: ``"exact"``: every J_i from d JVPs, G in float64, the whole spectrum (see the
            module docstring for the cost). ``"randomized"``: the top ``k`` eigenpairs only, by
            :func:`randomized_svd` of the symmetric operator X -> sum_i J_i^T (J_i X).
        pair_top_k: (exact) how many of each pair's top right singular vectors to keep.
        max_jacobian_elements: (exact) above this V * d, J_i is never held whole: its Gram is
            built from d columns ``J_i^T (J_i e_j)`` (d JVPs and d VJPs: 3x the time, O(V * chunk) memory).
        progress: show a tqdm bar over the pairs.
        engine: last-position pairs of a model the engine runs take its closed-form path (see
            :func:`jacobian_operator`); None = whenever possible, False = never.
        layer: one layer, or a steering site of several: then J is the Jacobian w.r.t. the stacked
            shifts of all its layers (:func:`last_position_gram`), G is (k d, k d), and only the
            exact method on the engine's last-position path computes it.

    Returns:
        a :class:`GramSpectrum`, eigenvalues descending.
    """
    if method not in ("exact", "randomized"):
        raise ValueError(f"method {method!r} is not supported; expected 'exact' or 'randomized'")
    if len(prompts) == 0 or len(positions) == 0:
        raise ValueError("stacked_gram_spectrum needs at least one prompt and one position")
    site = site_layers(layer, len(decoder_layers(model)))
    _, width, device = _check_model(model, site[0])
    d = width * len(site)
    on_engine = engine is not False and architectures.supported(model)
    if len(site) > 1 and not (method == "exact" and list(positions) == [-1] and on_engine):
        raise ValueError(
            f"the joint Jacobian of the site at layers {list(site)} is computed exactly at the last prompt token "
            f"by the engine only; got method {method!r}, positions {list(positions)}, engine {engine} "
            f"({'supported' if architectures.supported(model) else 'not supported'} for this model)"
        )
    vocab = int(architectures.text_config(model).vocab_size)
    operators, pairs = [], []
    for index, prompt in enumerate(prompts):
        ids = _prompt_ids(tokenizer, prompt, device)
        for position in positions:
            if not -ids.numel() <= position < ids.numel():
                raise ValueError(f"position {position} is outside prompt {index} ({ids.numel()} tokens)")
            pairs.append((index, position % ids.numel(), ids))

    def operator(ids, position):
        return jacobian_operator(
            model,
            tokenizer,
            layer,
            ids,
            position,
            chunk_size=chunk_size,
            cache_pullback=method == "exact",
            engine=engine,
        )

    def pair_gram(ids, position) -> torch.Tensor:
        if _on_engine(model, position, ids.numel(), engine):
            return last_position_gram(decoder_for(model), ids, site).to(device)
        matvec, rmatvec = operator(ids, position)
        if vocab * d <= max_jacobian_elements:
            J = full_jacobian(matvec, d, chunk_size)
            G_i = torch.zeros(d, d, dtype=torch.float64, device=device)
            for rows in J.split(8192, dim=0):
                rows = rows.double()
                G_i += rows.T @ rows
            return G_i
        G_i = torch.cat([rmatvec(matvec(block)).double() for block in torch.eye(d).split(chunk_size, dim=1)], 1)
        return symmetrised(G_i)

    iterate = pairs
    if progress:
        from tqdm import tqdm

        iterate = tqdm(pairs, desc=f"Jacobians L{site_label(site)}")

    if method == "randomized":
        operators = [operator(ids, position) for _, position, ids in pairs]

        def gram(X: torch.Tensor) -> torch.Tensor:
            total = torch.zeros(d, X.shape[1], dtype=torch.float64, device=device)
            for matvec, rmatvec in operators:
                total += rmatvec(matvec(X)).double()
            return total.float()

        values, vectors = randomized_svd(gram, gram, d, min(k, d), oversample, power_iters, seed)
        return GramSpectrum(
            values.double().cpu().numpy(),
            vectors.double().cpu().numpy(),
            d,
            method,
            k >= d,
            tuple((i, p) for i, p, _ in pairs),
        )

    G = torch.zeros(d, d, dtype=torch.float64, device=device)
    pair_values, pair_vectors = [], []
    for _, position, ids in iterate:
        G_i = pair_gram(ids, position)
        G += G_i
        pair_eigenvalues, pair_eigenvectors = descending_eigh(G_i.cpu().numpy(), fixed_signs=True)
        pair_values.append(singular_values_from_eigenvalues(pair_eigenvalues))
        pair_vectors.append(pair_eigenvectors[:, :pair_top_k])
    eigenvalues, eigenvectors = descending_eigh(G.cpu().numpy(), fixed_signs=True)
    return GramSpectrum(
        eigenvalues,
        eigenvectors,
        d,
        method,
        True,
        tuple((i, p) for i, p, _ in pairs),
        np.stack(pair_values),
        np.stack(pair_vectors),
    )
