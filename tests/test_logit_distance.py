import math

import numpy as np
import pytest
import torch

from steerid.engine.logit_distance import distances
from steerid.engine.models import decoder_layers, tokenize_prompts

PROMPTS = ["Name a colour.", "Write one sentence about the harbour at dawn.", "Describe a quiet library."]
CONTINUATIONS = ["Blue is calm.", "The boats rest.", "Dust drifts in the light of tall windows."]


@pytest.fixture(scope="module")
def setup(smollm2):
    model, tokenizer, _ = smollm2
    site = decoder_layers(model)[15]
    continuations = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in CONTINUATIONS]
    generator = torch.Generator().manual_seed(0)
    conditions = {
        "zero": torch.zeros(576),
        "also_zero": torch.zeros(576),
        "push": torch.randn(576, generator=generator) * 4,
        "other": torch.randn(576, generator=generator) * 4,
    }
    pairs = [("zero", "also_zero"), ("zero", "push"), ("push", "zero"), ("push", "other")]
    # Batch size 2 over 3 sequences: one padded batch and one single row.
    result = distances(model, tokenizer, 15, PROMPTS, continuations, conditions, pairs, batch_size=2)
    return model, tokenizer, site, continuations, conditions, result


def test_identical_conditions_are_at_distance_zero(setup):
    result = setup[-1]
    for metric in ("kl", "js", "logit_l2"):
        assert result[("zero", "also_zero")][metric].shape == (3,)
        assert np.abs(result[("zero", "also_zero")][metric]).max() < 1e-6


def test_divergence_properties(setup):
    result = setup[-1]
    assert (result[("zero", "push")]["kl"] > 0).all() and (result[("push", "other")]["kl"] > 0).all()
    np.testing.assert_allclose(result[("zero", "push")]["js"], result[("push", "zero")]["js"], rtol=1e-10)
    np.testing.assert_allclose(result[("zero", "push")]["logit_l2"], result[("push", "zero")]["logit_l2"], rtol=1e-10)
    assert (result[("push", "other")]["js"] > 0).all() and (result[("push", "other")]["js"] <= math.log(2)).all()


def _reference_logprobs(model, tokenizer, site, prompt, continuation, delta):
    """One unpadded sequence, delta added by a hand-written hook from the last prompt token onward."""
    prompt_ids, _ = tokenize_prompts(tokenizer, [prompt], torch.device("cpu"))
    start = prompt_ids.shape[1] - 1
    ids = torch.cat([prompt_ids, torch.tensor([continuation])], dim=1)

    def hook(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        hidden[:, start:] += delta
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = site.register_forward_hook(hook)
    try:
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, start:-1].double()
    finally:
        handle.remove()
    return torch.log_softmax(logits, dim=-1)


def test_batched_left_padded_result_matches_a_single_unpadded_forward(setup):
    model, tokenizer, site, continuations, conditions, result = setup
    row = 0  # the shortest prompt: left-padded in its batch
    a = _reference_logprobs(model, tokenizer, site, PROMPTS[row], continuations[row], conditions["push"])
    b = _reference_logprobs(model, tokenizer, site, PROMPTS[row], continuations[row], conditions["other"])
    assert a.shape[0] == len(continuations[row])
    p_a, p_b = a.exp(), b.exp()
    m = 0.5 * (p_a + p_b)
    kl = (p_a * (a - b)).sum(-1).mean()
    js = (0.5 * (p_a * (a - m.log())).sum(-1) + 0.5 * (p_b * (b - m.log())).sum(-1)).mean()
    l2 = ((a - a.mean(-1, keepdim=True)) - (b - b.mean(-1, keepdim=True))).norm(dim=-1).mean()
    got = result[("push", "other")]
    assert got["kl"][row] == pytest.approx(float(kl), abs=1e-4)
    assert got["js"][row] == pytest.approx(float(js), abs=1e-4)
    # Hundreds of nats of centred logits over V = 49152 entries: compare at float32's relative scale.
    assert got["logit_l2"][row] == pytest.approx(float(l2), rel=1e-5)
    assert float(kl) > 1e-2  # the steering is strong enough for the comparison to mean something


def test_empty_continuation_is_rejected(setup):
    model, tokenizer, _site, continuations, conditions, _ = setup
    with pytest.raises(ValueError, match=r"continuation\(s\) \[1\] have no tokens"):
        distances(model, tokenizer, 15, PROMPTS[:2], [continuations[0], []], conditions, [("zero", "push")], 2)


def test_unknown_condition_is_rejected(setup):
    model, tokenizer, _site, continuations, conditions, _ = setup
    with pytest.raises(ValueError, match="unknown: \\['missing'\\]"):
        distances(model, tokenizer, 15, PROMPTS, continuations, conditions, [("zero", "missing")], 2)
