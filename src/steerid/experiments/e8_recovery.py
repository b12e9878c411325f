"""E8: does identifiability return when environments or layers are intersected?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from steerid import store
from steerid.engine.site import Layers, site_label, stored_site
from steerid.experiments.records import E8Stats
from steerid.experiments.registry import Experiment, one_claim, register
from steerid.linalg import nullspace
from steerid.pipeline import plots


def stats(
    jacobians: Sequence[str], trait: str, layer: Layers, rank_threshold: float, params: Mapping, output: str
) -> None:
    """E8 at one steered ``layer``, or a steering site of several (its joint Jacobian's stacked shifts): how
    the dimension of the inert (equivalent) set shrinks as its environments, or the model's surveyed and
    steered layers, are intersected."""
    grams_by_layer, grams_by_environment, d, model = {}, {}, 0, ""
    for path in jacobians:
        with store.open_complete(path) as jac:
            member, model = stored_site(jac.attrs["layer"]), str(jac.attrs["model"])
            values, basis = jac["pooled/eigenvalues"][()], jac["pooled/eigenvectors"][()]
            if isinstance(member, int):
                grams_by_layer[f"L{member}"] = nullspace.gram_from_spectrum(values, basis)
            if member == layer:
                d = basis.shape[0]
                grams_by_environment = {
                    name: nullspace.gram_from_spectrum(g["eigenvalues"][()], g["eigenvectors"][()])
                    for name, g in jac["environments"].items()
                }
    record: E8Stats = {
        "experiment": EXPERIMENT.title,
        "model": model,
        "trait": trait,
        "d": d,
        "layer": layer,
        "rank_threshold": rank_threshold,
        "definition": (
            "inert set = directions whose gain, in every member's Jacobians, stays below rank_threshold x "
            "that member's own largest singular value (the Gram matrices are normalised to a largest "
            "eigenvalue of 1 and summed)"
        ),
        "environments": nullspace.recovery_curve(grams_by_environment, rank_threshold),
        "layers": nullspace.recovery_curve(grams_by_layer, rank_threshold),
    }
    EXPERIMENT.write(output, record, params)


def finding(result: E8Stats) -> str:
    def curve(rows):
        return " → ".join(f"{row['mean_fraction']:.3f}" for row in rows)

    site = stored_site(result["layer"])
    of = "d" if isinstance(site, int) else "k·d (the stacked shifts)"
    return (
        f"{result['model']}/{result['trait']} L{site_label(site)}: inert fraction of {of} as its environments are "
        f"intersected {curve(result['environments'])}; as layers are intersected {curve(result['layers'])} "
        f"(threshold {result['rank_threshold']:g} of σ_max)"
    )


EXPERIMENT = register(
    Experiment(
        name="e8",
        title="E8 recovery",
        rule="recovery",
        stage=stats,
        figure=plots.e8_recovery,
        claims=one_claim("Identifiability returns when environments or layers are intersected (E8)", finding),
        scope="layers_and_site",
    )
)
