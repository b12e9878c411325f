"""Run the real workflow from tests: one helper, one place for paths and the test config."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"


def snakemake(workdir: Path, *args: str, timeout: int = 1500, env: dict | None = None) -> subprocess.CompletedProcess:
    """``snakemake -s REPO/Snakefile --directory workdir *args``, output captured."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    environment = {**os.environ, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment)


def write_config(directory: Path, name: str = "config.yaml", **changes) -> Path:
    """The test config with top-level keys replaced, written to ``directory/name``."""
    config = yaml.safe_load(TEST_CONFIG.read_text())
    config.update(changes)
    path = directory / name
    path.write_text(yaml.safe_dump(config))
    return path


def planned_jobs(output: str) -> dict[str, int]:
    """Rule → job count from the 'Job stats' table of a dry run ({} when nothing is to be done)."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        fields = line.split()
        if not fields or fields[0] == "total":
            break
        counts[fields[0]] = int(fields[1])
    return counts


def executed_rules(output: str) -> list[str]:
    """Rules of the jobs a real run finished, in completion order."""
    return re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output)
