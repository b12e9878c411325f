"""Sparsity as a route to identifiability: basis pursuit over the inert subspace, planted cases where
compressed-sensing theory says recovery must succeed and where it must fail, and the uniqueness test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from steerid import store
from steerid.experiments import e9_sparsity
from steerid.experiments.settings import SparsityGrid
from steerid.linalg.sparsity import basis_pursuit, gain_split, planted_recovery, sparsest_equivalent

D = 128


@pytest.fixture(scope="module")
def split():
    """A random orthonormal basis cut in half: 64 responsive directions, 64 inert ones."""
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((D, D)))
    return q[:, : D // 2], q[:, D // 2 :]


def test_a_sparse_direction_hidden_in_its_equivalence_class_is_recovered(split):
    # 64 measurements of d = 128: the Donoho-Tanner transition is near k = 24, so k = 4 must succeed.
    assert planted_recovery(*split, k=4, trials=5, seed=1) == 1.0


def test_a_dense_direction_is_not_recovered(split):
    # k = 48 lies far beyond the transition: the least-L1 member of its class is another vector.
    assert planted_recovery(*split, k=48, trials=5, seed=1) == 0.0


def test_the_sparsest_equivalent_steers_like_v_and_is_certified_unique(split):
    responsive, inert = split
    rng = np.random.default_rng(2)
    planted = np.zeros(D)
    planted[[3, 40, 99]] = [1.5, -2.0, 0.7]
    v = planted + inert @ rng.standard_normal(inert.shape[1])
    found = sparsest_equivalent(v, responsive)
    np.testing.assert_allclose(responsive.T @ found.vector, responsive.T @ v, atol=1e-9)
    np.testing.assert_allclose(found.vector, planted, atol=1e-8)
    assert found.support == 3 and found.unique and found.certificate_margin > 0


def test_without_a_strict_certificate_the_minimiser_is_not_unique():
    # One constraint x1 + x2 = 1: every x on the segment between (1, 0) and (0, 1) has ‖x‖₁ = 1.
    responsive = np.array([[1.0], [1.0]]) / np.sqrt(2)
    found = sparsest_equivalent(np.array([0.5, 0.5]), responsive)
    assert np.abs(found.vector).sum() == pytest.approx(1.0)
    assert not found.unique and found.certificate_margin <= 1e-9


def test_gain_split_cuts_at_a_fraction_of_the_largest_singular_value():
    eigenvalues = np.array([4.0, 1.0, 0.0025, 0.0])  # σ = 2, 1, 0.05, 0
    responsive, inert = gain_split(eigenvalues, np.eye(4), rtol=0.05)
    assert responsive.shape == (4, 2) and inert.shape == (4, 2)
    with pytest.raises(ValueError, match="rtol must be in"):
        gain_split(eigenvalues, np.eye(4), rtol=1.5)
    with pytest.raises(ValueError, match=r"eigenvectors \(d, d\)"):
        gain_split(eigenvalues, np.eye(3), rtol=0.05)


def test_bad_shapes_and_sizes_are_named(split):
    with pytest.raises(ValueError, match="responsive basis"):
        basis_pursuit(np.ones(D + 1), split[0])
    with pytest.raises(ValueError, match="1 <= k <= d=128"):
        planted_recovery(*split, k=0, trials=1, seed=0)


def write_study(directory, planted: np.ndarray, responsive_dim: int, seed: int = 0) -> dict[str, str]:
    """A steering vector (the planted one plus an inert part) and a Jacobian Gram whose top
    ``responsive_dim`` eigenvectors carry all the gain, as the E9 stage reads them."""
    d = planted.size
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eigenvalues = np.concatenate([np.linspace(4.0, 1.0, responsive_dim), np.zeros(d - responsive_dim)])
    v = planted + basis[:, responsive_dim:] @ rng.standard_normal(d - responsive_dim)
    paths = {"vector": str(directory / "vector.h5"), "jacobian": str(directory / "jacobian.h5")}
    store.write(paths["vector"], {"v": v}, {"model": "toy", "layer": 3})
    store.write(
        paths["jacobian"],
        {"pooled/eigenvalues": eigenvalues, "pooled/eigenvectors": basis},
        {"model": "toy", "layer": 3},
    )
    return paths


def test_the_e9_stage_finds_the_planted_vector_in_a_synthetic_study(tmp_path):
    planted = np.zeros(D)
    planted[[5, 70]] = [2.0, -1.0]
    paths = write_study(tmp_path, planted, responsive_dim=64)
    settings = SparsityGrid(rank_threshold=0.05, ks=[1, 48], inert_fractions=[0.25], trials=2, seed=0)
    output = tmp_path / "e9.json"
    e9_sparsity.stats(paths["vector"], paths["jacobian"], "toy-trait", settings, {"seed": 0}, str(output))
    result = json.loads(output.read_text())
    assert result["inert_dim"] == D - 64 and result["sparsest"]["support"] == 2 and result["sparsest"]["unique"]
    assert result["sparsest"]["cosine_with_v"] < 0.5  # the sparse member of the class is not v itself
    by_size = {row["inert_dim"]: row for row in result["recovery"]}
    assert set(by_size) == {32, 64} and by_size[64]["this_layer"]
    assert by_size[64]["recovered"] == [1.0, 0.0] and by_size[32]["recovered"][0] == 1.0
    assert "2 non-zero entries" in e9_sparsity.finding(result)
