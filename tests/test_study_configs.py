"""config/paper.yaml, the paper's own setting, plans its whole study here although its hub models,
classifiers and GPU are not available: every job of every model × trait × layer is in the DAG."""

from __future__ import annotations

import yaml
from snakemake_runner import REPO, planned_jobs, printed, snakemake

PAPER = REPO / "config" / "paper.yaml"
# Stats rules with one job per (model, trait), generated text or not.
PER_CELL_STATS = ("stats_e1", "stats_e5", "stats_e7", "null_space", "recovery", "sparsity", "independence")


def expected_jobs(config: dict) -> dict[str, int]:
    """The job count of each rule, from the study's shape (2 models, 5 traits of which 4 generate text)."""
    models, traits = len(config["models"]), len(config["traits"])
    generated = len([t for t in config["traits"] if config["scoring"][t] != "likelihood"])
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
        **{
            rule: per_cell
            for rule in ("stats_e1", "stats_e5", "stats_e7", "null_space", "recovery", "sparsity", "independence")
        },
        **{rule: models * generated for rule in ("stats_e2", "stats_e3")},
        "figure": 10,
        "summary": 1,
        "all": 1,
    }


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
