"""LoRA fine-tuning cost on the MOMENT architecture: peak GPU memory and step time per
quantisation of the frozen base weights.

    python benchmarks/lora_memory.py --size large --batch-size 8 --precision bf16
    python benchmarks/lora_memory.py --size tiny --device cpu --precision fp32 -q none -q int8

Loads ``random-init:<size>`` through ``load_moment``, quantises the encoder
(``quantize_encoder``), wraps it with LoRA (``add_lora`` with params.yaml's ``lora`` section,
gradient checkpointing as ``--checkpointing`` says) and times ``--steps`` training steps on
random 512-step sequences: autocast at ``--precision``, AdamW on the adapters, a GradScaler for
fp16. Throughput and memory do not depend on the weights' values. Prints one JSON line per
quantisation: median step seconds, sequences/s and, on CUDA, peak allocated and reserved MB.
"""

from __future__ import annotations

import gc
import json
import statistics
import time

import torch
import typer

from momentad.cli import setup_logging
from momentad.detectors.moment.lora import add_lora, quantize_encoder
from momentad.detectors.moment.weights import load_moment
from momentad.detectors.registry import load_params
from momentad.device import autocast, resolve_device


def measure(size: str, quantization: str, batch_size: int, steps: int, device: torch.device, precision: str,
            checkpointing: bool, cache_dir: str) -> dict:  # fmt: skip
    """Median step time and peak memory of LoRA training with one quantisation."""
    lora = load_params("params.yaml").options["moment"].lora
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model, info = load_moment(f"random-init:{size}", 42, cache_dir)
    quantize_encoder(model, quantization)
    add_lora(model, lora.rank, lora.alpha, lora.dropout, list(lora.target_modules), checkpointing)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 1, 512, generator=gen).to(device)
    m = torch.ones(batch_size, 512, device=device)
    times = []
    for step in range(steps + 2):  # two warm-up steps (allocator, cuBLAS plans)
        t = time.perf_counter()
        with autocast(device, precision):
            out = model(x_enc=x, input_mask=m).reconstruction
        loss = (out.float() - x).pow(2).mean()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= 2:
            times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    row = {"size": size, "quantization": quantization, "precision": precision, "batch_size": batch_size,
           "gradient_checkpointing": checkpointing, "device": str(device), "parameters": info.parameters,
           "trainable_parameters": sum(p.numel() for p in params), "step_s": round(step_s, 4),
           "sequences_per_s": round(batch_size / step_s, 1),
           "loss_finite": bool(torch.isfinite(loss).item())}  # fmt: skip
    if device.type == "cuda":
        row["peak_allocated_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        row["peak_reserved_mb"] = round(torch.cuda.max_memory_reserved(device) / 2**20, 1)
        row["gpu"] = torch.cuda.get_device_name(device)
    del model, opt, params
    gc.collect()
    return row


def main(
    size: str = typer.Option("large", help="random-init size: tiny | small | base | large."),
    quantization: list[str] = typer.Option(
        ["none", "int8", "nf4"], "--quantization", "-q", help="base-weight quantisations to measure (repeat -q)."
    ),
    batch_size: int = typer.Option(8, help="sequences per training step."),
    steps: int = typer.Option(10, help="timed steps (after two warm-up steps)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda[:N]."),
    precision: str = typer.Option("bf16", help="fp32 | bf16 | fp16 (autocast)."),
    checkpointing: bool = typer.Option(True, help="gradient checkpointing in the T5 encoder."),
    cache_dir: str = typer.Option(".cache/models", help="where random-init checkpoints are written once."),
) -> None:
    """Print one JSON line per quantisation."""
    setup_logging(False)
    dev = resolve_device(device)
    for q in quantization:
        try:
            row = measure(size, q, batch_size, steps, dev, precision, checkpointing, cache_dir)
        except Exception as e:  # one failing setting (CPU nf4, out of memory) must not hide the others
            row = {"size": size, "quantization": q, "precision": precision, "device": str(dev),
                   "error": f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"}  # fmt: skip
            gc.collect()
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    typer.run(main)
