"""Tests of steerid.linalg: streaming covariance, randomized eigh, numerical rank, error paths."""

from __future__ import annotations

import pickle
import re
import threading

import numpy as np
import pytest

from steerid.linalg import StreamingCovariance, numerical_rank, randomized_eigh


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
    ids=["neg-count", "float-count", "mean-shape", "m2-shape", "m2-complex", "dim", "mean-2d", "nan", "neg-diag",
         "empty-nonzero", "format", "missing"],
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
