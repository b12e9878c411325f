# Endpoints of every experiment, one stats JSON per (model, trait).


# One rule per experiment computed from a condition set's scores, named by its registry record.
for experiment in scored():

    rule:
        name:
            experiment.rule
        input:
            **STATS_INPUTS,
            scores=experiment_scores(experiment),
        output:
            experiment.target,
        log:
            f"logs/{{model}}/L{{layer}}/{experiment.rule}-{{trait}}.log",
        conda:
            "../envs/steerid.yaml"
        resources:
            cpu_threads=cpu_threads,
            mem_mb=2000,
            runtime=10,
        params:
            **experiment_settings(experiment),
        script:
            "../workflow_scripts/experiment.py"


rule logit_distance:
    input:
        model="resources/models/{model}",
        generations=f"results/{{model}}/generations/e1/L{{layer}}/{{trait}}/{MAIN_ENVIRONMENT}.jsonl",
        vector="results/{model}/vectors/L{layer}/{trait}.h5",
        perturbations="results/{model}/perturbations/L{layer}/{trait}.h5",
        operating_point=operating_point,
    output:
        EXPERIMENTS["e4"].target,
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
        # The continuations are teacher-forced steered as the generations were.
        positions=config["steering"]["positions"],
        norm_preserving=config["steering"]["norm_preserving"],
        n_sequences=config["logit_distance"]["n_sequences"],
        runtime=runtime_params(),
    script:
        "../workflow_scripts/experiment.py"


rule null_space:
    input:
        spectra=lambda w: [f"results/{w.model}/spectra/L{layer}.h5" for layer in survey_layers(w.model)],
        jacobians=lambda w: [f"results/{w.model}/jacobian/L{layer}/{w.trait}.h5" for layer in survey_layers(w.model)],
        sites=joint_site_jacobians,
    output:
        EXPERIMENTS["e6"].target,
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
        "../workflow_scripts/experiment.py"


rule recovery:
    input:
        jacobians=recovery_jacobians,
    output:
        EXPERIMENTS["e8"].target,
    log:
        "logs/{model}/L{layer}/recovery-{trait}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=10,
    params:
        rank_threshold=config["jacobian"]["recovery_threshold"],
    script:
        "../workflow_scripts/experiment.py"


rule sparsity:
    input:
        vector="results/{model}/vectors/L{layer}/{trait}.h5",
        jacobian="results/{model}/jacobian/L{layer}/{trait}.h5",
    output:
        EXPERIMENTS["e9"].target,
    log:
        "logs/{model}/L{layer}/sparsity-{trait}.log",
    benchmark:
        "logs/{model}/L{layer}/sparsity-{trait}.benchmark.tsv"
    wildcard_constraints:
        layer=LAYER,
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=30,
    params:
        **experiment_settings(EXPERIMENTS["e9"]),
    script:
        "../workflow_scripts/experiment.py"


rule independence:
    input:
        contrast="results/{model}/activations/L{layer}/contrast-{trait}.h5",
    output:
        EXPERIMENTS["e10"].target,
    log:
        "logs/{model}/L{layer}/independence-{trait}.log",
    benchmark:
        "logs/{model}/L{layer}/independence-{trait}.benchmark.tsv"
    wildcard_constraints:
        layer=LAYER,
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=30,
    params:
        **experiment_settings(EXPERIMENTS["e10"]),
    script:
        "../workflow_scripts/experiment.py"
