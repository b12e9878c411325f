from steerid import workflow
from steerid.logs import logged
from steerid.stages import perturbations

with logged(snakemake.log[0]):
    p = snakemake.params
    perturbations(snakemake.input.vector, snakemake.input.spectrum, p.n_orthogonal, p.n_null, p.n_top,
                  p.null_fraction, p.top_k, p.seed, workflow.params(snakemake), snakemake.output[0])
