# Shared helpers: wildcard constraints, target lists, param slices, and how jobs claim CPUs.
# (The config was checked in the Snakefile, before any of this.)

import os

from steerid.conditions import CONDITION_SETS
from steerid.engine.site import label_layers, site_label, site_layers
from steerid.experiments import EXPERIMENTS, scored
from steerid.experiments.settings import config_values
from steerid.scoring import measurement_of, scorer_record

ENVIRONMENTS = config["prompts"]["environments"]
# E2 and E4 run in one environment: the first listed.
MAIN_ENVIRONMENT = ENVIRONMENTS[0]
ALL_TRAITS = config["traits"] + config["other_traits"]
# How each trait is measured (its scorer's record says); only generated text has E2, E3 and E4.
MEASUREMENT = {trait: measurement_of(config["scoring"][trait]) for trait in config["traits"]}
GENERATION_TRAITS = [trait for trait in config["traits"] if MEASUREMENT[trait].generates_text]


# The file formats every studied vector is also written in (steerid.interchange's writable formats).
EXPORTED_FORMATS = ("gguf", "safetensors")


wildcard_constraints:
    model="|".join(config["models"]),
    trait="|".join(ALL_TRAITS),
    # A steering site's label: one layer (15) or several (12+15+18); rules of one layer's activations,
    # spectra and Jacobians narrow it to LAYER.
    layer=r"\d+(?:\+\d+)*",
    condition_set="|".join(CONDITION_SETS),
    environment="|".join(ENVIRONMENTS),
    figure="|".join(EXPERIMENTS),
    shard=r"\d+",
    shards=r"\d+",
    vector_format="|".join(EXPORTED_FORMATS),


def perturbing_traits(trait):
    """The traits whose vectors are ``trait``'s other-trait δ: other_traits when given, else the next
    studied trait (cyclically), so a study of several traits needs no extra extractions."""
    if config["other_traits"]:
        return config["other_traits"]
    studied = config["traits"]
    return [studied[(studied.index(trait) + 1) % len(studied)]] if len(studied) > 1 else []


def operating_point(wildcards):
    """E2's stats, whose operating point a generation at ``steering.alpha: auto`` steers at; none for a fixed α."""
    if config["steering"]["alpha"] != "auto":
        return []
    return EXPERIMENTS["e2"].target.format(model=wildcards.model, layer=wildcards.layer, trait=wildcards.trait)


def fitted_scorer_record(wildcards):
    """The validation record a fitted scorer (scoring record ``fitted``) is built from; none for other scorers."""
    if not scorer_record(config["scoring"][wildcards.trait]).fitted:
        return []
    return f"results/{wildcards.model}/validation/{wildcards.trait}.json"


LAYER = r"\d+"
MULTI_LAYER_SITE = r"\d+(?:\+\d+)+"
# Each model's steering site (models.<model>.layer: one layer or several) as its label in paths.
SITES = {model: site_label(spec["layer"]) for model, spec in config["models"].items()}


def steered_layers(model):
    """The layers of a model's steering site, ascending."""
    return site_layers(config["models"][model]["layer"])


def survey_layers(model):
    """E6/E8 layers of a model: its survey layers and every layer of its steering site, ascending."""
    return sorted(set(config["models"][model]["survey_layers"]) | set(steered_layers(model)))


def site_inputs(pattern):
    """Input function: ``pattern`` at each layer of the job's steering site (wildcard ``layer``)."""

    def inputs(wildcards):
        return [pattern.format(**{**wildcards, "layer": layer}) for layer in label_layers(wildcards.layer)]

    return inputs


def steering_targets(pattern, traits=config["traits"], models=config["models"]):
    """``pattern`` expanded over ``models`` (each at its steering site) and each of ``traits``."""
    return [pattern.format(model=model, layer=SITES[model], trait=trait) for model in models for trait in traits]


def layer_targets(pattern, traits=config["traits"]):
    """``pattern`` expanded over every model, each layer of its steering site, and each of ``traits``."""
    return [
        pattern.format(model=model, layer=layer, trait=trait)
        for model in config["models"]
        for layer in steered_layers(model)
        for trait in traits
    ]


def model_targets(pattern, traits=config["traits"]):
    """``pattern`` expanded over every model and each of ``traits`` (no layer)."""
    return [pattern.format(model=model, trait=trait) for model in config["models"] for trait in traits]


def joint_site_targets(pattern, traits=config["traits"]):
    """``pattern`` at the steering site of every model whose site has several layers, for each of ``traits``."""
    return steering_targets(pattern, traits, [model for model in config["models"] if len(steered_layers(model)) > 1])


def recovery_jacobians(wildcards):
    """E8's Jacobians: every surveyed and steered layer's, and the joint one of the site it is about."""
    files = [
        f"results/{wildcards.model}/jacobian/L{layer}/{wildcards.trait}.h5" for layer in survey_layers(wildcards.model)
    ]
    if len(label_layers(wildcards.layer)) > 1:
        files.append(f"results/{wildcards.model}/jacobian/L{wildcards.layer}/{wildcards.trait}.h5")
    return files


def joint_site_jacobians(wildcards):
    """The joint Jacobian of the model's steering site when it has several layers (E6 reports it too)."""
    if len(steered_layers(wildcards.model)) == 1:
        return []
    return [f"results/{wildcards.model}/jacobian/L{SITES[wildcards.model]}/{wildcards.trait}.h5"]


def spectrum_targets():
    return [f"results/{model}/spectra/L{layer}.h5" for model in config["models"] for layer in steered_layers(model)]


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
UNSHARDED_LAYER = LAYER if BACKGROUND_SHARDS == 1 else NO_LAYER
SHARDED_LAYER = NO_LAYER if BACKGROUND_SHARDS == 1 else LAYER


def model_mem_mb(wildcards):
    return config["models"][wildcards.model]["mem_mb"]


def experiment_targets(experiment):
    """Every stats JSON of ``experiment``, per trait it applies to: per model at its steering site, at each
    layer of the site, or per model (its scope)."""
    traits = GENERATION_TRAITS if experiment.generated_only else config["traits"]
    expand = {
        "site": steering_targets,
        "layer": layer_targets,
        "layers_and_site": lambda pattern, traits: layer_targets(pattern, traits) + joint_site_targets(pattern, traits),
        "model": model_targets,
    }
    return expand[experiment.scope](experiment.target, traits)


# Stats JSONs behind each experiment's figure and the summary.
STATS = {name: experiment_targets(experiment) for name, experiment in EXPERIMENTS.items()}
FIGURES = [f"results/figures/{name}.{ext}" for name in sorted(STATS) if STATS[name] for ext in ("png", "pdf")]
VALIDATIONS = model_targets("results/{model}/validation/{trait}.json")


def experiment_settings(experiment):
    """The params of an experiment's stats rule: the config values of its settings' fields."""
    return config_values(experiment.settings, config)


def pooled_scores(condition_set):
    """Input function: the score files of ``condition_set`` as the trait is measured (one per environment,
    or the one file of a likelihood-measured trait)."""

    def inputs(wildcards):
        patterns = MEASUREMENT[wildcards.trait].score_files(condition_set, ENVIRONMENTS)
        return [pattern.format(**wildcards) for pattern in patterns]

    return inputs


def main_scores(condition_set):
    return f"results/{{model}}/scores/{condition_set}/L{{layer}}/{{trait}}/{MAIN_ENVIRONMENT}.h5"


def experiment_scores(experiment):
    """The score files a score-reading experiment takes: its condition set's, pooled or main environment."""
    source = experiment.scores
    if source.environments == "all":
        return pooled_scores(source.condition_set)
    return main_scores(source.condition_set)


# The raw completions are targets too: a researcher reads them, so a deleted one is generated
# again (deterministically: the same seeds give the same text) even when its scores still exist.
GENERATIONS = [
    path
    for condition_set, environments in (("e1", ENVIRONMENTS), ("e2", [MAIN_ENVIRONMENT]), ("e7", ENVIRONMENTS))
    for environment in environments
    for path in steering_targets(
        f"results/{{model}}/generations/{condition_set}/L{{layer}}/{{trait}}/{environment}.jsonl", GENERATION_TRAITS
    )
]


EXPORTS = [
    path
    for vector_format in EXPORTED_FORMATS
    for path in steering_targets(f"results/{{model}}/vectors/L{{layer}}/{{trait}}.{vector_format}")
]


STATS_INPUTS = dict(
    vector="results/{model}/vectors/L{layer}/{trait}.h5", validation="results/{model}/validation/{trait}.json"
)


def own_trait_file(wildcards):
    """An own trait's file (config trait_files) is an input of its prompt set, so editing the file
    reruns it; a built-in trait's prompts are packaged with steerid and need none."""
    return config["trait_files"].get(wildcards.trait, [])


def imported_vector(wildcards):
    """The ``models.<model>.vectors.<trait>`` entry (a vector file to use as v), or None: extract v."""
    return config["models"][wildcards.model]["vectors"].get(wildcards.trait)


def imported_vector_file(wildcards):
    entry = imported_vector(wildcards)
    return {} if entry is None else {"imported_file": entry["file"]}
