"""results/summary.md: each claim of the paper with this run's verdict and numbers.

The first section answers the paper claim by claim; the sections after it give the tables behind
every answer. Equivalence verdicts are Holm-corrected across all (model, trait, δ-type) cells, and
a verdict judged by a scorer that failed its validation is marked as such.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from steerid.analysis import holm_verdicts
from steerid.conditions import PERTURBATION_KINDS, pooled
from steerid.io import atomic_write_text

MARGIN = "baseline_sd"
TYPE_NAMES = {pooled(kind.name): kind.report_label for kind in PERTURBATION_KINDS.values()}
# The paper's E1 claims: δ-types that should steer like v, and the controls that must not.
NEUTRAL_TYPES = [pooled(kind.name) for kind in PERTURBATION_KINDS.values() if not kind.positive_control]
CONTROL_TYPES = [pooled(kind.name) for kind in PERTURBATION_KINDS.values() if kind.positive_control]
# Efficacy (R ≈ 1) is claimed for the δ drawn at random, not for other traits' vectors.
RANDOM_TYPES = [pooled(kind.name) for kind in PERTURBATION_KINDS.values() if kind.draw and not kind.positive_control]
E1_INTRO = (
    "Δ is the mean trait score minus the α = 0 baseline; R = Δ(v+δ)/Δ(v); d is the paired Cohen's d (d_av) of "
    "v+δ against v; every δ is ⟂ v with ‖δ‖ = ‖v‖. Intervals are 95% cluster-bootstrap CIs over prompts (all "
    "environments pooled). The verdict is a paired TOST of v+δ against v on prompt means at the margin stated, "
    "with its power; 'equivalent' is only possible where Δ(v) is significant and the margin is below |Δ(v)| "
    "(a wider margin would also admit a δ that cancels v: 'inconclusive (margin ≥ |Δ(v)|)'). The verdict after "
    "Holm corrects the TOST p and the difference p, each across every (model, trait, δ-type) cell of the run; "
    "the claims above use it. A likelihood-scored trait (truthfulness) generates nothing: its unit is a true/false "
    "statement pair, "
    "its score the steered model's mean logP(true) − mean logP(false) with every position steered."
)
SPECTRUM_INTRO = (
    "Effective ranks as a fraction of d by several definitions: eigenvalues above a fraction of λ₁, the fewest "
    "eigenvalues explaining a fraction of the variance, and the participation ratio (Σλ)²/Σλ². `excluding_sinks` "
    "drops the attention-sink positions, whose outsized variance makes λ₁-relative ranks collapse to 1."
)


def _ci(estimate: Mapping, digits: int = 2) -> str:
    return f"{estimate['value']:.{digits}f} [{estimate['ci_low']:.{digits}f}, {estimate['ci_high']:.{digits}f}]"


def _cell(result: Mapping) -> str:
    return f"{result['model']}/{result['trait']}"


def _units(result: Mapping) -> str:
    if result.get("environments") == ["statements"]:
        return f"{result['n_prompts']} statement pairs"
    return f"{result['n_prompts']} prompts × {result['n_samples']} samples"


def _scorer_note(result: Mapping) -> str:
    return "" if result["scorer_validation"]["valid"] else " (scorer invalid)"


def corrected_verdicts(e1: Sequence[Mapping]) -> dict[str, dict]:
    """Holm-corrected verdicts over every (model, trait, δ-type) cell at the primary margin."""
    return holm_verdicts(
        {f"{_cell(r)}/{kind}": judged["equivalence"][MARGIN] for r in e1 for kind, judged in r["judgements"].items()}
    )


def _e1_rows(result: Mapping, corrected: Mapping[str, dict]) -> list[str]:
    rows = []
    for kind, judged in result["judgements"].items():
        entry, test, final = result["by_type"][kind], judged["equivalence"], corrected[f"{_cell(result)}/{kind}"]
        rows.append(
            f"| {_cell(result)} | {TYPE_NAMES.get(kind, kind)} | {_ci(entry['delta'], 3)} | "
            f"{_ci(entry['efficacy_ratio'])} | "
            f"{_ci(entry['cohens_d'])} | {test[MARGIN]['tost']['p']:.3f} / {final['p_equivalence_holm']:.3f} | "
            f"{test[MARGIN]['tost']['p_difference']:.3g} / {final['p_difference_holm']:.3g} | "
            f"{test[MARGIN]['power']['power']:.2f} (n needed {test[MARGIN]['power']['required_n']}) | "
            f"{test[MARGIN]['verdict']} | **{final['verdict']}**{_scorer_note(result)} | {test['effect']['verdict']} | "
            f"{judged['permutation']['p_value']:.3f} |"
        )
    return rows


def e1_section(e1: Sequence[Mapping], corrected: Mapping[str, dict]) -> list[str]:
    lines = ["## E1: are v and v + δ behaviourally equivalent?", "", E1_INTRO, ""]
    for result in e1:
        delta_v, margins = result["by_type"]["v"]["delta"], result["margins"]
        lines.append(
            f"- {_cell(result)} (layer {result['layer']}, {_units(result)}, scorer {result['scorer']} AUROC "
            f"{result['scorer_validation']['auroc']:.2f}): Δ(v) = {_ci(delta_v, 3)}; margins "
            f"{margins['baseline_sd']['value']:.3f} ({margins['baseline_sd']['definition']}) and "
            f"{margins['effect']['value']:.3f} ({margins['effect']['definition']}); "
            f"Δ(−v) = {_ci(result['controls']['minus_v_delta'], 3)}."
        )
    lines += [
        "",
        "| model/trait | δ | Δ(v+δ) | R | d(v, v+δ) | TOST p / Holm | difference p / Holm | power | "
        "verdict (SD margin) | after Holm | verdict (10% of Δ(v)) | permutation p of abs(d) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[row for r in e1 for row in _e1_rows(r, corrected)],
        "",
    ]
    return lines


def _verdicts(e1: Sequence[Mapping], kinds: Sequence[str], corrected: Mapping[str, dict]) -> list[str]:
    return [
        f"{_cell(r)} {TYPE_NAMES[k]}: **{corrected[f'{_cell(r)}/{k}']['verdict']}** after Holm{_scorer_note(r)} "
        f"(uncorrected: {r['judgements'][k]['equivalence'][MARGIN]['verdict']}; R = "
        f"{_ci(r['by_type'][k]['efficacy_ratio'])}, d = {_ci(r['by_type'][k]['cohens_d'])}, power "
        f"{r['judgements'][k]['equivalence'][MARGIN]['power']['power']:.2f})"
        for r in e1
        for k in kinds
        if k in r["judgements"]
    ]


def claims(results: Mapping[str, Sequence[Mapping]], corrected: Mapping[str, dict]) -> list[str]:
    """One bullet per claim of the paper: what it says, and what this run found."""
    e1 = results.get("e1", [])
    lines = ["## The paper's claims, tested", ""]
    lines += _claim(
        "Orthogonal perturbations are behaviourally equivalent to v (E1)",
        _verdicts(e1, NEUTRAL_TYPES, corrected),
    )
    lines += _claim(
        "Positive control: a δ in the high-gain subspace must break equivalence (E1)",
        _verdicts(e1, CONTROL_TYPES, corrected),
    )
    lines += _claim(
        "Efficacy is retained: R = Δ(v+δ)/Δ(v) ≈ 1 (E1)",
        [
            f"{_cell(r)} {TYPE_NAMES[k]}: R = {_ci(r['by_type'][k]['efficacy_ratio'])}"
            for r in e1
            for k in RANDOM_TYPES
            if k in r["by_type"]
        ],
    )
    lines += _claim("Equivalence holds over the operational α range (E2)", [_e2_line(r) for r in results.get("e2", [])])
    lines += _claim(
        "Equivalence persists across prompt distributions (E3)", [_e3_line(r) for r in results.get("e3", [])]
    )
    lines += _claim(
        "Next-token distributions of v and v + δ are close (E4)", [_e4_line(r) for r in results.get("e4", [])]
    )
    lines += _claim(
        "Mean-difference, PCA and probe vectors act alike (E5)", [_e5_line(r) for r in results.get("e5", [])]
    )
    lines += _claim("A large null space: most directions are inert (E6)", [_e6_line(r) for r in results.get("e6", [])])
    lines += _claim(
        "Efficacy does not depend on the subspace δ comes from (E7)", [_e7_line(r) for r in results.get("e7", [])]
    )
    lines += _claim(
        "Identifiability returns when environments or layers are intersected (E8)",
        [_e8_line(r) for r in results.get("e8", [])],
    )
    return lines


def _claim(title: str, findings: Sequence[str]) -> list[str]:
    return [f"**{title}.**", "", *[f"- {finding}" for finding in findings or ["not run"]], ""]


def _e2_line(result: Mapping) -> str:
    rows = result["by_alpha"]
    curve = "; ".join(
        f"α={row['alpha']:g} ({row['alpha_in_v_norms']:.2f}‖v‖): Δ(v) {_ci(row['delta']['v'], 3)}, "
        f"Δ(v+δ⟂) {_ci(row['delta'][pooled('orthogonal')], 3)}, ppl {row['median_perplexity']['v']:.1f}"
        for row in rows
    )
    span = result["operational_range"]
    where = (
        f"operational range α ∈ [{span[0]:g}, {span[1]:g}]" if span else "no α where v is both significant and fluent"
    )
    return f"{_cell(result)}: {where} (baseline perplexity {result['baseline_median_perplexity']:.1f}). {curve}"


def _e3_line(result: Mapping) -> str:
    per_env = "; ".join(
        f"{env}: Δ(v) {_ci(endpoints['by_type']['v']['delta'], 3)}, "
        + ", ".join(
            f"{TYPE_NAMES[k].split(' (')[0]} {judged['equivalence'][MARGIN]['verdict']}"
            for k, judged in endpoints["judgements"].items()
        )
        for env, endpoints in result["by_environment"].items()
    )
    cosines = ", ".join(f"{env} {value:.2f}" for env, value in result["cosine_with_v"].items())
    return f"{_cell(result)}: {per_env}. Cosine of each environment's vector with v: {cosines}."


def _e4_line(result: Mapping) -> str:
    relative = ", ".join(
        f"{TYPE_NAMES.get(pooled(kind), kind).split(' (')[0]}: KL {ratios['kl']:.2f}, JS {ratios['js']:.2f}"
        for kind, ratios in result["relative_to_0_vs_v"].items()
    )
    return (
        f"{_cell(result)} ({result['n_sequences']} continuations): distance of v to v+δ relative to that of "
        f"0 to v — {relative}"
    )


def _e5_line(result: Mapping) -> str:
    return f"{_cell(result)}: " + "; ".join(
        f"{name}: cos(v) {entry['cosine_with_v']:.2f}, beats baseline {entry['beats_baseline']}, "
        f"d(v, {name}) {_ci(entry['cohens_d'])}, {entry['verdict']}"
        for name, entry in result["by_direction"].items()
    )


def _fraction(summary: Mapping, key: str) -> str:
    value = summary.get(f"fraction_of_d_{key}")
    return "–" if value is None else f"{value:.3f}"


RANK_KEYS = ("at_0.01_of_max", "at_0.05_of_max", "at_0.1_of_max", "for_0.99_of_variance", "for_0.999_of_variance")


def _e6_line(result: Mapping) -> str:
    parts = []
    for layer in result["layers"]:
        cov, jac = layer["covariance"], layer["jacobian"]
        parts.append(
            f"L{layer['layer']}: covariance rank at 5% of σ_max is {_fraction(cov['all_tokens'], 'at_0.05_of_max')} "
            f"of d with the sink tokens and {_fraction(cov['excluding_sinks'], 'at_0.05_of_max')} without; "
            "99% of the variance "
            f"needs {_fraction(cov['excluding_sinks'], 'for_0.99_of_variance')} of d; the Jacobian's rank at 5% of "
            f"σ_max is {_fraction(jac, 'at_0.05_of_max')} of d (participation ratio {jac['participation_ratio']:.1f}); "
            f"low-variance vs low-gain overlap {layer['low_variance_vs_low_gain']['overlap']:.2f} "
            f"(chance {layer['low_variance_vs_low_gain']['random_overlap']:.2f})"
        )
    return f"{result['model']}/{result['trait']}: " + "; ".join(parts)


def e6_section(e6: Sequence[Mapping]) -> list[str]:
    """Effective ranks as fractions of d, per layer, source and view: the table behind the null-space claim."""
    rows = []
    for result in e6:
        for layer in result["layers"]:
            sources = [
                (f"covariance, {view.replace('_', ' ')}", layer["covariance"][view]) for view in layer["covariance"]
            ]
            sources.append(("Jacobian (last prompt token)", layer["jacobian"]))
            for name, summary in sources:
                rows.append(
                    f"| {result['model']} | {layer['layer']} | {name} | "
                    + " | ".join(_fraction(summary, key) for key in RANK_KEYS)
                    + f" | {summary['participation_ratio']:.1f} |"
                )
    return [
        "## E6: effective rank as a fraction of d",
        "",
        "Thresholds are on singular values, σ > t·σ_max, for both spectra (for the covariance σ = √λ, the "
        "singular values of the centred activation matrix; the λ-relative ranks are in the spectrum table "
        "below); the variance columns count the fewest directions carrying that share of Σσ². The null space "
        "is one minus these fractions.",
        "",
        "| model | layer | spectrum | 1% of max | 5% of max | 10% of max | 99% of variance | 99.9% of variance | "
        "participation ratio |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def _e7_line(result: Mapping) -> str:
    return f"{_cell(result)} ({_units(result)}, Δ(v) {_ci(result['delta_v'], 3)}): " + "; ".join(
        f"{curve}: "
        + ", ".join(
            f"k={row['k']} R {_ci(row['efficacy_ratio'])}, d {row['cohens_d']['value']:.2f} ({row['verdict']})"
            for row in rows
        )
        for curve, rows in result["curves"].items()
    )


def _e8_line(result: Mapping) -> str:
    def curve(rows):
        return " → ".join(f"{row['mean_fraction']:.3f}" for row in rows)

    return (
        f"{result['model']}/{result['trait']}: inert fraction of d as environments are intersected "
        f"{curve(result['environments'])}; as layers are intersected {curve(result['layers'])} "
        f"(threshold {result['rank_threshold']:g} of σ_max)"
    )


def validation_section(checks: Sequence[Mapping]) -> list[str]:
    rows = [
        f"| {c['model']} | {c['trait']} | {c['scorer']} | {c['auroc']:.3f} | {c['min_auroc']:.2f} | "
        f"{'valid' if c['valid'] else '**invalid**'} |"
        for c in checks
    ]
    return [
        "## Scorer validation",
        "",
        "Each scorer first judges completions of the unsteered model under explicit instructions for either "
        "pole (only the completion is scored).",
        "",
        "| model | trait | scorer | AUROC | minimum | status |",
        "|---|---|---|---|---|---|",
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
    results: Mapping[str, Sequence[Mapping]],
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
        *claims(results, corrected),
        *validation_section(checks),
        *e1_section(results.get("e1", []), corrected),
        *e6_section(results.get("e6", [])),
        *spectrum_section(spectra),
        "## Figures",
        "",
        *[f"- `{figure}`" for figure in figures],
        "",
    ]
    atomic_write_text(output, "\n".join(lines))
