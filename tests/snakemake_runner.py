"""Run the real workflow from tests: one helper, one place for paths and the test config."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"


def command(workdir: Path, *args: str) -> list[str]:
    """``snakemake -s REPO/Snakefile --directory workdir *args`` as an argument list."""
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]


def snakemake(workdir: Path, *args: str, timeout: int = 1500, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run :func:`command`, output captured."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run(command(workdir, *args), capture_output=True, text=True, timeout=timeout, env=environment)


def printed(result: subprocess.CompletedProcess) -> str:
    """Everything a run printed: Snakemake 9.2x logs its errors to stdout, earlier releases to stderr."""
    return result.stdout + result.stderr


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


def link_or_copy(source: str, destination: str) -> None:
    """Hard-link outputs (steerid writes each to a new file and renames it into place, so the
    shared run is untouched); copy Snakemake's metadata and the logs, which are rewritten in place."""
    in_place = any(part in source.split(os.sep) for part in (".snakemake", "logs"))
    (shutil.copy2 if in_place else os.link)(source, destination)


def copy_study(study: Path, destination: Path) -> Path:
    """A working copy of a finished study that runs may change without touching the original."""
    shutil.copytree(study, destination, copy_function=link_or_copy)
    return destination


def manifest(workdir: Path) -> dict[str, str]:
    """SHA-256 of every file under results/ and resources/, by path relative to ``workdir``."""
    return {
        str(path.relative_to(workdir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for folder in ("results", "resources")
        for path in sorted((workdir / folder).rglob("*"))
        if path.is_file()
    }
