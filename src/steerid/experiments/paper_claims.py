"""The paper's claims H1–H10, each judged over the whole grid of a run.

The experiments answer cell by cell (one model, layer and trait); a claim of the paper is about all
of them. Each :class:`PaperClaim` says what the paper states (its numbers where it gives any), which
experiments answer it, and how to judge it over the grid: one paragraph that counts the cells that
support it and those that contradict it, with the numbers behind both. A claim without any cell in
this run says so instead of guessing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from steerid.conditions import pooled
from steerid.engine.site import site_label, stored_site
from steerid.experiments.e1_orthogonal import CONTROL_TYPES, NEUTRAL_TYPES, RANDOM_TYPES, RETAINED
from steerid.experiments.text import MARGIN, cell, short_kind

__all__ = ["PAPER_CLAIMS", "Grid", "PaperClaim", "paragraphs"]

EQUIVALENT, NOT_EQUIVALENT = "equivalent", "not equivalent"
ORTHOGONAL = pooled("orthogonal")
# E6 and E8 count a direction as inert below this fraction of the largest Jacobian singular value.
INERT_AT = "0.05_of_max"


@dataclass(frozen=True)
class Grid:
    """Every stats record of a run by experiment, E1's Holm-corrected verdicts and the scorer checks."""

    results: Mapping[str, Sequence[Any]]
    corrected: Mapping[str, dict]
    checks: Sequence[Mapping]

    def of(self, experiment: str) -> Sequence[Any]:
        return self.results.get(experiment, [])


@dataclass(frozen=True)
class PaperClaim:
    key: str
    statement: str
    experiments: tuple[str, ...]
    judge: Callable[[Grid], str]


def _tally(verdicts: Sequence[str]) -> str:
    """ "3 equivalent, 1 not equivalent" — the verdicts counted, most frequent first."""
    return ", ".join(f"{count} {verdict}" for verdict, count in Counter(verdicts).most_common())


def _answer(supporting: int, contradicting: int) -> str:
    """The claim's standing from the cells that decide it (the others — v without effect, inconclusive tests,
    invalid scorers — decide nothing)."""
    if supporting + contradicting == 0:
        return "undecided in this run (no cell decides it)"
    if contradicting == 0:
        return "supported"
    return "contradicted" if supporting == 0 else "partly supported, partly contradicted"


def _equivalence_answer(verdicts: Sequence[str]) -> str:
    return _answer(verdicts.count(EQUIVALENT), verdicts.count(NOT_EQUIVALENT))


def _range(values: Sequence[float], digits: int = 2) -> str:
    if min(values) == max(values):
        return f"{values[0]:.{digits}f}"
    return f"{min(values):.{digits}f} to {max(values):.{digits}f} (median {median(values):.{digits}f})"


def _steers(estimate: Mapping) -> bool:
    """The 95% CI of a Δ against the baseline excludes 0."""
    return bool(estimate["ci_low"] > 0 or estimate["ci_high"] < 0)


def _e1_cells(grid: Grid, kinds: Sequence[str]) -> list[tuple[str, str]]:
    """(cell and δ-type, verdict after Holm) of E1's cells of ``kinds``; an invalid scorer's decides nothing."""
    return [
        (
            f"{cell(r)} {short_kind(k)}",
            grid.corrected[f"{cell(r)}/{k}"]["verdict"] if r["scorer_validation"]["valid"] else "scorer invalid",
        )
        for r in grid.of("e1")
        for k in kinds
        if k in r["judgements"]
    ]


def _named(cells: Sequence[tuple[str, str]], verdict: str) -> str:
    return ", ".join(name for name, found in cells if found == verdict) or "none"


def judge_h1(grid: Grid) -> str:
    neutral, controls = _e1_cells(grid, NEUTRAL_TYPES), _e1_cells(grid, CONTROL_TYPES)
    if not neutral:
        return "Not testable in this run (no E1 cell)."
    verdicts = [verdict for _, verdict in neutral]
    text = (
        f"{_equivalence_answer(verdicts).capitalize()}: over {len(neutral)} (model, trait, δ-type) cells with a δ "
        f"that should steer like v, after Holm: {_tally(verdicts)}. Equivalent: {_named(neutral, EQUIVALENT)}. "
        f"Not equivalent: {_named(neutral, NOT_EQUIVALENT)}."
    )
    if controls:
        control_verdicts = [verdict for _, verdict in controls]
        text += (
            f" The positive control (a δ of high gain, which must break equivalence) is not equivalent in "
            f"{control_verdicts.count(NOT_EQUIVALENT)} of {len(controls)} cells ({_tally(control_verdicts)})."
        )
    return text


def _effective(grid: Grid) -> list[Mapping]:
    """E1 records where v steers (Δ(v)'s CI excludes 0) with a valid scorer: where a ratio to Δ(v) means something."""
    return [r for r in grid.of("e1") if _steers(r["by_type"]["v"]["delta"]) and r["scorer_validation"]["valid"]]


def judge_h2(grid: Grid) -> str:
    effective = _effective(grid)
    ratios = [
        (cell(r), r["by_type"][k]["efficacy_ratio"]) for r in effective for k in RANDOM_TYPES if k in r["by_type"]
    ]
    skipped = len(grid.of("e1")) - len(effective)
    if not grid.of("e1"):
        return "Not testable in this run (no E1 cell)."
    if not ratios:
        return (
            f"Undecided in this run: no E1 cell where v steers significantly with a valid scorer ({skipped} without)."
        )
    assured = sum(ratio["ci_low"] >= RETAINED[0] for _, ratio in ratios)
    below = sum(ratio["ci_high"] < RETAINED[0] for _, ratio in ratios)
    within = sum(RETAINED[0] <= ratio["value"] <= RETAINED[1] for _, ratio in ratios)
    lowest = min(ratios, key=lambda item: item[1]["value"])
    return (
        f"{_answer(assured, below).capitalize()}: of {len(ratios)} random-δ cells where v steers, R = Δ(v+δ)/Δ(v) "
        f"has its whole 95% CI at or above {RETAINED[0]:.0%} in {assured}, entirely below it in {below}, and its "
        f"estimate within {RETAINED[0]:.0%}–{RETAINED[1]:.0%} in {within}; R spans "
        f"{_range([ratio['value'] for _, ratio in ratios])}, lowest {lowest[0]} ({lowest[1]['value']:.2f} "
        f"[{lowest[1]['ci_low']:.2f}, {lowest[1]['ci_high']:.2f}]). Cells where v does not steer: {skipped}."
    )


def _operational_points(result: Mapping) -> list[Mapping]:
    return [row for row in result["by_alpha"] if row["operational"] and ORTHOGONAL in row["delta"]]


def judge_h3(grid: Grid) -> str:
    e2 = grid.of("e2")
    if not e2:
        return "Not testable in this run (no E2 cell)."
    points = [(cell(r), row) for r in e2 for row in _operational_points(r)]
    without = ", ".join(cell(r) for r in e2 if not r["operational_range"]) or "none"
    steering = sum(_steers(row["delta"][ORTHOGONAL]) for _, row in points)
    text = (
        f"{_answer(steering, len(points) - steering).capitalize()}: {len(points)} (cell, α) points are operational "
        f"(Δ(v) significant, text fluent); v + δ⊥ also steers significantly at {steering} of them."
    )
    if points:
        ratios = [row["delta"][ORTHOGONAL]["value"] / row["delta"]["v"]["value"] for _, row in points]
        text += f" There Δ(v+δ⊥)/Δ(v) spans {_range(ratios)}."
    return text + f" Cells without an operational α: {without}."


def _inert(layer: Mapping) -> float:
    return float(layer["jacobian"][f"null_fraction_at_{INERT_AT}"])


def _low_variance(layer: Mapping) -> float:
    return 1.0 - float(layer["covariance"]["excluding_sinks"][f"fraction_of_d_at_{INERT_AT}"])


def judge_h4(grid: Grid) -> str:
    layers = [(r, layer) for r in grid.of("e6") for layer in r["layers"]]
    if not layers:
        return "Not testable in this run (no E6 cell)."
    inert = [_inert(layer) for _, layer in layers]
    in_band = sum(0.80 <= value <= 0.95 for value in inert)
    most = sum(value >= 0.5 for value in inert)
    return (
        f"{_answer(most, len(inert) - most).capitalize()} that most directions are inert: the Jacobian's "
        f"inert fraction (singular values below 5% of the largest) is {_range(inert)} of d over {len(inert)} "
        f"(model, trait, layer) cells, {in_band} of them inside the paper's 80–95%; the covariance's low-variance "
        f"fraction at the same threshold is {_range([_low_variance(layer) for _, layer in layers])}."
    )


def judge_h5(grid: Grid) -> str:
    verdicts = [
        judged["equivalence"][MARGIN]["verdict"]
        for r in grid.of("e3")
        for endpoints in r["by_environment"].values()
        for kind, judged in endpoints["judgements"].items()
        if kind in NEUTRAL_TYPES
    ]
    if not verdicts:
        return "Not testable in this run (no E3 cell)."
    return (
        f"{_equivalence_answer(verdicts).capitalize()}: over {len(verdicts)} (cell, environment, δ-type) tests "
        f"of a δ that should steer like v, {_tally(verdicts)} (uncorrected TOST, each environment alone)."
    )


def judge_h6(grid: Grid) -> str:
    entries = [(cell(r), name, entry) for r in grid.of("e5") for name, entry in r["by_direction"].items()]
    if not entries:
        return "Not testable in this run (no E5 cell)."
    cosines = [entry["cosine_with_v"] for _, _, entry in entries]
    verdicts = [entry["verdict"] for _, _, entry in entries]
    beating = sum(entry["beats_baseline"] for _, _, entry in entries)
    return (
        f"{_equivalence_answer(verdicts).capitalize()}: cosines of the PCA and probe directions with v span "
        f"{_range(cosines)} (the paper: −0.54 to +0.32); {beating} of {len(entries)} beat the baseline; against v: "
        f"{_tally(verdicts)}."
    )


def judge_h7(grid: Grid) -> str:
    pairs = [
        (cell(r), ratios["orthogonal"]["kl"], ratios["other"]["kl"])
        for r in grid.of("e4")
        for ratios in [r["relative_to_0_vs_v"]]
        if "orthogonal" in ratios and "other" in ratios
    ]
    if not pairs:
        return "Not testable in this run (no E4 cell with both an orthogonal and an other-trait δ)."
    closer = sum(orthogonal < other for _, orthogonal, other in pairs)
    shown = "; ".join(f"{name}: {orthogonal:.2f} against {other:.2f}" for name, orthogonal, other in pairs)
    return (
        f"{_answer(closer, len(pairs) - closer).capitalize()}: the KL of v to v+δ⊥, relative to that of the "
        f"unsteered model to v, is below that of v to v + (another trait's vector ⟂ v) in {closer} of "
        f"{len(pairs)} cells ({shown})."
    )


def judge_h8(grid: Grid) -> str:
    if not grid.checks:
        return "Not testable in this run (no scorer validation)."
    valid = sum(c["valid"] for c in grid.checks)
    shown = "; ".join(f"{c['model']}/{c['trait']} {c['scorer']} {c['auroc']:.2f}" for c in grid.checks)
    return (
        f"{_answer(valid, len(grid.checks) - valid).capitalize()} as a precondition: {valid} of {len(grid.checks)} "
        "scorers "
        f"separate the unsteered model's instructed poles at AUROC ≥ their minimum ({shown}); a verdict judged by "
        "an invalid scorer is marked as such everywhere."
    )


def judge_h9(grid: Grid) -> str:
    rows = [(cell(r), name, curve) for r in grid.of("e7") for name, curve in r["curves"].items()]
    if not rows:
        return "Not testable in this run (no E7 cell)."
    verdicts = [row["verdict"] for _, _, curve in rows for row in curve]
    rising = [f"{name} {curve_name}" for name, curve_name, curve in rows if _d_rises(curve)]
    return (
        f"{_equivalence_answer(verdicts).capitalize()}: over {len(verdicts)} (cell, subspace, k) draws, "
        f"{_tally(verdicts)}; |d| rises from the smallest to the largest k in {len(rising)} of {len(rows)} curves"
        + (f" ({', '.join(rising)})." if rising else ".")
    )


def _d_rises(curve: Sequence[Mapping]) -> bool:
    return abs(curve[-1]["cohens_d"]["value"]) > abs(curve[0]["cohens_d"]["value"])


def judge_h10(grid: Grid) -> str:
    parts = [_environments_and_layers(grid.of("e8")), _sparsity(grid.of("e9")), _independence(grid.of("e10"))]
    found = [part for part in parts if part]
    return " ".join(found) if found else "Not testable in this run (no E8, E9 or E10 cell)."


def _environments_and_layers(e8: Sequence[Mapping]) -> str:
    if not e8:
        return ""
    shrink = [(f"{cell(r)} L{site_label(stored_site(r['layer']))}", r["environments"], r["layers"]) for r in e8]
    shown = "; ".join(
        f"{name}: environments {envs[0]['mean_fraction']:.2f} → {envs[-1]['mean_fraction']:.2f}, "
        f"layers {layers[0]['mean_fraction']:.2f} → {layers[-1]['mean_fraction']:.2f}"
        for name, envs, layers in shrink
    )
    identified = sum(envs[-1]["min"] == 0 or layers[-1]["min"] == 0 for _, envs, layers in shrink)
    return (
        f"Several environments and layers (E8): intersecting them shrinks the inert fraction of d ({shown}); no "
        f"inert direction is left, so v is identified, in {identified} of {len(shrink)} cells."
    )


def _sparsity(e9: Sequence[Mapping]) -> str:
    if not e9:
        return ""
    unique = sum(r["sparsest"]["unique"] for r in e9)
    cosines = [r["sparsest"]["cosine_with_v"] for r in e9]
    return (
        f"Sparsity (E9): the least-L1 equivalent of v is unique in {unique} of {len(e9)} cells, with cosine "
        f"{_range(cosines)} with v — sparsity picks one member of the class, which is v only if v is that sparse."
    )


def _independence(e10: Sequence[Mapping]) -> str:
    if not e10:
        return ""
    ica = Counter(r["ica"]["verdict"] for r in e10)
    mean = Counter(r["mean_difference"]["verdict"] for r in e10)
    return (
        f"Independence (E10): the ICA direction is {_tally(list(ica.elements()))} and the mean difference "
        f"{_tally(list(mean.elements()))} over {len(e10)} cells."
    )


PAPER_CLAIMS: tuple[PaperClaim, ...] = (
    PaperClaim(
        "H1", "Orthogonal perturbations v + v⊥ (‖v⊥‖ = ‖v‖) are behaviourally equivalent to v", ("e1",), judge_h1
    ),
    PaperClaim("H2", "Orthogonal perturbations keep 95–100 % of the efficacy", ("e1",), judge_h2),
    PaperClaim("H3", "Equivalence holds across the operationally relevant α range", ("e2",), judge_h3),
    PaperClaim("H4", "The null space is large (about 80–95 % of directions)", ("e6",), judge_h4),
    PaperClaim("H5", "Equivalence persists across prompt distributions", ("e3",), judge_h5),
    PaperClaim("H6", "Mean-difference and PCA vectors are geometrically distinct yet equivalent", ("e5",), judge_h6),
    PaperClaim("H7", "Logit-level: v + v⊥ is closer to v than another trait's vector is", ("e4",), judge_h7),
    PaperClaim("H8", "Pre-trained classifiers confirm output-level equivalence", (), judge_h8),
    PaperClaim("H9", "Every draw spanning the null space is equivalent, whatever k", ("e7",), judge_h9),
    PaperClaim(
        "H10",
        "Identifiability returns under several environments, cross-layer consistency, sparsity or independence",
        ("e8", "e9", "e10"),
        judge_h10,
    ),
)


def paragraphs(grid: Grid) -> list[str]:
    """The summary's section answering H1–H10 over the grid, one paragraph each."""
    lines = ["## The paper's claims over the whole grid", ""]
    for claim in PAPER_CLAIMS:
        lines += [f"**{claim.key}. {claim.statement}.** {claim.judge(grid)}", ""]
    return lines
