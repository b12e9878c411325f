"""A steering site: the decoder layers one intervention shifts, and its deltas laid out per layer.

The paper steers at one layer. Vectors extracted or imported over a range of layers (repeng and
llama.cpp control vectors, persona_vectors, the steering-vectors library) shift several layers at
once, each by its own row: the intervention is the sum of those shifts. Everything that steers
(generation, teacher forcing, the residual hooks) takes ``layers`` as one int or a sequence of them
and deltas of shape (..., d) for one layer or (..., len(layers), d) for several; this module is
where both are checked and put in the one layout the engine uses.

A site is named in file paths (the workflow's ``L{layer}`` wildcard) by its label: ``15`` for one
layer, ``12+15+18`` for several; records store one layer as its int and a site as its list.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the workflow's parse reads site labels and must not wait for torch to import
    import torch

__all__ = ["Layers", "label_layers", "parse_site_label", "site_deltas", "site_label", "site_layers", "stored_site"]

Layers = int | Sequence[int]


def site_layers(layers: Layers, n_layers: int | None = None) -> tuple[int, ...]:
    """``layers`` as a strictly ascending tuple; every layer must exist when ``n_layers`` is given."""
    values = (layers,) if isinstance(layers, int) else tuple(layers) if isinstance(layers, Sequence) else ()
    if not values or any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        raise ValueError(f"layers must be an int or a non-empty sequence of ints, got {layers!r}")
    if list(values) != sorted(set(values)):
        raise ValueError(f"layers {list(values)} must be strictly ascending (each layer once)")
    if n_layers is not None and not all(0 <= v < n_layers for v in values):
        raise ValueError(f"layers {list(values)} do not all exist: expected 0 <= layer < {n_layers}")
    return values


def site_label(layers: Layers) -> str:
    """The site's name in paths and reports: ``15``, or ``12+15+18`` for several layers."""
    return "+".join(str(layer) for layer in site_layers(layers))


def label_layers(label: str) -> tuple[int, ...]:
    """The layers a :func:`site_label` names, ascending."""
    parts = str(label).split("+")
    if not all(part.isdigit() for part in parts):
        raise ValueError(f"steering site {label!r} is not a site label: expected a layer (15) or layers (12+15+18)")
    return site_layers([int(part) for part in parts])


def parse_site_label(label: str) -> Layers:
    """A :func:`site_label` back as the site: an int for one layer, an ascending tuple for several."""
    return _as_site(label_layers(label))


def stored_site(value) -> Layers:
    """A site as a record stored it (an int, a list, HDF5's numpy scalar, or the JSON text provenance
    attributes hold lists as) back as the site."""
    if isinstance(value, str):
        value = json.loads(value)
    return _as_site(site_layers([int(v) for v in value] if hasattr(value, "__iter__") else [int(value)]))


def _as_site(layers: tuple[int, ...]) -> Layers:
    """How a site is passed around: one layer as its int, several as their tuple."""
    return layers[0] if len(layers) == 1 else layers


def site_deltas(deltas: torch.Tensor, layers: tuple[int, ...], rows: int | None = None) -> torch.Tensor:
    """Deltas as (rows, len(layers), d).

    One layer takes (d,) or (rows, d); any site takes (len(layers), d) for every row alike or
    (rows, len(layers), d). ``rows=None`` keeps the rows the deltas have (a leading dim, or 1).
    """
    per_layer = deltas.unsqueeze(-2) if len(layers) == 1 and deltas.ndim <= 2 else deltas
    if per_layer.ndim == 2:
        per_layer = per_layer.unsqueeze(0)
    if per_layer.ndim != 3 or per_layer.shape[1] != len(layers):
        raise ValueError(
            f"deltas of shape {tuple(deltas.shape)} do not fit the steering site at layers {list(layers)}: "
            f"expected (d,) or (rows, d) for one layer, (layers, d) or (rows, layers, d) with layers = {len(layers)}"
        )
    if rows is None or per_layer.shape[0] == rows:
        return per_layer
    if per_layer.shape[0] != 1:
        raise ValueError(f"{per_layer.shape[0]} rows of deltas for {rows} rows of input")
    return per_layer.expand(rows, -1, -1)
