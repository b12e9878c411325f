"""Trait scorers behind one interface: ``score(texts) -> (n,) float array``, higher = positive pole."""

from __future__ import annotations

from typing import Callable, Protocol, Sequence

import numpy as np


class Scorer(Protocol):
    """Scores texts for one trait; larger means closer to the trait's positive pole."""

    name: str

    def score(self, texts: Sequence[str]) -> np.ndarray: ...


class VaderSentiment:
    """VADER compound polarity in [-1, 1] (Hutto & Gilbert 2014): a human-validated lexicon."""

    name = "vader"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self._analyzer.polarity_scores(text)["compound"] for text in texts], dtype=np.float64)


SCORERS: dict[str, Callable[[], Scorer]] = {"vader": VaderSentiment}
TRAIT_SCORERS: dict[str, tuple[str, ...]] = {"sentiment": ("vader",)}


def get_scorer(trait: str, name: str) -> Scorer:
    """The scorer ``name`` for ``trait``, or a ValueError naming what exists."""
    if name not in TRAIT_SCORERS.get(trait, ()):
        raise ValueError(
            f"scorer {name!r} is not available for trait {trait!r}; available: {TRAIT_SCORERS.get(trait, ())}"
        )
    return SCORERS[name]()
