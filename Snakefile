# steerid: is this steering vector really the direction, or one of many that do the same?
# Reproduces arXiv 2602.06801 on any Hugging Face causal LM. Entry point: `snakemake --cores 8`.

from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import min_version

from steerid import experiments, prompts
from steerid.pipeline.config_checks import RunContext, check_config, check_lock
from steerid.io import remove_stale_partials

min_version("9.0")


# config.yaml is the default study; a --configfile replaces it rather than merging into it (so a
# user's model list is not silently extended by the default model). Keys it leaves out take the
# schema's defaults.
if not workflow.overwrite_configfiles:

    configfile: Path(workflow.basedir) / "config.yaml"


# Everything knowable without loading a model is checked here, before any rule exists: a bad value
# stops the run before Snakemake plans a job, so it never deletes the outputs of jobs it would
# rerun. A cluster executor submits with --jobs (nodes); its jobs parse this file again on the
# nodes, where the machine-specific checks (hub cache, device) are not repeated.
RUN = RunContext(
    dry_run=workflow.output_settings.dryrun,
    jobs_run_here=workflow.nodes is None,
    main_process=workflow.is_main_process,
)
for warning in check_config(config, Path(workflow.basedir) / "schemas" / "config.schema.yaml", RUN):
    logger.warning(f"Warning: {warning}")
prompts.register_trait_files(config["trait_files"])
# A researcher's own experiments register themselves before the rules that iterate the registry exist.
experiments.load(config["experiment_modules"])
# A dry run ignores Snakemake's lock; it must not answer "all is well" for a directory that a
# killed run left locked (a real run refuses to start there).
if RUN.dry_run and RUN.main_process:
    check_lock()
# Partial files whose writer is gone (a job killed mid-write) are never finished: remove them.
# Live writers (this host's processes that still exist, other hosts' jobs) are left alone.
if not RUN.dry_run and RUN.main_process:
    for stale in remove_stale_partials("results") + remove_stale_partials("resources"):
        logger.info(f"removed {stale}: its writer is gone")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/model.smk"
include: "rules/prompts.smk"
include: "rules/activations.smk"
include: "rules/vectors.smk"
include: "rules/spectra.smk"
include: "rules/evaluate.smk"
include: "rules/stats.smk"
include: "rules/figures.smk"


rule all:
    input:
        "results/summary.md",
        FIGURES,
        GENERATIONS,
        EXPORTS,
