"""Endpoints of the generation experiments, computed from per-condition score grids.

Every grid is (n_prompts, n_samples) with the same prompts and sampling noise in every condition,
so all comparisons are paired with the prompt as the unit (bootstrap over prompts, TOST on
prompt means). These functions take grids and return JSON-able dicts; files are the stages' job.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np

from steerid.conditions import BASELINE, PERTURBATION_TYPES, POSITIVE_CONTROLS, REFERENCE, Condition, members, pooled
from steerid.stats import (
    compare_conditions,
    effect_ci,
    holm,
    judge,
    margin_below_effect,
    margin_from_baseline_sd,
    margin_from_effect,
    permutation_null_d,
    power_report,
    significant,
    tost_paired,
    verdict,
)

Grids = Mapping[str, np.ndarray]


def pool_environments(by_environment: Mapping[str, Grids]) -> dict[str, np.ndarray]:
    """Stack the prompts of every environment: conditions present in all of them, prompts as rows."""
    names = [name for name in next(iter(by_environment.values())) if all(name in g for g in by_environment.values())]
    return {name: np.concatenate([grids[name] for grids in by_environment.values()]) for name in names}


def pooled_by_type(scores: Grids) -> dict[str, np.ndarray]:
    """Per δ-type, the cell-wise mean over its draws: one paired condition ``v+<type>`` per type."""
    by_type = {}
    for kind in PERTURBATION_TYPES:
        names = members(list(scores), kind)
        if names:
            by_type[pooled(kind)] = np.mean([scores[name] for name in names], axis=0)
    return by_type


def margins(scores: Grids, margin_sd: float, margin_effect: float) -> dict[str, dict]:
    """The two equivalence margins: a fraction of the baseline SD, and a fraction of |Δ(v)|."""
    return {
        "baseline_sd": {
            "value": margin_from_baseline_sd(scores[BASELINE], margin_sd),
            "fraction": margin_sd,
            "definition": f"{margin_sd:g} x SD of the baseline scores (all cells)",
        },
        "effect": {
            "value": margin_from_effect(scores[REFERENCE], scores[BASELINE], margin_effect),
            "fraction": margin_effect,
            "definition": f"{margin_effect:g} x |Δ(v)|",
        },
    }


def equivalence_test(v: np.ndarray, other: np.ndarray, margin: float, delta_v: Mapping) -> dict:
    """TOST of ``other`` against ``v`` with its power and the verdict (needs Δ(v) significant)."""
    test = tost_paired(v, other, margin)
    power = power_report(test["n"], margin, test["sd_difference"])
    return {
        "tost": test,
        "power": power,
        "margin_below_effect": margin_below_effect(margin, delta_v),
        "verdict": verdict(test, power["power"], delta_v),
    }


def permutation_summary(v: np.ndarray, other: np.ndarray, n_perm: int, seed: int) -> dict:
    """Sign-flip null of |d_z| between ``v`` and ``other`` (the null draws themselves are dropped)."""
    result = permutation_null_d(v, other, n_perm, seed)
    result.pop("null_abs_dz")
    return result


def judge_types(
    scores: Grids, per_type: Mapping[str, dict], margin_values: Mapping[str, dict], n_perm: int, seed: int
) -> dict[str, dict]:
    """For every pooled δ-type: TOST against v at each margin, and the permutation null of |d_z|."""
    pooled = pooled_by_type(scores)
    delta_v = per_type[REFERENCE]["delta"]
    return {
        kind: {
            "equivalence": {
                name: equivalence_test(scores[REFERENCE], grid, margin["value"], delta_v)
                for name, margin in margin_values.items()
            },
            "permutation": permutation_summary(scores[REFERENCE], grid, n_perm, seed),
        }
        for kind, grid in pooled.items()
    }


class Endpoints(TypedDict):
    """E1's endpoints on one set of grids (E1 pooled over environments, E3 per environment)."""

    n_prompts: int
    n_samples: int
    mean_score: dict[str, float]
    margins: dict[str, dict[str, Any]]
    by_type: dict[str, dict[str, Any]]
    by_condition: dict[str, dict[str, Any]]
    judgements: dict[str, dict[str, Any]]
    controls: dict[str, Any]


def orthogonality_endpoints(
    scores: Grids, n_boot: int, margin_sd: float, margin_effect: float, n_perm: int, seed: int
) -> Endpoints:
    """E1 endpoints on one set of grids: every condition and every pooled δ-type against baseline and v."""
    per_condition = compare_conditions(dict(scores), BASELINE, REFERENCE, n_boot, seed)
    typed = {BASELINE: scores[BASELINE], REFERENCE: scores[REFERENCE], **pooled_by_type(scores)}
    per_type = compare_conditions(typed, BASELINE, REFERENCE, n_boot, seed)
    margin_values = margins(scores, margin_sd, margin_effect)
    return {
        "n_prompts": int(scores[BASELINE].shape[0]),
        "n_samples": int(scores[BASELINE].shape[1]),
        "mean_score": {name: float(grid.mean()) for name, grid in scores.items()},
        "margins": margin_values,
        "by_type": per_type,
        "by_condition": per_condition,
        "judgements": judge_types(scores, per_type, margin_values, n_perm, seed),
        "controls": controls(per_condition, per_type),
    }


def controls(per_condition: Mapping[str, dict], per_type: Mapping[str, dict]) -> dict:
    """Checks a working experiment must pass: v moves the score, −v moves it the other way, δ alone barely."""
    delta_v = per_type[REFERENCE]["delta"]
    result: dict[str, Any] = {"v_beats_baseline": significant(delta_v)}
    if "-v" in per_condition:
        negative = per_condition["-v"]["delta"]
        result["minus_v_opposite_sign"] = bool(np.sign(negative["value"]) == -np.sign(delta_v["value"]))
        result["minus_v_delta"] = negative
    alone = [entry["delta"] for name, entry in per_condition.items() if Condition.parse(name).base is None]
    if alone:
        result["delta_alone"] = alone
    result["positive_controls"] = {
        kind: per_type[pooled(kind)]["cohens_d"] for kind in POSITIVE_CONTROLS if pooled(kind) in per_type
    }
    return result


def cross_application(by_environment: Mapping[str, Grids], n_boot: int, seed: int) -> dict[str, dict[str, dict]]:
    """E3: Δ of each environment's vector in every evaluation environment, with R vs v there."""
    table: dict[str, dict[str, dict]] = {}
    for evaluated, grids in by_environment.items():
        extracted = {name: Condition.parse(name).environment for name in grids}
        vectors = {name: grid for name, grid in grids.items() if extracted[name] is not None}
        compared = compare_conditions(
            {BASELINE: grids[BASELINE], REFERENCE: grids[REFERENCE], **vectors}, BASELINE, REFERENCE, n_boot, seed
        )
        table[evaluated] = {
            str(extracted[name]): {"delta": entry["delta"], "efficacy_ratio": entry["efficacy_ratio"]}
            for name, entry in compared.items()
            if name != REFERENCE
        }
    return table


def direction_equivalence(
    scores: Grids, names: Sequence[str], cosines: Mapping[str, float], margin: float, n_boot: int, seed: int
) -> dict[str, dict]:
    """E5: each alternative direction must beat the baseline, then is compared with v (d, TOST)."""
    compared = compare_conditions(
        {BASELINE: scores[BASELINE], REFERENCE: scores[REFERENCE], **{name: scores[name] for name in names}},
        BASELINE,
        REFERENCE,
        n_boot,
        seed,
    )
    delta_v = compared[REFERENCE]["delta"]
    return {
        name: {
            "cosine_with_v": cosines[name],
            **compared[name],
            "beats_baseline": significant(compared[name]["delta"]),
            **equivalence_test(scores[REFERENCE], scores[name], margin, delta_v),
        }
        for name in names
    }


class AlphaCurves(TypedDict):
    """E2's curves against α and the operational range."""

    baseline_median_perplexity: float
    max_perplexity_ratio: float
    by_alpha: list[dict[str, Any]]
    operational_alphas: list[float]
    operational_range: list[float] | None


def alpha_curves(
    scores: Grids,
    perplexity: Grids,
    alphas: Sequence[float],
    kinds: Sequence[str],
    max_perplexity_ratio: float,
    n_boot: int,
    seed: int,
) -> AlphaCurves:
    """E2: Δ(v) and Δ(v + δ) per α, fluency per α, and the operational range of α."""
    base_ppl = float(np.nanmedian(perplexity[BASELINE]))
    rows = []
    for alpha in alphas:
        entry: dict[str, Any] = {"alpha": alpha, "delta": {}, "median_perplexity": {}}
        for kind in (None, *kinds):
            label, name = Condition(kind=kind).name, Condition(kind=kind, alpha=alpha).name
            entry["delta"][label] = effect_ci(scores[name], scores[BASELINE], n_boot, seed).to_dict()
            entry["median_perplexity"][label] = float(np.nanmedian(perplexity[name]))
        entry["fluent"] = entry["median_perplexity"]["v"] <= max_perplexity_ratio * base_ppl
        # Toward the positive pole: past its fluent range v can push the score significantly the other way.
        entry["v_significant"] = significant(entry["delta"]["v"]) and entry["delta"]["v"]["value"] > 0
        entry["operational"] = bool(entry["fluent"] and entry["v_significant"])
        rows.append(entry)
    operational = [row["alpha"] for row in rows if row["operational"]]
    return {
        "baseline_median_perplexity": base_ppl,
        "max_perplexity_ratio": max_perplexity_ratio,
        "by_alpha": rows,
        "operational_alphas": operational,
        "operational_range": [min(operational), max(operational)] if operational else None,
    }


def spanning_curves(scores: Grids, n_boot: int, margin: float, seed: int) -> dict[str, list[dict]]:
    """E7: per (source, end), R and d of v + δ against the subspace size k."""
    compared = compare_conditions(dict(scores), BASELINE, REFERENCE, n_boot, seed)
    delta_v = compared[REFERENCE]["delta"]
    curves: dict[str, list[dict]] = {}
    for name in scores:
        span = Condition.parse(name).span
        if span is None:
            continue
        curves.setdefault(f"{span.source}-{span.end}", []).append(
            {
                "k": span.k,
                "efficacy_ratio": compared[name]["efficacy_ratio"],
                "cohens_d": compared[name]["cohens_d"],
                "delta": compared[name]["delta"],
                "verdict": equivalence_test(scores[REFERENCE], scores[name], margin, delta_v)["verdict"],
            }
        )
    return {key: sorted(rows, key=lambda row: row["k"]) for key, rows in curves.items()}


def holm_verdicts(cells: Mapping[str, Mapping], alpha: float = 0.05, min_power: float = 0.8) -> dict[str, dict]:
    """Verdicts corrected for multiplicity across cells (e.g. every model × trait × δ-type).

    ``cells`` maps a cell name to the output of :func:`equivalence_test`. The TOST p-values are
    Holm-adjusted together, and so are the two-sided p-values of the difference; the rules of
    :func:`steerid.stats.verdict` then apply with "equivalent" meaning an adjusted TOST p < alpha
    and "different" an adjusted difference p < alpha. "no effect of v" stands: no correction can
    make a comparison with an ineffective v meaningful.
    """
    equivalence = holm({name: cell["tost"]["p"] for name, cell in cells.items()}) if cells else {}
    difference = holm({name: cell["tost"]["p_difference"] for name, cell in cells.items()}) if cells else {}
    corrected = {}
    for name, cell in cells.items():
        final = judge(
            v_effective=cell["verdict"] != "no effect of v",
            equivalent=equivalence[name] < alpha,
            different=difference[name] < alpha,
            margin_informative=cell["margin_below_effect"],
            power=cell["power"]["power"],
            min_power=min_power,
        )
        corrected[name] = {
            "p_equivalence_holm": equivalence[name],
            "p_difference_holm": difference[name],
            "verdict": final,
        }
    return corrected
