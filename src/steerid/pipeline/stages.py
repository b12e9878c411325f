"""One function per workflow stage: files and plain parameters in, one output file out.

The workflow scripts only translate ``snakemake.input/output/params`` into these calls, so every
stage runs and is tested without Snakemake. A stage reads nothing but its arguments.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from steerid import conditions, interchange, linalg, perturb, store, vectors
from steerid.conditions import BASELINE
from steerid.engine import activations, architectures
from steerid.engine.generate import Sampling, generate_conditions
from steerid.engine.models import check_layer, load_model, prepare_model, read_manifest
from steerid.engine.site import Layers, site_label, site_layers, stored_site
from steerid.io import atomic_path, atomic_write_json
from steerid.linalg import nullspace, spectrum
from steerid.linalg.streaming import covariance_from_hdf5, merged, read_accumulator, shard_slice, write_accumulator
from steerid.logs import log
from steerid.operating_point import OperatingPoint
from steerid.operating_point import resolve as resolve_strength
from steerid.perturb import PERTURBATION_VIEW
from steerid.pipeline.results import read_generations
from steerid.pipeline.runtime import Runtime
from steerid.prompts import POLES, instructed, load_background, read_prompt_set, write_prompt_set
from steerid.scoring import PairedItems, get_scorer, measurement_of, probe, scorer_record, truthfulness, validate_scorer
from steerid.scoring.measurements import STATEMENT_LIKELIHOOD


def open_model(model_dir: str, layer: Layers, runtime: Runtime):
    torch.set_num_threads(runtime.threads)
    model, tokenizer, manifest = load_model(Path(model_dir), runtime.device, runtime.dtype)
    for one in site_layers(layer):
        check_layer(manifest, one)
    log.info(
        "loaded %s (%s, %d layers, d=%d) on %s in %s with %d CPU threads; engine: %s",
        manifest.spec,
        manifest.architecture,
        manifest.n_layers,
        manifest.d_model,
        next(model.parameters()).device,
        str(next(model.parameters()).dtype).removeprefix("torch."),
        torch.get_num_threads(),
        "native" if architectures.supported(model) else "Hugging Face forward",
    )
    return model, tokenizer, manifest


def _model_fields(model, manifest, layer: Layers) -> dict:
    parameter = next(model.parameters())
    return {
        "model": manifest.spec,
        "model_revision": manifest.revision,
        "architecture": manifest.architecture,
        "layer": layer,
        "site": f"output of decoder layer{'' if isinstance(layer, int) else 's'} {site_label(layer)}",
        "dtype": str(parameter.dtype).removeprefix("torch."),
        "device": str(parameter.device),
    }


def prepare(spec: str, revision: str | None, output: str) -> None:
    """Resolve a model spec into the folder ``output`` (model.json and, for embedded models, the weights)."""
    manifest = prepare_model(spec, Path(output), revision)
    log.info("prepared %s: %s", spec, manifest)


def prompts(trait: str, n_pairs: int, n_eval: int, environments: Sequence[str], seed: int, output: str) -> None:
    """Select the trait's contrast pairs and evaluation prompts."""
    write_prompt_set(output, trait=trait, n_pairs=n_pairs, n_eval=n_eval, environments=environments, seed=seed)


def dump_contrast(model: str, prompts: str, layer: int, runtime: Runtime, params: Mapping, output: str) -> None:
    """Last-prompt-token activations of the contrast pairs, and of each environment's prompts
    under explicit instructions for either pole (the per-environment vectors of E3).

    Pairs built from A/B items (an own trait's file without pairs) carry each pole's answer: their
    activations are at the answer's last token, the answer starting the model's reply (CAA)."""
    model_, tokenizer, manifest = open_model(model, layer, runtime)
    prompt_set_ = read_prompt_set(prompts)
    pairs = prompt_set_["pairs"]
    answered = all(f"{pole}_answer" in pair for pair in pairs for pole in ("positive", "negative"))
    arrays = {
        pole: _pair_activations(model_, tokenizer, layer, pairs, pole, answered, runtime.batch_size)
        for pole in ("positive", "negative")
    }
    for environment, texts in prompt_set_["eval"].items():
        for pole in ("positive", "negative"):
            prompts_ = [instructed(text, prompt_set_[f"{pole}_pole"]) for text in texts]
            arrays[f"environments/{environment}/{pole}"] = activations.last_token(
                model_, tokenizer, layer, prompts_, runtime.batch_size
            )
    pair_positions = "last answer token" if answered else "last prompt token"
    positions = "last answer token (pairs), last prompt token (environments)" if answered else pair_positions
    attrs = store.provenance(params, positions=positions, **_model_fields(model_, manifest, layer))
    store.write(output, arrays, attrs)
    log.info(
        "wrote %d contrast pairs (%s) of d=%d and %d environments",
        len(pairs),
        pair_positions,
        arrays["positive"].shape[1],
        len(prompt_set_["eval"]),
    )


def _pair_activations(model, tokenizer, layer: int, pairs: Sequence[Mapping], pole: str, answered: bool, batch_size):
    """One pole's contrast activations: at the last prompt token, or at the last answer token."""
    texts = [pair[pole] for pair in pairs]
    if answered:
        answers = [pair[f"{pole}_answer"] for pair in pairs]
        return activations.last_answer_token(model, tokenizer, layer, texts, answers, batch_size)
    return activations.last_token(model, tokenizer, layer, texts, batch_size)


def dump_background(
    model: str,
    layer: int,
    n_texts: int,
    max_length: int,
    runtime: Runtime,
    params: Mapping,
    output: str,
    shard: int = 0,
    shards: int = 1,
) -> None:
    """Token-level activations of the background texts, streamed to HDF5 batch by batch.

    With ``shards`` > 1, only shard ``shard`` of the first ``n_texts`` texts (a contiguous slice);
    ``text_index`` stays the index among all texts, so the shards' rows, in order, are the whole dump's.
    """
    model_, tokenizer, manifest = open_model(model, layer, runtime)
    part = shard_slice(n_texts, shard, shards)
    texts = load_background()[:n_texts][part]
    attrs = store.provenance(
        params, positions="all prompt tokens", shard=shard, shards=shards, **_model_fields(model_, manifest, layer)
    )
    rows = activations.rows_per_forward(runtime.batch_size, max_length, next(model_.parameters()).device)
    with store.create(output, attrs) as handle:
        writer = store.RowWriter(handle)
        batches = activations.token_level(model_, tokenizer, layer, texts, rows, max_length)
        for hidden, position, text_index in tqdm(batches, desc="background", total=-(-len(texts) // rows)):
            writer.append("activations", hidden.astype(np.float32))
            writer.append("position", position.astype(np.int32))
            writer.append("text_index", (text_index + part.start).astype(np.int32))
        log.info("wrote %d tokens from %d texts", handle["activations"].shape[0], len(texts))


def steering_vector(contrast: str, model: str, params: Mapping, output: str, imported: Mapping | None = None) -> None:
    """Steering vectors of one trait: the study's v — the mean difference, or the ``imported`` file's
    direction (a ``models.<name>.vectors.<trait>`` entry) — with the mean difference, PCA and probe
    directions of the contrast (E5) and one per environment (E3)."""
    positive, negative = store.read(contrast, "positive", "negative")
    mean_difference = vectors.mean_difference(positive, negative)
    with store.open_complete(contrast) as handle:
        environments = {
            name: vectors.mean_difference(group["positive"][()], group["negative"][()])
            for name, group in handle["environments"].items()
        }
    source = store.read_attrs(contrast)
    layer = int(source["layer"])
    residual_norm = vectors.mean_norm(np.concatenate([positive, negative]))
    v, origin = _study_vector(mean_difference, imported, model, layer, residual_norm)
    datasets = {
        "v": v,
        "mean_difference": mean_difference,
        "pca": vectors.pca_direction(positive, negative),
        "probe": vectors.probe_direction(positive, negative),
        **{f"environments/{name}": vector for name, vector in environments.items()},
    }
    attrs = store.provenance(
        params,
        model=source["model"],
        layer=layer,
        n_pairs=len(positive),
        norm=float(np.linalg.norm(v)),
        mean_residual_norm=residual_norm,
        **origin,
    )
    store.write(output, datasets, attrs)
    log.info(
        "v: %s; ‖v‖ = %.3f, mean ‖h‖ = %.3f; cos(v, mean difference) = %.3f, cos(v, pca) = %.3f, cos(v, probe) = %.3f",
        origin["source"],
        np.linalg.norm(v),
        residual_norm,
        vectors.cosine(v, mean_difference),
        vectors.cosine(v, datasets["pca"]),
        vectors.cosine(v, datasets["probe"]),
    )


def _study_vector(
    mean_difference: np.ndarray, imported: Mapping | None, model: str, layer: int, residual_norm: float
) -> tuple[np.ndarray, dict]:
    if imported is None:
        return mean_difference, {"source": "mean difference of the contrast pairs", "source_format": "steerid"}
    entry = interchange.VectorImport.from_config(imported)
    manifest = read_manifest(Path(model))
    # Checked at parse time too, against the model's config.json; again here against the prepared model.
    vector_file = interchange.checked_import(
        entry, d_model=manifest.d_model, n_layers=manifest.n_layers, model_type=manifest.architecture, layer=layer
    )
    return interchange.study_vector(entry, vector_file, layer, residual_norm)


def export_vector(vector: str, model: str, vector_format: str, output: str) -> None:
    """The study's v at its layer (each layer of its site) as a ``vector_format`` file (a GGUF control
    vector llama.cpp and repeng load, or steerid's safetensors), at its own length: loaded with
    strength 1 it adds what steerid added at α = 1."""
    (v,) = store.read(vector, "v")
    attrs = store.read_attrs(vector)
    layers = site_layers(stored_site(attrs["layer"]))
    metadata = {key: str(attrs[key]) for key in ("model", "source", "mean_residual_norm", "params_sha256")}
    interchange.export_vector(
        dict(zip(layers, np.reshape(v, (len(layers), -1)))),
        output,
        model_hint=read_manifest(Path(model)).architecture,
        metadata=metadata,
        format_name=vector_format,
    )
    log.info(
        "wrote v of layers %s (‖v‖ = %.3f) as %s to %s", site_label(layers), np.linalg.norm(v), vector_format, output
    )


def stack_vectors(layer_vectors: Sequence[str], params: Mapping, output: str) -> None:
    """A steering site's vectors: every dataset of its layers' vector files stacked as (layers, d).

    The site's ``mean_residual_norm`` is the root sum of squares of its layers' (and ``norm`` is
    ‖v‖ over the whole stack), so α in residual-norm units scales the stacked v as one vector, as
    a control vector's one coefficient does, and keeps the layers' relative strengths.
    """
    attrs = [store.read_attrs(path) for path in layer_vectors]
    layers = site_layers([int(a["layer"]) for a in attrs])
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(store.open_complete(path)) for path in layer_vectors]
        names: list[str] = []
        handles[0].visititems(lambda name, item: names.append(name) if hasattr(item, "shape") else None)
        datasets = {name: np.stack([handle[name][()] for handle in handles]) for name in names}
    residual_norm = float(np.sqrt(sum(float(a["mean_residual_norm"]) ** 2 for a in attrs)))
    record = store.provenance(
        params,
        model=attrs[0]["model"],
        **_site_source(attrs, layers),
        layer=list(layers),
        n_pairs=int(attrs[0]["n_pairs"]),
        norm=float(np.linalg.norm(datasets["v"])),
        mean_residual_norm=residual_norm,
        layer_norms=[float(a["norm"]) for a in attrs],
        layer_mean_residual_norms=[float(a["mean_residual_norm"]) for a in attrs],
    )
    store.write(output, datasets, record)
    log.info("stacked v at layers %s: ‖v_ℓ‖ = %s", site_label(layers), [round(float(a["norm"]), 3) for a in attrs])


def _site_source(attrs: Sequence[Mapping], layers: tuple[int, ...]) -> dict:
    """Where a site's vectors came from: one file's directions at its layers, or each layer's own source."""
    first = attrs[0]
    if "source_file" not in first:
        return {"source": "; ".join(dict.fromkeys(str(a["source"]) for a in attrs)), "source_format": "steerid"}
    shared = ("source_file", "source_format", "source_sha256", "source_model_hint", "strength_in_residual_norms")
    return {
        "source": f"imported from {first['source_file']} ({first['source_format']}, layers {site_label(layers)})",
        **{key: first[key] for key in shared},
    }


def _covariance_views(background: str, chunk_rows: int, sink_positions: Sequence[int]) -> dict:
    """Accumulators of all background tokens and of the tokens off the attention-sink positions.

    Streamed through the native accumulator with a prefetching reader: memory O(d²) whatever N.
    """
    (positions,) = store.read(background, "position")
    masks = {"all_tokens": None, "excluding_sinks": spectrum.sink_mask(positions, sink_positions)}
    return {
        view: covariance_from_hdf5(background, "activations", chunk_rows, where=mask) for view, mask in masks.items()
    }


def _write_covariances(output: str, accumulators: Mapping, attrs: Mapping) -> None:
    with store.create(output, attrs) as handle:
        for view, accumulator in accumulators.items():
            group = handle.create_group(view)
            group.create_dataset("covariance", data=accumulator.covariance(ddof=1))
            group.create_dataset("mean", data=accumulator.mean)
            group.attrs["count"] = accumulator.count
            log.info("%s: covariance of %d tokens, d=%d", view, accumulator.count, accumulator.dim)


def covariance(background: str, chunk_rows: int, sink_positions: Sequence[int], params: Mapping, output: str) -> None:
    """Covariances of all background tokens and of the tokens off the attention-sink positions."""
    source = store.read_attrs(background)
    attrs = store.provenance(
        params, model=source["model"], layer=int(source["layer"]), sink_positions=list(sink_positions)
    )
    _write_covariances(output, _covariance_views(background, chunk_rows, sink_positions), attrs)


def covariance_shard(
    background: str, chunk_rows: int, sink_positions: Sequence[int], params: Mapping, output: str
) -> None:
    """One background shard's accumulators (count, mean, scatter) of both views, for an exact merge."""
    source = store.read_attrs(background)
    attrs = store.provenance(
        params,
        model=source["model"],
        layer=int(source["layer"]),
        sink_positions=list(sink_positions),
        shard=int(source["shard"]),
        shards=int(source["shards"]),
    )
    with store.create(output, attrs) as handle:
        for view, accumulator in _covariance_views(background, chunk_rows, sink_positions).items():
            write_accumulator(handle.create_group(view), accumulator)
            log.info("%s: %d tokens of shard %s of %s", view, accumulator.count, source["shard"], source["shards"])


def merge_covariance(shards: Sequence[str], params: Mapping, output: str) -> None:
    """The covariance file of the whole background from its shards' accumulators (Chan's merge, exact)."""
    sources = [store.read_attrs(path) for path in shards]
    order = [int(attrs["shard"]) for attrs in sources]
    if order != list(range(len(shards))) or {int(attrs["shards"]) for attrs in sources} != {len(shards)}:
        raise ValueError(
            f"merge_covariance: expected shards 0..{len(shards) - 1} of {len(shards)} in order, got {order}"
        )
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(store.open_complete(path)) for path in shards]
        accumulators = {view: merged(read_accumulator(handle[view]) for handle in handles) for view in spectrum.VIEWS}
    first = sources[0]
    attrs = store.provenance(
        params,
        model=first["model"],
        layer=int(first["layer"]),
        sink_positions=first["sink_positions"],
        shards=len(shards),
    )
    _write_covariances(output, accumulators, attrs)


def spectrum_stage(
    covariance: str,
    top_k: int,
    rank_thresholds: Sequence[float],
    variance_fractions: Sequence[float],
    seed: int,
    params: Mapping,
    output: str,
) -> None:
    """Spectra of both covariances with every rank definition; eigenvectors of the sink-free one."""
    source = store.read_attrs(covariance)
    attrs = store.provenance(
        params, model=source["model"], layer=int(source["layer"]), sink_positions=source["sink_positions"]
    )
    with store.open_complete(covariance) as covariances, store.create(output, attrs) as handle:
        for view in spectrum.VIEWS:
            result = spectrum.analyse(covariances[view]["covariance"][()], top_k, seed)
            summary = {
                "count": int(covariances[view].attrs["count"]),
                **result.summary(rank_thresholds, variance_fractions),
            }
            group = handle.create_group(view)
            group.create_dataset("eigenvalues", data=result.eigenvalues)
            group.attrs.update(summary)
            if view == PERTURBATION_VIEW:
                group.create_dataset("eigenvectors", data=result.eigenvectors.astype(np.float32))
            log.info("%s spectrum: %s", view, summary)


def jacobian(
    model: str, prompts: str, layer: Layers, n_prompts: int, runtime: Runtime, params: Mapping, output: str
) -> None:
    """Exact Jacobian gain spectra (E6/E8) at one layer, or jointly for the stacked shifts of a steering site
    of several layers: per environment and pooled over all of them.

    For each environment, G_e = Σ J_iᵀ J_i over its first ``n_prompts`` evaluation prompts at the
    last prompt token (the steered site), from torch.func JVPs in float32. Per-prompt top
    subspaces are kept for the stability analysis.
    """
    from steerid.engine.jacobian import stacked_gram_spectrum

    float32 = Runtime(runtime.device, "float32", runtime.threads, runtime.batch_size)
    model_, tokenizer, manifest = open_model(model, layer, float32)
    environments = read_prompt_set(prompts)["eval"]
    attrs = store.provenance(params, positions="last prompt token", **_model_fields(model_, manifest, layer))
    pooled = None
    with store.create(output, attrs) as handle:
        for environment, texts in environments.items():
            result = stacked_gram_spectrum(model_, tokenizer, layer, texts[:n_prompts], method="exact", progress=True)
            group = handle.create_group(f"environments/{environment}")
            group.create_dataset("eigenvalues", data=result.eigenvalues)
            group.create_dataset("eigenvectors", data=result.eigenvectors)
            group.create_dataset("pair_singular_values", data=result.pair_singular_values)
            group.create_dataset("pair_top_vectors", data=result.pair_top_vectors)
            gram = nullspace.gram_from_spectrum(result.eigenvalues, result.eigenvectors)
            pooled = gram if pooled is None else pooled + gram
            log.info("%s: %d Jacobians, σ_max = %.3g", environment, len(result.pairs), np.sqrt(result.eigenvalues[0]))
        if pooled is None:
            raise ValueError(f"{prompts}: the prompt set has no evaluation environments")
        values, vectors_ = linalg.descending_eigh(pooled, fixed_signs=False)
        handle.create_dataset("pooled/eigenvalues", data=values)
        handle.create_dataset("pooled/eigenvectors", data=vectors_)


def perturbations(
    vector: str,
    spectra: Sequence[str],
    jacobians: Sequence[str],
    others: Sequence[str],
    null_fraction: float,
    top_k: int,
    span_ks: Sequence[int],
    seed: int,
    params: Mapping,
    output: str,
) -> None:
    """Every δ (⟂ v, ‖δ‖ = ‖v‖) of each kind in :data:`conditions.PERTURBATION_KINDS` — as many random
    draws as ``params[kind.count_key]``, from the kind's subspace — other traits' vectors, and the E7
    bottom/top-k draws.

    At a site of several layers every δ is one δ_ℓ per layer (stacked as (..., layers, d)): ⟂ v_ℓ,
    ‖δ_ℓ‖ = ‖v_ℓ‖, drawn from layer ℓ's own covariance and Jacobian spectra (``spectra`` and
    ``jacobians``, one per layer) with seeds of its own (:data:`conditions.SITE_SEED_STRIDE`).
    """
    (v,) = store.read(vector, "v")
    site_v = v.reshape(len(spectra), -1)
    other_vs = [store.read(path, "v")[0].reshape(site_v.shape) for path in others]
    per_layer = [
        _layer_perturbations(
            site_v[i],
            spectra[i],
            jacobians[i],
            [o[i] for o in other_vs],
            null_fraction,
            top_k,
            span_ks,
            seed + i * conditions.SITE_SEED_STRIDE,
            params,
        )
        for i in range(len(spectra))
    ]
    draws = (
        per_layer[0] if len(per_layer) == 1 else {k: np.stack([d[k] for d in per_layer], axis=-2) for k in per_layer[0]}
    )
    attrs = store.provenance(
        params,
        **{k: a for k, a in store.read_attrs(vector).items() if k in ("model", "layer")},
        null_subspace_dim=_null_subspace_dim(params, null_fraction, site_v.shape[1]),
        top_subspace_dim=top_k,
        norm=float(np.linalg.norm(v)),
        other_traits=[Path(path).stem for path in others],
    )
    store.write(output, {"v": v, **draws}, attrs)


def _null_subspace_dim(params: Mapping, null_fraction: float, d: int) -> int:
    """How many of a layer's lowest-variance directions the null draws come from (room for all of them)."""
    return max(int(params["n_null"]) + 1, round(null_fraction * d))


def _layer_perturbations(
    v: np.ndarray,
    spectrum: str,
    jacobian: str,
    others: Sequence[np.ndarray],
    null_fraction: float,
    top_k: int,
    span_ks: Sequence[int],
    seed: int,
    params: Mapping,
) -> dict[str, np.ndarray]:
    """One layer's δ of every kind for its v (see :func:`perturbations`), keyed as the file stores them."""
    (covariance_basis,) = store.read(spectrum, f"{PERTURBATION_VIEW}/eigenvectors")
    (gain_basis,) = store.read(jacobian, "pooled/eigenvectors")
    bases = {"covariance": covariance_basis.astype(np.float64), "jacobian": gain_basis}
    random = {kind.name: kind.draw for kind in conditions.PERTURBATION_KINDS.values() if kind.draw is not None}
    counts = {name: int(params[draw.count_key]) for name, draw in random.items()}
    sizes = {"null": _null_subspace_dim(params, null_fraction, v.size), "top": top_k}
    draws = {}
    for name, draw in random.items():
        where = draw.subspace
        basis = None if where is None else perturb.eigen_subspace(bases[where.basis], sizes[where.size], where.end)
        draws[name] = perturb.orthogonal_draws(v, counts[name], seed + draw.seed_offset, basis)
    if others:
        draws["other"] = np.stack([perturb.orthogonalised(other, v) for other in others])
    spans = [conditions.Span(s, e, k) for s in bases for e in ("bottom", "top") for k in span_ks]
    for offset, span in enumerate(spans):
        subspace = perturb.eigen_subspace(bases[span.source], span.k, span.end)
        seed_of_span = seed + conditions.SPAN_SEED_OFFSET + offset
        draws[f"span/{span.key}"] = perturb.orthogonal_draws(v, 1, seed_of_span, subspace)[0]
    return draws


def read_condition_set(
    condition_set: str,
    vector_file: str,
    perturbations_file: str,
    alpha: float | None,
    n_alone: int,
    alphas: Sequence[float],
    alpha_units: str | None = None,
) -> dict[str, torch.Tensor]:
    """The named steering additions of one condition set (see :mod:`steerid.conditions`); ``alphas`` and
    ``alpha_units`` are E2's strengths."""
    with store.open_complete(perturbations_file) as handle:
        v = handle["v"][()]
        deltas = {kind: handle[kind][()] for kind in conditions.PERTURBATION_TYPES if kind in handle}
        spans = {conditions.Span.parse(key): handle["span"][key][()] for key in handle["span"]}
    with store.open_complete(vector_file) as handle:
        directions = {
            "pca": handle["pca"][()],
            "probe": handle["probe"][()],
            **{
                conditions.Condition(environment=name).name: handle["environments"][name][()]
                for name in handle["environments"]
            },
        }
        residual_norm = float(handle.attrs["mean_residual_norm"])
    if condition_set == "e2":
        named = conditions.e2_conditions(v, deltas, alphas, residual_norm, units=alpha_units or "mean_residual_norm")
    elif alpha is None:
        raise ValueError(f"condition set {condition_set!r} needs a steering strength alpha, got None")
    elif condition_set == "e1":
        named = conditions.e1_conditions(v, deltas, n_alone, directions, alpha)
    elif condition_set == "e7":
        named = conditions.e7_conditions(v, spans, alpha)
    else:
        raise ValueError(f"no condition set {condition_set!r}; expected one of {conditions.CONDITION_SETS}")
    return {name: torch.from_numpy(np.asarray(vector)).float() for name, vector in named.items()}


def strength_fields(strength: OperatingPoint | None) -> dict:
    """A record's ``alpha`` (in ‖v‖; None where the job sweeps α) and ``alpha_source``."""
    if strength is None:
        return {"alpha": None, "alpha_source": "swept (alpha_sweep)"}
    return {"alpha": strength.alpha, "alpha_source": strength.source}


def _write_generations(output: str, header: Mapping, records: Sequence[dict]) -> None:
    with atomic_path(output) as temporary, open(temporary, "w") as stream:
        for record in records:
            stream.write(json.dumps({**header, **record}) + "\n")
    log.info("wrote %d generations", len(records))


def evaluate(
    model: str,
    prompts: str,
    vector: str,
    perturbations: str,
    condition_set: str,
    environment: str,
    layer: Layers,
    alpha: float | str | None,
    positions: str,
    norm_preserving: bool,
    n_alone: int,
    alphas: Sequence[float],
    alpha_units: str | None,
    sampling: Mapping,
    n_samples: int,
    seed: int,
    runtime: Runtime,
    output: str,
    operating_point: str | None = None,
) -> None:
    """Steered generations of one condition set × an environment's prompts × samples, as JSON lines
    (the vectors added at ``positions``, rescaled to the residual's norm with ``norm_preserving``);
    ``alpha`` ``auto`` steers at the operating point E2 recorded in ``operating_point``."""
    strength = resolve_strength(alpha, operating_point)
    model_, tokenizer, manifest = open_model(model, layer, runtime)
    prompts_ = read_prompt_set(prompts)["eval"][environment]
    named = read_condition_set(
        condition_set, vector, perturbations, None if strength is None else strength.alpha, n_alone, alphas, alpha_units
    )
    with tqdm(total=len(named) * len(prompts_) * n_samples, desc=f"{condition_set} {environment}") as progress:
        records = generate_conditions(
            model_,
            tokenizer,
            layer,
            prompts_,
            named,
            n_samples,
            Sampling(**sampling),
            seed,
            runtime.batch_size,
            positions,
            progress,
            fluency=condition_set == "e2",
            norm_preserving=norm_preserving,
        )
    header = {
        "model": manifest.spec,
        "layer": layer,
        "condition_set": condition_set,
        **strength_fields(strength),
        "positions": positions,
        "norm_preserving": norm_preserving,
        "sampling": dict(sampling),
        "seed": seed,
        "environment": environment,
        "n_prompts": len(prompts_),
        "n_samples": n_samples,
    }
    _write_generations(output, header, records)


def _grids(records: Sequence[dict], values: Sequence[float] | np.ndarray) -> dict[str, np.ndarray]:
    shape = (records[0]["n_prompts"], records[0]["n_samples"])
    grids: dict[str, np.ndarray] = {}
    for record, value in zip(records, values):
        grid = grids.setdefault(record["condition"], np.full(shape, np.nan))
        grid[record["prompt_index"], record["sample_index"]] = value
    return grids


def score(
    generations: str, trait: str, scorer: str, params: Mapping, output: str, validation: str | None = None
) -> None:
    """Score every completion (never the prompt): per condition a (n_prompts, n_samples) grid of scores
    and one of perplexities under the unsteered model (nan where none was measured). A fitted scorer
    is built from its ``validation`` record."""
    records = read_generations(generations)
    values = get_scorer(trait, scorer, **scorer_fit(scorer, validation)).score([r["completion"] for r in records])
    scores = _grids(records, values)
    fluency = _grids(records, [r.get("perplexity", float("nan")) for r in records])
    attrs = store.provenance(
        params,
        model=records[0]["model"],
        layer=records[0]["layer"],
        trait=trait,
        scorer=scorer,
        condition_set=records[0]["condition_set"],
        environment=records[0]["environment"],
        alpha=records[0]["alpha"],
        alpha_source=records[0]["alpha_source"],
        positions=records[0]["positions"],
        norm_preserving=records[0].get("norm_preserving", False),
        conditions=list(scores),
    )
    store.write(
        output,
        {**{f"scores/{n}": g for n, g in scores.items()}, **{f"perplexity/{n}": g for n, g in fluency.items()}},
        attrs,
    )


def _paired_items(scorer: str) -> PairedItems:
    """What the likelihood scorer ``scorer`` scores in a prompt set (its record's pairs provider)."""
    paired = scorer_record(scorer).paired
    if paired is None:
        raise ValueError(
            f"scorer {scorer!r} is measured by likelihood, but its record says nothing of what it scores; "
            "expected a ScorerRecord with paired=PairedItems(...)"
        )
    return paired


def score_statements(
    model: str,
    prompts: str,
    vector: str,
    perturbations: str,
    condition_set: str,
    trait: str,
    scorer: str,
    layer: Layers,
    alpha: float | str | None,
    n_alone: int,
    norm_preserving: bool,
    runtime: Runtime,
    params: Mapping,
    output: str,
) -> None:
    """A likelihood-scored trait's stand-in for generation and scoring: per condition, a (n_items, 1)
    grid of the steered model's preference for each paired item (a true statement over its false
    twin, an A/B item's matching answer over the other: the scorer record's :class:`PairedItems`;
    every position steered, rescaled to the residual's norm with ``norm_preserving``)."""
    strength = resolve_strength(alpha)
    model_, tokenizer, manifest = open_model(model, layer, runtime)
    paired = _paired_items(scorer)
    named = read_condition_set(
        condition_set, vector, perturbations, None if strength is None else strength.alpha, n_alone, alphas=()
    )
    preferences = paired.preferences(model_, tokenizer, layer, read_prompt_set(prompts), named, norm_preserving)
    attrs = store.provenance(
        params,
        model=manifest.spec,
        layer=layer,
        trait=trait,
        scorer=scorer,
        condition_set=condition_set,
        environment=STATEMENT_LIKELIHOOD.environment,
        **strength_fields(strength),
        positions=truthfulness.STEERED_POSITIONS,
        norm_preserving=norm_preserving,
        conditions=list(preferences),
    )
    store.write(
        output,
        {
            **{f"scores/{n}": p[:, None] for n, p in preferences.items()},
            **{f"perplexity/{n}": np.full((p.size, 1), np.nan) for n, p in preferences.items()},
        },
        attrs,
    )
    log.info("scored %d %s under %d conditions", next(iter(preferences.values())).size, paired.unit, len(named))


def validate(
    model: str,
    prompts: str,
    trait: str,
    scorer: str,
    min_auroc: float,
    n_texts: int,
    sampling: Mapping,
    seed: int,
    runtime: Runtime,
    output: str,
) -> None:
    """Scorer validation before it judges anything: the unsteered model answers the contrast pairs'
    explicit positive and negative instructions, and the scorer must separate the completions (AUROC)."""
    model_, tokenizer, manifest = open_model(model, 0, runtime)
    if not measurement_of(scorer).generates_text:
        _validate_likelihood(model_, tokenizer, manifest, prompts, trait, scorer, min_auroc, output)
        return
    pairs = read_prompt_set(prompts)["pairs"][:n_texts]
    texts = [pair[pole] for pole in ("positive", "negative") for pair in pairs]
    zero = {BASELINE: torch.zeros(manifest.d_model)}
    records = generate_conditions(model_, tokenizer, 0, texts, zero, 1, Sampling(**sampling), seed, runtime.batch_size)
    completions = [record["completion"] for record in records]
    positive, negative = completions[: len(pairs)], completions[len(pairs) :]
    fitting = _fit_scorer(scorer, positive, negative, seed)
    held_out = fitting.get("held_out_pairs", range(len(pairs)))
    result = validate_scorer(
        get_scorer(trait, scorer, **fitting),
        [positive[i] for i in held_out],
        [negative[i] for i in held_out],
        min_auroc,
        seed=seed,
    )
    atomic_write_json(
        output,
        {
            "model": manifest.spec,
            "trait": trait,
            **result,
            **fitting,
            "examples": {"positive": positive[:3], "negative": negative[:3]},
        },
    )
    log.info("scorer %s on %s: AUROC %.3f (valid: %s)", scorer, trait, result["auroc"], result["valid"])


def _fit_scorer(scorer: str, positive: Sequence[str], negative: Sequence[str], seed: int) -> dict:
    """For a fitted scorer, its ``fit`` on a seeded half of the pairs' completions and the
    ``held_out_pairs`` it is validated on; nothing for any other scorer."""
    if not scorer_record(scorer).fitted:
        return {}
    fit_pairs, held_out = probe.split_pairs(len(positive), seed)
    fit = probe.fit_probe([positive[i] for i in fit_pairs], [negative[i] for i in fit_pairs])
    return {"fit": fit, "fit_pairs": fit_pairs.tolist(), "held_out_pairs": held_out.tolist()}


def scorer_fit(scorer: str, validation: str | None) -> dict:
    """The options that build ``scorer`` as validated: a fitted scorer's ``fit`` from its validation record."""
    if not scorer_record(scorer).fitted:
        return {}
    if not validation:
        raise ValueError(f"scorer {scorer!r} is fitted by its validation job; its score jobs need that record")
    return {"fit": json.loads(Path(validation).read_text())["fit"]}


def _validate_likelihood(
    model, tokenizer, manifest, prompts: str, trait: str, scorer: str, min_auroc: float, output: str
) -> None:
    """A likelihood scorer's record's paired validation (paired AUROC) of the unsteered model's
    preferences: as they are (the true statement over the false one), or, for a record that can
    instruct its items (A/B items), their differences between the two poles' instructions."""
    paired = _paired_items(scorer)
    prompt_set = read_prompt_set(prompts)
    zero = {BASELINE: torch.zeros(manifest.d_model)}

    def unsteered(items: Mapping) -> np.ndarray:
        return paired.preferences(model, tokenizer, 0, items, zero)[BASELINE]

    if paired.instruct is None:
        preferences = unsteered(prompt_set)
    else:
        toward, away = (unsteered(paired.instruct(prompt_set, pole)) for pole in POLES)
        preferences = toward - away
    result = paired.validation(preferences, min_auroc)
    atomic_write_json(output, {"model": manifest.spec, "trait": trait, **result})
    log.info("likelihood scorer on %s: paired AUROC %.3f (valid: %s)", trait, result["auroc"], result["valid"])
