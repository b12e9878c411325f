from steerid import workflow
from steerid.logs import logged
from steerid.stages import merge_covariance

with logged(snakemake.log[0]):
    merge_covariance(list(snakemake.input), workflow.params(snakemake), snakemake.output[0])
