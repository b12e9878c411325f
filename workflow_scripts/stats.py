from steerid import workflow
from steerid.logs import logged
from steerid.stages import stats

with logged(snakemake.log[0]):
    p = snakemake.params
    stats(snakemake.input.scores, snakemake.input.vector, p.n_boot, p.equivalence_margin_sd, p.seed,
          workflow.params(snakemake), snakemake.output[0])
