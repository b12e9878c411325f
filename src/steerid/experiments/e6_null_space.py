"""E6: how large is the null space — the directions to which the activations and the model are inert?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import numpy as np

from steerid import linalg, store
from steerid.engine.site import site_label, site_layers, stored_site
from steerid.experiments.records import E6Stats
from steerid.experiments.registry import Experiment, one_claim, register
from steerid.linalg import nullspace, spectrum
from steerid.perturb import PERTURBATION_VIEW
from steerid.pipeline import plots

RANK_KEYS = ("at_0.01_of_max", "at_0.05_of_max", "at_0.1_of_max", "for_0.99_of_variance", "for_0.999_of_variance")


def _ranks(eigenvalues, size: int, rank_thresholds: Sequence[float], variance_fractions: Sequence[float]) -> dict:
    """Effective ranks of a spectrum as fractions of ``size``, thresholds on its singular values."""
    singular_values = linalg.singular_values_from_eigenvalues(eigenvalues)
    return linalg.singular_value_rank_summary(singular_values, size, rank_thresholds, variance_fractions)


def _layer(
    cov,
    jac,
    null_fraction: float,
    rank_thresholds: Sequence[float],
    variance_fractions: Sequence[float],
    stability_k: int,
) -> dict:
    """E6 for one layer from its open spectrum and Jacobian files."""
    d = cov[PERTURBATION_VIEW]["eigenvectors"].shape[0]
    ranks = partial(_ranks, size=d, rank_thresholds=rank_thresholds, variance_fractions=variance_fractions)
    k = max(1, round(null_fraction * d))
    top = {name: group["eigenvectors"][()][:, :stability_k] for name, group in jac["environments"].items()}
    names = list(top)
    return {
        "layer": int(cov.attrs["layer"]),
        "d": d,
        # Thresholds on singular values for both spectra: σ = √λ are those of the centred activations.
        "covariance": {
            view: {
                **ranks(cov[view]["eigenvalues"][()]),
                "count": int(cov[view].attrs["count"]),
                "top_eigenvalue_ratio": float(cov[view].attrs["top_eigenvalue_ratio"]),
            }
            for view in spectrum.VIEWS
        },
        "covariance_eigenvalues": cov[PERTURBATION_VIEW]["eigenvalues"][()].tolist(),
        "jacobian": ranks(jac["pooled/eigenvalues"][()]),
        "jacobian_singular_values": linalg.singular_values_from_eigenvalues(jac["pooled/eigenvalues"][()]).tolist(),
        "jacobian_by_environment": {
            name: ranks(group["eigenvalues"][()]) for name, group in jac["environments"].items()
        },
        "gain_stability": {
            f"{a} vs {b}": nullspace.subspace_overlap_vs_random(top[a], top[b])
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        },
        "prompt_stability": _prompt_stability(jac, stability_k),
        "low_variance_vs_low_gain": nullspace.subspace_overlap_vs_random(
            cov[PERTURBATION_VIEW]["eigenvectors"][()][:, -k:].astype(np.float64),
            jac["pooled/eigenvectors"][()][:, -k:],
        ),
        "subspace_dim": k,
    }


def _site(jac, rank_thresholds: Sequence[float], variance_fractions: Sequence[float], stability_k: int) -> dict:
    """E6 for a steering site of several layers from its joint Jacobian file: the gain of the stacked shifts,
    cross-layer terms included, as fractions of k·d (a site has no covariance of its own)."""
    layers = list(site_layers(stored_site(jac.attrs["layer"])))
    size = jac["pooled/eigenvectors"].shape[0]
    ranks = partial(_ranks, size=size, rank_thresholds=rank_thresholds, variance_fractions=variance_fractions)
    return {
        "layers": layers,
        "d": size // len(layers),
        "size": size,
        "jacobian": ranks(jac["pooled/eigenvalues"][()]),
        "jacobian_by_environment": {
            name: ranks(group["eigenvalues"][()]) for name, group in jac["environments"].items()
        },
        "prompt_stability": _prompt_stability(jac, stability_k),
    }


def _prompt_stability(jacobian_file, k: int) -> dict:
    """Per environment: overlap of each single prompt's top-k gain subspace with the pooled one (chance: k/d)."""

    pooled = jacobian_file["pooled/eigenvectors"][()]
    result = {}
    for name, group in jacobian_file["environments"].items():
        per_prompt = group["pair_top_vectors"][()]
        width = min(k, per_prompt.shape[2])
        overlaps = [linalg.subspace_overlap(vectors[:, :width], pooled[:, :width]) for vectors in per_prompt]
        result[name] = {
            "k": width,
            "mean_overlap": float(np.mean(overlaps)),
            "min_overlap": float(np.min(overlaps)),
            "random_overlap": width / pooled.shape[0],
        }
    return result


def stats(
    spectra: Sequence[str],
    jacobians: Sequence[str],
    sites: Sequence[str],
    trait: str,
    null_fraction: float,
    rank_thresholds: Sequence[float],
    variance_fractions: Sequence[float],
    stability_k: int,
    params: Mapping,
    output: str,
) -> None:
    """E6: per layer, covariance and Jacobian effective ranks as fractions of d (with and without sinks for
    the covariance), stability of the gain subspace across environments, and the overlap between the
    covariance's low-variance subspace and the Jacobian's low-gain subspace; and, for a steering site of
    several layers, the joint Jacobian's ranks as fractions of k·d (``sites``: its joint Jacobian files)."""
    layers = []
    for spectrum_file, jacobian_file in zip(spectra, jacobians):
        with store.open_complete(spectrum_file) as cov, store.open_complete(jacobian_file) as jac:
            layers.append(_layer(cov, jac, null_fraction, rank_thresholds, variance_fractions, stability_k))
    record: E6Stats = {
        "experiment": EXPERIMENT.title,
        "model": str(store.read_attrs(jacobians[0])["model"]),
        "trait": trait,
        "layers": layers,
        "sites": [],
    }
    for site_file in sites:
        with store.open_complete(site_file) as jac:
            record["sites"].append(_site(jac, rank_thresholds, variance_fractions, stability_k))
    EXPERIMENT.write(output, record, params)


def _fraction(summary: Mapping, key: str) -> str:
    value = summary.get(f"fraction_of_d_{key}")
    return "–" if value is None else f"{value:.3f}"


def finding(result: E6Stats) -> str:
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
    for site in result["sites"]:
        parts.append(
            f"the site L{site_label(site['layers'])} as one intervention: its joint Jacobian's rank at 5% of σ_max "
            f"is {_fraction(site['jacobian'], 'at_0.05_of_max')} of k·d = {site['size']} (one prompt reaches at most "
            f"{(site['d'] - 1) / site['size']:.3f})"
        )
    return f"{result['model']}/{result['trait']}: " + "; ".join(parts)


def section(e6: Sequence[E6Stats], corrected: Mapping[str, dict]) -> list[str]:
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


EXPERIMENT = register(
    Experiment(
        name="e6",
        title="E6 null-space dimension",
        rule="null_space",
        stage=stats,
        figure=plots.e6_null_space,
        claims=one_claim("A large null space: most directions are inert (E6)", finding),
        section=section,
        scope="model",
    )
)
