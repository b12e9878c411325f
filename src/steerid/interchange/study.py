"""A vector file named in a study's config (``models.<name>.vectors.<trait>``), as that study's v.

The same :func:`checked_import` runs twice: at parse time, against the model's shape from its
``config.json`` (so a file that cannot steer the model stops the run before any job), and in the
vector job, where the file is read again and turned into v by :func:`study_vector`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steerid.engine.site import Layers, site_layers
from steerid.interchange.checks import check_against
from steerid.interchange.registry import guess_format, read_vector
from steerid.interchange.strength import at_residual_strength
from steerid.interchange.vector_file import VectorFile

__all__ = ["VectorImport", "checked_import", "study_vector"]


@dataclass(frozen=True)
class VectorImport:
    """One ``models.<name>.vectors.<trait>`` entry: the file, how to read it, and how strongly to add it.

    ``strength`` is in mean residual norms at the layer (the direction's own length divided out);
    None adds the direction at the length the file stores.
    """

    file: str
    format: str | None = None
    index_means: str | None = None
    strength: float | None = None
    allow_model_mismatch: bool = False

    @classmethod
    def from_config(cls, entry: Mapping) -> VectorImport:
        """From a schema-checked entry (the schema allows exactly these keys and fills their defaults)."""
        return cls(**entry)

    @property
    def format_name(self) -> str:
        return self.format or guess_format(self.file).name

    def read(self) -> VectorFile:
        return read_vector(self.file, self.format, index_means=self.index_means)


def checked_import(
    entry: VectorImport, *, d_model: int, n_layers: int, model_type: str | None, layer: Layers
) -> VectorFile:
    """The entry's file, read and checked against the model (width, hint, layers, finite values).

    Raises:
        VectorFileError: the file cannot be read, or cannot steer ``layer`` (every layer of a site) of this model; the
            message names the file and the value.
    """
    vector_file = entry.read()
    check_against(
        vector_file,
        d_model=d_model,
        n_layers=n_layers,
        model_type=model_type,
        layers=list(site_layers(layer)),
        allow_hint_mismatch=entry.allow_model_mismatch,
    )
    return vector_file


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def study_vector(
    entry: VectorImport, vector_file: VectorFile, layer: int, mean_residual_norm: float
) -> tuple[np.ndarray, dict]:
    """v from the file's direction at ``layer`` (float64), and the provenance fields naming its source."""
    direction = vector_file.directions[layer].astype(np.float64)
    if entry.strength is None:
        v = direction
    else:
        v = at_residual_strength(direction, mean_residual_norm, entry.strength).vector.astype(np.float64)
    source = {
        "source": f"imported from {entry.file} ({entry.format_name}, layer {layer})",
        "source_file": entry.file,
        "source_format": entry.format_name,
        "source_sha256": _sha256(entry.file),
        "source_model_hint": vector_file.model_hint,
        "source_coefficient": vector_file.coefficient,
        "source_norm": float(np.linalg.norm(direction)),
        "strength_in_residual_norms": entry.strength,
    }
    return v, source
