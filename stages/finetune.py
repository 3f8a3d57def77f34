"""DVC stage `finetune@<budget>`: LoRA fine-tuning of MOMENT on a sample budget, then scoring."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import typer

from momentad.cli import setup_logging, stage
from momentad.data import load_splits
from momentad.detectors.moment import MomentPatchClassifier, MomentReconstruction, PatchHead
from momentad.errors import InputError
from momentad.evaluate import EvalConfig, evaluate, peak_rss_mb, sliding_window, write_outputs
from momentad.finetune import (
    FinetuneConfig,
    Trainer,
    budget_windows,
    fault_channel_weights,
    run_key,
    sequences,
)
from momentad.io import atomic_dir, atomic_file, write_json
from momentad.models.device import peak_gpu_mb, resolve_device
from momentad.models.lora import add_lora, quantize_encoder
from momentad.models.moment import load_moment
from momentad.params import load_params, require_int, section

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


@app.command()
@stage
def main(
    budget: int = typer.Option(..., help="number of training windows (one of finetune.budgets)."),
    params: Path = typer.Option(
        Path("params.yaml"),
        help="params file; reads `seed`, `model.*`, `finetune`, `lora`, "
        "`zero_shot.channel_reduce` / `zero_shot.topk` and `evaluate`.",
    ),  # fmt: skip
    processed: Path = typer.Option(Path("data/processed"), help="folder written by the preprocess stage."),
    windows: Path = typer.Option(Path("data/windows"), help="folder written by the window stage."),
    state: Path = typer.Option(Path(".cache/finetune"), help="per-epoch checkpoints for resuming."),
    progress: bool = typer.Option(True, help="show progress bars with the running loss."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each epoch."),
) -> None:
    """Draw `budget` training windows (seeded, nested across budgets; `finetune.seeds` repeats
    the draw), add LoRA adapters (`lora.*`) to MOMENT's encoder with every base weight frozen,
    train with `finetune.objective` (masked-patch `reconstruction` or a supervised patch
    `classification` head), early-stop on validation loss, checkpoint every epoch (a re-run
    after an interruption resumes), then score val/test and evaluate like every method."""
    setup_logging(verbose)
    p = load_params(params)
    seed = require_int(p.get("seed"), "seed", 0)
    mp, lp, zp = section(p, "model"), section(p, "lora"), section(p, "zero_shot")
    cfg = FinetuneConfig.from_params(section(p, "finetune"))
    ecfg = EvalConfig.from_params(section(p, "evaluate"))
    require_int(budget, "--budget", 1)
    quant = mp.get("quantization", "none")
    splits, schema, meta = load_splits(processed, windows)
    device = resolve_device(mp.get("device", "auto"))
    precision = mp.get("precision", "auto")
    if quant != "none" and precision == "fp16":
        raise InputError(
            f"params.yaml: model.quantization={quant} with model.precision=fp16 is not supported; use auto or bf16"
        )
    classification = cfg.objective == "classification"
    window = sliding_window(ecfg, splits["train"])
    fingerprint = {k: json.loads((d / f).read_text()) for k, d, f in
                   (("schema", processed, "schema.json"), ("windows", windows, "windows.json"))}  # fmt: skip

    draws, first = [], None
    for draw in cfg.seeds:
        torch.manual_seed(seed)
        model, info = load_moment(mp.get("checkpoint"), seed, mp.get("cache_dir", ".cache/models"),
                                  mp.get("revision"), bool(mp.get("offline", False)))  # fmt: skip
        n_quant = quantize_encoder(model, quant)
        add_lora(model, require_int(lp.get("rank", 8), "lora.rank", 1), float(lp.get("alpha", 16)),
                 float(lp.get("dropout", 0.05)), list(lp.get("target_modules", ["q", "v"])),
                 cfg.gradient_checkpointing)  # fmt: skip
        model.to(device)
        head = PatchHead(model.config.d_model).to(device) if classification else None
        trainable = sum(q.numel() for q in model.parameters() if q.requires_grad)
        trainable += sum(q.numel() for q in head.parameters()) if head is not None else 0

        rows = budget_windows(splits["train"].index, budget, seed, draw, cfg.include_anomalous or classification)
        weights = fault_channel_weights(splits["train"], rows) if classification else None
        train_data = sequences(splits["train"], rows, cfg.channels_per_window, seed, draw, weights)
        val_rows = np.arange(len(splits["val"].index))
        val_data = sequences(splits["val"], val_rows, cfg.channels_per_window, seed, draw)
        if classification and train_data["labels"].sum() == 0:
            raise InputError(
                f"finetune.objective=classification: the {budget} drawn windows hold no anomaly; raise the budget"
            )
        key = run_key({"budget": budget, "seed": seed, "draw": draw, "finetune": asdict(cfg), "lora": lp,
                       "model": {k: mp.get(k) for k in ("checkpoint", "revision", "quantization", "precision")},
                       "data": fingerprint})  # fmt: skip
        state_dir = state / str(budget) / f"draw{draw}-{key}"
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        trainer = Trainer(model, head, cfg, device, precision, state_dir, seed, draw, progress)
        training = trainer.fit(train_data, val_data)
        train_peak_gpu = peak_gpu_mb(device)

        det_args = (device, precision, require_int(mp.get("batch_size", 64), "model.batch_size", 1),
                    zp.get("channel_reduce", "mean"), zp.get("topk", 5), progress)  # fmt: skip
        detector = (
            MomentPatchClassifier(model, head, *det_args) if classification else MomentReconstruction(model, *det_args)
        )
        val_scores = detector.score(splits["val"])
        t1 = time.perf_counter()
        test_scores = detector.score(splits["test"])
        score_s = time.perf_counter() - t1
        result = evaluate(splits["val"], val_scores, splits["test"], test_scores, ecfg, window)
        draws.append({"draw": draw, "training": training, "result": result, "score_s": score_s,
                      "trainable": trainable, "quantized_layers": n_quant, "peak_gpu_mb": train_peak_gpu})  # fmt: skip
        if first is None:
            first = (val_scores, test_scores, info)
        shutil.rmtree(state_dir, ignore_errors=True)  # finished: nothing to resume
        draws[-1]["adapter"] = trainer.trainable_state()

    _write(budget, cfg, lp, quant, splits, schema, draws, first, window, device, mp)


def _write(budget, cfg, lp, quant, splits, schema, draws, first, window, device, mp) -> None:
    val_scores, test_scores, info = first
    tests = pd.DataFrame([d["result"]["test"] for d in draws])
    mean, std = tests.mean(), tests.std(ddof=0).fillna(0.0)
    result = dict(draws[0]["result"])
    result["test"] = {k: round(float(v), 6) for k, v in mean.items()}
    n_test = len(splits["test"])
    score_s = float(np.mean([d["score_s"] for d in draws]))
    runtime = {
        "fit_s": round(float(np.mean([d["training"]["train_s"] for d in draws])), 3),
        "score_s": round(score_s, 3),
        "timesteps_per_s": round(n_test / score_s, 1),
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": draws[0]["peak_gpu_mb"],
        "device": str(device),
    }
    model = info.to_dict()
    model.update(trainable_parameters=draws[0]["trainable"], adapter="lora", quantization=quant,
                 lora={k: lp.get(k) for k in ("rank", "alpha", "dropout", "target_modules")})  # fmt: skip
    training = {
        "objective": cfg.objective,
        "epochs_run": int(np.mean([d["training"]["epoch"] for d in draws])),
        "best_epoch": draws[0]["training"]["best_epoch"],
        "best_val_loss": round(float(np.mean([d["training"]["best_val_loss"] for d in draws])), 6),
        "train_s": runtime["fit_s"],
        "trainable_parameters": draws[0]["trainable"],
        "sequences_per_epoch": budget * cfg.channels_per_window,
        "stopped_early": bool(draws[0]["training"]["stopped_early"]),
    }
    extra = {
        "budget": budget,
        "draws": len(draws),
        "test_std": {k: round(float(v), 6) for k, v in std.items()},
        "per_draw": [
            {
                "seed": d["draw"],
                "vus_pr": d["result"]["test"]["vus_pr"],
                "f1_at_val_threshold": d["result"]["test"]["f1_at_val_threshold"],
            }
            for d in draws
        ],  # fmt: skip
        "training": training,
    }
    data = {"source": schema["source"], "name": schema["name"], "synthetic": schema["synthetic"]}
    write_outputs(f"moment_lora_{budget}", splits["val"], val_scores, splits["test"], test_scores, result, runtime,
                  model, data, Path(f"data/scores/finetune_{budget}.parquet"), Path(f"metrics/finetune/{budget}.json"),
                  Path(f"plots/finetune/pr/{budget}.csv"), extra)  # fmt: skip
    history = pd.DataFrame(draws[0]["training"]["history"])
    with atomic_file(Path(f"plots/finetune/loss/{budget}.csv")) as tmp:
        history.round(6).to_csv(tmp, index=False)
    with atomic_dir(Path(f"data/models/finetune_{budget}")) as tmp:
        from safetensors.torch import save_file

        for d in draws:
            save_file(d["adapter"], str(tmp / f"draw{d['draw']}.safetensors"),
                      metadata={"base": str(mp.get("checkpoint")), "budget": str(budget)})  # fmt: skip
        adapter = {"base_checkpoint": mp.get("checkpoint"), "pretrained_base": model["pretrained"],
                   "lora": model["lora"], "quantization": quant, "objective": cfg.objective,
                   "draws": [d["draw"] for d in draws], "format": "safetensors"}  # fmt: skip
        write_json(tmp / "adapter.json", adapter)
    t = result["test"]
    weights = "pretrained" if model["pretrained"] else "RANDOM-INIT base (not pretrained)"
    spread = f" ±{extra['test_std']['vus_pr']:.3f}" if len(draws) > 1 else ""
    typer.echo(
        f"finetune@{budget}: {cfg.objective}, LoRA r={lp.get('rank')} on {model['checkpoint']} [{weights}], "
        f"{training['epochs_run']} epochs in {training['train_s']:.0f}s, VUS-PR {t['vus_pr']:.3f}{spread}, "
        f"F1@val-threshold {t['f1_at_val_threshold']:.3f}"
    )


if __name__ == "__main__":
    app()
