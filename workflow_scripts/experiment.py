# Every experiment rule: the registry names the stage that writes its stats.
from steerid import experiments
from steerid.logs import logged
from steerid.pipeline import workflow

with logged(snakemake.log[0]):
    # A researcher's own experiments register themselves in this job's process too.
    experiments.load(snakemake.config["experiment_modules"])
    workflow.call(experiments.by_rule(snakemake.rule).stage, snakemake)
