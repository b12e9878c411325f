from steerid.logs import logged
from steerid.prompts import ENVIRONMENTS
from steerid.stages import prompts

with logged(snakemake.log[0]):
    prompts(snakemake.wildcards.trait, snakemake.params.n_pairs, snakemake.params.n_eval, ENVIRONMENTS,
            snakemake.params.seed, snakemake.output[0])
