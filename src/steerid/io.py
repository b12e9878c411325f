"""Atomic file writes: a crash never leaves a file that looks complete, nor a partial one for ever.

A file is written under a hidden sibling name, ``.{name}.partial-{host}-{pid}``, and renamed onto
its own name only when complete. A writer killed mid-write (kill -9, a node lost) leaves that
sibling behind; it is removed as soon as its writer is known to be gone: when the same target is
written again, and when a workflow run starts (:func:`remove_stale_partials`). A writer counts as
gone when it ran on this host and its process no longer exists; partial files of other hosts (a
cluster's nodes) are left alone, since their writers may still be running.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

_HOST = socket.gethostname()
# Older partial names had no host part: ".{name}.partial-{pid}".
_PARTIAL = re.compile(r"^\.(?P<target>.+)\.partial-(?:(?P<host>.+)-)?(?P<pid>\d+)$")


def _partial_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.partial-{_HOST}-{os.getpid()}")


def _writer_gone(host: str | None, pid: int) -> bool:
    if host not in (None, _HOST) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, owned by another user
        return False
    return False


def _stale(path: Path, target: str | None = None) -> bool:
    match = _PARTIAL.match(path.name)
    if match is None or (target is not None and match["target"] != target):
        return False
    return path.is_file() and _writer_gone(match["host"], int(match["pid"]))


def remove_stale_partials(root: str | os.PathLike) -> list[Path]:
    """Delete every partial file under ``root`` whose writer is gone; return what was deleted."""
    removed = []
    for path in sorted(Path(root).rglob(".*.partial-*")):
        if _stale(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.partial-*"):
        if _stale(leftover, target.name):
            leftover.unlink(missing_ok=True)
    temporary = _partial_path(target)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def atomic_write_json(path: str | os.PathLike, payload: object) -> None:
    """Write ``payload`` as indented JSON atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, allow_nan=True) + "\n")
