from steerid import report, workflow
from steerid.logs import logged

with logged(snakemake.log[0]):
    workflow.call(report.figure, snakemake)
