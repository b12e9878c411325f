"""Checks of a vector file against the model it is to steer, run before any model is loaded."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from steerid.interchange.vector_file import VectorFile, VectorFileError, where


def _check_width(vector_file: VectorFile, d_model: int) -> None:
    if vector_file.width != d_model:
        raise VectorFileError(
            f"{where(vector_file.source_path)}directions have width {vector_file.width} but the model's hidden size "
            f"is {d_model}: expected vectors of length {d_model} (is the file for another model?)"
        )


def _check_hint(vector_file: VectorFile, model_type: str | None, allow_hint_mismatch: bool) -> None:
    hint = vector_file.model_hint
    if model_type is None or hint is None or hint.lower() == model_type.lower():
        return
    message = (
        f"{where(vector_file.source_path)}the file's model hint is {hint!r} but the model is a {model_type!r}: "
        "expected the two to match (allow a mismatch only for a vector known to fit this model)"
    )
    if not allow_hint_mismatch:
        raise VectorFileError(message)
    warnings.warn(message, stacklevel=3)


def _check_layers(vector_file: VectorFile, n_layers: int, layers: Sequence[int] | None) -> None:
    beyond = [layer for layer in [*vector_file.layers, *(layers or [])] if not 0 <= layer < n_layers]
    if beyond:
        raise VectorFileError(
            f"{where(vector_file.source_path)}layers {sorted(set(beyond))} do not exist in the model: "
            f"expected 0 <= layer < {n_layers}"
        )
    missing = [layer for layer in layers or [] if layer not in vector_file.directions]
    if missing:
        raise VectorFileError(
            f"{where(vector_file.source_path)}the file has no direction for layers {missing}: "
            f"it has layers {vector_file.layers}"
        )


def _check_finite(vector_file: VectorFile) -> None:
    for layer, direction in vector_file.directions.items():
        bad = np.flatnonzero(~np.isfinite(direction))
        if bad.size:
            raise VectorFileError(
                f"{where(vector_file.source_path)}direction for layer {layer} has {direction[bad[0]]} at index "
                f"{bad[0]} ({bad.size} non-finite values): expected finite numbers"
            )


def check_against(
    vector_file: VectorFile,
    *,
    d_model: int,
    n_layers: int,
    model_type: str | None = None,
    layers: Sequence[int] | None = None,
    allow_hint_mismatch: bool = False,
) -> None:
    """Raise if ``vector_file`` cannot steer a model of hidden size ``d_model`` and ``n_layers`` blocks.

    ``model_type`` is the model's HF ``model_type`` (a prepared model's ``Manifest.architecture``),
    compared case-insensitively with the file's model hint when both are known; a mismatch is an
    error unless ``allow_hint_mismatch``, then a warning. ``layers`` are the layers to be steered:
    each must be in the file. Every layer in the file must exist in the model.

    Raises:
        VectorFileError: a width other than ``d_model``, a model hint that does not match, a layer
            outside ``0 <= layer < n_layers``, a requested layer the file lacks, or a NaN/Inf
            (naming its layer and index).
    """
    _check_width(vector_file, d_model)
    _check_hint(vector_file, model_type, allow_hint_mismatch)
    _check_layers(vector_file, n_layers, layers)
    _check_finite(vector_file)
