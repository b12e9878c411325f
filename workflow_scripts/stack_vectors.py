from steerid.logs import logged
from steerid.pipeline import stages, workflow

with logged(snakemake.log[0]):
    workflow.call(stages.stack_vectors, snakemake)
