"""Where and how a model job runs, apart from the model stack so that reading it costs no torch import."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Runtime:
    """Where and how a model runs: device ('auto' = CUDA if present), dtype ('auto'), threads, batch size."""

    device: str = "auto"
    dtype: str = "auto"
    threads: int = 1
    batch_size: int = 16
