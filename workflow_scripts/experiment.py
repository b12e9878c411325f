# Every experiment rule: the registry names the stage that writes its stats.
from steerid import experiments
from steerid.logs import logged
from steerid.pipeline import workflow

with logged(snakemake.log[0]):
    experiments.load(snakemake.config["experiment_modules"])  # the rule may be a researcher's experiment
    workflow.call(experiments.by_rule(snakemake.rule).stage, snakemake)
