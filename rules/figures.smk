rule figure_e1:
    input:
        steering_targets("results/{model}/stats/e1/L{layer}/{trait}.json"),
    output:
        "results/figures/e1_orthogonal.png",
    params:
        dpi=config["figures"]["dpi"],
    log:
        "logs/figures/e1_orthogonal.log",
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/figure_e1.py"


rule summary:
    input:
        stats=steering_targets("results/{model}/stats/e1/L{layer}/{trait}.json"),
        spectra=spectrum_targets(),
        figures=["results/figures/e1_orthogonal.png"],
    output:
        "results/summary.md",
    log:
        "logs/summary.log",
    resources:
        mem_mb=500,
        runtime=5,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/summary.py"
