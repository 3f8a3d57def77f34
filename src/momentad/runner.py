"""One runner for every method: at each budget the method can run at, fit -> score val and test
-> threshold on validation -> evaluate; then write its outputs. Every model stage is a thin call
of :func:`run`.

Budgets: the detector says which it runs at (:meth:`Detector.budgets`): 0 (no training, one
draw), every ``budget.sizes`` entry (that budget's stretch of the train split, momentad.budgets,
once per draw in ``budget.draws``) and ``full`` (the whole split, a different model seed per
draw). Per budget the details give the mean over draws, the standard deviation and every draw;
the scores file holds every draw's scores (``score_<k>``) and ``score`` = the first draw's, whose
model is the one saved. A draw the data cannot supply (:class:`momentad.errors.NotRun`) is
recorded as ``not run: <reason>``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentad.budgets import FULL, ZERO, Budget, draw_seed, restrict, span
from momentad.config import Params, as_dict
from momentad.data import Split, load_splits
from momentad.detectors.base import Detector, RunContext
from momentad.detectors.registry import detector_class
from momentad.errors import InputError, NotRun
from momentad.evaluate import evaluate, peak_rss_mb, scores_frame, sliding_window, validation_vus_pr
from momentad.io import atomic_dir, atomic_file, write_json
from momentad.layout import Layout
from momentad.rca import fault_events, localise, method_scores
from momentad.results import MethodResult, is_foundation, weights_label
from momentad.threads import deterministic
from momentad.windows import resolved_window, window_index

log = logging.getLogger(__name__)


def _run_key(payload: dict[str, Any]) -> str:
    """Identify a training run by everything that determines its result (for resuming)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def budget_split(train: Split, budget: Budget, cfg: Params, draw: int) -> Split | None:
    """The train rows a (budget, draw) gets: none at budget 0, all of them at ``full``."""
    if budget == ZERO:
        return None
    if budget == FULL:
        return train
    b = cfg.budget
    lo, hi = span(train.index, int(budget), max(b.sizes), cfg.seed, draw, b.include_anomalous)
    return restrict(train, lo, hi)


def counted_windows(train: Split | None, cfg: Params) -> int:
    """Windows of a training stretch that count toward a budget (anomaly-free ones unless
    ``budget.include_anomalous``): the learning curve's x."""
    if train is None or not len(train.index):
        return 0
    if cfg.budget.include_anomalous:
        return len(train.index)
    return int((~train.index["any_anomaly"]).sum())


def _on_cuda(det: Detector) -> bool:
    return str(det.device_).split(":")[0] == "cuda"


def _reset_gpu_peak() -> None:
    """Peak GPU memory is measured per draw (where torch is loaded: other methods never import it)."""
    if "torch" in sys.modules:
        from momentad.device import reset_peak

        reset_peak()


def fit_and_score(method: str, budget: Budget, cfg: Params, splits: dict[str, Split], layout: Layout,
                  data_key: str, window: int, progress: bool = False) -> tuple[list[dict], list[dict]]:  # fmt: skip
    """Every draw of one method at one budget: fitted detector, val/test scores, evaluation,
    timings; and the draws that could not run, with their reasons."""
    cls = detector_class(method)
    # draws differ in training rows (a budget's stretch) and model seed: at 0 there is neither, on the
    # full split only the seed, which a deterministic method ignores
    one = budget == ZERO or (budget == FULL and not cls.stochastic)
    draws = [0] if one else range(cfg.budget.draws)
    out, skipped = [], []
    for draw in draws:
        key = _run_key({"method": method, "budget": budget, "draw": draw, "data": data_key,
                        "params": {k: as_dict(v) for k, v in (("window", cfg.window), ("budget", cfg.budget),
                                                              ("options", cfg.options[method]))}})  # fmt: skip
        ctx = RunContext(seed=draw_seed(cfg.seed, draw), draw=draw, window=cfg.window,
                         mask_anomalies=cfg.budget.include_anomalous, state_dir=layout.state_dir(method, budget, key),
                         progress=progress, reference=splits["train"])  # fmt: skip
        det = cls.from_config(cfg, ctx, method)
        peak = None
        _reset_gpu_peak()
        try:
            train = budget_split(splits["train"], budget, cfg, draw)
            t0 = time.perf_counter()
            det.fit(train, X_val=splits["val"])
        except NotRun as e:
            log.info("%s at %s draw %d: not run (%s)", method, budget, draw, e)
            skipped.append({"draw": draw, "reason": str(e)})
            continue
        fit_s = time.perf_counter() - t0
        val_scores = det.score(splits["val"])
        t1 = time.perf_counter()
        test_scores = det.score(splits["test"])
        score_s = time.perf_counter() - t1
        try:
            result = evaluate(splits["val"], val_scores, splits["test"], test_scores, cfg.evaluate, window)
        except NotRun as e:
            log.info("%s at %s draw %d: no result (%s)", method, budget, draw, e)
            skipped.append({"draw": draw, "reason": str(e)})
            continue
        result["val_vus_pr"] = validation_vus_pr(splits["val"], val_scores, window)
        t2 = time.perf_counter()
        rca = root_causes(det, splits["test"]) if not out else None  # the first draw's ranking is reported
        rca_s = time.perf_counter() - t2
        if _on_cuda(det):
            from momentad.device import peak_gpu_mb

            peak = peak_gpu_mb(det.device_)
        log.info("%s at %s draw %d: %s", method, budget, draw, result["test"])
        out.append({"draw": draw, "detector": det, "val_scores": val_scores, "test_scores": test_scores,
                    "result": result, "fit_s": fit_s, "score_s": score_s, "peak_gpu_mb": peak,
                    "rca": rca, "rca_s": rca_s,
                    "train_rows": 0 if train is None else len(train),
                    "train_windows": counted_windows(train, cfg)})  # fmt: skip
    return out, skipped


def root_causes(det: Detector, test: Split) -> dict[str, Any]:
    """Rank KPIs and services per test fault event from the detector's per-KPI evidence
    (:mod:`momentad.rca`)."""
    if not det.kpi_evidence:
        return {"status": f"not available ({det.name} gives no per-KPI evidence)"}
    events = fault_events(test.frame)
    if not events:
        return {"status": "no test fault event names its root cause"}
    return {"status": "ok", **localise(events, method_scores(det, test, events), test.features)}


def check_windows(cfg: Params, splits: dict[str, Split], meta: dict[str, Any], layout: Layout) -> Params:
    """The window index must be the one these params and this processed data give; returns the
    params with ``auto`` window settings replaced by the values the window stage resolved."""
    resolved = resolved_window(cfg.window, meta, layout.windows / "windows.json")
    for name, s in splits.items():
        if len(s.index) and int(s.index["stop"].max()) != len(s):
            raise InputError(f"{layout.windows / (name + '.parquet')}: stale (it indexes rows the processed {name} "
                             "split does not have); run `dvc repro window`")  # fmt: skip
    return dataclasses.replace(cfg, window=resolved)


def for_protocol(splits: dict[str, Split], cfg: Params) -> dict[str, Split]:
    """Under ``evaluate.protocol: tsbad`` the evaluated split is the whole series (train, val and
    test rows in order), as TSB-AD scores and measures every file; otherwise the test split."""
    if cfg.evaluate.protocol != "tsbad":
        return splits
    frame = pd.concat([splits[k].frame for k in ("train", "val", "test")], ignore_index=True)
    index = window_index(frame, cfg.window.length, cfg.window.eval_stride)
    return {**splits, "test": dataclasses.replace(splits["test"], frame=frame, index=index)}


def run(method: str, cfg: Params, layout: Layout = Layout(), progress: bool = False,
        save_models: bool = True) -> MethodResult:  # fmt: skip
    """Run ``method`` at every budget it can and write its outputs (the trained models only with
    ``save_models``: a study keeps scores and details); returns its details."""
    cls = detector_class(method)  # an unknown name fails here
    if method not in cfg.methods:
        raise InputError(f"method {method!r} is not in params.yaml's methods ({', '.join(cfg.methods)}); add it there")
    deterministic(cfg.threads)
    splits, schema, meta = load_splits(layout.processed, layout.windows)
    cfg = check_windows(cfg, splits, meta, layout)
    splits = for_protocol(splits, cfg)
    data_key = _run_key({"schema": schema, "windows": meta})
    # the VUS buffer: the train split's period, or the whole series' under protocol tsbad (TSB-AD)
    window = sliding_window(cfg.evaluate, splits["test" if cfg.evaluate.protocol == "tsbad" else "train"])
    opts = cfg.options[method]
    result = MethodResult(method, cls.capabilities(), cfg.evaluate.protocol,
                          {"source": schema["source"], "name": schema["name"], "synthetic": schema["synthetic"]},
                          as_dict(opts) if dataclasses.is_dataclass(opts) else opts)  # fmt: skip
    timings: dict[str, Any] = {}
    models_target = layout.models_dir(method) if save_models else None
    with _staging(models_target) as models, atomic_dir(layout.scores_dir(method)) as scores:
        for budget in cls.budgets(cfg.budget.sizes, opts):
            draws, skipped = fit_and_score(method, budget, cfg, splits, layout, data_key, window, progress)
            if not draws:
                reasons = "; ".join(sorted({s["reason"] for s in skipped}))
                result.budgets[budget] = {"status": f"not run: {reasons}", "not_run_draws": skipped}
                continue
            entry = summarise(draws, splits)
            entry["not_run_draws"] = skipped
            result.budgets[budget] = entry
            result.model = result.model or entry["model"]
            result.uses_labels = draws[0]["detector"].uses_labels()
            timings[budget] = entry.pop("runtime")
            save_budget(method, budget, entry, draws, splits, schema, models and Path(models) / budget, Path(scores))
        if models:
            write_json(Path(models) / "index.json", {"method": method, "budgets": _statuses(result)})
        write_json(Path(scores) / "index.json", {"method": method, "budgets": _statuses(result)})
    with atomic_file(layout.details(method)) as tmp:
        write_json(tmp, result.to_json())
    with atomic_file(layout.timings(method)) as tmp:
        write_json(tmp, {"method": method, "budgets": timings, "peak_rss_mb": peak_rss_mb()})
    return result


def _staging(target: Path | None):
    """An atomic output folder, or nothing to write (None)."""
    import contextlib

    return atomic_dir(target) if target is not None else contextlib.nullcontext(None)


def _statuses(result: MethodResult) -> dict[str, str]:
    return {b: e.get("status", "ok") for b, e in result.budgets.items()}


def summarise(draws: list[dict[str, Any]], splits: dict[str, Split]) -> dict[str, Any]:
    """One budget's details: the mean over draws of every test metric, its spread, every draw,
    the first draw's threshold, delays and root-cause ranking, and the runtime (popped into the
    timings log by :func:`run`)."""
    first = draws[0]
    det: Detector = first["detector"]
    tests = pd.DataFrame([d["result"]["test"] for d in draws])
    n_test = len(splits["test"])
    score_s = float(np.mean([d["score_s"] for d in draws]))
    vals = [d["result"]["val_vus_pr"] for d in draws]
    return {
        "status": "ok",
        "test": {k: round(float(v), 6) for k, v in tests.mean().items()},
        "test_std": {k: round(float(v), 6) for k, v in tests.std(ddof=0).fillna(0.0).items()},
        "val_vus_pr": None if vals[0] is None else round(float(np.mean(vals)), 6),
        "draws": len(draws),
        "per_draw": [
            {
                "draw": d["draw"],
                "train_rows": d["train_rows"],
                "train_windows": d["train_windows"],
                **{
                    k: d["result"]["test"][k]
                    for k in ("vus_pr", "auc_pr", "f1_at_val_threshold", "false_alarm_rate")
                    if k in d["result"]["test"]
                },
                "val_vus_pr": d["result"]["val_vus_pr"],
            }
            for d in draws
        ],  # fmt: skip
        **{k: v for k, v in first["result"].items() if k not in ("test", "val_vus_pr")},
        # per-type recall averaged over draws (detection delays and thresholds: first draw)
        "fault_type_recall": {
            t: round(float(np.mean([d["result"]["fault_type_recall"][t] for d in draws])), 6)
            for t in first["result"]["fault_type_recall"]
        },
        "root_cause": first["rca"],
        "history": det.history_,
        "model": det.describe(),
        "extra": det.extra(),
        "runtime": {
            "fit_s": round(float(np.mean([d["fit_s"] for d in draws])), 3),
            "score_s": round(score_s, 3),
            "root_cause_s": round(first["rca_s"], 3),
            "timesteps_per_s": round(n_test / max(score_s, 1e-9), 1),
            "peak_gpu_mb": first["peak_gpu_mb"],
            "device": str(det.device_),
        },  # fmt: skip
    }


def save_budget(method: str, budget: Budget, entry: dict[str, Any], draws: list[dict[str, Any]],
                splits: dict[str, Split], schema: dict[str, Any], model_dir: Path | None,
                scores_dir: Path) -> None:  # fmt: skip
    """The first draw's model (with what `momentad score` needs to reuse it; none without
    ``model_dir``) and every draw's val/test scores of one budget (its details ``entry``), into
    the staging folders."""
    for split in ("test", "val"):
        frame = scores_frame(splits[split], draws[0][f"{split}_scores"])
        for d in draws:
            frame[f"score_{d['draw']}"] = np.asarray(d[f"{split}_scores"], dtype=np.float64)
        frame.to_parquet(scores_dir / f"{budget}{'' if split == 'test' else '.' + split}.parquet", index=False)
    if model_dir is None:
        return
    det: Detector = draws[0]["detector"]
    det.save(model_dir)
    write_json(model_dir / "run.json", {
        "method": method, "budget": budget, "threshold": entry["threshold"], "sliding_window": entry["sliding_window"],
        "features": schema["features"], "scaler": schema["scaler"], "ffill_limit": schema["quality"]["ffill_limit"],
        "model": entry["model"], "test_vus_pr": entry["test"].get("vus_pr"),
        "draw_0_test_vus_pr": draws[0]["result"]["test"].get("vus_pr")})  # fmt: skip


def echo_summary(result: MethodResult) -> str:
    """The one line a stage prints on success: test VUS-PR per budget, and the weights' origin."""
    weights = f" [{weights_label(result.model, long=True)}]" if is_foundation(result.model) else ""
    parts = []
    for row in result.rows():
        e = row.entry
        if not row.ok:
            parts.append(f"{row.budget}: not run")
            continue
        if "vus_pr" not in e["test"]:
            parts.append(f"{row.budget}: {e['test']['false_alarm_rate']:.1%} of steps flagged")
            continue
        spread = f"±{e['test_std']['vus_pr']:.3f}" if e["draws"] > 1 else ""
        parts.append(f"{row.budget}: {e['test']['vus_pr']:.3f}{spread}")
    return f"{result.method}{weights}: test VUS-PR by budget — " + ", ".join(parts)
