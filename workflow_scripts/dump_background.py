from steerid import workflow
from steerid.logs import logged
from steerid.stages import dump_background

with logged(snakemake.log[0]):
    dump_background(
        snakemake.input.model,
        int(snakemake.wildcards.layer),
        snakemake.params.n_texts,
        snakemake.params.max_length,
        workflow.runtime(snakemake),
        workflow.params(snakemake),
        snakemake.output[0],
    )
