"""Stages called directly on small synthetic files: each reads its inputs, calls the domain code and
writes one output, so its contract is testable in seconds without Snakemake or a model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from steerid import conditions, interchange, store, vectors
from steerid.pipeline import stages

D = 24
PARAMS = {
    "n_orthogonal": 3,
    "n_null": 2,
    "n_top_variance": 1,
    "n_top_gain": 2,
    "null_fraction": 0.5,
    "top_k": 4,
    "span_ks": [2, 6],
}


@pytest.fixture
def inputs(tmp_path):
    """A vector file, a spectrum file and a Jacobian file as the upstream stages write them."""
    rng = np.random.default_rng(0)
    v = rng.standard_normal(D)
    # Both bases as the upstream stages store them: columns by descending eigenvalue.
    covariance_basis = np.linalg.qr(rng.standard_normal((D, D)))[0]
    gain_basis = np.linalg.qr(rng.standard_normal((D, D)))[0]
    paths = {name: str(tmp_path / f"{name}.h5") for name in ("vector", "spectrum", "jacobian", "other")}
    store.write(paths["vector"], {"v": v}, {"model": "toy", "layer": 3})
    store.write(paths["other"], {"v": rng.standard_normal(D) + 0.3 * v}, {"model": "toy", "layer": 3})
    eigenvectors = f"{stages.PERTURBATION_VIEW}/eigenvectors"
    store.write(paths["spectrum"], {eigenvectors: covariance_basis.astype(np.float32)}, {})
    store.write(paths["jacobian"], {"pooled/eigenvectors": gain_basis}, {})
    return paths, v, covariance_basis.astype(np.float32).astype(np.float64), gain_basis


def _perturbations(paths, output, params=PARAMS, seed=7):
    stages.perturbations(
        vector=paths["vector"],
        spectra=[paths["spectrum"]],
        jacobians=[paths["jacobian"]],
        others=[paths["other"]],
        null_fraction=params["null_fraction"],
        top_k=params["top_k"],
        span_ks=params["span_ks"],
        seed=seed,
        params=params,
        output=output,
    )
    with store.open_complete(output) as handle:
        kinds = {name: handle[name][()] for name in handle if name not in ("span", "v")}
        spans = {key: handle["span"][key][()] for key in handle["span"]}
    return kinds, spans


def _inside(vectors: np.ndarray, basis: np.ndarray) -> bool:
    # The spectrum file stores eigenvectors in float32, as the pipeline does: orthonormal to ~1e-7.
    return bool(np.allclose(basis @ (basis.T @ vectors.T), vectors.T, atol=1e-6))


def test_perturbations_draw_each_kind_from_its_subspace_orthogonal_to_v_at_its_norm(inputs, tmp_path):
    paths, v, covariance_basis, gain_basis = inputs
    kinds, spans = _perturbations(paths, str(tmp_path / "out.h5"))
    assert {name: len(draws) for name, draws in kinds.items()} == {
        "orthogonal": 3,
        "null": 2,
        "top_variance": 1,
        "top_gain": 2,
        "other": 1,
    }
    for draws in kinds.values():
        np.testing.assert_allclose(draws @ v, 0.0, atol=1e-7 * float(v @ v))
        np.testing.assert_allclose(np.linalg.norm(draws, axis=1), np.linalg.norm(v), rtol=1e-12)
    null_k = max(PARAMS["n_null"] + 1, round(PARAMS["null_fraction"] * D))
    assert _inside(kinds["null"], covariance_basis[:, -null_k:])
    assert _inside(kinds["top_variance"], covariance_basis[:, : PARAMS["top_k"]])
    assert _inside(kinds["top_gain"], gain_basis[:, : PARAMS["top_k"]])
    assert sorted(spans) == sorted(
        conditions.Span(source, end, k).key
        for source in ("covariance", "jacobian")
        for end in ("bottom", "top")
        for k in PARAMS["span_ks"]
    )
    assert _inside(spans["jacobian-top-2"][None], gain_basis[:, :2])


def test_perturbations_are_a_function_of_their_seed(inputs, tmp_path):
    paths, *_ = inputs
    first, _ = _perturbations(paths, str(tmp_path / "a.h5"))
    again, _ = _perturbations(paths, str(tmp_path / "b.h5"))
    other, _ = _perturbations(paths, str(tmp_path / "c.h5"), seed=8)
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.allclose(first["orthogonal"], other["orthogonal"])


def test_a_new_perturbation_kind_is_one_registry_entry_and_a_config_key(inputs, tmp_path, monkeypatch):
    """Registering a kind is all it takes: the stage draws it, E1 gets its conditions, pooling judges it."""
    paths, v, covariance_basis, _ = inputs
    toy = conditions.PerturbationKind(
        "mid_variance",
        "mid-variance",
        "mid-variance ⟂ v",
        False,
        conditions.RandomDraw("n_mid_variance", 4, conditions.Subspace("covariance", "top", "top")),
    )
    registry = {**conditions.PERTURBATION_KINDS, toy.name: toy}
    monkeypatch.setattr(conditions, "PERTURBATION_KINDS", registry)
    monkeypatch.setattr(conditions, "PERTURBATION_TYPES", tuple(registry))
    kinds, _ = _perturbations(paths, str(tmp_path / "out.h5"), {**PARAMS, "n_mid_variance": 2})
    assert len(kinds["mid_variance"]) == 2
    assert _inside(kinds["mid_variance"], covariance_basis[:, : PARAMS["top_k"]])
    named = conditions.e1_conditions(v, kinds, 1, {}, alpha=1.0)
    assert conditions.members(list(named), "mid_variance") == ["v+mid_variance-0", "v+mid_variance-1"]
    grids = {name: np.full((3, 2), float(i)) for i, name in enumerate(named)}
    from steerid.stats import analysis

    monkeypatch.setattr(analysis, "PERTURBATION_TYPES", tuple(registry))
    assert conditions.pooled("mid_variance") in analysis.pooled_by_type(grids)


def test_a_kind_drawn_from_a_subspace_needs_its_count_in_the_params(inputs, tmp_path):
    paths, *_ = inputs
    params = {key: value for key, value in PARAMS.items() if key != "n_top_gain"}
    with pytest.raises(KeyError, match="n_top_gain"):
        _perturbations(paths, str(tmp_path / "out.h5"), params)


def test_condition_sets_read_back_every_named_addition(inputs, tmp_path):
    paths, v, *_ = inputs
    output = str(tmp_path / "perturbations.h5")
    _perturbations(paths, output)
    directions = {"pca": v[::-1].copy(), "probe": v + 1.0}
    environments = {"environments/in_distribution": v * 0.5}
    store.write(
        paths["vector"],
        {"v": v, **directions, **environments},
        {"model": "toy", "layer": 3, "mean_residual_norm": 10.0},
    )
    named = stages.read_condition_set("e7", paths["vector"], output, 1.0, 1, ())
    assert set(named) == {"baseline", "v", *(f"span:{key}" for key in _perturbations(paths, output)[1])}
    e1 = stages.read_condition_set("e1", paths["vector"], output, 2.0, 1, ())
    assert "env:in_distribution" in e1 and "orthogonal-0" in e1
    np.testing.assert_allclose(e1["v"].numpy(), 2.0 * v, rtol=1e-6)
    with pytest.raises(ValueError, match="needs a steering strength alpha"):
        stages.read_condition_set("e1", paths["vector"], output, None, 1, ())


def _contrast_and_model(tmp_path, seed=3):
    """A toy contrast dump of layer 3 and the manifest of a prepared toy model (6 blocks, width D)."""
    rng = np.random.default_rng(seed)
    positive, negative = rng.standard_normal((12, D)) + 1.0, rng.standard_normal((12, D))
    environment = {"environments/topic_shift/positive": positive[:6], "environments/topic_shift/negative": negative[:6]}
    contrast = str(tmp_path / "contrast.h5")
    store.write(contrast, {"positive": positive, "negative": negative, **environment}, {"model": "toy", "layer": 3})
    model = tmp_path / "model"
    model.mkdir()
    manifest = {"spec": "toy", "kind": "local", "load_from": ".", "revision": None, "architecture": "llama"}
    (model / "model.json").write_text(json.dumps({**manifest, "n_layers": 6, "d_model": D, "has_chat_template": False}))
    return contrast, str(model), positive, negative


def test_steering_vector_is_the_mean_difference_of_the_contrast_dump(tmp_path):
    contrast, model, positive, negative = _contrast_and_model(tmp_path)
    output = str(tmp_path / "vector.h5")
    stages.steering_vector(contrast, model, {"layer": 3}, output)
    v, mean_difference, shifted = store.read(output, "v", "mean_difference", "environments/topic_shift")
    np.testing.assert_allclose(v, positive.mean(axis=0) - negative.mean(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(v, mean_difference)
    np.testing.assert_allclose(shifted, positive[:6].mean(axis=0) - negative[:6].mean(axis=0), rtol=1e-12)
    attrs = store.read_attrs(output)
    assert attrs["params_sha256"] == store.params_digest({"layer": 3}) and attrs["model"] == "toy"
    assert attrs["source"] == "mean difference of the contrast pairs"


def _imported(tmp_path, layers=(2, 3), **entry):
    direction = np.random.default_rng(9).standard_normal(D)
    path = tmp_path / "imported.safetensors"
    interchange.export_vector({layer: direction * (layer + 1) for layer in layers}, path, model_hint="llama")
    defaults = {"file": str(path), "format": None, "index_means": None, "strength": None, "allow_model_mismatch": False}
    return direction, {**defaults, **entry}


def test_an_imported_vector_is_v_at_the_strength_asked_for_and_names_its_source(tmp_path):
    contrast, model, positive, negative = _contrast_and_model(tmp_path)
    direction, entry = _imported(tmp_path, strength=0.5)
    output = str(tmp_path / "vector.h5")
    stages.steering_vector(contrast, model, {"layer": 3}, output, imported=entry)
    v, mean_difference = store.read(output, "v", "mean_difference")
    attrs = store.read_attrs(output)
    residual_norm = np.linalg.norm(np.concatenate([positive, negative]), axis=1).mean()
    assert np.linalg.norm(v) == pytest.approx(0.5 * residual_norm, rel=1e-6)
    assert vectors.cosine(v, direction) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(mean_difference, positive.mean(axis=0) - negative.mean(axis=0), rtol=1e-12)
    assert attrs["source"] == f"imported from {entry['file']} (safetensors, layer 3)"
    assert attrs["source_norm"] == pytest.approx(4 * np.linalg.norm(direction), rel=1e-6)
    assert attrs["strength_in_residual_norms"] == 0.5 and attrs["norm"] == pytest.approx(np.linalg.norm(v))


def test_an_imported_vector_without_a_strength_keeps_the_length_the_file_stores(tmp_path):
    contrast, model, *_ = _contrast_and_model(tmp_path)
    direction, entry = _imported(tmp_path)
    output = str(tmp_path / "vector.h5")
    stages.steering_vector(contrast, model, {"layer": 3}, output, imported=entry)
    np.testing.assert_allclose(store.read(output, "v")[0], 4 * direction, rtol=1e-6)


def test_an_imported_file_without_the_steering_layer_fails_naming_it(tmp_path):
    contrast, model, *_ = _contrast_and_model(tmp_path)
    _, entry = _imported(tmp_path, layers=(1, 2))
    with pytest.raises(interchange.VectorFileError, match=r"no direction for layers \[3\]"):
        stages.steering_vector(contrast, model, {"layer": 3}, str(tmp_path / "vector.h5"), imported=entry)
    assert not (tmp_path / "vector.h5").exists()


def test_export_writes_v_as_a_gguf_and_a_safetensors_file_that_read_back(tmp_path):
    contrast, model, *_ = _contrast_and_model(tmp_path)
    vector = str(tmp_path / "vector.h5")
    stages.steering_vector(contrast, model, {"layer": 3}, vector)
    (v,) = store.read(vector, "v")
    for vector_format in ("gguf", "safetensors"):
        output = tmp_path / f"v.{vector_format}"
        stages.export_vector(vector, model, vector_format, str(output))
        read = interchange.read_vector(output)
        assert read.layers == [3] and read.model_hint == "llama"
        np.testing.assert_allclose(read.directions[3], v, rtol=1e-6)


# -- a steering site of several layers ----------------------------------------------------------------


def _layer_files(tmp_path, layer: int, seed: int) -> dict[str, str]:
    """One layer's vector (with E5's directions), other-trait vector, spectrum and Jacobian files."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(D) * (1 + layer)
    paths = {name: str(tmp_path / f"{name}-{layer}.h5") for name in ("vector", "other", "spectrum", "jacobian")}
    directions = {"mean_difference": v, "pca": rng.standard_normal(D), "probe": rng.standard_normal(D)}
    directions["environments/in_distribution"] = v + rng.standard_normal(D)
    attrs = {"model": "toy", "layer": layer, "source": "toy", "n_pairs": 8}
    store.write(
        paths["vector"],
        directions | {"v": v},
        attrs | {"norm": np.linalg.norm(v), "mean_residual_norm": 10.0 * (layer + 1)},
    )
    store.write(
        paths["other"], {"v": rng.standard_normal(D) + 0.3 * v}, attrs | {"norm": 1.0, "mean_residual_norm": 1.0}
    )
    eigenvectors = f"{stages.PERTURBATION_VIEW}/eigenvectors"
    store.write(paths["spectrum"], {eigenvectors: np.linalg.qr(rng.standard_normal((D, D)))[0].astype(np.float32)}, {})
    store.write(paths["jacobian"], {"pooled/eigenvectors": np.linalg.qr(rng.standard_normal((D, D)))[0]}, {})
    return paths


def _site(tmp_path, layers=(2, 4)):
    """The site's stacked vector and other-trait files and its perturbations, with each layer's files."""
    per_layer = [_layer_files(tmp_path, layer, seed=layer) for layer in layers]
    stacked = {name: str(tmp_path / f"{name}-site.h5") for name in ("vector", "other")}
    for name, path in stacked.items():
        stages.stack_vectors([files[name] for files in per_layer], {"layers": list(layers)}, path)
    output = str(tmp_path / "perturbations-site.h5")
    stages.perturbations(
        vector=stacked["vector"],
        spectra=[files["spectrum"] for files in per_layer],
        jacobians=[files["jacobian"] for files in per_layer],
        others=[stacked["other"]],
        null_fraction=PARAMS["null_fraction"],
        top_k=PARAMS["top_k"],
        span_ks=PARAMS["span_ks"],
        seed=7,
        params=PARAMS,
        output=output,
    )
    return per_layer, stacked, output


def test_a_sites_vectors_stack_its_layers_and_scale_as_one(tmp_path):
    per_layer, stacked, _ = _site(tmp_path)
    v, pca = store.read(stacked["vector"], "v", "pca")
    assert v.shape == pca.shape == (2, D)
    for row, files in enumerate(per_layer):
        np.testing.assert_array_equal(v[row], store.read(files["vector"], "v")[0])
    attrs = store.read_attrs(stacked["vector"])
    assert json.loads(attrs["layer"]) == [2, 4] and attrs["norm"] == pytest.approx(np.linalg.norm(v))
    assert attrs["mean_residual_norm"] == pytest.approx(np.hypot(30.0, 50.0))


def test_every_delta_of_a_site_is_one_delta_per_layer_orthogonal_to_its_v_at_its_norm(tmp_path):
    per_layer, stacked, output = _site(tmp_path)
    (v,) = store.read(stacked["vector"], "v")
    with store.open_complete(output) as handle:
        kinds = {name: handle[name][()] for name in handle if name not in ("span", "v")}
        spans = {key: handle["span"][key][()] for key in handle["span"]}
    assert kinds["orthogonal"].shape == (3, 2, D) and kinds["other"].shape == (1, 2, D)
    for draws in [*kinds.values(), *(span[None] for span in spans.values())]:
        for row in range(2):
            layer_v = v[row]
            np.testing.assert_allclose(draws[:, row] @ layer_v, 0.0, atol=1e-7 * float(layer_v @ layer_v))
            np.testing.assert_allclose(np.linalg.norm(draws[:, row], axis=-1), np.linalg.norm(layer_v), rtol=1e-12)
    for row, files in enumerate(per_layer):
        (gain_basis,) = store.read(files["jacobian"], "pooled/eigenvectors")
        assert _inside(kinds["top_gain"][:, row], gain_basis[:, : PARAMS["top_k"]])


def test_a_sites_first_layer_keeps_the_one_layer_draws_and_its_other_layers_draw_their_own(tmp_path):
    per_layer, _, output = _site(tmp_path)
    first = per_layer[0]
    one_layer, _ = _perturbations(first, str(tmp_path / "alone.h5"))
    with store.open_complete(output) as handle:
        site = {name: handle[name][()] for name in one_layer}
    for name in one_layer:
        np.testing.assert_array_equal(site[name][:, 0], one_layer[name])
    # Two layers with the same directions and bases: only the seed can tell their draws apart.
    (tmp_path / "same").mkdir()
    _, _, same = _site(tmp_path / "same", layers=(2, 4))
    with store.open_complete(same) as handle:
        draws = handle["orthogonal"][()]
    units = draws / np.linalg.norm(draws, axis=-1, keepdims=True)
    assert np.abs(np.sum(units[:, 0] * units[:, 1], axis=-1)).max() < 0.9


def test_a_sites_conditions_scale_the_stack_as_one_and_directions_per_layer(tmp_path):
    _, stacked, output = _site(tmp_path)
    (v,) = store.read(stacked["vector"], "v")
    e1 = stages.read_condition_set("e1", stacked["vector"], output, 2.0, 1, ())
    assert e1["orthogonal-0"].shape == (2, D)
    np.testing.assert_allclose(e1["v"].numpy(), 2.0 * v, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(e1["pca"].numpy(), axis=-1), 2.0 * np.linalg.norm(v, axis=-1), rtol=1e-5)
    e2 = stages.read_condition_set("e2", stacked["vector"], output, None, 0, (0.1,))
    site_residual_norm = store.read_attrs(stacked["vector"])["mean_residual_norm"]
    assert np.linalg.norm(e2["v@0.1"].numpy()) == pytest.approx(0.1 * site_residual_norm, rel=1e-5)
