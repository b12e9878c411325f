"""The model engine against its peers, measured in one run: generation, sampling coupling, Jacobians, dumps.

For each dtype (bfloat16 only where this machine has native bf16 matrix units; a note otherwise):

  - the GEMM roofline at the model's own shapes: one decode step's matrix products at the batch,
    timed with torch.matmul here, as generated tokens/s;
  - steerid's engine on an E1-like workload (prompts x conditions x samples, steered, sampled);
  - Hugging Face ``model.generate`` on the same rows (same prompts, batch, sampling, new tokens);
  - steerid's Hugging Face path (the model's forward with the steering hook, no shared prefix);
  - the one-prompt-at-a-time loop (``generate`` per prompt with the hook: the paper code's approach).

Then, in float32: the coupling of two near-identical conditions under three samplers; the Jacobian
Gram per prompt by the engine's closed-form path, the general path (today's algorithm before the
engine) and plain autograd of the full forward, against the float32 floor of its matrix products;
and activation dumps at L/2 stopping at the site, against the full forward, and against a bare
forward of the same blocks.

Usage: python benchmarks/bench_generation.py [--model-dir resources/models/smollm2-135m] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from steerid.engine.activations import last_token
from steerid.engine.decoder import decoder_for
from steerid.engine.generate import generate_rows, prompt_token_ids
from steerid.engine.generation import Row
from steerid.engine.hooks import add_to_residual, capture_residual
from steerid.engine.jacobian import stacked_gram_spectrum
from steerid.engine.linearize import last_position_gram, vocabulary_gram
from steerid.engine.memory import batch_rows_for
from steerid.engine.models import decoder_layers, has_native_bfloat16, load_model, prepare_model, tokenize_prompts
from steerid.engine.sampling import Sampling, choose_tokens, gumbel_noise
from steerid.prompts import load_trait

TEMPERATURE = 0.8


def best_of(repeats: int, function, *args, **kwargs) -> tuple[float, object]:
    """(fastest wall time, result of that run)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        value = function(*args, **kwargs)
        elapsed = time.perf_counter() - started
        if elapsed < best:
            best, result = elapsed, value
    return best, result


# -- generation ------------------------------------------------------------------------------------


def gemm_step_seconds(decoder, rows: int, dtype: torch.dtype) -> float:
    """Time of one decode step's matrix products at ``rows`` rows, from torch.matmul at those shapes."""
    w = decoder.weights
    shapes = [(b.qkv.shape[1], b.qkv.shape[0]) for b in w.blocks] + [(b.out.shape[1], b.out.shape[0]) for b in w.blocks]
    shapes += [(b.gate_up.shape[1], b.gate_up.shape[0]) for b in w.blocks] + [
        (b.down.shape[1], b.down.shape[0]) for b in w.blocks
    ]
    shapes.append((w.unembedding.shape[1], w.unembedding.shape[0]))
    total = 0.0
    for (k, n), count in _counts(shapes).items():
        a, b = torch.randn(rows, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
        seconds, _ = best_of(5, torch.matmul, a, b)
        total += seconds * count
    return total


def _counts(shapes):
    counts: dict = {}
    for shape in shapes:
        counts[shape] = counts.get(shape, 0) + 1
    return counts


def workload(tokenizer, n_prompts: int, n_conditions: int, n_samples: int, d: int):
    prompts = list(load_trait("sentiment").eval["in_distribution"][:n_prompts])
    deltas = torch.randn(n_conditions, d, generator=torch.Generator().manual_seed(0)) * 3
    deltas[0] = 0
    rows = [Row(p, s, c) for p in range(n_prompts) for c in range(n_conditions) for s in range(n_samples)]
    return prompts, rows, deltas


def engine_rate(model, tokenizer, layer, prompts, rows, deltas, sampling, batch) -> tuple[float, int]:
    seconds, outputs = best_of(
        1, generate_rows, model, tokenizer, layer, prompts, rows, deltas, sampling, 0, batch_size=batch, engine=True
    )
    tokens = sum(len(o) for o in outputs)
    return tokens / seconds, tokens


def hf_path_rate(model, tokenizer, layer, prompts, rows, deltas, sampling, batch) -> float:
    seconds, outputs = best_of(
        1, generate_rows, model, tokenizer, layer, prompts, rows, deltas, sampling, 0, batch_size=batch, engine=False
    )
    return sum(len(o) for o in outputs) / seconds


@torch.inference_mode()
def hf_generate_rate(model, tokenizer, texts, sampling) -> float:
    ids, mask = tokenize_prompts(tokenizer, texts, next(model.parameters()).device)

    def run():
        return model.generate(
            input_ids=ids,
            attention_mask=mask,
            do_sample=True,
            temperature=sampling.temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
        )

    seconds, out = best_of(1, run)
    new = out[:, ids.shape[1] :]
    return int((new != tokenizer.pad_token_id).sum()) / seconds


@torch.inference_mode()
def one_at_a_time_rate(model, tokenizer, layer, texts, delta, sampling) -> float:
    site = decoder_layers(model)[layer]
    tokens, started = 0, time.perf_counter()
    with add_to_residual(site, delta, "last"):
        for text in texts:
            ids, mask = tokenize_prompts(tokenizer, [text], next(model.parameters()).device)
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=True,
                temperature=sampling.temperature,
                top_k=0,
                max_new_tokens=sampling.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
            )
            tokens += int((out[0, ids.shape[1] :] != tokenizer.pad_token_id).sum())
    return tokens / (time.perf_counter() - started)


def generation_section(model_dir: Path, dtype_name: str, args) -> dict:
    model, tokenizer, manifest = load_model(model_dir, "auto", dtype_name)
    decoder = decoder_for(model)
    sampling = Sampling(args.tokens, TEMPERATURE)
    prompts, rows, deltas = workload(tokenizer, args.prompts, args.conditions, args.samples, manifest.d_model)
    capacity = max(len(p) for p in prompt_token_ids(tokenizer, prompts)) + args.tokens
    batch = min(len(rows), batch_rows_for(decoder, capacity))
    roofline = batch / gemm_step_seconds(decoder, batch, decoder.dtype)
    rate, tokens = engine_rate(model, tokenizer, args.layer, prompts, rows, deltas, sampling, batch)
    first_batch = [prompts[row.prompt] for row in rows[:batch]]
    hf = hf_generate_rate(model, tokenizer, first_batch, sampling)
    hf_path = hf_path_rate(
        model, tokenizer, args.layer, prompts, rows[: args.hf_path_rows], deltas, sampling, min(batch, 64)
    )
    single = one_at_a_time_rate(model, tokenizer, args.layer, prompts[:4], deltas[1], sampling)
    return {
        "dtype": dtype_name,
        "batch": batch,
        "rows": len(rows),
        "tokens": tokens,
        "roofline": roofline,
        "engine": rate,
        "hf_generate": hf,
        "hf_path": hf_path,
        "one_at_a_time": single,
        "device": str(decoder.device),
    }


# -- coupling --------------------------------------------------------------------------------------


def sorted_inverse_cdf(logits, uniforms):
    """The sampler steerid used before the engine (inverse CDF over the probability-sorted vocabulary)."""
    probs = torch.softmax(logits.double() / TEMPERATURE, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    cdf = sorted_probs.cumsum(dim=-1)
    picks = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(-1), right=True).clamp(max=probs.shape[1] - 1)
    return order.gather(-1, picks).squeeze(-1)


def fixed_order_inverse_cdf(logits, uniforms):
    """Inverse CDF over the token ids in their fixed order."""
    cdf = torch.softmax(logits.double() / TEMPERATURE, dim=-1).cumsum(dim=-1)
    picks = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(-1), right=True)
    return picks.clamp(max=logits.shape[1] - 1).squeeze(-1)


@torch.inference_mode()
def coupling_section(model, tokenizer, layer, draws: int) -> dict:
    site = decoder_layers(model)[layer]
    generator = torch.Generator().manual_seed(0)
    d = next(model.parameters()).shape[-1]
    v, delta = torch.randn(d, generator=generator), torch.randn(d, generator=generator)
    delta -= (delta @ v) / (v @ v) * v
    v, delta = v / v.norm() * 8, delta / delta.norm() * 8
    prompts = list(load_trait("sentiment").eval["in_distribution"][:8])
    ids, mask = tokenize_prompts(tokenizer, prompts, torch.device("cpu"))

    def logits(shift):
        with add_to_residual(site, shift, "last"):
            return model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1].float()

    a, b = logits(v), logits(v + delta)
    same = {"gumbel_max": 0.0, "fixed_order_cdf": 0.0, "sorted_cdf": 0.0}
    for row in range(len(prompts)):
        xa, xb = a[row].expand(draws, -1), b[row].expand(draws, -1)
        noise = torch.stack([gumbel_noise(1, row, s, 0, a.shape[1]) for s in range(draws)])
        sampling = Sampling(1, TEMPERATURE)
        same["gumbel_max"] += float(
            (choose_tokens(xa, noise, sampling) == choose_tokens(xb, noise, sampling)).float().mean()
        )
        uniforms = torch.rand(draws, generator=generator, dtype=torch.float64)
        for name, sampler in (("fixed_order_cdf", fixed_order_inverse_cdf), ("sorted_cdf", sorted_inverse_cdf)):
            same[name] += float((sampler(xa, uniforms) == sampler(xb, uniforms)).float().mean())
    tv = 0.5 * (torch.softmax(a / TEMPERATURE, -1) - torch.softmax(b / TEMPERATURE, -1)).abs().sum(-1)
    return {**{k: v / len(prompts) for k, v in same.items()}, "maximal": float((1 - tv).mean())}


# -- Jacobians -------------------------------------------------------------------------------------


def jacobian_floor_seconds(decoder, layer: int) -> tuple[float, float]:
    """(seconds, GFLOP) of the matrix products d tangents must go through in the blocks above ``layer``."""
    d = decoder.d_model
    total, flops = 0.0, 0.0
    for block in decoder.weights.blocks[layer + 1 :]:
        for weight in (block.qkv, block.out, block.gate_up, block.down):
            a, b = torch.randn(d, weight.shape[1]), weight.T.contiguous()
            seconds, _ = best_of(5, torch.matmul, a, b)
            total += seconds
            flops += 2.0 * d * weight.shape[0] * weight.shape[1]
    return total, flops / 1e9


def autograd_gram_seconds(model, tokenizer, layer: int, prompt: str) -> float:
    """J by plain forward-mode autograd of the full forward (d tangents through every position), then J^T J."""
    from steerid.engine.jacobian import _differentiable_attention

    ids, _ = tokenize_prompts(tokenizer, [prompt], torch.device("cpu"))
    site = decoder_layers(model)[layer]
    where = torch.zeros(ids.shape, dtype=torch.bool)
    where[0, -1] = True

    def f(u):
        with add_to_residual(site, u, where):
            return torch.log_softmax(model(input_ids=ids, logits_to_keep=1).logits[0, -1], dim=-1)

    d = int(model.config.hidden_size)
    zero, tangents = torch.zeros(d), torch.eye(d)

    def directional(t):
        return torch.func.jvp(f, (zero,), (t,))[1]

    started = time.perf_counter()
    with _differentiable_attention(model), torch.no_grad():
        # 64 tangents per batched JVP: all 576 at once would hold 576 copies of every activation.
        J = torch.cat([torch.func.vmap(directional)(tangents[i : i + 64]) for i in range(0, d, 64)]).T.double()
    _ = J.T @ J
    return time.perf_counter() - started


def jacobian_section(model, tokenizer, layer: int, n_prompts: int, autograd: bool) -> dict:
    decoder = decoder_for(model)
    prompts = list(load_trait("sentiment").eval["in_distribution"][:n_prompts])
    once, _ = best_of(1, vocabulary_gram, decoder)
    ids = [tokenize_prompts(tokenizer, [p], torch.device("cpu"))[0][0] for p in prompts]
    new, _ = best_of(1, lambda: [last_position_gram(decoder, i, layer) for i in ids])
    old, _ = best_of(1, stacked_gram_spectrum, model, tokenizer, layer, prompts, (-1,), engine=False)
    floor, gflop = jacobian_floor_seconds(decoder, layer)
    result = {
        "prompts": n_prompts,
        "new": new / n_prompts,
        "old": old / n_prompts,
        "floor": floor,
        "gflop": gflop,
        "vocabulary_once": once,
    }
    if autograd:
        result["autograd"] = autograd_gram_seconds(model, tokenizer, layer, prompts[0])
    return result


# -- dumps -----------------------------------------------------------------------------------------


@torch.inference_mode()
def full_forward_dump(model, tokenizer, layer: int, texts, rows: int):
    """Today's dump before the engine: every block and the last position's logits run, the site captured."""
    site = decoder_layers(model)[layer]
    blocks = []
    for start in range(0, len(texts), rows):
        ids, mask = tokenize_prompts(tokenizer, texts[start : start + rows], torch.device("cpu"))
        with capture_residual(site) as captured:
            model(input_ids=ids, attention_mask=mask, use_cache=False, logits_to_keep=1)
        blocks.append(captured[0][:, -1].float())
    return torch.cat(blocks)


@torch.inference_mode()
def bare_forward(decoder, tokenizer, layer: int, texts, rows: int):
    for start in range(0, len(texts), rows):
        ids, mask = tokenize_prompts(tokenizer, texts[start : start + rows], torch.device("cpu"))
        decoder.forward(ids, mask.bool(), (mask.cumsum(-1) - 1).clamp(min=0), stop_after=layer)


def dump_section(model, tokenizer, layer: int, n_texts: int) -> dict:
    pairs = load_trait("sentiment").pairs
    texts = [getattr(pair, pole) for pair in pairs for pole in ("positive", "negative")][:n_texts]
    rows = 32
    tokens = sum(len(t) for t in prompt_token_ids(tokenizer, texts))
    today, _ = best_of(2, full_forward_dump, model, tokenizer, layer, texts, rows)
    engine, _ = best_of(2, last_token, model, tokenizer, layer, texts, rows)
    bare, _ = best_of(2, bare_forward, decoder_for(model), tokenizer, layer, texts, rows)
    return {
        "texts": n_texts,
        "tokens": tokens,
        "today": tokens / today,
        "engine": tokens / engine,
        "bare": tokens / bare,
    }


# -- report ----------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(generation: list[dict], coupling: dict, jacobian: dict, dumps: dict, notes: list[str]) -> None:
    print("## Generation (tokens/s; E1-like rows = prompts x conditions x samples, sampled at T = 0.8)\n")
    print(
        "| dtype | device | rows | batch | tokens | GEMM roofline | steerid engine | HF generate | steerid HF path | "
        "one at a time | engine / HF generate | engine / roofline |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for g in generation:
        print(
            f"| {g['dtype']} | {g['device']} | {g['rows']} | {g['batch']} | {g['tokens']} | {g['roofline']:.0f} | "
            f"{g['engine']:.0f} | {g['hf_generate']:.0f} | {g['hf_path']:.0f} | {g['one_at_a_time']:.0f} | "
            f"{g['engine'] / g['hf_generate']:.2f}x | {g['engine'] / g['roofline']:.0%} |"
        )
    print("\n## Coupling of v vs v + δ (fraction of identical tokens, shared noise)\n")
    print(
        "| Gumbel-max (steerid) | inverse CDF, fixed order | inverse CDF, sorted (before) | maximal coupling (1 - TV) |"
    )
    print("|---|---|---|---|")
    print(
        f"| {coupling['gumbel_max']:.3f} | {coupling['fixed_order_cdf']:.3f} | {coupling['sorted_cdf']:.3f} | "
        f"{coupling['maximal']:.3f} |"
    )
    print(f"\n## Jacobian Gram J^T J per prompt (float32, last prompt token, {jacobian['prompts']} prompts)\n")
    print(
        "| engine path s | previous algorithm s | full autograd s | float32 floor s (GFLOP) | previous / engine | "
        "engine / floor | W^T W once s |"
    )
    print("|---|---|---|---|---|---|---|")
    autograd = f"{jacobian['autograd']:.1f}" if "autograd" in jacobian else "not run"
    print(
        f"| {jacobian['new']:.2f} | {jacobian['old']:.2f} | {autograd} | {jacobian['floor']:.2f} "
        f"({jacobian['gflop']:.0f}) | {jacobian['old'] / jacobian['new']:.1f}x | "
        f"{jacobian['new'] / jacobian['floor']:.2f}x | {jacobian['vocabulary_once']:.2f} |"
    )
    print(f"\n## Activation dumps at the site (tokens/s, {dumps['texts']} contrast texts, {dumps['tokens']} tokens)\n")
    print(
        "| full forward (before) | stopped at the site | bare forward of the same blocks | stopped / before | "
        "stopped / bare |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {dumps['today']:.0f} | {dumps['engine']:.0f} | {dumps['bare']:.0f} | "
        f"{dumps['engine'] / dumps['today']:.2f}x | {dumps['engine'] / dumps['bare']:.2f} |"
    )
    print("\n## Targets\n")
    by_dtype = {g["dtype"]: g for g in generation}
    fp32 = by_dtype["float32"]
    print(
        f"- engine >= 2x HF generate (float32): {fp32['engine'] / fp32['hf_generate']:.2f}x "
        f"{verdict(fp32['engine'] >= 2 * fp32['hf_generate'])}"
    )
    print(
        f"- engine >= 50% of the float32 roofline: {fp32['engine'] / fp32['roofline']:.0%} "
        f"{verdict(fp32['engine'] >= 0.5 * fp32['roofline'])}"
    )
    if "bfloat16" in by_dtype:
        bf16 = by_dtype["bfloat16"]
        print(
            f"- engine >= 2x HF generate (bfloat16): {bf16['engine'] / bf16['hf_generate']:.2f}x "
            f"{verdict(bf16['engine'] >= 2 * bf16['hf_generate'])}"
        )
        print(
            f"- bfloat16 >= 2x float32: {bf16['engine'] / fp32['engine']:.2f}x "
            f"{verdict(bf16['engine'] >= 2 * fp32['engine'])}"
        )
    print(
        f"- Jacobian >= 5x the previous algorithm: {jacobian['old'] / jacobian['new']:.1f}x "
        f"{verdict(jacobian['old'] >= 5 * jacobian['new'])}"
    )
    print(
        f"- Jacobian within 2x of the float32 floor: {jacobian['new'] / jacobian['floor']:.2f}x "
        f"{verdict(jacobian['new'] <= 2 * jacobian['floor'])}"
    )
    print(
        f"- dumps at L/2 >= 1.8x before: {dumps['engine'] / dumps['today']:.2f}x "
        f"{verdict(dumps['engine'] >= 1.8 * dumps['today'])}"
    )
    print(
        f"- coupling no weaker than before: {coupling['gumbel_max']:.3f} vs {coupling['sorted_cdf']:.3f} "
        f"{verdict(coupling['gumbel_max'] >= coupling['sorted_cdf'])}"
    )
    for note in notes:
        print(f"\nNote: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("resources/models/smollm2-135m"))
    parser.add_argument("--prompts", type=int, default=15)
    parser.add_argument("--conditions", type=int, default=17)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--layer", type=int, default=15)
    parser.add_argument("--hf-path-rows", type=int, default=128)
    parser.add_argument("--jacobian-prompts", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="a smaller workload, for development")
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.conditions, args.tokens, args.hf_path_rows, args.jacobian_prompts = 4, 8, 16, 32, 1
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    if not (args.model_dir / "model.json").is_file():
        prepare_model("smollm2-135m", args.model_dir)
    print(f"# steerid model engine benchmark ({torch.get_num_threads()} threads, torch {torch.__version__})\n")
    dtypes, notes = ["float32"], []
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if has_native_bfloat16(device):
        dtypes.append("bfloat16")
    else:
        notes.append(
            "bfloat16 not measured: this CPU has no native bf16 matrix units (neither AVX-512 BF16 nor "
            "AMX), so torch emulates bf16 products and `runtime.dtype: auto` picks float32 here."
        )
    generation = [generation_section(args.model_dir, dtype, args) for dtype in dtypes]
    model, tokenizer, _ = load_model(args.model_dir, "cpu", "float32")
    coupling = coupling_section(model, tokenizer, args.layer, 500 if args.quick else 2000)
    jacobian = jacobian_section(model, tokenizer, args.layer, args.jacobian_prompts, autograd=not args.quick)
    dumps = dump_section(model, tokenizer, args.layer, 32 if args.quick else 128)
    report(generation, coupling, jacobian, dumps, notes)


if __name__ == "__main__":
    main()
