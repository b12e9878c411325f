"""Bad settings against a finished study: each is named before any job runs, and nothing earlier changes.

Every probe runs the real workflow in a hard-linked copy of the session's finished test-config
study, with the setting a new user might get wrong, and checks that the run stops before any job
starts, that its message names the config key and the value in a few lines, and that every file
under results/ and resources/ is still there, byte for byte.
"""

from __future__ import annotations

import os
import re
import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml
from snakemake_runner import TEST_CONFIG, copy_study, manifest, planned_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

BASE = yaml.safe_load(TEST_CONFIG.read_text())
MODEL = "smollm2-135m"
# Snakemake prints "rule NAME:" or "localrule NAME:" when it starts a job.
JOB_STARTED = re.compile(r"^(local)?rule \w+:$", re.MULTILINE)
# Everything Snakemake prints for a config error: its profile line, the error and where it was raised.
MAX_LINES = 12


def change(section: str, **values) -> dict:
    return {section: {**BASE[section], **values}}


def model(**values) -> dict:
    return {"models": {MODEL: {**BASE["models"][MODEL], **values}}}


# probe id → (config changes, texts the message must contain: the key and the value)
PROBES = {
    # Issue 11, item 1: a bad model spec used to rerun prepare_model, which deleted the prepared model.
    "hub-model-offline": (
        model(spec="Qwen/Qwen2.5-0.5B-Instruct"),
        [f"models.{MODEL}.spec", "'Qwen/Qwen2.5-0.5B-Instruct'", "not in the Hugging Face cache"],
    ),
    "relative-path-typo": (
        model(spec="my-models/smollm2"),
        [f"models.{MODEL}.spec", "'my-models/smollm2'", "nor is it a folder"],
    ),
    # Item 2: runtime typos used to start every model job (deleting dumps and Jacobians) before torch failed.
    "device-gpu": (change("runtime", device="gpu"), ["runtime.device", "'gpu'", "not a torch device"]),
    "device-cuda-missing": (change("runtime", device="cuda"), ["runtime.device", "'cuda'", "not available"]),
    # Item 4: values that slipped through to the first job, or were silently accepted.
    "layer-too-deep": (model(layer=99), [f"models.{MODEL}.layer", "99", "0 <= layer < 30"]),
    "survey-layer-too-deep": (model(survey_layers=[8, 40]), [f"models.{MODEL}.survey_layers", "[8, 40]", "[40]"]),
    "span-k-beyond-d": (change("perturbations", span_ks=[4, 5000]), ["perturbations.span_ks", "[4, 5000]", "576"]),
    "spectrum-top-k-beyond-d": (change("spectrum", top_k=100000), ["spectrum.top_k", "100000", "at most 288"]),
    "sink-beyond-the-texts": (
        change("covariance", sink_positions=[0, 500]),
        ["covariance.sink_positions", "[0, 500]", "max_length = 48"],
    ),
    "unknown-key": ({"colour": "blue"}, ["unknown key 'colour'"]),
    "unknown-nested-key": (change("runtime", devise="cpu"), ["config runtime: unknown key 'devise'"]),
    "hub-scorer-offline": (
        change("scoring", sentiment="hf-sentiment"),
        ["scoring.sentiment", "'hf-sentiment'", "cardiffnlp/twitter-roberta-base-sentiment-latest"],
    ),
    "too-many-e4-sequences": (
        change("logit_distance", n_sequences=9),
        ["logit_distance.n_sequences", "9", "at most 8"],
    ),
    "more-shards-than-texts": (change("background", shards=25), ["background.shards", "25", "at most 24"]),
    # What already held (schema and Python checks), kept: each named, nothing run.
    "negative-layer": (model(layer=-1), [f"models.{MODEL}.layer", "-1", "an integer >= 0"]),
    "unknown-trait": ({"traits": ["sentiment", "happiness"]}, ["traits[1]", "'happiness'"]),
    "alpha-as-string": (change("steering", alpha="strong"), ["steering.alpha", "'strong'", "a number or 'auto'"]),
    "batch-size-zero": (change("runtime", batch_size=0), ["runtime.batch_size", "0", "'auto' or an integer >= 1"]),
    "negative-temperature": (change("generation", temperature=-0.5), ["generation.temperature", "-0.5"]),
    "top-p-above-one": (change("generation", top_p=1.5), ["generation.top_p", "1.5", "maximum of 1"]),
    "dtype-float8": (change("runtime", dtype="float8"), ["runtime.dtype", "'float8'"]),
    "too-many-eval-prompts": (change("prompts", n_eval=500), ["prompts.n_eval", "500", "at most 60"]),
    "missing-local-folder": (model(spec="./no/such/model"), [f"models.{MODEL}.spec", "'./no/such/model'", "no folder"]),
    "jacobian-prompts-beyond-eval": (
        change("jacobian", n_prompts=5),
        ["jacobian.n_prompts", "5", "prompts.n_eval = 4"],
    ),
    "trait-perturbing-itself": ({"other_traits": ["sentiment"]}, ["other_traits", "['sentiment'] are also in traits"]),
}


@pytest.fixture
def study(run, tmp_path):
    """A hard-linked copy of the finished study and the digest of its files."""
    workdir = copy_study(run, tmp_path / "study")
    return workdir, manifest(workdir)


@pytest.mark.parametrize("probe", PROBES, ids=list(PROBES))
def test_bad_setting_is_named_before_any_job_and_changes_nothing(study, tmp_path, probe):
    if probe == "device-cuda-missing" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    workdir, before = study
    changes, named = PROBES[probe]
    result = snakemake(workdir, "--configfile", str(write_config(tmp_path, **changes)), "--cores", "2")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for text in named:
        assert text in output, output[-3000:]
    assert not JOB_STARTED.search(output), output[-3000:]
    assert len(output.strip().splitlines()) <= MAX_LINES, output
    assert manifest(workdir) == before


def test_dry_run_plans_a_study_whose_hub_model_is_not_here_with_a_warning(study, tmp_path):
    workdir, before = study
    config = write_config(tmp_path, **model(spec="Qwen/Qwen2.5-0.5B-Instruct"))
    result = snakemake(workdir, "--configfile", str(config), "--cores", "2", "-n")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert f"Warning: config models.{MODEL}.spec = 'Qwen/Qwen2.5-0.5B-Instruct'" in output
    assert "a real run here stops at this point" in output
    # The new spec reruns its preparation and everything downstream of the model.
    assert planned_jobs(output)["prepare_model"] == 1 and planned_jobs(output)["evaluate"] == 5
    assert manifest(workdir) == before


def corrupt(path, dataset: str, index: tuple) -> None:
    """Write NaN into one value of ``path``, on a new inode: the shared study keeps its own file."""
    copy = path.with_name(path.name + ".corrupt")
    shutil.copyfile(path, copy)
    with h5py.File(copy, "r+") as handle:
        handle[dataset][index] = np.nan
    os.replace(copy, path)


# bad data → (file, dataset, index, the target whose job reads it, its log, texts the log must contain)
BAD_DATA = {
    # Used to surface as "LinAlgError: SVD did not converge".
    "nan-in-contrast-dump": (
        "activations/L15/contrast-sentiment.h5",
        "positive",
        (3, 7),
        "vectors/L15/sentiment.h5",
        "L15/steering_vectors-sentiment.log",
        ["dataset 'positive' holds 1 NaN/Inf value(s) of 9216, the first at index (3, 7)"],
    ),
    "nan-in-vector": (
        "vectors/L15/sentiment.h5",
        "v",
        (5,),
        "perturbations/L15/sentiment.h5",
        "L15/perturbations-sentiment.log",
        ["dataset 'v' holds 1 NaN/Inf value(s) of 576, the first at index (5,)"],
    ),
    # Already held: the native accumulator names the slab, the count and the position.
    "nan-in-background": (
        "activations/L15/background.h5",
        "activations",
        (300, 2),
        "covariance/L15.h5",
        "L15/covariance.log",
        [
            "slab starting at row 0 of 'activations'",
            "1 non-finite value (NaN or Inf); the first is at (row 300, col 2)",
        ],
    ),
}


@pytest.mark.parametrize("probe", BAD_DATA, ids=list(BAD_DATA))
def test_bad_data_is_named_by_the_job_that_reads_it(study, probe):
    workdir, before = study
    source, dataset, index, target, log, named = BAD_DATA[probe]
    results = workdir / "results" / MODEL
    corrupt(results / source, dataset, index)
    # Targets are named relative to the working directory: Snakemake 9.2x matches no rule to an absolute path.
    result = snakemake(workdir, "--configfile", str(TEST_CONFIG), "--cores", "2", f"results/{MODEL}/{target}")
    assert result.returncode != 0
    text = (workdir / "logs" / MODEL / log).read_text()
    for expected in named:
        assert expected in text, (text[-3000:], result.stdout[-3000:], result.stderr[-3000:])
    # The reading job failed, so its (stale) output is gone; nothing else changed.
    after = manifest(workdir)
    untouched = {f"results/{MODEL}/{source}", f"results/{MODEL}/{target}"}
    assert {k: v for k, v in after.items() if k not in untouched} == {
        k: v for k, v in before.items() if k not in untouched
    }
    assert f"results/{MODEL}/{target}" not in after
