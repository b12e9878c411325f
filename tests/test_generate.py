import math

import numpy as np
import pytest
import torch

from steerid.generate import (Sampling, choose_tokens, generate_batch, generate_conditions, perplexities,
                              sampling_uniforms)
from steerid.hooks import add_to_residual, capture_residual
from steerid.models import decoder_layers, tokenize_prompts

PROMPTS = ["Write a few sentences about the harbour at dawn.", "Name a colour.", "Describe a quiet library."]


@pytest.fixture(scope="module")
def site(smollm2):
    return decoder_layers(smollm2[0])[15]


def test_greedy_matches_transformers_generate(smollm2, site):
    model, tokenizer, _ = smollm2
    greedy = Sampling(max_new_tokens=12, temperature=0)
    for prompt in PROMPTS:
        ours = generate_batch(model, tokenizer, site, [prompt], torch.zeros(1, 576), torch.zeros(1, 12), greedy)[0]
        ids, mask = tokenize_prompts(tokenizer, [prompt], torch.device("cpu"))
        reference = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=12)
        expected = [t for t in reference[0, ids.shape[1]:].tolist() if t != tokenizer.eos_token_id]
        assert ours == expected[: len(ours)] and len(ours) > 0


def test_left_padded_batch_equals_single_prompts(smollm2, site):
    model, tokenizer, _ = smollm2
    greedy = Sampling(max_new_tokens=10, temperature=0)
    batch = generate_batch(model, tokenizer, site, PROMPTS, torch.zeros(3, 576), torch.zeros(3, 10), greedy)
    singles = [generate_batch(model, tokenizer, site, [p], torch.zeros(1, 576), torch.zeros(1, 10), greedy)[0] for p in PROMPTS]
    assert batch == singles


def test_common_random_numbers_shared_across_identical_conditions(smollm2, site):
    model, tokenizer, _ = smollm2
    conditions = {"a": torch.zeros(576), "b": torch.zeros(576)}
    records = generate_conditions(model, tokenizer, site, PROMPTS, conditions, 2, Sampling(10, 0.8), seed=3, batch_size=4)
    by_condition = {c: [r["completion"] for r in records if r["condition"] == c] for c in conditions}
    assert by_condition["a"] == by_condition["b"]
    assert len(set(by_condition["a"])) > 1  # samples differ from each other


def test_steering_changes_generations(smollm2, site):
    model, tokenizer, _ = smollm2
    conditions = {"baseline": torch.zeros(576), "pushed": torch.randn(576, generator=torch.Generator().manual_seed(0)) * 60}
    records = generate_conditions(model, tokenizer, site, PROMPTS, conditions, 1, Sampling(10, 0.8), seed=0, batch_size=8)
    texts = {c: [r["completion"] for r in records if r["condition"] == c] for c in conditions}
    assert texts["baseline"] != texts["pushed"]


def test_last_mode_adds_only_at_the_last_position(smollm2, site):
    model, tokenizer, _ = smollm2
    ids, mask = tokenize_prompts(tokenizer, PROMPTS[:2], torch.device("cpu"))
    delta = torch.randn(2, 576)
    with torch.no_grad(), capture_residual(site) as clean:
        model(input_ids=ids, attention_mask=mask)
    # Hooks run in registration order: the capture registered second sees the steered output.
    with torch.no_grad(), add_to_residual(site, delta, "last"), capture_residual(site) as steered:
        model(input_ids=ids, attention_mask=mask)
    difference = steered[0] - clean[0]
    torch.testing.assert_close(difference[:, -1], delta, rtol=0, atol=1e-4)
    assert difference[:, :-1].abs().max() == 0


def test_all_mode_adds_everywhere(smollm2, site):
    model, tokenizer, _ = smollm2
    ids, mask = tokenize_prompts(tokenizer, PROMPTS[:1], torch.device("cpu"))
    delta = torch.randn(576)
    with torch.no_grad(), capture_residual(site) as clean:
        model(input_ids=ids, attention_mask=mask)
    with torch.no_grad(), add_to_residual(site, delta, "all"), capture_residual(site) as steered:
        model(input_ids=ids, attention_mask=mask)
    # float32 rounding of the large attention-sink activations (|h| ~ 1e3) bounds the error.
    torch.testing.assert_close(steered[0] - clean[0], delta.expand_as(clean[0]), rtol=0, atol=1e-3)


def test_mask_mode_adds_exactly_at_the_marked_positions(smollm2, site):
    model, tokenizer, _ = smollm2
    ids, mask = tokenize_prompts(tokenizer, PROMPTS[:2], torch.device("cpu"))
    where = torch.zeros(ids.shape, dtype=torch.bool)
    where[0, -3:] = True
    where[1, 2] = True
    delta = torch.randn(2, 576)
    with torch.no_grad(), capture_residual(site) as clean:
        model(input_ids=ids, attention_mask=mask)
    with torch.no_grad(), add_to_residual(site, delta, where), capture_residual(site) as steered:
        model(input_ids=ids, attention_mask=mask)
    difference = steered[0] - clean[0]
    torch.testing.assert_close(difference[where], delta[where.nonzero()[:, 0]], rtol=0, atol=1e-3)
    assert difference[~where].abs().max() == 0


def test_mask_mode_checks_the_shape_at_call_time(smollm2, site):
    model, tokenizer, _ = smollm2
    ids, mask = tokenize_prompts(tokenizer, PROMPTS[:1], torch.device("cpu"))
    wrong = torch.ones(1, ids.shape[1] + 1, dtype=torch.bool)
    with pytest.raises(ValueError, match=rf"mask has shape \(1, {ids.shape[1] + 1}\).*\(1, {ids.shape[1]}\)"):
        with torch.no_grad(), add_to_residual(site, torch.zeros(576), wrong):
            model(input_ids=ids, attention_mask=mask)
    with pytest.raises(ValueError, match="bool"):
        with add_to_residual(site, torch.zeros(576), torch.ones(1, 3)):
            pass


def test_unknown_position_mode(site):
    with pytest.raises(ValueError, match="'middle'"):
        with add_to_residual(site, torch.zeros(576), "middle"):
            pass


def test_hooks_are_removed(smollm2, site):
    with add_to_residual(site, torch.zeros(576)), capture_residual(site):
        assert len(site._forward_hooks) == 2
    assert len(site._forward_hooks) == 0


def test_inverse_cdf_sampling_follows_the_distribution():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    uniforms = torch.rand(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tokens = choose_tokens(probs.log().expand(20000, 4), uniforms, Sampling(1, temperature=1.0))
    frequencies = np.bincount(tokens.numpy(), minlength=4) / 20000
    np.testing.assert_allclose(frequencies, probs.numpy(), atol=0.015)


def test_top_p_keeps_the_nucleus():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log().expand(1000, 4)
    uniforms = torch.linspace(0, 1, 1000, dtype=torch.float64)
    tokens = choose_tokens(logits, uniforms, Sampling(1, temperature=1.0, top_p=0.7))
    assert set(tokens.tolist()) == {0, 1}


def test_greedy_ignores_uniforms():
    logits = torch.tensor([[0.1, 2.0, 0.3]])
    assert choose_tokens(logits, torch.tensor([0.99]), Sampling(1, temperature=0)).item() == 1


def test_uniforms_depend_on_prompt_and_sample_only():
    a = sampling_uniforms(0, 1, 2, 5)
    assert torch.equal(a, sampling_uniforms(0, 1, 2, 5))
    assert not torch.equal(a, sampling_uniforms(0, 2, 1, 5))
    assert not torch.equal(a, sampling_uniforms(1, 1, 2, 5))


def test_perplexity_of_padded_batch_equals_single_unpadded_forwards(smollm2):
    model, tokenizer, _ = smollm2
    prompts = ["Say hello.", "Write one long sentence about the sea, the sky and the harbour at dawn."]
    completions = [tokenizer(" Hello there, my good friend!", add_special_tokens=False)["input_ids"],
                   tokenizer(" The sea", add_special_tokens=False)["input_ids"], []]
    values = perplexities(model, tokenizer, prompts + ["Say hello."], completions)
    for prompt, completion, value in zip(prompts, completions, values):
        prompt_ids, _ = tokenize_prompts(tokenizer, [prompt], torch.device("cpu"))
        full = torch.cat([prompt_ids[0], torch.tensor(completion)]).unsqueeze(0)
        with torch.inference_mode():
            logprobs = model(input_ids=full).logits[0, prompt_ids.shape[1] - 1 : -1].float().log_softmax(-1)
        nll = -logprobs.gather(-1, torch.tensor(completion).unsqueeze(-1)).mean()
        assert value == pytest.approx(float(torch.exp(nll)), rel=1e-4)
    assert math.isnan(values[2])  # an empty completion has no perplexity
