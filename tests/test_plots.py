"""Every figure renders from stats dicts with the keys the stats stages write, to PNG and PDF.

The dicts come from the same analysis functions the stages call, on small random score grids,
and go through JSON like the workflow's files, so a renamed key fails here and not at the end of
a long run.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from test_independence import write_contrast
from test_sparsity import write_study

from steerid.conditions import Condition
from steerid.experiments import EXPERIMENTS, e9_sparsity, e10_independence
from steerid.experiments.settings import IndependenceSettings, SparsityGrid
from steerid.linalg import nullspace
from steerid.linalg import singular_value_rank_summary as rank_summary
from steerid.linalg.spectrum import Spectrum
from steerid.pipeline import plots
from steerid.stats import analysis
from steerid.stats.independence import planted_mixture

N_BOOT = N_PERM = 100  # the statistics' minimum: the figures need the keys, not precise intervals
SHAPE = (12, 2)
ENVIRONMENTS = ("chat", "story")
PANELS = {"e1": 2, "e2": 2, "e3": 2, "e4": 1, "e5": 1, "e6": 2, "e7": 1, "e8": 2, "e9": 2, "e10": 2}


def _json(payload: dict) -> dict:
    return json.loads(json.dumps(payload))


def _header(trait: str) -> dict:
    """What stages._header adds to every generation experiment's stats."""
    return {
        "model": "tiny",
        "layer": 3,
        "trait": trait,
        "scorer": "lexicon",
        "alpha": 4.0,
        "v_norm": 2.5,
        "mean_residual_norm": 10.0,
        "scorer_validation": {"auroc": 0.93, "min_auroc": 0.8, "valid": True, "n": 16},
    }


def _grids(rng: np.random.Generator, names, shifts=None) -> dict[str, np.ndarray]:
    """Score grids with a baseline and a v that really steers, so verdicts other than 'no effect' can occur."""
    shifts = shifts or {}
    grids = {"baseline": rng.normal(0.0, 1.0, SHAPE)}
    for name in names:
        grids[name] = grids["baseline"] + shifts.get(name, 1.5) + rng.normal(0.0, 0.3, SHAPE)
    return grids


E1_NAMES = ("v", "v+orthogonal-0", "v+null-0", "v+top_gain-0")


def _e1(rng, trait):
    grids = _grids(rng, E1_NAMES, {"v+top_gain-0": 0.2})
    endpoints = analysis.orthogonality_endpoints(grids, N_BOOT, 0.2, 0.1, N_PERM, 0)
    return {"experiment": "E1 orthogonal", **_header(trait), "environments": list(ENVIRONMENTS), **endpoints}


def _e2(rng, trait):
    alphas = [0.05, 0.1, 0.2]
    names = [Condition(kind=kind, alpha=alpha).name for alpha in alphas for kind in (None, "orthogonal", "null")]
    scores = _grids(rng, names)
    perplexity = {name: np.abs(rng.normal(10.0, 2.0, SHAPE)) for name in scores}
    curves = analysis.alpha_curves(scores, perplexity, alphas, ("orthogonal", "null"), 2.0, N_BOOT, 0)
    for row in curves["by_alpha"]:
        row["alpha_in_v_norms"] = row["alpha"] * 4.0
    return {"experiment": "E2 alpha sweep", **_header(trait), "alpha_units": "mean residual norm", **curves}


def _e3(rng, trait):
    names = (*E1_NAMES, *[f"env:{e}" for e in ENVIRONMENTS])
    by_environment = {env: _grids(rng, names) for env in ENVIRONMENTS}
    return {
        "experiment": "E3 environments",
        **_header(trait),
        "cosine_with_v": {env: 0.9 for env in ENVIRONMENTS},
        "cosines": {a: {b: 1.0 if a == b else 0.8 for b in ENVIRONMENTS} for a in ENVIRONMENTS},
        "by_environment": {
            env: analysis.orthogonality_endpoints(g, N_BOOT, 0.2, 0.1, N_PERM, 0) for env, g in by_environment.items()
        },
        "cross_application": analysis.cross_application(by_environment, N_BOOT, 0),
    }


def _e4(rng, trait):
    names = {"orthogonal": "v+orthogonal-0", "null": "v+null-0", "top_gain": "v+top_gain-0"}
    pairs = ["baseline vs v", *[f"v vs {name}" for name in names.values()], "v vs -v"]
    summary = {
        pair: {metric: {"mean": float(rng.uniform(0.01, 2.0)), "sd": 0.1} for metric in ("kl", "js", "logit_l2")}
        for pair in pairs
    }
    return {
        "experiment": "E4 logit distance",
        "model": "tiny",
        "layer": 3,
        "trait": trait,
        "n_sequences": 8,
        "pairs": summary,
        "relative_to_0_vs_v": {k: {"kl": 0.5, "js": 0.5, "logit_l2": 0.5} for k in names},
        "conditions": names,
    }


def _e5(rng, trait):
    grids = _grids(rng, ("v", "pca", "probe"))
    margin = analysis.margins(grids, 0.2, 1.0)["baseline_sd"]
    cosines = {"pca": 0.95, "probe": 0.6}
    return {
        "experiment": "E5 vector equivalence",
        **_header(trait),
        "cosine_pca_probe": 0.55,
        "natural_norms": {"mean_difference": 2.5, "pca": 1.0, "probe": 1.0},
        "margin": margin,
        "n_prompts": SHAPE[0],
        "by_direction": analysis.direction_equivalence(grids, ["pca", "probe"], cosines, margin["value"], N_BOOT, 0),
    }


def _e6(rng, trait, d=16):
    layers = []
    for layer in (2, 3):
        eigenvalues = np.sort(rng.exponential(1.0, d) ** 4)[::-1]
        eigenvalues[-1] = -1e-9  # round-off below zero, as eigh gives on a PSD matrix
        sigma = np.sort(rng.exponential(1.0, d))[::-1]
        covariance = Spectrum(eigenvalues, np.eye(d), 4, 1e-6).summary([0.01, 0.05], [0.9, 0.99])
        layers.append(
            {
                "layer": layer,
                "d": d,
                "covariance": {"all_tokens": covariance, "excluding_sinks": covariance},
                "covariance_eigenvalues": eigenvalues.tolist(),
                "jacobian": rank_summary(sigma, d, [0.01, 0.05, 0.1], [0.9, 0.99]),
                "jacobian_singular_values": sigma.tolist(),
                "subspace_dim": 4,
            }
        )
    return {"experiment": "E6 null-space dimension", "model": "tiny", "trait": trait, "layers": layers, "sites": []}


def _e7(rng, trait):
    names = [
        "v",
        *[
            f"span:{source}-{end}-{k}"
            for source in ("covariance", "jacobian")
            for end in ("bottom", "top")
            for k in (2, 8)
        ],
    ]
    grids = _grids(rng, names)
    margin = analysis.margins(grids, 0.2, 1.0)["baseline_sd"]
    return {
        "experiment": "E7 spanning",
        **_header(trait),
        "environments": ENVIRONMENTS,
        "n_prompts": int(grids["baseline"].shape[0]),
        "n_samples": int(grids["baseline"].shape[1]),
        "margin": margin,
        "delta_v": {"value": 1.5, "ci_low": 1.2, "ci_high": 1.8},
        "curves": analysis.spanning_curves(grids, N_BOOT, margin["value"], 0),
    }


def _e8(rng, trait, d=6):
    def gram():
        jacobian = rng.normal(size=(2, d))  # rank 2 of 6: an inert set that intersections shrink
        return jacobian.T @ jacobian

    return {
        "experiment": "E8 recovery",
        "model": "tiny",
        "trait": trait,
        "d": d,
        "layer": 3,
        "rank_threshold": 0.05,
        "environments": nullspace.recovery_curve({env: gram() for env in ENVIRONMENTS}, 0.05),
        "layers": nullspace.recovery_curve({f"L{layer}": gram() for layer in (1, 2, 3)}, 0.05),
    }


def _e9(rng, trait, d=32):
    """E9's stats as its stage writes them, on a toy study (a 2-sparse v hidden among 16 inert directions)."""
    planted = np.zeros(d)
    planted[[1, 9]] = [1.0, -0.5]
    with tempfile.TemporaryDirectory() as directory:
        paths = write_study(Path(directory), planted, responsive_dim=16, seed=int(rng.integers(1000)))
        settings = SparsityGrid(rank_threshold=0.05, ks=[1, 4], inert_fractions=[0.25], trials=1, seed=0)
        output = Path(directory) / "e9.json"
        e9_sparsity.stats(paths["vector"], paths["jacobian"], trait, settings, {}, str(output))
        return json.loads(output.read_text())


def _e10(rng, trait):
    """E10's stats as its stage writes them, on a planted mixture (small d: the figure needs the keys)."""
    by_environment, _ = planted_mixture("independent", n_pairs=32, d=24, seed=int(rng.integers(1000)))
    with tempfile.TemporaryDirectory() as directory:
        contrast = write_contrast(Path(directory), by_environment)
        settings = IndependenceSettings(seed=0, n_boot=4, components=4)
        output = Path(directory) / "e10.json"
        e10_independence.stats(contrast, trait, settings, {}, str(output))
        return json.loads(output.read_text())


BUILDERS = {
    "e1": _e1,
    "e2": _e2,
    "e3": _e3,
    "e4": _e4,
    "e5": _e5,
    "e6": _e6,
    "e7": _e7,
    "e8": _e8,
    "e9": _e9,
    "e10": _e10,
}


def test_every_experiment_has_a_figure_tested_here():
    assert set(EXPERIMENTS) == set(BUILDERS) == {f"e{i}" for i in range(1, 11)}


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_figure_renders_one_row_per_result(kind, tmp_path):
    rng = np.random.default_rng(0)
    results = [_json(BUILDERS[kind](rng, trait)) for trait in ("sentiment", "formality")]
    figure = EXPERIMENTS[kind].figure(results)
    panels = [axis for axis in figure.axes if axis.get_label() != "<colorbar>"]
    assert len(panels) == PANELS[kind] * len(results)
    outputs = [tmp_path / f"{kind}.png", tmp_path / "nested" / f"{kind}.pdf"]
    plots.save(figure, [str(path) for path in outputs], dpi=40)
    assert outputs[0].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert outputs[1].read_bytes().startswith(b"%PDF-")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(p.name for p in outputs)  # no partials


def test_save_closes_the_figure_and_leaves_nothing_on_failure(tmp_path):
    import matplotlib.pyplot as plt

    figure = plots.e4_logit_distance([_json(_e4(np.random.default_rng(1), "sentiment"))])
    with pytest.raises(ValueError):
        plots.save(figure, [str(tmp_path / "e4.unknown-format")], dpi=40)
    assert not plt.fignum_exists(figure.number)
    assert list(tmp_path.iterdir()) == []


def test_estimates_outside_or_without_their_interval_still_render(tmp_path):
    result = _json(_e1(np.random.default_rng(2), "sentiment"))
    # A percentile bootstrap CI may exclude its point estimate, an undefined one is nan, and a ratio's
    # Fieller interval is unbounded where Δ(v) is not significant.
    result["by_type"]["v+orthogonal"]["cohens_d"] = {"value": 2.0, "ci_low": 0.5, "ci_high": 1.5}
    result["by_type"]["v+null"]["cohens_d"] = {"value": 0.1, "ci_low": float("nan"), "ci_high": float("nan")}
    result["by_type"]["v+orthogonal"]["efficacy_ratio"] = {"value": 2.0, "ci_low": -math.inf, "ci_high": math.inf}
    figure = plots.e1_orthogonal([result])
    assert all(abs(limit) < 1e3 for axis in figure.axes for limit in axis.get_ylim())  # no bar to infinity
    plots.save(figure, [str(tmp_path / "e1.png")], dpi=40)
    assert (tmp_path / "e1.png").read_bytes().startswith(b"\x89PNG")
    spanning = _json(_e7(np.random.default_rng(3), "sentiment"))
    curve = next(iter(spanning["curves"].values()))
    curve[0]["efficacy_ratio"] = {"value": 3.0, "ci_low": -math.inf, "ci_high": math.inf}
    figure = plots.e7_spanning([spanning])
    assert all(abs(limit) < 1e3 for limit in figure.axes[0].get_ylim())
    plots.save(figure, [str(tmp_path / "e7.png")], dpi=40)
    assert (tmp_path / "e7.png").read_bytes().startswith(b"\x89PNG")
