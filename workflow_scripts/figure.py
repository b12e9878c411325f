from steerid import stages, workflow
from steerid.logs import logged

with logged(snakemake.log[0]):
    workflow.call(stages.figure, snakemake)
