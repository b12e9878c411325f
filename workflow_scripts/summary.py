from steerid.logs import logged
from steerid.pipeline import report, workflow

with logged(snakemake.log[0]):
    workflow.call(report.summary, snakemake)
