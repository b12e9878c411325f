rule prepare_model:
    output:
        "resources/models/{model}/model.json",
    params:
        spec=lambda w: config["models"][w.model]["spec"],
        revision=lambda w: config["models"][w.model].get("revision"),
    log:
        "logs/{model}/prepare_model.log",
    benchmark:
        "logs/{model}/prepare_model.benchmark.tsv"
    resources:
        mem_mb=6000,
        runtime=30,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/prepare_model.py"
