"""Trait prompt sets written for this project.

Each trait (formality, politeness, sentiment, truthfulness, agreeableness) has a JSON file
under ``steerid/data/prompts`` with:

* contrast ``pairs``: the same instruction asking for the positive and for the negative pole
  of the trait on one topic (used to extract steering vectors);
* held-out ``eval`` prompts per environment (``in_distribution``, ``topic_shift``,
  ``genre_shift``) that are neutral about the trait and whose topics are disjoint from the
  extraction topics (used for steered generation);
* ``exemplars``: sentences that clearly show each pole (used to validate scorers);
* ``statements`` (truthfulness only): true / minimally different false sentence pairs.

``background.json`` holds neutral texts from many domains for the activation covariance.

:func:`select_prompt_set` draws a deterministic subset for one experiment, and
:func:`write_prompt_set` / :func:`read_prompt_set` move it to and from disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

TRAITS: tuple[str, ...] = ("formality", "politeness", "sentiment", "truthfulness", "agreeableness")
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
    """One extraction pair: the same instruction asking for each pole of a trait on one topic."""

    topic: str
    positive: str
    negative: str


@dataclass(frozen=True)
class TraitPrompts:
    """Everything written for one trait, as loaded from its packaged JSON file."""

    trait: str
    description: str
    positive_pole: str
    negative_pole: str
    pairs: tuple[ContrastPair, ...]
    eval: dict[str, tuple[str, ...]]
    exemplars: dict[str, tuple[str, ...]]
    statements: tuple[tuple[str, str], ...] = ()


def _read_packaged_json(name: str) -> dict[str, Any]:
    """Read ``steerid/data/prompts/<name>.json`` from the installed package."""
    resource = resources.files(_DATA_PACKAGE)
    for part in (*_DATA_DIR, f"{name}.json"):
        resource = resource / part
    with resource.open("r", encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"prompt file {name}.json: expected a JSON object, got {type(data).__name__}")
    return data


def _check_trait(trait: str) -> None:
    """Raise ValueError naming ``trait`` when it is not one of :data:`TRAITS`."""
    if trait not in TRAITS:
        raise ValueError(f"unknown trait {trait!r}; expected one of {', '.join(TRAITS)}")


def _string_tuple(value: Any, where: str) -> tuple[str, ...]:
    """Return ``value`` as a tuple of non-empty strings, or raise ValueError naming ``where``."""
    if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
        raise ValueError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def _parse_pairs(raw: Any, trait: str) -> tuple[ContrastPair, ...]:
    """Build the contrast pairs of one trait file."""
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{trait}.json: 'pairs' must be a non-empty list")
    pairs = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("topic", "positive", "negative")
        ):
            raise ValueError(f"{trait}.json: pairs[{i}] must have string fields topic, positive, negative")
        pairs.append(ContrastPair(topic=item["topic"], positive=item["positive"], negative=item["negative"]))
    return tuple(pairs)


def _parse_statements(raw: Any, trait: str) -> tuple[tuple[str, str], ...]:
    """Build the (true, false) statement pairs; absent means none."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ValueError(f"{trait}.json: 'statements' must be a list")
    out = []
    for i, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("true"), str)
            or not isinstance(item.get("false"), str)
        ):
            raise ValueError(f"{trait}.json: statements[{i}] must have string fields true and false")
        out.append((item["true"], item["false"]))
    return tuple(out)


def load_trait(trait: str) -> TraitPrompts:
    """Load the packaged prompt file of ``trait``.

    Raises ValueError for a trait not in :data:`TRAITS` or a malformed file.
    """
    _check_trait(trait)
    data = _read_packaged_json(trait)
    if data.get("trait") != trait:
        raise ValueError(f"{trait}.json: 'trait' field is {data.get('trait')!r}, expected {trait!r}")
    raw_eval = data.get("eval")
    if not isinstance(raw_eval, dict) or set(raw_eval) != set(ENVIRONMENTS):
        raise ValueError(f"{trait}.json: 'eval' must have exactly the environments {', '.join(ENVIRONMENTS)}")
    raw_ex = data.get("exemplars")
    if not isinstance(raw_ex, dict) or set(raw_ex) != set(POLES):
        raise ValueError(f"{trait}.json: 'exemplars' must have exactly the keys {', '.join(POLES)}")
    return TraitPrompts(
        trait=trait,
        description=str(data.get("description", "")),
        positive_pole=str(data["positive_pole"]),
        negative_pole=str(data["negative_pole"]),
        pairs=_parse_pairs(data.get("pairs"), trait),
        eval={env: _string_tuple(raw_eval[env], f"{trait}.json eval.{env}") for env in ENVIRONMENTS},
        exemplars={pole: _string_tuple(raw_ex[pole], f"{trait}.json exemplars.{pole}") for pole in POLES},
        statements=_parse_statements(data.get("statements"), trait),
    )


def load_background() -> tuple[str, ...]:
    """Load the neutral multi-domain texts used for the activation covariance."""
    data = _read_packaged_json("background")
    return _string_tuple(data.get("texts"), "background.json texts")


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
    Exemplars and statements are included in full.

    Raises ValueError naming the value for an unknown trait or environment, or an
    ``n_pairs`` / ``n_eval`` below 1 or above what exists.
    """
    _check_trait(trait)
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
    return {
        "trait": trait,
        "description": prompts.description,
        "positive_pole": prompts.positive_pole,
        "negative_pole": prompts.negative_pole,
        "seed": seed,
        "pairs": [{"topic": p.topic, "positive": p.positive, "negative": p.negative} for p in pairs],
        "eval": {env: [prompts.eval[env][i] for i in eval_orders[env][:n_eval]] for env in envs},
        "exemplars": {pole: list(texts) for pole, texts in prompts.exemplars.items()},
        "statements": [{"true": t, "false": f} for t, f in prompts.statements],
    }


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
