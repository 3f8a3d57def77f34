"""Device and precision choices shared by every torch model."""

from __future__ import annotations

import contextlib

import torch

from momentad.errors import InputError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"params.yaml: moment.device={name} but no CUDA device is visible; use auto or cpu")
    if name != "cpu" and not name.startswith("cuda"):
        raise InputError(f"params.yaml: moment.device={name!r}; use auto, cpu or cuda[:N]")
    return torch.device(name)


def autocast(device: torch.device, precision: str = "auto") -> contextlib.AbstractContextManager:
    """Mixed precision: bf16 on CUDA under ``auto``; full fp32 on CPU unless asked otherwise."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise InputError("params.yaml: moment.precision=fp16 needs CUDA; use fp32 or bf16 on CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def reset_peak() -> None:
    """Start measuring peak GPU memory afresh on every visible GPU (nothing without CUDA)."""
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        torch.cuda.reset_peak_memory_stats(i)


def peak_gpu_mb(device: torch.device) -> float | None:
    """Peak allocated GPU memory since the last reset, or None off CUDA."""
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
