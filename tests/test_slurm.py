"""The test config through a real single-node SLURM cluster, compared with a local run.

tests/slurm/bring_up.sh starts munged, MariaDB, slurmdbd, slurmctld and slurmd on localhost (Debian
packages, no systemd) and installs the Snakemake SLURM executor plugin; the workflow then runs with
`--profile profiles/slurm` while the same config runs locally in another directory. The cluster is
torn down (jobs cancelled, daemons stopped by PID file) after the module's tests.

Needs root and apt-get (skipped with the reason otherwise). Run with `pytest -m slurm`.
"""

from __future__ import annotations

import getpass
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO / "tests" / "config" / "test.yaml"
PROFILE = REPO / "profiles" / "slurm"
BRING_UP = REPO / "tests" / "slurm" / "bring_up.sh"
TEAR_DOWN = REPO / "tests" / "slurm" / "tear_down.sh"
UNAVAILABLE = 77  # bring_up.sh: SLURM cannot be installed or started here

# The test cluster's names (passed to bring_up.sh, and to Snakemake in place of the profile's).
PARTITION, ACCOUNT = "debug", "steerid_ci"
USER = getpass.getuser()
NODE_CPUS = 2  # the smallest machine this runs on

# Hard limits (seconds). The targets are 19 cluster jobs on 2 CPUs, steered generation the longest.
BRING_UP_LIMIT = 900  # a fresh machine installs about 30 packages
# Per workflow run, sent as SIGINT (the plugin then scancels its jobs), then SIGKILL KILL_AFTER later.
SNAKEMAKE_LIMIT = int(os.environ.get("STEERID_SLURM_TEST_LIMIT", 900))
KILL_AFTER = 60
TEAR_DOWN_LIMIT = 300
RTOL = ATOL = 1e-12

SUBMITTED = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+)", re.M)
REMOTE_RULE = re.compile(r"^rule (\w+):$", re.M)
LOCAL_RULE = re.compile(r"^localrule (\w+):$", re.M)

pytestmark = pytest.mark.slurm


@dataclass
class Run:
    workdir: Path
    returncode: int
    log: str
    seconds: float

    def tail(self, n: int = 6000) -> str:
        return f"exit {self.returncode} after {self.seconds:.0f} s; log tail:\n{self.log[-n:]}"


@dataclass
class Runs:
    slurm: Run
    local: Run


def cluster_env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHON": sys.executable,
        "STEERID_SLURM_PARTITION": PARTITION,
        "STEERID_SLURM_ACCOUNT": ACCOUNT,
        "STEERID_SLURM_USER": USER,
    }


# E1 and its figure on the test config's generated trait: every kind of job (model, native linear
# algebra, Jacobian, scoring, statistics, plotting) without the rest of the study, which would only
# repeat them on 2 CPUs.
TARGETS = ("results/smollm2-135m/stats/e1/L15/sentiment.json", "results/figures/e1.png")
TRAITS = ["sentiment"]


def cluster_config(directory: Path) -> Path:
    """The test config with only :data:`TRAITS` studied (the figure's cells are the studied traits'),
    and one thread per model job.

    MKL makes float32 products independent of the thread count only on Intel CPUs with AVX2 or
    AVX-512 (strict CNR); on others (AMD's) it promises the same bytes only for the same
    count, and CI saw a cluster job's Jacobian spectrum differ from the local run's by 2e-4
    relative. One thread takes how each job was scheduled out of the comparison; the native
    covariance and spectrum rules still ask SLURM for 2 CPUs.
    """
    test_config = yaml.safe_load(TEST_CONFIG.read_text())
    config = {**test_config, "traits": TRAITS, "runtime": {**test_config["runtime"], "threads": 1}}
    path = directory / "cluster-test.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake_command(workdir: Path, config: Path, *args: str) -> list[str]:
    return [
        "timeout",
        "--foreground",
        "-s",
        "INT",
        "-k",
        str(KILL_AFTER),
        str(SNAKEMAKE_LIMIT),
        # The targets come before every option: --configfile and --default-resources take lists.
        sys.executable,
        "-m",
        "snakemake",
        *TARGETS,
        "-s",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        *args,
    ]


def slurm_arguments() -> list[str]:
    """The production profile, with this cluster's partition and account and the CI-only speedups.

    A --default-resources on the command line replaces the profile's whole list, so the profile's
    other defaults are passed along with the two overrides.
    """
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    defaults = {**profile["default-resources"], "slurm_partition": PARTITION, "slurm_account": ACCOUNT}
    return [
        "--profile",
        str(PROFILE),
        "--workflow-profile",
        "none",
        "--max-threads",
        str(NODE_CPUS),
        "--slurm-init-seconds-before-status-checks",
        "5",
        "--default-resources",
        *(f"{key}={value}" for key, value in defaults.items()),
    ]


def start(command: list[str], log_path: Path) -> tuple[subprocess.Popen, float]:
    with open(log_path, "w") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), time.time()


def finish(process: subprocess.Popen, started: float, workdir: Path, log_path: Path) -> Run:
    try:  # `timeout` ends it within SNAKEMAKE_LIMIT + KILL_AFTER; this is only a backstop
        returncode = process.wait(timeout=SNAKEMAKE_LIMIT + KILL_AFTER + 60)
    except subprocess.TimeoutExpired:
        process.kill()
        returncode = process.wait()
    # Snakemake's last log line is written as it exits (the run may have ended long before this wait).
    return Run(workdir, returncode, log_path.read_text(errors="replace"), log_path.stat().st_mtime - started)


def stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=KILL_AFTER)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def sacct(job_ids: list[str], fields: str) -> list[dict[str, str]]:
    names = fields.split(",")
    output = subprocess.run(
        ["sacct", "-n", "-X", "-P", "-j", ",".join(job_ids), "-o", fields],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return [dict(zip(names, line.split("|"))) for line in output.splitlines() if line]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Runs:
    if os.geteuid() != 0:
        pytest.skip("the SLURM test brings up slurmctld/slurmd/slurmdbd/MariaDB and needs root")
    logs = tmp_path_factory.mktemp("logs")
    local = cluster_run = None
    try:
        try:
            up = subprocess.run(
                ["bash", str(BRING_UP)], env=cluster_env(), capture_output=True, text=True, timeout=BRING_UP_LIMIT
            )
        except subprocess.TimeoutExpired as err:
            stderr = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else err.stderr or ""
            pytest.fail(f"bring_up.sh ran past {BRING_UP_LIMIT} s:\n{stderr[-4000:]}")
        if up.returncode == UNAVAILABLE:
            reasons = [line for line in up.stderr.splitlines() if "UNAVAILABLE" in line]
            pytest.skip(f"no SLURM cluster here: {reasons[-1] if reasons else up.stderr[-500:]}")
        assert up.returncode == 0, f"bring_up.sh exited {up.returncode}:\n{up.stdout[-2000:]}\n{up.stderr[-8000:]}"

        # The local reference run shares the 2 CPUs with the cluster jobs; it fills the gaps while
        # SLURM schedules and the plugin polls, and neither run's numbers depend on the other.
        local_dir, slurm_dir = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("slurm")
        config = cluster_config(logs)
        local_command = snakemake_command(local_dir, config, "--cores", str(NODE_CPUS))
        local, local_started = start(local_command, logs / "local.log")
        cluster_run, slurm_started = start(snakemake_command(slurm_dir, config, *slurm_arguments()), logs / "slurm.log")
        slurm = finish(cluster_run, slurm_started, slurm_dir, logs / "slurm.log")
        print(f"SLURM run: exit {slurm.returncode} in {slurm.seconds:.0f} s (log {logs / 'slurm.log'})")
        local_run = finish(local, local_started, local_dir, logs / "local.log")
        print(f"local run: exit {local_run.returncode} in {local_run.seconds:.0f} s (log {logs / 'local.log'})")
        yield Runs(slurm, local_run)
    finally:
        stop(cluster_run)
        stop(local)
        if shutil.which("scancel"):
            subprocess.run(["scancel", "-u", USER], capture_output=True, timeout=30)
        down = subprocess.run(
            ["bash", str(TEAR_DOWN)], env=cluster_env(), capture_output=True, text=True, timeout=TEAR_DOWN_LIMIT
        )
        print(down.stderr[-2000:])
        assert down.returncode == 0, f"tear_down.sh exited {down.returncode}:\n{down.stderr[-4000:]}"


def test_snakemake_succeeds_under_slurm(runs):
    assert runs.slurm.returncode == 0, runs.slurm.tail()
    assert "Nothing to be done" not in runs.slurm.log
    assert runs.local.returncode == 0, runs.local.tail()


@dataclass
class Job:
    rule: str
    threads: int
    mem_mb: int
    runtime: int


def submitted_jobs(log: str) -> dict[str, Job]:
    """SLURM job id -> the job as Snakemake described it before submitting it.

    Snakemake prints a block per job (`rule X:` ... `jobid: N` ... `resources: ...`) and, once
    submitted, `Job N has been submitted with SLURM jobid M`; several blocks may precede their
    submission lines, so the two are joined on Snakemake's job id.
    """
    described = {}
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule \w+:)", log):
        rule, jobid = REMOTE_RULE.search(block), re.search(r"^\s+jobid: (\d+)$", block, re.M)
        resources = re.search(r"^\s+resources: (.*)$", block, re.M)
        if not (rule and jobid and resources):
            continue
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        values = dict(item.split("=", 1) for item in resources.group(1).split(", "))
        described[jobid.group(1)] = Job(
            rule.group(1), int(threads.group(1)) if threads else 1, int(values["mem_mb"]), int(values["runtime"])
        )
    return {slurm_id: described[jobid] for jobid, slurm_id in SUBMITTED.findall(log)}


def test_every_non_local_job_was_submitted_to_slurm(runs):
    assert runs.slurm.returncode == 0, runs.slurm.tail()
    log = runs.slurm.log
    remote_jobs, submissions = REMOTE_RULE.findall(log), SUBMITTED.findall(log)
    assert remote_jobs, "no job ran as a cluster job"
    assert len(submissions) == len(remote_jobs), (remote_jobs, submissions)
    assert len({slurm_id for _, slurm_id in submissions}) == len(submissions)
    # The same jobs as the local run (where every job prints as `localrule`); only the workflow's
    # local rules (`rule all`, any `localrules:`) stayed on the submitting host.
    kept_local = LOCAL_RULE.findall(log)
    local_run_jobs = LOCAL_RULE.findall(runs.local.log) + REMOTE_RULE.findall(runs.local.log)
    assert sorted(remote_jobs + kept_local) == sorted(local_run_jobs)
    model_and_linalg = {
        "prepare_model",
        "dump_contrast",
        "dump_background",
        "covariance",
        "spectrum",
        "jacobian",
        "evaluate",
    }
    assert model_and_linalg <= set(remote_jobs)


def test_sacct_shows_the_jobs_completed_with_their_resources(runs):
    assert runs.slurm.returncode == 0, runs.slurm.tail()
    jobs = submitted_jobs(runs.slurm.log)
    assert len(jobs) == len(SUBMITTED.findall(runs.slurm.log))
    fields = "JobID,State,ExitCode,Account,Partition,AllocCPUS,ReqMem,Timelimit"
    deadline = time.monotonic() + 30
    while len(rows := sacct(list(jobs), fields)) < len(jobs) and time.monotonic() < deadline:
        time.sleep(1)  # slurmdbd records a finished job a moment after slurmctld
    by_id = {row["JobID"]: row for row in rows}
    assert set(by_id) == set(jobs), f"sacct lacks {set(jobs) - set(by_id)}"
    for job_id, row in by_id.items():
        job = jobs[job_id]
        assert (row["State"], row["ExitCode"]) == ("COMPLETED", "0:0"), (job, row)
        assert (row["Account"], row["Partition"]) == (ACCOUNT, PARTITION), (job, row)
        # threads -> --cpus-per-task, mem_mb -> --mem, runtime (minutes) -> --time
        assert int(row["AllocCPUS"]) == job.threads, (job, row)
        assert row["ReqMem"] == f"{job.mem_mb}M", (job, row)
        hours, minutes = divmod(job.runtime, 60)
        assert row["Timelimit"] == f"{hours:02d}:{minutes:02d}:00", (job, row)


def result_files(run: Run) -> set[str]:
    return {str(path.relative_to(run.workdir)) for path in (run.workdir / "results").rglob("*") if path.is_file()}


def test_outputs_exist(runs):
    assert runs.slurm.returncode == 0, runs.slurm.tail()
    results = runs.slurm.workdir / "results"
    figure = (results / "figures" / "e1.png").read_bytes()
    assert figure.startswith(b"\x89PNG") and len(figure) > 10_000
    stats = sorted(results.glob("*/stats/**/*.json"))
    assert stats and all(json.loads(path.read_text()) for path in stats)
    assert result_files(runs.slurm) == result_files(runs.local)


def assert_same_tree(slurm, local, where: str) -> None:
    """JSON values equal; numbers to RTOL/ATOL (NaN equals NaN)."""
    if isinstance(local, dict):
        assert isinstance(slurm, dict) and slurm.keys() == local.keys(), where
        for key in local:
            assert_same_tree(slurm[key], local[key], f"{where}/{key}")
    elif isinstance(local, list):
        assert isinstance(slurm, list) and len(slurm) == len(local), where
        for index, (a, b) in enumerate(zip(slurm, local)):
            assert_same_tree(a, b, f"{where}[{index}]")
    elif isinstance(local, float) and not isinstance(local, bool):
        assert isinstance(slurm, (int, float)), where
        same = (math.isnan(local) and math.isnan(slurm)) or math.isclose(slurm, local, rel_tol=RTOL, abs_tol=ATOL)
        assert same, f"{where}: SLURM {slurm!r} vs local {local!r}"
    else:
        assert slurm == local, f"{where}: SLURM {slurm!r} vs local {local!r}"


def local_results(runs: Runs, pattern: str) -> list[Path]:
    """Paths (relative to the work directory) of the local run's results matching ``pattern``."""
    return sorted(path.relative_to(runs.local.workdir) for path in (runs.local.workdir / "results").glob(pattern))


def test_stats_equal_the_local_run(runs):
    assert runs.slurm.returncode == 0 and runs.local.returncode == 0, (runs.slurm.tail(), runs.local.tail())
    paths = local_results(runs, "*/stats/**/*.json")
    assert paths
    for relative in paths:
        assert_same_tree(
            json.loads((runs.slurm.workdir / relative).read_text()),
            json.loads((runs.local.workdir / relative).read_text()),
            str(relative),
        )


def h5_datasets(path: Path) -> dict[str, np.ndarray]:
    arrays = {}

    def keep(name, item):
        if isinstance(item, h5py.Dataset):
            arrays[name] = item[()]

    with h5py.File(path, "r") as handle:
        handle.visititems(keep)
    return arrays


def test_hdf5_datasets_equal_the_local_run(runs):
    """Same seeds, same CPU, same thread counts: every array of every stage's HDF5 output (activations,
    covariance, spectra, Jacobians, vectors, perturbations, scores) agrees to 1e-12; in practice bit
    for bit."""
    assert runs.slurm.returncode == 0 and runs.local.returncode == 0, (runs.slurm.tail(), runs.local.tail())
    paths = local_results(runs, "**/*.h5")
    assert any("covariance" in path.parts for path in paths), paths
    for relative in paths:
        slurm, local = h5_datasets(runs.slurm.workdir / relative), h5_datasets(runs.local.workdir / relative)
        assert slurm.keys() == local.keys(), relative
        for name, expected in local.items():
            actual = slurm[name]
            assert actual.shape == expected.shape and actual.dtype == expected.dtype, (relative, name)
            if np.issubdtype(expected.dtype, np.floating):
                np.testing.assert_allclose(
                    actual, expected, rtol=RTOL, atol=ATOL, equal_nan=True, err_msg=f"{relative}:{name}"
                )
            else:
                np.testing.assert_array_equal(actual, expected, err_msg=f"{relative}:{name}")


def test_generations_equal_the_local_run(runs):
    """One torch.Generator per (prompt, sample) seeded from config: the sampled text is identical."""
    assert runs.slurm.returncode == 0 and runs.local.returncode == 0, (runs.slurm.tail(), runs.local.tail())
    paths = local_results(runs, "*/generations/**/*.jsonl")
    assert paths
    for relative in paths:
        slurm = [json.loads(line) for line in (runs.slurm.workdir / relative).read_text().splitlines()]
        local = [json.loads(line) for line in (runs.local.workdir / relative).read_text().splitlines()]
        assert_same_tree(slurm, local, str(relative))
