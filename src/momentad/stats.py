"""Uncertainty for the comparison: how sure is "MOMENT minus the best baseline"?

- ``two_level_bootstrap``: a paired bootstrap over the test series and the draws. Blocks are
  the test events, each with the normal stretch that follows it (the stretch before the first
  event is a block too), so an event and its aftermath stay together; a replicate resamples
  blocks with replacement, concatenates the *same* blocks for both methods, resamples the draws
  in pairs (draw k of both methods trained on the same rows) and recomputes the mean VUS-PR
  difference. The 2.5 / 97.5 percentiles give a 95% interval covering both the test events'
  and the training data's variability.
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


def two_level_bootstrap(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, window: int,
                        replicates: int = 100, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Mean over paired draws of VUS-PR(a) - VUS-PR(b), with a 95% interval from resampling
    test-event blocks and draws together. ``scores_*``: (draws, timesteps), rows paired."""
    labels = np.asarray(labels).astype(np.int8)
    a, b = np.atleast_2d(scores_a), np.atleast_2d(scores_b)
    k = a.shape[0]
    point = float(np.mean([vus(labels, a[i], window)[1] - vus(labels, b[i], window)[1] for i in range(k)]))
    blocks = event_blocks(labels)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(replicates):
        pick = rng.integers(0, len(blocks), len(blocks))
        draws = rng.integers(0, k, k)
        rows = np.concatenate([np.arange(*blocks[i]) for i in pick])
        y = labels[rows]
        if y.all() or not y.any():
            continue
        per = {i: vus(y, a[i, rows], window)[1] - vus(y, b[i, rows], window)[1] for i in set(draws.tolist())}
        diffs.append(np.mean([per[i] for i in draws]))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return {"diff": point, "ci_low": float(lo), "ci_high": float(hi), "replicates": len(diffs), "blocks": len(blocks),
            "draws": k, "method": f"paired bootstrap over test events and draws ({len(diffs)} replicates)"}  # fmt: skip


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
