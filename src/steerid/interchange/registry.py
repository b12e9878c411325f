"""The one registry of vector file formats, and reading and writing through it by name or suffix."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steerid.interchange import gguf_control, persona_vectors, steerid_safetensors, svec, torch_dict
from steerid.interchange.vector_file import VectorFile, VectorFileError


@dataclass(frozen=True)
class VectorFormat:
    """A file format: how to recognise, read and (where it can be) write it.

    ``read`` takes the path and the keyword options named in ``read_options``; ``write`` is None
    for a format steerid only imports.
    """

    name: str
    suffixes: tuple[str, ...]
    read: Callable[..., VectorFile]
    write: Callable[[VectorFile, Path], None] | None
    description: str
    read_options: tuple[str, ...] = ()


FORMATS: dict[str, VectorFormat] = {
    entry.name: entry
    for entry in (
        VectorFormat(
            gguf_control.NAME,
            (".gguf",),
            gguf_control.read_gguf,
            gguf_control.write_gguf,
            "GGUF control vector (repeng, EasySteer, llama.cpp; dialz's steeringvector header is read too)",
        ),
        VectorFormat(
            steerid_safetensors.NAME,
            (".safetensors",),
            steerid_safetensors.read_safetensors,
            steerid_safetensors.write_safetensors,
            "steerid's safetensors convention: direction.N tensors and steerid.* metadata",
        ),
        VectorFormat(
            svec.NAME,
            (".svec",),
            svec.read_svec,
            None,
            "IBM activation-steering / AISteer360 JSON; needs index_means (output or input)",
            read_options=("index_means",),
        ),
        VectorFormat(
            persona_vectors.NAME,
            persona_vectors.SUFFIXES,
            persona_vectors.read_persona_vectors,
            None,
            "persona_vectors [num_hidden_layers + 1, d] tensor; row L is layer L - 1, row 0 dropped",
        ),
        VectorFormat(
            torch_dict.NAME,
            (".pt", ".pth"),
            torch_dict.read_torch_dict,
            torch_dict.write_torch_dict,
            "torch-saved dict[int, Tensor]: the steering-vectors library's layer_activations",
        ),
    )
}


def listing(writable_only: bool = False) -> str:
    """The formats as ``name (suffixes)``, for messages that tell a user what to choose from."""
    entries = [entry for entry in FORMATS.values() if entry.write is not None or not writable_only]
    return ", ".join(f"{entry.name} ({' '.join(entry.suffixes)})" for entry in entries)


def format_named(name: str) -> VectorFormat:
    """The registered format called ``name``."""
    if name not in FORMATS:
        raise VectorFileError(f"unknown vector format {name!r}: expected one of {listing()}")
    return FORMATS[name]


def guess_format(path: str | os.PathLike, writing: bool = False) -> VectorFormat:
    """The format whose suffix ends ``path``'s name (the longest such suffix; writable formats when ``writing``)."""
    name = Path(path).name.lower()
    matches = [
        (len(suffix), entry)
        for entry in FORMATS.values()
        if entry.write is not None or not writing
        for suffix in entry.suffixes
        if name.endswith(suffix)
    ]
    longest = max((length for length, _ in matches), default=0)
    candidates = [entry.name for length, entry in matches if length == longest]
    if len(candidates) != 1:
        raise VectorFileError(
            f"{path}: cannot tell the vector format from the file name; name it (--format / --from / --to) "
            f"as one of: {listing(writable_only=writing)}"
        )
    return FORMATS[candidates[0]]


def _chosen(path: str | os.PathLike, format_name: str | None, writing: bool) -> VectorFormat:
    return guess_format(path, writing) if format_name is None else format_named(format_name)


def read_vector(path: str | os.PathLike, format_name: str | None = None, **options: str | None) -> VectorFile:
    """Read ``path`` as ``format_name`` (guessed from its suffix when None); ``options`` go to that format's reader.

    An option left None counts as not given. Raises VectorFileError for a missing file, an unknown
    or unguessable format, an option the format does not take, or a file the reader rejects.
    """
    entry = _chosen(path, format_name, writing=False)
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(given) - set(entry.read_options))
    if unknown:
        raise VectorFileError(
            f"{path}: the {entry.name} format takes no option {', '.join(unknown)}; "
            f"it takes: {', '.join(entry.read_options) or 'none'}"
        )
    if not Path(path).is_file():
        raise VectorFileError(f"{path}: no such file")
    return entry.read(Path(path), **given)


def write_vector(vector_file: VectorFile, path: str | os.PathLike, format_name: str | None = None) -> VectorFormat:
    """Write ``vector_file`` to ``path`` as ``format_name`` (guessed from the suffix when None); return the format."""
    entry = _chosen(path, format_name, writing=True)
    if entry.write is None:
        raise VectorFileError(
            f"{path}: steerid reads the {entry.name} format but does not write it; write one of: "
            f"{listing(writable_only=True)}"
        )
    entry.write(vector_file, Path(path))
    return entry


def export_vector(
    vectors: Mapping[int, np.ndarray],
    path: str | os.PathLike,
    *,
    model_hint: str | None,
    coefficient: float | None = None,
    metadata: Mapping[str, str] | None = None,
    format_name: str | None = None,
) -> VectorFile:
    """Write steerid vectors (block-output layer to array) as ``format_name``, e.g. a GGUF llama.cpp and repeng load.

    The vectors are written at the length they have: llama.cpp and repeng add them times the
    strength given at load time (``--control-vector-scaled``, ``coeff``), so 1 adds them as they are.
    """
    vector_file = VectorFile(
        directions=vectors,
        model_hint=model_hint,
        coefficient=coefficient,
        source_format="steerid",
        metadata=metadata or {},
    )
    write_vector(vector_file, path, format_name)
    return vector_file
