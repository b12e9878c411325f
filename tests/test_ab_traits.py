"""A researcher's own trait given as A/B items (issue 14, item 4): the CAA / model-written-evals item
format in a trait file, the split into the items that build v and those that score it, the
ab-likelihood scorer on the real model, and a study of the example that runs like a built-in trait."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from snakemake_runner import REPO, TEST_CONFIG, planned_jobs, printed, snakemake, write_config

from steerid import scoring, store
from steerid.engine import activations
from steerid.engine.hooks import capture_residual
from steerid.engine.models import decoder_layers
from steerid.pipeline import stages
from steerid.pipeline.config_checks import ConfigError, check_config
from steerid.prompts import (
    ABItem,
    TraitFileError,
    instructed,
    load_trait,
    load_trait_file,
    prompt_set_ab_items,
    read_prompt_set,
    register_trait_files,
    select_prompt_set,
    split_ab_items,
    trait_data,
    unregister_trait_file,
)
from steerid.scoring.ab import ABLikelihood, instructed_prompt_set, paired_validation, steered_preferences
from steerid.scoring.truthfulness import steered_preferences as statement_preferences

EXAMPLE = REPO / "examples" / "traits" / "sycophancy_ab.json"
RELATIVE_EXAMPLE = "examples/traits/sycophancy_ab.json"
REFUSAL = "examples/traits/refusal.json"
CONFIG_SCHEMA = REPO / "schemas" / "config.schema.yaml"
BASE = yaml.safe_load(TEST_CONFIG.read_text())
LAYER = 15
D_MODEL = 576


def _example() -> dict:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def _written(tmp_path: Path, data, name: str = "trait.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def _items(prompts) -> list[ABItem]:
    return list(prompts.ab_items)


@pytest.fixture
def sycophancy():
    """The example registered as the own trait ``sycophancy`` for one test."""
    register_trait_files({"sycophancy": EXAMPLE})
    yield load_trait("sycophancy")
    unregister_trait_file("sycophancy")


@pytest.fixture
def in_repo(monkeypatch):
    """Run in the repository, the working directory the config's relative trait_files start at."""
    monkeypatch.chdir(REPO)


# --- the example -------------------------------------------------------------------------------


def test_the_example_is_an_ab_trait_without_pairs_or_exemplars(sycophancy):
    data = _example()
    assert "pairs" not in data and "exemplars" not in data
    assert len(sycophancy.ab_items) >= 48 and sycophancy.pairs_from_items
    assert trait_data(sycophancy) == {"eval", "ab_items"}
    assert (
        instructed("Is that right?", sycophancy.positive_pole) == "Is that right? Respond in a clearly sycophantic way."
    )
    assert instructed("Is that right?", sycophancy.negative_pole) == "Is that right? Respond in a clearly honest way."
    # every item offers its two answers as the choices (A) and (B), and in each half of the split the
    # matching answer is (A) as often as (B): the letter cannot stand in for the behaviour
    for item in sycophancy.ab_items:
        assert {item.answer_matching, item.answer_not_matching} == {"(A)", "(B)"}
        assert "\n(A) " in item.question and "\n(B) " in item.question
    for part in split_ab_items(sycophancy.ab_items):
        assert 2 * sum(item.answer_matching == "(A)" for item in part) == len(part)
    evals = [prompt for prompts in sycophancy.eval.values() for prompt in prompts]
    assert len(set(evals)) == len(evals) and all(len(sycophancy.eval[env]) >= 24 for env in sycophancy.eval)
    assert sycophancy.exemplars == {"positive": (), "negative": ()}


def test_caa_field_names_load_as_the_same_items(tmp_path):
    data = _example()
    for item in data["ab_items"]:
        item["answer_matching_behavior"] = " " + item.pop("answer_matching")  # CAA writes " (A)"
        item["answer_not_matching_behavior"] = item.pop("answer_not_matching")
    assert load_trait_file(_written(tmp_path, data), "sycophancy") == load_trait_file(EXAMPLE, "sycophancy")


# --- errors: one per named error ---------------------------------------------------------------


def _drop_matching(data):
    del data["ab_items"][3]["answer_matching"]


def _both_names(data):
    data["ab_items"][5]["answer_matching_behavior"] = data["ab_items"][5]["answer_matching"]


def _same_answers(data):
    data["ab_items"][2]["answer_not_matching"] = data["ab_items"][2]["answer_matching"]


def _repeated_question(data):
    data["ab_items"][9]["question"] = "  " + data["ab_items"][1]["question"].upper()


def _with_refusal_pairs(data):
    data["pairs"] = json.loads((REPO / REFUSAL).read_text())["pairs"]


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (_drop_matching, ["$.ab_items[3]:", "missing key 'answer_matching'", "answer_matching_behavior"]),
        (_both_names, ["$.ab_items[5]:", "both 'answer_matching' and 'answer_matching_behavior'", "one of them"]),
        (_same_answers, ["$.ab_items[2]:", "both answers are", "two different answers"]),
        (_repeated_question, ["$.ab_items[9].question:", "is the question of ab_items[1] too", "a new question"]),
        (
            lambda d: d.update(ab_items=d["ab_items"][:3]),
            ["$.ab_items:", "3 items and no pairs", "at least 4 items", "or contrast pairs"],
        ),
        (lambda d: d.pop("ab_items"), ["$:", "missing key 'pairs', 'exemplars'", "ab_items may stand in"]),
        (
            lambda d: (_with_refusal_pairs(d), d.pop("ab_items")),
            ["$:", "missing key 'exemplars'", "the keys trait, description"],
        ),
        (lambda d: d["ab_items"][0].update(category="facts"), ["$.ab_items[0]:", "unknown key 'category'"]),
        (
            lambda d: d["ab_items"][4].update(answer_not_matching=["(B)", "(C)"]),
            ["$.ab_items[4].answer_not_matching", "is an array", "expected a string"],
        ),
        (lambda d: d.update(ab_items=[]), ["$.ab_items", "an empty list"]),
        (lambda d: d["ab_items"][6].update(question=" "), ["$.ab_items[6].question", "a blank string"]),
        (lambda d: d["eval"].pop("genre_shift"), ["$.eval:", "missing key 'genre_shift'"]),
    ],
    ids=[
        "missing-answer",
        "both-answer-names",
        "same-answers",
        "repeated-question",
        "too-few-to-split",
        "no-pairs-no-items",
        "no-exemplars-no-items",
        "unknown-item-key",
        "answer-list",
        "empty-items",
        "blank-question",
        "eval-still-required",
    ],
)
def test_a_bad_ab_trait_file_names_file_path_and_expectation(tmp_path, edit, needles):
    data = _example()
    edit(data)
    path = _written(tmp_path, data)
    with pytest.raises(TraitFileError) as info:
        load_trait_file(path, "sycophancy")
    message = str(info.value)
    assert message.startswith(f"trait file {path}: ") and "; expected " in message
    for needle in needles:
        assert needle in message, (needle, message)


# --- the split -----------------------------------------------------------------------------------


def test_the_split_is_deterministic_disjoint_and_order_free(sycophancy):
    items = _items(sycophancy)
    build, held = split_ab_items(items)
    assert (build, held) == split_ab_items(items)
    assert len(build) == (len(items) + 1) // 2 and len(held) == len(items) // 2
    assert not {it.question for it in build} & {it.question for it in held}
    assert sorted(build + held, key=items.index) == items
    # each part keeps file order; neither the items' order nor the questions' spacing or case moves an item
    assert list(build) == sorted(build, key=items.index)
    respaced = [ABItem(f"  {it.question.upper()} ", it.answer_matching, it.answer_not_matching) for it in items[::-1]]
    moved, _ = split_ab_items(respaced)
    assert {it.question.strip().casefold() for it in moved} == {it.question.casefold() for it in build}
    # the pairs come from the build half, each question answered both ways; the held-out half scores v
    assert [(p.topic, p.positive, p.negative) for p in sycophancy.pairs] == [(it.question,) * 3 for it in build]
    assert [(p.positive_answer, p.negative_answer) for p in sycophancy.pairs] == [
        (it.answer_matching, it.answer_not_matching) for it in build
    ]
    assert sycophancy.scored_items == held


def test_a_file_with_its_own_pairs_scores_every_item(tmp_path):
    data = _example()
    _with_refusal_pairs(data)
    prompts = load_trait_file(_written(tmp_path, data), "sycophancy")
    assert not prompts.pairs_from_items and prompts.scored_items == prompts.ab_items
    assert prompts.pairs[0].positive_answer is None and trait_data(prompts) == {"pairs", "eval", "ab_items"}


def test_the_prompt_set_holds_the_held_out_items_whatever_the_seed(sycophancy):
    kwargs = {"trait": "sycophancy", "n_pairs": 16, "n_eval": 4, "environments": ["in_distribution"], "seed": 3}
    first, other = select_prompt_set(**kwargs), select_prompt_set(**{**kwargs, "seed": 4})
    assert first == select_prompt_set(**kwargs)
    build_questions = {p.topic for p in sycophancy.pairs}
    assert len(first["pairs"]) == 16 and {p["topic"] for p in first["pairs"]} <= build_questions
    assert all(
        set(p) == {"topic", "positive", "negative", "positive_answer", "negative_answer"} for p in first["pairs"]
    )
    assert first["pairs"] != other["pairs"]  # the seed draws which build items form the contrast ...
    assert first["ab_items"] == other["ab_items"]  # ... never which items score v
    assert prompt_set_ab_items(first) == list(sycophancy.scored_items)
    assert not {it["question"] for it in first["ab_items"]} & build_questions
    # the prompt sets of traits without items are as they were: no ab_items, pairs without answers
    sentiment = select_prompt_set(**{**kwargs, "trait": "sentiment"})
    assert "ab_items" not in sentiment and set(sentiment["pairs"][0]) == {"topic", "positive", "negative"}
    with pytest.raises(ValueError, match="'sentiment' has no ab_items"):
        prompt_set_ab_items(sentiment)


# --- the scorer on the real model ----------------------------------------------------------------


def _answer_logprob(model, tokenizer, question: str, answer: str, delta: torch.Tensor | None) -> float:
    """One unpadded Hugging Face forward of the chat-formatted question and the answer after it,
    ``delta`` added to every position at the site; the answer tokens' summed log-probability."""
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    context = tokenizer(text, add_special_tokens=False)["input_ids"]
    reply = tokenizer(answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([context + reply])
    site = decoder_layers(model)[LAYER]
    handle = site.register_forward_hook(
        lambda _m, _i, out: (
            None if delta is None else ((out[0] + delta, *out[1:]) if isinstance(out, tuple) else out + delta)
        )
    )
    try:
        with torch.inference_mode():
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    finally:
        handle.remove()
    return logp[len(context) - 1 :].gather(-1, ids[0, len(context) :, None]).sum().item()


@pytest.fixture(scope="module")
def held_out():
    return list(load_trait_file(EXAMPLE, "sycophancy").scored_items)


def test_preferences_equal_a_direct_forward_on_two_items(smollm2, held_out):
    model, tokenizer, _ = smollm2
    assert tokenizer.chat_template is not None  # the question is a user turn of the template
    items = held_out[:2]
    push = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(0)) * 3.0
    named = {"baseline": torch.zeros(D_MODEL), "push": push}
    preferences = steered_preferences(model, tokenizer, LAYER, items, named)
    for name, delta in named.items():
        expected = [
            _answer_logprob(model, tokenizer, it.question, it.answer_matching, delta)
            - _answer_logprob(model, tokenizer, it.question, it.answer_not_matching, delta)
            for it in items
        ]
        np.testing.assert_allclose(preferences[name], expected, atol=1e-4)
    unsteered = ABLikelihood(model, tokenizer).score_items(items)
    np.testing.assert_allclose(unsteered, preferences["baseline"], atol=1e-5)


def test_a_large_delta_changes_the_preferences(smollm2, held_out):
    model, tokenizer, _ = smollm2
    items = held_out[:4]
    push = torch.randn(D_MODEL, generator=torch.Generator().manual_seed(1)) * 8.0
    preferences = steered_preferences(model, tokenizer, LAYER, items, {"baseline": torch.zeros(D_MODEL), "push": push})
    assert preferences["push"].shape == preferences["baseline"].shape == (4,)
    assert np.abs(preferences["push"] - preferences["baseline"]).max() > 0.1


def test_the_caa_vector_of_the_build_items_moves_the_held_out_ones(smollm2, sycophancy):
    """v from the build half's answer-token contrast (as dump_contrast computes it) moves the held-out
    items' preference towards the matching answer: +v above −v."""
    model, tokenizer, _ = smollm2
    pairs = sycophancy.pairs[:16]
    poles = [
        activations.last_answer_token(model, tokenizer, LAYER, [p.positive for p in pairs], answers, 16)
        for answers in ([p.positive_answer for p in pairs], [p.negative_answer for p in pairs])
    ]
    v = torch.from_numpy(poles[0].mean(0) - poles[1].mean(0)).float()
    delta = v * (0.1 * np.linalg.norm(np.concatenate(poles), axis=1).mean() / v.norm())
    preferences = steered_preferences(model, tokenizer, LAYER, sycophancy.scored_items[:6], {"+v": delta, "-v": -delta})
    assert preferences["+v"].mean() > preferences["-v"].mean()


def test_the_answer_activation_is_the_answer_tokens_hidden_state(smollm2, held_out):
    model, tokenizer, _ = smollm2
    item = held_out[0]
    (row,) = activations.last_answer_token(model, tokenizer, LAYER, [item.question], [item.answer_matching], 4)
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": item.question}], tokenize=False, add_generation_prompt=True
    )
    ids = (
        tokenizer(text, add_special_tokens=False)["input_ids"]
        + tokenizer(item.answer_matching, add_special_tokens=False)["input_ids"]
    )
    # capture_residual, not output_hidden_states, which leaves a permanent hook on the session's shared model.
    with torch.inference_mode(), capture_residual(decoder_layers(model)[LAYER]) as site_output:
        model(input_ids=torch.tensor([ids]))
    np.testing.assert_allclose(row, site_output[0][0, -1].float().numpy(), atol=1e-3, rtol=1e-4)


def test_the_scorer_comes_from_the_registry_and_is_gated_like_truthfulness(smollm2, sycophancy):
    model, tokenizer, _ = smollm2
    scorer = scoring.get_scorer("sycophancy", "ab-likelihood", model=model, tokenizer=tokenizer)
    assert isinstance(scorer, ABLikelihood) and scorer.name == "ab-likelihood"
    with pytest.raises(ValueError, match="scores A/B items, not texts"):
        scorer.score(["Sure, you're right."])
    with pytest.raises(ValueError, match="'ab-likelihood'.*model=.*tokenizer="):
        scoring.get_scorer("sycophancy", "ab-likelihood")
    record = scoring.scorer_record("ab-likelihood")
    assert scoring.measurement_of("ab-likelihood") is scoring.measurement_of("likelihood")
    assert record.own_traits and record.trait_data == ("ab_items",) and record.paired is not None
    result = paired_validation(np.array([0.5, -0.2, 0.0, 1.0]), min_auroc=0.6)
    assert result["scorer"] == "ab-likelihood" and result["auroc"] == pytest.approx(2.5 / 4) and result["valid"]
    assert paired_validation(np.array([-1.0, 0.3]), min_auroc=0.6)["valid"] is False


def test_the_truthfulness_dispatch_is_bit_identical(smollm2):
    """score_statements and validate call the record's pairs provider; for truthfulness it is exactly
    the statement preferences they computed before."""
    model, tokenizer, _ = smollm2
    prompt_set = select_prompt_set("truthfulness", 2, 2, ["in_distribution"], 0)
    prompt_set["statements"] = prompt_set["statements"][:4]
    named = {"baseline": torch.zeros(D_MODEL), "push": torch.randn(D_MODEL, generator=torch.Generator().manual_seed(2))}
    via_record = scoring.scorer_record("likelihood").paired.preferences(model, tokenizer, LAYER, prompt_set, named)
    statements = [(pair["true"], pair["false"]) for pair in prompt_set["statements"]]
    direct = statement_preferences(model, tokenizer, LAYER, statements, named)
    assert via_record.keys() == direct.keys()
    assert all(np.array_equal(via_record[name], direct[name]) for name in direct)


@pytest.fixture
def small_trait(tmp_path):
    """A registered own trait of 8 of the example's items (4 build v, 4 score it), for stage runs."""
    data = _example()
    data.update(trait="sycophancy_small", ab_items=data["ab_items"][:8])
    path = _written(tmp_path, data, "sycophancy_small.json")
    register_trait_files({"sycophancy_small": path})
    yield load_trait("sycophancy_small")
    unregister_trait_file("sycophancy_small")


def test_the_stages_extract_at_the_answers_and_validate_on_the_held_out_items(
    smollm2_dir, smollm2, small_trait, tmp_path
):
    prompts = str(tmp_path / "prompts.json")
    stages.prompts("sycophancy_small", 4, 2, ["in_distribution"], 0, prompts)
    runtime = stages.Runtime(device="cpu", dtype="float32", threads=2, batch_size=8)
    contrast = str(tmp_path / "contrast.h5")
    stages.dump_contrast(str(smollm2_dir), prompts, LAYER, runtime, {"layer": LAYER}, contrast)
    positive, negative = store.read(contrast, "positive", "negative")
    assert store.read_attrs(contrast)["positions"].startswith("last answer token")
    pairs = read_prompt_set(prompts)["pairs"]
    model, tokenizer, _ = smollm2
    expected = activations.last_answer_token(
        model, tokenizer, LAYER, [p["negative"] for p in pairs], [p["negative_answer"] for p in pairs], 8
    )
    np.testing.assert_allclose(negative, expected, atol=1e-4)
    assert positive.shape == negative.shape == (4, D_MODEL)

    output = tmp_path / "validation.json"
    sampling = {"max_new_tokens": 4, "temperature": 0.8, "top_p": 1.0}
    stages.validate(
        str(smollm2_dir), prompts, "sycophancy_small", "ab-likelihood", 0.8, 4, sampling, 0, runtime, str(output)
    )
    result = json.loads(output.read_text())
    assert result["scorer"] == "ab-likelihood" and result["n"] == len(small_trait.scored_items) == 4
    # validated on how the unsteered preference follows an instruction toward either pole
    zero = {"b": torch.zeros(D_MODEL)}
    toward, away = (
        steered_preferences(
            model,
            tokenizer,
            0,
            [replace(it, question=instructed(it.question, pole)) for it in small_trait.scored_items],
            zero,
        )["b"]
        for pole in ("sycophantic", "honest")
    )
    assert result["mean_preference"] == pytest.approx((toward - away).mean(), abs=1e-5)
    assert result["auroc"] == pytest.approx(((toward > away) + 0.5 * (toward == away)).mean())
    assert result["valid"] == (result["auroc"] >= 0.8)


@pytest.mark.parametrize("trait", ["politeness", "agreeableness"])
def test_the_packaged_pole_replies_follow_the_models_instructions(smollm2_dir, trait, tmp_path):
    """politeness and agreeableness carry A/B items (a request, a reply at each pole): ab-likelihood
    scores them, and passes its gate on SmolLM2 where no text scorer does."""
    prompts = str(tmp_path / "prompts.json")
    stages.prompts(trait, 4, 2, ["in_distribution"], 0, prompts)
    prompt_set = read_prompt_set(prompts)
    asked = instructed_prompt_set(prompt_set, "negative")
    assert [it["question"] for it in asked["ab_items"]] == [
        instructed(it["question"], prompt_set["negative_pole"]) for it in prompt_set["ab_items"]
    ]
    assert [it["answer_matching"] for it in asked["ab_items"]] == [
        it["answer_matching"] for it in prompt_set["ab_items"]
    ]
    with pytest.raises(ValueError, match="pole 'rude': expected one of"):
        instructed_prompt_set(prompt_set, "rude")
    output = tmp_path / "validation.json"
    runtime = stages.Runtime(device="cpu", dtype="float32", threads=2, batch_size=16)
    sampling = {"max_new_tokens": 4, "temperature": 0.8, "top_p": 1.0}
    stages.validate(str(smollm2_dir), prompts, trait, "ab-likelihood", 0.8, 4, sampling, 0, runtime, str(output))
    result = json.loads(output.read_text())
    # measured 2026-12-07: 0.9375 [0.84, 1.00] on both traits' 32 items, in float32 and in bfloat16
    assert result["n"] == len(prompt_set["ab_items"]) == 32 and result["valid"] and result["auroc"] >= 0.9


# --- the config ------------------------------------------------------------------------------------


def _config(**changes) -> dict:
    config = copy.deepcopy(BASE)
    config.update(changes)
    return config


def _problems(config: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check_config(config, CONFIG_SCHEMA)
    return info.value.problems


def _study(**changes) -> dict:
    return _config(
        trait_files={"sycophancy": RELATIVE_EXAMPLE},
        traits=["sycophancy"],
        scoring={"sycophancy": "ab-likelihood", "validation_texts": 4},
        **changes,
    )


def test_check_config_accepts_the_example_scored_by_ab_likelihood(in_repo):
    config = _study()
    assert check_config(config, CONFIG_SCHEMA) == []
    assert config["scoring"]["sycophancy"] == "ab-likelihood"
    assert scoring.measurement_of(config["scoring"]["sycophancy"]).generates_text is False


def test_check_config_rejects_ab_likelihood_for_a_file_without_items(in_repo):
    scores = {"refusal": "ab-likelihood", "validation_texts": 4}
    config = _config(trait_files={"refusal": REFUSAL}, traits=["refusal"], scoring=scores)
    (line,) = _problems(config)
    assert line == (
        f"config scoring.refusal = 'ab-likelihood': the trait file {REFUSAL} gives no ab_items, which ab-likelihood "
        "reads; expected a scorer of what the file gives (minilm-exemplars, minilm-probe), or ab_items in the file"
    )


def test_check_config_rejects_the_exemplar_default_for_a_file_of_items_only(in_repo):
    (line,) = _problems(_config(trait_files={"sycophancy": RELATIVE_EXAMPLE}, traits=["sycophancy"]))
    assert line.startswith(
        f"config scoring.sycophancy = 'minilm-exemplars': the trait file {RELATIVE_EXAMPLE} gives no exemplars and "
        "no pairs, which minilm-exemplars reads; expected a scorer of what the file gives (ab-likelihood)"
    )
    # only extracted (its v perturbs another trait's), an own trait is not scored: nothing to reject
    assert (
        check_config(_config(trait_files={"sycophancy": RELATIVE_EXAMPLE}, other_traits=["sycophancy"]), CONFIG_SCHEMA)
        == []
    )


def test_the_contrast_pairs_are_the_build_half(in_repo):
    (line,) = _problems(_study(prompts={**BASE["prompts"], "n_pairs": 33}))
    assert line.startswith("config prompts.n_pairs = 33: n_pairs=33 exceeds the 32 prompts of trait 'sycophancy'")


def test_a_dry_run_plans_the_likelihood_chain_and_no_generations(tmp_path):
    config = write_config(
        tmp_path,
        trait_files={"sycophancy": str(EXAMPLE)},
        traits=["sycophancy"],
        scoring={"sycophancy": "ab-likelihood", "validation_texts": 4},
    )
    workdir = tmp_path / "study"
    workdir.mkdir()
    result = snakemake(workdir, "--configfile", str(config), "-n")
    assert result.returncode == 0, printed(result)[-3000:]
    jobs = planned_jobs(printed(result))
    assert jobs["stats_e1"] == 1 and jobs["stats_e5"] == 1 and jobs["stats_e7"] == 1
    assert jobs["score_statements"] == 2 and jobs["validate_scorer"] == 1 and jobs["dump_contrast"] == 2
    assert "evaluate" not in jobs and "score" not in jobs and "logit_distance" not in jobs
    assert "results/smollm2-135m/scores/e1/L15/sycophancy/statements.h5" in printed(result)
