"""The workflow's glue: stages (files in, one file out), the script bridge, config checks, figures and the summary."""
