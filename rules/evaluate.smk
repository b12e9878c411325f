rule validate_scorer:
    input:
        model="resources/models/{model}",
        prompts="results/prompts/{trait}.json",
    output:
        "results/{model}/validation/{trait}.json",
    log:
        "logs/{model}/validate_scorer-{trait}.log",
    benchmark:
        "logs/{model}/validate_scorer-{trait}.benchmark.tsv"
    conda:
        "../envs/steerid.yaml"
    threads: MODEL_THREADS
    resources:
        cpu_threads=cpu_threads,
        mem_mb=model_mem_mb,
        gpu=MODEL_GPUS,
        runtime=60,
    params:
        scorer=lambda w: config["scoring"][w.trait],
        min_auroc=config["scoring"]["min_auroc"],
        n_texts=config["scoring"]["validation_texts"],
        sampling={k: v for k, v in config["generation"].items() if k != "samples_per_prompt"},
        seed=config["seed"],
        runtime=runtime_params(),
    script:
        "../workflow_scripts/validate_scorer.py"


rule evaluate:
    input:
        model="resources/models/{model}",
        prompts="results/prompts/{trait}.json",
        vector="results/{model}/vectors/L{layer}/{trait}.h5",
        perturbations="results/{model}/perturbations/L{layer}/{trait}.h5",
        operating_point=lambda w: [] if w.condition_set == "e2" else operating_point(w),
    output:
        "results/{model}/generations/{condition_set}/L{layer}/{trait}/{environment}.jsonl",
    log:
        "logs/{model}/L{layer}/evaluate-{condition_set}-{trait}-{environment}.log",
    benchmark:
        "logs/{model}/L{layer}/evaluate-{condition_set}-{trait}-{environment}.benchmark.tsv"
    conda:
        "../envs/steerid.yaml"
    threads: MODEL_THREADS
    resources:
        cpu_threads=cpu_threads,
        mem_mb=model_mem_mb,
        gpu=MODEL_GPUS,
        runtime=480,
    params:
        # Each condition set sees only the settings it uses, so changing one reruns only its generations.
        alpha=lambda w: None if w.condition_set == "e2" else config["steering"]["alpha"],
        positions=config["steering"]["positions"],
        norm_preserving=config["steering"]["norm_preserving"],
        n_alone=lambda w: config["perturbations"]["n_alone"] if w.condition_set == "e1" else 0,
        alphas=lambda w: config["alpha_sweep"]["alphas"] if w.condition_set == "e2" else [],
        alpha_units=lambda w: config["alpha_sweep"]["units"] if w.condition_set == "e2" else None,
        sampling={k: v for k, v in config["generation"].items() if k != "samples_per_prompt"},
        n_samples=config["generation"]["samples_per_prompt"],
        seed=config["seed"],
        runtime=runtime_params(),
    script:
        "../workflow_scripts/evaluate.py"


rule score:
    input:
        generations="results/{model}/generations/{condition_set}/L{layer}/{trait}/{environment}.jsonl",
        validation=fitted_scorer_record,
    output:
        "results/{model}/scores/{condition_set}/L{layer}/{trait}/{environment}.h5",
    log:
        "logs/{model}/L{layer}/score-{condition_set}-{trait}-{environment}.log",
    benchmark:
        "logs/{model}/L{layer}/score-{condition_set}-{trait}-{environment}.benchmark.tsv"
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=30,
    params:
        scorer=lambda w: config["scoring"][w.trait],
    script:
        "../workflow_scripts/score.py"


rule score_statements:
    input:
        model="resources/models/{model}",
        prompts="results/prompts/{trait}.json",
        vector="results/{model}/vectors/L{layer}/{trait}.h5",
        perturbations="results/{model}/perturbations/L{layer}/{trait}.h5",
    output:
        "results/{model}/scores/{condition_set}/L{layer}/{trait}/statements.h5",
    log:
        "logs/{model}/L{layer}/score_statements-{condition_set}-{trait}.log",
    benchmark:
        "logs/{model}/L{layer}/score_statements-{condition_set}-{trait}.benchmark.tsv"
    conda:
        "../envs/steerid.yaml"
    threads: MODEL_THREADS
    resources:
        cpu_threads=cpu_threads,
        mem_mb=model_mem_mb,
        gpu=MODEL_GPUS,
        runtime=60,
    params:
        # Likelihood-scored traits (truthfulness, an own trait's A/B items): no generation; every position is steered.
        alpha=config["steering"]["alpha"],
        norm_preserving=config["steering"]["norm_preserving"],
        n_alone=lambda w: config["perturbations"]["n_alone"] if w.condition_set == "e1" else 0,
        scorer=lambda w: config["scoring"][w.trait],
        runtime=runtime_params(),
    script:
        "../workflow_scripts/score_statements.py"
