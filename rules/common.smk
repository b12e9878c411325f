# Shared helpers: config checks that need Python, wildcard constraints, target lists and param slices.

from steerid.conditions import EXPERIMENTS
from steerid.prompts import select_prompt_set
from steerid.scoring import MODEL_SCORERS
from steerid.specs import spec_kind


def check_config(config):
    """Checks JSON Schema cannot express; each error names the offending value."""
    for name, model in config["models"].items():
        try:
            spec_kind(model["spec"])
        except ValueError as err:
            raise ValueError(f"config models.{name}.spec: {err}") from None
    for trait in config["traits"]:
        try:
            select_prompt_set(trait, config["prompts"]["n_pairs"], config["prompts"]["n_eval"],
                              config["prompts"]["environments"], config["seed"])
        except ValueError as err:
            raise ValueError(f"config prompts: {err}") from None
    overlap = sorted(set(config["traits"]) & set(config["other_traits"]))
    if overlap:
        raise ValueError(f"config other_traits: {overlap} are also in traits; a trait cannot perturb its own vector")
    n_eval = config["prompts"]["n_eval"]
    if config["jacobian"]["n_prompts"] > n_eval:
        raise ValueError(f"config jacobian.n_prompts: {config['jacobian']['n_prompts']} exceeds prompts.n_eval = {n_eval}")


check_config(config)

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


MODEL_THREADS = config["runtime"]["threads"]
MODEL_GPUS = config["runtime"]["gpus"]


def model_mem_mb(wildcards):
    return config["models"][wildcards.model]["mem_mb"]


# Stats JSONs behind each figure; E6 and E8 are per model (they span layers), the others per steering layer.
STATS = {
    **{e: steering_targets(f"results/{{model}}/stats/{e}/L{{layer}}/{{trait}}.json") for e in ("e1", "e5", "e7")},
    **{e: steering_targets(f"results/{{model}}/stats/{e}/L{{layer}}/{{trait}}.json", GENERATION_TRAITS)
       for e in ("e2", "e3", "e4")},
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
        return expand(f"results/{{model}}/scores/{experiment}/L{{layer}}/{{trait}}/{{environment}}.h5",
                      environment=ENVIRONMENTS, **wildcards)
    return inputs


def main_scores(experiment):
    return f"results/{{model}}/scores/{experiment}/L{{layer}}/{{trait}}/{MAIN_ENVIRONMENT}.h5"


STATS_INPUTS = dict(vector="results/{model}/vectors/L{layer}/{trait}.h5", validation="results/{model}/validation/{trait}.json")
