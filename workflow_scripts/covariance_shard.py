from steerid import workflow
from steerid.logs import logged
from steerid.stages import covariance_shard

with logged(snakemake.log[0]):
    covariance_shard(
        snakemake.input[0],
        snakemake.params.chunk_rows,
        snakemake.params.sink_positions,
        workflow.params(snakemake),
        snakemake.output[0],
    )
