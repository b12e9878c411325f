from steerid.logs import logged
from steerid.stages import summary

with logged(snakemake.log[0]):
    summary(list(snakemake.input.stats), list(snakemake.input.spectra), list(snakemake.params.figures),
            snakemake.output[0])
