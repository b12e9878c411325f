"""A scorer learnt from the studied model's own text: a logistic probe on MiniLM sentence embeddings.

Where no fixed scorer separates the model's instructed completions well enough (the AUROC gate of
:func:`steerid.scoring.validate_scorer`), the trait can be scored by what separates them: the
validation job asks the unsteered model for completions under each pole's instruction, fits an
L2-regularised logistic regression on the embeddings of half the contrast pairs and validates it
on the completions of the other half, held out by pair (so no topic is on both sides). The fit is
written into the validation record and every score job reads it from there.

What it measures is honest but narrow: how much a completion resembles what this model writes
when told to be at one pole or the other, in MiniLM's embedding space.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

L2 = 1.0
"""Ridge penalty on the weights (not the bias), in units of the summed log-likelihood; the
embeddings are unit vectors, so one value serves every trait."""
MAX_ITERATIONS = 100
MIN_FIT_PAIRS = 4
"""Validation pairs a fitted scorer needs: two to fit it, two to validate it."""


def split_pairs(n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit, held out): a seeded half of the pair indices, and the rest, each ascending."""
    if n_pairs < MIN_FIT_PAIRS:
        raise ValueError(
            f"a fitted scorer needs at least {MIN_FIT_PAIRS} contrast pairs (2 to fit, 2 to validate), got {n_pairs}"
        )
    order = np.random.default_rng(seed).permutation(n_pairs)
    half = n_pairs // 2
    return np.sort(order[:half]), np.sort(order[half:])


def fit_logistic(features: np.ndarray, labels: np.ndarray, l2: float = L2) -> tuple[np.ndarray, float]:
    """Weights and bias maximising Σ log p(label) − l2/2 ‖w‖² by Newton's method (the objective is
    strictly concave, so the optimum is unique even for separable data)."""
    x = np.hstack([np.asarray(features, dtype=np.float64), np.ones((len(features), 1))])
    y = np.asarray(labels, dtype=np.float64)
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    theta = np.zeros(x.shape[1])
    for _ in range(MAX_ITERATIONS):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        gradient = x.T @ (y - p) - penalty * theta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-10 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        theta += step
        if float(np.abs(step).max()) < 1e-10:
            break
    return theta[:-1], float(theta[-1])


class MiniLMProbe:
    """Log-odds of the positive pole under a fitted probe (:func:`fit_probe`)."""

    name = "minilm-probe"

    def __init__(self, trait: str, fit: Mapping[str, Any] | None = None) -> None:
        if fit is None:
            raise ValueError(
                f"scorer {self.name!r} for trait {trait!r} is fitted by its validation job; pass the validation "
                "record's 'fit' (get_scorer(trait, 'minilm-probe', fit=...))"
            )
        self.trait = trait
        self.weights = np.asarray(fit["weights"], dtype=np.float64)
        self.bias = float(fit["bias"])

    def score(self, texts: Sequence[str]) -> np.ndarray:
        from steerid.scoring import get_encoder

        return get_encoder().encode(texts).astype(np.float64) @ self.weights + self.bias


def fit_probe(positive_texts: Sequence[str], negative_texts: Sequence[str]) -> dict[str, Any]:
    """The JSON-able fit of :class:`MiniLMProbe` on completions of each pole."""
    from steerid.scoring import get_encoder

    features = get_encoder().encode([*positive_texts, *negative_texts])
    labels = np.r_[np.ones(len(positive_texts)), np.zeros(len(negative_texts))]
    weights, bias = fit_logistic(features, labels)
    return {"weights": weights.tolist(), "bias": bias, "l2": L2, "n_fit": len(labels)}
