"""The study's outputs for readers: each experiment's figure, and results/summary.md.

The summary first answers the paper claim by claim, in the order of the experiment registry, then
gives the tables behind the answers. Equivalence verdicts are Holm-corrected across all (model,
trait, δ-type) cells, and a verdict judged by a scorer that failed its validation is marked as such.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from steerid import store
from steerid.engine.site import site_label, stored_site
from steerid.experiments import EXPERIMENTS
from steerid.experiments.e1_orthogonal import corrected_verdicts
from steerid.experiments.paper_claims import Grid, paragraphs
from steerid.io import atomic_write_text
from steerid.linalg import spectrum
from steerid.pipeline import plots

SPECTRUM_INTRO = (
    "Effective ranks as a fraction of d by several definitions: eigenvalues above a fraction of λ₁, the fewest "
    "eigenvalues explaining a fraction of the variance, and the participation ratio (Σλ)²/Σλ². `excluding_sinks` "
    "drops the attention-sink positions, whose outsized variance makes λ₁-relative ranks collapse to 1."
)


def figure(figure: str, stats: Sequence[str], dpi: int, outputs: Sequence[str]) -> None:
    """Experiment ``figure``'s figure from its stats JSONs, saved to every output."""
    results = [json.loads(Path(path).read_text()) for path in stats]
    plots.save(EXPERIMENTS[figure].figure(results), outputs, dpi)


def summary(
    validations: Sequence[str], spectra: Sequence[str], figures: Sequence[str], output: str, **stats: Sequence[str]
) -> None:
    """results/summary.md from every experiment's stats JSONs (``stats``: experiment name → files), the scorer
    validations and the steering layers' spectra."""
    results = {name: [json.loads(Path(f).read_text()) for f in files] for name, files in stats.items()}
    checks = [json.loads(Path(f).read_text()) for f in validations]
    write_summary(results, checks, [spectrum_summaries(f) for f in spectra], figures, output)


def spectrum_summaries(path: str) -> dict:
    """Model, layer, and the summary attributes of each spectrum view of one spectra file."""
    with store.open_complete(path) as handle:
        views = {view: {key: _plain(value) for key, value in handle[view].attrs.items()} for view in spectrum.VIEWS}
        return {"model": str(handle.attrs["model"]), "layer": int(handle.attrs["layer"]), "views": views}


def _plain(value):
    return (
        value.item() if isinstance(value, np.generic) else (value.tolist() if isinstance(value, np.ndarray) else value)
    )


def claims(results: Mapping[str, Sequence[Any]], corrected: Mapping[str, dict]) -> list[str]:
    """One bullet per claim of the paper: what it says, and what this run found."""
    lines = ["## Each claim, cell by cell", ""]
    for name, experiment in EXPERIMENTS.items():
        for title, findings in experiment.claims(results.get(name, []), corrected):
            lines += _claim(title, findings)
    return lines


def _claim(title: str, findings: Sequence[str]) -> list[str]:
    return [f"**{title}.**", "", *[f"- {finding}" for finding in findings or ["not run"]], ""]


def _auroc_interval(check: Mapping) -> str:
    interval = check.get("auroc_ci")
    return "—" if interval is None else f"[{interval[0]:.3f}, {interval[1]:.3f}]"


def _validated_on(check: Mapping) -> str:
    if "fit" in check:
        return f"{check['n']} held-out texts ({len(check['fit_pairs'])} other pairs fitted it)"
    return f"{check['n']}"


def validation_section(checks: Sequence[Mapping]) -> list[str]:
    rows = [
        f"| {c['model']} | {c['trait']} | {c['scorer']} | {c['auroc']:.3f} | {_auroc_interval(c)} | "
        f"{_validated_on(c)} | {c['min_auroc']:.2f} | {'valid' if c['valid'] else '**invalid**'} |"
        for c in checks
    ]
    return [
        "## Scorer validation",
        "",
        "Each scorer first judges completions of the unsteered model under explicit instructions for either "
        "pole (only the completion is scored); a fitted scorer is judged on pairs it was not fitted on.",
        "",
        "| model | trait | scorer | AUROC | 95 % CI | n | minimum | status |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def vectors_section(results: Mapping[str, Sequence[Any]]) -> list[str]:
    """Where each studied v came from (extracted or imported), as every stats record's header names it."""
    cells = {
        (r["model"], site_label(stored_site(r["layer"])), r["trait"]): (
            r["vector_source"],
            r["v_norm"],
            r["mean_residual_norm"],
        )
        for records in results.values()
        for r in records
        if "vector_source" in r
    }
    strengths = {
        (r["model"], site_label(stored_site(r["layer"])), r["trait"]): f"{r['alpha']:.3g} ({r['alpha_source']})"
        for records in results.values()
        for r in records
        if r.get("alpha") is not None and "alpha_source" in r
    }
    rows = [
        f"| {model} | {layer} | {trait} | {source} | {norm:.3g} | {residual:.3g} | "
        f"{strengths.get((model, layer, trait), '—')} |"
        for (model, layer, trait), (source, norm, residual) in sorted(cells.items())
    ]
    return [
        "## Steering vectors",
        "",
        "The v each experiment steered with, where it came from, and the strength α the fixed-α experiments "
        "(E1, E3, E5, E7) added it at. Each is also written as a GGUF control vector "
        "and as safetensors next to its HDF5 file (`results/<model>/vectors/L<layer>/<trait>.gguf`).",
        "",
        "| model | layer | trait | v | ‖v‖ | mean ‖h‖ | α in ‖v‖ (where from) |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _fraction_columns(views: Mapping) -> list[str]:
    first = next(iter(views.values()))
    return sorted(key for key in first if key.startswith("fraction_of_d_"))


def spectrum_section(spectra: Sequence[Mapping]) -> list[str]:
    if not spectra:
        return []
    columns = _fraction_columns(spectra[0]["views"])
    header = " | ".join(c.removeprefix("fraction_of_d_").replace("_", " ") for c in columns)
    rows = [
        f"| {s['model']} | {s['layer']} | {view} | {attrs['count']} | {attrs['top_eigenvalue_ratio']:.3g} | "
        + " | ".join(f"{attrs[c]:.3f}" for c in columns)
        + f" | {attrs['participation_ratio']:.1f} |"
        for s in spectra
        for view, attrs in s["views"].items()
    ]
    return [
        "## Activation-covariance spectra at the steering layer",
        "",
        SPECTRUM_INTRO,
        "",
        f"| model | layer | tokens used | count | λ₁/λ₂ | {header} | participation ratio |",
        "|---|---|---|---|---|" + "---|" * len(columns) + "---|",
        *rows,
        "",
    ]


def write_summary(
    results: Mapping[str, Sequence[Any]],
    checks: Sequence[Mapping],
    spectra: Sequence[Mapping],
    figures: Sequence[str],
    output: str,
) -> None:
    """Write the Markdown summary: the claims, then the tables behind them, then the figures."""
    corrected = corrected_verdicts(results.get("e1", []))
    lines = [
        "# steerid summary",
        "",
        *paragraphs(Grid(results, corrected, checks)),
        *claims(results, corrected),
        *vectors_section(results),
        *validation_section(checks),
        *[
            line
            for name, experiment in EXPERIMENTS.items()
            if experiment.section
            for line in experiment.section(results.get(name, []), corrected)
        ],
        *spectrum_section(spectra),
        "## Figures",
        "",
        *[f"- `{figure}`" for figure in figures],
        "",
    ]
    atomic_write_text(output, "\n".join(lines))
