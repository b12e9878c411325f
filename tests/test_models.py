import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from steerid.engine.models import (
    check_layer,
    decoder_layers,
    format_prompt,
    read_manifest,
    resolve_dtype,
    tokenize_prompts,
)
from steerid.engine.specs import spec_kind


def test_spec_kinds(tmp_path):
    assert spec_kind("smollm2-135m") == "embedded"
    assert spec_kind("Qwen/Qwen2.5-3B-Instruct") == "hub"
    (tmp_path / "config.json").write_text("{}")
    assert spec_kind(str(tmp_path)) == "local"


@pytest.mark.parametrize("spec", ["no such model", "./missing/dir/x/y", ""])
def test_unresolvable_spec_names_the_value(spec):
    with pytest.raises(ValueError, match="cannot be resolved") as err:
        spec_kind(spec)
    assert repr(spec) in str(err.value)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="without config.json"):
        spec_kind(str(tmp_path))


def test_manifest_of_embedded_model(smollm2_dir):
    manifest = read_manifest(smollm2_dir)
    assert (manifest.kind, manifest.architecture, manifest.n_layers, manifest.d_model) == ("embedded", "llama", 30, 576)
    assert manifest.has_chat_template
    assert json.loads((smollm2_dir / "model.json").read_text())["spec"] == "smollm2-135m"
    assert (smollm2_dir / "model.safetensors").is_file()


def test_layer_check_names_layer(smollm2):
    _, _, manifest = smollm2
    check_layer(manifest, 29)
    with pytest.raises(ValueError, match="layer 30 does not exist.*0 <= layer < 30"):
        check_layer(manifest, 30)


@pytest.mark.parametrize(
    "build",
    [
        lambda: GPT2LMHeadModel(GPT2Config(n_layer=3, n_embd=32, n_head=2, vocab_size=50)),
        lambda: LlamaForCausalLM(
            LlamaConfig(
                num_hidden_layers=3,
                hidden_size=32,
                intermediate_size=64,
                num_attention_heads=2,
                num_key_value_heads=1,
                vocab_size=50,
            )
        ),
    ],
    ids=["gpt2", "llama"],
)
def test_decoder_layers_across_architectures(build):
    assert len(decoder_layers(build())) == 3


def test_decoder_layers_unknown_model():
    with pytest.raises(ValueError, match="cannot find the decoder layers of Linear"):
        decoder_layers(torch.nn.Linear(2, 2))


def test_chat_template_used_when_present(smollm2):
    _, tokenizer, _ = smollm2
    text = format_prompt(tokenizer, "Describe the sea.")
    assert text.startswith("<|im_start|>") and text.endswith("<|im_start|>assistant\n")
    assert "Describe the sea." in text


def test_plain_prompt_without_chat_template(smollm2):
    _, tokenizer, _ = smollm2
    template, tokenizer.chat_template = tokenizer.chat_template, None
    try:
        assert format_prompt(tokenizer, "Describe the sea.") == "Describe the sea."
    finally:
        tokenizer.chat_template = template


def test_prompts_are_left_padded(smollm2):
    _, tokenizer, _ = smollm2
    _ids, mask = tokenize_prompts(
        tokenizer, ["Hi.", "Tell me a long story about the sea and its tides."], torch.device("cpu")
    )
    assert mask[0, 0] == 0 and mask[0, -1] == 1 and bool(mask[1].all())


def _cpu_has_bf16_units() -> bool:
    """Read independently of the detector: the kernel's CPU flags."""
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def test_dtype_resolution():
    # CI and development machines differ: some have AVX-512 BF16, some only AVX2.
    expected = torch.bfloat16 if _cpu_has_bf16_units() else torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) is expected
    assert resolve_dtype("auto", torch.device("cuda")) is torch.bfloat16
    with pytest.raises(ValueError, match="'int8'"):
        resolve_dtype("int8", torch.device("cpu"))


def test_unfetchable_hub_model_names_the_spec(tmp_path, monkeypatch):
    from steerid.engine.models import prepare_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="'steerid-test/no-such-model'.*could not be fetched"):
        prepare_model("steerid-test/no-such-model", tmp_path / "m")
    assert not (tmp_path / "m" / "model.json").exists()


def test_local_folder_spec(smollm2_dir, tmp_path):
    from steerid.engine.models import load_model, prepare_model

    manifest = prepare_model(str(smollm2_dir), tmp_path / "local")
    assert (manifest.kind, manifest.load_from, manifest.n_layers) == ("local", str(smollm2_dir.resolve()), 30)
    model, _, _ = load_model(tmp_path / "local", device="cpu", dtype="float32")
    assert len(decoder_layers(model)) == 30


@pytest.fixture(scope="module")
def gemma(tmp_path_factory):
    from steerid.engine.models import load_model, prepare_model

    folder = tmp_path_factory.mktemp("models") / "gemma3-270m"
    prepare_model("gemma3-270m", folder)
    return load_model(folder, device="cpu", dtype="float32")


def test_gemma_base_model_runs_through_the_hooks_without_a_chat_template(gemma):
    from steerid.engine.activations import last_token
    from steerid.engine.generate import Sampling, generate_conditions

    model, tokenizer, manifest = gemma
    assert (manifest.architecture, manifest.n_layers, manifest.d_model, manifest.has_chat_template) == (
        "gemma3_text",
        18,
        640,
        False,
    )
    assert format_prompt(tokenizer, "Describe the sea.") == "Describe the sea."
    activations = last_token(model, tokenizer, 9, ["The sea is calm.", "A storm is coming over the hills."], 2)
    assert activations.shape == (2, 640) and np.isfinite(activations).all()
    conditions = {"baseline": torch.zeros(640), "pushed": torch.from_numpy(activations[1] - activations[0])}
    records = generate_conditions(
        model,
        tokenizer,
        9,
        ["Write about the harbour."],
        conditions,
        1,
        Sampling(8, temperature=0),
        seed=0,
        batch_size=2,
    )
    assert all(r["n_tokens"] > 0 for r in records)


def test_gemma_runs_on_the_engine_as_its_own_forward_does(gemma):
    """Gemma 3 (sandwich norms, (1 + w) RMSNorm, q/k norms, local and global RoPE, scaled embeddings)."""
    from steerid.engine.decoder import decoder_for

    model, tokenizer, _ = gemma
    ids, mask = tokenize_prompts(
        tokenizer, ["The sea is calm.", "A storm is coming over the hills."], torch.device("cpu")
    )
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    decoder = decoder_for(model)
    logits = decoder.logits(decoder.forward(ids, mask.bool(), positions))
    torch.testing.assert_close(logits[mask.bool()], expected[mask.bool()], rtol=1e-4, atol=1e-3)
