from steerid.logs import logged
from steerid.stages import figure

with logged(snakemake.log[0]):
    figure(list(snakemake.input), snakemake.params.dpi, snakemake.output[0])
