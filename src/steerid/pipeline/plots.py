"""One function per figure: stats dicts (one per (model, trait), as the stats stages write them) in, a Figure out.

Every figure function takes the parsed stats JSONs of one experiment and returns a matplotlib
Figure with one row of panels per result, so a figure never depends on files or on the workflow;
:func:`save` writes it atomically to every requested path. Each experiment's record
(:mod:`steerid.experiments`) names its figure function.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from steerid.conditions import PERTURBATION_KINDS, pooled
from steerid.engine.site import site_label, stored_site
from steerid.experiments.records import (
    E1Stats,
    E2Stats,
    E3Stats,
    E4Stats,
    E5Stats,
    E6Stats,
    E7Stats,
    E8Stats,
    E9Stats,
    E10Stats,
)
from steerid.io import atomic_path
from steerid.linalg import singular_values_from_eigenvalues
from steerid.stats import MARGIN_TOO_WIDE

# δ-types in the order they are drawn; a result shows the ones it has (e.g. "v+other" needs several traits).
TYPE_LABELS = {pooled(kind.name): kind.figure_label for kind in PERTURBATION_KINDS.values()}
# Verdicts are long sentences; bars only have room for a word.
SHORT_VERDICTS = {
    "equivalent": "equiv.",
    "not equivalent": "not equiv.",
    "inconclusive (underpowered)": "underpowered",
    "inconclusive": "inconcl.",
    MARGIN_TOO_WIDE: "margin ≥ Δ(v)",
    "no effect of v": "no effect",
}
# E6 sweeps relative rank thresholds over this range to show how arbitrary a single cut-off is.
THRESHOLD_GRID = np.logspace(-4, np.log10(0.5), 60)
PANEL_WIDTH, PANEL_HEIGHT = 4.6, 3.3


# --------------------------------------------------------------------------- shared helpers


def _grid(n_rows: int, n_cols: int) -> tuple[Figure, np.ndarray]:
    """A figure with one row of panels per result; constrained layout leaves room for colour bars."""
    figure, axes = plt.subplots(
        max(n_rows, 1),
        n_cols,
        figsize=(PANEL_WIDTH * n_cols, PANEL_HEIGHT * max(n_rows, 1)),
        squeeze=False,
        layout="constrained",
    )
    return figure, axes


def _title(result: Mapping) -> str:
    # E6 spans several layers, so "layer" is legitimately absent there.
    layer = f" · L{site_label(stored_site(result['layer']))}" if "layer" in result else ""
    return f"{result['model']} · {result['trait']}{layer}"


def _ci(estimate: Mapping) -> str:
    return f"{estimate['value']:.3f} [{estimate['ci_low']:.3f}, {estimate['ci_high']:.3f}]"


def _errors(entries: Sequence[Mapping]) -> np.ndarray:
    """Asymmetric error bars; undefined (nan) or unbounded (inf, a ratio whose denominator is not
    significant) CI bounds draw no bar rather than failing or stretching the axis.

    A percentile bootstrap interval need not contain the point estimate, and matplotlib rejects
    negative bar lengths, so the side that the estimate lies beyond is drawn as 0.
    """
    values = np.array([e["value"] for e in entries], dtype=float)
    low = np.array([e["ci_low"] for e in entries], dtype=float)
    high = np.array([e["ci_high"] for e in entries], dtype=float)
    lengths = np.stack([values - low, high - values])
    return np.clip(np.where(np.isfinite(lengths), lengths, 0.0), 0.0, None)


def _interval_bars(axis, entries: Sequence[Mapping], labels: Sequence[str], colour: str):
    values = [e["value"] for e in entries]
    bars = axis.bar(range(len(values)), values, yerr=_errors(entries), capsize=4, color=colour, alpha=0.8)
    axis.set_xticks(range(len(values)), labels, rotation=20, ha="right")
    return bars


def _interval_curve(axis, x: Sequence[float], entries: Sequence[Mapping], label: str) -> None:
    """A point estimate per x with its 95% CI as a band."""
    values = [e["value"] for e in entries]
    (line,) = axis.plot(x, values, marker="o", ms=4, label=label)
    axis.fill_between(
        x, [e["ci_low"] for e in entries], [e["ci_high"] for e in entries], color=line.get_color(), alpha=0.2, lw=0
    )


def _kinds(by_type: Mapping) -> list[str]:
    return [kind for kind in TYPE_LABELS if kind in by_type]


def _margin_in_sd(result: Mapping) -> float:
    """The baseline-SD margin as a multiple of the SD.

    The margin itself is in score units (TOST on prompt means); the d panel shows it as ±fraction,
    which is its size in d units when SD(v) ≈ SD(baseline).
    """
    return float(result["margins"]["baseline_sd"]["fraction"])


def _heatmap(axis, matrix: np.ndarray, rows: Sequence[str], columns: Sequence[str], label: str) -> None:
    """Diverging colours centred on 0, every cell annotated (colour alone hides the sign of small values)."""
    limit = float(np.nanmax(np.abs(matrix))) if np.isfinite(matrix).any() else 0.0
    limit = limit if limit > 0 else 1.0  # an all-zero (or all-nan) map still needs a colour scale
    image = axis.imshow(matrix, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axis.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    axis.set_yticks(range(len(rows)), rows)
    for (i, j), value in np.ndenumerate(matrix):
        axis.text(
            j,
            i,
            f"{value:.2f}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if abs(value) > 0.6 * limit else "black",
        )  # legible on the saturated ends
    axis.figure.colorbar(image, ax=axis, shrink=0.8, label=label)


def _positive(values: Sequence[float]) -> np.ndarray:
    """Values for a log axis: round-off negatives and zeros of a PSD spectrum become gaps, not errors."""
    array = np.asarray(values, dtype=float)
    return np.where(array > 0, array, np.nan)


def _thresholds(summary: Mapping) -> list[float]:
    """The relative rank thresholds a spectrum summary was computed at (keys ``rank_at_<t>_of_max``)."""
    return sorted(float(m.group(1)) for key in summary if (m := re.fullmatch(r"rank_at_(.+)_of_max", key)))


# --------------------------------------------------------------------------- figures


def _decorate(axis, xlabel: str, ylabel: str, title: str, xscale: str | None = None, yscale: str | None = None) -> None:
    """Axis labels, title, optional log scales and a small legend: the finishing every panel shares."""
    if xscale:
        axis.set_xscale(xscale)
    if yscale:
        axis.set_yscale(yscale)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=6)


def e1_orthogonal(results: Sequence[E1Stats]) -> Figure:
    """Per (model, trait): efficacy ratio R and paired d(v, v+δ) with 95% CIs per δ-type, TOST verdicts on the bars."""
    figure, axes = _grid(len(results), 2)
    for (ratio_axis, d_axis), result in zip(axes, results):
        by_type, kinds = result["by_type"], _kinds(result["by_type"])
        labels = [TYPE_LABELS[kind] for kind in kinds]
        _interval_bars(ratio_axis, [by_type[kind]["efficacy_ratio"] for kind in kinds], labels, "#3b6fb6")
        ratio_axis.axhline(1.0, color="black", lw=1, ls="--")
        ratio_axis.set_ylabel("efficacy ratio R = Δ(v+δ)/Δ(v)")
        ratio_axis.set_title(
            f"{_title(result)}\nΔ(v) = {_ci(by_type['v']['delta'])}, "
            f"scorer AUROC {result['scorer_validation']['auroc']:.2f}",
            fontsize=9,
        )
        d_values = [by_type[kind]["cohens_d"] for kind in kinds]
        bars = _interval_bars(d_axis, d_values, labels, "#d9822b")
        margin = _margin_in_sd(result)
        d_axis.axhspan(-margin, margin, color="grey", alpha=0.2, label=f"|d| < {margin:g} (baseline-SD margin)")
        d_axis.axhline(0, color="black", lw=1)
        for bar, kind, estimate in zip(bars, kinds, d_values):
            verdict = result["judgements"][kind]["equivalence"]["baseline_sd"]["verdict"]
            top = np.nanmax([estimate["value"], estimate["ci_high"], 0.0])
            d_axis.annotate(
                SHORT_VERDICTS.get(verdict, verdict),
                (bar.get_x() + bar.get_width() / 2, top),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
            )
        d_axis.set_ylabel("paired Cohen's d(v, v+δ)")
        d_axis.legend(fontsize=7, loc="lower left")
    return figure


def e2_alpha(results: Sequence[E2Stats]) -> Figure:
    """Per (model, trait): Δ against α for v and v+δ (95% CI bands), and fluency against α."""
    figure, axes = _grid(len(results), 2)
    for (delta_axis, fluency_axis), result in zip(axes, results):
        rows = result["by_alpha"]
        alphas = [row["alpha"] for row in rows]
        for label in rows[0]["delta"]:  # v, then v + each δ-type E2 swept
            _interval_curve(delta_axis, alphas, [row["delta"][label] for row in rows], label)
            fluency_axis.plot(alphas, [row["median_perplexity"][label] for row in rows], marker="o", ms=4, label=label)
        if result["operational_range"] is not None:
            low, high = result["operational_range"]
            for axis in (delta_axis, fluency_axis):
                axis.axvspan(low, high, color="green", alpha=0.08, label="operational range")
        delta_axis.axhline(0, color="black", lw=1)
        delta_axis.set_ylabel("Δ score vs baseline")
        delta_axis.set_title(_title(result), fontsize=9)
        bound = result["baseline_median_perplexity"] * result["max_perplexity_ratio"]
        fluency_axis.axhline(
            bound, color="red", ls="--", lw=1, label=f"fluency bound ({result['max_perplexity_ratio']:g}× baseline)"
        )
        fluency_axis.set_ylabel("median perplexity")
        fluency_axis.set_yscale("log")
        for axis in (delta_axis, fluency_axis):
            axis.set_xscale("log")
            # Label the strengths that ran, not log-axis minor ticks (which collide at a few points).
            axis.set_xticks(alphas, [f"{alpha:g}" for alpha in alphas])
            axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            axis.set_xlabel(f"α (× {result['alpha_units']})")
            axis.legend(fontsize=7)
    return figure


def e3_environments(results: Sequence[E3Stats]) -> Figure:
    """Per (model, trait): paired d(v, v+δ) per δ-type × environment, and Δ of each environment's vector everywhere."""
    figure, axes = _grid(len(results), 2)
    for (d_axis, cross_axis), result in zip(axes, results):
        environments = list(result["by_environment"])
        kinds = [k for k in TYPE_LABELS if all(k in e["by_type"] for e in result["by_environment"].values())]
        d_matrix = np.array(
            [
                [result["by_environment"][env]["by_type"][kind]["cohens_d"]["value"] for env in environments]
                for kind in kinds
            ]
        )
        _heatmap(d_axis, d_matrix, [TYPE_LABELS[k] for k in kinds], environments, "paired d(v, v+δ)")
        d_axis.set_title(f"{_title(result)}\nd(v, v+δ) per environment", fontsize=9)
        cross = result["cross_application"]
        evaluated = list(cross)
        # Columns in the rows' order so that the diagonal is "extracted where evaluated".
        found = next(iter(cross.values()))
        sources = [e for e in evaluated if e in found] + [s for s in found if s not in evaluated]
        matrix = np.array([[cross[e][s]["delta"]["value"] for s in sources] for e in evaluated])
        _heatmap(cross_axis, matrix, evaluated, sources, "Δ score vs baseline")
        cross_axis.set_xlabel("vector extracted in")
        cross_axis.set_ylabel("evaluated in")
        cross_axis.set_title("cross-application Δ", fontsize=9)
    return figure


def e4_logit_distance(results: Sequence[E4Stats]) -> Figure:
    """Per (model, trait): mean next-token distance of v vs v+δ per δ-type and metric, beside baseline vs v."""
    figure, axes = _grid(len(results), 1)
    for (axis,), result in zip(axes, results):
        # "baseline vs v" is the scale of a real steering effect; −v is the largest change available.
        bars = {
            "baseline vs v": "baseline vs v",
            **{
                f"v vs {name}": f"v vs {TYPE_LABELS.get(pooled(kind), kind)}"
                for kind, name in result["conditions"].items()
            },
            "v vs -v": "v vs −v",
        }
        bars = {key: label for key, label in bars.items() if key in result["pairs"]}
        metrics = list(result["pairs"]["baseline vs v"])
        width = 0.8 / len(bars)
        for index, (key, label) in enumerate(bars.items()):
            means = [result["pairs"][key][metric]["mean"] for metric in metrics]
            axis.bar(
                np.arange(len(metrics)) + (index - (len(bars) - 1) / 2) * width,
                means,
                width,
                label=label,
                color="black" if key == "baseline vs v" else None,
                alpha=0.85,
            )
        axis.set_xticks(range(len(metrics)), metrics)
        axis.set_yscale("log")
        axis.set_ylabel(f"mean over {result['n_sequences']} sequences")
        axis.set_title(f"{_title(result)}: teacher-forced logit distances", fontsize=9)
        axis.legend(fontsize=7)
    return figure


def e5_vector_equivalence(results: Sequence[E5Stats]) -> Figure:
    """Per (model, trait): PCA and probe directions placed by cosine with v against their paired d with v."""
    figure, axes = _grid(len(results), 1)
    for (axis,), result in zip(axes, results):
        names = list(result["by_direction"])
        entries = [result["by_direction"][name] for name in names]
        estimates = [entry["cohens_d"] for entry in entries]
        axis.errorbar(
            [e["cosine_with_v"] for e in entries],
            [e["value"] for e in estimates],
            yerr=_errors(estimates),
            fmt="o",
            capsize=4,
        )
        for name, entry, estimate in zip(names, entries, estimates):
            axis.annotate(
                f"{name}: {SHORT_VERDICTS.get(entry['verdict'], entry['verdict'])}",
                (entry["cosine_with_v"], estimate["value"]),
                xytext=(5, 5),
                textcoords="offset points",
                fontsize=8,
            )
        axis.plot([1.0], [0.0], "k*", ms=10, label="v itself")
        axis.axhline(0, color="black", lw=1)
        axis.set_xlabel("cosine with v")
        axis.set_ylabel("paired Cohen's d(v, direction)")
        axis.set_title(f"{_title(result)}: cos(pca, probe) = {result['cosine_pca_probe']:.2f}", fontsize=9)
        axis.legend(fontsize=7)
    return figure


def e6_null_space(results: Sequence[E6Stats]) -> Figure:
    """Per (model, trait): covariance and Jacobian spectra of every layer, and effective rank against threshold.

    Both spectra are drawn as singular values (σ = √λ for the covariance: those of the centred activation
    matrix), so one threshold t means σ > t·σ_max for both, as in the E6 stats.
    """
    figure, axes = _grid(len(results), 2)
    for (spectrum_axis, rank_axis), result in zip(axes, results):
        for layer in result["layers"]:
            d = layer["d"]
            spectra = {
                "covariance": singular_values_from_eigenvalues(
                    np.asarray(layer["covariance_eigenvalues"], dtype=float)
                ),
                "Jacobian": np.asarray(layer["jacobian_singular_values"], dtype=float),
            }
            colour = None
            for (name, sigma), style in zip(spectra.items(), ("-", "--")):
                (line,) = spectrum_axis.plot(
                    np.arange(1, sigma.size + 1) / d,
                    _positive((sigma / sigma.max()) ** 2),
                    color=colour,
                    ls=style,
                    label=f"L{layer['layer']} {name} σ²/σ²_max",
                )
                colour = line.get_color()
                rank_axis.plot(
                    THRESHOLD_GRID,
                    [(sigma > t * sigma.max()).sum() / d for t in THRESHOLD_GRID],
                    color=colour,
                    ls=style,
                    label=f"L{layer['layer']} {name}",
                )
        for i, t in enumerate(_thresholds(result["layers"][0]["jacobian"])):
            # σ > t·σ_max is σ²/σ²_max > t², the units of this axis.
            spectrum_axis.axhline(t**2, color="grey", lw=0.8, ls=":", label="rank thresholds (t²)" if i == 0 else None)
        _decorate(
            spectrum_axis,
            "index / d",
            "normalised spectrum σ²/σ²_max (sink-free covariance)",
            f"{_title(result)}: spectra",
            yscale="log",
        )
        _decorate(
            rank_axis,
            "relative threshold t",
            "effective rank / d (σ > t·σ_max)",
            "effective rank against threshold",
            xscale="log",
        )
    return figure


def e7_spanning(results: Sequence[E7Stats]) -> Figure:
    """Per (model, trait): efficacy ratio of v+δ against the size k of the bottom/top subspace δ is drawn from."""
    figure, axes = _grid(len(results), 1)
    for (axis,), result in zip(axes, results):
        for name, rows in result["curves"].items():
            _interval_curve(axis, [row["k"] for row in rows], [row["efficacy_ratio"] for row in rows], name)
        axis.axhline(1.0, color="black", lw=1, ls="--")
        _decorate(
            axis,
            "subspace dimension k",
            "efficacy ratio R = Δ(v+δ)/Δ(v)",
            f"{_title(result)}\nΔ(v) = {_ci(result['delta_v'])}",
            xscale="log",
        )
    return figure


def e8_recovery(results: Sequence[E8Stats]) -> Figure:
    """Per (model, trait): inert dimension (fraction of d) as environments, or layers, are intersected."""
    figure, axes = _grid(len(results), 2)
    for row, result in zip(axes, results):
        for axis, key, curve in zip(row, ("environments", "layers"), (result["environments"], result["layers"])):
            m = [point["m"] for point in curve]
            # The spread is over every subset of size m: which members are intersected matters too.
            axis.fill_between(
                m,
                [p["min_fraction"] for p in curve],
                [p["max_fraction"] for p in curve],
                alpha=0.2,
                lw=0,
                label="min–max over subsets",
            )
            axis.plot(m, [p["mean_fraction"] for p in curve], marker="o", label="mean")
            axis.set_xticks(m)
            axis.set_xlabel(f"number of {key} intersected")
            axis.set_ylabel("inert dimension / d")
            axis.set_ylim(bottom=0)
            axis.legend(fontsize=7)
        row[0].set_title(
            f"{_title(result)}: d = {result['d']}, inert below {result['rank_threshold']:g}·σ_max", fontsize=9
        )
    return figure


def e9_sparsity(results: Sequence[E9Stats]) -> Figure:
    """Per (model, trait): planted recovery against sparsity k per inert dimension, and how concentrated
    v and its least-L1 equivalent are (sorted |entries|)."""
    figure, axes = _grid(len(results), 2)
    for (recovery_axis, profile_axis), result in zip(axes, results):
        for row in result["recovery"]:
            label = f"inert {row['inert_dim']} of {result['d']}" + (" (this layer)" if row["this_layer"] else "")
            style = "-" if row["this_layer"] else "--"
            recovery_axis.plot(row["ks"], row["recovered"], style, marker="o", ms=4, label=label)
        _decorate(recovery_axis, "sparsity k of the planted direction", "share recovered", _title(result), "log")
        ranks = np.arange(1, result["d"] + 1)
        profile_axis.plot(ranks, _positive(result["v"]["sorted_magnitudes"]), label="v")
        profile_axis.plot(ranks, _positive(result["sparsest"]["sorted_magnitudes"]), label="least-L1 equivalent")
        _decorate(profile_axis, "entry rank", "|entry| / max", "sorted magnitudes", "log", "log")
    return figure


def e10_independence(results: Sequence[E10Stats]) -> Figure:
    """Per (model, trait): how stable the ICA and mean-difference directions are over resampled prompts
    and across environments (|cos|), against the stability thresholds and chance."""
    figure, axes = _grid(len(results), 2)
    labels = ["ICA", "mean difference"]
    for (stability_axis, environment_axis), result in zip(axes, results):
        estimators = (result["ica"], result["mean_difference"])
        positions = np.arange(len(estimators))
        for offset, key, label in (
            (-0.2, "bootstrap_mean_abs_cosine", "bootstrap mean"),
            (0.2, "environment_min_abs_cosine", "environments, min"),
        ):
            stability_axis.bar(positions + offset, [entry[key] for entry in estimators], width=0.4, label=label)
        for value, style in (
            (result["thresholds"]["bootstrap_mean_abs_cosine"], "--"),
            (result["chance_abs_cosine"], ":"),
        ):
            stability_axis.axhline(value, color="black", lw=1, ls=style)
        stability_axis.set_xticks(positions, labels)
        _decorate(stability_axis, "", "|cos| between directions", _title(result))
        pairs = list(result["ica"]["environment_abs_cosines"])
        for entry, label in zip(estimators, labels):
            cosines = entry["environment_abs_cosines"]
            environment_axis.plot(pairs, [cosines[pair] for pair in pairs], marker="o", label=label)
        _decorate(environment_axis, "environment pair", "|cos|", "across environments")
    return figure


def save(figure: Figure, outputs: Sequence[str], dpi: int) -> None:
    """Write ``figure`` to every path (format from the suffix), each atomically, then close it."""
    try:
        for output in outputs:
            with atomic_path(output) as temporary:
                figure.savefig(temporary, dpi=dpi, format=Path(output).suffix.lstrip("."), bbox_inches="tight")
    finally:
        plt.close(figure)
