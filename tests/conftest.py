"""Shared fixtures: the real embedded model, prepared once per test session."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config, items):
    """The SLURM tests run last: once they have installed SLURM's clients and stopped its daemons,
    every Snakemake start waits about 9 s (its SLURM executor plugin asks the stopped controller for
    its settings at import), which every later workflow test would pay."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    """A prepared SmolLM2-135M-Instruct folder (GGUF converted to safetensors once)."""
    from steerid.engine.models import prepare_model

    folder = tmp_path_factory.mktemp("models") / "smollm2-135m"
    prepare_model("smollm2-135m", folder)
    return folder


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    """(model, tokenizer, manifest) on CPU in float32."""
    from steerid.engine.models import load_model

    return load_model(smollm2_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def output_cache(tmp_path_factory):
    """A between-workflow output cache (SNAKEMAKE_OUTPUT_CACHE) for the session."""
    return tmp_path_factory.mktemp("output-cache")


@pytest.fixture(scope="session")
def run(tmp_path_factory, output_cache):
    """A working directory where the whole DAG ran once on the test config (shared, read-only).

    It runs with --cache, so the cacheable stages also populate ``output_cache``.
    """
    from snakemake_runner import TEST_CONFIG, printed, snakemake

    workdir = tmp_path_factory.mktemp("workflow")
    result = snakemake(
        workdir,
        "--configfile",
        str(TEST_CONFIG),
        "--cores",
        "2",
        "--cache",
        env={"SNAKEMAKE_OUTPUT_CACHE": str(output_cache)},
    )
    assert result.returncode == 0, printed(result)[-5000:]
    return workdir
