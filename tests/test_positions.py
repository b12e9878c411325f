"""Position modes and norm-preserving addition (steerid.engine.positions), on the embedded SmolLM2.

One registry says which kinds of position each mode steers; the Hugging Face hook (call by call),
the engine's generation (shared prefixes, step by step) and teacher forcing (E4) all follow it,
and agree with each other.
"""

from __future__ import annotations

import contextlib
import copy
import json

import numpy as np
import pytest
import torch

from steerid.engine.decoder import Steer, decoder_for
from steerid.engine.generate import generate_conditions, generate_rows, prompt_token_ids, stop_ids
from steerid.engine.generation import Row, generate
from steerid.engine.hooks import add_to_residual, capture_residual
from steerid.engine.logit_distance import distances
from steerid.engine.models import decoder_layers, kv_cache_argument, tokenize_prompts
from steerid.engine.positions import MODES, POSITION_MODES, add_delta, position_mode
from steerid.engine.sampling import Sampling, gumbel_noise
from steerid.engine.teacher import TeacherBatch
from steerid.pipeline import results

PROMPTS = ["Write a few sentences about the harbour at dawn.", "Name a colour.", "Describe a quiet library."]
LAYER, D = 15, 576
UNKNOWN = "positions 'middle' is not a position mode; expected one of last, all, prompt, generated"


@pytest.fixture(scope="module")
def site(smollm2):
    return decoder_layers(smollm2[0])[LAYER]


def _deltas(n: int, scale: float, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed)) * scale


# -- the registry ----------------------------------------------------------------------------------


def test_the_registry_says_what_each_mode_steers():
    flags = {name: (m.prompt_before_last, m.last_prompt, m.generated) for name, m in MODES.items()}
    assert flags == {
        "last": (False, True, True),
        "all": (True, True, True),
        "prompt": (True, True, False),
        "generated": (False, False, True),
    }
    assert POSITION_MODES == ("last", "all", "prompt", "generated")
    assert [name for name, m in MODES.items() if m.shares_prefix] == ["last", "generated"]
    assert [name for name, m in MODES.items() if m.same_every_call] == ["last", "all"]
    assert position_mode(MODES["prompt"]) is MODES["prompt"] and position_mode("generated") is MODES["generated"]
    assert MODES["prompt"].tail_mask(3).tolist() == [True, False, False]
    assert MODES["generated"].tail_mask(3).tolist() == [False, True, True]


def test_an_unknown_mode_is_refused_everywhere_with_the_modes_named(smollm2, site):
    model, tokenizer, _ = smollm2
    greedy = Sampling(2, temperature=0)
    with pytest.raises(ValueError, match=UNKNOWN):
        position_mode("middle")
    with pytest.raises(ValueError, match=UNKNOWN), add_to_residual(site, torch.zeros(D), "middle"):
        pass
    for engine in (True, False):
        with pytest.raises(ValueError, match=UNKNOWN):
            generate_rows(
                model,
                tokenizer,
                LAYER,
                PROMPTS[:1],
                [Row(0, 0, 0)],
                torch.zeros(1, D),
                greedy,
                0,
                positions="middle",
                engine=engine,
            )
        batch = TeacherBatch(model, prompt_token_ids(tokenizer, PROMPTS[:1]), [[42]], engine=engine)
        with pytest.raises(ValueError, match=UNKNOWN):
            batch.logits(torch.zeros(D), LAYER, positions="middle")
    zero = {"a": torch.zeros(D), "b": torch.zeros(D)}
    with pytest.raises(ValueError, match=UNKNOWN):
        distances(model, tokenizer, LAYER, PROMPTS[:1], [[42]], zero, [("a", "b")], positions="middle")


# -- the hook, call by call ------------------------------------------------------------------------

FED = [504, 3765, 30]  # tokens fed back one at a time after the prompt (any ids do)


def _trace(model, tokenizer, site, delta=None, positions="last", norm_preserving=False) -> list[torch.Tensor]:
    """The site's output at every forward call of a KV-cached pass over two left-padded prompts:
    the prompts, then ``FED`` one token per call (the generation loop of the Hugging Face path)."""
    ids, mask = tokenize_prompts(tokenizer, PROMPTS[:2], torch.device("cpu"))
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    argument, cache = kv_cache_argument(model), None
    with contextlib.ExitStack() as stack, torch.inference_mode():
        if delta is not None:
            stack.enter_context(add_to_residual(site, delta, positions, norm_preserving))
        captured = stack.enter_context(capture_residual(site))  # registered second: sees the steered output
        for step in range(1 + len(FED)):
            forward = dict(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=True)
            cache = getattr(model(**forward, **{argument: cache}), argument)
            if step < len(FED):
                ids = torch.full((2, 1), FED[step])
                mask = torch.cat([mask, torch.ones_like(ids)], dim=-1)
                position_ids = position_ids[:, -1:] + 1
    return captured


def _check(clean: torch.Tensor, steered: torch.Tensor, is_steered: bool, delta: torch.Tensor, norm_preserving: bool):
    if not is_steered:
        assert torch.equal(clean, steered)  # the hook leaves it bit for bit
        return
    if norm_preserving:
        torch.testing.assert_close(steered.norm(dim=-1), clean.norm(dim=-1), rtol=1e-5, atol=0)
        assert (steered - clean).abs().amax(-1).min() > 0.1
    else:
        # float32 rounding of the attention sink's |h| ~ 1e3 bounds the error.
        torch.testing.assert_close(steered - clean, delta[:, None].expand_as(clean), rtol=0, atol=1e-3)


@pytest.mark.parametrize("norm_preserving", [False, True], ids=["added", "norm-preserving"])
@pytest.mark.parametrize("positions", POSITION_MODES)
def test_the_hook_steers_each_kind_of_position_as_the_registry_says(smollm2, site, positions, norm_preserving):
    """(a) the prompt before its last token, (b) the last prompt token, (c) every later call's token:
    steered exactly where the mode says (under ``prompt`` the generated positions' residual is the
    unsteered one: the site's own layers never see the delta), rescaled to ‖h‖ when norm-preserving."""
    model, tokenizer, _ = smollm2
    mode = MODES[positions]
    delta = _deltas(2, 8.0)
    clean = _trace(model, tokenizer, site)
    steered = _trace(model, tokenizer, site, delta, positions, norm_preserving)
    assert len(clean) == len(steered) == 1 + len(FED)
    _check(clean[0][:, :-1], steered[0][:, :-1], mode.prompt_before_last, delta, norm_preserving)
    _check(clean[0][:, -1:], steered[0][:, -1:], mode.last_prompt, delta, norm_preserving)
    for before, after in zip(clean[1:], steered[1:]):
        _check(before, after, mode.generated, delta, norm_preserving)


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_a_by_call_mode_refuses_a_later_call_of_several_tokens(smollm2, site, positions):
    model, tokenizer, _ = smollm2
    ids, mask = tokenize_prompts(tokenizer, PROMPTS[:1], torch.device("cpu"))
    with torch.inference_mode(), add_to_residual(site, torch.zeros(D), positions):
        model(input_ids=ids, attention_mask=mask)
        with pytest.raises(ValueError, match=rf"positions '{positions}' takes a hook's first forward call"):
            model(input_ids=ids, attention_mask=mask)


def test_last_still_steers_the_last_position_of_every_call(smollm2, site):
    """``last`` keeps no call count: two independent full forwards in one context are steered alike."""
    model, tokenizer, _ = smollm2
    ids, mask = tokenize_prompts(tokenizer, PROMPTS[:1], torch.device("cpu"))
    delta = _deltas(1, 4.0)[0]
    with torch.inference_mode(), add_to_residual(site, delta, "last"), capture_residual(site) as seen:
        model(input_ids=ids, attention_mask=mask)
        model(input_ids=ids, attention_mask=mask)
    assert torch.equal(seen[0], seen[1])


# -- norm-preserving addition ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_norm_preserving_addition_keeps_the_norm_and_is_the_identity_for_zero(dtype):
    generator = torch.Generator().manual_seed(0)
    hidden = (torch.randn(3, 5, D, generator=generator) * 30).to(dtype)
    hidden[0, 0] = 0  # a zero residual stays zero (no direction to rescale)
    shift = (torch.randn(3, 1, D, generator=generator) * 50).to(dtype)
    out = add_delta(hidden, shift, norm_preserving=True)
    assert out.dtype == dtype and torch.isfinite(out).all()
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2
    torch.testing.assert_close(out.float().norm(dim=-1), hidden.float().norm(dim=-1), rtol=tolerance, atol=0)
    # The direction is that of h + δ.
    cosine = torch.nn.functional.cosine_similarity(out.float()[1:], (hidden.float() + shift.float())[1:], dim=-1)
    assert cosine.min() > 1 - tolerance
    assert torch.equal(add_delta(hidden, torch.zeros_like(shift), norm_preserving=True), hidden)
    assert torch.equal(add_delta(hidden, shift), hidden + shift)
    assert torch.equal(add_delta(torch.ones(1, 2), -torch.ones(1, 2), True), torch.zeros(1, 2))  # h + δ = 0


def test_norm_preserving_with_a_zero_delta_changes_nothing(smollm2, site):
    model, tokenizer, _ = smollm2
    clean = _trace(model, tokenizer, site)
    for positions in POSITION_MODES:
        for before, after in zip(clean, _trace(model, tokenizer, site, torch.zeros(2, D), positions, True)):
            assert torch.equal(before, after), positions
    decoder = decoder_for(model)
    ids, mask = tokenize_prompts(tokenizer, PROMPTS, torch.device("cpu"))
    valid, position_ids = mask.bool(), (mask.cumsum(-1) - 1).clamp(min=0)
    plain = decoder.logits(decoder.forward(ids, valid, position_ids))
    zero = Steer.at(LAYER, torch.zeros(3, D), None, norm_preserving=True)
    assert torch.equal(decoder.logits(decoder.forward(ids, valid, position_ids, steer=zero)), plain)


def test_the_engines_norm_preserving_steer_equals_the_hooks(smollm2):
    model, tokenizer, _ = smollm2
    decoder = decoder_for(model)
    ids, mask = tokenize_prompts(tokenizer, PROMPTS, torch.device("cpu"))
    valid, position_ids = mask.bool(), (mask.cumsum(-1) - 1).clamp(min=0)
    where = valid.clone()
    where[:, :-4] = False
    deltas = _deltas(3, 20.0, seed=5)
    with torch.inference_mode(), add_to_residual(decoder_layers(model)[LAYER], deltas, where, True):
        expected = model(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits
    steer = Steer.at(LAYER, deltas, where, norm_preserving=True)
    ours = decoder.logits(decoder.forward(ids, valid, position_ids, steer=steer))
    torch.testing.assert_close(ours[valid], expected[valid], rtol=1e-5, atol=2e-3)
    added = decoder.logits(decoder.forward(ids, valid, position_ids, steer=Steer.at(LAYER, deltas, where)))
    assert (added[valid] - ours[valid]).abs().max() > 1.0  # rescaling is not a no-op at this strength


# -- generation: the engine against the Hugging Face path -----------------------------------------


def _is_near_tie(model, tokenizer, row: Row, theirs: list[int], ours: list[int], delta, positions, np_, sampling):
    """Where two completions part, the reference's top two Gumbel scores (from its teacher-forced
    distribution under the same mode) are within float rounding."""
    step = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
    batch = TeacherBatch(model, prompt_token_ids(tokenizer, [PROMPTS[row.prompt]]), [theirs[: step + 1]], engine=False)
    logits = batch.logits(delta, LAYER, positions=positions, norm_preserving=np_)[0, step]
    scores = logits / sampling.temperature + gumbel_noise(7, row.prompt, row.sample, step, logits.shape[-1])
    top = scores.topk(2).values
    return float(top[0] - top[1]) < 1e-3


@pytest.mark.parametrize("norm_preserving", [False, True], ids=["added", "norm-preserving"])
@pytest.mark.parametrize("positions", POSITION_MODES)
def test_engine_generation_equals_the_hugging_face_path(smollm2, positions, norm_preserving):
    """Shared prefixes (``last``, ``generated``) or per-condition ones (``all``, ``prompt``), steps
    steered as the mode says: the engine and the model's own forward with the hook pick the same tokens."""
    model, tokenizer, _ = smollm2
    deltas = _deltas(3, 6.0)
    deltas[0] = 0
    rows = [Row(p, s, c) for p in range(2) for c in range(3) for s in range(2)]
    sampling = Sampling(6, temperature=0.8)
    settings = dict(positions=positions, norm_preserving=norm_preserving)
    engine = generate_rows(
        model, tokenizer, LAYER, PROMPTS, rows, deltas, sampling, 7, batch_size=7, engine=True, **settings
    )
    reference = generate_rows(
        model, tokenizer, LAYER, PROMPTS, rows, deltas, sampling, 7, batch_size=5, engine=False, **settings
    )
    for row, ours, theirs in zip(rows, engine, reference):
        if ours != theirs:
            assert _is_near_tie(
                model, tokenizer, row, theirs, ours, deltas[row.delta], positions, norm_preserving, sampling
            ), (row, ours, theirs)
    assert sum(a == b for a, b in zip(engine, reference)) >= len(rows) - 1
    unsteered = {(row.prompt, row.sample): tokens for row, tokens in zip(rows, engine) if row.delta == 0}
    assert any(tokens != unsteered[row.prompt, row.sample] for row, tokens in zip(rows, engine))  # the deltas act


@pytest.mark.parametrize("positions", ["prompt", "generated"])
def test_prefix_sharing_and_batch_composition_do_not_change_tokens(smollm2, positions):
    model, tokenizer, _ = smollm2
    decoder = decoder_for(model)
    prompts = prompt_token_ids(tokenizer, PROMPTS)
    deltas = _deltas(2, 6.0, seed=1)
    rows = [Row(p, s, c) for p in range(3) for c in range(2) for s in range(2)]
    sampling, stops = Sampling(6, temperature=0.8), stop_ids(model, tokenizer)
    together = generate(decoder, prompts, rows, deltas, LAYER, sampling, 3, stops, positions=positions, batch_rows=64)
    alone = generate(decoder, prompts, rows, deltas, LAYER, sampling, 3, stops, positions=positions, batch_rows=1)
    assert together == alone


def test_generated_samples_the_first_token_unsteered_and_prompt_the_first_token_of_all(smollm2):
    """``generated``: the first token comes from the unsteered prompt, later ones are steered;
    ``prompt``: the first token is ``all``'s (both steer the whole prompt), later ones are not steered."""
    model, tokenizer, _ = smollm2
    deltas = _deltas(2, 12.0, seed=2)
    deltas[0] = 0
    rows = [Row(p, s, c) for p in range(3) for s in range(3) for c in range(2)]
    sampling = Sampling(6, temperature=0.8)
    made = {
        positions: generate_rows(model, tokenizer, LAYER, PROMPTS, rows, deltas, sampling, 11, positions=positions)
        for positions in POSITION_MODES
    }
    steered = [i for i, row in enumerate(rows) if row.delta == 1]
    baseline = {i: rows.index(Row(rows[i].prompt, rows[i].sample, 0)) for i in steered}
    for mode in POSITION_MODES:  # the unsteered rows are the same under every mode
        assert [made[mode][i] for i in baseline.values()] == [made["last"][i] for i in baseline.values()]
    generated, prompt, all_, last = made["generated"], made["prompt"], made["all"], made["last"]
    assert all(generated[i][:1] == generated[baseline[i]][:1] for i in steered)
    assert sum(generated[i] != generated[baseline[i]] for i in steered) >= len(steered) // 2
    assert sum(last[i][:1] != last[baseline[i]][:1] for i in steered) >= 1  # the first-token check means something
    assert all(prompt[i][:1] == all_[i][:1] for i in steered)
    assert sum(prompt[i] != all_[i] for i in steered) >= 1


# -- teacher forcing: the distributions generation sampled from ------------------------------------


@pytest.mark.parametrize("norm_preserving", [False, True], ids=["added", "norm-preserving"])
@pytest.mark.parametrize("positions", POSITION_MODES)
def test_teacher_forcing_steers_the_continuation_as_generation_steered_it(smollm2, positions, norm_preserving):
    """Greedy completions under a mode are the argmax of their own teacher-forced logits under that
    mode (E4 compares the distributions generation samples from), on the engine and the Hugging Face path."""
    model, tokenizer, _ = smollm2
    delta = _deltas(1, 8.0, seed=3)
    rows = [Row(p, 0, 0) for p in range(3)]
    greedy = Sampling(8, temperature=0)
    settings = dict(positions=positions, norm_preserving=norm_preserving)
    completions = generate_rows(model, tokenizer, LAYER, PROMPTS, rows, delta, greedy, 0, **settings)
    assert all(completions)
    for engine in (True, False):
        batch = TeacherBatch(model, prompt_token_ids(tokenizer, PROMPTS), completions, engine=engine)
        chosen = batch.logits(delta[0], LAYER, **settings).argmax(-1)
        for row, tokens in enumerate(completions):
            assert chosen[row, : len(tokens)].tolist() == tokens, (engine, row)


def test_under_generated_the_first_continuation_token_is_predicted_unsteered(smollm2):
    model, tokenizer, _ = smollm2
    continuations = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in (" The sea", " Blue.", " Dust")]
    delta = _deltas(1, 8.0, seed=4)[0]
    for engine in (True, False):
        batch = TeacherBatch(model, prompt_token_ids(tokenizer, PROMPTS), continuations, engine=engine)
        plain, steered = batch.logits(), batch.logits(delta, LAYER, positions="generated")
        torch.testing.assert_close(steered[:, 0], plain[:, 0], rtol=1e-6, atol=1e-5)
        assert (steered[:, 1][batch.predicting[:, 1]] - plain[:, 1][batch.predicting[:, 1]]).abs().max() > 0.1


def test_distances_follow_the_mode_and_the_norm_choice(smollm2):
    model, tokenizer, _ = smollm2
    continuations = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in (" The sea was calm.", " Blue.")]
    conditions = {"zero": torch.zeros(D), "also_zero": torch.zeros(D), "push": _deltas(1, 6.0, seed=6)[0]}
    pairs = [("zero", "also_zero"), ("zero", "push")]
    found = {
        setting: distances(
            model,
            tokenizer,
            LAYER,
            PROMPTS[:2],
            continuations,
            conditions,
            pairs,
            positions=setting[0],
            norm_preserving=setting[1],
        )
        for setting in (("last", False), ("prompt", False), ("prompt", True), ("generated", False))
    }
    for result in found.values():
        assert np.abs(result[("zero", "also_zero")]["kl"]).max() < 1e-6
        assert (result[("zero", "push")]["kl"] > 0).all()
    kls = [tuple(result[("zero", "push")]["kl"]) for result in found.values()]
    assert len(set(kls)) == len(kls)


# -- the stages record both settings ---------------------------------------------------------------


def test_generations_record_the_mode_and_the_norm_choice(smollm2, tmp_path, monkeypatch):
    from steerid.pipeline import stages

    model, tokenizer, manifest = smollm2
    delta = _deltas(1, 6.0, seed=7)[0]
    monkeypatch.setattr(stages, "open_model", lambda *_: (model, tokenizer, manifest))
    monkeypatch.setattr(stages, "read_prompt_set", lambda _: {"eval": {"in_distribution": PROMPTS[:2]}})
    monkeypatch.setattr(stages, "read_condition_set", lambda *_: {"baseline": torch.zeros(D), "v": delta})
    sampling = {"max_new_tokens": 4, "temperature": 0.8, "top_p": 1.0}
    output = tmp_path / "generations.jsonl"
    stages.evaluate(
        "model",
        "prompts",
        "vector",
        "perturbations",
        "e1",
        "in_distribution",
        LAYER,
        1.0,
        "generated",
        True,
        0,
        (),
        None,
        sampling,
        1,
        0,
        stages.Runtime(batch_size=8),
        str(output),
    )
    records = results.read_generations(str(output))
    assert {(r["positions"], r["norm_preserving"]) for r in records} == {("generated", True)}
    expected = generate_conditions(
        model,
        tokenizer,
        LAYER,
        PROMPTS[:2],
        {"baseline": torch.zeros(D), "v": delta},
        1,
        Sampling(**sampling),
        0,
        8,
        "generated",
        norm_preserving=True,
    )
    assert [r["completion"] for r in records] == [r["completion"] for r in expected]


def test_e4_records_the_mode_and_the_norm_choice_in_its_provenance(smollm2, tmp_path, monkeypatch):
    from steerid import conditions
    from steerid.engine import logit_distance
    from steerid.experiments import e4_logit_distance
    from steerid.pipeline import stages
    from steerid.pipeline.runtime import Runtime

    model, tokenizer, manifest = smollm2
    kind = conditions.PERTURBATION_TYPES[0]
    named = {
        conditions.BASELINE: torch.zeros(D),
        conditions.REFERENCE: _deltas(1, 6.0, seed=8)[0],
        "-v": -_deltas(1, 6.0, seed=8)[0],
        conditions.Condition(conditions.REFERENCE, kind, 0).name: _deltas(1, 6.0, seed=9)[0],
    }
    records = [
        {"condition": conditions.BASELINE, "n_tokens": 3, "prompt": PROMPTS[0], "completion": " The boats rest."},
        {"condition": conditions.BASELINE, "n_tokens": 2, "prompt": PROMPTS[1], "completion": " Blue."},
    ]
    seen: dict = {}
    real = logit_distance.distances

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(stages, "open_model", lambda *_: (model, tokenizer, manifest))
    monkeypatch.setattr(e4_logit_distance, "read_generations", lambda _: copy.deepcopy(records))
    monkeypatch.setattr(stages, "read_condition_set", lambda *_: dict(named))
    monkeypatch.setattr(logit_distance, "distances", spy)
    output = tmp_path / "e4.json"
    params = {"alpha": 1.0, "positions": "prompt", "norm_preserving": True, "n_sequences": 2}
    e4_logit_distance.stats(
        "model",
        "generations",
        "vector",
        "perturbations",
        "sentiment",
        LAYER,
        1.0,
        "prompt",
        True,
        2,
        Runtime(batch_size=8),
        params,
        str(output),
    )
    assert (seen["positions"], seen["norm_preserving"]) == ("prompt", True)
    provenance = json.loads(output.read_text())["provenance"]
    assert (provenance["positions"], provenance["norm_preserving"]) == ("prompt", True)


# -- the config schema -----------------------------------------------------------------------------


def test_the_schema_takes_every_mode_and_the_norm_choice_and_names_a_bad_one():
    import yaml
    from snakemake_runner import REPO, TEST_CONFIG

    from steerid.pipeline.config_checks import ConfigError, check_config

    schema = REPO / "schemas" / "config.schema.yaml"
    base = yaml.safe_load(TEST_CONFIG.read_text())

    def checked(**steering):
        config = copy.deepcopy(base)
        config["steering"] = {"alpha": 1.0, **steering}
        check_config(config, schema)
        return config["steering"]

    assert checked() == {"alpha": 1.0, "positions": "last", "norm_preserving": False}  # the defaults
    for mode in POSITION_MODES:
        assert checked(positions=mode, norm_preserving=True)["positions"] == mode
    with pytest.raises(ConfigError) as bad_mode:
        checked(positions="middle")
    (line,) = bad_mode.value.problems
    assert line.startswith("config steering.positions = 'middle': 'middle' is not one of")
    assert all(repr(mode) in line for mode in POSITION_MODES)
    with pytest.raises(ConfigError) as bad_flag:
        checked(norm_preserving="yes")
    (line,) = bad_flag.value.problems
    assert line.startswith("config steering.norm_preserving = 'yes': 'yes' is not of type 'boolean'")


def test_statement_likelihoods_follow_the_norm_choice_and_record_it(smollm2, tmp_path, monkeypatch):
    from steerid.pipeline import stages
    from steerid.scoring.truthfulness import steered_preferences

    model, tokenizer, manifest = smollm2
    statements = [
        ("Paris is the capital of France.", "Paris is the capital of Spain."),
        ("Ice is cold.", "Ice is hot."),
    ]
    named = {"baseline": torch.zeros(D), "v": _deltas(1, 20.0, seed=10)[0]}
    plain = steered_preferences(model, tokenizer, LAYER, statements, named)
    kept = steered_preferences(model, tokenizer, LAYER, statements, named, norm_preserving=True)
    np.testing.assert_array_equal(kept["baseline"], plain["baseline"])  # δ = 0: the identity
    assert np.abs(kept["v"] - plain["v"]).max() > 1e-3
    monkeypatch.setattr(stages, "open_model", lambda *_: (model, tokenizer, manifest))
    prompt_set = {"statements": [{"true": true, "false": false} for true, false in statements]}
    monkeypatch.setattr(stages, "read_prompt_set", lambda _: prompt_set)
    monkeypatch.setattr(stages, "read_condition_set", lambda *_, **__: dict(named))
    output = tmp_path / "statements.h5"
    stages.score_statements(
        "model", "prompts", "vector", "perturbations", "e1", "truthfulness", "likelihood", LAYER, 1.0, 0, True,
        stages.Runtime(batch_size=8), {}, str(output),
    )  # fmt: skip
    scores, attrs = results.read_scores(str(output))
    assert attrs["positions"] == "all" and bool(attrs["norm_preserving"]) is True
    np.testing.assert_allclose(scores["v"][:, 0], kept["v"], rtol=1e-6)
