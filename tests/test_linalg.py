"""Tests of steerid.linalg: streaming covariance (in memory and from HDF5), randomized and
adaptive eigensolvers, spectrum policy and rank summaries, every error path, and hypothesis
fuzzing of the native bindings (only documented exception types, never a crash)."""

from __future__ import annotations

import contextlib
import math
import pickle
import re
import threading

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steerid import _native
from steerid.linalg import (
    StreamingCovariance,
    covariance_from_hdf5,
    descending_eigh,
    effective_rank,
    eigenvalue_rank_summary,
    explained_variance_rank,
    fix_signs,
    numerical_rank,
    participation_ratio,
    principal_angles,
    randomized_eigh,
    randomized_eigh_adaptive,
    singular_value_rank_summary,
    singular_values_from_eigenvalues,
    spectrum_eigvalsh,
    subspace_overlap,
    symmetrised,
    top_eigenpairs,
)


def rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    """Max abs difference over max abs entry of the reference."""
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def random_chunks(X: np.ndarray, rng: np.random.Generator, max_size: int = 97) -> list[np.ndarray]:
    """Split X into C-contiguous chunks of random size, with empty chunks interspersed."""
    chunks = [np.ascontiguousarray(X[:0])]
    start = 0
    while start < len(X):
        size = int(rng.integers(0, max_size))
        chunks.append(np.ascontiguousarray(X[start : start + size]))
        start += size
    chunks.append(np.ascontiguousarray(X[:0]))
    return chunks


def stream(X: np.ndarray, rng: np.random.Generator, max_size: int = 97) -> StreamingCovariance:
    acc = StreamingCovariance(X.shape[1])
    for chunk in random_chunks(X, rng, max_size):
        acc.update(chunk)
    return acc


def psd_with_spectrum(eigenvalues: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric matrix Q diag(eigenvalues) Q^T with a random orthogonal Q (exactly symmetrised)."""
    d = eigenvalues.shape[0]
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    c = (q * eigenvalues) @ q.T
    return (c + c.T) / 2, q


# --------------------------------------------------------------------------- streaming covariance


@pytest.mark.parametrize(
    ("mean", "scale"),
    [(0.0, 1.0), (1e4, 1.0), (-3.0, 1e-3)],
    ids=["centred", "mean-1e4", "small-spread"],
)
def test_chunked_float64_matches_numpy_cov(mean: float, scale: float) -> None:
    rng = np.random.default_rng(1)
    mixing = rng.standard_normal((12, 12))
    X = mean + scale * (rng.standard_normal((3000, 12)) @ mixing)
    acc = stream(X, rng)
    assert acc.count == 3000
    assert acc.dim == 12
    cov = acc.covariance()
    assert cov.dtype == np.float64 and cov.shape == (12, 12)
    assert np.array_equal(cov, cov.T)
    assert rel_err(cov, np.cov(X, rowvar=False)) < 1e-10
    assert rel_err(acc.mean, X.mean(axis=0)) < 1e-12
    assert rel_err(acc.covariance(ddof=0), np.cov(X, rowvar=False, ddof=0)) < 1e-10


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_low_precision_input_matches_numpy_cov_of_upcast_data(dtype: type) -> None:
    rng = np.random.default_rng(2)
    offset = 1e4 if dtype is np.float32 else 10.0
    X = (offset + rng.standard_normal((2500, 9))).astype(dtype)
    acc = stream(X, rng)
    assert rel_err(acc.covariance(), np.cov(X.astype(np.float64), rowvar=False)) < 1e-10


def test_single_update_larger_than_internal_block() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((5000, 20)) + 7.0
    acc = StreamingCovariance(20)
    acc.update(X)
    assert rel_err(acc.covariance(), np.cov(X, rowvar=False)) < 1e-10


def test_many_single_row_blocks() -> None:
    rng = np.random.default_rng(4)
    X = rng.standard_normal((400, 6)) * 2.0 + 1e4
    acc = StreamingCovariance(6)
    for row in X:
        acc.update(row[None, :])
    assert acc.count == 400
    assert rel_err(acc.covariance(), np.cov(X, rowvar=False)) < 1e-10


def test_drifting_block_means_are_merged_exactly() -> None:
    # Chan's merge term rides in the rank-k update through a shifted centre; with block means
    # far apart compared with the spread, that shift is large, so this is where it could lose
    # precision.
    rng = np.random.default_rng(14)
    X = rng.standard_normal((3000, 8)) * np.linspace(1e-2, 1.0, 8)
    X += 1e3 * np.linspace(0.0, 1.0, 3000)[:, None] * rng.standard_normal(8)
    acc = StreamingCovariance(8)
    for start, stop in zip([0, 1, 8, 700, 1024, 2048], [1, 8, 700, 1024, 2048, 3000]):
        acc.update(X[start:stop])
    assert rel_err(acc.covariance(), np.cov(X, rowvar=False)) < 1e-10
    assert rel_err(acc.mean, X.mean(axis=0)) < 1e-12


def test_empty_accumulator_and_empty_blocks() -> None:
    acc = StreamingCovariance(3)
    acc.update(np.empty((0, 3)))
    assert acc.count == 0
    assert np.array_equal(acc.mean, np.zeros(3))
    acc.update(np.ones((1, 3)))
    assert acc.count == 1
    assert np.array_equal(acc.covariance(ddof=0), np.zeros((3, 3)))


def test_merge_of_shards_in_different_orders() -> None:
    rng = np.random.default_rng(5)
    X = rng.standard_normal((4000, 10)) @ rng.standard_normal((10, 10)) + 50.0
    shards = np.array_split(X, [300, 1700, 1701, 3100])  # includes a 1-row shard
    expected = np.cov(X, rowvar=False)

    def shard_acc(part: np.ndarray) -> StreamingCovariance:
        return stream(part, rng, max_size=400)

    # Left fold in order, left fold reversed, and a balanced tree.
    forward = StreamingCovariance(10)
    for part in shards:
        forward.merge(shard_acc(part))
    backward = StreamingCovariance(10)
    for part in shards[::-1]:
        backward.merge(shard_acc(part))
    accs = [shard_acc(part) for part in shards]
    accs[0].merge(accs[1])
    accs[2].merge(accs[3])
    accs[2].merge(accs[4])
    accs[0].merge(accs[2])
    for acc in (forward, backward, accs[0]):
        assert acc.count == len(X)
        assert rel_err(acc.covariance(), expected) < 1e-10
        assert rel_err(acc.mean, X.mean(axis=0)) < 1e-12


def test_merge_with_empty_and_with_itself() -> None:
    rng = np.random.default_rng(6)
    X = rng.standard_normal((200, 4))
    acc = StreamingCovariance(4)
    acc.update(X)
    acc.merge(StreamingCovariance(4))
    assert acc.count == 200
    acc.merge(acc)
    doubled = np.vstack([X, X])
    assert acc.count == 400
    assert rel_err(acc.covariance(), np.cov(doubled, rowvar=False)) < 1e-10


def test_checkpoint_and_resume() -> None:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3000, 8)) + 1e3
    first, second = X[:1234], X[1234:]
    uninterrupted = StreamingCovariance(8)
    uninterrupted.update(first)
    uninterrupted.update(second)

    acc = StreamingCovariance(8)
    acc.update(first)
    state = acc.state()
    assert state["count"] == 1234 and state["dim"] == 8
    assert state["mean"].shape == (8,) and state["m2"].shape == (8, 8)
    assert np.array_equal(state["m2"], state["m2"].T)
    # Round-trip through plain numpy containers, as an HDF5/NPZ checkpoint would.
    stored = {key: (np.asarray(value) if key != "format" else value) for key, value in state.items()}
    resumed = StreamingCovariance.from_state(stored)
    resumed.update(second)
    assert resumed.count == 3000
    assert np.array_equal(resumed.covariance(), uninterrupted.covariance())
    assert rel_err(resumed.covariance(), np.cov(X, rowvar=False)) < 1e-10

    clone = pickle.loads(pickle.dumps(resumed))
    assert clone.count == 3000
    assert np.array_equal(clone.covariance(), resumed.covariance())


def test_state_is_a_snapshot() -> None:
    acc = StreamingCovariance(2)
    acc.update(np.array([[1.0, 2.0], [3.0, 5.0]]))
    state = acc.state()
    acc.update(np.array([[10.0, -1.0]]))
    assert state["count"] == 2
    assert np.array_equal(state["mean"], [2.0, 3.5])


def test_concurrent_updates_from_threads() -> None:
    rng = np.random.default_rng(8)
    X = rng.standard_normal((8000, 16)) + 3.0
    acc = StreamingCovariance(16)
    parts = np.array_split(X, 4)

    def feed(part: np.ndarray) -> None:
        for chunk in np.array_split(part, 10):
            acc.update(np.ascontiguousarray(chunk))

    threads = [threading.Thread(target=feed, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert acc.count == len(X)
    assert rel_err(acc.covariance(), np.cov(X, rowvar=False)) < 1e-10


# --------------------------------------------------------------------------- randomized eigh


@pytest.fixture(scope="module")
def decaying() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    eigenvalues = 0.8 ** np.arange(300)
    c, _ = psd_with_spectrum(eigenvalues, seed=11)
    ref_vals, ref_vecs = np.linalg.eigh(c)
    return c, ref_vals[::-1], ref_vecs[:, ::-1]


def test_randomized_eigh_matches_lapack(decaying: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    c, ref_vals, ref_vecs = decaying
    k = 10
    vals, vecs = randomized_eigh(c, k)
    assert vals.shape == (k,) and vecs.shape == (300, k)
    assert vals.dtype == np.float64 and vecs.dtype == np.float64
    assert np.all(np.diff(vals) < 0)
    assert np.max(np.abs(vals - ref_vals[:k]) / ref_vals[:k]) < 1e-8
    assert np.abs(vecs.T @ vecs - np.eye(k)).max() < 1e-12
    cosines = np.abs(np.sum(vecs * ref_vecs[:, :k], axis=0))
    assert cosines.min() > 1 - 1e-8


def test_randomized_eigh_is_deterministic_and_seed_independent(
    decaying: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    c, ref_vals, _ = decaying
    vals_a, vecs_a = randomized_eigh(c, 8, oversample=10, power_iters=2, seed=123)
    vals_b, vecs_b = randomized_eigh(c, 8, oversample=10, power_iters=2, seed=123)
    assert np.array_equal(vals_a, vals_b) and np.array_equal(vecs_a, vecs_b)
    vals_c, vecs_c = randomized_eigh(c, 8, seed=2**64 - 1)
    assert not np.array_equal(vals_a, vals_c)
    assert np.max(np.abs(vals_a - vals_c) / ref_vals[:8]) < 1e-8
    # The sign convention makes vectors from different seeds agree too.
    assert np.abs(vecs_a - vecs_c).max() < 1e-6


def test_randomized_eigh_float32_low_rank_and_full_k() -> None:
    eigenvalues = np.zeros(40)
    eigenvalues[:3] = [5.0, 2.0, 1.0]
    c, _ = psd_with_spectrum(eigenvalues, seed=12)
    vals, vecs = randomized_eigh(c, 6, oversample=4, power_iters=1)
    assert np.allclose(vals[:3], [5.0, 2.0, 1.0], rtol=1e-12)
    assert np.abs(vals[3:]).max() < 1e-12
    assert np.abs(vecs.T @ vecs - np.eye(6)).max() < 1e-12

    vals32, _ = randomized_eigh(c.astype(np.float32), 3)
    assert np.allclose(vals32, [5.0, 2.0, 1.0], rtol=1e-5)

    small, _ = psd_with_spectrum(np.array([4.0, 3.0, 2.0, 1.0]), seed=13)
    vals_full, vecs_full = randomized_eigh(small, 4, power_iters=0)
    assert np.allclose(vals_full, [4.0, 3.0, 2.0, 1.0], rtol=1e-12)
    assert np.allclose(vecs_full @ np.diag(vals_full) @ vecs_full.T, small, atol=1e-12)


# --------------------------------------------------------------------------- numerical rank


def test_numerical_rank_matches_eigvalsh_count() -> None:
    rng = np.random.default_rng(14)
    X = rng.standard_normal((500, 60)) @ np.diag(np.geomspace(1.0, 1e-6, 60))
    cov = np.cov(X, rowvar=False)
    ref = np.linalg.eigvalsh(cov)
    for rtol in (1e-1, 1e-2, 1e-4, 1e-8, 0.0):
        expected = int(np.sum(ref > rtol * ref.max()))
        assert numerical_rank(cov, rtol) == expected
        assert numerical_rank(ref, rtol) == expected
        assert numerical_rank(ref[::-1].copy(), rtol) == expected
    assert numerical_rank(np.zeros((5, 5)), 1e-3) == 0
    assert numerical_rank([3.0, 1.0, -1e-17], 0.0) == 2
    assert numerical_rank(np.diag([4, 2, 0]), 0.25) == 2


# --------------------------------------------------------------------------- error paths


def test_constructor_rejects_bad_dimension() -> None:
    with pytest.raises(ValueError, match=r"d=0"):
        StreamingCovariance(0)
    with pytest.raises(ValueError, match=r"d=-3"):
        StreamingCovariance(-3)


@pytest.mark.parametrize(
    ("block", "exc", "pattern"),
    [
        (np.zeros(4), ValueError, r"ndim=1"),
        (np.zeros((2, 2, 4)), ValueError, r"ndim=3"),
        (np.zeros((3, 4), dtype=np.int64), TypeError, r"int64"),
        (np.zeros((3, 4), dtype=np.complex128), TypeError, r"complex128"),
        (np.zeros((3, 4), dtype=">f8"), TypeError, r">f8"),
        ([[0.0] * 4] * 3, TypeError, r"list"),
        (np.zeros((3, 5)), ValueError, r"block has 5 columns, accumulator has d=4"),
        (np.zeros((0, 5)), ValueError, r"block has 5 columns, accumulator has d=4"),
        (np.zeros((3, 8))[:, ::2], ValueError, r"not C-contiguous.*strides \(64, 16\).*np\.ascontiguousarray"),
        (np.asfortranarray(np.zeros((3, 4))), ValueError, r"np\.ascontiguousarray"),
    ],
    ids=["1d", "3d", "int64", "complex", "big-endian", "list", "d-mismatch", "empty-d-mismatch", "strided", "fortran"],
)
def test_update_rejects_bad_blocks(block: object, exc: type, pattern: str) -> None:
    acc = StreamingCovariance(4)
    with pytest.raises(exc, match=pattern):
        acc.update(block)  # type: ignore[arg-type]
    assert acc.count == 0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_update_rejects_non_finite_and_leaves_state_unchanged(dtype: type) -> None:
    acc = StreamingCovariance(4)
    acc.update(np.ones((2, 4), dtype=dtype))
    before = acc.state()
    X = np.zeros((2000, 4), dtype=dtype)
    X[1500, 2] = np.nan
    X[1700, 0] = np.inf
    X[1999, 3] = -np.inf
    with pytest.raises(ValueError, match=re.escape("3 non-finite values") + r".*\(row 1500, col 2\)"):
        acc.update(X)
    after = acc.state()
    assert after["count"] == before["count"] == 2
    assert np.array_equal(after["m2"], before["m2"])
    assert np.array_equal(after["mean"], before["mean"])


def test_merge_rejects_dimension_mismatch() -> None:
    with pytest.raises(ValueError, match=r"d=5.*d=4"):
        StreamingCovariance(4).merge(StreamingCovariance(5))
    with pytest.raises(TypeError):
        StreamingCovariance(4).merge("not an accumulator")  # type: ignore[arg-type]


def test_covariance_needs_more_rows_than_ddof() -> None:
    acc = StreamingCovariance(3)
    with pytest.raises(ValueError, match=r"count=0.*ddof=1"):
        acc.covariance()
    acc.update(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"count=1.*ddof=1"):
        acc.covariance(ddof=1)
    with pytest.raises(ValueError, match=r"ddof=-1"):
        acc.covariance(ddof=-1)


def _good_state() -> dict[str, object]:
    acc = StreamingCovariance(4)
    acc.update(np.random.default_rng(15).standard_normal((10, 4)))
    return acc.state()


@pytest.mark.parametrize(
    ("change", "exc", "pattern"),
    [
        ({"count": -1}, ValueError, r"count=-1"),
        ({"count": 2.5}, TypeError, r"count must be an integer"),
        ({"mean": np.zeros(3)}, ValueError, r"state\['dim'\]=4 but state\['mean'\] has length 3"),
        ({"m2": np.zeros((3, 3))}, ValueError, r"state\['m2'\] has shape \(3, 3\); expected \(4, 4\)"),
        ({"m2": np.zeros((4, 4), dtype=complex)}, TypeError, r"complex128"),
        ({"dim": 5}, ValueError, r"state\['dim'\]=5"),
        ({"mean": np.zeros((2, 2))}, ValueError, r"1-D"),
        ({"m2": np.full((4, 4), np.nan)}, ValueError, r"m2\[0, 0\] is not finite"),
        ({"m2": -np.eye(4)}, ValueError, r"m2\[0, 0\]=-1 is negative"),
        ({"count": 0}, ValueError, r"count=0 but mean or m2 is non-zero"),
        ({"format": "other/9"}, ValueError, r"other/9"),
        ({"m2": None}, ValueError, r"no 'm2'"),
    ],
    ids=[
        "neg-count",
        "float-count",
        "mean-shape",
        "m2-shape",
        "m2-complex",
        "dim",
        "mean-2d",
        "nan",
        "neg-diag",
        "empty-nonzero",
        "format",
        "missing",
    ],
)
def test_from_state_rejects_inconsistent_state(change: dict[str, object], exc: type, pattern: str) -> None:
    state = _good_state()
    for key, value in change.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    with pytest.raises(exc, match=pattern):
        StreamingCovariance.from_state(state)


def test_from_state_rejects_non_mapping() -> None:
    with pytest.raises(TypeError, match=r"mapping.*list"):
        StreamingCovariance.from_state([1, 2, 3])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"k": 0}, ValueError, r"k=0 .*1 <= k <= d=6"),
        ({"k": -2}, ValueError, r"k=-2"),
        ({"k": 7}, ValueError, r"k=7 .*d=6"),
        ({"k": 2, "oversample": -1}, ValueError, r"oversample=-1"),
        ({"k": 2, "power_iters": -1}, ValueError, r"power_iters=-1"),
        ({"k": 2, "seed": -5}, ValueError, r"seed=-5"),
        ({"k": 2, "seed": 2**64}, ValueError, r"seed=18446744073709551616"),
        ({"k": 2.0}, TypeError, r"k must be an integer"),
    ],
)
def test_randomized_eigh_rejects_bad_parameters(kwargs: dict[str, object], exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        randomized_eigh(np.eye(6), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("matrix", "exc", "pattern"),
    [
        (np.zeros((3, 4)), ValueError, r"shape \(3, 4\).*square"),
        (np.zeros(4), ValueError, r"ndim=1"),
        (np.eye(4, dtype=np.int64), TypeError, r"int64"),
        (np.eye(4, dtype=np.complex128), TypeError, r"complex128"),
        (np.eye(4, dtype=np.float16), TypeError, r"float16"),
        (np.eye(6)[:, ::-1][::-1], ValueError, r"np\.ascontiguousarray"),
        (np.triu(np.ones((4, 4))), ValueError, r"not symmetric.*C\[1, 0\]"),
        (np.diag([1.0, np.nan, np.inf, 1.0]), ValueError, r"2 non-finite values.*\(row 1, col 1\)"),
        ("C", TypeError, r"str"),
    ],
    ids=["not-square", "1d", "int64", "complex", "float16", "not-contiguous", "asymmetric", "nan", "str"],
)
def test_randomized_eigh_rejects_bad_matrices(matrix: object, exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        randomized_eigh(matrix, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("values", "rtol", "exc", "pattern"),
    [
        (np.ones(3), -0.1, ValueError, r"rtol=-0\.1"),
        (np.ones(3), float("nan"), ValueError, r"rtol=nan"),
        (np.ones(3), "1e-3", TypeError, r"str '1e-3'"),
        (np.ones(3, dtype=complex), 1e-3, TypeError, r"complex128"),
        (np.ones((2, 2, 2)), 1e-3, ValueError, r"ndim=3"),
        (np.ones((2, 3)), 1e-3, ValueError, r"\(2, 3\).*square"),
        (np.array([]), 1e-3, ValueError, r"shape \(0,\)"),
        (np.array([1.0, np.nan]), 1e-3, ValueError, r"1 non-finite.*\(1,\)"),
        (np.triu(np.ones((3, 3))), 1e-3, ValueError, r"not symmetric"),
    ],
)
def test_numerical_rank_rejects_bad_input(values: object, rtol: object, exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        numerical_rank(values, rtol)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- native backends


@pytest.fixture(params=["blas", "eigen"])
def backend(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Runs a test with SciPy's BLAS/LAPACK kernels and with the Eigen fallback."""
    _native._set_blas_enabled(request.param == "blas")
    try:
        yield request.param
    finally:
        _native._set_blas_enabled(True)


@pytest.fixture
def small_blocks():  # type: ignore[no-untyped-def]
    """Forces 7-row internal rank-k updates, so every multi-block path runs on small data."""
    _native._set_block_rows(7)
    try:
        yield 7
    finally:
        _native._set_block_rows(0)


def test_blas_comes_from_scipy() -> None:
    info = _native._blas_info()
    assert info["source"].startswith("scipy.linalg.cython_blas")
    assert info["enabled"] is True
    assert info["threads"] >= 1
    assert _native._block_rows(576) >= 1024 and _native._block_rows(4096) * 4096 * 8 <= 64 * 2**20


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_backends_and_internal_blocks_agree_with_numpy(backend: str, small_blocks: int, dtype: type) -> None:
    rng = np.random.default_rng(20)
    offset = 1e4 if dtype is not np.float16 else 50.0
    X = (offset + rng.standard_normal((3001, 13)) @ rng.standard_normal((13, 13))).astype(dtype)
    acc = stream(X, rng, max_size=200)
    expected = np.cov(X.astype(np.float64), rowvar=False)
    assert rel_err(acc.covariance(), expected) < 1e-10
    assert rel_err(acc.mean, X.astype(np.float64).mean(axis=0)) < 1e-12


def test_large_block_runs_the_threaded_passes(backend: str) -> None:
    # 40000 x 24 = 960k elements: the moment and conversion passes split over the cores.
    rng = np.random.default_rng(21)
    X = (rng.standard_normal((40000, 24)) * np.linspace(0.1, 10, 24) + 1e3).astype(np.float32)
    acc = StreamingCovariance(24)
    acc.update(X)
    assert acc.count == 40000
    assert rel_err(acc.covariance(), np.cov(X.astype(np.float64), rowvar=False)) < 1e-10


def test_update_with_row_mask_skips_rows_without_reading_them(backend: str, small_blocks: int) -> None:
    rng = np.random.default_rng(28)
    X = rng.standard_normal((600, 5)) * 3.0 + 1e4
    mask = rng.random(600) > 0.4
    X[~mask] = np.nan  # rows left out are never read
    acc = StreamingCovariance(5)
    acc.update(X, where=mask)
    acc.update(X[:10], where=np.zeros(10, dtype=bool))
    assert acc.count == int(mask.sum())
    assert rel_err(acc.covariance(), np.cov(X[mask], rowvar=False)) < 1e-10
    X[np.flatnonzero(mask)[7], 2] = np.inf
    first = int(np.flatnonzero(mask)[7])
    with pytest.raises(ValueError, match=rf"1 non-finite value.*\(row {first}, col 2\)"):
        acc.update(X, where=mask)
    assert acc.count == int(mask.sum())


@pytest.mark.parametrize(
    ("where", "exc", "pattern"),
    [
        (np.ones(4, dtype=np.int8), TypeError, r"where must be a numpy.ndarray of bool.*int8"),
        ([True] * 4, TypeError, r"where must be.*list"),
        (np.ones(3, dtype=bool), ValueError, r"where has shape \(3,\); expected \(4,\)"),
        (np.ones((4, 1), dtype=bool), ValueError, r"where has shape \(4, 1\)"),
        (np.ones(8, dtype=bool)[::2], ValueError, r"where is not contiguous"),
    ],
    ids=["int8", "list", "length", "2d", "strided"],
)
def test_update_rejects_bad_row_masks(where: object, exc: type, pattern: str) -> None:
    acc = StreamingCovariance(2)
    with pytest.raises(exc, match=pattern):
        acc.update(np.zeros((4, 2)), where=where)  # type: ignore[arg-type]
    assert acc.count == 0


def test_float16_subnormals_and_extremes_are_converted_exactly() -> None:
    values = np.array([0.0, 6e-8, -6e-8, 6.1e-5, 1e-6, 65504.0, -65504.0, 1.0], dtype=np.float16)
    X = np.ascontiguousarray(np.stack([values, values[::-1], np.roll(values, 3)], axis=1))
    acc = StreamingCovariance(3)
    acc.update(X)
    exact = X.astype(np.float64)
    assert np.array_equal(acc.mean, exact.mean(axis=0)) or rel_err(acc.mean, exact.mean(axis=0)) < 1e-15
    assert rel_err(acc.covariance(), np.cov(exact, rowvar=False)) < 1e-12


def test_huge_values_raise_overflow_error_and_leave_state_unchanged() -> None:
    acc = StreamingCovariance(2)
    acc.update(np.array([[1.0, 2.0], [2.0, 1.0]]))
    before = acc.state()
    with pytest.raises(ValueError, match="overflow float64"):
        acc.update(np.array([[1e300, 0.0], [-1e300, 1.0]]))
    with pytest.raises(ValueError, match="overflow float64"):
        acc.update(np.array([[1.7e308, 0.0], [1.7e308, 1.0]]))  # the column sum overflows
    after = acc.state()
    assert after["count"] == 2 and np.array_equal(after["m2"], before["m2"])
    # Large but representable data with a small spread is fine: centring happens first.
    big = StreamingCovariance(1)
    big.update(np.array([[1e200], [1e200]]))
    assert big.covariance()[0, 0] == 0.0


def test_merge_overflow_is_an_error() -> None:
    a = StreamingCovariance(1)
    a.update(np.array([[1e153], [-1e153]]))
    b = StreamingCovariance(1)
    b.update(np.array([[-1e153], [1e153]]))
    c = StreamingCovariance(1)
    c.update(np.array([[1e154], [1e154]]))
    with pytest.raises(ValueError, match="overflow float64"):
        for _ in range(10):
            a.merge(a)
    with pytest.raises(ValueError, match="overflow float64"):
        b.merge(c)


def test_constructor_refuses_a_state_larger_than_memory() -> None:
    with pytest.raises(MemoryError, match="physical memory"):
        StreamingCovariance(10**7)


# --------------------------------------------------------------------------- HDF5 streaming


@pytest.fixture(scope="module")
def h5_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng(30)
    X = (rng.standard_normal((5000, 16)) @ rng.standard_normal((16, 16)) + 100.0).astype(np.float32)
    path = tmp_path_factory.mktemp("h5") / "acts.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("plain", data=X)
        f.create_dataset("lzf", data=X, chunks=(384, 16), compression="lzf")
        f.create_dataset("half", data=X.astype(np.float16), chunks=(500, 16))
        f.create_dataset("big_endian", data=X.astype(">f8"))
        f.create_dataset("ints", data=np.zeros((10, 4), dtype=np.int32))
        f.create_dataset("vector", data=np.zeros(10, dtype=np.float32))
        f.create_dataset("empty", data=np.zeros((0, 16), dtype=np.float32))
        bad = X.copy()
        bad[4321, 5] = np.nan
        f.create_dataset("with_nan", data=bad, chunks=(1000, 16))
        f.create_group("group")
    return str(path), X


@pytest.mark.parametrize("name", ["plain", "lzf", "half", "big_endian"])
@pytest.mark.parametrize("prefetch", [True, False])
def test_covariance_from_hdf5_matches_in_memory(h5_data: tuple[str, np.ndarray], name: str, prefetch: bool) -> None:
    path, X = h5_data
    with h5py.File(path) as f:
        data = f[name][...].astype(np.float64)
    acc = covariance_from_hdf5(path, name, chunk_rows=700, prefetch=prefetch)
    assert acc.count == len(X)
    assert rel_err(acc.covariance(), np.cov(data, rowvar=False)) < 1e-10


def test_contiguous_datasets_are_memory_mapped_not_copied(
    h5_data: tuple[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, X = h5_data

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("read_direct called for a contiguous dataset")

    monkeypatch.setattr(h5py.Dataset, "read_direct", refuse)
    acc = covariance_from_hdf5(path, "plain", chunk_rows=999)
    assert rel_err(acc.covariance(), np.cov(X.astype(np.float64), rowvar=False)) < 1e-10
    with pytest.raises(AssertionError, match="read_direct"):
        covariance_from_hdf5(path, "lzf", chunk_rows=999)  # chunked: read by h5py


def test_covariance_from_hdf5_applies_the_row_mask(h5_data: tuple[str, np.ndarray]) -> None:
    path, X = h5_data
    mask = np.random.default_rng(31).random(len(X)) > 0.3
    mask[:700] = True  # a slab with nothing excluded
    mask[1400:2100] = False  # a slab with nothing included
    for name in ("lzf", "plain"):
        acc = covariance_from_hdf5(path, name, chunk_rows=700, where=mask)
        assert acc.count == int(mask.sum())
        assert rel_err(acc.covariance(), np.cov(X[mask].astype(np.float64), rowvar=False)) < 1e-10


def test_covariance_from_hdf5_resumes_into_an_accumulator(h5_data: tuple[str, np.ndarray]) -> None:
    path, X = h5_data
    acc = StreamingCovariance(16)
    acc.update(X[:10])
    covariance_from_hdf5(path, "plain", chunk_rows=1024, accumulator=acc)
    both = np.vstack([X[:10], X]).astype(np.float64)
    assert acc.count == len(both)
    assert rel_err(acc.covariance(), np.cov(both, rowvar=False)) < 1e-10
    assert covariance_from_hdf5(path, "empty", chunk_rows=10).count == 0


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"dataset": "ints"}, TypeError, r"int32"),
        ({"dataset": "vector"}, ValueError, r"2-D"),
        ({"dataset": "group"}, TypeError, r"group"),
        ({"dataset": "missing"}, KeyError, r"missing"),
        ({"chunk_rows": 0}, ValueError, r"chunk_rows=0"),
        ({"chunk_rows": 2.5}, TypeError, r"chunk_rows must be an integer"),
        ({"where": np.ones(5000, dtype=np.int8)}, TypeError, r"boolean"),
        ({"where": np.ones(4999, dtype=bool)}, ValueError, r"\(5000,\)"),
        ({"accumulator": StreamingCovariance(3)}, ValueError, r"d=3"),
        ({"dataset": "with_nan"}, ValueError, r"slab starting at row 4000.*1 non-finite value.*\(row 321, col 5\)"),
    ],
    ids=["int", "1d", "group", "missing", "chunk0", "chunk-float", "mask-int", "mask-len", "acc-d", "nan"],
)
def test_covariance_from_hdf5_errors(h5_data: tuple[str, np.ndarray], kwargs: dict, exc: type, pattern: str) -> None:
    path, _ = h5_data
    args = {"dataset": "plain", "chunk_rows": 1000, **kwargs}
    with pytest.raises(exc, match=pattern):
        covariance_from_hdf5(path, **args)


def test_covariance_from_hdf5_missing_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(OSError):
        covariance_from_hdf5(tmp_path / "absent.h5", "x", chunk_rows=10)


# --------------------------------------------------------------------------- spectra


def test_randomized_eigh_backends_agree(backend: str, decaying: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    c, ref_vals, _ = decaying
    vals, vecs = randomized_eigh(c, 12, seed=5)
    assert np.max(np.abs(vals - ref_vals[:12]) / ref_vals[:12]) < 1e-8
    assert np.abs(vecs.T @ vecs - np.eye(12)).max() < 1e-12


def test_randomized_eigh_with_a_sink_eigenvalue_keeps_the_small_ones() -> None:
    # One eigenvalue 3e4 times the next, as attention sinks make on real activations.
    values = np.arange(1, 201, dtype=float) ** -1.0
    values[0] = 3e4
    c, _ = psd_with_spectrum(values, seed=22)
    ref = np.linalg.eigvalsh(c)[::-1]
    vals, _ = randomized_eigh(c, 30)
    assert np.max(np.abs(vals[:10] - ref[:10]) / ref[:10]) < 1e-6


@pytest.mark.parametrize(
    ("decay", "rtol"),
    [(1.0, 0.01), (1.0, 0.05), (0.75, 0.05), (3.0, 0.01), (1.0, 0.2)],
)
def test_randomized_eigh_adaptive_finds_the_lapack_rank(decay: float, rtol: float) -> None:
    d = 400
    values = np.arange(1, d + 1, dtype=float) ** -decay + 1e-4
    c, _ = psd_with_spectrum(values, seed=23)
    ref = np.linalg.eigvalsh(c)
    vals, vecs, saturated = randomized_eigh_adaptive(c, rtol, block=32)
    assert saturated is False
    assert numerical_rank(vals, rtol) == numerical_rank(ref, rtol)
    assert len(vals) < d and vecs.shape == (d, len(vals))
    assert np.all(np.diff(vals) <= 0)
    assert np.abs(vecs.T @ vecs - np.eye(len(vals))).max() < 1e-10
    again = randomized_eigh_adaptive(c, rtol, block=32)
    assert np.array_equal(again[0], vals) and np.array_equal(again[1], vecs)


def test_randomized_eigh_adaptive_saturates_and_spans() -> None:
    d = 120
    values = np.linspace(2.0, 1.0, d)  # flat: everything is above 10 %
    c, _ = psd_with_spectrum(values, seed=24)
    vals, vecs, saturated = randomized_eigh_adaptive(c, 0.1, block=16, max_k=40)
    assert saturated is True and len(vals) == 40 and vecs.shape == (d, 40)
    assert numerical_rank(vals, 0.1) == 40  # a lower bound: "rank >= 40"
    # Allowed to grow to the whole space, it is exact.
    vals_all, _, saturated_all = randomized_eigh_adaptive(c, 0.1, block=50)
    assert saturated_all is False and len(vals_all) == d
    assert np.allclose(vals_all, np.sort(values)[::-1], rtol=1e-10)
    # Low rank: stops at once with the zero tail inside the margin.
    low, _ = psd_with_spectrum(np.r_[5.0, 4.0, 3.0, np.zeros(d - 3)], seed=25)
    vals_low, _, sat_low = randomized_eigh_adaptive(low, 1e-6, block=8)
    assert sat_low is False and numerical_rank(vals_low, 1e-6) == 3
    zero_vals, _, sat_zero = randomized_eigh_adaptive(np.zeros((5, 5)), 0.1)
    assert sat_zero is False and np.all(zero_vals == 0)


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"rtol": -0.1}, ValueError, r"rtol=-0\.1"),
        ({"rtol": float("inf")}, ValueError, r"rtol=inf"),
        ({"rtol": "0.1"}, TypeError, r"rtol must be a real number"),
        ({"rtol": 0.1, "block": 0}, ValueError, r"block=0"),
        ({"rtol": 0.1, "max_k": 7}, ValueError, r"max_k=7.*d=6"),
        ({"rtol": 0.1, "max_k": 0}, ValueError, r"max_k=0"),
        ({"rtol": 0.1, "oversample": -1}, ValueError, r"oversample=-1"),
        ({"rtol": 0.1, "power_iters": -1}, ValueError, r"power_iters=-1"),
        ({"rtol": 0.1, "seed": -1}, ValueError, r"seed=-1"),
    ],
)
def test_randomized_eigh_adaptive_rejects_bad_parameters(kwargs: dict, exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        randomized_eigh_adaptive(np.eye(6), **kwargs)


def test_randomized_eigh_adaptive_rejects_bad_matrices() -> None:
    with pytest.raises(ValueError, match="not symmetric"):
        randomized_eigh_adaptive(np.triu(np.ones((4, 4))), 0.1)
    with pytest.raises(TypeError, match="int64"):
        randomized_eigh_adaptive(np.eye(4, dtype=np.int64), 0.1)
    with pytest.raises(ValueError, match=r"1 non-finite value"):
        randomized_eigh_adaptive(np.diag([1.0, np.nan]), 0.1)


@pytest.mark.parametrize("method", ["lapack", "randomized", "auto"])
def test_top_eigenpairs_methods_agree(method: str, decaying: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    c, ref_vals, ref_vecs = decaying
    vals, vecs = top_eigenpairs(c, 10, method=method)
    assert np.max(np.abs(vals - ref_vals[:10]) / ref_vals[:10]) < 1e-8
    cosines = np.abs(np.sum(vecs * ref_vecs[:, :10], axis=0))
    assert cosines.min() > 1 - 1e-8
    idx = np.argmax(np.abs(vecs), axis=0)
    assert np.all(vecs[idx, np.arange(10)] > 0)


def test_top_eigenpairs_policy_and_errors() -> None:
    from steerid import linalg

    assert linalg.EXACT_SPECTRUM_MAX_D >= 576  # d = 576 always takes the exact path
    with pytest.raises(ValueError, match="method='qr'"):
        top_eigenpairs(np.eye(3), 1, method="qr")
    with pytest.raises(ValueError, match=r"k=4 .*d=3"):
        top_eigenpairs(np.eye(3), 4)
    with pytest.raises(TypeError, match="k must be an integer"):
        top_eigenpairs(np.eye(3), 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not symmetric"):
        top_eigenpairs(np.triu(np.ones((3, 3))), 1)
    with pytest.raises(TypeError, match="complex"):
        top_eigenpairs(np.eye(3, dtype=complex), 1)
    with pytest.raises(ValueError, match="ndim=1"):
        top_eigenpairs(np.ones(3), 1)


def test_spectrum_eigvalsh_is_descending_lapack() -> None:
    c, _ = psd_with_spectrum(np.array([3.0, 1.0, 2.0, 0.5]), seed=26)
    vals = spectrum_eigvalsh(c)
    assert np.allclose(vals, [3.0, 2.0, 1.0, 0.5], rtol=1e-12)
    assert vals.flags.c_contiguous
    with pytest.raises(ValueError, match="square"):
        spectrum_eigvalsh(np.ones((2, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        spectrum_eigvalsh(np.diag([1.0, np.inf]))


# --------------------------------------------------------------------------- rank summaries


def test_explained_variance_rank() -> None:
    values = np.array([6.0, 3.0, 1.0, 0.0, -1e-12])
    assert explained_variance_rank(values, 0.6) == 1
    assert explained_variance_rank(values, 0.9) == 2
    assert explained_variance_rank(values, 0.95) == 3
    assert explained_variance_rank(values, 1.0) == 3
    assert explained_variance_rank(values[::-1].copy(), 0.9) == 2
    assert explained_variance_rank(np.zeros(4), 0.99) == 0
    assert explained_variance_rank([1e308, 1e308], 0.75) == 2  # no overflow
    c, _ = psd_with_spectrum(values.clip(0), seed=27)
    assert explained_variance_rank(c, 0.9) == 2
    sink = np.r_[3e4, np.arange(1, 100, dtype=float) ** -1.0]
    assert explained_variance_rank(sink, 0.99) == 1 and explained_variance_rank(sink[1:], 0.99) > 50
    for bad, exc in [
        (0.0, ValueError),
        (1.5, ValueError),
        (float("nan"), ValueError),
        ("0.9", TypeError),
        (True, TypeError),
    ]:
        with pytest.raises(exc, match="fraction"):
            explained_variance_rank(values, bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-finite"):
        explained_variance_rank([1.0, np.nan], 0.9)


def test_participation_ratio() -> None:
    assert participation_ratio([1.0, 1.0, 1.0, 0.0]) == pytest.approx(3.0)
    assert participation_ratio([5.0, 0.0, -1e-15]) == pytest.approx(1.0)
    assert participation_ratio(np.zeros(3)) == 0.0
    assert participation_ratio([1e300, 1e300]) == pytest.approx(2.0)  # no overflow of lambda^2
    assert participation_ratio(np.eye(4) * 2.0) == pytest.approx(4.0)
    with pytest.raises(TypeError, match="complex"):
        participation_ratio(np.ones(2, dtype=complex))
    with pytest.raises(ValueError, match="shape"):
        participation_ratio(np.array([]))


# --------------------------------------------------------------------------- fuzzing

ALLOWED = (TypeError, ValueError)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXTREMES = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    1e300,
    -1e300,
    1.7e308,
    5e-324,
    -1e-310,
    1e-40,
    65504.0,
    3.4e38,
    1e154,
    np.nan,
    np.inf,
    -np.inf,
]
DTYPES = ["f2", "f4", "f8", ">f4", ">f8", "i1", "i4", "i8", "u2", "bool", "c8", "c16", "O"]


@st.composite
def arrays(draw: st.DrawFn, max_rows: int = 40, max_cols: int = 7) -> np.ndarray:
    """Arrays of any dtype, shape and layout: views with strides, transposes, misalignment."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    ndim = draw(st.sampled_from([2, 2, 2, 1, 3, 0]))
    shape = tuple(draw(st.integers(0, max_rows if i == 0 else max_cols)) for i in range(ndim))
    n = int(np.prod(shape)) if shape else 1
    elements = draw(st.lists(st.one_of(st.sampled_from(EXTREMES), st.floats(-1e6, 1e6)), min_size=n, max_size=n))
    with np.errstate(all="ignore"):
        if dtype.kind in "iub":
            base = np.nan_to_num(np.asarray(elements), posinf=1, neginf=-1).clip(-100, 100).astype(dtype)
        else:
            base = np.asarray(elements, dtype=np.float64).astype(dtype)
    base = base.reshape(shape)
    layout = draw(st.sampled_from(["c", "c", "fortran", "strided", "reversed", "transposed", "misaligned"]))
    if layout == "fortran":
        return np.asfortranarray(base)
    if layout == "strided" and base.ndim >= 1:
        wide = np.repeat(base, 2, axis=-1) if base.ndim >= 1 else base
        return wide[..., ::2]
    if layout == "reversed" and base.ndim >= 1:
        return base[::-1]
    if layout == "transposed":
        return base.T
    if layout == "misaligned" and dtype.itemsize > 1 and dtype.kind != "O":
        raw = np.zeros(base.nbytes + 1, dtype=np.uint8)
        view = raw[1:].view(dtype).reshape(shape)
        view[...] = base
        return view
    return base


@FUZZ
@given(X=arrays(), d=st.integers(1, 7), small=st.booleans(), masked=st.booleans(), seed=st.integers(0, 9))
def test_fuzz_update_raises_only_documented_errors(X: np.ndarray, d: int, small: bool, masked: bool, seed: int) -> None:
    acc = StreamingCovariance(d)
    acc.update(np.ones((2, d)))
    before = acc.state()
    _native._set_block_rows(3 if small else 0)
    where = None
    if masked and X.ndim >= 1:
        where = np.random.default_rng(seed).random(X.shape[0]) > 0.5
    try:
        acc.update(X, where=where)
    except ALLOWED:
        after = acc.state()
        assert after["count"] == before["count"]
        assert np.array_equal(after["m2"], before["m2"])
        return
    finally:
        _native._set_block_rows(0)
    # Accepted: a float16/32/64 C-contiguous (n, d) block with finite values in the selected rows.
    assert X.ndim == 2 and X.shape[1] == d and X.dtype.kind == "f" and X.flags.c_contiguous
    selected = X if where is None else X[where]
    assert acc.count == 2 + selected.shape[0]
    cov = acc.covariance(ddof=0)
    assert np.isfinite(cov).all() and np.isfinite(acc.mean).all()
    data = np.vstack([np.ones((2, d)), selected.astype(np.float64)])
    with np.errstate(all="ignore"):
        expected = np.cov(data, rowvar=False, ddof=0).reshape(d, d)
    if np.isfinite(expected).all() and np.abs(data).max() < 1e100:
        scale = max(float(np.abs(expected).max()), 1e-300)
        assert np.abs(cov - expected).max() <= 1e-9 * scale + 1e-300


@FUZZ
@given(
    X=arrays(max_rows=9, max_cols=9),
    k=st.integers(-1, 10),
    oversample=st.integers(-1, 12),
    power_iters=st.integers(-1, 3),
    seed=st.integers(-2, 2**64),
    symmetrise=st.booleans(),
)
def test_fuzz_randomized_eigh_raises_only_documented_errors(
    X: np.ndarray, k: int, oversample: int, power_iters: int, seed: int, symmetrise: bool
) -> None:
    C = X
    if symmetrise and X.ndim == 2 and X.shape[0] == X.shape[1] and X.dtype.kind == "f":
        with np.errstate(all="ignore"):
            C = np.ascontiguousarray((X + X.T) / 2).astype(X.dtype)
    try:
        vals, vecs = randomized_eigh(C, k, oversample=oversample, power_iters=power_iters, seed=seed)
    except ALLOWED:
        return
    assert np.isfinite(vals).all() and np.isfinite(vecs).all()
    assert vals.shape == (k,) and vecs.shape == (C.shape[0], k)


@FUZZ
@given(
    X=arrays(max_rows=9, max_cols=9),
    rtol=st.one_of(st.floats(allow_nan=True), st.integers(-1, 2)),
    block=st.integers(-1, 6),
    max_k=st.one_of(st.none(), st.integers(-1, 10)),
)
def test_fuzz_adaptive_and_rank_helpers_raise_only_documented_errors(
    X: np.ndarray, rtol: float, block: int, max_k: int | None
) -> None:
    C = X
    if X.ndim == 2 and X.shape[0] == X.shape[1] and X.dtype.kind == "f":
        with np.errstate(all="ignore"):
            C = np.ascontiguousarray((X + X.T) / 2).astype(X.dtype)
    try:
        vals, vecs, saturated = randomized_eigh_adaptive(C, rtol, block=block, max_k=max_k)
        assert np.isfinite(vals).all() and np.isfinite(vecs).all() and isinstance(saturated, bool)
    except ALLOWED:
        pass
    for call in (
        lambda: numerical_rank(C, rtol),
        lambda: explained_variance_rank(C, rtol),
        lambda: participation_ratio(C),
        lambda: spectrum_eigvalsh(C),
        lambda: top_eigenpairs(C, max_k if max_k is not None else 1),
    ):
        with contextlib.suppress(ALLOWED):
            call()


@FUZZ
@given(
    count=st.one_of(st.integers(-3, 10), st.floats(), st.none(), st.text(max_size=2)),
    mean=arrays(max_rows=5, max_cols=5),
    m2=arrays(max_rows=5, max_cols=5),
    dim=st.one_of(st.integers(-1, 6), st.none()),
)
def test_fuzz_from_state_raises_only_documented_errors(
    count: object, mean: np.ndarray, m2: np.ndarray, dim: object
) -> None:
    state: dict[str, object] = {"format": "steerid.StreamingCovariance/1", "count": count, "mean": mean, "m2": m2}
    if dim is not None:
        state["dim"] = dim
    try:
        acc = StreamingCovariance.from_state(state)
    except ALLOWED:
        return
    assert acc.count >= 0 and np.isfinite(acc.mean).all()


# -- ranks of singular values and subspace angles (moved from steerid.engine.jacobian) --------------------


def test_rank_summary_counts_relative_to_sigma_max_and_d():
    sigma = np.array([10.0, 5.0, 1.0, 0.5, 0.2, 0.05, 0.0, 0.0])
    assert effective_rank(sigma, 0.01) == 5  # 0.1 < 0.2
    torch = pytest.importorskip("torch")
    assert effective_rank(torch.tensor(sigma), 0.05) == 3  # strictly above 0.5, from a tensor too
    assert effective_rank(sigma, 0.10) == 2  # strictly above 1.0
    summary = singular_value_rank_summary(sigma, d=16)
    assert summary["rank_at_0.05_of_max"] == 3
    assert summary["fraction_of_d_at_0.05_of_max"] == 3 / 16
    assert summary["null_fraction_at_0.05_of_max"] == 1 - 3 / 16
    energy = sigma**2
    assert summary["rank_for_0.99_of_variance"] == 3  # (100 + 25) / 126.29 = 0.9898 < 0.99
    assert summary["participation_ratio"] == pytest.approx(energy.sum() ** 2 / (energy**2).sum())
    assert summary["stable_rank"] == pytest.approx(energy.sum() / 100.0)
    with pytest.raises(ValueError, match="at most d"):
        singular_value_rank_summary(sigma, d=4)


def test_principal_angles():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((20, 4))
    assert np.abs(principal_angles(A, A @ rng.standard_normal((4, 4)))).max() < 1e-7  # same span, any basis
    Q = np.linalg.qr(rng.standard_normal((20, 8)))[0]
    angles = principal_angles(Q[:, :4], Q[:, 4:])
    assert np.allclose(angles, math.pi / 2, atol=1e-12)
    for theta in (1e-9, 0.3, 1.2):
        e = np.eye(6)
        B = np.stack([e[0], math.cos(theta) * e[1] + math.sin(theta) * e[2]], axis=1)
        angles = principal_angles(e[:, :2], B)
        assert angles[0] == pytest.approx(0.0, abs=1e-15)
        assert angles[1] == pytest.approx(theta, rel=1e-9)  # sines keep tiny angles accurate
    assert principal_angles(Q[:, :2], Q[:, :5]).shape == (2,)
    assert subspace_overlap(Q[:, :2], Q[:, :5]) == pytest.approx(1.0)
    assert subspace_overlap(Q[:, :4], Q[:, 4:]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="rank 1 < 2"):
        principal_angles(np.ones((5, 2)), A[:5])
    with pytest.raises(ValueError, match="different spaces"):
        principal_angles(A, A[:10])


def test_rank_summaries_with_the_same_keys_threshold_different_bases():
    """Spectra files count lambda > t lambda_max, E6 counts sigma > t sigma_max: same key, different rank."""
    eigenvalues = np.array([100.0, 4.0, 0.25, 0.01])  # sigma = 10, 2, 0.5, 0.1
    by_lambda = eigenvalue_rank_summary(eigenvalues, [0.05], [0.99])
    by_sigma = singular_value_rank_summary(singular_values_from_eigenvalues(eigenvalues), 4, [0.05], [0.99])
    assert by_lambda["rank_at_0.05_of_max"] == 1  # only 100 > 5
    assert by_sigma["rank_at_0.05_of_max"] == 2  # 10 and 2 > 0.5 (0.5 itself is not strictly above)
    assert by_lambda["fraction_of_d_at_0.05_of_max"] == 1 / 4
    assert by_lambda["rank_for_0.99_of_variance"] == by_sigma["rank_for_0.99_of_variance"] == 2
    assert list(by_lambda) == [
        "rank_at_0.05_of_max",
        "fraction_of_d_at_0.05_of_max",
        "rank_for_0.99_of_variance",
        "fraction_of_d_for_0.99_of_variance",
    ]


def test_descending_eigh_orders_and_optionally_fixes_signs():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((9, 9))
    C = A @ A.T
    values, vectors = descending_eigh(C, fixed_signs=False)
    lapack_values, lapack_vectors = np.linalg.eigh(C)
    assert np.array_equal(values, lapack_values[::-1]) and np.array_equal(vectors, lapack_vectors[:, ::-1])
    assert vectors.flags.c_contiguous and values.flags.owndata
    fixed_values, fixed = descending_eigh(C, fixed_signs=True)
    assert np.array_equal(fixed_values, values) and np.array_equal(fixed, fix_signs(vectors))
    assert np.array_equal(np.abs(fixed), np.abs(vectors))
    largest = fixed[np.argmax(np.abs(fixed), axis=0), np.arange(9)]
    assert (largest > 0).all()


def test_fix_signs_leaves_zero_columns_and_flips_only_signs():
    vectors = np.array([[0.0, -3.0, 1.0], [0.0, 2.0, -1.0]])
    assert np.array_equal(fix_signs(vectors), [[0.0, 3.0, 1.0], [0.0, -2.0, -1.0]])  # ties: the first entry


def test_singular_values_from_eigenvalues_clips_round_off():
    assert np.array_equal(singular_values_from_eigenvalues(np.array([4.0, 0.0, -1e-17])), [2.0, 0.0, 0.0])


def test_symmetrised_is_the_symmetric_part():
    M = np.arange(9.0).reshape(3, 3)
    S = symmetrised(M)
    assert np.array_equal(S, S.T) and np.array_equal(S, 0.5 * (M + M.T))
