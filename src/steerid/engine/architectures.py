"""The decoder families the engine runs natively, and their weights gathered into fused tensors.

A family is described by how its decoder block differs from Llama's; everything else (RoPE
variants and scaling, GQA, biases) is read from the model's config and its own rotary module,
so Llama 3.x, Mistral, Qwen 2/2.5/3, SmolLM2 and Gemma 3 share one implementation. A model of
any other family is not an error: :func:`supported` says no and callers take the Hugging Face
path.

Fusing q/k/v and gate/up into one matrix each halves the number of small matrix products per
layer. The Hugging Face module's own parameters are then re-pointed at slices of the fused
tensors, so the model keeps working (hooks, ``generate``) and no weight is held twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel


@dataclass(frozen=True)
class Family:
    """How one family's decoder block differs from Llama's."""

    norm_offset: float = 0.0  # Gemma's RMSNorm scales by (1 + w)
    qk_norm: bool = False  # RMSNorm of each head's query and key before RoPE (Qwen 3, Gemma 3)
    sandwich_norms: bool = False  # Gemma: a norm on the attention output and on the MLP output too
    embed_scale: bool = False  # Gemma: token embeddings times sqrt(d)
    rope_per_layer_type: bool = False  # Gemma 3: local and global layers rotate with different bases
    window_on_every_layer: bool = False  # Mistral: config.sliding_window applies to all layers, not by layer type


LLAMA = Family()
GEMMA3 = Family(norm_offset=1.0, qk_norm=True, sandwich_norms=True, embed_scale=True, rope_per_layer_type=True)
FAMILIES: dict[str, Family] = {
    "llama": LLAMA,
    "mistral": Family(window_on_every_layer=True),
    "qwen2": LLAMA,
    "qwen3": Family(qk_norm=True),
    "gemma3_text": GEMMA3,
}
ACTIVATIONS = {"silu": nn.functional.silu, "gelu_pytorch_tanh": lambda x: nn.functional.gelu(x, approximate="tanh")}


@dataclass
class Block:
    """One decoder block's tensors; optional norms are None where the family has none."""

    attn_norm: torch.Tensor
    qkv: torch.Tensor  # (q + 2 kv, d): q, k and v projections stacked
    qkv_bias: torch.Tensor | None
    q_norm: torch.Tensor | None
    k_norm: torch.Tensor | None
    out: torch.Tensor
    attn_out_norm: torch.Tensor | None
    mlp_norm: torch.Tensor
    gate_up: torch.Tensor  # (2 I, d): gate and up projections stacked
    down: torch.Tensor
    mlp_out_norm: torch.Tensor | None
    window: int | None  # sliding-window width of this layer's attention, None = full
    rope_key: str  # which RoPE table this layer uses


@dataclass
class Weights:
    """Everything the engine needs from a model, in its device and dtype."""

    family: Family
    blocks: list[Block]
    embedding: torch.Tensor
    final_norm: torch.Tensor
    unembedding: torch.Tensor  # (V, d)
    n_heads: int
    n_kv_heads: int
    head_dim: int
    eps: float
    scale: float  # attention logit scale
    activation: Callable[[torch.Tensor], torch.Tensor]
    embed_multiplier: torch.Tensor  # a 0-d tensor in the weights' dtype, rounded as the model rounds it


def text_config(model: PreTrainedModel) -> PretrainedConfig:
    """The decoder's config (a multimodal model nests it)."""
    return model.config.get_text_config()


def family_name(model: PreTrainedModel) -> str:
    return str(text_config(model).model_type)


def _foreign_hooks(model: PreTrainedModel) -> bool:
    """Whether any module carries a forward hook the engine would bypass.

    transformers installs its own output-capturing hooks once ``output_hidden_states`` has been
    used; they only record, so they do not count.
    """
    for module in model.modules():
        for hook in [*module._forward_hooks.values(), *module._forward_pre_hooks.values()]:
            if "output_capturing_hook" not in getattr(hook, "__qualname__", ""):
                return True
    return False


def supported(model: PreTrainedModel) -> bool:
    """Whether the engine runs this model natively (else callers use the Hugging Face forward).

    A model with forward hooks registered on it (someone else's steering, say) takes the
    Hugging Face path, so that the hooks still run.
    """
    if _foreign_hooks(model):
        return False
    config = text_config(model)
    family = FAMILIES.get(str(config.model_type))
    if (
        family is None
        or getattr(config, "final_logit_softcapping", None)
        or getattr(config, "attn_logit_softcapping", None)
    ):
        return False
    activation = getattr(config, "hidden_activation", None) or getattr(config, "hidden_act", None)
    return activation in ACTIVATIONS and _backbone(model) is not None


def _backbone(model: PreTrainedModel):
    for path in ("model", "model.language_model"):
        module: object = model
        for attribute in path.split("."):
            module = getattr(module, attribute, None)
        if module is not None and hasattr(module, "layers") and hasattr(module, "embed_tokens"):
            return module
    return None


def rotary_module(model: PreTrainedModel) -> nn.Module:
    return _backbone(model).rotary_emb


def _fuse(modules: list[nn.Linear], attribute: str = "weight") -> torch.Tensor | None:
    """Stack the modules' parameters along dim 0 and make each module's parameter a view of its rows."""
    tensors = [getattr(m, attribute) for m in modules]
    if any(t is None for t in tensors):
        return None
    fused = torch.cat([t.detach() for t in tensors], dim=0).contiguous()
    start = 0
    for module, tensor in zip(modules, tensors):
        stop = start + tensor.shape[0]
        getattr(module, attribute).data = fused[start:stop]
        start = stop
    return fused


def _weight(module: nn.Module) -> torch.Tensor:
    return cast(torch.Tensor, module.weight).detach()


def _norm(module: nn.Module | None) -> torch.Tensor | None:
    return None if module is None else _weight(module)


# A decoder layer's submodules are named by the architecture, not typed: `layer` is Any.
def _block(layer: Any, index: int, config, family: Family) -> Block:
    attention, mlp = layer.self_attn, layer.mlp
    projections = [attention.q_proj, attention.k_proj, attention.v_proj]
    layer_type = (getattr(config, "layer_types", None) or ["full_attention"] * (index + 1))[index]
    windowed = family.window_on_every_layer or layer_type == "sliding_attention"
    return Block(
        attn_norm=_weight(layer.input_layernorm),
        qkv=cast(torch.Tensor, _fuse(projections)),
        qkv_bias=_fuse(projections, "bias"),
        q_norm=_norm(getattr(attention, "q_norm", None)) if family.qk_norm else None,
        k_norm=_norm(getattr(attention, "k_norm", None)) if family.qk_norm else None,
        out=attention.o_proj.weight.detach(),
        attn_out_norm=_norm(layer.post_attention_layernorm) if family.sandwich_norms else None,
        mlp_norm=_weight(layer.pre_feedforward_layernorm if family.sandwich_norms else layer.post_attention_layernorm),
        gate_up=cast(torch.Tensor, _fuse([mlp.gate_proj, mlp.up_proj])),
        down=mlp.down_proj.weight.detach(),
        mlp_out_norm=_norm(layer.post_feedforward_layernorm) if family.sandwich_norms else None,
        window=getattr(config, "sliding_window", None) if windowed else None,
        rope_key=layer_type if family.rope_per_layer_type else "default",
    )


def gather(model: PreTrainedModel) -> Weights:
    """The model's weights, fused; raises ValueError for a model :func:`supported` rejects."""
    if not supported(model):
        raise ValueError(f"the engine does not run {type(model).__name__} ({family_name(model)}) natively")
    config, backbone = text_config(model), _backbone(model)
    family = FAMILIES[str(config.model_type)]
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    pre_scalar = getattr(config, "query_pre_attn_scalar", None)
    activation = getattr(config, "hidden_activation", None) or config.hidden_act
    blocks = [_block(layer, i, config, family) for i, layer in enumerate(backbone.layers[: config.num_hidden_layers])]
    return Weights(
        family=family,
        blocks=blocks,
        embedding=backbone.embed_tokens.weight.detach(),
        final_norm=backbone.norm.weight.detach(),
        unembedding=model.get_output_embeddings().weight.detach(),
        n_heads=int(config.num_attention_heads),
        n_kv_heads=int(config.num_key_value_heads),
        head_dim=int(head_dim),
        eps=float(config.rms_norm_eps),
        scale=float(pre_scalar) ** -0.5 if pre_scalar else float(head_dim) ** -0.5,
        activation=ACTIVATIONS[activation],
        embed_multiplier=torch.tensor(
            float(config.hidden_size) ** 0.5 if family.embed_scale else 1.0, dtype=backbone.embed_tokens.weight.dtype
        ),
    )
