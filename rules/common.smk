# Shared helpers: wildcard constraints, target lists, param slices, and how jobs claim CPUs.
# (The config was checked in the Snakefile, before any of this.)

import os

from steerid.conditions import EXPERIMENTS
from steerid.scoring import MODEL_SCORERS

ENVIRONMENTS = config["prompts"]["environments"]
# E2 and E4 run in one environment: the first listed.
MAIN_ENVIRONMENT = ENVIRONMENTS[0]
ALL_TRAITS = config["traits"] + config["other_traits"]
# Traits scored by the steered model's likelihood of true/false statements: no generations, so no E2, E3 or E4.
LIKELIHOOD_TRAITS = [trait for trait in config["traits"] if config["scoring"][trait] in MODEL_SCORERS]
GENERATION_TRAITS = [trait for trait in config["traits"] if trait not in LIKELIHOOD_TRAITS]


wildcard_constraints:
    model="|".join(config["models"]),
    trait="|".join(ALL_TRAITS),
    layer=r"\d+",
    experiment="|".join(EXPERIMENTS),
    environment="|".join(ENVIRONMENTS),
    figure=r"e[1-8]",
    shard=r"\d+",
    shards=r"\d+",


def survey_layers(model):
    """E6/E8 layers of a model: its survey layers and its steering layer, ascending."""
    spec = config["models"][model]
    return sorted(set(spec["survey_layers"]) | {spec["layer"]})


def steering_targets(pattern, traits=config["traits"]):
    """``pattern`` expanded over every model (at its steering layer) and each of ``traits``."""
    return [
        pattern.format(model=model, layer=spec["layer"], trait=trait)
        for model, spec in config["models"].items()
        for trait in traits
    ]


def model_targets(pattern):
    """``pattern`` expanded over every model and trait (no layer)."""
    return [pattern.format(model=model, trait=trait) for model in config["models"] for trait in config["traits"]]


def spectrum_targets():
    return [f"results/{model}/spectra/L{spec['layer']}.h5" for model, spec in config["models"].items()]


def runtime_params():
    """Device, dtype and batch size of model jobs (threads come from the rule's `threads`)."""
    runtime = config["runtime"]
    return {key: runtime[key] for key in ("device", "dtype", "batch_size")}


# Snakemake fills --cores with jobs, and --cores may exceed this machine's CPUs (`--cores 8` on a
# 2-core laptop ran four 2-thread model jobs at once, each 10x slower than alone). So, when the jobs
# run here, every job also claims its threads from `cpu_threads`, a resource capped at the CPUs
# this process may use (`--resources cpu_threads=N` sets another cap), and no job asks for more
# threads than there are CPUs. Under a cluster executor the cluster's scheduler places the jobs.
USABLE_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
if RUN.jobs_run_here and "cpu_threads" not in workflow.global_resources:
    workflow.register_resource("cpu_threads", USABLE_CPUS)


def job_threads(wanted):
    return min(wanted, USABLE_CPUS) if RUN.jobs_run_here else wanted


def cpu_threads(wildcards, threads):
    """The `cpu_threads` a job claims: its threads (Snakemake has already capped them at --cores)."""
    return threads


MODEL_THREADS = job_threads(config["runtime"]["threads"])
MODEL_GPUS = config["runtime"]["gpus"]
# The background dump and its covariance in this many independent jobs (merged exactly). Exactly
# one of the rules covariance (one dump) and merge_covariance (shards) makes a covariance file:
# the other's layer wildcard matches nothing.
BACKGROUND_SHARDS = config["background"]["shards"]
NO_LAYER = r"(?!)"
UNSHARDED_LAYER = r"\d+" if BACKGROUND_SHARDS == 1 else NO_LAYER
SHARDED_LAYER = NO_LAYER if BACKGROUND_SHARDS == 1 else r"\d+"


def model_mem_mb(wildcards):
    return config["models"][wildcards.model]["mem_mb"]


# Stats JSONs behind each figure; E6 and E8 are per model (they span layers), the others per steering layer.
STATS = {
    **{e: steering_targets(f"results/{{model}}/stats/{e}/L{{layer}}/{{trait}}.json") for e in ("e1", "e5", "e7")},
    **{
        e: steering_targets(f"results/{{model}}/stats/{e}/L{{layer}}/{{trait}}.json", GENERATION_TRAITS)
        for e in ("e2", "e3", "e4")
    },
    "e6": model_targets("results/{model}/stats/e6/{trait}.json"),
    "e8": model_targets("results/{model}/stats/e8/{trait}.json"),
}
FIGURES = [f"results/figures/{name}.{ext}" for name in sorted(STATS) if STATS[name] for ext in ("png", "pdf")]
VALIDATIONS = model_targets("results/{model}/validation/{trait}.json")


# Inputs and params shared by the statistics rules (rules/stats.smk).
STATS_PARAMS = dict(
    n_boot=config["stats"]["n_boot"],
    margin_sd=config["stats"]["equivalence_margin_sd"],
    margin_effect=config["stats"]["equivalence_margin_effect"],
    n_perm=config["stats"]["n_perm"],
    seed=config["seed"],
)


def pooled_scores(experiment):
    """Input function: the score files of ``experiment`` in every environment (E1/E3/E5 and E7 pool them);
    for a likelihood-scored trait, its one statement-pair file."""

    def inputs(wildcards):
        if wildcards.trait in LIKELIHOOD_TRAITS:
            return expand(f"results/{{model}}/scores/{experiment}/L{{layer}}/{{trait}}/statements.h5", **wildcards)
        return expand(
            f"results/{{model}}/scores/{experiment}/L{{layer}}/{{trait}}/{{environment}}.h5",
            environment=ENVIRONMENTS,
            **wildcards,
        )

    return inputs


def main_scores(experiment):
    return f"results/{{model}}/scores/{experiment}/L{{layer}}/{{trait}}/{MAIN_ENVIRONMENT}.h5"


# The raw completions are targets too: a researcher reads them, so a deleted one is generated
# again (deterministically: the same seeds give the same text) even when its scores still exist.
GENERATIONS = [
    path
    for experiment, environments in (("e1", ENVIRONMENTS), ("e2", [MAIN_ENVIRONMENT]), ("e7", ENVIRONMENTS))
    for environment in environments
    for path in steering_targets(
        f"results/{{model}}/generations/{experiment}/L{{layer}}/{{trait}}/{environment}.jsonl", GENERATION_TRAITS
    )
]


STATS_INPUTS = dict(
    vector="results/{model}/vectors/L{layer}/{trait}.h5", validation="results/{model}/validation/{trait}.json"
)
