import h5py
import numpy as np
import pytest

from steerid import store


def test_write_read_and_provenance(tmp_path):
    path = tmp_path / "a.h5"
    store.write(path, {"x": np.arange(6.0).reshape(2, 3)}, store.provenance({"k": 1}, layer=4, model="m"))
    (x,) = store.read(path, "x")
    np.testing.assert_array_equal(x, np.arange(6.0).reshape(2, 3))
    attrs = store.read_attrs(path)
    assert attrs["layer"] == 4 and attrs["model"] == "m" and attrs["complete"]
    assert attrs["params_sha256"] == store.params_digest({"k": 1}) != store.params_digest({"k": 2})


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "b.h5"
    with pytest.raises(RuntimeError), store.create(path, {}) as handle:
        handle.create_dataset("x", data=[1, 2])
        raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_incomplete_file_is_refused(tmp_path):
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", data=[1])
    with pytest.raises(ValueError, match="incomplete"):
        store.read(path, "x")


def test_row_writer_and_block_reader(tmp_path):
    path = tmp_path / "d.h5"
    data = np.random.default_rng(0).standard_normal((1000, 7)).astype(np.float32)
    with store.create(path, {}) as handle:
        writer = store.RowWriter(handle, chunk_rows=64)
        for start in range(0, 1000, 300):
            writer.append("rows", data[start : start + 300])
    blocks = list(store.iter_blocks(path, "rows", 128))
    assert [len(b) for b in blocks] == [128] * 7 + [104]
    assert all(b.flags.c_contiguous and b.dtype == np.float32 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks), data)
