"""DVC stage `baseline@<method>`: fit a classic detector on train, score val/test, evaluate."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import typer

from momentad.cli import setup_logging, stage
from momentad.data import load_splits
from momentad.detectors.registry import BASELINES, make_detector
from momentad.errors import InputError
from momentad.evaluate import EvalConfig, evaluate, peak_rss_mb, sliding_window, write_outputs
from momentad.params import load_params, require_int, section

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


@app.command()
@stage
def main(
    method: str = typer.Option(..., help=f"one of {', '.join(BASELINES)} (see baselines.methods)."),
    params: Path = typer.Option(
        Path("params.yaml"), help="params file; reads `seed`, `baselines.<method>` and `evaluate`."
    ),
    processed: Path = typer.Option(Path("data/processed"), help="folder written by the preprocess stage."),
    windows: Path = typer.Option(Path("data/windows"), help="folder written by the window stage."),
    progress: bool = typer.Option(True, help="show progress bars while training."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Fit `method` on the training split (validation only for early stopping), score every
    val/test timestep, choose the threshold on validation and write scores, metrics and the
    PR curve exactly as the MOMENT stages do."""
    setup_logging(verbose)
    p = load_params(params)
    seed = require_int(p.get("seed"), "seed", 0)
    options = section(p, "baselines").get(method)
    if method in BASELINES and options is not None and not isinstance(options, dict):
        raise InputError(f"params.yaml: baselines.{method} must be a mapping of options")
    cfg = EvalConfig.from_params(section(p, "evaluate"))
    splits, schema, _ = load_splits(processed, windows)
    detector = make_detector(method, options or {}, seed, progress)
    np.random.seed(seed)  # libraries that draw from the global state stay reproducible too
    t0 = time.perf_counter()
    detector.fit(splits["train"], splits["val"])
    fit_s = time.perf_counter() - t0
    val_scores = detector.score(splits["val"])
    t1 = time.perf_counter()
    test_scores = detector.score(splits["test"])
    score_s = time.perf_counter() - t1
    result = evaluate(splits["val"], val_scores, splits["test"], test_scores, cfg, sliding_window(cfg, splits["train"]))
    n = len(splits["test"])
    runtime = {"fit_s": round(fit_s, 3), "score_s": round(score_s, 3), "timesteps_per_s": round(n / score_s, 1),
               "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": None, "device": "cpu"}  # fmt: skip
    if hasattr(detector, "device_"):
        runtime["device"] = str(detector.device_)
    extra = {"params": options or {}}
    if hasattr(detector, "gap_"):
        extra["train_vs_val"] = {k: round(v, 6) for k, v in detector.gap_.items()}
    if hasattr(detector, "weights_"):
        extra["loss_weights"] = {"strategy": detector.loss, "min": round(float(detector.weights_.min()), 4),
                                 "max": round(float(detector.weights_.max()), 4)}  # fmt: skip
    model = {"checkpoint": None, "pretrained": False, "source": "trained from scratch", "parameters": _params(detector),
             "trainable_parameters": _params(detector)}  # fmt: skip
    data = {"source": schema["source"], "name": schema["name"], "synthetic": schema["synthetic"]}
    doc = write_outputs(method, splits["val"], val_scores, splits["test"], test_scores, result, runtime, model, data,
                        Path(f"data/scores/{method}.parquet"), Path(f"metrics/baselines/{method}.json"),
                        Path(f"plots/baselines/pr/{method}.csv"), extra)  # fmt: skip
    t = doc["test"]
    gap = ""
    if "train_vs_val" in extra and "train_minus_val_auc_pr" in extra["train_vs_val"]:
        gap = f", train-val AUC-PR gap {extra['train_vs_val']['train_minus_val_auc_pr']:.3f}"
    typer.echo(f"baseline@{method}: VUS-PR {t['vus_pr']:.3f}, AUC-PR {t['auc_pr']:.3f}, F1@val-threshold "
               f"{t['f1_at_val_threshold']:.3f}; fit {fit_s:.1f}s, score {score_s:.1f}s{gap}")  # fmt: skip


def _params(detector) -> int | None:
    model = getattr(detector, "model_", None)
    if hasattr(model, "parameters"):
        return int(sum(p.numel() for p in model.parameters()))
    if hasattr(model, "estimators_"):
        return int(sum(getattr(e, "tree_", None).node_count for e in model.estimators_ if hasattr(e, "tree_")))
    return None


if __name__ == "__main__":
    app()
