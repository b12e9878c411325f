"""Streaming covariance straight from an HDF5 dataset, with the next slab read while the
native code computes the current one.

The native ``StreamingCovariance.update`` releases the GIL for its whole computation, so a
reader thread can run ``h5py`` meanwhile. h5py itself holds the GIL (and its own global lock)
during a read, including lzf/gzip decompression; that does not stall the overlap, because the
main thread only needs the GIL for the few microseconds between two ``update`` calls, when the
next slab is already waiting. Measured on the 2-core development machine (see
``benchmarks/README.md``): the end-to-end pass over an uncompressed or lzf dataset is within a
few per cent of the in-memory pass; gzip is decompression-bound and is not recommended.
"""

from __future__ import annotations

import math
import os
import queue
import threading
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from steerid._native import StreamingCovariance

__all__ = ["covariance_from_hdf5"]

_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_STOP = object()


def _check_mask(where: ArrayLike | None, n_rows: int) -> np.ndarray | None:
    if where is None:
        return None
    mask = np.asarray(where)
    if mask.dtype != np.bool_:
        raise TypeError(
            f"covariance_from_hdf5: where has dtype {mask.dtype}; expected a boolean row mask (numpy bool array)"
        )
    if mask.shape != (n_rows,):
        raise ValueError(
            f"covariance_from_hdf5: where has shape {mask.shape}; expected ({n_rows},), one entry per dataset row"
        )
    return mask


def _slab_rows(chunk_rows: object, dataset: Any) -> int:
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)):
        raise TypeError(f"covariance_from_hdf5: chunk_rows must be an integer, got {type(chunk_rows).__name__}")
    rows = int(chunk_rows)
    if rows < 1:
        raise ValueError(f"covariance_from_hdf5: chunk_rows={rows} is invalid; expected chunk_rows >= 1")
    # Align slabs with the dataset's HDF5 chunks so that no compressed chunk is decoded twice.
    if dataset.chunks is not None:
        storage_rows = int(dataset.chunks[0])
        rows = storage_rows * math.ceil(rows / storage_rows)
    return min(rows, max(int(dataset.shape[0]), 1))


def covariance_from_hdf5(
    path: str | os.PathLike[str],
    dataset: str,
    chunk_rows: int,
    where: ArrayLike | None = None,
    *,
    accumulator: StreamingCovariance | None = None,
    prefetch: bool = True,
) -> StreamingCovariance:
    """Stream the rows of a 2-D HDF5 dataset into a :class:`StreamingCovariance`.

    Slabs of ``chunk_rows`` rows are read into two reusable buffers of the dataset's own
    dtype (float16/32/64, widened to float64 by the native code, never by NumPy); while the
    native accumulator works on one slab (GIL released), a background thread reads the next.

    Args:
        path: HDF5 file.
        dataset: name of a 2-D (N, d) float16/float32/float64 dataset in it.
        chunk_rows: rows per slab (>= 1). Rounded up to a multiple of the dataset's HDF5
            chunk rows, so compressed chunks are decoded once. Memory: two slabs of the
            dataset dtype plus the accumulator's O(d^2) state and its fixed float64 scratch.
        where: optional boolean mask of length N; only rows where it is True are included
            (e.g. to exclude attention-sink positions). Applied per slab.
        accumulator: add to this accumulator (same d) instead of a new one, e.g. to resume
            from a checkpoint or to combine several files.
        prefetch: read in a background thread (default). False reads and computes in turn.

    Returns:
        The accumulator (new unless ``accumulator`` was given).

    Raises:
        TypeError: the dataset is not floating point, ``where`` is not boolean, or
            ``chunk_rows`` is not an integer.
        ValueError: the dataset is not 2-D, ``where`` has the wrong length, ``chunk_rows`` < 1,
            ``accumulator`` has another d, or a slab holds NaN/Inf (the message names the
            slab's first row; rows before that slab have been added to the accumulator).
        KeyError / OSError: from h5py, for a missing dataset or file.
    """
    import h5py  # deferred: only this function needs it

    with h5py.File(path, "r") as handle:
        dset = handle[dataset]
        if not isinstance(dset, h5py.Dataset):
            raise TypeError(f"covariance_from_hdf5: {dataset!r} in {os.fspath(path)!r} is a group, not a dataset")
        if dset.ndim != 2:
            raise ValueError(
                f"covariance_from_hdf5: dataset {dataset!r} has shape {dset.shape}; expected a 2-D (N, d) dataset"
            )
        dtype = dset.dtype.newbyteorder("=") if dset.dtype.kind == "f" else dset.dtype
        if dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"covariance_from_hdf5: dataset {dataset!r} has dtype {dset.dtype}; expected float16, float32 or float64"
            )
        n_rows, d = (int(x) for x in dset.shape)
        mask = _check_mask(where, n_rows)
        if accumulator is None:
            accumulator = StreamingCovariance(d)
        elif accumulator.dim != d:
            raise ValueError(
                f"covariance_from_hdf5: accumulator has d={accumulator.dim} but dataset {dataset!r} has d={d}"
            )
        if n_rows == 0 or d == 0:
            return accumulator
        rows = _slab_rows(chunk_rows, dset)
        starts = range(0, n_rows, rows)
        buffers = [np.empty((rows, d), dtype=dtype) for _ in range(2 if prefetch else 1)]

        def read(index: int, start: int) -> np.ndarray:
            stop = min(start + rows, n_rows)
            buffer = buffers[index]
            dset.read_direct(buffer, np.s_[start:stop], np.s_[0 : stop - start])
            slab = buffer[: stop - start]
            if mask is not None:
                keep = mask[start:stop]
                if not keep.all():
                    slab = slab[keep]  # compact copy, C-contiguous
            return slab

        def add(slab: np.ndarray, start: int) -> None:
            try:
                accumulator.update(slab)
            except ValueError as error:
                raise ValueError(f"covariance_from_hdf5: slab starting at row {start} of {dataset!r}: {error}") from None

        if not prefetch:
            for start in starts:
                add(read(0, start), start)
            return accumulator

        full: queue.Queue[Any] = queue.Queue()
        free: queue.Queue[int] = queue.Queue()
        for index in range(len(buffers)):
            free.put(index)
        stop_event = threading.Event()

        def reader() -> None:
            try:
                for start in starts:
                    index = free.get()
                    if stop_event.is_set():
                        return
                    full.put((index, start, read(index, start)))
                full.put(_STOP)
            except BaseException as error:  # handed to the consumer, re-raised there
                full.put(error)

        thread = threading.Thread(target=reader, name="steerid-hdf5-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = full.get()
                if item is _STOP:
                    break
                if isinstance(item, BaseException):
                    raise item
                index, start, slab = item
                add(slab, start)
                free.put(index)
        finally:
            stop_event.set()
            free.put(0)  # wakes a reader waiting for a buffer
            thread.join()
    return accumulator
