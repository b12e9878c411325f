from steerid import workflow
from steerid.logs import logged
from steerid.stages import dump_contrast

with logged(snakemake.log[0]):
    dump_contrast(
        snakemake.input.model,
        snakemake.input.prompts,
        int(snakemake.wildcards.layer),
        workflow.runtime(snakemake),
        workflow.params(snakemake),
        snakemake.output[0],
    )
