import numpy as np
import pytest

from steerid.vectors import cosine, mean_difference, pca_direction, probe_direction


def _paired(n=60, d=6, seed=0):
    """Pairs whose differences vary mostly along one known axis, with a mean along another mix."""
    rng = np.random.default_rng(seed)
    negative = rng.normal(size=(n, d))
    axis = np.zeros(d)
    axis[1] = 1.0
    differences = np.outer(rng.normal(scale=5.0, size=n), axis) + rng.normal(scale=0.1, size=(n, d)) + 0.5 * np.ones(d)
    return negative + differences, negative


def _reference_pc(positive, negative):
    # Eigenvector of the sample covariance of the differences, by a different route than the SVD.
    _, vectors = np.linalg.eigh(np.cov((positive - negative).T))
    return vectors[:, -1]


def test_pca_direction_is_the_top_covariance_eigenvector_at_natural_norm():
    positive, negative = _paired()
    direction = pca_direction(positive, negative)
    unit = _reference_pc(positive, negative)
    md = mean_difference(positive, negative)
    unit = unit if unit @ md > 0 else -unit
    np.testing.assert_allclose(direction, unit * (md @ unit), rtol=1e-10, atol=1e-12)
    assert direction @ md > 0
    assert abs(cosine(direction, [0, 1, 0, 0, 0, 0])) > 0.99


def test_pca_direction_sign_follows_the_mean_difference():
    positive, negative = _paired()
    flipped = pca_direction(negative, positive)
    np.testing.assert_allclose(flipped, -pca_direction(positive, negative), atol=1e-12)


@pytest.mark.parametrize(
    "positive, negative",
    [
        (np.zeros((3, 4)), np.zeros((3, 5))),
        (np.zeros((3, 4)), np.zeros((2, 4))),
        (np.zeros((1, 4)), np.zeros((1, 4))),
        (np.zeros((0, 4)), np.zeros((0, 4))),
        (np.zeros(4), np.zeros(4)),
    ],
)
def test_pca_direction_rejects_bad_shapes(positive, negative):
    with pytest.raises(ValueError, match=str(positive.shape).replace("(", r"\(").replace(")", r"\)")):
        pca_direction(positive, negative)


def test_pca_direction_rejects_constant_differences():
    negative = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(ValueError, match="undefined"):
        pca_direction(negative + 1.0, negative)


def _gaussian_classes(n=2000, seed=1):
    """Two Gaussian classes with a shared anisotropic covariance: the LDA direction is Σ⁻¹Δμ."""
    rng = np.random.default_rng(seed)
    d = 5
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    covariance = basis @ np.diag([9.0, 4.0, 1.0, 0.25, 0.04]) @ basis.T
    shift = basis @ np.array([1.0, 1.0, 0.3, 0.3, 0.3])
    chol = np.linalg.cholesky(covariance)
    negative = rng.normal(size=(n, d)) @ chol.T
    positive = rng.normal(size=(n, d)) @ chol.T + shift
    return positive, negative, np.linalg.solve(covariance, shift)


def test_probe_recovers_the_discriminant_direction():
    positive, negative, discriminant = _gaussian_classes()
    direction = probe_direction(positive, negative, l2=1e-3)
    assert cosine(direction, discriminant) > 0.95
    # Not the mean difference: the covariance tilts the optimal boundary away from it.
    assert cosine(mean_difference(positive, negative), discriminant) < 0.9


def test_probe_sign_and_natural_norm():
    positive, negative, _ = _gaussian_classes(n=300)
    direction = probe_direction(positive, negative)
    md = mean_difference(positive, negative)
    unit = direction / np.linalg.norm(direction)
    assert direction @ md > 0
    assert np.linalg.norm(direction) == pytest.approx(abs(md @ unit), rel=1e-12)
    np.testing.assert_allclose(probe_direction(negative, positive), -direction, rtol=1e-5, atol=1e-7)


def _gradient_descent_probe(positive, negative, l2, steps=40000, rate=0.5):
    """Plain-numpy full-batch gradient descent on the same standardised, penalised objective."""
    rows = np.concatenate([positive, negative])
    labels = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    scale = rows.std(axis=0)
    features = (rows - rows.mean(axis=0)) / scale
    weights, bias = np.zeros(rows.shape[1]), 0.0
    for _ in range(steps):
        error = 1.0 / (1.0 + np.exp(-(features @ weights + bias))) - labels
        weights -= rate * (features.T @ error / len(labels) + l2 * weights)
        bias -= rate * error.mean()
    raw = weights / scale
    unit = raw / np.linalg.norm(raw)
    return unit * (mean_difference(positive, negative) @ unit)


def test_probe_matches_a_gradient_descent_reference():
    rng = np.random.default_rng(2)
    negative = rng.normal(size=(25, 3)) * [1.0, 3.0, 0.2]
    positive = rng.normal(size=(30, 3)) * [1.0, 3.0, 0.2] + [0.8, 0.5, 0.1]
    expected = _gradient_descent_probe(positive, negative, l2=0.1)
    np.testing.assert_allclose(probe_direction(positive, negative, l2=0.1), expected, rtol=1e-7, atol=1e-9)


def test_probe_rejects_bad_inputs():
    rows = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"\(4, 3\) and \(4, 2\)"):
        probe_direction(rows, np.ones((4, 2)))
    with pytest.raises(ValueError, match="l2 > 0"):
        probe_direction(rows, rows - 1, l2=0.0)


def test_probe_warns_when_it_stops_early():
    positive, negative, _ = _gaussian_classes(n=200)
    with pytest.warns(RuntimeWarning, match="L-BFGS stopped"):
        probe_direction(positive, negative, max_iter=1)


def test_cosine():
    assert cosine([1.0, 0.0], [3.0, 0.0]) == pytest.approx(1.0)
    assert cosine([1.0, 0.0], [0.0, -2.0]) == pytest.approx(0.0)
    assert cosine([1.0, 1.0], [-1.0, -1.0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="zero vector"):
        cosine([0.0, 0.0], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"\(2,\) and \(3,\)"):
        cosine([1.0, 0.0], [1.0, 0.0, 0.0])
