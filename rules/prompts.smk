rule prompts:
    output:
        "results/prompts/{trait}.json",
    params:
        n_pairs=config["prompts"]["n_pairs"],
        n_eval=config["prompts"]["n_eval"],
        seed=config["seed"],
    log:
        "logs/prompts/{trait}.log",
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/prompts.py"
