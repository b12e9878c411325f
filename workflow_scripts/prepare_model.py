from steerid.logs import logged
from steerid.stages import prepare

with logged(snakemake.log[0]):
    prepare(snakemake.params.spec, snakemake.params.revision, snakemake.output[0])
