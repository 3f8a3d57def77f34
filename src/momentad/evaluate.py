"""One evaluation for every method: threshold on validation, metrics on test, outputs written
in the shared contract (scores Parquet, metrics JSON, PR-curve data, test-period PNG)."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from momentad.data import Split
from momentad.errors import InputError
from momentad.io import atomic_file, write_json
from momentad.metrics import (
    THRESHOLD_RULES,
    at_threshold,
    compute_metrics,
    fault_type_recall,
    find_period,
    select_threshold,
)
from momentad.params import build_config, require_choice, require_float, require_int


@dataclass(frozen=True)
class EvalConfig:
    """params.yaml: evaluate."""

    threshold: str = "val_best_f1"
    percentile: float = 99.0
    k: float = 3.0
    iqr_factor: float = 1.5
    sliding_window: int | str = "auto"

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> EvalConfig:
        cfg = build_config(cls, p, "evaluate")
        require_choice(cfg.threshold, "evaluate.threshold", THRESHOLD_RULES)
        require_float(cfg.percentile, "evaluate.percentile", 0, 100)
        require_float(cfg.k, "evaluate.k", 0)
        require_float(cfg.iqr_factor, "evaluate.iqr_factor", 0)
        if cfg.sliding_window != "auto":
            require_int(cfg.sliding_window, "evaluate.sliding_window", 1, 10_000)
        return cfg


def sliding_window(cfg: EvalConfig, train: Split) -> int:
    """The VUS buffer width: fixed, or the dominant period of the first KPI on *train*."""
    if cfg.sliding_window == "auto":
        return find_period(train.values[:, 0])
    return int(cfg.sliding_window)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (2**20 if sys.platform == "darwin" else 2**10), 1)


def evaluate(val: Split, val_scores: np.ndarray, test: Split, test_scores: np.ndarray, cfg: EvalConfig,
             window: int) -> dict[str, Any]:  # fmt: skip
    """Threshold from validation, then every test metric; nothing here reads test labels
    before the threshold is fixed."""
    for split, s in ((val, val_scores), (test, test_scores)):
        if len(s) != len(split):
            raise ValueError(f"{len(s)} scores for {len(split)} {split.name} timesteps")
        if not np.isfinite(s).all():
            raise InputError(f"the {split.name} scores contain NaN/inf; the detector failed on this data")
    threshold = select_threshold(val.labels, val_scores, cfg.threshold, cfg.percentile, cfg.k, cfg.iqr_factor)
    if np.ptp(test_scores) == 0:
        raise InputError(
            "the detector gave the same score to every test timestep (constant test series?); "
            "metrics would be meaningless"
        )
    test_metrics = compute_metrics(test.labels, test_scores, window)
    per_type = fault_type_recall(test.labels, test.frame["fault_type"], test_scores, threshold)
    test_metrics.update(at_threshold(test.labels, test_scores, threshold))
    return {
        "test": {k: round(float(v), 6) for k, v in test_metrics.items()},
        "threshold": {"rule": cfg.threshold, "value": float(threshold), "chosen_on": "val"},
        "sliding_window": window,
        # flat {type: share} so `dvc metrics diff` shows one row per fault type
        "fault_type_recall": {k: round(v["recall"], 6) for k, v in per_type.items()},
        "fault_type_events": {k: v["events"] for k, v in per_type.items()},
    }


def scores_frame(split: Split, scores: np.ndarray) -> pd.DataFrame:
    """The shared scores contract: one row per timestep of the split."""
    return pd.DataFrame(
        {
            "timestamp": split.frame["timestamp"].to_numpy(),
            "score": np.asarray(scores, dtype=np.float64),
            "label": split.frame["label"].to_numpy(),
            "fault_type": split.frame["fault_type"].astype("string").to_numpy(),
        }
    )


def write_outputs(
    method: str,
    val: Split,
    val_scores: np.ndarray,
    test: Split,
    test_scores: np.ndarray,
    result: dict[str, Any],
    runtime: dict[str, Any],
    model: dict[str, Any],
    data: dict[str, Any],
    scores_path: Path,
    metrics_path: Path,
    pr_path: Path | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write scores (test; validation beside it), metrics JSON and PR-curve data atomically."""
    doc = {"method": method, **result, "runtime": runtime, "model": model, "data": data, **(extra or {})}
    val_path = scores_path.with_name(scores_path.stem + ".val.parquet")
    for path, split, s in ((scores_path, test, test_scores), (val_path, val, val_scores)):
        with atomic_file(path) as tmp:
            scores_frame(split, s).to_parquet(tmp, index=False)
    if pr_path is not None:
        p, r, _ = precision_recall_curve(test.labels, test_scores)
        step = max(1, len(p) // 500)  # a few hundred points draw the same curve
        curve = pd.DataFrame({"method": method, "recall": r[::step], "precision": p[::step]})
        with atomic_file(pr_path) as tmp:
            curve.round(5).to_csv(tmp, index=False)
    with atomic_file(metrics_path) as tmp:
        write_json(tmp, doc)
    return doc
