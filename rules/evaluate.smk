rule evaluate:
    input:
        model="resources/models/{model}",
        prompts="results/prompts/{trait}.json",
        perturbations="results/{model}/perturbations/L{layer}/{trait}.h5",
    output:
        "results/{model}/generations/e1/L{layer}/{trait}.jsonl",
    params:
        alpha=config["steering"]["alpha"],
        positions=config["steering"]["positions"],
        sampling={k: v for k, v in config["generation"].items() if k != "samples_per_prompt"},
        n_samples=config["generation"]["samples_per_prompt"],
        environment=config["prompts"]["environment"],
        seed=config["seed"],
        runtime=runtime_params(),
    threads: MODEL_THREADS
    log:
        "logs/{model}/L{layer}/evaluate-{trait}.log",
    benchmark:
        "logs/{model}/L{layer}/evaluate-{trait}.benchmark.tsv"
    resources:
        mem_mb=model_mem_mb,
        gpu=MODEL_GPUS,
        runtime=240,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/evaluate.py"


rule score:
    input:
        "results/{model}/generations/e1/L{layer}/{trait}.jsonl",
    output:
        "results/{model}/scores/e1/L{layer}/{trait}.h5",
    params:
        scorer=lambda w: config["scoring"][w.trait],
    log:
        "logs/{model}/L{layer}/score-{trait}.log",
    benchmark:
        "logs/{model}/L{layer}/score-{trait}.benchmark.tsv"
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/score.py"


rule stats:
    input:
        scores="results/{model}/scores/e1/L{layer}/{trait}.h5",
        vector="results/{model}/vectors/L{layer}/{trait}.h5",
    output:
        "results/{model}/stats/e1/L{layer}/{trait}.json",
    params:
        n_boot=config["stats"]["n_boot"],
        equivalence_margin_sd=config["stats"]["equivalence_margin_sd"],
        seed=config["seed"],
    log:
        "logs/{model}/L{layer}/stats-{trait}.log",
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/stats.py"
