"""Zero-shot scoring throughput: the stage's scoring vs the raw forward ceiling vs stride-1.

Run from the repository root after `dvc repro window` (uses the default test split):

    python benchmarks/zero_shot_throughput.py --size small
    python benchmarks/zero_shot_throughput.py --size large --channels 8

(a) stage: MomentReconstruction.score on the test split (windowing, batching, accumulation);
(b) ceiling: the model's forward alone on pre-built batches of the same sequences;
(c) stride-1: one forward per timestep and channel, as TSB-AD's MOMENT wrapper scores,
    timed on ``--stride1-steps`` consecutive timesteps and reported per timestep.
Plus compute_metrics on 100,000 timesteps. Prints one JSON line of results.
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import torch
import typer

from momentad.data import Split, load_splits
from momentad.detectors.base import RunContext
from momentad.detectors.moment.detector import Moment
from momentad.detectors.moment.scoring import window_batches
from momentad.detectors.registry import load_params
from momentad.device import autocast
from momentad.metrics import compute_metrics


def main(
    size: str = typer.Option("small", help="random-init size: tiny | small | base | large."),
    channels: int = typer.Option(0, help="score only the first N KPI channels (0 = all)."),
    batch_size: int = typer.Option(64, help="sequences per forward pass."),
    stride1_steps: int = typer.Option(32, help="timesteps timed for the stride-1 scorer."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    precision: str = typer.Option("auto", help="auto | fp32 | bf16 | fp16."),
) -> None:
    """Measure (a), (b), (c) and compute_metrics; print one JSON line."""
    splits, _, _ = load_splits()
    test = splits["test"]
    if channels:
        test = Split(test.name, test.frame, test.features[:channels], test.index)
    cfg = load_params("params.yaml")
    mp = dataclasses.replace(cfg.options["moment"], checkpoint=f"random-init:{size}", batch_size=batch_size,
                             device=device, precision=precision)  # fmt: skip
    det = Moment(mp, RunContext(seed=42, window=cfg.window)).fit(None)
    model, dev, info = det.model_, det.device_, det.info_

    det.score(Split(test.name, test.frame, test.features, test.index.iloc[:1]))  # warm-up
    t0 = time.perf_counter()
    det.score(test)
    stage_s = time.perf_counter() - t0

    batches = [(torch.from_numpy(x).to(dev), torch.from_numpy(m).to(dev))
               for _, x, m in window_batches(test.values, test.index, batch_size)]  # fmt: skip
    with torch.inference_mode(), autocast(dev, precision):
        t0 = time.perf_counter()
        for x, m in batches:
            model(x_enc=x, input_mask=m)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        raw_s = time.perf_counter() - t0

    # stride-1: a 512-step window ending at every timestep, one forward per window and channel
    values = test.values
    c = values.shape[1]
    ends = np.arange(512, 512 + stride1_steps)
    seqs = np.stack([values[e - 512 : e].T for e in ends]).reshape(-1, 1, 512)
    with torch.inference_mode(), autocast(dev, precision):
        t0 = time.perf_counter()
        for a in range(0, len(seqs), batch_size):
            x = torch.from_numpy(seqs[a : a + batch_size]).to(dev)
            model(x_enc=x, input_mask=torch.ones(len(x), 512, device=dev))
        if dev.type == "cuda":
            torch.cuda.synchronize()
        s1_s = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    lab = np.zeros(100_000, int)
    for s in rng.choice(99_900, 150, replace=False):
        lab[s : s + rng.integers(5, 60)] = 1
    t0 = time.perf_counter()
    compute_metrics(lab, rng.random(100_000) + lab * rng.random(100_000), 125)
    metrics_s = time.perf_counter() - t0

    n = len(test)
    stage_tps, raw_tps, s1_tps = n / stage_s, n / raw_s, stride1_steps / s1_s
    print(json.dumps({
        "model": info.checkpoint, "parameters": info.parameters, "device": str(dev),
        "precision": precision, "threads": torch.get_num_threads(), "channels": c, "test_timesteps": n,
        "sequences": len(test.index) * c, "batch_size": batch_size,
        "a_stage_timesteps_per_s": round(stage_tps, 1), "b_raw_forward_timesteps_per_s": round(raw_tps, 1),
        "c_stride1_timesteps_per_s": round(s1_tps, 3),
        "a_over_b": round(stage_tps / raw_tps, 3), "a_over_c": round(stage_tps / s1_tps, 1),
        "compute_metrics_100k_s": round(metrics_s, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    typer.run(main)
