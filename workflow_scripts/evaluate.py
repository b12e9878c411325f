from steerid import workflow
from steerid.logs import logged
from steerid.stages import evaluate

with logged(snakemake.log[0]):
    p = snakemake.params
    evaluate(snakemake.input.model, snakemake.input.prompts, snakemake.input.perturbations,
             int(snakemake.wildcards.layer), p.alpha, p.positions, p.sampling, p.n_samples, p.environment,
             p.seed, workflow.runtime(snakemake), snakemake.output[0])
