"""Read and add at a residual site: the output of one decoder layer.

Extraction and injection use the same site (the paper's code read ``hidden_states[L//2]``, the
input of layer L//2, and injected at its output: an off-by-one this module cannot make).

Position modes for adding:

- ``last``: the last position of each forward call (the paper's mode). With a KV cache that is
  the last prompt token, then every generated token. Left padding keeps it correct.
- ``all``: every position of every forward call (prompt and generated tokens).
- a bool tensor (batch, seq): exactly the marked positions of a forward call whose hidden
  state is (batch, seq, d), for teacher forcing a whole sequence in one call. Its shape is
  checked against each call, so it is meant for one full-sequence forward, not a KV cache.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

POSITION_MODES = ("last", "all")


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


def _replace_hidden(output, hidden: torch.Tensor):
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


@contextlib.contextmanager
def capture_residual(site: nn.Module, stop: type[Exception] | None = None) -> Iterator[list[torch.Tensor]]:
    """Collect the site's output (batch, seq, d) of every forward call into the yielded list.

    With ``stop``, the hook raises that exception once it has the output, ending the forward pass
    at the site (the caller catches it): nothing above the site runs.
    """
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(_hidden(output).detach())
        if stop is not None:
            raise stop()

    handle = site.register_forward_hook(hook)
    try:
        yield captured
    finally:
        handle.remove()


def _add_where(hidden: torch.Tensor, shift: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """hidden + shift at the mask's positions; elsewhere hidden bit for bit (where, not mask * shift)."""
    if tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"positions mask has shape {tuple(mask.shape)} but the site's hidden state is "
            f"{tuple(hidden.shape)}: expected a (batch, seq) = {tuple(hidden.shape[:2])} mask"
        )
    return torch.where(mask.to(hidden.device).unsqueeze(-1), hidden + shift, hidden)


@contextlib.contextmanager
def add_to_residual(site: nn.Module, delta: torch.Tensor, positions: str | torch.Tensor = "last") -> Iterator[None]:
    """Add ``delta`` ((d,) for every row, or (batch, d) per row) to the site's output.

    ``positions`` is a mode name or a bool (batch, seq) mask (see the module docstring); a
    mask whose shape differs from the hidden state's (batch, seq) raises ValueError in the call.
    """
    if isinstance(positions, torch.Tensor):
        if positions.dtype != torch.bool or positions.ndim != 2:
            raise ValueError(
                f"a positions mask must be a bool (batch, seq) tensor; got {positions.dtype} {tuple(positions.shape)}"
            )
    elif positions not in POSITION_MODES:
        raise ValueError(f"positions {positions!r} is not a position mode; expected one of {POSITION_MODES}")
    per_row = delta if delta.ndim == 2 else delta.unsqueeze(0)

    def hook(_module, _inputs, output):
        hidden = _hidden(output)
        shift = per_row.to(dtype=hidden.dtype, device=hidden.device).unsqueeze(1)
        if isinstance(positions, torch.Tensor):
            return _replace_hidden(output, _add_where(hidden, shift, positions))
        if positions == "all":
            return _replace_hidden(output, hidden + shift)
        steered = torch.cat([hidden[:, :-1], hidden[:, -1:] + shift], dim=1)
        return _replace_hidden(output, steered)

    handle = site.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
