rule figure_e1:
    input:
        steering_targets("results/{model}/stats/e1/L{layer}/{trait}.json"),
    output:
        report(
            "results/figures/e1_orthogonal.png",
            caption="../report/e1_orthogonal.rst",
            category="E1 orthogonal perturbations",
        ),
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
    output:
        report("results/summary.md", caption="../report/summary.rst", category="Summary"),
    params:
        figures=FIGURES,
    log:
        "logs/summary.log",
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/summary.py"
