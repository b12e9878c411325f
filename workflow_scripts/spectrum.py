from steerid import workflow
from steerid.logs import logged
from steerid.stages import spectrum_stage

with logged(snakemake.log[0]):
    spectrum_stage(snakemake.input[0], snakemake.params.top_k, snakemake.params.rank_thresholds,
                   snakemake.params.seed, workflow.params(snakemake), snakemake.output[0])
