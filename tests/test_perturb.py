import numpy as np
import pytest

from steerid.perturb import eigen_subspace, orthogonal_draws

D = 64


@pytest.fixture
def v():
    return np.random.default_rng(1).standard_normal(D) * 3


def test_random_orthogonal_geometry(v):
    deltas = orthogonal_draws(v, 5, seed=0)
    np.testing.assert_allclose(np.linalg.norm(deltas, axis=1), np.linalg.norm(v), rtol=1e-12)
    assert np.abs(deltas @ v).max() / np.linalg.norm(v) ** 2 < 1e-12
    gram = deltas @ deltas.T / np.linalg.norm(v) ** 2
    np.testing.assert_allclose(gram, np.eye(5), atol=1e-12)


def test_subspace_draws_stay_in_the_subspace_and_orthogonal_to_v(v):
    basis, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((D, 10)))
    deltas = orthogonal_draws(v, 4, seed=0, basis=basis)
    outside = deltas - (deltas @ basis) @ basis.T
    assert np.abs(outside).max() < 1e-10
    assert np.abs(deltas @ v).max() < 1e-9
    np.testing.assert_allclose(np.linalg.norm(deltas, axis=1), np.linalg.norm(v), rtol=1e-12)


def test_draws_are_deterministic_per_seed(v):
    np.testing.assert_array_equal(orthogonal_draws(v, 3, 7), orthogonal_draws(v, 3, 7))
    assert not np.allclose(orthogonal_draws(v, 3, 7), orthogonal_draws(v, 3, 8))


def test_too_many_draws_for_the_subspace(v):
    basis = np.eye(D)[:, :3]
    with pytest.raises(ValueError, match="cannot draw 3 orthogonal directions from a 3-dimensional subspace"):
        orthogonal_draws(v, 3, 0, basis)


def test_eigen_subspace_ends():
    vectors = np.eye(6)
    np.testing.assert_array_equal(eigen_subspace(vectors, 2, "top"), vectors[:, :2])
    np.testing.assert_array_equal(eigen_subspace(vectors, 2, "bottom"), vectors[:, -2:])
    with pytest.raises(ValueError, match="'middle'"):
        eigen_subspace(vectors, 2, "middle")
