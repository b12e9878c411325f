"""The in-memory value every format reads into and writes from: directions keyed by steerid's layer.

Layer convention: key ``L`` is the output of 0-based decoder block ``L`` (the residual stream after
block ``L``, Hugging Face ``hidden_states[L + 1]``), which is where :mod:`steerid.engine.hooks` reads and
adds. Every reader converts its format's own indexing to this, and every writer converts back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

LAYER_CONVENTION = "block_output"


class VectorFileError(ValueError):
    """A vector file that cannot be read, written or used as asked; the message names file and value."""


def where(source_path: str | None) -> str:
    """The prefix naming a file in an error message ("" for a vector built in memory)."""
    return f"{source_path}: " if source_path else ""


def direction_name(layer: int) -> str:
    """The tensor name of a layer's direction in GGUF and safetensors files: ``direction.{layer}``."""
    return f"direction.{layer}"


def layer_of_direction(source_path: str, tensor_name: str) -> int:
    """The layer N of a tensor named ``direction.N``; any other name is an error naming the file."""
    prefix, _, index = tensor_name.partition(".")
    if prefix != "direction" or not index.isdigit():
        raise VectorFileError(f"{source_path}: tensor {tensor_name!r} is not a direction: expected direction.N, N >= 0")
    return int(index)


def _as_direction(layer: object, values: object, source_path: str | None) -> tuple[int, np.ndarray]:
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer < 0:
        raise VectorFileError(f"{where(source_path)}layer key {layer!r} is not a block index: expected an int >= 0")
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.floating):
        raise VectorFileError(
            f"{where(source_path)}direction for layer {layer} has dtype {array.dtype} and shape {array.shape}: "
            "expected a non-empty 1-D float vector"
        )
    return int(layer), np.array(array, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class VectorFile:
    """Steering directions read from (or to be written to) a file, in steerid's layer convention.

    ``directions`` maps a layer (the output of decoder block ``L``, HF ``hidden_states[L + 1]``) to a
    float32 1-D array; all arrays share one width d. ``model_hint`` is the model the vector was made
    for as its source names it (a Hugging Face ``model_type`` such as "llama" for GGUF and svec
    files). ``coefficient`` is the strength the source recorded, if it recorded one; steerid does
    not apply it. ``metadata`` keeps the source's other string fields and notes on what a reader
    converted or dropped.

    Raises:
        VectorFileError: no directions, a negative or non-integer layer, a direction that is not a
            1-D float vector, or directions of different widths.
    """

    directions: Mapping[int, np.ndarray]
    model_hint: str | None
    coefficient: float | None
    source_format: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    source_path: str | None = None

    def __post_init__(self) -> None:
        if not self.directions:
            raise VectorFileError(f"{where(self.source_path)}the file holds no steering directions")
        converted = dict(sorted(_as_direction(k, v, self.source_path) for k, v in self.directions.items()))
        widths = {layer: len(vector) for layer, vector in converted.items()}
        if len(set(widths.values())) > 1:
            raise VectorFileError(
                f"{where(self.source_path)}directions have different widths {widths}: expected one width for all layers"
            )
        # Frozen, yet the stored value must be the validated float32 copy, not the caller's arrays.
        object.__setattr__(self, "directions", converted)
        object.__setattr__(self, "metadata", dict(self.metadata))

    @property
    def layers(self) -> list[int]:
        """The layers with a direction, ascending."""
        return list(self.directions)

    @property
    def width(self) -> int:
        """The common length d of the directions."""
        return len(next(iter(self.directions.values())))

    def stacked(self) -> tuple[tuple[int, ...], np.ndarray]:
        """Every layer with a direction and the directions as one (layers, d) array: a steering site
        and its deltas, as generation and teacher forcing take them (:mod:`steerid.engine.site`)."""
        return tuple(self.directions), np.stack(list(self.directions.values()))

    def norms(self) -> dict[int, float]:
        """The Euclidean norm of each layer's direction."""
        return {layer: float(np.linalg.norm(vector.astype(np.float64))) for layer, vector in self.directions.items()}
