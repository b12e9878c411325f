"""The paper's claims judged over a grid: cells that decide a claim, cells that cannot, and the standing."""

from __future__ import annotations

from steerid.conditions import pooled
from steerid.experiments.e1_orthogonal import CONTROL_TYPES, NEUTRAL_TYPES, RANDOM_TYPES
from steerid.experiments.paper_claims import PAPER_CLAIMS, Grid, judge_h1, judge_h2, judge_h3, paragraphs


def _estimate(value, low, high):
    return {"value": value, "ci_low": low, "ci_high": high}


def _e1(trait: str, delta_v=(0.5, 0.3, 0.7), ratio=(1.0, 0.97, 1.03), valid=True) -> dict:
    kinds = NEUTRAL_TYPES + CONTROL_TYPES
    return {
        "model": "m",
        "trait": trait,
        "scorer_validation": {"valid": valid},
        "judgements": {kind: {} for kind in kinds},
        "by_type": {"v": {"delta": _estimate(*delta_v)}, **{k: {"efficacy_ratio": _estimate(*ratio)} for k in kinds}},
    }


def _holm(records, verdict_of):
    return {f"m/{r['trait']}/{kind}": {"verdict": verdict_of(r, kind)} for r in records for kind in r["judgements"]}


def _grid(e1, verdict_of) -> Grid:
    return Grid({"e1": e1}, _holm(e1, verdict_of), [])


def test_h1_is_supported_when_every_neutral_cell_is_equivalent_and_the_control_breaks():
    grid = _grid([_e1("a"), _e1("b")], lambda r, k: "not equivalent" if k in CONTROL_TYPES else "equivalent")
    text = judge_h1(grid)
    assert text.startswith("Supported:") and f"not equivalent in {len(CONTROL_TYPES) * 2} of" in text


def test_h1_cells_without_an_effect_of_v_or_with_an_invalid_scorer_decide_nothing():
    e1 = [_e1("a", valid=False), _e1("b")]
    grid = _grid(e1, lambda r, k: "equivalent" if r["trait"] == "a" else "no effect of v")
    assert judge_h1(grid).startswith("Undecided in this run")
    mixed = _grid([_e1("a"), _e1("b")], lambda r, k: "equivalent" if r["trait"] == "a" else "not equivalent")
    text = judge_h1(mixed)
    assert text.startswith("Partly supported, partly contradicted") and "Not equivalent: m/b" in text


def test_h2_counts_ratios_only_where_v_steers_and_judges_by_the_whole_ci():
    kept = _e1("a", ratio=(0.99, 0.96, 1.02))
    short = _e1("b", ratio=(0.6, 0.4, 0.8))
    silent = _e1("c", delta_v=(0.1, -0.2, 0.4), ratio=(5.0, 4.0, 6.0))
    text = judge_h2(Grid({"e1": [kept, short, silent]}, {}, []))
    random = len(RANDOM_TYPES)
    assert text.startswith("Partly supported, partly contradicted")
    assert f"of {2 * random} random-δ cells where v steers" in text and "Cells where v does not steer: 1." in text
    assert "lowest m/b (0.60 [0.40, 0.80])" in text


def test_h3_asks_whether_v_plus_an_orthogonal_delta_still_steers_where_v_is_operational():
    orthogonal = pooled("orthogonal")
    rows = [
        {"operational": True, "delta": {"v": _estimate(0.4, 0.2, 0.6), orthogonal: _estimate(0.3, 0.1, 0.5)}},
        {"operational": False, "delta": {"v": _estimate(0.1, -0.1, 0.3), orthogonal: _estimate(0.0, -0.2, 0.2)}},
    ]
    e2 = [{"model": "m", "trait": "a", "by_alpha": rows, "operational_range": [0.1, 0.1]}]
    text = judge_h3(Grid({"e2": e2}, {}, []))
    assert text.startswith("Supported: 1 (cell, α) points are operational") and "spans 0.75" in text


def test_every_claim_has_a_paragraph_even_in_an_empty_run():
    lines = [line for line in paragraphs(Grid({}, {}, [])) if line.startswith("**H")]
    assert [line.split(".", 1)[0] for line in lines] == [f"**{claim.key}" for claim in PAPER_CLAIMS]
    assert all("Not testable in this run" in line for line in lines)
