"""E1: are v and v + δ behaviourally equivalent, for every δ-type, with positive controls?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from steerid.conditions import PERTURBATION_KINDS, pooled
from steerid.engine.site import site_label, stored_site
from steerid.experiments import scores as score_files
from steerid.experiments.records import E1Stats
from steerid.experiments.registry import Claim, Experiment, ScoreInput, register
from steerid.experiments.settings import EndpointSettings
from steerid.experiments.text import MARGIN, TYPE_NAMES, cell, ci, scorer_note, units
from steerid.pipeline import plots
from steerid.stats import analysis

# The paper's E1 claims: δ-types that should steer like v, and the controls that must not.
NEUTRAL_TYPES = [pooled(kind.name) for kind in PERTURBATION_KINDS.values() if not kind.positive_control]
CONTROL_TYPES = [pooled(kind.name) for kind in PERTURBATION_KINDS.values() if kind.positive_control]
# Efficacy (R ≈ 1) is claimed for the δ drawn at random, not for other traits' vectors.
RANDOM_TYPES = [pooled(kind.name) for kind in PERTURBATION_KINDS.values() if kind.draw and not kind.positive_control]
# The paper's efficacy claim: orthogonal perturbations keep 95–100 % of v's effect.
RETAINED = (0.95, 1.00)
INTRO = (
    "Δ is the mean trait score minus the α = 0 baseline; R = Δ(v+δ)/Δ(v); d is the paired Cohen's d (d_av) of "
    "v+δ against v; every δ is ⟂ v with ‖δ‖ = ‖v‖. Intervals are 95% cluster-bootstrap CIs over prompts (all "
    "environments pooled), except R's: Fieller's interval on prompt means, unbounded ([-∞, ∞]) where Δ(v) "
    "is not significant. The verdict is a paired TOST of v+δ against v on prompt means at the margin stated, "
    "with its power; 'equivalent' is only possible where Δ(v) is significant and the margin is below |Δ(v)| "
    "(a wider margin would also admit a δ that cancels v: 'inconclusive (margin ≥ |Δ(v)|)'). The verdict after "
    "Holm corrects the TOST p and the difference p, each across every (model, trait, δ-type) cell of the run; "
    "the claims above use it. A likelihood-scored trait (truthfulness) generates nothing: its unit is a true/false "
    "statement pair, "
    "its score the steered model's mean logP(true) − mean logP(false) with every position steered."
)


def stats(
    scores: Sequence[str],
    vector: str,
    validation: str,
    settings: EndpointSettings,
    params: Mapping,
    output: str,
) -> None:
    """E1 over the prompts of every environment pooled: Δ, R, d, TOST verdicts at both margins, permutation null."""
    by_environment, attrs = score_files.by_environment(scores)
    pooled_grids = analysis.pool_environments(by_environment)
    record: E1Stats = {
        "experiment": EXPERIMENT.title,
        **score_files.header(attrs, vector, validation),
        "environments": list(by_environment),
        **endpoints(pooled_grids, settings),
    }
    EXPERIMENT.write(output, record, params)


def endpoints(grids: Mapping, settings: EndpointSettings) -> analysis.Endpoints:
    """Δ, R, d and the TOST and permutation verdicts of every condition of one set of score grids."""
    s = settings
    return analysis.orthogonality_endpoints(grids, s.n_boot, s.margin_sd, s.margin_effect, s.n_perm, s.seed)


def corrected_verdicts(e1: Sequence[E1Stats]) -> dict[str, dict]:
    """Holm-corrected verdicts over every (model, trait, δ-type) cell at the primary margin."""
    return analysis.holm_verdicts(
        {f"{cell(r)}/{kind}": judged["equivalence"][MARGIN] for r in e1 for kind, judged in r["judgements"].items()}
    )


def _verdicts(e1: Sequence[E1Stats], kinds: Sequence[str], corrected: Mapping[str, dict]) -> list[str]:
    return [
        f"{cell(r)} {TYPE_NAMES[k]}: **{corrected[f'{cell(r)}/{k}']['verdict']}** after Holm{scorer_note(r)} "
        f"(uncorrected: {r['judgements'][k]['equivalence'][MARGIN]['verdict']}; R = "
        f"{ci(r['by_type'][k]['efficacy_ratio'])}, d = {ci(r['by_type'][k]['cohens_d'])}, power "
        f"{r['judgements'][k]['equivalence'][MARGIN]['power']['power']:.2f})"
        for r in e1
        for k in kinds
        if k in r["judgements"]
    ]


def claims(e1: Sequence[E1Stats], corrected: Mapping[str, dict]) -> list[Claim]:
    efficacy = [
        f"{cell(r)} {TYPE_NAMES[k]}: R = {ci(r['by_type'][k]['efficacy_ratio'])}"
        for r in e1
        for k in RANDOM_TYPES
        if k in r["by_type"]
    ]
    return [
        ("Orthogonal perturbations are behaviourally equivalent to v (E1)", _verdicts(e1, NEUTRAL_TYPES, corrected)),
        (
            "Positive control: a δ in the high-gain subspace must break equivalence (E1)",
            _verdicts(e1, CONTROL_TYPES, corrected),
        ),
        ("Efficacy is retained: R = Δ(v+δ)/Δ(v) ≈ 1, the paper's 95–100 % (E1)", [*_retained(e1), *efficacy]),
    ]


def _retained(e1: Sequence[E1Stats]) -> list[str]:
    """How many random-δ cells of the grid keep 95–100 % of v's efficacy: by the estimate, and with the
    whole CI at or above 95 %."""
    ratios = [r["by_type"][k]["efficacy_ratio"] for r in e1 for k in RANDOM_TYPES if k in r["by_type"]]
    if not ratios:
        return []
    within = sum(RETAINED[0] <= ratio["value"] <= RETAINED[1] for ratio in ratios)
    assured = sum(ratio["ci_low"] >= RETAINED[0] for ratio in ratios)
    return [
        f"over the grid: {within} of {len(ratios)} random-δ cells have R within {RETAINED[0]:.0%}–{RETAINED[1]:.0%} "
        f"(estimate); {assured} of {len(ratios)} have the whole 95% CI at or above {RETAINED[0]:.0%}"
    ]


def grid(e1: Sequence[E1Stats], corrected: Mapping[str, dict]) -> list[str]:
    """Model × trait × δ-type: R, d and the verdict after Holm, one row each."""
    rows = [
        f"| {r['model']} | {r['trait']} | {TYPE_NAMES.get(k, k)} | {ci(r['by_type'][k]['efficacy_ratio'])} | "
        f"{ci(r['by_type'][k]['cohens_d'])} | {corrected[f'{cell(r)}/{k}']['verdict']}{scorer_note(r)} |"
        for r in e1
        for k in r["judgements"]
    ]
    return ["| model | trait | δ | R | d(v, v+δ) | verdict after Holm |", "|---|---|---|---|---|---|", *rows, ""]


def _rows(result: E1Stats, corrected: Mapping[str, dict]) -> list[str]:
    rows = []
    for kind, judged in result["judgements"].items():
        entry, test, final = result["by_type"][kind], judged["equivalence"], corrected[f"{cell(result)}/{kind}"]
        rows.append(
            f"| {cell(result)} | {TYPE_NAMES.get(kind, kind)} | {ci(entry['delta'], 3)} | "
            f"{ci(entry['efficacy_ratio'])} | "
            f"{ci(entry['cohens_d'])} | {test[MARGIN]['tost']['p']:.3f} / {final['p_equivalence_holm']:.3f} | "
            f"{test[MARGIN]['tost']['p_difference']:.3g} / {final['p_difference_holm']:.3g} | "
            f"{test[MARGIN]['power']['power']:.2f} (n needed {test[MARGIN]['power']['required_n']}) | "
            f"{test[MARGIN]['verdict']} | **{final['verdict']}**{scorer_note(result)} | {test['effect']['verdict']} | "
            f"{judged['permutation']['p_value']:.3f} |"
        )
    return rows


def section(e1: Sequence[E1Stats], corrected: Mapping[str, dict]) -> list[str]:
    """The table behind the E1 claims: every cell and δ-type, before and after Holm."""
    lines = ["## E1: are v and v + δ behaviourally equivalent?", "", *grid(e1, corrected), INTRO, ""]
    for result in e1:
        delta_v, margins = result["by_type"]["v"]["delta"], result["margins"]
        site = site_label(stored_site(result["layer"]))
        lines.append(
            f"- {cell(result)} (layer {site}, {units(result)}, scorer {result['scorer']} AUROC "
            f"{result['scorer_validation']['auroc']:.2f}): Δ(v) = {ci(delta_v, 3)}; margins "
            f"{margins['baseline_sd']['value']:.3f} ({margins['baseline_sd']['definition']}) and "
            f"{margins['effect']['value']:.3f} ({margins['effect']['definition']}); "
            f"Δ(−v) = {ci(result['controls']['minus_v_delta'], 3)}."
        )
    lines += [
        "",
        "| model/trait | δ | Δ(v+δ) | R | d(v, v+δ) | TOST p / Holm | difference p / Holm | power | "
        "verdict (SD margin) | after Holm | verdict (10% of Δ(v)) | permutation p of abs(d) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        *[row for r in e1 for row in _rows(r, corrected)],
        "",
    ]
    return lines


EXPERIMENT = register(
    Experiment(
        name="e1",
        title="E1 orthogonal",
        rule="stats_e1",
        stage=stats,
        figure=plots.e1_orthogonal,
        claims=claims,
        section=section,
        scores=ScoreInput("e1"),
        settings=EndpointSettings,
    )
)
