"""Read and add at a residual site: the output of one decoder layer (or, with :func:`add_at_layers`,
of several at once).

Extraction and injection use the same site (the paper's code read ``hidden_states[L//2]``, the
input of layer L//2, and injected at its output: an off-by-one this module cannot make).

Position modes for adding (:mod:`steerid.engine.positions` says what each one steers):

- ``last``: the last position of each forward call (the paper's mode). With a KV cache that is
  the last prompt token, then every generated token. Left padding keeps it correct.
- ``all``: every position of every forward call (prompt and generated tokens).
- ``prompt`` and ``generated`` tell the prompt from the generated tokens by the call: the
  context's first forward call is the prompt (``prompt`` steers all of it, ``generated`` none),
  every later call feeds one generated token (``generated`` steers it, ``prompt`` does not). One
  context per KV-cached generation, then; a later call of more than one token is refused.
- a bool tensor (batch, seq): exactly the marked positions of a forward call whose hidden
  state is (batch, seq, d), for teacher forcing a whole sequence in one call. Its shape is
  checked against each call, so it is meant for one full-sequence forward, not a KV cache.

``norm_preserving`` rescales each steered position to its unsteered norm
(:func:`steerid.engine.positions.add_delta`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from steerid.engine.positions import POSITION_MODES, PositionMode, add_delta, position_mode
from steerid.engine.site import Layers, site_deltas, site_layers

__all__ = ["POSITION_MODES", "add_at_layers", "add_to_residual", "capture_residual"]


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


def _add_where(hidden: torch.Tensor, shift: torch.Tensor, mask: torch.Tensor, norm_preserving: bool) -> torch.Tensor:
    """The steered hidden state at the mask's positions; elsewhere hidden bit for bit (where, not mask * shift)."""
    if tuple(mask.shape) != tuple(hidden.shape[:2]):
        raise ValueError(
            f"positions mask has shape {tuple(mask.shape)} but the site's hidden state is "
            f"{tuple(hidden.shape)}: expected a (batch, seq) = {tuple(hidden.shape[:2])} mask"
        )
    return torch.where(mask.to(hidden.device).unsqueeze(-1), add_delta(hidden, shift, norm_preserving), hidden)


def _steer_call(
    hidden: torch.Tensor, shift: torch.Tensor, before_last: bool, last: bool, norm_preserving: bool
) -> torch.Tensor | None:
    """The hidden state with the positions before the last and/or the last one steered; None: unchanged."""
    if before_last and last:
        return add_delta(hidden, shift, norm_preserving)
    if last:
        return torch.cat([hidden[:, :-1], add_delta(hidden[:, -1:], shift, norm_preserving)], dim=1)
    if before_last:
        return torch.cat([add_delta(hidden[:, :-1], shift, norm_preserving), hidden[:, -1:]], dim=1)
    return None


@contextlib.contextmanager
def add_to_residual(
    site: nn.Module,
    delta: torch.Tensor,
    positions: str | PositionMode | torch.Tensor = "last",
    norm_preserving: bool = False,
) -> Iterator[None]:
    """Add ``delta`` ((d,) for every row, or (batch, d) per row) to the site's output.

    ``positions`` is a mode (name or record) or a bool (batch, seq) mask (see the module
    docstring); a mask whose shape differs from the hidden state's (batch, seq) raises
    ValueError in the call. ``norm_preserving``: each steered position keeps its norm.
    """
    mode: PositionMode | None = None
    if isinstance(positions, torch.Tensor):
        if positions.dtype != torch.bool or positions.ndim != 2:
            raise ValueError(
                f"a positions mask must be a bool (batch, seq) tensor; got {positions.dtype} {tuple(positions.shape)}"
            )
    else:
        mode = position_mode(positions)
    per_row = delta if delta.ndim == 2 else delta.unsqueeze(0)
    calls = 0

    def hook(_module, _inputs, output):
        nonlocal calls
        first, calls = calls == 0, calls + 1
        hidden = _hidden(output)
        shift = per_row.to(dtype=hidden.dtype, device=hidden.device).unsqueeze(1)
        if mode is None:
            assert isinstance(positions, torch.Tensor)
            return _replace_hidden(output, _add_where(hidden, shift, positions, norm_preserving))
        if mode.same_every_call or first:
            before_last, last = mode.prompt_before_last, mode.last_prompt
        elif hidden.shape[1] != 1:
            raise ValueError(
                f"positions {mode.name!r} takes a hook's first forward call for the prompt and every later one "
                f"for one generated token; call {calls} has {hidden.shape[1]} positions (one add_to_residual "
                "context per KV-cached generation, or a positions mask for a full sequence)"
            )
        else:
            before_last = last = mode.generated
        steered = _steer_call(hidden, shift, before_last, last, norm_preserving)
        return None if steered is None else _replace_hidden(output, steered)

    handle = site.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def add_at_layers(
    blocks: nn.ModuleList,
    layers: Layers,
    deltas: torch.Tensor,
    positions: str | PositionMode | torch.Tensor = "last",
    norm_preserving: bool = False,
) -> Iterator[None]:
    """:func:`add_to_residual` at the output of each of ``blocks[layer]`` for ``layer`` in ``layers``.

    ``deltas`` is any layout :func:`steerid.engine.site.site_deltas` takes: one layer's (d,) or
    (batch, d), or (len(layers), d) / (batch, len(layers), d) for several.
    """
    site = site_layers(layers, len(blocks))
    per_layer = site_deltas(deltas, site)
    with contextlib.ExitStack() as stack:
        for j, layer in enumerate(site):
            stack.enter_context(add_to_residual(blocks[layer], per_layer[:, j], positions, norm_preserving))
        yield
