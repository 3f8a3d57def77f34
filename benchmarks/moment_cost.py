"""What MOMENT's CPU time is made of: LoRA training throughput per batch size, the operator
profile of one forward pass, and whether fusing the element-wise ops would pay.

    python benchmarks/moment_cost.py [--size small] [--seconds 15]

Random-init weights (throughput does not depend on the weights' values).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
import typer

from momentad.detectors.moment.lora import add_lora
from momentad.detectors.moment.weights import load_moment


def _forward_s(model, x, m, reps: int = 3) -> float:
    with torch.inference_mode():
        model(x_enc=x, input_mask=m)
        t = time.perf_counter()
        for _ in range(reps):
            model(x_enc=x, input_mask=m)
    return (time.perf_counter() - t) / reps


def main(size: str = "small", seconds: float = 15.0, threads: int = 2, cache_dir: str = ".cache/models") -> None:
    """Print training sequences/s at batch 16 / 32 / 64, the forward profile and the fused-op timings."""
    torch.set_num_threads(threads)
    model, _ = load_moment(f"random-init:{size}", 42, cache_dir)
    x, m = torch.randn(64, 1, 512), torch.ones(64, 512)
    model.eval()
    base = _forward_s(model, x, m)
    print(f"forward, 64 sequences: {base:.2f} s")
    from torch.profiler import profile

    with torch.inference_mode(), profile() as p:
        model(x_enc=x, input_mask=m)
    total = sum(e.self_cpu_time_total for e in p.key_averages())
    for e in sorted(p.key_averages(), key=lambda e: -e.self_cpu_time_total)[:5]:
        print(f"  {e.key:16s} {100 * e.self_cpu_time_total / total:5.1f} % of self CPU time")
    with torch.inference_mode():
        ref = model(x_enc=x, input_mask=m).reconstruction
    from transformers.models.t5.modeling_t5 import T5DenseGatedActDense, T5LayerNorm

    for mod in model.modules():
        if isinstance(mod, T5DenseGatedActDense):
            mod.act = torch.nn.GELU(approximate="tanh")
    print(f"forward with a fused GELU: {_forward_s(model, x, m):.2f} s")

    def rms(self, h):
        return F.rms_norm(h, (h.shape[-1],), self.weight, self.variance_epsilon)

    for mod in model.modules():
        if isinstance(mod, T5LayerNorm):
            mod.forward = rms.__get__(mod)
    fused = _forward_s(model, x, m)
    with torch.inference_mode():
        diff = (model(x_enc=x, input_mask=m).reconstruction - ref).abs().max().item()
    print(f"forward with fused GELU + rms_norm: {fused:.2f} s (max reconstruction change {diff:.1e})")

    model, _ = load_moment(f"random-init:{size}", 42, cache_dir)
    add_lora(model, 8, 16, 0.05, ["q", "v"])
    model.train()
    opt = torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-3)
    for bs in (16, 32, 64):
        xb, mb = torch.randn(bs, 1, 512), torch.ones(bs, 512)
        n, t = 0, time.perf_counter()
        while time.perf_counter() - t < seconds:
            model(x_enc=xb, input_mask=mb).reconstruction.pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
            n += bs
        print(f"LoRA training, batch {bs}: {n / (time.perf_counter() - t):.1f} sequences/s")


if __name__ == "__main__":
    typer.run(main)
