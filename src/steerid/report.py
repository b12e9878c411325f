"""results/summary.md: every claim tested, one section per model, with this run's numbers."""

from __future__ import annotations

from typing import Sequence

from steerid.io import atomic_write_text

E1_INTRO = (
    "Δ is the mean trait score minus the α = 0 baseline; R = Δ(v+δ)/Δ(v); d is the paired Cohen's d "
    "(d_av) of v+δ against v; δ ⟂ v with ‖δ‖ = ‖v‖. Intervals are 95% cluster-bootstrap CIs over prompts. "
    "The verdict comes from a paired TOST of v+δ against v on prompt means (margin: a multiple of the baseline "
    "SD, stated in the stats JSON) with the design's power; equivalence is only claimed where Δ(v) itself is "
    "significant. The top-variance δ is the positive control."
)
SPECTRUM_INTRO = (
    "Effective ranks of the activation covariance as a fraction of d, by several definitions: eigenvalues above "
    "a fraction of λ₁, the fewest eigenvalues explaining a fraction of the variance, and the participation ratio "
    "(Σλ)²/Σλ². `excluding_sinks` drops the attention-sink positions, whose outsized variance makes λ₁-relative "
    "ranks collapse to 1."
)


def _ci(estimate: dict, digits: int = 2) -> str:
    return f"{estimate['value']:.{digits}f} [{estimate['ci_low']:.{digits}f}, {estimate['ci_high']:.{digits}f}]"


def _significant(estimate: dict) -> bool:
    return estimate["ci_low"] > 0 or estimate["ci_high"] < 0


def _e1_rows(result: dict) -> list[str]:
    delta_v = result["by_type"]["v"]["delta"]
    significance = "significant" if _significant(delta_v) else "not significant"
    equivalence = result["equivalence"]["by_type"]
    return [
        f"| {result['trait']} | {result['layer']} | {_ci(delta_v, 3)} ({significance}) | {kind} | "
        f"{_ci(entry['delta'], 3)} | {_ci(entry['efficacy_ratio'])} | {_ci(entry['cohens_d'])} | "
        f"{equivalence[kind]['tost']['p']:.3f} | {equivalence[kind]['power']['power']:.2f} | "
        f"**{equivalence[kind]['verdict']}** |"
        for kind, entry in result["by_type"].items()
        if kind != "v"
    ]


def _fraction_columns(views: dict) -> list[str]:
    first = next(iter(views.values()))
    return sorted(key for key in first if key.startswith("fraction_of_d_"))


def _spectrum_rows(spectrum: dict, columns: Sequence[str]) -> list[str]:
    rows = []
    for view, attrs in spectrum["views"].items():
        fractions = " | ".join(f"{attrs[c]:.3f}" for c in columns)
        rows.append(f"| {spectrum['layer']} | {view} | {attrs['count']} | {attrs['top_eigenvalue_ratio']:.3g} | "
                    f"{fractions} | {attrs['participation_ratio']:.1f} | {attrs['randomized_max_rel_error']:.1e} |")
    return rows


def _spectrum_table(spectra: Sequence[dict]) -> list[str]:
    if not spectra:
        return []
    columns = _fraction_columns(spectra[0]["views"])
    header = " | ".join(c.removeprefix("fraction_of_d_").replace("_", " ") for c in columns)
    return [
        f"| layer | tokens used | count | λ₁/λ₂ | {header} | participation ratio | rSVD top-k rel. error |",
        "|---|---|---|---|" + "---|" * len(columns) + "---|---|",
        *[row for spectrum in spectra for row in _spectrum_rows(spectrum, columns)],
    ]


def _model_section(model: str, results: Sequence[dict], spectra: Sequence[dict]) -> list[str]:
    return [
        f"## {model}",
        "",
        "### E1: are v and v + δ behaviourally equivalent?",
        "",
        E1_INTRO,
        "",
        "| trait | layer | Δ(v) | δ type | Δ(v+δ) | R | d(v, v+δ) | TOST p | power | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[row for result in results for row in _e1_rows(result)],
        "",
        "### Activation-covariance spectra",
        "",
        SPECTRUM_INTRO,
        "",
        *_spectrum_table(spectra),
        "",
    ]


def write_summary(results: Sequence[dict], spectra: Sequence[dict], figures: Sequence[str], output: str) -> None:
    """Write the Markdown summary: one section per model, then the figures."""
    models = list(dict.fromkeys([r["model"] for r in results] + [s["model"] for s in spectra]))
    lines = ["# steerid summary", ""]
    for model in models:
        lines += _model_section(model, [r for r in results if r["model"] == model],
                                [s for s in spectra if s["model"] == model])
    lines += ["## Figures", "", *[f"- `{figure}`" for figure in figures], ""]
    atomic_write_text(output, "\n".join(lines))
