"""A torch-saved ``dict[int, Tensor]``: the ``layer_activations`` of the steering-vectors library.

steering-vectors has no file format; its ``SteeringVector(layer_activations, layer_type=
"decoder_block")`` is saved by saving that dict. Its layer number is the position of the block in
the model's decoder-block list, read and steered with a forward hook on the block's output
(``record_activations`` and ``SteeringVector.patch_activations``, steering_vectors/
record_activations.py and steering_vector.py): the output of block L, steerid's layer L, so keys
are not shifted. Only ``layer_type="decoder_block"`` vectors mean that; a dict saved from another
layer type (mlp, self_attn) is indistinguishable and must not be given here.

The dict holds nothing else: a model hint, coefficient or metadata is not written (with a warning).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from steerid.interchange.torch_file import load_tensors, save_tensors
from steerid.interchange.vector_file import VectorFile, VectorFileError

NAME = "steering-vectors"


def _layer_tensor(path: Path, layer: object, value: object) -> tuple[int, torch.Tensor]:
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise VectorFileError(
            f"{path}: key {layer!r} is not a layer number: expected int keys, as steering-vectors uses"
        )
    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise VectorFileError(
            f"{path}: the value for layer {layer!r} is {type(value).__name__}: expected a float tensor"
        )
    return layer, value.detach().to(torch.float32).cpu()


def read_torch_dict(path: Path) -> VectorFile:
    """Read a torch-saved ``{layer: tensor(d)}`` (block-output layers, as steering-vectors keys them).

    Raises:
        VectorFileError: the file is not a torch file of a dict of float tensors, or holds a
            pickled object rather than plain tensors.
    """
    value = load_tensors(path)
    if not isinstance(value, dict):
        found = f"a tensor of shape {list(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
        raise VectorFileError(
            f"{path}: holds {found}: expected a dict of layer to tensor (a [num_hidden_layers + 1, d] tensor is "
            "the persona-vectors format)"
        )
    tensors = dict(_layer_tensor(path, layer, tensor) for layer, tensor in value.items())
    return VectorFile(
        directions={layer: tensor.numpy() for layer, tensor in tensors.items()},
        model_hint=None,
        coefficient=None,
        source_format=NAME,
        source_path=str(path),
    )


def write_torch_dict(vector_file: VectorFile, path: Path) -> None:
    """Save ``{layer: float32 tensor}``, loadable as ``SteeringVector(torch.load(path))``."""
    dropped = [name for name in ("model_hint", "coefficient") if getattr(vector_file, name) is not None]
    if vector_file.metadata:
        dropped.append("metadata")
    if dropped:
        warnings.warn(
            f"{path}: the steering-vectors format holds only tensors; not written: {', '.join(dropped)}", stacklevel=2
        )
    save_tensors(
        {layer: torch.from_numpy(direction.copy()) for layer, direction in vector_file.directions.items()}, path
    )
