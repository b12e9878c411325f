"""How the summary writes numbers, cells and δ-types: shared by every experiment's claims and tables."""

from __future__ import annotations

import math
from collections.abc import Mapping

from steerid.conditions import PERTURBATION_KINDS, pooled
from steerid.scoring.measurements import measured_in

# The primary equivalence margin: the baseline's between-prompt SD (the other is 10 % of Δ(v)).
MARGIN = "baseline_sd"
TYPE_NAMES = {pooled(kind.name): kind.report_label for kind in PERTURBATION_KINDS.values()}


def ci(estimate: Mapping, digits: int = 2) -> str:
    low, high = (_bound(estimate[key], digits) for key in ("ci_low", "ci_high"))
    return f"{estimate['value']:.{digits}f} [{low}, {high}]"


def _bound(value: float, digits: int) -> str:
    """An interval bound; an unbounded side (a ratio's Fieller interval) as -∞ or ∞."""
    return ("-∞" if value < 0 else "∞") if math.isinf(value) else f"{value:.{digits}f}"


def cell(result: Mapping) -> str:
    return f"{result['model']}/{result['trait']}"


def units(result: Mapping) -> str:
    return measured_in(result.get("environments", [])).units(result["n_prompts"], result.get("n_samples", 1))


def scorer_note(result: Mapping) -> str:
    return "" if result["scorer_validation"]["valid"] else " (scorer invalid)"


def short_kind(kind: str) -> str:
    """A δ-type's report label without its parenthesised detail."""
    return TYPE_NAMES.get(kind, kind).split(" (")[0]
