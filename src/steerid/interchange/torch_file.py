"""Loading and saving torch files safely: tensors and plain containers only, never arbitrary pickles."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from steerid.interchange.vector_file import VectorFileError
from steerid.io import atomic_path


def load_tensors(path: Path) -> object:
    """``torch.load`` with ``weights_only=True``: a file that needs code to unpickle is refused, not run."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise VectorFileError(
            f"{path}: holds more than tensors and plain containers (a pickled object needs its package's code, "
            "which steerid does not run): save the tensors themselves, e.g. vector.layer_activations"
        ) from err
    except Exception as err:  # torch.load raises EOFError, KeyError, RuntimeError... on bytes it cannot parse
        raise VectorFileError(f"{path}: not a readable torch file ({type(err).__name__}: {err})") from err


def save_tensors(value: object, path: Path) -> None:
    """``torch.save`` to a temporary sibling, renamed onto ``path`` once complete."""
    with atomic_path(path) as temporary:
        torch.save(value, temporary)
