"""The engine against the Hugging Face forward it replaces: every family it runs, cached decoding,
the early stop at the site, shared prompt prefixes, and generation against the Hugging Face path.

The family tests run on tiny randomly initialised models of each architecture (with random norm
weights and biases, so a wrong norm convention or a dropped bias shows), whose reference is the
model's own ``forward``; the real-model tests run on the embedded SmolLM2-135M.
"""

from __future__ import annotations

import functools

import pytest
import torch

from steerid.engine import architectures
from steerid.engine.decoder import Decoder, Steer, decoder_for, left_padded
from steerid.engine.generate import generate_rows, prompt_token_ids, stop_ids
from steerid.engine.generation import Row, generate
from steerid.engine.hooks import add_to_residual, capture_residual
from steerid.engine.models import decoder_layers, tokenize_prompts
from steerid.engine.positions import POSITION_MODES
from steerid.engine.sampling import Sampling, choose_tokens, gumbel_noise

COMMON = dict(
    vocab_size=64,
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
)
SEQUENCES = [[3, 5, 7, 9, 11, 13, 2, 4, 6], [8, 1, 2, 3, 4], [9]]


def _family_configs():
    from transformers import Gemma3TextConfig, LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config

    return {
        "llama": LlamaConfig(**COMMON),
        "qwen2": Qwen2Config(**COMMON),
        "qwen3": Qwen3Config(**COMMON, head_dim=8),
        "mistral": MistralConfig(**COMMON, sliding_window=4),
        "gemma3_text": Gemma3TextConfig(
            **COMMON,
            head_dim=8,
            sliding_window=4,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        ),
    }


@pytest.fixture(scope="module", params=sorted(_family_configs()))
def tiny(request):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(_family_configs()[request.param]).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or "bias" in name:
                parameter.normal_(0.0, 0.3)
    return model


def _padded(sequences=SEQUENCES):
    ids, valid = left_padded(sequences, max(map(len, sequences)), "cpu")
    return ids, valid, (valid.cumsum(-1) - 1).clamp(min=0)


def test_every_family_is_run_natively(tiny):
    assert architectures.supported(tiny)
    assert architectures.family_name(tiny) in architectures.FAMILIES


def test_logits_equal_the_models_forward(tiny):
    ids, valid, positions = _padded()
    with torch.no_grad():
        expected = tiny(input_ids=ids, attention_mask=valid.long(), position_ids=positions).logits
    decoder = Decoder(tiny)
    logits = decoder.logits(decoder.forward(ids, valid, positions))
    torch.testing.assert_close(logits[valid], expected[valid], rtol=0, atol=1e-6)


def test_stopping_at_the_site_returns_the_sites_output(tiny):
    ids, valid, positions = _padded()
    site = decoder_layers(tiny)[1]
    with torch.no_grad(), capture_residual(site) as captured:
        tiny(input_ids=ids, attention_mask=valid.long(), position_ids=positions)
    hidden = Decoder(tiny).forward(ids, valid, positions, stop_after=1)
    # float32 rounding of a different summation order: a few ulps of values near 4.
    torch.testing.assert_close(hidden[valid], captured[0][valid], rtol=1e-6, atol=1e-6)


def test_cached_decoding_equals_one_full_forward(tiny):
    """Prefill all but the last three tokens into the cache, then feed them one at a time."""
    ids, valid, positions = _padded(SEQUENCES[:2])
    decoder = Decoder(tiny)
    full = decoder.logits(decoder.forward(ids, valid, positions))
    width = ids.shape[1]
    cache = decoder.new_cache(2, width)
    decoder.forward(ids[:, :-3], valid[:, :-3], positions[:, :-3], cache=cache)
    for slot in range(width - 3, width):
        step = decoder.forward(
            ids[:, slot : slot + 1], valid[:, slot : slot + 1], positions[:, slot : slot + 1], cache=cache, offset=slot
        )
        torch.testing.assert_close(decoder.logits(step)[:, 0], full[:, slot], rtol=0, atol=1e-5)


def test_steering_matches_the_residual_hook(tiny):
    ids, valid, positions = _padded()
    where = valid.clone()
    where[:, :-2] = False
    deltas = torch.randn(3, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), add_to_residual(decoder_layers(tiny)[1], deltas, where):
        expected = tiny(input_ids=ids, attention_mask=valid.long(), position_ids=positions).logits
    decoder = Decoder(tiny)
    logits = decoder.logits(decoder.forward(ids, valid, positions, steer=Steer.at(1, deltas, where)))
    torch.testing.assert_close(logits[valid], expected[valid], rtol=0, atol=1e-5)


def test_fusing_keeps_the_hugging_face_model_intact(tiny):
    ids, valid, positions = _padded()
    with torch.no_grad():
        before = tiny(input_ids=ids, attention_mask=valid.long(), position_ids=positions).logits
        decoder_for(tiny)
        after = tiny(input_ids=ids, attention_mask=valid.long(), position_ids=positions).logits
    assert torch.equal(before, after)


def test_unsupported_architectures_are_refused_by_name():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=32))
    assert not architectures.supported(model)
    with pytest.raises(ValueError, match="GPT2LMHeadModel"):
        Decoder(model)


# -- the real model --------------------------------------------------------------------------------

PROMPTS = ["Write a few sentences about the harbour at dawn.", "Name a colour.", "Describe a quiet library."]


def test_smollm2_hidden_states_and_logits_match_transformers(smollm2):
    model, tokenizer, _ = smollm2
    ids, mask = tokenize_prompts(tokenizer, PROMPTS, torch.device("cpu"))
    valid, positions = mask.bool(), (mask.cumsum(-1) - 1).clamp(min=0)
    # (output_hidden_states would install a permanent capture hook on the session's shared model.)
    with torch.inference_mode(), capture_residual(decoder_layers(model)[15]) as site_output:
        reference = model(input_ids=ids, attention_mask=mask, position_ids=positions)
    decoder = decoder_for(model)
    # The residual reaches |h| ~ 1e3 at the attention sink, so the error is relative to that scale.
    hidden = decoder.forward(ids, valid, positions, stop_after=15)
    torch.testing.assert_close(hidden[valid], site_output[0][valid], rtol=1e-5, atol=1e-3)
    logits = decoder.logits(decoder.forward(ids, valid, positions))
    torch.testing.assert_close(logits[valid], reference.logits[valid], rtol=1e-5, atol=1e-3)


def _row_noise(row: Row, step: int) -> torch.Tensor:
    return gumbel_noise(7, row.prompt, row.sample, step, 49152)


def _first_divergence_is_a_near_tie(
    model,
    tokenizer,
    prompt: str,
    ours: list[int],
    theirs: list[int],
    noise_step,
    sampling: Sampling,
    delta: torch.Tensor,
    layer: int,
) -> bool:
    """Where two token sequences part, the reference's top two scores must be within float rounding."""
    step = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
    ids, _mask = tokenize_prompts(tokenizer, [prompt], torch.device("cpu"))
    full = torch.cat([ids, torch.tensor([theirs[:step]], dtype=torch.long)], dim=1)
    where = torch.zeros(full.shape, dtype=torch.bool)
    where[:, ids.shape[1] - 1 :] = True
    with torch.inference_mode(), add_to_residual(decoder_layers(model)[layer], delta, where):
        logits = model(input_ids=full).logits[0, -1].float()
    scores = logits / sampling.temperature + noise_step(step)
    top = scores.topk(2).values
    return float(top[0] - top[1]) < 1e-3


def test_engine_generation_equals_the_hugging_face_path_token_for_token(smollm2):
    """Shared prefixes, mixed conditions and the preallocated cache change nothing: the engine and the
    model's own forward (full prompt per row, growing cache, the steering hook) pick the same tokens."""
    model, tokenizer, _ = smollm2
    deltas = torch.randn(3, 576, generator=torch.Generator().manual_seed(0)) * 4
    deltas[0] = 0
    rows = [Row(p, s, c) for p in range(3) for c in range(3) for s in range(2)]
    sampling = Sampling(10, temperature=0.8)
    engine = generate_rows(model, tokenizer, 15, PROMPTS, rows, deltas, sampling, 7, batch_size=7, engine=True)
    hugging_face = generate_rows(model, tokenizer, 15, PROMPTS, rows, deltas, sampling, 7, batch_size=5, engine=False)
    for row, ours, theirs in zip(rows, engine, hugging_face):
        if ours != theirs:
            noise = functools.partial(_row_noise, row)
            assert _first_divergence_is_a_near_tie(
                model, tokenizer, PROMPTS[row.prompt], ours, theirs, noise, sampling, deltas[row.delta], 15
            ), (row, ours, theirs)
    assert sum(a == b for a, b in zip(engine, hugging_face)) >= len(rows) - 1


@pytest.mark.parametrize("engine", [True, False], ids=["engine", "hugging-face"])
def test_greedy_matches_transformers_generate(smollm2, engine):
    model, tokenizer, _ = smollm2
    rows = [Row(p, 0, 0) for p in range(len(PROMPTS))]
    ours = generate_rows(
        model, tokenizer, 15, PROMPTS, rows, torch.zeros(1, 576), Sampling(12, temperature=0), 0, engine=engine
    )
    for prompt, tokens in zip(PROMPTS, ours):
        ids, mask = tokenize_prompts(tokenizer, [prompt], torch.device("cpu"))
        reference = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=12)
        expected = [t for t in reference[0, ids.shape[1] :].tolist() if t != tokenizer.eos_token_id]
        assert tokens == expected[: len(tokens)] and len(tokens) > 0


def test_prefix_sharing_and_batch_composition_do_not_change_tokens(smollm2):
    """One row at a time (nothing shared) and all rows in one batch give the same completions."""
    model, tokenizer, _ = smollm2
    decoder = decoder_for(model)
    prompts = prompt_token_ids(tokenizer, PROMPTS)
    deltas = torch.randn(2, 576, generator=torch.Generator().manual_seed(1)) * 4
    rows = [Row(p, s, c) for p in range(3) for c in range(2) for s in range(2)]
    sampling = Sampling(8, temperature=0.8)
    together = generate(decoder, prompts, rows, deltas, 15, sampling, 3, stop_ids(model, tokenizer), batch_rows=64)
    alone = generate(decoder, prompts, rows, deltas, 15, sampling, 3, stop_ids(model, tokenizer), batch_rows=1)
    assert together == alone


def test_a_steered_prefix_is_steered(smollm2):
    """positions='all' steers the prompt too: its completions differ from positions='last'."""
    model, tokenizer, _ = smollm2
    decoder = decoder_for(model)
    prompts = prompt_token_ids(tokenizer, PROMPTS[:1])
    delta = torch.randn(1, 576, generator=torch.Generator().manual_seed(2)) * 8
    rows = [Row(0, 0, 0)]
    greedy = Sampling(8, temperature=0)
    last = generate(decoder, prompts, rows, delta, 15, greedy, 0, stop_ids(model, tokenizer), positions="last")
    every = generate(decoder, prompts, rows, delta, 15, greedy, 0, stop_ids(model, tokenizer), positions="all")
    reference = generate_rows(model, tokenizer, 15, PROMPTS[:1], rows, delta, greedy, 0, positions="all", engine=False)
    assert every == reference and every != last


def test_sampled_tokens_follow_the_distribution():
    """Gumbel-max with the project's noise is an exact sampler: token frequencies match softmax(logits / T)."""
    logits = torch.tensor([[2.0, 1.5, 0.4, -1.0, 0.0]])
    sampling = Sampling(1, temperature=0.8)
    counts = torch.zeros(5)
    for sample in range(20000):
        noise = gumbel_noise(0, 0, sample, 0, 5)[None]
        counts[choose_tokens(logits, noise, sampling)] += 1
    expected = torch.softmax(logits[0] / 0.8, dim=-1)
    torch.testing.assert_close(counts / 20000, expected, rtol=0, atol=0.012)


# -- dumps stop at the site ------------------------------------------------------------------------


def test_dumps_equal_the_full_forward_at_the_site(smollm2):
    from steerid.engine.activations import last_token

    model, tokenizer, _ = smollm2
    ids, mask = tokenize_prompts(tokenizer, PROMPTS, torch.device("cpu"))
    with torch.inference_mode(), capture_residual(decoder_layers(model)[7]) as full:
        model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
    dumped = last_token(model, tokenizer, 7, PROMPTS, "auto")
    torch.testing.assert_close(torch.from_numpy(dumped), full[0][:, -1], rtol=1e-5, atol=1e-3)


def test_the_hugging_face_dump_path_runs_nothing_above_the_site():
    """A model the engine does not run still stops at the site: the block above it is never called."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from steerid.engine.activations import last_token

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=3, n_embd=16, n_head=2, vocab_size=64)).eval()
    vocabulary = {f"w{i}": i for i in range(63)} | {"[UNK]": 63}
    backend = Tokenizer(models.WordLevel(vocabulary, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[UNK]")
    tokenizer.padding_side = "left"
    texts = ["w1 w2 w3", "w4 w5"]
    above = []
    handle = decoder_layers(model)[2].register_forward_hook(lambda *_: above.append(1))
    try:
        dumped = last_token(model, tokenizer, 1, texts, 2)
    finally:
        handle.remove()
    assert above == []
    ids, mask = tokenize_prompts(tokenizer, texts, torch.device("cpu"))
    with torch.inference_mode(), capture_residual(decoder_layers(model)[1]) as full:
        model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0))
    torch.testing.assert_close(torch.from_numpy(dumped), full[0][:, -1], rtol=0, atol=1e-6)


# -- teacher forcing -------------------------------------------------------------------------------


@pytest.mark.parametrize("norm_preserving", [False, True], ids=["added", "norm-preserving"])
@pytest.mark.parametrize("positions", POSITION_MODES)
def test_teacher_forced_logits_equal_on_the_engine_and_the_hugging_face_forward(smollm2, positions, norm_preserving):
    from steerid.engine.teacher import TeacherBatch

    model, tokenizer, _ = smollm2
    prompts = prompt_token_ids(tokenizer, PROMPTS)
    continuations = [
        tokenizer(text, add_special_tokens=False)["input_ids"] for text in (" The sea was calm", " Blue.", "")
    ]
    delta = torch.randn(576, generator=torch.Generator().manual_seed(4)) * 4
    steered = {"delta": delta, "layer": 15, "positions": positions, "norm_preserving": norm_preserving}
    for steering in ({}, steered):
        engine = TeacherBatch(model, prompts, continuations, engine=True)
        reference = TeacherBatch(model, prompts, continuations, engine=False)
        ours, theirs = engine.logits(**steering), reference.logits(**steering)
        where = engine.predicting
        torch.testing.assert_close(ours[where], theirs[where], rtol=1e-5, atol=2e-3)
        # The shared prefix is reused by a second delta: asking again gives the same numbers.
        torch.testing.assert_close(engine.logits(**steering)[where], ours[where], rtol=0, atol=0)


def test_a_hooked_model_is_left_to_the_hugging_face_forward(smollm2):
    model, _, _ = smollm2
    assert architectures.supported(model)
    with add_to_residual(decoder_layers(model)[3], torch.zeros(576)):
        assert not architectures.supported(model)
    assert architectures.supported(model)
