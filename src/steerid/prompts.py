"""Trait prompt sets: the packaged traits and a researcher's own, behind one registry.

Each trait has a JSON file in the format of ``schemas/trait.schema.json``:

* contrast ``pairs``: the same instruction asking for the positive and for the negative pole
  of the trait on one topic (used to extract steering vectors);
* held-out ``eval`` prompts per environment (``in_distribution``, ``topic_shift``,
  ``genre_shift``) that are neutral about the trait and whose topics are disjoint from the
  extraction topics (used for steered generation);
* ``exemplars``: sentences that clearly show each pole (used to validate scorers);
* ``statements`` (truthfulness only): true / minimally different false sentence pairs;
* ``ab_items`` (own traits, optional): A/B items in the CAA / model-written-evals format, a
  question and two answers, one matching the behaviour (the ``ab-likelihood`` scorer's items);
  with them ``pairs`` and ``exemplars`` may be left out (see :func:`split_ab_items`).

The built-in traits (:data:`TRAITS`) are packaged under ``steerid/data/prompts`` and registered
at import; :func:`register_trait_files` adds a researcher's own traits (config ``trait_files``).
:func:`load_trait` loads either kind with one parser: the schema, then the checks a schema
cannot express (the ``trait`` field is the registered name, the two poles differ, ...).
``background.json`` holds neutral texts from many domains for the activation covariance.

:func:`select_prompt_set` draws a deterministic subset for one experiment, and
:func:`write_prompt_set` / :func:`read_prompt_set` move it to and from disk.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

TRAITS: tuple[str, ...] = ("formality", "politeness", "sentiment", "truthfulness", "agreeableness")
"""The built-in traits, packaged with steerid (own traits come from :func:`register_trait_files`)."""
TRAIT_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
"""What a trait's name looks like: it is a path component and a Snakemake wildcard value."""
TRAIT_SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "trait.schema.json"
"""The trait file format; steerid is always installed editable (install.sh), so the repository's copy is found."""
ENVIRONMENTS: tuple[str, ...] = ("in_distribution", "topic_shift", "genre_shift")
POLES: tuple[str, ...] = ("positive", "negative")

_DATA_PACKAGE = "steerid"
_DATA_DIR = ("data", "prompts")
_PROMPT_SET_KEYS: tuple[str, ...] = (
    "trait",
    "positive_pole",
    "negative_pole",
    "seed",
    "pairs",
    "eval",
    "exemplars",
    "statements",
)


@dataclass(frozen=True)
class ContrastPair:
    """One extraction pair: the same instruction asking for each pole of a trait on one topic.

    A pair built from an A/B item (:func:`split_ab_items`) has the item's question as topic and as
    both instructions, and its two answers as ``positive_answer`` / ``negative_answer``: the
    contrast activation is then read at the answer's last token, the answer being the start of the
    model's reply to the question (CAA), rather than at the last prompt token.
    """

    topic: str
    positive: str
    negative: str
    positive_answer: str | None = None
    negative_answer: str | None = None


AB_ANSWER_KEYS: dict[str, str] = {
    "answer_matching": "answer_matching_behavior",
    "answer_not_matching": "answer_not_matching_behavior",
}
"""An A/B item's answer keys → the CAA / model-written-evals name of the same key (either is accepted)."""
MIN_SPLIT_ITEMS = 4
"""A file without ``pairs`` needs this many A/B items: two or more build v, two or more score it."""


@dataclass(frozen=True)
class ABItem:
    """One A/B item: a question and two answers, the first matching the behaviour (the positive pole)."""

    question: str
    answer_matching: str
    answer_not_matching: str


@dataclass(frozen=True)
class TraitPrompts:
    """Everything written for one trait, as loaded from its trait file (packaged or own)."""

    trait: str
    description: str
    positive_pole: str
    negative_pole: str
    pairs: tuple[ContrastPair, ...]
    eval: dict[str, tuple[str, ...]]
    exemplars: dict[str, tuple[str, ...]]
    statements: tuple[tuple[str, str], ...] = ()
    ab_items: tuple[ABItem, ...] = ()
    """Every A/B item of the file, in file order (empty: none)."""
    pairs_from_items: bool = False
    """The file has no ``pairs``: :attr:`pairs` are built from the A/B items :func:`split_ab_items` sets aside."""

    @property
    def scored_items(self) -> tuple[ABItem, ...]:
        """The A/B items that score v: all of them when the file gives its own pairs, else the held-out half."""
        return split_ab_items(self.ab_items)[1] if self.pairs_from_items else self.ab_items


def split_ab_items(items: Sequence[ABItem]) -> tuple[tuple[ABItem, ...], tuple[ABItem, ...]]:
    """(build, held out): the A/B items that build v's contrast pairs, and the disjoint rest that score it.

    The items are ranked by the SHA-256 of their normalised question (case and runs of spaces
    ignored); the first ⌈n/2⌉ build, the others are held out, each part in file order. The split
    is the file's, not a study's: it ignores the config ``seed`` (which still draws which build
    items form a study's ``n_pairs`` contrast pairs), so every study of the file scores the same
    held-out items; it ignores the items' order, so reordering or reformatting a pasted dataset
    changes nothing; and the items' questions are distinct (checked), so no question is on both
    sides. Halves, because the contrast needs ``prompts.n_pairs`` items while every held-out item
    is one paired unit of E1's tests. It is used only when the file has no ``pairs``: with its own
    pairs every item is held out.
    """
    ranked = sorted(range(len(items)), key=lambda i: (_question_digest(items[i].question), i))
    build = set(ranked[: (len(items) + 1) // 2])
    return (
        tuple(item for i, item in enumerate(items) if i in build),
        tuple(item for i, item in enumerate(items) if i not in build),
    )


def _question_key(question: str) -> str:
    return " ".join(question.split()).casefold()


def _question_digest(question: str) -> str:
    return hashlib.sha256(_question_key(question).encode("utf-8")).hexdigest()


def trait_data(prompts: TraitPrompts) -> frozenset[str]:
    """The trait-file keys whose data ``prompts`` has from its file (pairs built from A/B items are not).

    A scorer names what it reads (``ScorerRecord.trait_data``); the parse-time checks hold an own
    trait's file to it.
    """
    present = {
        "pairs": bool(prompts.pairs) and not prompts.pairs_from_items,
        "eval": True,
        "exemplars": all(prompts.exemplars.get(pole) for pole in POLES),
        "statements": bool(prompts.statements),
        "ab_items": bool(prompts.ab_items),
    }
    return frozenset(key for key, given in present.items() if given)


class TraitFileError(ValueError):
    """A trait file that cannot be used: names the file, the JSON path, the problem and what was expected."""

    def __init__(self, file: str, json_path: str, problem: str, expected: str) -> None:
        self.file, self.json_path, self.problem, self.expected = file, json_path, problem, expected
        super().__init__(f"trait file {file}: {json_path}: {problem}; expected {expected}")


_REGISTRY: dict[str, Path | None] = dict.fromkeys(TRAITS)
"""Every registered trait → its own trait file (absolute), or None for a packaged, built-in trait."""


def register_trait_files(mapping: Mapping[str, str | os.PathLike[str]]) -> None:
    """Register a researcher's own traits, name → trait file (config ``trait_files``).

    Every job registers its config's files again, so a name registered with the file it already
    has is left as it is. Files are read when a trait is loaded, so an edited file is seen.
    Raises ValueError, registering none of ``mapping``, for a name that is not a trait name, a
    built-in trait, or a name registered with another file (naming both files).
    """
    files = {name: _own_file(name, path) for name, path in mapping.items()}
    _REGISTRY.update(files)


def _own_file(name: str, path: str | os.PathLike[str]) -> Path:
    """The absolute file of own trait ``name``, or a ValueError when it clashes with the registry."""
    if not isinstance(name, str) or not TRAIT_NAME.match(name):
        raise ValueError(f"trait name {name!r} is not a trait name; expected a name matching {TRAIT_NAME.pattern}")
    file = Path(path).resolve()  # one spelling per file: relative paths start at the working directory
    if name in TRAITS:
        raise ValueError(
            f"trait {name!r} (file {file}) is a built-in trait; expected a name other than {', '.join(TRAITS)}"
        )
    known = _REGISTRY.get(name)
    if known is not None and known != file:
        raise ValueError(f"trait {name!r} is registered with the file {known}; it cannot also be {file}")
    return file


def unregister_trait_file(name: str) -> Path:
    """Remove the own trait ``name`` from the registry and return its file (a built-in trait stays)."""
    file = _registered_file(name)
    if file is None:
        raise ValueError(f"trait {name!r} is built in; expected an own trait ({', '.join(own_trait_names())})")
    del _REGISTRY[name]
    return file


def trait_names() -> tuple[str, ...]:
    """Every registered trait: the built-in ones, then own traits in registration order."""
    return tuple(_REGISTRY)


def own_trait_names() -> tuple[str, ...]:
    """The traits registered from a researcher's trait files."""
    return tuple(name for name, file in _REGISTRY.items() if file is not None)


def _registered_file(name: str) -> Path | None:
    """The registered file of ``name`` (None: packaged), or a ValueError naming it and the registered traits."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown trait {name!r}; expected one of {', '.join(_REGISTRY)} (or an own trait registered from a "
            "trait file, config trait_files)"
        ) from None


def load_trait(trait: str) -> TraitPrompts:
    """Load the prompt data of a registered trait, packaged or from its file, with one parser.

    Raises ValueError for an unregistered trait, :class:`TraitFileError` for a malformed file.
    """
    file = _registered_file(trait)
    if file is not None:
        return load_trait_file(file, trait)
    text = _packaged(f"{trait}.json").read_text(encoding="utf-8")
    return _parse_trait(text, trait, f"steerid/data/prompts/{trait}.json")


def load_trait_file(path: str | os.PathLike[str], trait: str) -> TraitPrompts:
    """Load ``path`` as the trait ``trait`` without registering it (the parse-time config checks do this).

    Raises :class:`TraitFileError` naming the file for a missing or unreadable file, text that is
    not JSON, a schema violation (``schemas/trait.schema.json``) or data a schema cannot check.
    """
    where = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        problem = f"no such file (relative paths start at the working directory {Path.cwd()})"
        raise TraitFileError(where, "$", problem, "a trait file, as schemas/trait.schema.json describes") from None
    except (OSError, UnicodeDecodeError) as err:
        raise TraitFileError(where, "$", f"cannot be read ({err})", "a UTF-8 JSON text file") from None
    return _parse_trait(text, trait, where)


def _packaged(name: str) -> Any:
    """The resource ``steerid/data/prompts/<name>`` of the installed package."""
    resource = resources.files(_DATA_PACKAGE)
    for part in (*_DATA_DIR, name):
        resource = resource / part
    return resource


def _parse_trait(text: str, trait: str, where: str) -> TraitPrompts:
    """Parse one trait file's text: JSON, then the schema, then what a schema cannot express."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        problem = f"not JSON ({err.msg} at line {err.lineno}, column {err.colno})"
        raise TraitFileError(where, "$", problem, "a JSON object") from None
    _check_schema(data, where)
    _check_name_and_poles(data, trait, where)
    if "pairs" in data:
        _check_pairs(data["pairs"], where)
    if "exemplars" in data:
        _check_exemplars(data["exemplars"], where)
    items = _check_ab_items(data, where) if "ab_items" in data else ()
    return _trait_prompts(data, items)


@functools.cache
def _trait_validator() -> Any:
    """The validator of ``schemas/trait.schema.json`` (read once per process)."""
    from jsonschema import Draft202012Validator

    try:
        schema = json.loads(TRAIT_SCHEMA.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{TRAIT_SCHEMA}: the trait file schema is missing; install steerid editable from its repository"
        ) from None
    return Draft202012Validator(schema)


def _check_schema(data: Any, where: str) -> None:
    """Raise :class:`TraitFileError` for the most relevant schema violation of ``data``, if any."""
    from jsonschema.exceptions import best_match

    error = best_match(_trait_validator().iter_errors(data))
    if error is not None:
        problem, expected = _schema_problem(error)
        raise TraitFileError(where, error.json_path, problem, expected)


# Every key a trait file needs, and what may stand in for some of them.
_ROOT_KEYS = ("trait", "description", "positive_pole", "negative_pole", "pairs", "eval", "exemplars")
_STANDS_IN_FOR = ("pairs", "exemplars")
_ROOT_NOTE = "ab_items may stand in for pairs and exemplars"
# What the keys of these objects are, in the words of a schema error about them.
_KEY_KINDS = {"$.eval": "environment", "$.exemplars": "pole"}
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}


def _schema_problem(error: Any) -> tuple[str, str]:
    """(problem, expectation) of one jsonschema error, in words rather than schema keywords."""
    kind, value, instance = error.validator, error.validator_value, error.instance
    if kind == "required" and error.json_path == "$":
        # The schema requires pairs and exemplars in an if/then: unless ab_items stand in for them.
        optional = _STANDS_IN_FOR if "ab_items" in instance else ()
        missing = [key for key in _ROOT_KEYS if key not in instance and key not in optional]
        return f"missing key {', '.join(map(repr, missing))}", f"the keys {', '.join(_ROOT_KEYS)} ({_ROOT_NOTE})"
    if kind == "required":
        missing = [key for key in value if key not in instance]
        return f"missing key {', '.join(map(repr, missing))}", f"the keys {', '.join(value)}"
    if kind == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        unknown = [key for key in instance if key not in known]
        word = _KEY_KINDS.get(error.json_path, "key")
        return f"unknown {word} {', '.join(map(repr, unknown))}", f"only the {word}s {', '.join(known)}"
    if kind == "type":
        found = _JSON_TYPES.get(type(instance), "a number")
        return f"{_shown(instance)} is {found}", f"{'an' if value[0] in 'aeiou' else 'a'} {value}"
    if kind == "minItems":
        return "an empty list", f"at least {value} item{'s' if value > 1 else ''}"
    if kind == "uniqueItems":
        repeated = next(item for i, item in enumerate(instance) if item in instance[:i])
        return f"{_shown(repeated)} appears more than once", "distinct items"
    if kind == "pattern" and value == r"\S":
        return "a blank string", "a string with a non-space character"
    if kind == "pattern":
        return f"{_shown(instance)} does not match {value}", f"a string matching {value}"
    return error.message, error.schema.get("description", "what schemas/trait.schema.json describes")


def _shown(value: Any, limit: int = 60) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _check_name_and_poles(data: dict[str, Any], trait: str, where: str) -> None:
    """The file is the trait it is registered as, and its two poles are different words."""
    if data["trait"] != trait:
        raise TraitFileError(
            where, "$.trait", f"the trait is {data['trait']!r}", f"{trait!r}, the name the file is registered under"
        )
    if data["positive_pole"].strip().casefold() == data["negative_pole"].strip().casefold():
        raise TraitFileError(
            where, "$.negative_pole", f"{data['negative_pole']!r} is the positive pole too", "a different pole"
        )


def _check_pairs(pairs: list[dict[str, str]], where: str) -> None:
    """Each pair asks for two different things, and no two pairs share a topic."""
    first_of: dict[str, int] = {}
    for i, pair in enumerate(pairs):
        if pair["positive"].strip() == pair["negative"].strip():
            raise TraitFileError(
                where, f"$.pairs[{i}]", "positive and negative are the same instruction", "one instruction per pole"
            )
        topic = pair["topic"].strip().casefold()
        if topic in first_of:
            raise TraitFileError(
                where,
                f"$.pairs[{i}].topic",
                f"{pair['topic']!r} is the topic of pairs[{first_of[topic]}] too",
                "a new topic",
            )
        first_of[topic] = i


def _check_exemplars(exemplars: dict[str, list[str]], where: str) -> None:
    """No sentence is an exemplar of both poles."""
    both = sorted(set(exemplars["positive"]) & set(exemplars["negative"]))
    if both:
        raise TraitFileError(where, "$.exemplars", f"{_shown(both[0])} is an exemplar of both poles", "one pole each")


def _check_ab_items(data: dict[str, Any], where: str) -> tuple[ABItem, ...]:
    """Each item names each answer once (steerid's or CAA's key), its two answers differ, no two
    items share a question, and a file without pairs has enough items to split."""
    items: list[ABItem] = []
    first_of: dict[str, int] = {}
    for i, item in enumerate(data["ab_items"]):
        path = f"$.ab_items[{i}]"
        answers = {}
        for key, caa in AB_ANSWER_KEYS.items():
            given = [name for name in (key, caa) if name in item]
            if not given:
                raise TraitFileError(
                    where,
                    path,
                    f"missing key {key!r}",
                    f"the keys question, {', '.join(AB_ANSWER_KEYS)} "
                    f"(or their CAA names {', '.join(AB_ANSWER_KEYS.values())})",
                )
            if len(given) > 1:
                raise TraitFileError(
                    where, path, f"both {key!r} and {caa!r} are given", f"one of them ({caa} is the CAA name of {key})"
                )
            answers[key] = item[given[0]].strip()
        if answers["answer_matching"].casefold() == answers["answer_not_matching"].casefold():
            raise TraitFileError(
                where, path, f"both answers are {answers['answer_matching']!r}", "two different answers"
            )
        question = _question_key(item["question"])
        if question in first_of:
            raise TraitFileError(
                where,
                f"{path}.question",
                f"{_shown(item['question'])} is the question of ab_items[{first_of[question]}] too",
                "a new question (a repeated one could build v and score it)",
            )
        first_of[question] = i
        items.append(ABItem(item["question"].strip(), answers["answer_matching"], answers["answer_not_matching"]))
    if "pairs" not in data and len(items) < MIN_SPLIT_ITEMS:
        raise TraitFileError(
            where,
            "$.ab_items",
            f"{len(items)} item{'s' if len(items) != 1 else ''} and no pairs",
            f"at least {MIN_SPLIT_ITEMS} items (half of them build the contrast pairs, the others score v), "
            "or contrast pairs of the file's own",
        )
    return tuple(items)


def _trait_prompts(data: dict[str, Any], items: tuple[ABItem, ...] = ()) -> TraitPrompts:
    """The :class:`TraitPrompts` of data that passed every check (``items``: its checked A/B items)."""
    if "pairs" in data:
        pairs = tuple(ContrastPair(p["topic"], p["positive"], p["negative"]) for p in data["pairs"])
    else:
        build, _ = split_ab_items(items)
        pairs = tuple(
            ContrastPair(it.question, it.question, it.question, it.answer_matching, it.answer_not_matching)
            for it in build
        )
    exemplars = data.get("exemplars", {})
    return TraitPrompts(
        trait=data["trait"],
        description=data["description"],
        positive_pole=data["positive_pole"],
        negative_pole=data["negative_pole"],
        pairs=pairs,
        eval={env: tuple(data["eval"][env]) for env in ENVIRONMENTS},
        exemplars={pole: tuple(exemplars.get(pole, ())) for pole in POLES},
        statements=tuple((s["true"], s["false"]) for s in data.get("statements", ())),
        ab_items=items,
        pairs_from_items="pairs" not in data,
    )


def load_background() -> tuple[str, ...]:
    """Load the neutral multi-domain texts used for the activation covariance."""
    with _packaged("background.json").open("r", encoding="utf-8") as handle:
        texts = json.load(handle).get("texts")
    if not isinstance(texts, list) or not all(isinstance(x, str) and x.strip() for x in texts):
        raise ValueError("background.json texts: expected a list of non-empty strings")
    return tuple(texts)


def _check_count(name: str, value: int, available: int, where: str = "") -> None:
    """Raise ValueError naming ``value`` unless ``1 <= value <= available``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not 1 <= value <= available:
        raise ValueError(f"{name}={value} is out of range{where}; expected 1 to {available}")


def _check_environments(environments: Sequence[str]) -> tuple[str, ...]:
    """Validate the requested environments: known, unique, passed as a sequence of names."""
    if isinstance(environments, str):
        raise ValueError(f"environments must be a sequence of names, got the string {environments!r}")
    envs = tuple(environments)
    for env in envs:
        if env not in ENVIRONMENTS:
            raise ValueError(f"unknown environment {env!r}; expected any of {', '.join(ENVIRONMENTS)}")
    if len(set(envs)) != len(envs):
        raise ValueError(f"environments {list(envs)!r} contain duplicates")
    return envs


def _check_seed(seed: int) -> int:
    """Return ``seed`` as an int, or raise ValueError naming it."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def select_prompt_set(
    trait: str,
    n_pairs: int,
    n_eval: int,
    environments: Sequence[str],
    seed: int,
) -> dict[str, Any]:
    """Draw a deterministic, JSON-able prompt set for one experiment.

    One ``numpy.random.default_rng(seed)`` draws a permutation of the pairs, then one
    permutation per environment in the fixed order of :data:`ENVIRONMENTS` (all of them,
    whether requested or not), so an environment's selection does not depend on which others
    are requested, and a smaller ``n_pairs`` / ``n_eval`` gives a prefix of a larger one.
    Exemplars and statements are included in full, and so are the A/B items that score v
    (``ab_items``, only for a trait that has them: :attr:`TraitPrompts.scored_items`); a pair built
    from an A/B item also carries its two answers (``positive_answer``, ``negative_answer``).

    Raises ValueError naming the value for an unknown trait or environment, or an
    ``n_pairs`` / ``n_eval`` below 1 or above what exists.
    """
    _registered_file(trait)
    envs = _check_environments(environments)
    seed = _check_seed(seed)
    prompts = load_trait(trait)
    _check_count("n_pairs", n_pairs, len(prompts.pairs), f" for trait {trait!r}")
    for env in envs:
        _check_count("n_eval", n_eval, len(prompts.eval[env]), f" for environment {env!r} of trait {trait!r}")

    rng = np.random.default_rng(seed)
    pair_order = rng.permutation(len(prompts.pairs))
    eval_orders = {env: rng.permutation(len(prompts.eval[env])) for env in ENVIRONMENTS}

    pairs = [prompts.pairs[i] for i in pair_order[:n_pairs]]
    selected = {
        "trait": trait,
        "description": prompts.description,
        "positive_pole": prompts.positive_pole,
        "negative_pole": prompts.negative_pole,
        "seed": seed,
        "pairs": [_pair_json(p) for p in pairs],
        "eval": {env: [prompts.eval[env][i] for i in eval_orders[env][:n_eval]] for env in envs},
        "exemplars": {pole: list(texts) for pole, texts in prompts.exemplars.items()},
        "statements": [{"true": t, "false": f} for t, f in prompts.statements],
    }
    if prompts.ab_items:  # only then: the prompt sets of the other traits stay as they were
        selected["ab_items"] = [
            {
                "question": it.question,
                "answer_matching": it.answer_matching,
                "answer_not_matching": it.answer_not_matching,
            }
            for it in prompts.scored_items
        ]
    return selected


def _pair_json(pair: ContrastPair) -> dict[str, str]:
    """One contrast pair of a prompt set; a pair built from an A/B item has its two answers too."""
    out = {"topic": pair.topic, "positive": pair.positive, "negative": pair.negative}
    if pair.positive_answer is not None and pair.negative_answer is not None:
        out.update(positive_answer=pair.positive_answer, negative_answer=pair.negative_answer)
    return out


def prompt_set_ab_items(prompt_set: Mapping[str, Any]) -> list[ABItem]:
    """The A/B items a prompt set holds (the held-out ones: :attr:`TraitPrompts.scored_items`), or a
    ValueError naming the trait when it has none."""
    items = prompt_set.get("ab_items") or []
    if not items:
        raise ValueError(
            f"the prompt set of trait {prompt_set.get('trait')!r} has no ab_items; expected a trait whose file "
            "gives A/B items (trait file key ab_items)"
        )
    return [ABItem(it["question"], it["answer_matching"], it["answer_not_matching"]) for it in items]


def instructed(prompt: str, pole: str) -> str:
    """``prompt`` with an explicit instruction to respond at one pole of the trait.

    Used where the pole must be known: the per-environment contrast activations (E3) and the
    generations that validate a scorer before it judges anything.
    """
    return f"{prompt} Respond in a clearly {pole} way."


def write_prompt_set(path: str | os.PathLike[str], **kwargs: Any) -> None:
    """Write ``select_prompt_set(**kwargs)`` to ``path`` as JSON, atomically.

    The set is written to ``<path>.tmp-<pid>`` and renamed over ``path``, so a crash never
    leaves a partial file under the final name. Parent directories are created.
    """
    prompt_set = select_prompt_set(**kwargs)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{target}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(prompt_set, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_prompt_set(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a prompt set written by :func:`write_prompt_set`.

    Raises ValueError naming the path when the file is not a prompt set.
    """
    with Path(path).open("r", encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, Mapping):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    missing = [key for key in _PROMPT_SET_KEYS if key not in data]
    if missing:
        raise ValueError(f"{path}: not a prompt set, missing keys {missing}")
    return dict(data)
