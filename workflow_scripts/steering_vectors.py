from steerid import workflow
from steerid.logs import logged
from steerid.stages import steering_vector

with logged(snakemake.log[0]):
    steering_vector(snakemake.input[0], workflow.params(snakemake), snakemake.output[0])
