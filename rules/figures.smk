rule figure:
    input:
        stats=lambda w: STATS[w.figure],
    output:
        png=report(
            "results/figures/{figure}.png", caption="../report/figure.rst", category="Figures", subcategory="{figure}"
        ),
        pdf="results/figures/{figure}.pdf",
    log:
        "logs/figures/{figure}.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=5,
    params:
        dpi=config["figures"]["dpi"],
    script:
        "../workflow_scripts/figure.py"


rule summary:
    input:
        **{name: files for name, files in STATS.items()},
        validations=VALIDATIONS,
        spectra=spectrum_targets(),
    output:
        report("results/summary.md", caption="../report/summary.rst", category="Summary"),
    log:
        "logs/summary.log",
    conda:
        "../envs/steerid.yaml"
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=5,
    params:
        figures=[f for f in FIGURES if f.endswith(".png")],
    script:
        "../workflow_scripts/summary.py"
