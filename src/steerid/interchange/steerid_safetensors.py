"""steerid's safetensors convention for steering vectors (there is no community one).

A file holds one float32 1-D tensor ``direction.{N}`` per layer, N being steerid's layer: the
output of 0-based decoder block N (Hugging Face ``hidden_states[N + 1]``). Its string metadata:

- ``steerid.layer_convention`` = ``"block_output"`` (required: without it the indices mean nothing);
- ``steerid.model_hint``: the model the vector was made for (a HF ``model_type``), if known;
- ``steerid.coefficient``: the strength its source recorded, as a decimal float, if any;
- ``steerid.meta.{key}``: every other metadata string, verbatim.

Any safetensors reader loads it: ``safetensors.numpy.load_file`` gives the tensors and
``safe_open(path, "np").metadata()`` the strings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steerid.interchange.vector_file import (
    LAYER_CONVENTION,
    VectorFile,
    VectorFileError,
    direction_name,
    layer_of_direction,
)
from steerid.io import atomic_path

NAME = "safetensors"
CONVENTION_KEY = "steerid.layer_convention"
HINT_KEY = "steerid.model_hint"
COEFFICIENT_KEY = "steerid.coefficient"
METADATA_PREFIX = "steerid.meta."


def _open(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="np") as file:
            # safe_open handles have keys() but cannot be iterated.
            return {name: file.get_tensor(name) for name in file.keys()}, dict(file.metadata() or {})  # noqa: SIM118
    except (OSError, SafetensorError) as err:
        raise VectorFileError(f"{path}: not a readable safetensors file ({type(err).__name__}: {err})") from err


def _check_convention(path: Path, header: dict[str, str]) -> None:
    convention = header.get(CONVENTION_KEY)
    if convention != LAYER_CONVENTION:
        raise VectorFileError(
            f"{path}: metadata {CONVENTION_KEY} is {convention!r}: expected {LAYER_CONVENTION!r} (a steerid vector "
            "file); the layer indices of other safetensors files are unknown"
        )


def _coefficient(path: Path, text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError as err:
        raise VectorFileError(f"{path}: metadata {COEFFICIENT_KEY} is {text!r}: expected a decimal number") from err


def read_safetensors(path: Path) -> VectorFile:
    """Read a steerid safetensors vector file (see the module docstring for the convention).

    Raises:
        VectorFileError: unreadable, no ``steerid.layer_convention = "block_output"``, a tensor
            not named ``direction.N``, or a coefficient that is not a number.
    """
    tensors, header = _open(path)
    _check_convention(path, header)
    return VectorFile(
        directions={layer_of_direction(str(path), name): tensor for name, tensor in tensors.items()},
        model_hint=header.get(HINT_KEY),
        coefficient=_coefficient(path, header.get(COEFFICIENT_KEY)),
        source_format=NAME,
        metadata={key.removeprefix(METADATA_PREFIX): v for key, v in header.items() if key.startswith(METADATA_PREFIX)},
        source_path=str(path),
    )


def _header(vector_file: VectorFile) -> dict[str, str]:
    header = {CONVENTION_KEY: LAYER_CONVENTION}
    if vector_file.model_hint is not None:
        header[HINT_KEY] = vector_file.model_hint
    if vector_file.coefficient is not None:
        header[COEFFICIENT_KEY] = repr(vector_file.coefficient)
    header.update({METADATA_PREFIX + key: value for key, value in vector_file.metadata.items()})
    return header


def write_safetensors(vector_file: VectorFile, path: Path) -> None:
    """Write ``direction.{layer}`` float32 tensors and the ``steerid.*`` metadata, atomically."""
    from safetensors.numpy import save_file

    tensors = {direction_name(layer): np.ascontiguousarray(v) for layer, v in vector_file.directions.items()}
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=_header(vector_file))
