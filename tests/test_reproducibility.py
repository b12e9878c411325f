"""A model job's numbers do not depend on how many CPU threads it got or on what else the machine
runs: importing steerid asks MKL for reproducible products, so a resumed run, a rerun and a
cluster job write the same bytes (CI once saw a resumed generation and a SLURM job's activations
differ from their first runs in the last bits without it)."""

from __future__ import annotations

import os
import subprocess
import sys

import steerid

FORWARD = """
import sys
import steerid
from steerid.engine import activations
from steerid.pipeline.runtime import Runtime
from steerid.pipeline.stages import open_model

model, tokenizer, _ = open_model(sys.argv[1], 15, Runtime("cpu", "float32", int(sys.argv[2]), 16))
prompts = [
    "Write a short review of a dentist's waiting room.",
    "Give an account of a mobile banking app, its fees and its support line.",
    "Describe a desk lamp.",
    "Share your impressions of a beach volleyball tournament on a windy afternoon.",
]
sys.stdout.buffer.write(activations.last_token(model, tokenizer, 15, prompts, 16).tobytes())
"""


def layer_15_activations(model_dir, threads: int) -> bytes:
    """The float32 layer-15 activations of four prompts, from a fresh process with ``threads`` threads."""
    env = {key: value for key, value in os.environ.items() if key not in steerid.REPRODUCIBLE_MKL}
    result = subprocess.run(
        [sys.executable, "-c", FORWARD, str(model_dir), str(threads)], capture_output=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    return result.stdout


def test_float32_activations_are_the_same_bytes_on_one_and_two_threads(smollm2_dir):
    one, two = layer_15_activations(smollm2_dir, 1), layer_15_activations(smollm2_dir, 2)
    assert len(one) == 4 * 576 * 4
    assert one == two


def test_the_environment_keeps_a_value_the_user_set():
    code = "import os, steerid; print(os.environ['MKL_CBWR'])"
    env = {**os.environ, "MKL_CBWR": "COMPATIBLE"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "COMPATIBLE"
