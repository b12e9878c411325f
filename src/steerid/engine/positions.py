"""Where and how a steering delta is added: the position modes and the addition itself, in one place.

A generation has three kinds of position: (a) the prompt's tokens before its last one, (b) the
last prompt token (its output predicts the first generated token) and (c) the generated tokens,
each fed back after being sampled. A :class:`PositionMode` says which of them the delta reaches;
every consumer (the engine's generation and teacher forcing, the Hugging Face hook, the
statement likelihoods) reads these flags rather than comparing names:

- ``last`` (b, c): the paper's hook, the last position of every forward call of a KV-cached
  generation: the last prompt token, then every generated token;
- ``all`` (a, b, c): every position, the prompt included;
- ``prompt`` (a, b): only the prompt, as "steer the prompt" tools do; the generated tokens run
  unsteered (they still attend to the steered prompt's keys and values);
- ``generated`` (c): only the generated tokens; the first token is sampled from the unsteered
  prompt's logits.

In teacher forcing (E4, fluency, statement likelihoods) a continuation's tokens are the
generated ones. Jacobians are not a position mode: they measure the local gain at the last
prompt token (:mod:`steerid.engine.jacobian`).

:func:`add_delta` is the addition: ``h + δ``, or with ``norm_preserving`` ``(h + δ) · ‖h‖ / ‖h + δ‖``
(the steered residual kept on the norm shell of the unsteered one, as several steering tools do).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PositionMode:
    """Which kinds of position a steering mode adds its delta to (see the module docstring)."""

    name: str
    prompt_before_last: bool  # (a) the prompt's tokens before its last one
    last_prompt: bool  # (b) the last prompt token
    generated: bool  # (c) every generated token (a continuation's tokens in teacher forcing)
    summary: str

    @property
    def shares_prefix(self) -> bool:
        """The prompt's tokens before its last one are unsteered: every condition can share their keys and values."""
        return not self.prompt_before_last

    @property
    def same_every_call(self) -> bool:
        """The last position of every forward call is steered alike (``last``, ``all``).

        Then a hook needs no idea of which call holds the prompt: each call's positions before
        its last are steered as (a) says and its last one as (b) = (c) says. Otherwise
        (``prompt``, ``generated``) the first call of a KV-cached generation is the prompt and
        every later call one generated token.
        """
        return self.last_prompt == self.generated

    def tail_mask(self, width: int, device=None) -> torch.Tensor:
        """(width,) bool over a teacher-forced tail: the last prompt token, then the continuation's tokens."""
        mask = torch.full((width,), self.generated, dtype=torch.bool, device=device)
        mask[0] = self.last_prompt
        return mask


MODES: dict[str, PositionMode] = {
    mode.name: mode
    for mode in (
        PositionMode("last", False, True, True, "the last prompt token and every generated token (the paper)"),
        PositionMode("all", True, True, True, "every position, the prompt included"),
        PositionMode("prompt", True, True, False, "every prompt token; generated tokens are not steered"),
        PositionMode("generated", False, False, True, "generated tokens only; the first is sampled unsteered"),
    )
}
POSITION_MODES = tuple(MODES)


def position_mode(mode: str | PositionMode) -> PositionMode:
    """The registered mode of that name (a :class:`PositionMode` is returned as it is)."""
    if isinstance(mode, PositionMode):
        return mode
    found = MODES.get(mode) if isinstance(mode, str) else None
    if found is None:
        raise ValueError(f"positions {mode!r} is not a position mode; expected one of {', '.join(POSITION_MODES)}")
    return found


def add_delta(hidden: torch.Tensor, shift: torch.Tensor, norm_preserving: bool = False) -> torch.Tensor:
    """``hidden + shift`` (broadcast over positions), or rescaled to ``‖hidden‖`` per position.

    The norm-preserving scale is computed in float32 whatever the residual's dtype; with a zero
    shift it is exactly 1 (``n / n``), so δ = 0 leaves ``hidden`` bit for bit. Where ``h + δ`` is
    0 there is no direction to rescale and the result is 0.
    """
    steered = hidden + shift
    if not norm_preserving:
        return steered
    h = hidden.float()
    s = h + shift.float()
    norm = torch.linalg.vector_norm(s, dim=-1, keepdim=True)
    scale = torch.linalg.vector_norm(h, dim=-1, keepdim=True) / norm
    return (s * torch.where(norm > 0, scale, torch.zeros_like(scale))).to(hidden.dtype)
