"""The shipped studies plan every job of every model × trait × layer: the default (five traits on
SmolLM2), config/two-models.yaml layered over it (Gemma 3 270M too), and config/paper.yaml, the
paper's own setting, whose hub models, classifiers and GPU are not available here."""

from __future__ import annotations

import pytest
import yaml
from snakemake.utils import update_config
from snakemake_runner import REPO, planned_jobs, printed, snakemake

from steerid.scoring import default_scorer, measurement_of

DEFAULT = REPO / "config.yaml"
TWO_MODELS = REPO / "config" / "two-models.yaml"
PAPER = REPO / "config" / "paper.yaml"
# Stats rules with one job per (model, trait), generated text or not.
PER_CELL_STATS = ("stats_e1", "stats_e5", "stats_e7", "null_space", "recovery", "sparsity", "independence")


def expected_jobs(config: dict) -> dict[str, int]:
    """The job count of each rule, from the study's shape (models, traits, which traits generate text)."""
    models, traits = len(config["models"]), len(config["traits"])
    scorers = [config["scoring"].get(trait, default_scorer(trait)) for trait in config["traits"]]
    generated = len([name for name in scorers if measurement_of(name).generates_text])
    environments = len(config["prompts"]["environments"])
    layers = sum(len(set(spec["survey_layers"]) | {spec["layer"]}) for spec in config["models"].values())
    per_cell = models * traits
    # E1 and E7 in every environment, E2 in the first.
    generations = models * generated * (2 * environments + 1)
    return {
        "prepare_model": models,
        "prompts": traits,
        "dump_background": layers,
        "covariance": layers,
        "spectrum": layers,
        "dump_contrast": per_cell,
        "steering_vectors": per_cell,
        "export_vector": 2 * per_cell,
        "validate_scorer": per_cell,
        "perturbations": per_cell,
        "jacobian": traits * layers,
        "evaluate": generations,
        "score": generations,
        "score_statements": models * (traits - generated) * 2,
        "logit_distance": models * generated,
        **{rule: per_cell for rule in PER_CELL_STATS},
        **{rule: models * generated for rule in ("stats_e2", "stats_e3")},
        "figure": 10,
        "summary": 1,
        "all": 1,
    }


def layered(*paths) -> dict:
    """The study that ``--configfile`` ``paths`` give, merged as Snakemake merges them."""
    config: dict = {}
    for path in paths:
        update_config(config, yaml.safe_load(path.read_text()))
    return config


@pytest.mark.parametrize(
    ("configfiles", "models", "generated"),
    [((), ["smollm2-135m"], ["formality", "sentiment"]), ((TWO_MODELS,), ["smollm2-135m", "gemma3-270m"], None)],
    ids=["default", "two-models"],
)
def test_the_shipped_offline_studies_plan_all_five_traits(tmp_path, configfiles, models, generated):
    config = layered(DEFAULT, *configfiles)
    flags = ["--configfile", str(DEFAULT), *map(str, configfiles)] if configfiles else []
    result = snakemake(tmp_path, *flags, "--cores", "8", "-n")
    output = printed(result)
    assert result.returncode == 0, output[-3000:]
    assert list(config["models"]) == models and len(config["traits"]) == 5
    assert planned_jobs(output) == expected_jobs(config)
    for model in models:
        assert f"results/{model}/stats/e1/L" in output
    if generated:  # the text traits are the ones whose scorers passed the gate on this model's text
        assert [t for t in config["traits"] if f"generations/e2/L15/{t}/" in output] == generated
    assert "Warning" not in output and not (tmp_path / "results").exists()


def test_the_papers_setting_plans_every_job_and_warns_about_what_is_not_here(tmp_path):
    config = yaml.safe_load(PAPER.read_text())
    result = snakemake(tmp_path, "--configfile", str(PAPER), "--cores", "8", "-n")
    output = printed(result)
    assert result.returncode == 0, output[-3000:]
    assert planned_jobs(output) == expected_jobs(config)
    for name, spec in config["models"].items():
        assert f"Warning: config models.{name}.spec = '{spec['spec']}'" in output
    assert "a real run here stops at this point" in output
    assert not (tmp_path / "results").exists()
