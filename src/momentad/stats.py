"""Uncertainty for the comparison: how sure is "MOMENT minus the best baseline"?

- ``block_bootstrap_diff``: a paired block bootstrap over the test series. Blocks are the test
  events, each with the normal stretch that follows it (the stretch before the first event is a
  block too), so an event and its aftermath stay together; a replicate resamples blocks with
  replacement, concatenates the *same* blocks for both methods and recomputes each method's
  VUS-PR. The 2.5 / 97.5 percentiles of the difference give a 95% interval.
- ``paired_draws_diff``: when both methods ran several draws (training-data samples and seeds),
  a t interval on the per-draw differences.
- ``wilson``: the 95% interval of a detection share (k of n events).
"""

from __future__ import annotations

import math

import numpy as np

from momentad.metrics import segments, vus

VERDICTS = ("better", "worse", "not distinguishable")


def event_blocks(labels: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) row blocks: the lead-in before the first event, then each event with the
    normal rows after it up to the next event."""
    starts, _ = segments(np.asarray(labels))
    n = len(labels)
    if starts.size == 0:
        return [(0, n)]
    cuts = [0, *starts.tolist()] if starts[0] > 0 else starts.tolist()
    return list(zip(cuts, cuts[1:] + [n], strict=True))


def block_bootstrap_diff(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, window: int,
                         replicates: int = 200, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """VUS-PR(a) - VUS-PR(b) on the test series with a paired block-bootstrap 95% interval."""
    labels = np.asarray(labels).astype(np.int8)
    a, b = np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64)
    point = vus(labels, a, window)[1] - vus(labels, b, window)[1]
    blocks = event_blocks(labels)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(replicates):
        pick = rng.integers(0, len(blocks), len(blocks))
        rows = np.concatenate([np.arange(*blocks[i]) for i in pick])
        y = labels[rows]
        if y.all() or not y.any():
            continue
        diffs.append(vus(y, a[rows], window)[1] - vus(y, b[rows], window)[1])
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"diff": float(point), "ci_low": float(lo), "ci_high": float(hi), "replicates": len(diffs),
            "blocks": len(blocks), "method": "paired block bootstrap over test events"}  # fmt: skip


def paired_draws_diff(a: list[float], b: list[float]) -> dict[str, float] | None:
    """Mean per-draw difference with a 95% t interval; None with fewer than two paired draws."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size < 2:
        return None
    from scipy import stats

    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    return {"diff": float(d.mean()), "ci_low": float(d.mean() - half), "ci_high": float(d.mean() + half),
            "draws": int(d.size), "method": "paired t interval over draws"}  # fmt: skip


def verdict(ci_low: float, ci_high: float) -> str:
    """better / worse when the whole interval is on one side of zero."""
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    return "not distinguishable"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of the share k / n."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))
