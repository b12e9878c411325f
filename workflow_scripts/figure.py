from steerid import stages
from steerid.logs import logged

with logged(snakemake.log[0]):
    stages.figure(
        snakemake.wildcards.figure,
        list(snakemake.input),
        snakemake.params.dpi,
        [snakemake.output.png, snakemake.output.pdf],
    )
