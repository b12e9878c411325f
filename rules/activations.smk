rule dump_contrast:
    input:
        model="resources/models/{model}",
        prompts="results/prompts/{trait}.json",
    output:
        "results/{model}/activations/L{layer}/contrast-{trait}.h5",
    log:
        "logs/{model}/L{layer}/dump_contrast-{trait}.log",
    wildcard_constraints:
        layer=LAYER,
    cache: "omit-software"
    conda:
        "../envs/steerid.yaml"
    threads: MODEL_THREADS
    resources:
        cpu_threads=cpu_threads,
        mem_mb=model_mem_mb,
        gpu=MODEL_GPUS,
        runtime=60,
    params:
        # Wildcards are not part of Snakemake's cache key; params are, so the layer is one.
        layer=lambda w: int(w.layer),
        runtime=runtime_params(),
    script:
        "../workflow_scripts/dump_contrast.py"


rule dump_background:
    input:
        model="resources/models/{model}",
    output:
        "results/{model}/activations/L{layer}/background.h5",
    log:
        "logs/{model}/L{layer}/dump_background.log",
    wildcard_constraints:
        layer=LAYER,
    cache: "omit-software"
    conda:
        "../envs/steerid.yaml"
    threads: MODEL_THREADS
    resources:
        cpu_threads=cpu_threads,
        mem_mb=model_mem_mb,
        gpu=MODEL_GPUS,
        runtime=60,
    params:
        layer=lambda w: int(w.layer),
        n_texts=config["background"]["n_texts"],
        max_length=config["background"]["max_length"],
        runtime=runtime_params(),
    script:
        "../workflow_scripts/dump_background.py"


# background.shards > 1: shard {shard} of {shards} (a contiguous slice of the texts) dumped by its
# own job; rule merge_covariance (rules/spectra.smk) joins the shards' accumulators.
rule dump_background_shard:
    input:
        model="resources/models/{model}",
    output:
        "results/{model}/activations/L{layer}/background/{shard}-of-{shards}.h5",
    log:
        "logs/{model}/L{layer}/dump_background-{shard}-of-{shards}.log",
    wildcard_constraints:
        layer=LAYER,
    cache: "omit-software"
    conda:
        "../envs/steerid.yaml"
    threads: MODEL_THREADS
    resources:
        cpu_threads=cpu_threads,
        mem_mb=model_mem_mb,
        gpu=MODEL_GPUS,
        runtime=60,
    params:
        layer=lambda w: int(w.layer),
        shard=lambda w: int(w.shard),
        shards=lambda w: int(w.shards),
        n_texts=config["background"]["n_texts"],
        max_length=config["background"]["max_length"],
        runtime=runtime_params(),
    script:
        "../workflow_scripts/dump_background.py"
