"""Tests of the packaged trait prompt sets and their loader (steerid.prompts)."""

from __future__ import annotations

import json
import os

import pytest

from steerid.prompts import (
    ENVIRONMENTS,
    TRAITS,
    ContrastPair,
    TraitPrompts,
    load_background,
    load_trait,
    read_prompt_set,
    select_prompt_set,
    write_prompt_set,
)

MIN_PAIRS = 64
MIN_EVAL = {"in_distribution": 64, "topic_shift": 56, "genre_shift": 56}
MIN_EXEMPLARS = 16
MIN_STATEMENTS = 60
MIN_BACKGROUND = 240
MAX_EVAL_WORDS = 25


@pytest.fixture(scope="module", params=TRAITS)
def trait_prompts(request: pytest.FixtureRequest) -> TraitPrompts:
    return load_trait(request.param)


def _all_eval(tp: TraitPrompts) -> list[str]:
    return [p for env in ENVIRONMENTS for p in tp.eval[env]]


# --- packaged data -------------------------------------------------------------------------


def test_every_trait_loads(trait_prompts: TraitPrompts) -> None:
    assert trait_prompts.trait in TRAITS
    assert trait_prompts.description.strip()
    assert trait_prompts.positive_pole and trait_prompts.negative_pole
    assert trait_prompts.positive_pole != trait_prompts.negative_pole
    assert all(isinstance(p, ContrastPair) for p in trait_prompts.pairs)
    assert set(trait_prompts.eval) == set(ENVIRONMENTS)


def test_minimum_counts(trait_prompts: TraitPrompts) -> None:
    assert len(trait_prompts.pairs) >= MIN_PAIRS
    assert len({p.topic for p in trait_prompts.pairs}) >= MIN_PAIRS
    for env, minimum in MIN_EVAL.items():
        assert len(trait_prompts.eval[env]) >= minimum, env
    for pole in ("positive", "negative"):
        assert len(trait_prompts.exemplars[pole]) >= MIN_EXEMPLARS, pole


def test_no_duplicates(trait_prompts: TraitPrompts) -> None:
    topics = [p.topic.lower() for p in trait_prompts.pairs]
    assert len(topics) == len(set(topics))
    instructions = [p.positive for p in trait_prompts.pairs] + [p.negative for p in trait_prompts.pairs]
    evals = _all_eval(trait_prompts)
    everything = instructions + evals
    assert len(everything) == len(set(everything))
    for pole, texts in trait_prompts.exemplars.items():
        assert len(texts) == len(set(texts)), pole
    assert not set(trait_prompts.exemplars["positive"]) & set(trait_prompts.exemplars["negative"])


def test_pair_poles_differ(trait_prompts: TraitPrompts) -> None:
    for pair in trait_prompts.pairs:
        assert pair.positive.strip() and pair.negative.strip()
        assert pair.positive != pair.negative, pair.topic
        assert pair.topic.lower() in pair.positive.lower(), pair.topic
        assert pair.topic.lower() in pair.negative.lower(), pair.topic


def test_eval_topics_disjoint_from_extraction_topics(trait_prompts: TraitPrompts) -> None:
    topics = [p.topic.lower() for p in trait_prompts.pairs]
    clashes = [(topic, prompt) for prompt in _all_eval(trait_prompts) for topic in topics if topic in prompt.lower()]
    assert clashes == []


def test_eval_prompts_are_short_and_nonempty(trait_prompts: TraitPrompts) -> None:
    for prompt in _all_eval(trait_prompts):
        assert prompt.strip() == prompt and prompt
        assert len(prompt.split()) <= MAX_EVAL_WORDS, prompt


def test_truthfulness_statements() -> None:
    tp = load_trait("truthfulness")
    assert len(tp.statements) >= MIN_STATEMENTS
    assert len(set(tp.statements)) == len(tp.statements)
    for true, false in tp.statements:
        assert true and false and true != false


@pytest.mark.parametrize("trait", [t for t in TRAITS if t != "truthfulness"])
def test_other_traits_have_no_statements(trait: str) -> None:
    assert load_trait(trait).statements == ()


def test_background_set() -> None:
    texts = load_background()
    assert len(set(texts)) >= MIN_BACKGROUND
    assert len(set(texts)) == len(texts)
    assert all(t.strip() for t in texts)


# --- loader errors --------------------------------------------------------------------------


def test_unknown_trait_names_value_and_lists_traits() -> None:
    with pytest.raises(ValueError, match="humility") as info:
        load_trait("humility")
    for trait in TRAITS:
        assert trait in str(info.value)


# --- selection ------------------------------------------------------------------------------


def _select(**overrides: object) -> dict:
    kwargs: dict = {
        "trait": "sentiment",
        "n_pairs": 16,
        "n_eval": 8,
        "environments": list(ENVIRONMENTS),
        "seed": 7,
    }
    kwargs.update(overrides)
    return select_prompt_set(**kwargs)


def test_selection_is_deterministic() -> None:
    assert _select() == _select()


def test_selection_differs_across_seeds() -> None:
    a, b = _select(seed=1), _select(seed=2)
    assert [p["topic"] for p in a["pairs"]] != [p["topic"] for p in b["pairs"]]
    assert a["eval"] != b["eval"]


def test_selection_contents_and_json_roundtrip() -> None:
    tp = load_trait("truthfulness")
    sel = _select(trait="truthfulness", n_pairs=10, n_eval=5, environments=["topic_shift"], seed=3)
    assert sel["trait"] == "truthfulness"
    assert sel["seed"] == 3
    assert sel["positive_pole"] == tp.positive_pole and sel["negative_pole"] == tp.negative_pole
    assert len(sel["pairs"]) == 10
    assert len({p["topic"] for p in sel["pairs"]}) == 10
    known = {(p.topic, p.positive, p.negative) for p in tp.pairs}
    assert all((p["topic"], p["positive"], p["negative"]) in known for p in sel["pairs"])
    assert list(sel["eval"]) == ["topic_shift"]
    assert len(sel["eval"]["topic_shift"]) == 5
    assert set(sel["eval"]["topic_shift"]) <= set(tp.eval["topic_shift"])
    assert len(sel["statements"]) == len(tp.statements)
    assert json.loads(json.dumps(sel)) == sel


def test_selection_is_stable_under_requested_environments_and_sizes() -> None:
    full = _select(n_pairs=20, n_eval=10)
    only = _select(n_pairs=20, n_eval=10, environments=["genre_shift"])
    assert only["eval"]["genre_shift"] == full["eval"]["genre_shift"]
    small = _select(n_pairs=5, n_eval=3)
    assert small["pairs"] == full["pairs"][:5]
    assert small["eval"]["in_distribution"] == full["eval"]["in_distribution"][:3]


def test_full_selection_is_a_permutation() -> None:
    tp = load_trait("politeness")
    n_eval = min(len(tp.eval[env]) for env in ENVIRONMENTS)
    sel = _select(trait="politeness", n_pairs=len(tp.pairs), n_eval=n_eval)
    assert sorted(p["topic"] for p in sel["pairs"]) == sorted(p.topic for p in tp.pairs)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"n_pairs": 0}, "n_pairs=0"),
        ({"n_pairs": -3}, "n_pairs=-3"),
        ({"n_pairs": 100000}, "n_pairs=100000"),
        ({"n_pairs": 2.5}, "2.5"),
        ({"n_eval": 0}, "n_eval=0"),
        ({"n_eval": 99999}, "n_eval=99999"),
        ({"environments": ["in_distribution", "sarcasm_shift"]}, "sarcasm_shift"),
        ({"environments": "topic_shift"}, "topic_shift"),
        ({"trait": "humility"}, "humility"),
        ({"seed": -1}, "seed must be a non-negative integer, got -1"),
    ],
)
def test_bad_arguments_raise_with_value(overrides: dict, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        _select(**overrides)
    assert needle in str(info.value)


# --- writing and reading --------------------------------------------------------------------


def test_write_and_read_prompt_set(tmp_path) -> None:
    path = tmp_path / "results" / "prompts" / "formality.json"
    kwargs = {"trait": "formality", "n_pairs": 12, "n_eval": 6, "environments": list(ENVIRONMENTS), "seed": 11}
    write_prompt_set(path, **kwargs)
    assert read_prompt_set(path) == select_prompt_set(**kwargs)
    assert os.listdir(path.parent) == ["formality.json"]


def test_write_failure_leaves_nothing(tmp_path) -> None:
    path = tmp_path / "formality.json"
    with pytest.raises(ValueError, match="n_pairs"):
        write_prompt_set(path, trait="formality", n_pairs=0, n_eval=6, environments=["genre_shift"], seed=0)
    assert list(tmp_path.iterdir()) == []


def test_read_rejects_non_prompt_set(tmp_path) -> None:
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"trait": "sentiment"}), encoding="utf-8")
    with pytest.raises(ValueError, match="other.json"):
        read_prompt_set(path)
