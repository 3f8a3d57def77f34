"""Per-KPI attribution for detectors without per-channel errors (the forests): occlusion.

A KPI's evidence at a step is how much the anomaly score drops when that KPI's features are
replaced by their training medians (the rest unchanged): the score the KPI is responsible for.
Cost: one extra scoring pass per KPI, on the rows asked for only (the event windows)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def occlusion(x: np.ndarray, groups: np.ndarray, reference: np.ndarray, score: Callable[[np.ndarray], np.ndarray],
              n_groups: int) -> np.ndarray:  # fmt: skip
    """(rows, features) -> (rows, n_groups): score(x) - score(x with group g at the reference)."""
    x = np.array(x, dtype=np.float64 if x.dtype == np.float64 else np.float32, copy=True)
    base = score(x)
    out = np.zeros((len(x), n_groups))
    for g in range(n_groups):
        cols = np.flatnonzero(groups == g)
        if not len(cols):
            continue
        saved = x[:, cols].copy()
        x[:, cols] = reference[cols]
        out[:, g] = base - score(x)
        x[:, cols] = saved
    return out
