"""HDF5 files with provenance, written atomically and read in streamed blocks.

A file is built under a temporary sibling name and renamed into place only when complete, and
carries ``complete = True`` as its last attribute: a crash never leaves a file that looks done.
Row datasets grow in chunks so a dump larger than memory is written block by block.

Reading checks floating-point data for NaN/Inf as it is read: a stage given a broken activation,
vector or spectrum file stops with the file, the dataset, the count and the first position named,
instead of failing later inside a decomposition. Files whose NaN mean "not measured" (scores,
perplexities) are opened with ``finite=False``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
from collections.abc import Iterator, Mapping
from pathlib import Path

import h5py
import numpy as np

import steerid
from steerid.io import atomic_path


def params_digest(params: Mapping) -> str:
    """SHA-256 of a rule's parameters (canonical JSON): the config slice this output depends on."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def provenance(params: Mapping, **fields) -> dict:
    """Attributes every output carries: steerid version, parameter digest, and rule-specific fields."""
    return {
        "steerid_version": steerid.__version__,
        "python": platform.python_version(),
        "params_sha256": params_digest(params),
        **{key: _attr(value) for key, value in fields.items()},
    }


def _attr(value):
    if value is None:
        return "none"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return value


class RowWriter:
    """Appends (n, ...) blocks to growable, chunked datasets of one open HDF5 file."""

    def __init__(self, handle: h5py.File, chunk_rows: int = 1024):
        self.handle = handle
        self.chunk_rows = chunk_rows

    def append(self, name: str, block: np.ndarray) -> None:
        block = np.asarray(block)
        if name not in self.handle:
            self.handle.create_dataset(
                name,
                shape=(0, *block.shape[1:]),
                maxshape=(None, *block.shape[1:]),
                dtype=block.dtype,
                chunks=(self.chunk_rows, *block.shape[1:]),
                compression="lzf",
            )
        dataset = self.handle[name]
        start = dataset.shape[0]
        dataset.resize(start + block.shape[0], axis=0)
        dataset[start:] = block


@contextlib.contextmanager
def create(path: str | Path, attrs: Mapping) -> Iterator[h5py.File]:
    """Open a new HDF5 file for writing; it appears at ``path``, marked complete, only on success."""
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as handle:
        handle.attrs.update(attrs)
        yield handle
        handle.attrs["complete"] = True


def write(path: str | Path, datasets: Mapping[str, np.ndarray], attrs: Mapping) -> None:
    """Write whole arrays (and attributes) to a new file atomically."""
    with create(path, attrs) as handle:
        for name, array in datasets.items():
            handle.create_dataset(name, data=np.asarray(array))


def check_finite(data: np.ndarray, dataset: str, path: str | Path, row_offset: int = 0) -> None:
    """ValueError naming the file, the dataset, how many values are NaN/Inf and where the first is."""
    if data.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(data)
    if not bad.any():
        return
    first = np.argwhere(bad)[0]
    if first.size:
        first[0] += row_offset
    raise ValueError(
        f"{path}: dataset {dataset!r} holds {int(bad.sum())} NaN/Inf value(s) of {data.size}, the first at index "
        f"{tuple(int(i) for i in first)}; expected finite values (the job that wrote the file, or one before it, "
        "went wrong: delete the file to have its rule rerun)"
    )


class _CheckedDataset:
    """An HDF5 dataset whose reads are checked by :func:`check_finite`; everything else is the dataset's."""

    def __init__(self, dataset: h5py.Dataset, path: str | Path):
        self._dataset, self._path = dataset, path

    def __getitem__(self, selection):
        data = self._dataset[selection]
        check_finite(np.asarray(data), self._dataset.name.lstrip("/"), self._path)
        return data

    def __len__(self) -> int:
        return len(self._dataset)

    def __getattr__(self, name: str):
        return getattr(self._dataset, name)


class _CheckedGroup:
    """An HDF5 file or group, read-only, whose datasets come back as :class:`_CheckedDataset`."""

    def __init__(self, group: h5py.Group, path: str | Path):
        self._group, self._path = group, path

    def __getitem__(self, name: str):
        item = self._group[name]
        return _CheckedDataset(item, self._path) if isinstance(item, h5py.Dataset) else _CheckedGroup(item, self._path)

    def __contains__(self, name: str) -> bool:
        return name in self._group

    def __iter__(self) -> Iterator[str]:
        return iter(self._group)

    def __len__(self) -> int:
        return len(self._group)

    def items(self) -> list[tuple[str, object]]:
        return [(name, self[name]) for name in self._group]

    def values(self) -> list[object]:
        return [self[name] for name in self._group]

    def __getattr__(self, name: str):
        return getattr(self._group, name)


@contextlib.contextmanager
def open_complete(path: str | Path, finite: bool = True) -> Iterator:
    """Open a file for reading, refusing one that was never finished; with ``finite``, every
    floating-point dataset read from it is checked for NaN/Inf."""
    with h5py.File(path, "r") as handle:
        if not handle.attrs.get("complete", False):
            raise ValueError(f"{path} is incomplete (no 'complete' attribute); delete it and rerun its rule")
        yield _CheckedGroup(handle, path) if finite else handle


def read(path: str | Path, *names: str) -> list[np.ndarray]:
    """Read whole datasets from a complete file (NaN/Inf are an error naming the dataset)."""
    with open_complete(path) as handle:
        return [handle[name][()] for name in names]


def read_attrs(path: str | Path) -> dict:
    """All attributes of a complete file."""
    with open_complete(path, finite=False) as handle:
        return dict(handle.attrs)


def iter_blocks(path: str | Path, name: str, block_rows: int, dtype=np.float32) -> Iterator[np.ndarray]:
    """Stream a row dataset in C-contiguous blocks of at most ``block_rows`` rows (NaN/Inf are an error)."""
    with open_complete(path, finite=False) as handle:
        dataset = handle[name]
        for start in range(0, dataset.shape[0], block_rows):
            block = np.ascontiguousarray(dataset[start : start + block_rows], dtype=dtype)
            check_finite(block, f"{name} (rows {start} to {start + len(block) - 1})", path, row_offset=start)
            yield block
