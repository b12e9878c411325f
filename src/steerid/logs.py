"""Route a workflow job's logging, warnings and tqdm progress into its Snakemake log file."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("steerid")


@contextlib.contextmanager
def logged(path: str | Path) -> Iterator[logging.Logger]:
    """Send stdout, stderr (tqdm, warnings) and the ``steerid`` logger to ``path`` for the block."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", buffering=1) as stream, contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
        logging.basicConfig(
            stream=stream, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
        )
        logging.captureWarnings(True)
        started = time.perf_counter()
        try:
            yield log
        except BaseException:
            log.exception("job failed")
            raise
        log.info("done in %.1f s", time.perf_counter() - started)
