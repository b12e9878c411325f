rule steering_vectors:
    input:
        unpack(imported_vector_file),
        contrast="results/{model}/activations/L{layer}/contrast-{trait}.h5",
        model="resources/models/{model}",
    output:
        "results/{model}/vectors/L{layer}/{trait}.h5",
    log:
        "logs/{model}/L{layer}/steering_vectors-{trait}.log",
    wildcard_constraints:
        layer=LAYER,
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=5,
    params:
        imported=imported_vector,
    script:
        "../workflow_scripts/steering_vectors.py"


# A steering site of several layers: its layers' vector files stacked into one, (layers, d) per dataset.
rule stack_vectors:
    input:
        layer_vectors=site_inputs("results/{model}/vectors/L{layer}/{trait}.h5"),
    output:
        "results/{model}/vectors/L{layer}/{trait}.h5",
    log:
        "logs/{model}/L{layer}/stack_vectors-{trait}.log",
    wildcard_constraints:
        layer=MULTI_LAYER_SITE,
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=5,
    params:
        layers=lambda w: list(label_layers(w.layer)),
    script:
        "../workflow_scripts/stack_vectors.py"


# Every vector steerid uses, as files that llama.cpp, repeng (GGUF) and safetensors readers load.
rule export_vector:
    input:
        vector="results/{model}/vectors/L{layer}/{trait}.h5",
        model="resources/models/{model}",
    output:
        "results/{model}/vectors/L{layer}/{trait}.{vector_format}",
    log:
        "logs/{model}/L{layer}/export_vector-{trait}-{vector_format}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=5,
    script:
        "../workflow_scripts/export_vector.py"
