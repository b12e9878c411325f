"""Classify a model spec without importing torch (the Snakefile checks specs at parse time)."""

from __future__ import annotations

import re
from pathlib import Path

EMBEDDED_NAMES = ("smollm2-135m", "gemma3-270m")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def spec_kind(spec: str) -> str:
    """``embedded``, ``local`` or ``hub``; a ValueError naming the spec when it is none of them."""
    if spec in EMBEDDED_NAMES:
        return "embedded"
    if spec and Path(spec).is_dir():
        if not (Path(spec) / "config.json").is_file():
            raise ValueError(f"model spec {spec!r} is a folder without config.json; expected a Hugging Face model folder")
        return "local"
    if _HUB_ID.match(spec):
        return "hub"
    raise ValueError(
        f"model spec {spec!r} cannot be resolved: expected one of the embedded models {list(EMBEDDED_NAMES)}, "
        "an existing Hugging Face model folder, or a hub id like 'Qwen/Qwen2.5-3B-Instruct'"
    )
