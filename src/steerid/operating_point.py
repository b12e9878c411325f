"""The steering strength a study runs at: a fixed α, or ``auto``, the operating point E2 finds.

``steering.alpha`` is in units of ‖v‖ (the residual gets α·v). With ``auto``, E2's sweep runs
first and E1, E3, E5 and E7 (and E4's distances) run at the strongest swept α at which v moves
the score toward its positive pole significantly and the text stays fluent (E2's operational
range, :func:`steerid.stats.analysis.alpha_curves`). E2 writes its choice into its stats record
(:func:`choose`); the model jobs read it back (:func:`resolve`), so a new sweep reruns them.

A sweep with no operational α falls back to v at its natural norm (α = 1) and says so: the
study still runs, and every record states where its α came from. Likelihood-scored traits have
no generations and so no sweep; ``auto`` is α = 1 there too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

AUTO = "auto"
NATURAL_NORM = 1.0


@dataclass(frozen=True)
class OperatingPoint:
    """α in units of ‖v‖ and, in words, where it came from."""

    alpha: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose(by_alpha: Sequence[Mapping[str, Any]], units: str) -> OperatingPoint:
    """The strongest operational α of E2's rows (each with ``alpha``, ``alpha_in_v_norms`` and
    ``operational``), or v at its natural norm when none is."""
    operational = [row for row in by_alpha if row["operational"]]
    if not operational:
        return OperatingPoint(
            NATURAL_NORM,
            "auto: no swept α moved the score toward the positive pole significantly while fluent; "
            "v at its natural norm",
        )
    row = max(operational, key=lambda r: r["alpha"])
    return OperatingPoint(
        float(row["alpha_in_v_norms"]),
        f"auto: E2's strongest significant and fluent α = {row['alpha']:g} × {units}",
    )


def resolve(alpha: float | str | None, e2_stats: str | None = None) -> OperatingPoint | None:
    """The strength a job steers at: ``alpha`` as given, or with ``auto`` the choice recorded in
    ``e2_stats`` (a generation trait's E2 stats JSON; None for a likelihood-scored trait, which has
    no sweep). None: the job sweeps α itself (E2)."""
    if alpha is None:
        return None
    if alpha != AUTO:
        if isinstance(alpha, str):
            raise ValueError(f"steering.alpha {alpha!r} is neither a number nor {AUTO!r}")
        return OperatingPoint(float(alpha), "steering.alpha")
    if not e2_stats:
        return OperatingPoint(NATURAL_NORM, "auto: no E2 sweep for a likelihood-scored trait; v at its natural norm")
    record = json.loads(Path(e2_stats).read_text())
    if "operating_point" not in record:
        raise ValueError(f"{e2_stats} has no operating_point; expected the stats of E2 written by this version")
    return OperatingPoint(**record["operating_point"])
