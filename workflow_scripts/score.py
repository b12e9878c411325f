from steerid import workflow
from steerid.logs import logged
from steerid.stages import score

with logged(snakemake.log[0]):
    score(snakemake.input[0], snakemake.wildcards.trait, snakemake.params.scorer, workflow.params(snakemake),
          snakemake.output[0])
