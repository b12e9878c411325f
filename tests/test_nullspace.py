import itertools

import numpy as np
import pytest

from steerid.engine.jacobian import stacked_gram_spectrum
from steerid.linalg import effective_rank
from steerid.linalg.nullspace import gram_from_spectrum, inert_dimension, recovery_curve, subspace_overlap_vs_random


def _low_rank_jacobians(ranks, d=12, rows=20, seed=0):
    """Random (rows, d) matrices of the given exact ranks, at very different overall scales."""
    rng = np.random.default_rng(seed)
    return [10.0 ** (2 * i) * rng.normal(size=(rows, r)) @ rng.normal(size=(r, d)) for i, r in enumerate(ranks)]


def _direct_inert(jacobians, rtol):
    """d minus the singular values above rtol of the stack of blocks scaled to largest singular value 1."""
    stacked = np.vstack([J / np.linalg.norm(J, 2) for J in jacobians])
    sigma = np.linalg.svd(stacked, compute_uv=False)
    return stacked.shape[1] - int(np.count_nonzero(sigma > rtol))


@pytest.mark.parametrize("ranks", [(3,), (3, 4), (2, 2, 5), (6, 7), (1, 1, 1, 1)])
def test_inert_dimension_matches_a_direct_svd(ranks):
    jacobians = _low_rank_jacobians(ranks)
    grams = [J.T @ J for J in jacobians]
    expected = 12 - min(12, sum(ranks))  # generic random blocks: ranks add up to d
    assert inert_dimension(grams, 1e-6) == expected == _direct_inert(jacobians, 1e-6)
    assert inert_dimension(grams, 0.2) == _direct_inert(jacobians, 0.2)


def test_normalisation_keeps_a_small_environment_from_being_swamped():
    small, large = _low_rank_jacobians((3, 3))  # the second is 100x larger
    grams = [small.T @ small, large.T @ large]
    # Unnormalised, the small block's singular values sit below 2 % of the large one's ...
    raw = np.linalg.svd(np.vstack([small, large]), compute_uv=False)
    assert 12 - np.count_nonzero(raw > 0.02 * raw.max()) == 12 - 3
    # ... normalised, each block is measured against its own largest gain and all 6 count.
    assert inert_dimension(grams, 0.02) == _direct_inert([small, large], 0.02) == 12 - 6


def test_recovery_curve_shrinks_with_more_environments():
    names = ["a", "b", "c", "d"]
    grams = {name: J.T @ J for name, J in zip(names, _low_rank_jacobians((2, 3, 1, 2), seed=1))}
    curve = recovery_curve(grams, 1e-6)
    assert [row["m"] for row in curve] == [1, 2, 3, 4]
    assert curve[0]["subsets"] == [["a"], ["b"], ["c"], ["d"]]
    assert curve[0]["inert_dimensions"] == [10, 9, 11, 10]
    assert curve[-1]["inert_dimensions"] == [12 - 8] and curve[-1]["mean_fraction"] == pytest.approx(4 / 12)
    for row in curve:
        assert len(row["subsets"]) == len(list(itertools.combinations(names, row["m"])))
        assert row["min"] <= row["mean"] <= row["max"]
    for smaller, larger in itertools.pairwise(curve):
        assert larger["mean"] <= smaller["mean"] and larger["max"] <= smaller["max"] and larger["min"] <= smaller["min"]


def test_gram_from_spectrum_round_trip():
    rng = np.random.default_rng(3)
    J = rng.normal(size=(30, 8))
    gram = J.T @ J
    values, vectors = np.linalg.eigh(gram)
    rebuilt = gram_from_spectrum(values[::-1], vectors[:, ::-1])
    np.testing.assert_allclose(rebuilt, gram, rtol=0, atol=1e-10 * np.abs(gram).max())
    assert np.array_equal(rebuilt, rebuilt.T)
    with pytest.raises(ValueError, match=r"\(8,\) and \(8, 7\)"):
        gram_from_spectrum(values, vectors[:, 1:])


def test_bad_grams_are_rejected():
    with pytest.raises(ValueError, match="at least one"):
        inert_dimension([], 0.1)
    with pytest.raises(ValueError, match="different shapes"):
        inert_dimension([np.eye(3), np.eye(4)], 0.1)
    with pytest.raises(ValueError, match="no positive eigenvalue"):
        inert_dimension([np.zeros((3, 3))], 0.1)
    with pytest.raises(ValueError, match="rtol"):
        inert_dimension([np.eye(3)], -0.1)


def test_one_gram_matches_effective_rank():
    (J,) = _low_rank_jacobians((8,), seed=2)
    sigma = np.linalg.svd(J, compute_uv=False)
    for rtol in (0.01, 0.1, 0.5):
        assert inert_dimension([J.T @ J], rtol) == 12 - effective_rank(sigma, rtol)


def test_subspace_overlap_vs_random():
    rng = np.random.default_rng(4)
    basis, _ = np.linalg.qr(rng.normal(size=(20, 20)))
    inside, outside = basis[:, :5], basis[:, 5:]
    same = subspace_overlap_vs_random(inside, inside @ rng.normal(size=(5, 5)))
    assert same["overlap"] == pytest.approx(1.0) and same["max_angle_deg"] == pytest.approx(0.0, abs=1e-6)
    orthogonal = subspace_overlap_vs_random(inside, outside)
    assert orthogonal["overlap"] == pytest.approx(0.0, abs=1e-12)
    assert orthogonal["min_angle_deg"] == pytest.approx(90.0)
    assert (orthogonal["dim_a"], orthogonal["dim_b"], orthogonal["random_overlap"]) == (5, 15, 15 / 20)


def test_random_overlap_is_the_chance_level():
    rng = np.random.default_rng(5)
    fixed = np.linalg.qr(rng.normal(size=(20, 3)))[0]
    samples = [subspace_overlap_vs_random(fixed, rng.normal(size=(20, 5))) for _ in range(2000)]
    assert np.mean([s["overlap"] for s in samples]) == pytest.approx(samples[0]["random_overlap"], abs=0.01)


def test_two_prompts_leave_fewer_inert_directions_than_either(smollm2):
    model, tokenizer, _ = smollm2
    grams = []
    for prompt in ["Name a colour.", "Say hello."]:
        # A late layer (26 of 30) keeps the d = 576 JVPs cheap: only 4 blocks carry tangents.
        spectrum = stacked_gram_spectrum(model, tokenizer, 26, [prompt], positions=(-1,), pair_top_k=1)
        grams.append(gram_from_spectrum(spectrum.eigenvalues, spectrum.eigenvectors))
    for rtol in (0.01, 0.1):
        alone = [inert_dimension([gram], rtol) for gram in grams]
        together = inert_dimension(grams, rtol)
        assert together <= min(alone) and together < 576, (rtol, alone, together)
