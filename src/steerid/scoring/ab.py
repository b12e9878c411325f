"""A researcher's own trait given as A/B items, scored by the steered model's likelihood (``ab-likelihood``).

An A/B item (the format of CAA, Rimsky et al. 2024, and of Anthropic's model-written evals) is a
question and two answers, one matching the behaviour, the trait's positive pole. Under a condition
its score is logP(matching answer | question) − logP(not matching answer | question) with the
condition's vector added: the question is the user turn of the model's chat template when it has
one, as every steerid prompt is, and the answer starts the model's reply
(:func:`steerid.engine.models.answered_prompt_ids`); the answer's tokens are scored and summed (the
log-probability of the whole answer: with CAA's letter answers, "(A)" and "(B)", both have the same
number of tokens; answers of different lengths favour the shorter one), the question's are not.
Every position is steered, as for truthfulness (:mod:`steerid.scoring.truthfulness`): in one
teacher-forced forward the last position is the answer's last token, so adding the vector there
alone would change no scored log-probability. Nothing is generated; the trait gets the
``statement-likelihood`` measurement (E1, E5, E6, E7, E8 on the held-out items).

The scored items are the prompt set's ``ab_items``: those that did not build v
(:func:`steerid.prompts.split_ab_items`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from steerid.engine.site import Layers
from steerid.prompts import POLES, ABItem, instructed, prompt_set_ab_items
from steerid.scoring import paired_validation_record

STEERED_POSITIONS = "all"


class ABLikelihood:
    """The steered model's preference for the matching answer of A/B items (see the module docstring).

    ``score_items(items, delta, layer)`` is, per item, logP(matching | question) −
    logP(not matching | question): positive when the model prefers the answer that shows the
    behaviour. ``delta`` and ``layer`` steer every position (question and answer), rescaled to the
    residual's norm with ``norm_preserving``; None = the unsteered model.
    """

    name = "ab-likelihood"

    def __init__(self, model, tokenizer, norm_preserving: bool = False) -> None:
        if model is None or tokenizer is None:
            raise ValueError("ABLikelihood needs the causal LM and its tokenizer, got None")
        self.model = model
        self.tokenizer = tokenizer
        self.norm_preserving = norm_preserving

    def answer_logprobs(
        self, questions: Sequence[str], answers: Sequence[str], delta=None, layer: Layers | None = None
    ) -> np.ndarray:
        """Per (question, answer), log p(answer | question): the sum over the answer's tokens."""
        from steerid.engine.models import answered_prompt_ids
        from steerid.engine.teacher import continuation_logprobs

        if len(questions) != len(answers) or not questions:
            raise ValueError(f"{len(questions)} questions and {len(answers)} answers: expected as many, at least one")
        encoded = [answered_prompt_ids(self.tokenizer, q, a) for q, a in zip(questions, answers)]
        logprobs = continuation_logprobs(
            self.model,
            [context for context, _ in encoded],
            [reply for _, reply in encoded],
            delta=delta,
            layer=layer,
            positions=STEERED_POSITIONS,
            norm_preserving=self.norm_preserving,
        )
        return np.array([values.numpy().astype(np.float64).sum() for values in logprobs], dtype=np.float64)

    def score_items(self, items: Sequence[ABItem], delta=None, layer: Layers | None = None) -> np.ndarray:
        """Per item, logP(matching answer | question) − logP(not matching answer | question)."""
        items = list(items)
        if not items:
            raise ValueError("ab-likelihood needs at least one A/B item, got none")
        questions = [item.question for item in items] * 2
        answers = [item.answer_matching for item in items] + [item.answer_not_matching for item in items]
        both = self.answer_logprobs(questions, answers, delta, layer)
        return both[: len(items)] - both[len(items) :]

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """Not a text scorer: it scores A/B items (:meth:`score_items`); a trait it scores generates no text."""
        raise ValueError(
            "scorer 'ab-likelihood' scores A/B items, not texts: use score_items(items, delta, layer) "
            "(the workflow measures its trait by likelihood, without generations)"
        )


def steered_preferences(
    model,
    tokenizer,
    layer: Layers,
    items: Sequence[ABItem],
    named: Mapping[str, torch.Tensor],
    norm_preserving: bool = False,
) -> dict[str, np.ndarray]:
    """Per condition, each item's logP(matching) − logP(not matching) with that condition's vector
    added at every position of the output of decoder ``layer``."""
    likelihood = ABLikelihood(model, tokenizer, norm_preserving=norm_preserving)
    return {name: likelihood.score_items(items, delta, layer) for name, delta in named.items()}


def prompt_set_preferences(
    model,
    tokenizer,
    layer: Layers,
    prompt_set: Mapping[str, Any],
    named: Mapping[str, torch.Tensor],
    norm_preserving: bool = False,
) -> dict[str, np.ndarray]:
    """:func:`steered_preferences` of a prompt set's held-out A/B items (its ``ab_items``)."""
    return steered_preferences(model, tokenizer, layer, prompt_set_ab_items(prompt_set), named, norm_preserving)


def instructed_prompt_set(prompt_set: Mapping[str, Any], pole: str) -> dict[str, Any]:
    """The prompt set with each held-out A/B item's question asking for ``pole`` (``positive`` or
    ``negative``) in the words of the trait's pole name, as the text scorers' validation asks."""
    if pole not in POLES:
        raise ValueError(f"pole {pole!r}: expected one of {POLES}")
    words = prompt_set[f"{pole}_pole"]
    items = [{**item, "question": instructed(item["question"], words)} for item in prompt_set["ab_items"]]
    return {**prompt_set, "ab_items": items}


def paired_validation(differences: np.ndarray, min_auroc: float) -> dict:
    """The ab-likelihood scorer's check before it judges: does its score follow what the model is told?

    Per held-out item, the unsteered model's preference logP(matching) − logP(not matching) when the
    question asks for the positive pole minus that when it asks for the negative one; the AUROC of
    this paired design is P(difference > 0) over the items (ties count one half), held to
    ``scoring.min_auroc`` as a text scorer's AUROC on instructed completions is. An answer-length
    bias cancels in the difference, and the gate does not ask the unsteered model to lean to either
    pole (SmolLM2-135M-Instruct prefers the polite reply of only half the politeness items, yet moves
    toward it on 30 of 32 when asked to be polite).
    """
    return paired_validation_record(
        ABLikelihood.name,
        "paired: P(preference when asked for the positive pole > preference when asked for the negative pole) "
        "over held-out A/B items, unsteered model; preference = logP(matching answer) − logP(not matching answer)",
        differences,
        min_auroc,
    )
