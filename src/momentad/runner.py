"""One runner for every method: fit -> score val and test -> threshold on validation ->
evaluate -> write outputs. Every model stage is a thin call of :func:`run`.

Budgets: a method id with a budget (``isolation_forest_100``) trains on that budget's stretch
of the train split (momentad.budgets), once per draw in ``budget.draws``; ``_full`` ids train on
the whole split with a different model seed per draw. Metrics report the mean over draws, the
standard deviation and every draw; the scores file holds every draw's scores (``score_<k>``)
and ``score`` = the first draw's, whose model is the one saved. A draw the data cannot supply
(see :class:`momentad.errors.NotRun`) is recorded as ``not run: <reason>``.
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

from momentad.budgets import restrict, span
from momentad.config import Params, as_dict
from momentad.data import Split, load_splits
from momentad.detectors.base import Detector
from momentad.detectors.registry import detector_class
from momentad.errors import InputError, NotRun
from momentad.evaluate import evaluate, peak_rss_mb, scores_frame, sliding_window
from momentad.io import atomic_dir, atomic_file, write_json
from momentad.layout import FULL, Layout, method_ids, parse
from momentad.rca import fault_events, localise, method_scores
from momentad.windows import window_index

log = logging.getLogger(__name__)
# per method id, `dvc exp show` gets these plus the spread and every draw; the rest (VUS-ROC,
# precision, recall, oracle F1s, runtime) is in reports/methods/<id>.json
HEADLINE = {"vus_pr": "vus_pr", "auc_pr": "auc_pr", "f1": "f1_at_val_threshold"}


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


def budget_split(train: Split, budget: int | str | None, cfg: Params, draw: int) -> Split:
    """The train rows a (budget, draw) gets: all of them for zero-shot and ``full``."""
    if budget is None or budget == FULL:
        return train
    b = cfg.budget
    lo, hi = span(train.index, int(budget), max(b.sizes), cfg.seed, draw, b.include_anomalous)
    return restrict(train, lo, hi)


def counted_windows(train: Split, cfg: Params) -> int:
    """Windows of a training stretch that count toward a budget (anomaly-free ones unless
    ``budget.include_anomalous``): the learning curve's x."""
    if cfg.budget.include_anomalous or not len(train.index):
        return len(train.index)
    return int((~train.index["any_anomaly"]).sum())


def fit_and_score(method_id: str, cfg: Params, splits: dict[str, Split], layout: Layout, data_key: str,
                  progress: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Every draw of one method id: fitted detector, val/test scores, evaluation, timings;
    and the draws that could not run, with their reasons."""
    mid = parse(method_id)
    cls = detector_class(mid.detector)
    draws = range(cfg.budget.draws) if mid.budget is not None else [0]
    # the VUS buffer: the train split's period, or the whole series' under protocol tsbad (TSB-AD)
    window = sliding_window(cfg.evaluate, splits["test" if cfg.evaluate.protocol == "tsbad" else "train"])
    out, skipped = [], []
    for draw in draws:
        key = _run_key({"id": method_id, "draw": draw, "params": as_dict(cfg), "data": data_key})
        det = cls.from_config(cfg, progress=progress, draw=draw, state_dir=layout.state_dir(method_id) / key)
        try:
            train = budget_split(splits["train"], mid.budget, cfg, draw)
            if _device_type(det) == "cuda":
                import torch

                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            det.fit(train, X_val=splits["val"])
        except NotRun as e:
            log.info("%s draw %d: not run (%s)", method_id, draw, e)
            skipped.append({"draw": draw, "reason": str(e)})
            continue
        fit_s = time.perf_counter() - t0
        val_scores = det.score(splits["val"])
        t1 = time.perf_counter()
        test_scores = det.score(splits["test"])
        score_s = time.perf_counter() - t1
        result = evaluate(splits["val"], val_scores, splits["test"], test_scores, cfg.evaluate, window)
        rca = root_causes(det, splits["test"]) if not out else None  # the first draw's ranking is reported
        log.info("%s draw %d: VUS-PR %.4f", method_id, draw, result["test"]["vus_pr"])
        out.append({"draw": draw, "detector": det, "val_scores": val_scores, "test_scores": test_scores,
                    "result": result, "fit_s": fit_s, "score_s": score_s, "peak_gpu_mb": _peak_gpu_mb(det), "rca": rca,
                    "train_rows": len(train) if mid.budget is not None else 0,
                    "train_windows": counted_windows(train, cfg) if mid.budget is not None else 0})  # fmt: skip
    return out, skipped


def root_causes(det: Detector, test: Split) -> dict[str, Any]:
    """Rank KPIs and services per test fault event from the detector's per-KPI evidence
    (:mod:`momentad.rca`), timed: the cost of root-cause ranking on top of scoring."""
    events = fault_events(test.frame)
    if not events:
        return {"status": "no test fault event names its root cause"}
    t0 = time.perf_counter()
    try:
        scores = method_scores(det, test, events)
    except NotImplementedError as e:
        return {"status": f"not available ({e})"}
    out = localise(events, scores, test.features)
    return {"status": "ok", "seconds": round(time.perf_counter() - t0, 3), **out}


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


def for_protocol(splits: dict[str, Split], cfg: Params) -> dict[str, Split]:
    """Under ``evaluate.protocol: tsbad`` the evaluated split is the whole series (train, val and
    test rows in order), as TSB-AD scores and measures every file; otherwise the test split."""
    if cfg.evaluate.protocol != "tsbad":
        return splits
    frame = pd.concat([splits[k].frame for k in ("train", "val", "test")], ignore_index=True)
    index = window_index(frame, cfg.window.length, cfg.window.eval_stride)
    return {**splits, "test": dataclasses.replace(splits["test"], frame=frame, index=index)}


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
    splits = for_protocol(splits, cfg)
    data_key = _run_key({"schema": schema, "windows": meta})
    draws, skipped = fit_and_score(method_id, cfg, splits, layout, data_key, progress)
    if not draws:
        doc = not_run_doc(method_id, cfg, skipped, schema)
        write_not_run(method_id, doc, splits, layout)
        return doc
    doc = summarise(method_id, cfg, draws, splits, schema)
    doc["not_run_draws"] = skipped
    write_outputs(method_id, doc, draws, splits, schema, layout)
    return doc


def not_run_doc(method_id: str, cfg: Params, skipped: list[dict[str, Any]], schema: dict[str, Any]) -> dict[str, Any]:
    """The detail document of a method id none of whose draws could run."""
    mid = parse(method_id)
    reasons = sorted({s["reason"] for s in skipped})
    return {"method": method_id, "detector": mid.detector, "budget": mid.budget,
            "status": "not run: " + "; ".join(reasons),
            "draws": 0, "not_run_draws": skipped,
            "data": {"source": schema["source"], "name": schema["name"], "synthetic": schema["synthetic"]}}  # fmt: skip


def write_not_run(method_id: str, doc: dict[str, Any], splits: dict[str, Split], layout: Layout) -> None:
    """Every output a stage declares, saying ``not run: <reason>`` (DVC needs the paths)."""
    with atomic_dir(layout.model_dir(method_id)) as tmp:
        write_json(tmp / "run.json", {"method": method_id, "status": doc["status"]})
    for split in ("test", "val"):
        with atomic_file(layout.scores(method_id, split)) as tmp:
            scores_frame(splits[split], np.zeros(len(splits[split]))).iloc[:0].to_parquet(tmp, index=False)
    with atomic_file(layout.pr_curve(method_id)) as tmp:
        pd.DataFrame({"recall": [], "precision": []}).to_csv(tmp, index=False)
    if detector_class(parse(method_id).detector).kind == "foundation" and parse(method_id).budget is not None:
        # the fine-tuning stages also declare a training curve
        with atomic_file(layout.training_curve(method_id)) as tmp:
            pd.DataFrame({"epoch": [], "train_loss": [], "val_loss": []}).to_csv(tmp, index=False)
    with atomic_file(layout.details(method_id)) as tmp:
        write_json(tmp, doc)
    with atomic_file(layout.metrics(method_id)) as tmp:
        write_json(tmp, {"status": doc["status"]})


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
        "status": "ok",
        # what "test" means: the test split (default) or the whole series (tsbad, as TSB-AD)
        "protocol": cfg.evaluate.protocol,
        "test": {k: round(float(v), 6) for k, v in tests.mean().items()},
        "test_std": {k: round(float(v), 6) for k, v in tests.std(ddof=0).fillna(0.0).items()},
        "draws": len(draws),
        "per_draw": [
            {
                "draw": d["draw"],
                "train_rows": d["train_rows"],
                "train_windows": d["train_windows"],
                **{k: d["result"]["test"][k] for k in ("vus_pr", "auc_pr", "f1_at_val_threshold")},
            }
            for d in draws
        ],  # fmt: skip
        **{k: v for k, v in first["result"].items() if k != "test"},
        # per-type recall averaged over draws (detection delays and thresholds: first draw)
        "fault_type_recall": {
            t: round(float(np.mean([d["result"]["fault_type_recall"][t] for d in draws])), 6)
            for t in first["result"]["fault_type_recall"]
        },
        "runtime": runtime,
        # root-cause ranking of the test fault events (first draw; momentad.rca)
        "root_cause": first["rca"],
        "model": det.describe(),
        "data": {"source": schema["source"], "name": schema["name"], "synthetic": schema["synthetic"]},
        "extra": det.extra(),
        "params": as_dict(params) if dataclasses.is_dataclass(params) else params,
    }


def headline(doc: dict[str, Any]) -> dict[str, Any]:
    """What `dvc metrics show` / `dvc exp show` display for a method: a handful of numbers."""
    out: dict[str, Any] = {k: doc["test"][v] for k, v in HEADLINE.items()}
    out["vus_pr_std"] = doc["test_std"]["vus_pr"]
    out["vus_pr_draws"] = {str(d["draw"]): d["vus_pr"] for d in doc["per_draw"]}
    out["pretrained"] = bool(doc["model"].get("pretrained", False))
    return out


def write_outputs(method_id: str, doc: dict[str, Any], draws: list[dict[str, Any]], splits: dict[str, Split],
                  schema: dict[str, Any], layout: Layout) -> None:  # fmt: skip
    """Scores, model artifacts, metrics, details and plot data, each written atomically."""
    first = draws[0]
    det: Detector = first["detector"]
    with atomic_dir(layout.model_dir(method_id)) as tmp:
        det.save(tmp)
        run_info = {"method": method_id, "threshold": doc["threshold"], "sliding_window": doc["sliding_window"],
                    "features": schema["features"], "scaler": schema["scaler"],
                    "ffill_limit": schema["quality"]["ffill_limit"], "model": doc["model"]}  # fmt: skip
        write_json(tmp / "run.json", run_info)
    for split in ("test", "val"):
        frame = scores_frame(splits[split], first[f"{split}_scores"])
        for d in draws:
            frame[f"score_{d['draw']}"] = np.asarray(d[f"{split}_scores"], dtype=np.float64)
        with atomic_file(layout.scores(method_id, split)) as tmp:
            frame.to_parquet(tmp, index=False)
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
    if doc.get("status", "ok") != "ok":
        return f"{doc['method']}: {doc['status']}"
    t, m, r = doc["test"], doc["model"], doc["runtime"]
    weights = ""
    if m.get("source") in ("hub", "local", "random-init"):
        weights = " [pretrained]" if m.get("pretrained") else " [RANDOM-INIT weights, not pretrained]"
    spread = f" ±{doc['test_std']['vus_pr']:.3f} over {doc['draws']} draws" if doc["draws"] > 1 else ""
    return (f"{doc['method']}{weights}: VUS-PR {t['vus_pr']:.3f}{spread}, AUC-PR {t['auc_pr']:.3f}, "
            f"F1@val-threshold {t['f1_at_val_threshold']:.3f}; fit {r['fit_s']:.1f}s, "
            f"score {r['score_s']:.1f}s")  # fmt: skip
