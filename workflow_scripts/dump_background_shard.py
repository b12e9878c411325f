from steerid import workflow
from steerid.logs import logged
from steerid.stages import dump_background

with logged(snakemake.log[0]):
    p = snakemake.params
    dump_background(
        snakemake.input.model,
        p.layer,
        p.n_texts,
        p.max_length,
        workflow.runtime(snakemake),
        workflow.params(snakemake),
        snakemake.output[0],
        shard=p.shard,
        shards=p.shards,
    )
