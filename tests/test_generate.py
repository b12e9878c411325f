import math

import numpy as np
import pytest
import torch

from steerid.engine.generate import Sampling, generate_conditions, generate_rows, perplexities
from steerid.engine.generation import Row
from steerid.engine.hooks import add_to_residual, capture_residual
from steerid.engine.models import decoder_layers, tokenize_prompts
from steerid.engine.sampling import choose_tokens, gumbel_noise, stream_seed

PROMPTS = ["Write a few sentences about the harbour at dawn.", "Name a colour.", "Describe a quiet library."]


@pytest.fixture(scope="module")
def site(smollm2):
    return decoder_layers(smollm2[0])[15]


@pytest.mark.parametrize("engine", [True, False], ids=["engine", "hugging-face"])
def test_left_padded_batch_equals_single_prompts(smollm2, engine):
    model, tokenizer, _ = smollm2
    greedy = Sampling(max_new_tokens=10, temperature=0)
    rows = [Row(p, 0, 0) for p in range(3)]
    batch = generate_rows(model, tokenizer, 15, PROMPTS, rows, torch.zeros(1, 576), greedy, 0, engine=engine)
    singles = [
        generate_rows(model, tokenizer, 15, [p], [Row(0, 0, 0)], torch.zeros(1, 576), greedy, 0, engine=engine)[0]
        for p in PROMPTS
    ]
    assert batch == singles


def test_common_random_numbers_shared_across_identical_conditions(smollm2, site):
    model, tokenizer, _ = smollm2
    conditions = {"a": torch.zeros(576), "b": torch.zeros(576)}
    records = generate_conditions(model, tokenizer, 15, PROMPTS, conditions, 2, Sampling(10, 0.8), seed=3, batch_size=4)
    by_condition = {c: [r["completion"] for r in records if r["condition"] == c] for c in conditions}
    assert by_condition["a"] == by_condition["b"]
    assert len(set(by_condition["a"])) > 1  # samples differ from each other


def test_steering_changes_generations(smollm2, site):
    model, tokenizer, _ = smollm2
    conditions = {
        "baseline": torch.zeros(576),
        "pushed": torch.randn(576, generator=torch.Generator().manual_seed(0)) * 60,
    }
    records = generate_conditions(model, tokenizer, 15, PROMPTS, conditions, 1, Sampling(10, 0.8), seed=0, batch_size=8)
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
    shape_error = rf"mask has shape \(1, {ids.shape[1] + 1}\).*\(1, {ids.shape[1]}\)"
    with pytest.raises(ValueError, match=shape_error), torch.no_grad(), add_to_residual(site, torch.zeros(576), wrong):
        model(input_ids=ids, attention_mask=mask)
    with pytest.raises(ValueError, match="bool"), add_to_residual(site, torch.zeros(576), torch.ones(1, 3)):
        pass


def test_unknown_position_mode(site):
    with pytest.raises(ValueError, match="'middle'"), add_to_residual(site, torch.zeros(576), "middle"):
        pass


def test_hooks_are_removed(smollm2, site):
    with add_to_residual(site, torch.zeros(576)), capture_residual(site):
        assert len(site._forward_hooks) == 2
    assert len(site._forward_hooks) == 0


def _noise(n_rows: int, vocab: int, step: int = 0) -> torch.Tensor:
    return torch.stack([gumbel_noise(0, row, 0, step, vocab) for row in range(n_rows)])


def test_sampling_follows_the_distribution():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    tokens = choose_tokens(probs.log().expand(20000, 4), _noise(20000, 4), Sampling(1, temperature=1.0))
    frequencies = np.bincount(tokens.numpy(), minlength=4) / 20000
    np.testing.assert_allclose(frequencies, probs.numpy(), atol=0.015)


def test_top_p_keeps_the_nucleus_and_renormalises_it():
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log().expand(20000, 4)
    tokens = choose_tokens(logits, _noise(20000, 4), Sampling(1, temperature=1.0, top_p=0.7))
    frequencies = np.bincount(tokens.numpy(), minlength=4) / 20000
    np.testing.assert_allclose(frequencies, [0.625, 0.375, 0, 0], atol=0.015)


def test_greedy_ignores_the_noise():
    logits = torch.tensor([[0.1, 2.0, 0.3]])
    assert choose_tokens(logits, torch.tensor([[9.0, 0.0, 0.0]]), Sampling(1, temperature=0)).item() == 1
    assert choose_tokens(logits, None, Sampling(1, temperature=0)).item() == 1


def test_sampling_without_noise_of_the_right_shape_is_refused():
    with pytest.raises(ValueError, match=r"noise of the logits' shape \(1, 3\)"):
        choose_tokens(torch.zeros(1, 3), torch.zeros(1, 4), Sampling(1, temperature=1.0))


def test_noise_depends_on_prompt_sample_and_step_only():
    a = gumbel_noise(0, 1, 2, 3, 50)
    assert torch.equal(a, gumbel_noise(0, 1, 2, 3, 50))
    for other in ((0, 2, 1, 3), (1, 1, 2, 3), (0, 1, 2, 4)):
        assert not torch.equal(a, gumbel_noise(*other, 50))
    assert stream_seed(0, 1, 2, 3) != stream_seed(0, 1, 2, 4)


def _sorted_inverse_cdf(logits: torch.Tensor, uniforms: torch.Tensor, temperature: float) -> torch.Tensor:
    """The sampler steerid used before: inverse CDF over the probability-sorted vocabulary (the reference)."""
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    cdf = sorted_probs.cumsum(dim=-1)
    picks = torch.searchsorted(cdf, (uniforms * cdf[:, -1]).unsqueeze(-1), right=True).clamp(max=probs.shape[1] - 1)
    return order.gather(-1, picks).squeeze(-1)


def test_coupling_of_near_identical_conditions_is_no_weaker_than_before(smollm2, site):
    """Two conditions with close next-token distributions (v and v + δ, δ ⟂ v) pick the same token at
    least as often with shared Gumbel noise as with the sorted inverse CDF and shared uniforms, and the
    Gumbel coupling is close to the best any coupling can do (1 - total variation)."""
    model, tokenizer, _ = smollm2
    generator = torch.Generator().manual_seed(0)
    v = torch.randn(576, generator=generator)
    delta = torch.randn(576, generator=generator)
    delta -= (delta @ v) / (v @ v) * v
    v, delta = v / v.norm() * 8, delta / delta.norm() * 8
    ids, mask = tokenize_prompts(tokenizer, PROMPTS, torch.device("cpu"))

    def last_logits(shift):
        with torch.inference_mode(), add_to_residual(site, shift, "last"):
            return model(input_ids=ids, attention_mask=mask, logits_to_keep=1).logits[:, -1].float()

    a, b = last_logits(v), last_logits(v + delta)
    draws, temperature = 2000, 0.8
    same_gumbel = same_sorted = 0.0
    for row in range(len(PROMPTS)):
        noise = torch.stack([gumbel_noise(1, row, sample, 0, a.shape[1]) for sample in range(draws)])
        same_gumbel += float(
            (
                choose_tokens(a[row].expand(draws, -1), noise, Sampling(1, temperature))
                == choose_tokens(b[row].expand(draws, -1), noise, Sampling(1, temperature))
            )
            .float()
            .mean()
        )
        uniforms = torch.rand(draws, generator=generator, dtype=torch.float64)
        same_sorted += float(
            (
                _sorted_inverse_cdf(a[row].expand(draws, -1), uniforms, temperature)
                == _sorted_inverse_cdf(b[row].expand(draws, -1), uniforms, temperature)
            )
            .float()
            .mean()
        )
    total_variation = 0.5 * (torch.softmax(a / temperature, -1) - torch.softmax(b / temperature, -1)).abs().sum(-1)
    best = float((1 - total_variation).mean())
    gumbel, sorted_ = same_gumbel / len(PROMPTS), same_sorted / len(PROMPTS)
    assert gumbel >= sorted_, (gumbel, sorted_)
    assert gumbel >= best - 0.05, (gumbel, best)


def test_perplexity_of_padded_batch_equals_single_unpadded_forwards(smollm2):
    model, tokenizer, _ = smollm2
    prompts = ["Say hello.", "Write one long sentence about the sea, the sky and the harbour at dawn."]
    completions = [
        tokenizer(" Hello there, my good friend!", add_special_tokens=False)["input_ids"],
        tokenizer(" The sea", add_special_tokens=False)["input_ids"],
        [],
    ]
    values = perplexities(model, tokenizer, [*prompts, "Say hello."], completions)
    for prompt, completion, value in zip(prompts, completions, values):
        prompt_ids, _ = tokenize_prompts(tokenizer, [prompt], torch.device("cpu"))
        full = torch.cat([prompt_ids[0], torch.tensor(completion)]).unsqueeze(0)
        with torch.inference_mode():
            logprobs = model(input_ids=full).logits[0, prompt_ids.shape[1] - 1 : -1].float().log_softmax(-1)
        nll = -logprobs.gather(-1, torch.tensor(completion).unsqueeze(-1)).mean()
        assert value == pytest.approx(float(torch.exp(nll)), rel=1e-4)
    assert math.isnan(values[2])  # an empty completion has no perplexity
