from steerid import workflow
from steerid.logs import logged
from steerid.stages import stats

with logged(snakemake.log[0]):
    stats(snakemake.input.scores, snakemake.input.vector, snakemake.params.n_boot, snakemake.params.seed,
          workflow.params(snakemake), snakemake.output[0])
