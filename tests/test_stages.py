"""Stages called directly on small synthetic files: each reads its inputs, calls the domain code and
writes one output, so its contract is testable in seconds without Snakemake or a model."""

from __future__ import annotations

import numpy as np
import pytest

from steerid import conditions, store
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
    store.write(paths["vector"], {"mean_difference": v}, {"model": "toy", "layer": 3})
    store.write(paths["other"], {"mean_difference": rng.standard_normal(D) + 0.3 * v}, {"model": "toy", "layer": 3})
    eigenvectors = f"{stages.PERTURBATION_VIEW}/eigenvectors"
    store.write(paths["spectrum"], {eigenvectors: covariance_basis.astype(np.float32)}, {})
    store.write(paths["jacobian"], {"pooled/eigenvectors": gain_basis}, {})
    return paths, v, covariance_basis.astype(np.float32).astype(np.float64), gain_basis


def _perturbations(paths, output, params=PARAMS, seed=7):
    stages.perturbations(
        vector=paths["vector"],
        spectrum=paths["spectrum"],
        jacobian=paths["jacobian"],
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
        {"mean_difference": v, **directions, **environments},
        {"model": "toy", "layer": 3, "mean_residual_norm": 10.0},
    )
    named = stages.read_condition_set("e7", paths["vector"], output, 1.0, 1, ())
    assert set(named) == {"baseline", "v", *(f"span:{key}" for key in _perturbations(paths, output)[1])}
    e1 = stages.read_condition_set("e1", paths["vector"], output, 2.0, 1, ())
    assert "env:in_distribution" in e1 and "orthogonal-0" in e1
    np.testing.assert_allclose(e1["v"].numpy(), 2.0 * v, rtol=1e-6)
    with pytest.raises(ValueError, match="needs a steering strength alpha"):
        stages.read_condition_set("e1", paths["vector"], output, None, 1, ())


def test_steering_vector_is_the_mean_difference_of_the_contrast_dump(tmp_path):
    rng = np.random.default_rng(3)
    positive, negative = rng.standard_normal((12, D)) + 1.0, rng.standard_normal((12, D))
    environment = {"environments/topic_shift/positive": positive[:6], "environments/topic_shift/negative": negative[:6]}
    contrast = str(tmp_path / "contrast.h5")
    store.write(contrast, {"positive": positive, "negative": negative, **environment}, {"model": "toy", "layer": 3})
    output = str(tmp_path / "vector.h5")
    stages.steering_vector(contrast, {"layer": 3}, output)
    v, shifted = store.read(output, "mean_difference", "environments/topic_shift")
    np.testing.assert_allclose(v, positive.mean(axis=0) - negative.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(shifted, positive[:6].mean(axis=0) - negative[:6].mean(axis=0), rtol=1e-12)
    attrs = store.read_attrs(output)
    assert attrs["params_sha256"] == store.params_digest({"layer": 3}) and attrs["model"] == "toy"
