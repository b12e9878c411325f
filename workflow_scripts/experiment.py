# Every experiment rule: the registry names the stage that writes its stats.
from steerid import experiments, workflow
from steerid.logs import logged

with logged(snakemake.log[0]):
    workflow.call(experiments.by_rule(snakemake.rule).stage, snakemake)
