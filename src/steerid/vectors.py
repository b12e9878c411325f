"""Steering vectors from contrast activations."""

from __future__ import annotations

import numpy as np


def mean_difference(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """v = mean(positive) − mean(negative), in float64, at its natural (unnormalised) norm."""
    positive, negative = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if positive.ndim != 2 or positive.shape[1:] != negative.shape[1:] or len(negative) == 0 or len(positive) == 0:
        raise ValueError(
            f"contrast activations must be non-empty (n, d) arrays of equal d; got {positive.shape} and {negative.shape}"
        )
    return positive.mean(axis=0) - negative.mean(axis=0)


def mean_norm(activations: np.ndarray) -> float:
    """Mean Euclidean norm of activation rows: the natural unit for steering strengths."""
    return float(np.linalg.norm(np.asarray(activations, np.float64), axis=1).mean())
