"""E9 (H10, sparsity): is the least-L1 vector among those that steer like v unique, is it v, and would
a sparse steering direction be recovered from its equivalence class at this model's inert dimension?"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from steerid import store, vectors
from steerid.experiments.records import E9Stats
from steerid.experiments.registry import Experiment, one_claim, register
from steerid.experiments.settings import SparsityGrid
from steerid.linalg.sparsity import gain_split, planted_recovery, sparsest_equivalent
from steerid.pipeline import plots


def stats(vector: str, jacobian: str, trait: str, settings: SparsityGrid, params: Mapping, output: str) -> None:
    """E9 at the steering layer: the sparsest equivalent of v, and planted recovery over k × inert dimension."""
    (v,) = store.read(vector, "v")
    with store.open_complete(jacobian) as jac:
        values, basis = jac["pooled/eigenvalues"][()], jac["pooled/eigenvectors"][()]
        model, layer = str(jac.attrs["model"]), int(jac.attrs["layer"])
    responsive, inert = gain_split(values, basis, settings.rank_threshold)
    found = sparsest_equivalent(v, responsive)
    record: E9Stats = {
        "experiment": EXPERIMENT.title,
        "model": model,
        "trait": trait,
        "layer": layer,
        "d": v.size,
        "rank_threshold": settings.rank_threshold,
        "inert_dim": inert.shape[1],
        "v": {"l1": float(np.abs(v).sum()), "sorted_magnitudes": _profile(v)},
        "sparsest": {
            "support": found.support,
            "fraction_of_d": found.support / v.size,
            "unique": found.unique,
            "certificate_margin": found.certificate_margin,
            "l1_ratio_to_v": float(np.abs(found.vector).sum() / np.abs(v).sum()),
            "norm_ratio_to_v": float(np.linalg.norm(found.vector) / np.linalg.norm(v)),
            "cosine_with_v": vectors.cosine(found.vector, v),
            "sorted_magnitudes": _profile(found.vector),
        },
        "recovery": _recovery_grid(values, basis, inert.shape[1], settings),
    }
    EXPERIMENT.write(output, record, params)


def _profile(vector: np.ndarray) -> list[float]:
    """|entries| sorted descending, relative to the largest: how concentrated a vector is."""
    magnitudes = np.sort(np.abs(vector))[::-1]
    return (magnitudes / magnitudes[0]).tolist()


def _recovery_grid(values: np.ndarray, basis: np.ndarray, inert_dim: int, settings: SparsityGrid) -> list[dict]:
    """Planted recovery rates per k, with the m lowest-gain eigenvectors as the inert set, for each inert
    fraction of the grid and for this layer's own inert dimension."""
    d = basis.shape[0]
    order = np.argsort(values)[::-1]  # descending gain
    sizes = sorted({round(fraction * d) for fraction in settings.inert_fractions} | {inert_dim})
    rows = []
    for i, m in enumerate(sizes):
        responsive, inert = basis[:, order[: d - m]], basis[:, order[d - m :]]
        rates = [planted_recovery(responsive, inert, k, settings.trials, settings.seed + i) for k in settings.ks]
        rows.append(
            {
                "inert_dim": m,
                "inert_fraction": m / d,
                "this_layer": m == inert_dim,
                "ks": list(settings.ks),
                "recovered": rates,
            }
        )
    return rows


def finding(result: E9Stats) -> str:
    best = result["sparsest"]
    own = next(row for row in result["recovery"] if row["this_layer"])
    always = [str(k) for k, rate in zip(own["ks"], own["recovered"]) if rate == 1.0]
    planted = (
        f"a planted k-sparse direction is always recovered from its class at this inert dimension for k ∈ "
        f"{{{', '.join(always)}}} of the k tested ({', '.join(map(str, own['ks']))})"
        if always
        else f"no planted k-sparse direction (k ∈ {{{', '.join(map(str, own['ks']))}}}) is always recovered"
    )
    return (
        f"{result['model']}/{result['trait']} L{result['layer']}: inert dimension {result['inert_dim']} of "
        f"{result['d']}; the least-L1 vector that steers like v has {best['support']} non-zero entries "
        f"({best['fraction_of_d']:.0%} of d), is {'unique' if best['unique'] else 'not unique'}, and has cosine "
        f"{best['cosine_with_v']:.2f} with v (‖x‖₁/‖v‖₁ = {best['l1_ratio_to_v']:.2f}); {planted}"
    )


EXPERIMENT = register(
    Experiment(
        name="e9",
        title="E9 sparsity",
        rule="sparsity",
        stage=stats,
        scope="layer",
        figure=plots.e9_sparsity,
        claims=one_claim(
            "Sparsity picks one vector of the equivalence class, and recovers a sparse one (E9, H10)", finding
        ),
        settings=SparsityGrid,
    )
)
