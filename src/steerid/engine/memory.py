"""How many rows a generation batch holds: from the memory one row needs and the memory there is.

A decode step's matrix products run at full speed once a batch has a few hundred rows on a CPU
and a few thousand on a GPU; beyond that, rows only cost memory. So the batch is the smaller of
that saturation point and what fits: each row holds its keys and values for every layer and
slot, plus its float32 logits and noise over the vocabulary.
"""

from __future__ import annotations

import os

import torch

from steerid.engine.decoder import Decoder

SATURATION_ROWS = {"cpu": 512, "cuda": 4096}
MEMORY_SHARE = 0.5  # of the memory available now; the rest is left to the model, activations and the allocator


def row_bytes(decoder: Decoder, capacity: int) -> int:
    """Memory one generating row needs with ``capacity`` cache slots."""
    w = decoder.weights
    element = torch.empty((), dtype=decoder.dtype).element_size()
    cache = 2 * len(w.blocks) * w.n_kv_heads * w.head_dim * capacity * element
    vocabulary = 4 * decoder.vocab * 4  # logits, scaled scores, noise, their sum
    return cache + vocabulary


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def batch_rows_for(decoder: Decoder, capacity: int) -> int:
    """Rows per generation batch on the decoder's device (at least 1)."""
    saturation = SATURATION_ROWS.get(decoder.device.type, SATURATION_ROWS["cpu"])
    fitting = int(MEMORY_SHARE * available_bytes(decoder.device)) // row_bytes(decoder, capacity)
    return max(1, min(saturation, fitting))
