"""Resuming a study: after kill -9 a dry run says the directory is locked, --unlock and a rerun give
byte-identical results, partial files of writers that are gone are removed, a deleted raw generation
is generated again, and --cores beyond the CPUs never runs more threads than there are CPUs."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml
from snakemake_runner import (
    TEST_CONFIG,
    command,
    copy_study,
    executed_rules,
    planned_jobs,
    printed,
    snakemake,
    write_config,
)

pytestmark = pytest.mark.workflow

MODEL = "smollm2-135m"
GENERATION = f"results/{MODEL}/generations/e1/L15/sentiment/in_distribution.jsonl"
DOWNSTREAM = [
    f"results/{MODEL}/stats/e1/L15/sentiment.json",
    f"results/{MODEL}/stats/e3/L15/sentiment.json",
    f"results/{MODEL}/stats/e4/L15/sentiment.json",
    "results/summary.md",
]
CPUS = len(os.sched_getaffinity(0))


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def kill_when_running(workdir, rule: str, log) -> None:
    """Start the study's run, and kill -9 Snakemake and its jobs once a job of ``rule`` has started."""
    with open(log, "w") as stream:
        process = subprocess.Popen(
            command(workdir, "--configfile", str(TEST_CONFIG), "--cores", "2"),
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 600
    while f"rule {rule}:" not in log.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    time.sleep(5)  # into the job: model loaded, generating
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_killed_run_is_reported_unlocked_and_resumed_byte_for_byte(run, tmp_path):
    workdir = copy_study(run, tmp_path / "study")
    originals = {path: (workdir / path).read_bytes() for path in [GENERATION, *DOWNSTREAM]}
    (workdir / GENERATION).unlink()
    # The raw completions are a target: deleting them plans their generation again, and what reads them.
    plan = planned_jobs(snakemake(workdir, "--configfile", str(TEST_CONFIG), "--cores", "2", "-n").stdout)
    assert plan["evaluate"] == 1 and plan["score"] == 1 and plan["logit_distance"] == 1

    kill_when_running(workdir, "evaluate", tmp_path / "killed.log")
    assert list((workdir / ".snakemake" / "locks").iterdir())
    dry = snakemake(workdir, "--configfile", str(TEST_CONFIG), "--cores", "2", "-n")
    assert dry.returncode != 0 and "StaleLockError" in printed(dry) and "snakemake --unlock" in printed(dry)
    assert "Nothing to be done" not in dry.stdout + dry.stderr

    stale = (
        workdir
        / "results"
        / MODEL
        / "activations"
        / "L15"
        / f".background.h5.partial-{socket.gethostname()}-{dead_pid()}"
    )
    stale.write_bytes(b"half a file")
    assert snakemake(workdir, "--configfile", str(TEST_CONFIG), "--unlock").returncode == 0
    rerun = snakemake(workdir, "--configfile", str(TEST_CONFIG), "--cores", "2")
    assert rerun.returncode == 0, printed(rerun)[-3000:]
    assert "evaluate" in executed_rules(rerun.stdout + rerun.stderr)
    assert not stale.exists()
    for path, content in originals.items():
        assert (workdir / path).read_bytes() == content, path


def peak_threads(output: str) -> int:
    """The most threads Snakemake's jobs held at once, from its log of job starts and ends."""
    running, peak = {}, 0
    for block in re.split(r"\n(?=\[\w{3} \w{3} +\d+ [\d:]+ \d{4}\]\n)", output):
        if started := re.search(r"^(?:local)?rule \w+:\n(?:    .*\n)*?    jobid: (\d+)", block + "\n", re.MULTILINE):
            threads = re.search(r"^    threads: (\d+)$", block, re.MULTILINE)
            running[started[1]] = int(threads[1]) if threads else 1
            peak = max(peak, sum(running.values()))
        for finished in re.findall(r"Finished jobid: (\d+)", block):
            running.pop(finished, None)
    return peak


def test_more_cores_than_cpus_never_run_more_threads_than_cpus(run, tmp_path):
    # Two model jobs that could run side by side, the background dumps of both layers, each wanting
    # every CPU: with --cores 4 x CPUs Snakemake alone would start both.
    workdir = copy_study(run, tmp_path / "study")
    base = yaml.safe_load(TEST_CONFIG.read_text())
    config = write_config(
        tmp_path, background={**base["background"], "max_length": 40}, runtime={**base["runtime"], "threads": CPUS}
    )
    targets = [f"results/{MODEL}/activations/L{layer}/background.h5" for layer in (8, 15)]
    result = snakemake(workdir, "--configfile", str(config), "--cores", str(4 * CPUS), *targets)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f'cpu_threads=Resource("cpu_threads", {CPUS})' in output
    assert executed_rules(output) == ["dump_background", "dump_background"]
    assert peak_threads(output) <= CPUS
