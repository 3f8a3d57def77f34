"""One runner for every method: fit -> score val and test -> threshold on validation ->
evaluate -> write outputs. Every model stage is a thin call of :func:`run`.

Budgets: a method id with a budget (``moment_lora_100``) trains on that many windows of the
train split's window index, a seeded permutation cut at the budget (nested: the 100 lie inside
the 500), once per draw in ``finetune.seeds``; metrics report the mean over draws, the
standard deviation and every draw. The first draw's scores and model are the ones saved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from momentad.config import Params, as_dict
from momentad.data import Split, load_splits
from momentad.detectors.base import Detector
from momentad.detectors.registry import detector_class
from momentad.errors import InputError
from momentad.evaluate import evaluate, peak_rss_mb, scores_frame, sliding_window
from momentad.finetune import budget_windows
from momentad.io import atomic_dir, atomic_file, write_json
from momentad.layout import Layout, method_ids, parse

log = logging.getLogger(__name__)
HEADLINE = {"vus_pr": "vus_pr", "vus_roc": "vus_roc", "auc_pr": "auc_pr", "f1": "f1_at_val_threshold",
            "precision": "precision_at_val_threshold", "recall": "recall_at_val_threshold"}  # fmt: skip


def _run_key(payload: dict[str, Any]) -> str:
    """Identify a training run by everything that determines its result (for resuming)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _device_type(det: Detector) -> str:
    return str(det.device_).split(":")[0]


def _peak_gpu_mb(det: Detector) -> float | None:
    if _device_type(det) != "cuda":
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def fit_and_score(method_id: str, cfg: Params, splits: dict[str, Split], layout: Layout, data_key: str,
                  progress: bool = False) -> list[dict[str, Any]]:  # fmt: skip
    """Every draw of one method id: fitted detector, val/test scores, evaluation, timings."""
    mid = parse(method_id)
    cls = detector_class(mid.detector)
    draws = cfg.finetune.seeds if mid.budget is not None else [0]
    window = sliding_window(cfg.evaluate, splits["train"])
    out = []
    for draw in draws:
        key = _run_key({"id": method_id, "draw": draw, "params": as_dict(cfg), "data": data_key})
        det = cls.from_config(cfg, progress=progress, draw=draw, state_dir=layout.state_dir(method_id) / key)
        train = splits["train"]
        if mid.budget is not None:
            rows = budget_windows(train.index, mid.budget, cfg.seed, draw, det.uses_anomalous_windows)
            train = dataclasses.replace(train, index=train.index.iloc[rows].reset_index(drop=True))
        if _device_type(det) == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        det.fit(train, X_val=splits["val"])
        fit_s = time.perf_counter() - t0
        val_scores = det.score(splits["val"])
        t1 = time.perf_counter()
        test_scores = det.score(splits["test"])
        score_s = time.perf_counter() - t1
        result = evaluate(splits["val"], val_scores, splits["test"], test_scores, cfg.evaluate, window)
        log.info("%s draw %d: VUS-PR %.4f", method_id, draw, result["test"]["vus_pr"])
        out.append({"draw": draw, "detector": det, "val_scores": val_scores, "test_scores": test_scores,
                    "result": result, "fit_s": fit_s, "score_s": score_s,
                    "peak_gpu_mb": _peak_gpu_mb(det)})  # fmt: skip
    return out


def check_windows(cfg: Params, splits: dict[str, Split], meta: dict[str, Any], layout: Layout) -> None:
    """The window index must be the one these params and this processed data give."""
    w = cfg.window
    want = {"length": w.length, "train": w.train_stride, "val": w.eval_stride, "test": w.eval_stride}
    got = {"length": meta.get("length"), **meta.get("strides", {})}
    if any(got.get(k) != v for k, v in want.items()):
        raise InputError(f"{layout.windows / 'windows.json'}: built with other window params than params.yaml "
                         f"({got} vs {want}); run `dvc repro window`")  # fmt: skip
    for name, s in splits.items():
        if len(s.index) and int(s.index["stop"].max()) != len(s):
            raise InputError(f"{layout.windows / (name + '.parquet')}: stale (it indexes rows the processed {name} "
                             "split does not have); run `dvc repro window`")  # fmt: skip


def deterministic(threads: int) -> None:
    """Same results for the same params on any thread count: fixed torch threads,
    deterministic kernels (and cuBLAS workspace) where torch has a choice."""
    import os

    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)


def run(method_id: str, cfg: Params, layout: Layout = Layout(), progress: bool = False) -> dict[str, Any]:
    """Run ``method_id`` end to end and write its outputs; returns the detail document."""
    if method_id not in method_ids(cfg):
        raise InputError(f"method {method_id!r} is not asked for by params.yaml; known: {', '.join(method_ids(cfg))}")
    deterministic(cfg.threads)
    splits, schema, meta = load_splits(layout.processed, layout.windows)
    check_windows(cfg, splits, meta, layout)
    data_key = _run_key({"schema": schema, "windows": meta})
    draws = fit_and_score(method_id, cfg, splits, layout, data_key, progress)
    doc = summarise(method_id, cfg, draws, splits, schema)
    write_outputs(method_id, doc, draws[0], splits, schema, layout)
    return doc


def summarise(method_id: str, cfg: Params, draws: list[dict[str, Any]], splits: dict[str, Split],
              schema: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The detail document (design.md's metrics schema plus draws, threshold and params echo)."""
    mid = parse(method_id)
    first = draws[0]
    det: Detector = first["detector"]
    tests = pd.DataFrame([d["result"]["test"] for d in draws])
    n_test = len(splits["test"])
    score_s = float(np.mean([d["score_s"] for d in draws]))
    runtime = {"fit_s": round(float(np.mean([d["fit_s"] for d in draws])), 3), "score_s": round(score_s, 3),
               "timesteps_per_s": round(n_test / max(score_s, 1e-9), 1), "peak_rss_mb": peak_rss_mb(),
               "peak_gpu_mb": first["peak_gpu_mb"], "device": str(det.device_)}  # fmt: skip
    params = det.params
    return {
        "method": method_id,
        "detector": mid.detector,
        "budget": mid.budget,
        "test": {k: round(float(v), 6) for k, v in tests.mean().items()},
        "test_std": {k: round(float(v), 6) for k, v in tests.std(ddof=0).fillna(0.0).items()},
        "draws": len(draws),
        "per_draw": [
            {"draw": d["draw"], **{k: d["result"]["test"][k] for k in ("vus_pr", "auc_pr", "f1_at_val_threshold")}}
            for d in draws
        ],  # fmt: skip
        **{k: v for k, v in first["result"].items() if k != "test"},
        "runtime": runtime,
        "model": det.describe(),
        "data": {"source": schema["source"], "name": schema["name"], "synthetic": schema["synthetic"]},
        "extra": det.extra(),
        "params": as_dict(params) if dataclasses.is_dataclass(params) else params,
    }


def headline(doc: dict[str, Any]) -> dict[str, Any]:
    """What `dvc metrics show` / `dvc exp show` display for a method: a handful of numbers."""
    out = {k: doc["test"][v] for k, v in HEADLINE.items()}
    out["pretrained"] = bool(doc["model"].get("pretrained", False))
    return out


def write_outputs(method_id: str, doc: dict[str, Any], first: dict[str, Any], splits: dict[str, Split],
                  schema: dict[str, Any], layout: Layout) -> None:  # fmt: skip
    """Scores, model artifacts, metrics, details and plot data, each written atomically."""
    det: Detector = first["detector"]
    with atomic_dir(layout.model_dir(method_id)) as tmp:
        det.save(tmp)
        run_info = {"method": method_id, "threshold": doc["threshold"], "sliding_window": doc["sliding_window"],
                    "features": schema["features"], "scaler": schema["scaler"],
                    "ffill_limit": schema["quality"]["ffill_limit"], "model": doc["model"]}  # fmt: skip
        write_json(tmp / "run.json", run_info)
    for split, scores in (("test", first["test_scores"]), ("val", first["val_scores"])):
        with atomic_file(layout.scores(method_id, split)) as tmp:
            scores_frame(splits[split], scores).to_parquet(tmp, index=False)
    test = splits["test"]
    p, r, _ = precision_recall_curve(test.labels, first["test_scores"])
    step = max(1, len(p) // 500)  # a few hundred points draw the same curve
    with atomic_file(layout.pr_curve(method_id)) as tmp:
        pd.DataFrame({"recall": r[::step], "precision": p[::step]}).round(5).to_csv(tmp, index=False)
    if det.history_:
        with atomic_file(layout.training_curve(method_id)) as tmp:
            pd.DataFrame(det.history_).round(6).to_csv(tmp, index=False)
    with atomic_file(layout.details(method_id)) as tmp:
        write_json(tmp, doc)
    with atomic_file(layout.metrics(method_id)) as tmp:
        write_json(tmp, headline(doc))


def echo_summary(doc: dict[str, Any]) -> str:
    """The one line a stage prints on success."""
    t, m, r = doc["test"], doc["model"], doc["runtime"]
    weights = ""
    if m.get("source") in ("hub", "local", "random-init"):
        weights = " [pretrained]" if m.get("pretrained") else " [RANDOM-INIT weights, not pretrained]"
    spread = f" ±{doc['test_std']['vus_pr']:.3f} over {doc['draws']} draws" if doc["draws"] > 1 else ""
    return (f"{doc['method']}{weights}: VUS-PR {t['vus_pr']:.3f}{spread}, AUC-PR {t['auc_pr']:.3f}, "
            f"F1@val-threshold {t['f1_at_val_threshold']:.3f}; fit {r['fit_s']:.1f}s, "
            f"score {r['score_s']:.1f}s")  # fmt: skip
