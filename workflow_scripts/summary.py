from steerid import stages
from steerid.logs import logged

with logged(snakemake.log[0]):
    experiments = {name: list(files) for name, files in snakemake.input.items() if name.startswith("e")}
    stages.summary(
        experiments,
        list(snakemake.input.validations),
        list(snakemake.input.spectra),
        list(snakemake.params.figures),
        snakemake.output[0],
    )
