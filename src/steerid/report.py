"""results/summary.md: every claim tested, with this run's verdict and numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from steerid.io import atomic_write_text


def _ci(estimate: dict, digits: int = 2) -> str:
    return f"{estimate['value']:.{digits}f} [{estimate['ci_low']:.{digits}f}, {estimate['ci_high']:.{digits}f}]"


def _significant(estimate: dict) -> bool:
    return estimate["ci_low"] > 0 or estimate["ci_high"] < 0


def _e1_rows(result: dict) -> list[str]:
    by_type = result["by_type"]
    delta_v = by_type["v"]["delta"]
    rows = []
    for kind, entry in by_type.items():
        if kind == "v":
            continue
        rows.append(f"| {result['model']} | {result['trait']} | {result['layer']} | {_ci(delta_v, 3)} "
                    f"{'(significant)' if _significant(delta_v) else '(not significant)'} | {kind} | "
                    f"{_ci(entry['delta'], 3)} | {_ci(entry['efficacy_ratio'])} | {_ci(entry['cohens_d'])} |")
    return rows


def _spectrum_rows(spectra: Sequence[dict]) -> list[str]:
    rows = []
    for attrs in spectra:
        ranks = ", ".join(f"{key.removeprefix('rank_fraction_at_')}: {attrs[key]:.3f}"
                          for key in sorted(attrs) if key.startswith("rank_fraction_at_"))
        rows.append(f"| {attrs['model']} | {attrs['layer']} | {attrs['d']} | {attrs['count']} | {ranks} | "
                    f"{attrs['participation_ratio']:.2f} | {attrs['randomized_max_rel_error']:.1e} |")
    return rows


def write_summary(results: Sequence[dict], spectra: Sequence[dict], figures: Sequence[str], output: str) -> None:
    """Write the Markdown summary of E1 and the covariance spectra."""
    lines = [
        "# steerid summary",
        "",
        "## E1: are v and v + δ (δ ⟂ v, ‖δ‖ = ‖v‖) behaviourally equivalent?",
        "",
        "Δ is the mean trait score minus the α = 0 baseline; R = Δ(v+δ)/Δ(v); d is the paired Cohen's d "
        "(d_av) of v+δ against v. Intervals are 95% cluster-bootstrap CIs over prompts. "
        "Equivalence is only meaningful where Δ(v) itself is significant.",
        "",
        "| model | trait | layer | Δ(v) | δ type | Δ(v+δ) | R | d(v, v+δ) |",
        "|---|---|---|---|---|---|---|---|",
        *[row for result in results for row in _e1_rows(result)],
        "",
        "## Activation-covariance spectra",
        "",
        "Effective rank = eigenvalues above a fraction of the largest, as a fraction of d.",
        "",
        "| model | layer | d | tokens | rank fraction by threshold | participation ratio | rSVD vs LAPACK (top-k rel. error) |",
        "|---|---|---|---|---|---|---|",
        *_spectrum_rows(spectra),
        "",
        "## Figures",
        "",
        *[f"- `{figure}`" for figure in figures],
        "",
    ]
    atomic_write_text(output, "\n".join(lines))
