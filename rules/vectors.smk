rule steering_vectors:
    input:
        contrast="results/{model}/activations/L{layer}/contrast-{trait}.h5",
    output:
        "results/{model}/vectors/L{layer}/{trait}.h5",
    log:
        "logs/{model}/L{layer}/steering_vectors-{trait}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=5,
    script:
        "../workflow_scripts/steering_vectors.py"
