rule prompts:
    output:
        "results/prompts/{trait}.json",
    params:
        # Wildcards are not part of Snakemake's cache key; params are, so the trait is one.
        trait=lambda w: w.trait,
        n_pairs=config["prompts"]["n_pairs"],
        n_eval=config["prompts"]["n_eval"],
        environments=ENVIRONMENTS,
        seed=config["seed"],
    log:
        "logs/prompts/{trait}.log",
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/prompts.py"
