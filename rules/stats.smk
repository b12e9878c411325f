# Endpoints of every experiment, one stats JSON per (model, trait).


rule stats_e1:
    input:
        **STATS_INPUTS,
        scores=pooled_scores("e1"),
    output:
        "results/{model}/stats/e1/L{layer}/{trait}.json",
    log:
        "logs/{model}/L{layer}/stats_e1-{trait}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=10,
    params:
        **STATS_PARAMS,
    script:
        "../workflow_scripts/stats_e1.py"


rule stats_e3:
    input:
        **STATS_INPUTS,
        scores=pooled_scores("e1"),
    output:
        "results/{model}/stats/e3/L{layer}/{trait}.json",
    log:
        "logs/{model}/L{layer}/stats_e3-{trait}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=10,
    params:
        **STATS_PARAMS,
    script:
        "../workflow_scripts/stats_e3.py"


rule stats_e5:
    input:
        **STATS_INPUTS,
        scores=pooled_scores("e1"),
    output:
        "results/{model}/stats/e5/L{layer}/{trait}.json",
    log:
        "logs/{model}/L{layer}/stats_e5-{trait}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=10,
    params:
        n_boot=config["stats"]["n_boot"],
        margin_sd=config["stats"]["equivalence_margin_sd"],
        seed=config["seed"],
    script:
        "../workflow_scripts/stats_e5.py"


rule stats_e2:
    input:
        **STATS_INPUTS,
        scores=main_scores("e2"),
    output:
        "results/{model}/stats/e2/L{layer}/{trait}.json",
    log:
        "logs/{model}/L{layer}/stats_e2-{trait}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=10,
    params:
        alphas=config["alpha_sweep"]["alphas"],
        max_perplexity_ratio=config["alpha_sweep"]["max_perplexity_ratio"],
        n_boot=config["stats"]["n_boot"],
        seed=config["seed"],
    script:
        "../workflow_scripts/stats_e2.py"


rule stats_e7:
    input:
        **STATS_INPUTS,
        scores=pooled_scores("e7"),
    output:
        "results/{model}/stats/e7/L{layer}/{trait}.json",
    log:
        "logs/{model}/L{layer}/stats_e7-{trait}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=10,
    params:
        n_boot=config["stats"]["n_boot"],
        margin_sd=config["stats"]["equivalence_margin_sd"],
        seed=config["seed"],
    script:
        "../workflow_scripts/stats_e7.py"


rule logit_distance:
    input:
        model="resources/models/{model}",
        generations=f"results/{{model}}/generations/e1/L{{layer}}/{{trait}}/{MAIN_ENVIRONMENT}.jsonl",
        vector="results/{model}/vectors/L{layer}/{trait}.h5",
        perturbations="results/{model}/perturbations/L{layer}/{trait}.h5",
    output:
        "results/{model}/stats/e4/L{layer}/{trait}.json",
    log:
        "logs/{model}/L{layer}/logit_distance-{trait}.log",
    benchmark:
        "logs/{model}/L{layer}/logit_distance-{trait}.benchmark.tsv"
    conda:
        "../envs/steerid.yaml"
    threads: MODEL_THREADS
    resources:
        cpu_threads=cpu_threads,
        mem_mb=model_mem_mb,
        gpu=MODEL_GPUS,
        runtime=60,
    params:
        alpha=config["steering"]["alpha"],
        n_sequences=config["logit_distance"]["n_sequences"],
        runtime=runtime_params(),
    script:
        "../workflow_scripts/logit_distance.py"


rule null_space:
    input:
        spectra=lambda w: [f"results/{w.model}/spectra/L{layer}.h5" for layer in survey_layers(w.model)],
        jacobians=lambda w: [f"results/{w.model}/jacobian/L{layer}/{w.trait}.h5" for layer in survey_layers(w.model)],
    output:
        "results/{model}/stats/e6/{trait}.json",
    log:
        "logs/{model}/null_space-{trait}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=10,
    params:
        null_fraction=config["perturbations"]["null_fraction"],
        rank_thresholds=config["jacobian"]["rank_thresholds"],
        variance_fractions=config["spectrum"]["variance_fractions"],
        stability_k=config["jacobian"]["stability_k"],
    script:
        "../workflow_scripts/null_space.py"


rule recovery:
    input:
        jacobians=lambda w: [f"results/{w.model}/jacobian/L{layer}/{w.trait}.h5" for layer in survey_layers(w.model)],
    output:
        "results/{model}/stats/e8/{trait}.json",
    log:
        "logs/{model}/recovery-{trait}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=10,
    params:
        steering_layer=lambda w: config["models"][w.model]["layer"],
        rank_threshold=config["jacobian"]["recovery_threshold"],
    script:
        "../workflow_scripts/recovery.py"
