"""One evaluation for every method: threshold on validation, then metrics on test."""

from __future__ import annotations

import logging
import resource
import sys
from typing import Any

import numpy as np
import pandas as pd

from momentad.config import EvaluateParams
from momentad.data import Split
from momentad.errors import InputError, NotRun
from momentad.metrics import (
    at_threshold,
    compute_metrics,
    detection_delays,
    fault_type_recall,
    find_period,
    select_threshold,
    vus,
)

log = logging.getLogger(__name__)


def sliding_window(cfg: EvaluateParams, train: Split) -> int:
    """The VUS buffer width: fixed, or the dominant period of the first KPI on *train*."""
    if cfg.sliding_window == "auto":
        return find_period(train.values[:, 0])
    return int(cfg.sliding_window)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (2**20 if sys.platform == "darwin" else 2**10), 1)


def evaluate(val: Split, val_scores: np.ndarray, test: Split, test_scores: np.ndarray, cfg: EvaluateParams,
             window: int) -> dict[str, Any]:  # fmt: skip
    """Threshold from validation, then every test metric; nothing here reads test labels
    before the threshold is fixed."""
    for split, s in ((val, val_scores), (test, test_scores)):
        if len(s) != len(split):
            raise ValueError(f"{len(s)} scores for {len(split)} {split.name} timesteps")
        if not np.isfinite(s).all():
            raise InputError(f"the {split.name} scores contain NaN/inf; the detector failed on this data")
    rule, chosen = cfg.threshold, {}
    if rule == "val_best_f1" and val.labels.sum() == 0:
        # e.g. a UCR file: its one anomaly is in test. Label-free rule, said in the outputs.
        rule = "percentile"
        chosen = {"asked": "val_best_f1", "why": "the validation split holds no labelled anomaly"}
        log.warning("evaluate.threshold=val_best_f1 needs anomalies in validation, which has none: "
                    "using percentile (%s) instead", cfg.percentile)  # fmt: skip
    threshold = select_threshold(val.labels, val_scores, rule, cfg.percentile, cfg.k, cfg.iqr_factor)
    if np.ptp(test_scores) == 0:
        raise NotRun("it gave the same score to every test timestep (a constant test series?), so no metric "
                     "means anything")  # fmt: skip
    if test.labels.sum() == 0:
        # a series without labelled anomalies (kept on purpose in some benchmarks): all a detector
        # can be judged on is how much it flags at the threshold validation gave it
        flagged = np.asarray(test_scores) >= threshold
        return {
            "test": {"false_alarm_rate": round(float(flagged.mean()), 6)},
            "threshold": {"rule": rule, "value": float(threshold), "chosen_on": "val", **chosen},
            "sliding_window": window, "fault_type_recall": {}, "fault_type_events": {}, "detection_delay": None,
        }  # fmt: skip
    test_metrics = compute_metrics(test.labels, test_scores, window)
    per_type = fault_type_recall(test.labels, test.frame["fault_type"], test_scores, threshold)
    delay = detection_delays(test.labels, test_scores, threshold, test.frame["timestamp"])
    test_metrics.update(at_threshold(test.labels, test_scores, threshold))
    return {
        "test": {k: round(float(v), 6) for k, v in test_metrics.items()},
        "threshold": {"rule": rule, "value": float(threshold), "chosen_on": "val", **chosen},
        "sliding_window": window,
        # flat {type: share} so `dvc metrics diff` shows one row per fault type
        "fault_type_recall": {k: round(v["recall"], 6) for k, v in per_type.items()},
        "fault_type_events": {k: v["events"] for k, v in per_type.items()},
        "detection_delay": delay,
    }


def validation_vus_pr(val: Split, scores: np.ndarray, window: int) -> float | None:
    """VUS-PR on the validation split, where it holds labelled anomalies (and normal steps): what
    ``compare`` picks rows by, so no verdict chooses its opponent on test."""
    labels = val.labels
    if labels.sum() == 0 or labels.all() or np.ptp(scores) == 0:
        return None
    return round(float(vus(labels, scores, window)[1]), 6)


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
