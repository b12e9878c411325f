"""Steering several layers at once (steerid.engine.site), on the embedded SmolLM2.

A multi-layer intervention adds its own delta at the output of each of its layers. The engine
(one forward with the shifts applied inside it) and the model's own forward with one hook per
layer must agree, in teacher forcing and in generation, and a site's zero rows must leave it
bit for bit the intervention of its other layers.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from steerid.engine.generate import generate_rows, prompt_token_ids
from steerid.engine.generation import Row
from steerid.engine.hooks import add_at_layers, capture_residual
from steerid.engine.models import decoder_layers
from steerid.engine.sampling import Sampling
from steerid.engine.site import site_deltas, site_layers
from steerid.engine.teacher import TeacherBatch

PROMPTS = ["Write a few sentences about the harbour at dawn.", "Name a colour.", "Describe a quiet library."]
SITE, D = (9, 15, 21), 576


def _deltas(*shape: int, scale: float = 4.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _teacher(model, tokenizer, engine: bool) -> TeacherBatch:
    prompts = prompt_token_ids(tokenizer, PROMPTS)
    continuations = [tokenizer(" The light was soft and grey.")["input_ids"]] * len(PROMPTS)
    return TeacherBatch(model, prompts, continuations, engine=engine)


# -- layouts and errors ----------------------------------------------------------------------------


def test_layers_are_one_int_or_an_ascending_sequence_of_existing_layers():
    assert site_layers(15) == (15,) and site_layers([9, 15, 21], 30) == SITE
    for bad, named in [
        ([], "a non-empty sequence"),
        ([15, 9], "strictly ascending"),
        ([9, 9], "strictly ascending"),
        (True, "an int or"),
        ([9, 30], "expected 0 <= layer < 30"),
    ]:
        with pytest.raises(ValueError, match=named):
            site_layers(bad, 30)


def test_deltas_take_one_layout_per_site():
    one, several = (15,), SITE
    assert site_deltas(torch.zeros(D), one).shape == (1, 1, D)
    assert site_deltas(torch.zeros(4, D), one).shape == (4, 1, D)
    assert site_deltas(torch.zeros(3, D), several, rows=4).shape == (4, 3, D)
    assert site_deltas(torch.zeros(4, 3, D), several).shape == (4, 3, D)
    with pytest.raises(ValueError, match=r"shape \(2, 576\) do not fit the steering site at layers \[9, 15, 21\]"):
        site_deltas(torch.zeros(2, D), several)
    with pytest.raises(ValueError, match="2 rows of deltas for 4 rows"):
        site_deltas(torch.zeros(2, 3, D), several, rows=4)


def test_a_layer_the_model_lacks_is_named_before_any_forward(smollm2):
    model, tokenizer, _ = smollm2
    with pytest.raises(ValueError, match=r"layers \[9, 30\] do not all exist: expected 0 <= layer < 30"):
        generate_rows(model, tokenizer, [9, 30], PROMPTS, [Row(0, 0, 0)], torch.zeros(1, 2, D), Sampling(2), 0)
    with pytest.raises(ValueError, match="do not fit the steering site"):
        _teacher(model, tokenizer, engine=True).logits(torch.zeros(2, D), SITE)


# -- what a multi-layer intervention does ----------------------------------------------------------


def test_hooks_at_several_layers_shift_each_layers_output_by_its_own_row(smollm2):
    """Against a direct reading: the residual after layer 9 moves by row 0 and the residual after
    layer 15 by row 1 on top of what layer 9's shift caused downstream."""
    model, tokenizer, _ = smollm2
    blocks = decoder_layers(model)
    ids = tokenizer(PROMPTS[1], return_tensors="pt")["input_ids"]
    deltas = _deltas(2, D)

    def outputs_of_9_and_15(layers, rows) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode(), contextlib.ExitStack() as stack:
            if layers:
                stack.enter_context(add_at_layers(blocks, layers, rows, positions="all"))
            # Registered after the steering hooks, so they read the steered outputs.
            nine, fifteen = (stack.enter_context(capture_residual(blocks[layer])) for layer in (9, 15))
            model(input_ids=ids)
        return nine[0], fifteen[0]

    plain, _ = outputs_of_9_and_15((), None)
    nine, fifteen = outputs_of_9_and_15((9, 15), deltas)
    _, only_nine = outputs_of_9_and_15((9,), deltas[:1])
    torch.testing.assert_close(nine - plain, deltas[0].expand_as(plain), rtol=0, atol=1e-4)
    torch.testing.assert_close(fifteen - only_nine, deltas[1].expand_as(plain), rtol=0, atol=1e-4)


@pytest.mark.parametrize("positions", ["last", "all", "generated"])
def test_the_engine_steers_several_layers_as_the_hooks_do(smollm2, positions):
    model, tokenizer, _ = smollm2
    deltas = _deltas(len(PROMPTS), len(SITE), D)
    ours = _teacher(model, tokenizer, engine=True).logits(deltas, SITE, positions=positions)
    theirs = _teacher(model, tokenizer, engine=False).logits(deltas, SITE, positions=positions)
    plain = _teacher(model, tokenizer, engine=True).logits()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=2e-3)
    assert (ours - plain).abs().max() > 1.0  # the deltas act


def test_zero_rows_leave_the_site_the_intervention_of_its_other_layers(smollm2):
    model, tokenizer, _ = smollm2
    delta = _deltas(D, seed=3)
    stacked = torch.zeros(len(SITE), D)
    stacked[1] = delta
    batch = _teacher(model, tokenizer, engine=True)
    assert torch.equal(batch.logits(stacked, SITE, positions="all"), batch.logits(delta, 15, positions="all"))


def test_generation_at_several_layers_picks_the_hooks_tokens(smollm2):
    model, tokenizer, _ = smollm2
    deltas = torch.cat([torch.zeros(1, len(SITE), D), _deltas(2, len(SITE), D, scale=3.0, seed=1)])
    rows = [Row(p, 0, c) for p in range(len(PROMPTS)) for c in range(3)]
    greedy = Sampling(8, temperature=0.0)
    engine = generate_rows(model, tokenizer, SITE, PROMPTS, rows, deltas, greedy, 0, engine=True)
    reference = generate_rows(model, tokenizer, SITE, PROMPTS, rows, deltas, greedy, 0, engine=False)
    assert engine == reference
    unsteered = {row.prompt: tokens for row, tokens in zip(rows, engine) if row.delta == 0}
    assert any(tokens != unsteered[row.prompt] for row, tokens in zip(rows, engine))
