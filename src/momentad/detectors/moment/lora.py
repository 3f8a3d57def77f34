"""LoRA adapters (peft) on MOMENT's T5 encoder and optional bitsandbytes quantisation of the
frozen base weights."""

from __future__ import annotations

import warnings
from typing import Literal, get_args

import torch
from torch import nn

from momentad.errors import InputError

Quantization = Literal["none", "int8", "nf4"]
# the linear layers of a T5 block LoRA can adapt (moment.lora.target_modules)
LoraTarget = Literal["q", "k", "v", "o", "wi_0", "wi_1", "wo"]
T5_LINEARS: tuple[str, ...] = get_args(LoraTarget)


def quantize_encoder(model: nn.Module, how: str) -> int:
    """Replace the encoder's linear layers by bitsandbytes int8 / nf4 layers (frozen).

    Returns the number of layers replaced. On CPU, int8 layers train LoRA and nf4 layers only
    run forward (nf4 training there is refused up front: ``docs/benchmarks.md``).
    """
    if how == "none":
        return 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import bitsandbytes as bnb
    except Exception as e:  # a broken native library surfaces here
        raise InputError(
            f"params.yaml: moment.quantization={how} needs bitsandbytes, which failed to load "
            f"({type(e).__name__}); use moment.quantization: none"
        ) from None
    replaced = 0
    for parent in list(model.encoder.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is not nn.Linear or name not in T5_LINEARS:
                continue
            w = child.weight.data
            if how == "int8":
                q = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=child.bias is not None,
                                        has_fp16_weights=False, threshold=6.0)  # fmt: skip
                q.weight = bnb.nn.Int8Params(w.clone(), requires_grad=False, has_fp16_weights=False)
            else:
                q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                      compute_dtype=torch.float32, quant_type="nf4")  # fmt: skip
                q.weight = bnb.nn.Params4bit(w.clone(), requires_grad=False, quant_type="nf4")
            if child.bias is not None:
                q.bias = nn.Parameter(child.bias.data.clone(), requires_grad=False)
            setattr(parent, name, q.to(w.device))
            replaced += 1
    return replaced


def add_lora(model: nn.Module, rank: int, alpha: float, dropout: float, target_modules: list[str],
             gradient_checkpointing: bool = False) -> nn.Module:  # fmt: skip
    """Wrap ``model.encoder`` with peft LoRA; freeze every other weight.

    peft 0.13's ``get_peft_model`` fails on the MOMENT object itself (its config is a
    Namespace), so the adapter goes on the T5 encoder, where the attention/FFN layers live.
    """
    from peft import LoraConfig, get_peft_model

    for p in model.parameters():
        p.requires_grad = False
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.encoder = get_peft_model(model.encoder, cfg)
    for name, p in model.named_parameters():
        p.requires_grad = "lora_" in name
    enable_checkpointing(model, gradient_checkpointing)  # MOMENT switches it on by default
    return model


def enable_checkpointing(model: nn.Module, on: bool) -> None:
    """Gradient checkpointing in the T5 stack. transformers 4.33 uses re-entrant checkpointing,
    which drops gradients when the block inputs do not require grad (the frozen patch
    embedding's output): a hook marks that output as requiring grad."""
    stack = model.encoder.get_base_model() if hasattr(model.encoder, "get_base_model") else model.encoder
    if not on:
        stack.gradient_checkpointing_disable()
        return
    stack.gradient_checkpointing_enable()
    if not getattr(model, "_momentad_grad_hook", False):
        model.patch_embedding.register_forward_hook(lambda _m, _i, out: out.requires_grad_(True))
        model._momentad_grad_hook = True


def save_adapter(model: nn.Module, folder, base: str) -> None:
    """peft's own adapter format (``PeftModel.from_pretrained`` loads it on MOMENT's encoder), with
    the base checkpoint named in ``adapter_config.json``, target modules in a stable order (peft
    keeps a set) and no empty model card."""
    import json
    from pathlib import Path

    folder = Path(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.encoder.save_pretrained(str(folder), safe_serialization=True)
    (folder / "README.md").unlink(missing_ok=True)  # a template of "[More Information Needed]"
    path = folder / "adapter_config.json"
    cfg = json.loads(path.read_text())
    cfg["base_model_name_or_path"] = f"{base} (MOMENT's T5 encoder)"
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
