"""Streaming covariance straight from an HDF5 dataset, reading ahead while the native code
computes.

Two read paths:

* **Contiguous, unfiltered datasets** (the HDF5 default layout, no compression) are memory-mapped:
  the native accumulator reads the file's pages in place, so there is no copy at all, and the
  kernel is asked (``madvise(MADV_WILLNEED)``) to read the next slab ahead while the current one
  is computed.
* **Chunked or compressed datasets** (lzf, gzip, ...) are read slab by slab with h5py into two
  reusable buffers by a background thread while the native code computes the previous slab.
  The native ``update`` releases the GIL for its whole computation; h5py holds the GIL (and its
  own lock) during a read, including decompression, but that does not stall the overlap: the
  main thread only needs the GIL for the microseconds between two ``update`` calls.

The optional row mask (``where``) is handed to the native ``update``, which skips the masked
rows without copying the slab. Either path comes close to the in-memory pass over the same rows
(measurements in ``benchmarks/README.md``); gzip is decompression-bound and is not recommended.

Sharding (``background.shards``): each shard of the background texts is dumped and accumulated by
its own job; :func:`write_accumulator` keeps an accumulator's exact state (count, mean, scatter in
float64) in an HDF5 group, and :func:`merged` combines the shards' states with Chan's formula, so
the merged covariance is the one a single pass over all rows gives, up to float64 rounding.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import queue
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from steerid.linalg import StreamingCovariance

__all__ = ["covariance_from_hdf5", "merged", "read_accumulator", "shard_slice", "write_accumulator"]

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

    A contiguous, unfiltered dataset is memory-mapped and read in place (no copy), with the
    next slab requested from the kernel ahead of time; a chunked or compressed one is read in
    slabs of ``chunk_rows`` rows into two reusable buffers of the dataset's own dtype by a
    background thread while the native accumulator works on the previous slab (GIL
    released). float16/32 data are widened to float64 by the native code, never by NumPy.

    Args:
        path: HDF5 file.
        dataset: name of a 2-D (N, d) float16/float32/float64 dataset in it.
        chunk_rows: rows per slab (>= 1), e.g. 8192. Rounded up to a multiple of the dataset's
            HDF5 chunk rows, so compressed chunks are decoded once. Memory: two slabs of the
            dataset dtype (none for a memory-mapped dataset, whose pages the kernel may drop)
            plus the accumulator's O(d^2) state and its fixed float64 scratch.
        where: optional boolean mask of length N; only rows where it is True are included
            (e.g. to exclude attention-sink positions). Passed per slab to the native update,
            which skips the other rows without copying (they are not even read).
        accumulator: add to this accumulator (same d) instead of a new one, e.g. to resume
            from a checkpoint or to combine several files.
        prefetch: read ahead (default): memory map, or a reader thread. False reads each slab
            with h5py and then computes, in turn (for comparison and debugging).

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

    # steerid.linalg re-exports this function, so importing it at module level would be circular.
    from steerid.linalg import StreamingCovariance

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
                f"covariance_from_hdf5: dataset {dataset!r} has dtype {dset.dtype}; "
                "expected float16, float32 or float64"
            )
        n_rows, d = (int(x) for x in dset.shape)
        mask = _check_mask(where, n_rows)
        if mask is not None:
            mask = np.ascontiguousarray(mask)
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

        def add(slab: np.ndarray, start: int) -> None:
            keep = None if mask is None else mask[start : start + len(slab)]
            try:
                accumulator.update(slab, where=keep)
            except ValueError as error:
                raise ValueError(
                    f"covariance_from_hdf5: slab starting at row {start} of {dataset!r}: {error}"
                ) from None

        mapped = _memory_map(path, handle, dset, dtype) if prefetch else None
        if mapped is not None:
            _stream_mapped(mapped, starts, rows, add)
            return accumulator
        buffers = [np.empty((rows, d), dtype=dtype) for _ in range(2 if prefetch else 1)]

        def read(index: int, start: int) -> np.ndarray:
            stop = min(start + rows, n_rows)
            buffer = buffers[index]
            dset.read_direct(buffer, np.s_[start:stop], np.s_[0 : stop - start])
            return buffer[: stop - start]

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


def _memory_map(path: str | os.PathLike[str], handle: Any, dset: Any, dtype: np.dtype) -> np.memmap | None:
    """A read-only memory map of a contiguous, unfiltered, native-endian dataset, else None."""
    try:
        if dset.chunks is not None or handle.driver != "sec2" or not dset.dtype.isnative:
            return None
        offset = dset.id.get_offset()
        if offset is None or offset % dtype.itemsize != 0:
            return None
        mapped = np.memmap(os.fspath(path), dtype=dtype, mode="r", offset=int(offset), shape=tuple(dset.shape))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    # Cheap guard against a layout this module does not understand: the first and last rows
    # must match what h5py reads.
    n = int(dset.shape[0])
    for row in {0, n - 1}:
        if not np.array_equal(mapped[row], dset[row], equal_nan=True):
            return None
    return mapped


def _stream_mapped(mapped: np.memmap, starts: range, rows: int, add: Any) -> None:
    raw = getattr(mapped, "_mmap", None)
    page = mmap.PAGESIZE
    base = int(mapped.offset) - int(mapped.offset) % mmap.ALLOCATIONGRANULARITY  # start of the mapping
    row_bytes = int(mapped.strides[0])
    n_rows = int(mapped.shape[0])

    def will_need(start: int) -> None:
        if raw is None or not hasattr(raw, "madvise") or start >= n_rows:
            return
        first = int(mapped.offset) - base + start * row_bytes
        last = int(mapped.offset) - base + min(start + rows, n_rows) * row_bytes
        aligned = first - first % page
        with contextlib.suppress(OSError, ValueError, AttributeError):
            raw.madvise(mmap.MADV_WILLNEED, aligned, last - aligned)

    will_need(0)
    for start in starts:
        will_need(start + rows)  # the kernel reads the next slab ahead, asynchronously
        add(mapped[start : start + rows], start)


def shard_slice(n: int, shard: int, shards: int) -> slice:
    """Shard ``shard`` of ``shards`` contiguous, near-equal slices of ``range(n)`` (sizes differ by at most 1)."""
    if not 0 <= shard < shards <= n:
        raise ValueError(f"shard {shard} of {shards} over {n} items; expected 0 <= shard < shards <= n")
    return slice(shard * n // shards, (shard + 1) * n // shards)


def write_accumulator(group: Any, accumulator: StreamingCovariance) -> None:
    """Store an accumulator's exact state in an (empty) HDF5 group."""
    state = accumulator.state()
    group.create_dataset("mean", data=state["mean"])
    group.create_dataset("m2", data=state["m2"])
    group.attrs.update({"format": state["format"], "dim": state["dim"], "count": state["count"]})


def read_accumulator(group: Any) -> StreamingCovariance:
    """The accumulator :func:`write_accumulator` stored in ``group``."""
    from steerid.linalg import StreamingCovariance  # deferred: see covariance_from_hdf5

    attrs = group.attrs
    return StreamingCovariance.from_state(
        {
            "format": str(attrs["format"]),
            "dim": int(attrs["dim"]),
            "count": int(attrs["count"]),
            "mean": group["mean"][()],
            "m2": group["m2"][()],
        }
    )


def merged(accumulators: Iterable[StreamingCovariance]) -> StreamingCovariance:
    """One accumulator holding every row the given ones saw (merged in order)."""
    from steerid.linalg import StreamingCovariance  # deferred: see covariance_from_hdf5

    parts = iter(accumulators)
    first = next(parts, None)
    if first is None:
        raise ValueError("merged: no accumulators given; expected at least one")
    total = StreamingCovariance.from_state(first.state())
    for part in parts:
        total.merge(part)
    return total
