"""One function per workflow stage: files and plain parameters in, one output file out.

The workflow scripts only translate ``snakemake.input/output/params`` into these calls, so every
stage runs and is tested without Snakemake. A stage reads nothing but its arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from tqdm import tqdm

from steerid import activations, perturb, plots, report, spectrum, store, vectors
from steerid.generate import Sampling, generate_conditions
from steerid.io import atomic_path, atomic_write_json
from steerid.logs import log
from steerid.models import check_layer, decoder_layers, load_model, prepare_model
from steerid.prompts import load_background, read_prompt_set, write_prompt_set
from steerid.scoring import get_scorer
from steerid.stats import compare_conditions, margin_from_baseline_sd, power_report, tost_paired, verdict
from steerid.streaming import covariance_from_hdf5

BASELINE, REFERENCE = "baseline", "v"
PERTURBATION_TYPES = ("orthogonal", "null", "top")
# Perturbation subspaces come from the data manifold without the attention-sink outliers.
PERTURBATION_VIEW = "excluding_sinks"


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs: device ('auto' = CUDA if present), dtype ('auto'), threads, batch size."""

    device: str = "auto"
    dtype: str = "auto"
    threads: int = 1
    batch_size: int = 16


def _open_model(model_dir: str, layer: int, runtime: Runtime):
    torch.set_num_threads(runtime.threads)
    model, tokenizer, manifest = load_model(Path(model_dir), runtime.device, runtime.dtype)
    check_layer(manifest, layer)
    log.info("loaded %s (%s, %d layers, d=%d) on %s", manifest.spec, manifest.architecture,
             manifest.n_layers, manifest.d_model, next(model.parameters()).device)
    return model, tokenizer, manifest, decoder_layers(model)[layer]


def _model_fields(model, manifest, layer: int) -> dict:
    parameter = next(model.parameters())
    return {"model": manifest.spec, "model_revision": manifest.revision, "architecture": manifest.architecture,
            "layer": layer, "site": f"output of decoder layer {layer}", "dtype": str(parameter.dtype).removeprefix("torch."),
            "device": str(parameter.device)}


def prepare(spec: str, revision: str | None, model_dir: str) -> None:
    """Resolve a model spec into ``model_dir`` (model.json and, for embedded models, the weights)."""
    manifest = prepare_model(spec, Path(model_dir), revision)
    log.info("prepared %s: %s", spec, manifest)


def prompts(trait: str, n_pairs: int, n_eval: int, environments: Sequence[str], seed: int, output: str) -> None:
    """Select the trait's contrast pairs and evaluation prompts."""
    write_prompt_set(output, trait=trait, n_pairs=n_pairs, n_eval=n_eval, environments=environments, seed=seed)


def dump_contrast(model_dir: str, prompt_set: str, layer: int, runtime: Runtime, params: Mapping, output: str) -> None:
    """Last-prompt-token activations of the positive and negative contrast prompts."""
    model, tokenizer, manifest, site = _open_model(model_dir, layer, runtime)
    pairs = read_prompt_set(prompt_set)["pairs"]
    arrays = {pole: activations.last_token(model, tokenizer, site, [p[pole] for p in pairs], runtime.batch_size)
              for pole in ("positive", "negative")}
    attrs = store.provenance(params, positions="last prompt token", **_model_fields(model, manifest, layer))
    store.write(output, arrays, attrs)
    log.info("wrote %d contrast pairs of d=%d", len(pairs), arrays["positive"].shape[1])


def dump_background(model_dir: str, layer: int, n_texts: int, max_length: int, runtime: Runtime,
                    params: Mapping, output: str) -> None:
    """Token-level activations of the background texts, streamed to HDF5 batch by batch."""
    model, tokenizer, manifest, site = _open_model(model_dir, layer, runtime)
    texts = load_background()[:n_texts]
    attrs = store.provenance(params, positions="all prompt tokens", **_model_fields(model, manifest, layer))
    with store.create(output, attrs) as handle:
        writer = store.RowWriter(handle)
        batches = activations.token_level(model, tokenizer, site, texts, runtime.batch_size, max_length)
        for hidden, position, text_index in tqdm(batches, desc="background", total=-(-len(texts) // runtime.batch_size)):
            writer.append("activations", hidden.astype(np.float32))
            writer.append("position", position.astype(np.int32))
            writer.append("text_index", text_index.astype(np.int32))
        log.info("wrote %d tokens from %d texts", handle["activations"].shape[0], len(texts))


def steering_vector(contrast: str, params: Mapping, output: str) -> None:
    """Mean-difference steering vector, with its norm and the mean residual norm of the prompts."""
    positive, negative = store.read(contrast, "positive", "negative")
    v = vectors.mean_difference(positive, negative)
    source = store.read_attrs(contrast)
    residual_norm = vectors.mean_norm(np.concatenate([positive, negative]))
    attrs = store.provenance(params, model=source["model"], layer=int(source["layer"]), method="mean difference",
                             n_pairs=len(positive), norm=float(np.linalg.norm(v)), mean_residual_norm=residual_norm)
    store.write(output, {"mean_difference": v}, attrs)
    log.info("‖v‖ = %.3f, mean ‖h‖ = %.3f", np.linalg.norm(v), residual_norm)


def covariance(background: str, chunk_rows: int, sink_positions: Sequence[int], params: Mapping, output: str) -> None:
    """Covariances of all background tokens and of the tokens off the attention-sink positions.

    Streamed through the native accumulator with a prefetching reader: memory O(d²) whatever N.
    """
    source = store.read_attrs(background)
    (positions,) = store.read(background, "position")
    masks = {"all_tokens": None, "excluding_sinks": spectrum.sink_mask(positions, sink_positions)}
    attrs = store.provenance(params, model=source["model"], layer=int(source["layer"]), sink_positions=list(sink_positions))
    with store.create(output, attrs) as handle:
        for view, mask in masks.items():
            accumulator = covariance_from_hdf5(background, "activations", chunk_rows, where=mask)
            group = handle.create_group(view)
            group.create_dataset("covariance", data=accumulator.covariance(ddof=1))
            group.create_dataset("mean", data=accumulator.mean)
            group.attrs["count"] = accumulator.count
            log.info("%s: covariance of %d tokens, d=%d", view, accumulator.count, accumulator.dim)


def spectrum_stage(covariance_file: str, top_k: int, rank_thresholds: Sequence[float],
                   variance_fractions: Sequence[float], seed: int, params: Mapping, output: str) -> None:
    """Spectra of both covariances with every rank definition; eigenvectors of the sink-free one."""
    source = store.read_attrs(covariance_file)
    attrs = store.provenance(params, model=source["model"], layer=int(source["layer"]),
                             sink_positions=source["sink_positions"])
    with store.open_complete(covariance_file) as covariances, store.create(output, attrs) as handle:
        for view in spectrum.VIEWS:
            result = spectrum.analyse(covariances[view]["covariance"][()], top_k, seed)
            summary = {"count": int(covariances[view].attrs["count"]),
                       **result.summary(rank_thresholds, variance_fractions)}
            group = handle.create_group(view)
            group.create_dataset("eigenvalues", data=result.eigenvalues)
            group.attrs.update(summary)
            if view == PERTURBATION_VIEW:
                group.create_dataset("eigenvectors", data=result.eigenvectors.astype(np.float32))
            log.info("%s spectrum: %s", view, summary)


def perturbations(vector_file: str, spectrum_file: str, n_orthogonal: int, n_null: int, n_top: int,
                  null_fraction: float, top_k: int, seed: int, params: Mapping, output: str) -> None:
    """δ of every type: random ⟂ v, low-variance subspace ⟂ v, top-variance subspace ⟂ v (positive control)."""
    (v,) = store.read(vector_file, "mean_difference")
    (eigenvectors,) = store.read(spectrum_file, f"{PERTURBATION_VIEW}/eigenvectors")
    eigenvectors = eigenvectors.astype(np.float64)
    null_k = max(n_null + 1, int(round(null_fraction * v.size)))
    deltas = {
        "orthogonal": perturb.orthogonal_draws(v, n_orthogonal, seed),
        "null": perturb.orthogonal_draws(v, n_null, seed + 1, perturb.eigen_subspace(eigenvectors, null_k, "bottom")),
        "top": perturb.orthogonal_draws(v, n_top, seed + 2, perturb.eigen_subspace(eigenvectors, top_k, "top")),
    }
    attrs = store.provenance(params, **{k: v for k, v in store.read_attrs(vector_file).items() if k in ("model", "layer")},
                             null_subspace_dim=null_k, top_subspace_dim=top_k, norm=float(np.linalg.norm(v)))
    store.write(output, {"v": v, **deltas}, attrs)


def conditions_from(perturbations_file: str, alpha: float) -> dict[str, torch.Tensor]:
    """Steering additions per condition: 0 (baseline), αv, and α(v + δ) for every δ drawn."""
    with store.open_complete(perturbations_file) as handle:
        v = handle["v"][()]
        conditions = {BASELINE: np.zeros_like(v), REFERENCE: alpha * v}
        for kind in PERTURBATION_TYPES:
            for i, delta in enumerate(handle[kind][()]):
                conditions[f"{kind}-{i}"] = alpha * (v + delta)
    return {name: torch.from_numpy(vector).float() for name, vector in conditions.items()}


def evaluate(model_dir: str, prompt_set: str, perturbations_file: str, layer: int, alpha: float, positions: str,
             sampling: Mapping, n_samples: int, environment: str, seed: int, runtime: Runtime, output: str) -> None:
    """Steered generations for every condition × evaluation prompt × sample, as JSON lines."""
    model, tokenizer, manifest, site = _open_model(model_dir, layer, runtime)
    prompts_ = read_prompt_set(prompt_set)["eval"][environment]
    conditions = conditions_from(perturbations_file, alpha)
    total = len(conditions) * len(prompts_) * n_samples
    with tqdm(total=total, desc="generations") as progress:
        records = generate_conditions(model, tokenizer, site, prompts_, conditions, n_samples, Sampling(**sampling),
                                      seed, runtime.batch_size, positions, progress)
    header = {"model": manifest.spec, "layer": layer, "alpha": alpha, "positions": positions, "sampling": dict(sampling),
              "seed": seed, "environment": environment, "n_prompts": len(prompts_), "n_samples": n_samples}
    with atomic_path(output) as temporary, open(temporary, "w") as stream:
        for record in records:
            stream.write(json.dumps({**header, **record}) + "\n")
    log.info("wrote %d generations", len(records))


def score(generations: str, trait: str, scorer: str, params: Mapping, output: str) -> None:
    """Score every completion; one (n_prompts, n_samples) array per condition."""
    records = [json.loads(line) for line in Path(generations).read_text().splitlines()]
    values = get_scorer(trait, scorer).score([r["completion"] for r in records])
    shape = (records[0]["n_prompts"], records[0]["n_samples"])
    grids: dict[str, np.ndarray] = {}
    for record, value in zip(records, values):
        grid = grids.setdefault(record["condition"], np.full(shape, np.nan))
        grid[record["prompt_index"], record["sample_index"]] = value
    attrs = store.provenance(params, model=records[0]["model"], layer=records[0]["layer"], trait=trait, scorer=scorer,
                             alpha=records[0]["alpha"], conditions=list(grids))
    store.write(output, {f"scores/{name}": grid for name, grid in grids.items()}, attrs)


def read_scores(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """Per-condition score grids and the file's attributes."""
    with store.open_complete(path) as handle:
        return {name: handle["scores"][name][()] for name in handle["scores"]}, dict(handle.attrs)


def pooled_by_type(scores: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per δ-type, the cell-wise mean over its seeds: one paired condition per type."""
    pooled = {}
    for kind in PERTURBATION_TYPES:
        members = [grid for name, grid in scores.items() if name.startswith(f"{kind}-")]
        if members:
            pooled[f"v+{kind}"] = np.mean(members, axis=0)
    return pooled


def equivalence(scores: Mapping[str, np.ndarray], per_type: Mapping[str, dict], margin_sd: float) -> dict:
    """Per δ-type: TOST of v+δ against v (margin = margin_sd × SD of the baseline), its power, the verdict."""
    margin = margin_from_baseline_sd(scores[BASELINE], margin_sd)
    pooled = pooled_by_type(scores)
    results = {}
    for kind, perturbed in pooled.items():
        test = tost_paired(scores[REFERENCE], perturbed, margin)
        power = power_report(test["n"], margin, test["sd_difference"])
        results[kind] = {"tost": test, "power": power,
                         "verdict": verdict(test, power["power"], per_type[REFERENCE]["delta"])}
    return {"margin": margin, "margin_definition": f"{margin_sd} x SD of the baseline scores", "by_type": results}


def stats(scores_file: str, vector_file: str, n_boot: int, equivalence_margin_sd: float, seed: int, params: Mapping,
          output: str) -> None:
    """E1 endpoints per condition and per δ-type: Δ vs baseline, efficacy ratio, paired d, TOST verdicts."""
    scores, attrs = read_scores(scores_file)
    vector_attrs = store.read_attrs(vector_file)
    per_condition = compare_conditions(scores, BASELINE, REFERENCE, n_boot, seed)
    per_type = compare_conditions({BASELINE: scores[BASELINE], REFERENCE: scores[REFERENCE], **pooled_by_type(scores)},
                                  BASELINE, REFERENCE, n_boot, seed)
    atomic_write_json(output, {
        "experiment": "E1 orthogonal",
        "model": attrs["model"], "layer": int(attrs["layer"]), "trait": attrs["trait"], "scorer": attrs["scorer"],
        "alpha": float(attrs["alpha"]), "v_norm": float(vector_attrs["norm"]),
        "mean_residual_norm": float(vector_attrs["mean_residual_norm"]),
        "n_prompts": int(scores[BASELINE].shape[0]), "n_samples": int(scores[BASELINE].shape[1]),
        "mean_score": {name: float(grid.mean()) for name, grid in scores.items()},
        "by_type": per_type, "by_condition": per_condition,
        "equivalence": equivalence(scores, per_type, equivalence_margin_sd),
        "provenance": store.provenance(params),
    })


def figure(stats_files: Sequence[str], dpi: int, output: str) -> None:
    """E1 figure: efficacy ratio and paired d per δ-type, per model and trait."""
    plots.e1_orthogonal([json.loads(Path(f).read_text()) for f in stats_files], output, dpi)


def spectrum_summaries(path: str) -> dict:
    """Model, layer, and the summary attributes of each spectrum view of one spectra file."""
    with store.open_complete(path) as handle:
        views = {view: dict(handle[view].attrs) for view in spectrum.VIEWS}
        return {"model": handle.attrs["model"], "layer": int(handle.attrs["layer"]), "views": views}


def summary(stats_files: Sequence[str], spectrum_files: Sequence[str], figure_files: Sequence[str], output: str) -> None:
    """results/summary.md: each E1 claim with this run's numbers."""
    results = [json.loads(Path(f).read_text()) for f in stats_files]
    spectra = [spectrum_summaries(f) for f in spectrum_files]
    report.write_summary(results, spectra, figure_files, output)
