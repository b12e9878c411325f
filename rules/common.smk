# Shared helpers: config checks that need Python, wildcard constraints, target lists and param slices.

from steerid.prompts import ENVIRONMENTS, select_prompt_set
from steerid.scoring import MODEL_SCORERS, TRAIT_SCORERS
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
            select_prompt_set(trait, config["prompts"]["n_pairs"], config["prompts"]["n_eval"], ENVIRONMENTS, config["seed"])
        except ValueError as err:
            raise ValueError(f"config prompts: {err}") from None
        scorer = config["scoring"][trait]
        if scorer in MODEL_SCORERS:
            raise ValueError(
                f"config traits: trait {trait!r} is scored by {scorer!r}, which needs the steered model itself; "
                "the generation experiments score completions only (text scorers: "
                f"{[s for s in TRAIT_SCORERS[trait] if s not in MODEL_SCORERS]})"
            )


check_config(config)


wildcard_constraints:
    model="|".join(config["models"]),
    trait="|".join(config["traits"]),
    layer=r"\d+",


def steering_targets(pattern):
    """``pattern`` expanded over every model (at its steering layer) and trait."""
    return [
        pattern.format(model=model, layer=spec["layer"], trait=trait)
        for model, spec in config["models"].items()
        for trait in config["traits"]
    ]


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


FIGURES = ["results/figures/e1_orthogonal.png"]
