rule covariance:
    input:
        background="results/{model}/activations/L{layer}/background.h5",
    output:
        "results/{model}/covariance/L{layer}.h5",
    log:
        "logs/{model}/L{layer}/covariance.log",
    wildcard_constraints:
        layer=UNSHARDED_LAYER,
    cache: "omit-software"
    conda:
        "../envs/steerid.yaml"
    threads: job_threads(2)
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=30,
    params:
        chunk_rows=config["covariance"]["chunk_rows"],
        sink_positions=config["covariance"]["sink_positions"],
    script:
        "../workflow_scripts/covariance.py"


rule merge_covariance:
    input:
        shards=expand(
            "results/{{model}}/covariance/L{{layer}}/{shard}-of-{shards}.h5",
            shard=range(BACKGROUND_SHARDS),
            shards=BACKGROUND_SHARDS,
        ),
    output:
        "results/{model}/covariance/L{layer}.h5",
    log:
        "logs/{model}/L{layer}/merge_covariance.log",
    wildcard_constraints:
        layer=SHARDED_LAYER,
    cache: "omit-software"
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=30,
    script:
        "../workflow_scripts/merge_covariance.py"


rule covariance_shard:
    input:
        background="results/{model}/activations/L{layer}/background/{shard}-of-{shards}.h5",
    output:
        "results/{model}/covariance/L{layer}/{shard}-of-{shards}.h5",
    log:
        "logs/{model}/L{layer}/covariance-{shard}-of-{shards}.log",
    wildcard_constraints:
        layer=LAYER,
    cache: "omit-software"
    conda:
        "../envs/steerid.yaml"
    threads: job_threads(2)
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=30,
    params:
        chunk_rows=config["covariance"]["chunk_rows"],
        sink_positions=config["covariance"]["sink_positions"],
    script:
        "../workflow_scripts/covariance_shard.py"


rule spectrum:
    input:
        covariance="results/{model}/covariance/L{layer}.h5",
    output:
        "results/{model}/spectra/L{layer}.h5",
    log:
        "logs/{model}/L{layer}/spectrum.log",
    wildcard_constraints:
        layer=LAYER,
    cache: "omit-software"
    conda:
        "../envs/steerid.yaml"
    threads: job_threads(2)
    resources:
        cpu_threads=cpu_threads,
        mem_mb=2000,
        runtime=30,
    params:
        top_k=config["spectrum"]["top_k"],
        rank_thresholds=config["spectrum"]["rank_thresholds"],
        variance_fractions=config["spectrum"]["variance_fractions"],
        seed=config["seed"],
    script:
        "../workflow_scripts/spectrum.py"


rule jacobian:
    input:
        model="resources/models/{model}",
        prompts="results/prompts/{trait}.json",
    output:
        "results/{model}/jacobian/L{layer}/{trait}.h5",
    log:
        "logs/{model}/L{layer}/jacobian-{trait}.log",
    benchmark:
        "logs/{model}/L{layer}/jacobian-{trait}.benchmark.tsv"
    conda:
        "../envs/steerid.yaml"
    threads: MODEL_THREADS
    resources:
        cpu_threads=cpu_threads,
        mem_mb=model_mem_mb,
        gpu=MODEL_GPUS,
        runtime=120,
    params:
        n_prompts=config["jacobian"]["n_prompts"],
        runtime=runtime_params(),
    script:
        "../workflow_scripts/jacobian.py"


rule perturbations:
    input:
        vector="results/{model}/vectors/L{layer}/{trait}.h5",
        spectra=site_inputs("results/{model}/spectra/L{layer}.h5"),
        jacobians=site_inputs("results/{model}/jacobian/L{layer}/{trait}.h5"),
        others=lambda w: [f"results/{w.model}/vectors/L{w.layer}/{other}.h5" for other in perturbing_traits(w.trait)],
    output:
        "results/{model}/perturbations/L{layer}/{trait}.h5",
    log:
        "logs/{model}/L{layer}/perturbations-{trait}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=5,
    params:
        **{key: value for key, value in config["perturbations"].items() if key != "n_alone"},
        seed=config["seed"],
    script:
        "../workflow_scripts/perturbations.py"
