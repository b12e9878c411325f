"""Bad data is a named error where it is read; partial files of writers that are gone are removed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from steerid import io, store
from steerid.linalg import spectrum


def dead_pid() -> int:
    """The PID of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_nan_in_a_dataset_is_named_with_count_and_first_position(tmp_path):
    path = tmp_path / "contrast.h5"
    positive = np.ones((6, 4), np.float32)
    positive[3, 2], positive[5, 0] = np.nan, np.inf
    store.write(path, {"positive": positive, "environments/a/negative": np.ones((2, 4))}, {})
    message = f"{path}: dataset 'positive' holds 2 NaN/Inf value(s) of 24, the first at index (3, 2)"
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.read(path, "positive")
    with store.open_complete(path) as handle:
        assert handle["environments"]["a"]["negative"][()].shape == (2, 4)  # finite datasets read normally
        with pytest.raises(ValueError, match="dataset 'positive' holds 2"):
            dict(handle.items())["positive"][()]
    with store.open_complete(path, finite=False) as handle:
        assert np.isnan(handle["positive"][()]).sum() == 1  # scores files mark "not measured" with NaN


def test_streamed_blocks_name_the_global_row(tmp_path):
    path = tmp_path / "rows.h5"
    rows = np.zeros((100, 3), np.float32)
    rows[70, 1] = np.nan
    store.write(path, {"rows": rows}, {})
    blocks = store.iter_blocks(path, "rows", 32)
    next(blocks), next(blocks)
    with pytest.raises(
        ValueError,
        match=r"dataset 'rows \(rows 64 to 95\)' holds 1 NaN/Inf value\(s\) of 96, the first "
        r"at index \(70, 1\)",
    ):
        next(blocks)


def test_randomized_cross_check_fails_loudly_above_its_tolerance():
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((64, 64)))
    # Eigenvalues down to the float64 noise floor, as in a covariance of fewer tokens than d:
    # the leading ones are recomputed exactly, the smallest cannot be.
    covariance = (basis * np.logspace(0, -16, 64)) @ basis.T
    assert spectrum.analyse(covariance, 8, seed=0).randomized_max_rel_error < 1e-12
    with pytest.raises(ValueError, match="randomized cross-check failed: the native top-64 eigenvalues differ"):
        spectrum.analyse(covariance, 64, seed=0)


def test_partial_files_of_writers_that_are_gone_are_removed(tmp_path):
    host, gone = socket.gethostname(), dead_pid()
    stale = [tmp_path / f".a.h5.partial-{host}-{gone}", tmp_path / "sub" / f".b.json.partial-{gone}"]
    live = [tmp_path / f".a.h5.partial-{host}-{os.getpid()}", tmp_path / f".a.h5.partial-elsewhere-{gone}"]
    (tmp_path / "sub").mkdir()
    for path in stale + live:
        path.write_bytes(b"half a file")
    assert io.remove_stale_partials(tmp_path) == sorted(stale)
    assert all(path.exists() for path in live)  # a live writer here, or one on another host


def test_writing_a_target_again_removes_its_own_stale_partial(tmp_path):
    leftover = tmp_path / f".c.json.partial-{socket.gethostname()}-{dead_pid()}"
    other = tmp_path / f".d.json.partial-{socket.gethostname()}-{dead_pid()}"
    leftover.write_text("{")
    other.write_text("{")
    io.atomic_write_json(tmp_path / "c.json", {"ok": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "c.json"]


def test_killed_writer_leaves_no_complete_looking_file(tmp_path):
    script = (
        "import os, sys; from steerid import store\n"
        "with store.create(sys.argv[1], {}) as h:\n"
        "    h.create_dataset('x', data=[1.0])\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "e.h5")], check=False)
    (partial,) = tmp_path.iterdir()
    assert partial.name.startswith(".e.h5.partial-") and not (tmp_path / "e.h5").exists()
    assert io.remove_stale_partials(tmp_path) == [partial]
