from steerid import workflow
from steerid.logs import logged
from steerid.stages import spectrum_stage

with logged(snakemake.log[0]):
    p = snakemake.params
    spectrum_stage(
        snakemake.input[0],
        p.top_k,
        p.rank_thresholds,
        p.variance_fractions,
        p.seed,
        workflow.params(snakemake),
        snakemake.output[0],
    )
