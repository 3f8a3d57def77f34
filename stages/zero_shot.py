"""DVC stage `zero_shot`: MOMENT with no training scores val and test; threshold on val."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
import typer

from momentad.cli import setup_logging, stage
from momentad.data import load_splits
from momentad.detectors.moment import MomentReconstruction
from momentad.evaluate import EvalConfig, evaluate, peak_rss_mb, sliding_window, write_outputs
from momentad.models.device import peak_gpu_mb, resolve_device
from momentad.models.moment import load_moment
from momentad.params import load_params, require_int, section
from momentad.plots import test_period, weights_label

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)
log = logging.getLogger("stages.zero_shot")


@app.command()
@stage
def main(
    params: Path = typer.Option(
        Path("params.yaml"),
        help="params file; reads `seed`, `model.*` (checkpoint, revision, offline, "
        "cache_dir, batch_size, device, precision), `zero_shot` and `evaluate`.",
    ),  # fmt: skip
    processed: Path = typer.Option(Path("data/processed"), help="folder written by the preprocess stage."),
    windows: Path = typer.Option(Path("data/windows"), help="folder written by the window stage."),
    scores: Path = typer.Option(Path("data/scores/zero_shot.parquet"), help="test scores (val scores beside it)."),
    metrics: Path = typer.Option(Path("metrics/zero_shot.json"), help="metrics JSON (design.md schema)."),
    plots: Path = typer.Option(Path("plots/zero_shot"), help="folder for pr_curve.csv and test_period.png."),
    progress: bool = typer.Option(True, help="show a progress bar while scoring."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Load MOMENT from `model.checkpoint` (hub id, local directory or random-init:<size>),
    reconstruct every val/test window (channels as independent univariate sequences, batched
    by `model.batch_size`), score each timestep by squared reconstruction error reduced over
    channels with `zero_shot.channel_reduce`, pick the threshold on validation with
    `evaluate.threshold` and write test metrics, scores and plots."""
    setup_logging(verbose)
    p = load_params(params)
    seed = require_int(p.get("seed"), "seed", 0)
    mp, zp = section(p, "model"), section(p, "zero_shot")
    cfg = EvalConfig.from_params(section(p, "evaluate"))
    splits, schema, _ = load_splits(processed, windows)
    torch.manual_seed(seed)
    device = resolve_device(mp.get("device", "auto"))
    t0 = time.perf_counter()
    model, info = load_moment(mp.get("checkpoint"), seed, mp.get("cache_dir", ".cache/models"),
                              mp.get("revision"), bool(mp.get("offline", False)))  # fmt: skip
    model.to(device)
    load_s = time.perf_counter() - t0
    detector = MomentReconstruction(
        model, device, mp.get("precision", "auto"), require_int(mp.get("batch_size", 64), "model.batch_size", 1),
        zp.get("channel_reduce", "mean"), zp.get("topk", 5), progress,
    )  # fmt: skip
    val_scores = detector.score(splits["val"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t1 = time.perf_counter()
    test_scores = detector.score(splits["test"])
    score_s = time.perf_counter() - t1
    window = sliding_window(cfg, splits["train"])
    result = evaluate(splits["val"], val_scores, splits["test"], test_scores, cfg, window)
    n_test = len(splits["test"])
    runtime = {
        "fit_s": 0.0,
        "load_s": round(load_s, 3),
        "score_s": round(score_s, 3),
        "timesteps_per_s": round(n_test / score_s, 1),
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": peak_gpu_mb(device),
        "device": str(device),
    }
    data = {"source": schema["source"], "name": schema["name"], "synthetic": schema["synthetic"]}
    doc = write_outputs("moment_zero_shot", splits["val"], val_scores, splits["test"], test_scores, result,
                        runtime, info.to_dict(), data, scores, metrics, plots / "pr_curve.csv",
                        extra={"budget": 0})  # fmt: skip
    test_period(splits["test"], test_scores, result["threshold"]["value"],
                f"MOMENT zero-shot - {weights_label(doc['model'])}", plots / "test_period.png")  # fmt: skip
    t = doc["test"]
    weights = "pretrained" if info.pretrained else "RANDOM-INIT (not pretrained)"
    typer.echo(
        f"zero_shot: {info.checkpoint} [{weights}], VUS-PR {t['vus_pr']:.3f}, AUC-PR {t['auc_pr']:.3f}, "
        f"F1@val-threshold {t['f1_at_val_threshold']:.3f}; {n_test} test steps in {score_s:.1f}s "
        f"({runtime['timesteps_per_s']:.0f} steps/s) on {device}"
    )


if __name__ == "__main__":
    app()
