rule prompts:
    input:
        trait_file=own_trait_file,
    output:
        "results/prompts/{trait}.json",
    log:
        "logs/prompts/{trait}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=5,
    params:
        # Wildcards are not part of Snakemake's cache key; params are, so the trait is one.
        trait=lambda w: w.trait,
        n_pairs=config["prompts"]["n_pairs"],
        n_eval=config["prompts"]["n_eval"],
        environments=ENVIRONMENTS,
        seed=config["seed"],
    script:
        "../workflow_scripts/prompts.py"
