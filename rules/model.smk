rule prepare_model:
    output:
        directory("resources/models/{model}"),
    log:
        "logs/{model}/prepare_model.log",
    cache: "omit-software"
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=model_mem_mb,
        runtime=30,
    params:
        spec=lambda w: config["models"][w.model]["spec"],
        revision=lambda w: config["models"][w.model].get("revision"),
    script:
        "../workflow_scripts/prepare_model.py"
