# steerid: is this steering vector really the direction, or one of many that do the same?
# Reproduces arXiv 2602.06801 on any Hugging Face causal LM. Entry point: `snakemake --cores 8`.

from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


# config.yaml is the default study; a --configfile replaces it rather than merging into it (so a
# user's model list is not silently extended by the default model). Keys it leaves out take the
# schema's defaults.
if not workflow.overwrite_configfiles:

    configfile: Path(workflow.basedir) / "config.yaml"


validate(config, "schemas/config.schema.yaml")


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
