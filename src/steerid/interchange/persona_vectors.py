"""persona_vectors ``.pt`` files: a torch-saved float tensor of shape ``[num_hidden_layers + 1, d]``.

Row L is ``hidden_states[L]``: row 0 is the embeddings and row L >= 1 the output of block L - 1
(its evaluation loads ``vector[layer]`` and hooks ``layers[layer - 1]``). So row L is steerid
layer L - 1, and row 0, no block's output, is dropped with a note in the metadata. The three
files it writes per trait (``{trait}_prompt_avg_diff.pt``, ``_prompt_last_diff.pt``,
``_response_avg_diff.pt``) hold raw mean differences; no strength is stored.

In Hugging Face models the last row, ``hidden_states[num_hidden_layers]``, is taken after the
final norm, so it is not the raw output of the last block that steerid's hooks see.
"""

from __future__ import annotations

from pathlib import Path

import torch

from steerid.interchange.torch_file import load_tensors
from steerid.interchange.vector_file import VectorFile, VectorFileError

NAME = "persona-vectors"
SUFFIXES = ("_prompt_avg_diff.pt", "_prompt_last_diff.pt", "_response_avg_diff.pt")


def read_persona_vectors(path: Path) -> VectorFile:
    """Read a ``[n_layers + 1, d]`` persona_vectors tensor: row L becomes steerid layer L - 1.

    Raises:
        VectorFileError: the file is not a torch-saved tensor, or the tensor is not 2-D with at
            least one row past the embeddings.
    """
    rows = load_tensors(path)
    if not isinstance(rows, torch.Tensor) or not rows.is_floating_point() or rows.ndim != 2 or rows.shape[0] < 2:
        found = f"a {rows.dtype} tensor of shape {list(rows.shape)}" if isinstance(rows, torch.Tensor) else type(rows)
        raise VectorFileError(
            f"{path}: holds {found}: expected a persona_vectors float tensor [num_hidden_layers + 1, d] "
            "(a dict of layer to tensor is the steering-vectors format)"
        )
    array = rows.detach().to(torch.float32).cpu().numpy()
    last = len(array) - 1
    return VectorFile(
        directions={row - 1: array[row] for row in range(1, len(array))},
        model_hint=None,
        coefficient=None,
        source_format=NAME,
        metadata={
            "dropped": "row 0: the embeddings (hidden_states[0]), not a block output",
            "last_row": f"row {last} (layer {last - 1}) is hidden_states[{last}], after the final norm in HF models",
        },
        source_path=str(path),
    )
