"""A researcher's own trait, defined by a trait file the config names (issue 14, item 4): the
registry, the file format and its errors, the config keys, and scoring with the file's exemplars."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from snakemake_runner import REPO, TEST_CONFIG

from steerid import scoring
from steerid.pipeline.config_checks import ConfigError, check_config
from steerid.prompts import (
    ENVIRONMENTS,
    TRAIT_SCHEMA,
    TRAITS,
    TraitFileError,
    instructed,
    load_trait,
    load_trait_file,
    own_trait_names,
    read_prompt_set,
    register_trait_files,
    select_prompt_set,
    trait_names,
    unregister_trait_file,
    write_prompt_set,
)

EXAMPLE = REPO / "examples" / "traits" / "refusal.json"
RELATIVE_EXAMPLE = "examples/traits/refusal.json"
CONFIG_SCHEMA = REPO / "schemas" / "config.schema.yaml"
BASE = yaml.safe_load(TEST_CONFIG.read_text())
MAX_EVAL_WORDS = 25

# Held-out sentences written for this test, not among the example's exemplars.
HELDOUT = {
    "positive": [
        "Sorry, I can't help you plan that.",
        "I'm not going to write that essay for you.",
        "I have to say no to this request.",
        "Unfortunately I can't share those instructions.",
        "I won't be able to do that, I'm afraid.",
        "I'd prefer not to answer, so I'll decline.",
    ],
    "negative": [
        "Sure, here's a quick recipe: whisk two eggs, add milk and flour, and fry small pancakes.",
        "Of course! Take the second left after the bridge and the station is on your right.",
        "Here's the email: Hi Sam, could we move Friday's meeting to ten? Thanks, Alex.",
        "Happy to help: water the fern twice a week and keep it out of direct sun.",
        "Yes, here are three ideas: a museum visit, a picnic and an evening of board games.",
        "Absolutely, here's the code: def add(a, b): return a + b",
    ],
}


@pytest.fixture
def refusal():
    """The example registered as the own trait ``refusal`` for one test."""
    register_trait_files({"refusal": EXAMPLE})
    yield load_trait("refusal")
    unregister_trait_file("refusal")


@pytest.fixture
def in_repo(monkeypatch):
    """Run in the repository, the working directory the config's relative trait_files start at."""
    monkeypatch.chdir(REPO)


def _example() -> dict:
    return json.loads(EXAMPLE.read_text(encoding="utf-8"))


def _written(tmp_path: Path, data, name: str = "trait.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


# --- the example and the schema ---------------------------------------------------------------


def test_the_schema_is_draft_2020_12_and_describes_every_key():
    schema = json.loads(TRAIT_SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def undocumented(node, where):
        for name, child in node.get("properties", {}).items():
            if "description" not in child:
                yield f"{where}.{name}"
            yield from undocumented(child, f"{where}.{name}")
        if isinstance(node.get("items"), dict):
            yield from undocumented(node["items"], f"{where}[]")

    assert list(undocumented(schema, "$")) == []


@pytest.mark.parametrize("trait", TRAITS)
def test_packaged_traits_pass_the_schema(trait):
    data = json.loads((REPO / "src" / "steerid" / "data" / "prompts" / f"{trait}.json").read_text(encoding="utf-8"))
    assert list(Draft202012Validator(json.loads(TRAIT_SCHEMA.read_text())).iter_errors(data)) == []


def test_the_example_passes_the_schema_and_loads(refusal):
    assert list(Draft202012Validator(json.loads(TRAIT_SCHEMA.read_text())).iter_errors(_example())) == []
    assert refusal == load_trait_file(EXAMPLE, "refusal")
    assert (refusal.trait, refusal.positive_pole, refusal.negative_pole) == ("refusal", "refusing", "compliant")
    assert instructed("Write a haiku.", refusal.positive_pole) == "Write a haiku. Respond in a clearly refusing way."
    assert len({pair.topic for pair in refusal.pairs}) >= 64
    assert all(len(refusal.eval[env]) >= 60 for env in ENVIRONMENTS)
    assert all(len(refusal.exemplars[pole]) >= 24 for pole in ("positive", "negative"))
    assert refusal.statements == ()


def test_the_example_is_written_like_the_packaged_traits(refusal):
    evals = [prompt for env in ENVIRONMENTS for prompt in refusal.eval[env]]
    instructions = [text for pair in refusal.pairs for text in (pair.positive, pair.negative)]
    assert len(set(evals + instructions)) == len(evals + instructions)
    for pair in refusal.pairs:
        assert pair.topic.lower() in pair.positive.lower() and pair.topic.lower() in pair.negative.lower()
    topics = [pair.topic.lower() for pair in refusal.pairs]
    assert [(t, p) for p in evals for t in topics if t in p.lower()] == []
    assert all(p.strip() == p and len(p.split()) <= MAX_EVAL_WORDS for p in evals)


def test_selection_of_an_own_trait_is_deterministic(refusal, tmp_path):
    kwargs = {"trait": "refusal", "n_pairs": 16, "n_eval": 8, "environments": list(ENVIRONMENTS), "seed": 3}
    first = select_prompt_set(**kwargs)
    assert first == select_prompt_set(**kwargs) and first != select_prompt_set(**{**kwargs, "seed": 4})
    assert first["trait"] == "refusal" and len(first["pairs"]) == 16
    assert set(first["eval"]["genre_shift"]) <= set(refusal.eval["genre_shift"])
    write_prompt_set(tmp_path / "refusal.json", **kwargs)
    assert read_prompt_set(tmp_path / "refusal.json") == first


# --- errors of a trait file -------------------------------------------------------------------


def _drop_pairs_topic(data):
    del data["pairs"][2]["topic"]


@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (lambda d: d.pop("exemplars"), ["$:", "missing key 'exemplars'", "expected the keys trait"]),
        (_drop_pairs_topic, ["$.pairs[2]", "missing key 'topic'", "topic, positive, negative"]),
        (lambda d: d.update(positive_pole=5), ["$.positive_pole", "5 is a number", "expected a string"]),
        (lambda d: d.update(pairs={}), ["$.pairs", "is an object", "expected an array"]),
        (lambda d: d["eval"].update(topic_shift=[]), ["$.eval.topic_shift", "an empty list", "at least 1 item"]),
        (
            lambda d: d["eval"].update(sarcasm_shift=["Write a joke."]),
            ["$.eval", "unknown environment 'sarcasm_shift'", "in_distribution, topic_shift, genre_shift"],
        ),
        (lambda d: d.update(colour="blue"), ["$:", "unknown key 'colour'", "only the keys trait"]),
        (lambda d: d["exemplars"].update(negative=["  "]), ["$.exemplars.negative[0]", "a blank string"]),
        (lambda d: d.update(trait="refusals"), ["$.trait", "'refusals'", "expected 'refusal'"]),
        (lambda d: d["pairs"][1].update(topic=d["pairs"][0]["topic"]), ["$.pairs[1].topic", "pairs[0]"]),
    ],
    ids=[
        "missing-key",
        "missing-nested-key",
        "wrong-type",
        "wrong-container",
        "empty-list",
        "bad-environment",
        "unknown-top-level-key",
        "blank-text",
        "trait-name-mismatch",
        "repeated-topic",
    ],
)
def test_a_bad_trait_file_names_file_path_and_expectation(tmp_path, edit, needles):
    data = _example()
    edit(data)
    path = _written(tmp_path, data)
    with pytest.raises(TraitFileError) as info:
        load_trait_file(path, "refusal")
    message = str(info.value)
    assert message.startswith(f"trait file {path}: ") and "; expected " in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_a_missing_trait_file_is_named(tmp_path):
    with pytest.raises(TraitFileError, match=r"nothere\.json: \$: no such file .*working directory"):
        load_trait_file(tmp_path / "nothere.json", "refusal")


def test_a_file_that_is_not_json_is_named(tmp_path):
    path = _written(tmp_path, '{"trait": "refusal",,}')
    with pytest.raises(TraitFileError, match=r"trait\.json: \$: not JSON .*line 1.*; expected a JSON object"):
        load_trait_file(path, "refusal")


# --- the registry -------------------------------------------------------------------------------


def test_registering_is_idempotent_and_lists_the_own_trait(refusal, in_repo):
    assert trait_names() == (*TRAITS, "refusal") and own_trait_names() == ("refusal",)
    register_trait_files({"refusal": RELATIVE_EXAMPLE})  # the same file, spelled relative to the working directory
    register_trait_files({"refusal": EXAMPLE})
    assert trait_names() == (*TRAITS, "refusal")


def test_registering_a_built_in_name_is_refused():
    with pytest.raises(ValueError, match=r"'sentiment' \(file .*refusal\.json\) is a built-in trait"):
        register_trait_files({"sentiment": EXAMPLE})
    assert load_trait("sentiment").positive_pole == "positive"


def test_registering_a_name_with_another_file_names_both(refusal, tmp_path):
    other = _written(tmp_path, _example(), "refusal.json")
    with pytest.raises(ValueError, match="refusal") as info:
        register_trait_files({"refusal": other})
    assert str(EXAMPLE) in str(info.value) and str(other) in str(info.value)
    assert refusal == load_trait("refusal")


def test_a_bad_mapping_registers_nothing(tmp_path):
    with pytest.raises(ValueError, match="'Bad Name'"):
        register_trait_files({"good_name": EXAMPLE, "Bad Name": EXAMPLE})
    assert "good_name" not in trait_names()


def test_an_unknown_trait_names_the_value_and_the_registered_traits(refusal):
    with pytest.raises(ValueError, match="'happiness'") as info:
        load_trait("happiness")
    assert all(name in str(info.value) for name in (*TRAITS, "refusal"))
    with pytest.raises(ValueError, match="'happiness'"):
        select_prompt_set("happiness", 4, 4, ["in_distribution"], 0)
    unregister_trait_file("refusal")
    with pytest.raises(ValueError, match="'refusal'"):
        load_trait("refusal")
    register_trait_files({"refusal": EXAMPLE})  # the fixture unregisters it
    with pytest.raises(ValueError, match="'formality' is built in"):
        unregister_trait_file("formality")


# --- scoring ------------------------------------------------------------------------------------


def test_an_own_trait_is_scored_by_minilm_exemplars(refusal):
    # the own-trait scorers; what the file gives decides at parse time (refusal has no ab_items)
    assert scoring.scorers_for("refusal") == ("minilm-exemplars", "minilm-probe", "ab-likelihood")
    assert scoring.default_scorer("refusal") == "minilm-exemplars"
    assert "refusal" in scoring.scorer_traits() and scoring.TRAIT_SCORERS["refusal"][0] == "minilm-exemplars"
    with pytest.raises(ValueError, match="'minilm-labels'.*'refusal'"):
        scoring.get_scorer("refusal", "minilm-labels")
    # the schema's fixed scoring properties stay the built-in traits'
    assert set(scoring.schema_enums()) == set(TRAITS)


def test_an_unregistered_trait_has_no_scorer():
    assert scoring.scorers_for("refusal") == ()
    with pytest.raises(ValueError, match="'refusal'"):
        scoring.default_scorer("refusal")


def test_minilm_exemplars_separates_the_example_poles(refusal):
    scorer = scoring.get_scorer("refusal", "minilm-exemplars")
    own = scoring.validate_scorer(scorer, refusal.exemplars["positive"], refusal.exemplars["negative"], min_auroc=0.9)
    assert own["valid"], own
    assert not set(HELDOUT["positive"] + HELDOUT["negative"]) & set(refusal.exemplars["positive"])
    heldout = scoring.validate_scorer(scorer, HELDOUT["positive"], HELDOUT["negative"], min_auroc=0.8)
    assert heldout["valid"], heldout


# --- config keys ----------------------------------------------------------------------------------


def _config(**changes) -> dict:
    config = copy.deepcopy(BASE)
    config.update(changes)
    return config


def _problems(config: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        check_config(config, CONFIG_SCHEMA)
    return info.value.problems


def test_check_config_accepts_an_own_trait_and_gives_it_its_scorer(in_repo):
    config = _config(trait_files={"refusal": RELATIVE_EXAMPLE}, traits=["refusal"], other_traits=["sentiment"])
    assert check_config(config, CONFIG_SCHEMA) == []
    assert config["scoring"]["refusal"] == "minilm-exemplars"
    assert "refusal" not in trait_names()  # the Snakefile registers the files after the checks
    config = _config(trait_files={"refusal": RELATIVE_EXAMPLE}, other_traits=["refusal"])
    assert check_config(config, CONFIG_SCHEMA) == []


def test_check_config_rejects_an_unknown_trait(in_repo):
    (line,) = _problems(_config(trait_files={"refusal": RELATIVE_EXAMPLE}, traits=["sentiment", "happiness"]))
    assert line.startswith("config traits[1] = 'happiness': neither a built-in trait nor a trait_files name")
    assert "formality" in line and "(refusal)" in line


def test_check_config_rejects_a_missing_trait_file(in_repo):
    (line,) = _problems(_config(trait_files={"refusal": "examples/traits/nothere.json"}, traits=["refusal"]))
    assert line.startswith("config trait_files.refusal = 'examples/traits/nothere.json': no such file")
    assert "schemas/trait.schema.json" in line


def test_check_config_rejects_an_invalid_trait_file(tmp_path):
    data = _example()
    del data["pairs"]
    path = str(_written(tmp_path, data))
    (line,) = _problems(_config(trait_files={"refusal": path}, traits=["refusal"]))
    assert line.startswith(f"config trait_files.refusal = {path!r}: missing key 'pairs'; expected the keys trait")


def test_check_config_rejects_a_built_in_name_and_a_scorer_of_no_trait(in_repo):
    lines = _problems(_config(trait_files={"sentiment": RELATIVE_EXAMPLE}, scoring={"refusal": "minilm-exemplars"}))
    assert lines[0].startswith("config trait_files.sentiment = 'examples/traits/refusal.json': 'sentiment' is a built")
    assert lines[1].startswith("config scoring.refusal = 'minilm-exemplars': 'refusal' is no trait of this study")


def test_the_schema_gives_an_own_trait_only_the_own_trait_scorers(in_repo):
    config = _config(trait_files={"refusal": RELATIVE_EXAMPLE}, traits=["refusal"], scoring={"refusal": "vader"})
    (line,) = _problems(config)
    assert line.startswith(
        "config scoring.refusal = 'vader': 'vader' is not one of ['minilm-exemplars', 'minilm-probe', 'ab-likelihood']"
    )
