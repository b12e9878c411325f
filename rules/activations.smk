rule dump_contrast:
    input:
        model="resources/models/{model}/model.json",
        prompts="results/prompts/{trait}.json",
    output:
        "results/{model}/activations/L{layer}/contrast-{trait}.h5",
    params:
        runtime=runtime_params(),
    threads: MODEL_THREADS
    log:
        "logs/{model}/L{layer}/dump_contrast-{trait}.log",
    benchmark:
        "logs/{model}/L{layer}/dump_contrast-{trait}.benchmark.tsv"
    resources:
        mem_mb=6000,
        runtime=60,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/dump_contrast.py"


rule dump_background:
    input:
        model="resources/models/{model}/model.json",
    output:
        "results/{model}/activations/L{layer}/background.h5",
    params:
        n_texts=config["background"]["n_texts"],
        max_length=config["background"]["max_length"],
        runtime=runtime_params(),
    threads: MODEL_THREADS
    log:
        "logs/{model}/L{layer}/dump_background.log",
    benchmark:
        "logs/{model}/L{layer}/dump_background.benchmark.tsv"
    resources:
        mem_mb=6000,
        runtime=60,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/dump_background.py"
