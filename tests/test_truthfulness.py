"""Truthfulness under steering on the real model: every position steered, batched like one text at a time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steerid.engine.models import decoder_layers
from steerid.prompts import load_trait
from steerid.scoring import document_start_ids
from steerid.scoring.truthfulness import paired_validation, steered_preferences

LAYER = 15


@pytest.fixture(scope="module")
def setup(smollm2):
    model, tokenizer, _ = smollm2
    site = decoder_layers(model)[LAYER]
    statements = list(load_trait("truthfulness").statements[:5])
    push = torch.randn(576, generator=torch.Generator().manual_seed(0)) * 3.0
    named = {"baseline": torch.zeros(576), "push": push}
    # 10 statements of different lengths in one batch: padding in every row but the longest
    return model, tokenizer, site, statements, named, steered_preferences(model, tokenizer, LAYER, statements, named)


def _adding(delta: torch.Tensor):
    return lambda _m, _i, out: (out[0] + delta, *tuple(out[1:])) if isinstance(out, tuple) else out + delta


def mean_logprob_steered(model, tokenizer, site, text: str, delta: torch.Tensor, more=()) -> float:
    """One unpadded forward with ``delta`` added to every position's residual at the site (and each of
    ``more``'s (block, delta) at its block)."""
    ids = torch.tensor([document_start_ids(tokenizer) + tokenizer(text, add_special_tokens=False)["input_ids"]])
    handles = [block.register_forward_hook(_adding(added)) for block, added in [(site, delta), *more]]
    try:
        with torch.inference_mode():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    finally:
        for handle in handles:
            handle.remove()
    n_context = len(document_start_ids(tokenizer))
    return logp.gather(-1, ids[0, 1:, None])[n_context - 1 :].mean().item()


def test_batched_preferences_equal_single_unpadded_forwards(setup):
    model, tokenizer, site, statements, named, preferences = setup
    for name, delta in named.items():
        expected = [
            mean_logprob_steered(model, tokenizer, site, true, delta)
            - mean_logprob_steered(model, tokenizer, site, false, delta)
            for true, false in statements
        ]
        np.testing.assert_allclose(preferences[name], expected, atol=1e-4)


def test_a_site_of_two_layers_adds_each_row_at_its_layer(setup):
    model, tokenizer, _site, statements, _, _ = setup
    rows = torch.randn(2, 576, generator=torch.Generator().manual_seed(1)) * 3.0
    preferences = steered_preferences(model, tokenizer, (9, LAYER), statements, {"site": rows})["site"]
    early, late = decoder_layers(model)[9], decoder_layers(model)[LAYER]
    expected = [
        mean_logprob_steered(model, tokenizer, early, true, rows[0], [(late, rows[1])])
        - mean_logprob_steered(model, tokenizer, early, false, rows[0], [(late, rows[1])])
        for true, false in statements
    ]
    np.testing.assert_allclose(preferences, expected, atol=1e-4)


def test_steering_moves_the_preferences(setup):
    preferences = setup[-1]
    assert preferences["push"].shape == preferences["baseline"].shape == (5,)
    assert np.abs(preferences["push"] - preferences["baseline"]).max() > 1e-3


def test_paired_validation_counts_pairs_preferring_the_truth():
    result = paired_validation(np.array([0.5, -0.2, 0.0, 1.0]), min_auroc=0.6)
    assert result["auroc"] == pytest.approx((2 + 0.5) / 4)
    assert result["n"] == 4 and result["valid"] is True
    assert paired_validation(np.array([-1.0, 0.3]), min_auroc=0.6)["valid"] is False


def test_no_statements_is_an_error(setup):
    model, tokenizer, _site, _, named, _ = setup
    with pytest.raises(ValueError, match="at least one"):
        steered_preferences(model, tokenizer, LAYER, [], named)
