"""One function per figure; matplotlib only, written atomically as PNG (and PDF)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from steerid.io import atomic_path  # noqa: E402

TYPE_LABELS = {"v+orthogonal": "v + δ random ⊥ v", "v+null": "v + δ low-variance", "v+top": "v + δ top-variance"}
EQUIVALENCE_D = 0.2


def _interval_bars(axis, entries: Sequence[dict], labels: Sequence[str], colour: str) -> None:
    values = [e["value"] for e in entries]
    errors = [[e["value"] - e["ci_low"] for e in entries], [e["ci_high"] - e["value"] for e in entries]]
    axis.bar(range(len(values)), values, yerr=errors, capsize=4, color=colour, alpha=0.8)
    axis.set_xticks(range(len(values)), labels, rotation=20, ha="right")


def _save(figure, output: str | Path, dpi: int) -> None:
    with atomic_path(output) as temporary:
        figure.savefig(temporary, dpi=dpi, format=Path(output).suffix.lstrip("."), bbox_inches="tight")
    plt.close(figure)


def e1_orthogonal(results: Sequence[dict], output: str | Path, dpi: int = 150) -> None:
    """Per (model, trait): efficacy ratio R = Δ(v+δ)/Δ(v) and paired d(v, v+δ) with 95% CIs per δ-type."""
    figure, axes = plt.subplots(len(results), 2, figsize=(9, 3.4 * len(results)), squeeze=False)
    for row, result in zip(axes, results):
        kinds = [k for k in TYPE_LABELS if k in result["by_type"]]
        labels = [TYPE_LABELS[k] for k in kinds]
        _interval_bars(row[0], [result["by_type"][k]["efficacy_ratio"] for k in kinds], labels, "#3b6fb6")
        row[0].axhline(1.0, color="black", lw=1, ls="--")
        row[0].set_ylabel("efficacy ratio R")
        delta = result["by_type"]["v"]["delta"]
        row[0].set_title(f"{result['model']} · {result['trait']} · L{result['layer']}\n"
                         f"Δ(v) = {delta['value']:.3f} [{delta['ci_low']:.3f}, {delta['ci_high']:.3f}]", fontsize=9)
        _interval_bars(row[1], [result["by_type"][k]["cohens_d"] for k in kinds], labels, "#d9822b")
        row[1].axhspan(-EQUIVALENCE_D, EQUIVALENCE_D, color="grey", alpha=0.2, label=f"|d| < {EQUIVALENCE_D}")
        row[1].axhline(0, color="black", lw=1)
        row[1].set_ylabel("paired Cohen's d vs v")
        row[1].legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    _save(figure, output, dpi)
