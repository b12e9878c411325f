"""Steered generation throughput: steering overhead and batching speed-up, measured in one run.

Prints tokens/s for, on the same model, prompts and sampling settings:
  - batched, unsteered (zero vector through the hook path is not used: no hook at all);
  - batched, steered (the residual hook adds a per-row vector);
  - one prompt at a time, steered (the paper code's approach: HF ``generate`` per prompt with a hook).
and the ratios: steering overhead (target < 5%) and batching speed-up (target >= 5x on 2 CPU cores).

Usage: python benchmarks/bench_generation.py [--model-dir resources/models/smollm2-135m] [--prompts 32]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from steerid.generate import Sampling, generate_batch, sampling_uniforms
from steerid.hooks import add_to_residual
from steerid.models import decoder_layers, load_model, prepare_model, tokenize_prompts
from steerid.prompts import load_trait


def _batched(model, tokenizer, site, prompts, deltas, sampling, batch_size) -> int:
    tokens = 0
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        uniforms = torch.stack([sampling_uniforms(0, start + i, 0, sampling.max_new_tokens) for i in range(len(chunk))])
        outputs = generate_batch(model, tokenizer, site, chunk, deltas[start : start + len(chunk)], uniforms, sampling)
        tokens += sum(len(o) for o in outputs)
    return tokens


def _unsteered(model, tokenizer, site, prompts, sampling, batch_size) -> int:
    # generate_batch always installs the hook; measure the true no-hook path by a hook-free site.
    return _batched(model, tokenizer, torch.nn.Identity(), prompts, torch.zeros(len(prompts), 1), sampling, batch_size)


def _one_at_a_time(model, tokenizer, site, prompts, delta, sampling) -> int:
    tokens = 0
    with add_to_residual(site, delta, "last"), torch.inference_mode():
        for prompt in prompts:
            ids, mask = tokenize_prompts(tokenizer, [prompt], next(model.parameters()).device)
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=sampling.temperature,
                                 top_k=0, max_new_tokens=sampling.max_new_tokens)
            tokens += int((out[0, ids.shape[1]:] != tokenizer.pad_token_id).sum())
    return tokens


def _rate(function, *args) -> float:
    best = 0.0
    for _ in range(2):
        started = time.perf_counter()
        tokens = function(*args)
        best = max(best, tokens / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=Path("resources/models/smollm2-135m"))
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--layer", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    if not (args.model_dir / "model.json").is_file():
        prepare_model("smollm2-135m", args.model_dir)
    model, tokenizer, manifest = load_model(args.model_dir, "auto", "auto")
    site = decoder_layers(model)[args.layer]
    prompts = list(load_trait("sentiment").eval["in_distribution"][: args.prompts])
    delta = torch.randn(manifest.d_model, generator=torch.Generator().manual_seed(0))
    deltas = delta.expand(len(prompts), -1)
    # Rates count the tokens each variant really produced (a row that stops early still costs
    # compute in a batch, which is part of what batching pays).
    sampling = Sampling(max_new_tokens=args.tokens, temperature=0.8)
    unsteered = _rate(_unsteered, model, tokenizer, site, prompts, sampling, args.batch_size)
    steered = _rate(_batched, model, tokenizer, site, prompts, deltas, sampling, args.batch_size)
    single = _rate(_one_at_a_time, model, tokenizer, site, prompts[: max(4, args.prompts // 4)], delta, sampling)
    overhead = unsteered / steered - 1
    speedup = steered / single
    print(f"model {manifest.spec}, layer {args.layer}, {len(prompts)} prompts x {args.tokens} tokens, "
          f"batch {args.batch_size}, {torch.get_num_threads()} threads, device {next(model.parameters()).device}")
    print(f"{'variant':<34}{'tokens/s':>10}")
    print(f"{'batched, unsteered':<34}{unsteered:>10.1f}")
    print(f"{'batched, steered':<34}{steered:>10.1f}")
    print(f"{'one prompt at a time, steered':<34}{single:>10.1f}")
    print(f"steering overhead {overhead:+.1%} (target < 5%): {'PASS' if overhead < 0.05 else 'MISS'}")
    print(f"batching speed-up {speedup:.1f}x (target >= 5x): {'PASS' if speedup >= 5 else 'MISS'}")


if __name__ == "__main__":
    main()
