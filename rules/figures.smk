rule figure:
    input:
        lambda w: STATS[w.figure],
    output:
        png=report("results/figures/{figure}.png", caption="../report/figure.rst", category="Figures",
                   subcategory="{figure}"),
        pdf="results/figures/{figure}.pdf",
    params:
        dpi=config["figures"]["dpi"],
    log:
        "logs/figures/{figure}.log",
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/figure.py"


rule summary:
    input:
        **{name: files for name, files in STATS.items()},
        validations=VALIDATIONS,
        spectra=spectrum_targets(),
    output:
        report("results/summary.md", caption="../report/summary.rst", category="Summary"),
    params:
        figures=[f for f in FIGURES if f.endswith(".png")],
    log:
        "logs/summary.log",
    resources:
        cpu_threads=cpu_threads,
        mem_mb=1000,
        runtime=5,
    conda:
        "../envs/steerid.yaml"
    script:
        "../workflow_scripts/summary.py"
