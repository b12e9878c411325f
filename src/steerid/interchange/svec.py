"""``.svec`` JSON files of IBM activation-steering and AISteer360.

IBM writes ``{"model_type", "directions": {"N": [d floats]}, "explained_variances": {"N": float}}``
with N the output of block N. AISteer360 writes each direction as a ``[K, D]`` list (K = 1 for
CAA) and may add ``num_heads``, ``head_dim`` and ``probe_accuracies``; its N means
``hidden_states[N + 1]`` (location "layer_output", its default) or ``hidden_states[N]``
("layer_input", the input of block N = the output of block N - 1), and the file does not say
which. So the reader must be told (``index_means``) and refuses to guess.

Keys other than ``model_type`` and ``directions`` are kept in the metadata as JSON text, indexed
as in the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from steerid.interchange.vector_file import VectorFile, VectorFileError

NAME = "svec"
INDEX_MEANINGS = ("output", "input")


def _check_index_means(path: Path, index_means: str | None) -> str:
    if index_means not in INDEX_MEANINGS:
        raise VectorFileError(
            f"{path}: index_means is {index_means!r}; an svec file does not say whether its index N is the "
            "output of block N (IBM activation-steering, AISteer360 'layer_output') or its input (AISteer360 "
            f"'layer_input'), so pass index_means as one of {INDEX_MEANINGS} (--index-means on the command line)"
        )
    return index_means


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VectorFileError(f"{path}: not a readable svec JSON file ({type(err).__name__}: {err})") from err
    if not isinstance(data, dict) or not isinstance(data.get("directions"), dict):
        raise VectorFileError(f"{path}: expected a JSON object with a 'directions' object mapping layer to vector")
    return data


def _one_direction(path: Path, index: str, values: object) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise VectorFileError(f"{path}: direction {index!r} is not a list of numbers ({err})") from err
    # AISteer360 stores [K, D]; one direction per layer is K = 1.
    if array.ndim == 2 and array.shape[0] == 1:
        return array[0]
    if array.ndim != 1:
        raise VectorFileError(
            f"{path}: direction {index!r} has shape {array.shape}: expected [D] or [1, D] (steerid reads one "
            "direction per layer)"
        )
    return array


def _steerid_layer(path: Path, index: str, index_means: str) -> int:
    if not index.isdigit():
        raise VectorFileError(f"{path}: direction key {index!r} is not a layer index: expected a string of digits")
    return int(index) - (1 if index_means == "input" else 0)


def read_svec(path: Path, *, index_means: str | None = None) -> VectorFile:
    """Read an svec file; ``index_means`` says whether its index N is block N's output or its input.

    With "input", index N becomes steerid layer N - 1, and index 0 (the embeddings, no block's
    output) is dropped with a note in the metadata.

    Raises:
        VectorFileError: ``index_means`` missing or not one of :data:`INDEX_MEANINGS`, the file is
            not svec JSON, or a direction is not one vector.
    """
    meaning = _check_index_means(path, index_means)
    data = _load_json(path)
    metadata = {"svec.index_means": meaning}
    directions: dict[int, np.ndarray] = {}
    for index, values in data["directions"].items():
        layer = _steerid_layer(path, index, meaning)
        if layer < 0:
            metadata["dropped"] = f"index {index}: the input of block 0 is the embeddings, not a block output"
            continue
        directions[layer] = _one_direction(path, index, values)
    extra = {key: json.dumps(value) for key, value in data.items() if key not in ("model_type", "directions")}
    model_type = data.get("model_type")
    return VectorFile(
        directions=directions,
        model_hint=None if model_type is None else str(model_type),
        coefficient=None,
        source_format=NAME,
        metadata={**extra, **metadata},
        source_path=str(path),
    )
