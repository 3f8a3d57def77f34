"""Uncertainty for the comparison: how sure is "MOMENT minus the best baseline"?

- :func:`paired_bootstrap`: a paired bootstrap over the test series and the draws. Blocks are
  the test events, each with the normal stretch that follows it (the stretch before the first
  event is a block too), so an event and its aftermath stay together; a replicate resamples
  blocks with replacement, takes the *same* blocks for both methods, resamples the draws in
  pairs (draw k of both methods trained on the same rows) and recomputes the mean VUS-PR
  difference. The 2.5 / 97.5 percentiles give a 95% interval covering both the test events' and
  the training data's variability; the share of replicates on the other side of zero gives a
  two-sided p-value (for Holm's correction when one method is compared with several).
- VUS-PR is a sum of per-threshold counts, so each block's counts are computed once
  (:class:`BlockVUS`) and a replicate is a weighted sum of them: thousands of replicates cost
  seconds. The 250 thresholds are the full test series' (a replicate does not re-derive them);
  with every block once the result equals :func:`momentad.metrics.vus` exactly.
- :func:`paired_draws_diff`: when both methods ran several draws, a t interval on the per-draw
  differences. :func:`wilson`: the 95% interval of a detection share (k of n events).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from momentad.metrics import _VUS_THRESHOLDS, segments, vus


def event_blocks(labels: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) row blocks: the lead-in before the first event, then each event with the
    normal rows after it up to the next event."""
    starts, _ = segments(np.asarray(labels))
    n = len(labels)
    if starts.size == 0:
        return [(0, n)]
    cuts = [0, *starts.tolist()] if starts[0] > 0 else starts.tolist()
    return list(zip(cuts, cuts[1:] + [n], strict=True))


class BlockVUS:
    """Per-block counts of one score vector's VUS-PR, so that VUS-PR of any multiset of blocks
    (a bootstrap replicate) is a matrix product away (the same arithmetic as metrics.vus)."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray, window: int, blocks: list[tuple[int, int]]):
        labels = np.asarray(labels).astype(np.int64)
        scores = np.asarray(scores, dtype=np.float64)
        n, T = labels.size, _VUS_THRESHOLDS
        nb = len(blocks)
        blk = np.searchsorted(np.array([a for a, _ in blocks]), np.arange(n), side="right") - 1
        thr = -np.sort(-scores)[np.linspace(0, n - 1, T).astype(int)]
        rank = np.searchsorted(-thr, -scores, side="left")

        def cum(idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
            c = np.bincount(blk[idx] * (T + 1) + rank[idx], weights=weights, minlength=nb * (T + 1))
            return np.cumsum(c.reshape(nb, T + 1)[:, :T], axis=1)

        everything = np.arange(n)
        anomalous = labels > 0
        self.n = np.bincount(blk, minlength=nb).astype(np.float64)
        self.P = np.bincount(blk, weights=anomalous.astype(np.float64), minlength=nb)
        self.N = cum(everything)
        self.A = cum(everything[anomalous])
        s0, e0 = segments(labels)
        widths = range(window + 1)
        self.B = np.zeros((nb, len(widths), T))
        self.E = np.zeros((nb, len(widths), T))
        self.S = np.zeros((nb, len(widths)))
        # every count belongs to the block of the event it comes from: a replicate that leaves an
        # event out leaves out its buffer and its existence term too
        ev_blk = blk[s0]
        for w in widths:
            h = w // 2
            if h:
                d = np.arange(1, h + 1)
                ramp = np.tile(np.sqrt(1 - d / w), len(s0))
                owner = np.repeat(ev_blk, h)
                soft = np.zeros(n)
                pieces = []
                for pos in ((e0[:, None] + d).ravel(), (s0[:, None] - d).ravel()):
                    ok = (pos >= 0) & (pos < n)
                    np.add.at(soft, pos[ok], ramp[ok])
                    pieces.append((pos[ok], ramp[ok], owner[ok]))
                final = np.where(anomalous, 0.0, np.minimum(soft, 1))
                for pos, r, own in pieces:  # each position's capped weight, shared by the events near it
                    share = r / soft[pos] * final[pos]
                    c = np.bincount(own * (T + 1) + rank[pos], weights=share, minlength=nb * (T + 1))
                    self.B[:, w] += np.cumsum(c.reshape(nb, T + 1)[:, :T], axis=1)
            ls, le = np.maximum(s0 - h, 0), np.minimum(e0 + h, n - 1)
            first = np.concatenate([[True], le[:-1] < ls[1:]])
            ms = ls[first]
            me = le[np.concatenate([np.flatnonzero(first)[1:] - 1, [len(le) - 1]])]
            bounds = np.empty(2 * len(ms), dtype=np.int64)
            bounds[0::2], bounds[1::2] = ms, me + 1
            mins = np.minimum.reduceat(np.append(rank, rank.max()), bounds)[0::2]
            seg_blk = ev_blk[first]
            c = np.bincount(seg_blk * (T + 1) + mins, minlength=nb * (T + 1)).reshape(nb, T + 1)
            self.E[:, w] = np.cumsum(c[:, :T], axis=1)
            self.S[:, w] = np.bincount(seg_blk, minlength=nb)

    def vus_pr(self, weights: np.ndarray) -> np.ndarray:
        """VUS-PR for each row of ``weights`` (replicates x blocks: how often each block is
        drawn); NaN where a replicate holds no anomaly."""
        C = np.atleast_2d(weights).astype(np.float64)
        P = C @ self.P
        N = C @ self.N
        A = C @ self.A
        out = np.zeros(len(C))
        with np.errstate(invalid="ignore", divide="ignore"):
            for w in range(self.B.shape[1]):
                B = C @ self.B[:, w]
                E = (C @ self.E[:, w]) / (C @ self.S[:, w])[:, None]
                tp = A + B
                tpr = np.minimum(tp / (P[:, None] + B / 2), 1) * E
                step = np.diff(np.concatenate([np.zeros((len(C), 1)), tpr], axis=1), axis=1)
                # a replicate without the top-scored rows predicts nothing at the first thresholds
                out += (step * np.where(N > 0, tp / np.maximum(N, 1), 0.0)).sum(axis=1)
        out /= self.B.shape[1]
        out[P == 0] = np.nan
        return out


def paired_bootstrap(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, window: int,
                     replicates: int = 2000, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Mean over paired draws of VUS-PR(a) - VUS-PR(b), with a 95% interval and a two-sided
    p-value from resampling test-event blocks and draws together. ``scores_*``: (draws,
    timesteps), rows paired (a single-draw side is repeated by the caller)."""
    labels = np.asarray(labels).astype(np.int8)
    a, b = np.atleast_2d(scores_a), np.atleast_2d(scores_b)
    k = a.shape[0]
    point = float(np.mean([vus(labels, a[i], window)[1] - vus(labels, b[i], window)[1] for i in range(k)]))
    blocks = event_blocks(labels)
    nb = len(blocks)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, nb, (replicates, nb))
    draws = rng.integers(0, k, (replicates, k))
    counts = np.bincount((picks + nb * np.arange(replicates)[:, None]).ravel(), minlength=replicates * nb)
    C = counts.reshape(replicates, nb)
    per_draw = np.stack([BlockVUS(labels, a[i], window, blocks).vus_pr(C) - BlockVUS(labels, b[i], window,
                                                                                        blocks).vus_pr(C)
                         for i in range(k)])  # fmt: skip
    diffs = per_draw[draws, np.arange(replicates)[:, None]].mean(axis=1)
    diffs = diffs[np.isfinite(diffs)]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    p = min(1.0, 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return {"diff": point, "ci_low": float(lo), "ci_high": float(hi), "p_value": p, "replicates": int(len(diffs)),
            "blocks": nb, "draws": k,
            "method": f"paired bootstrap over test events and draws ({len(diffs)} replicates)"}  # fmt: skip


def paired_draws_diff(a: list[float], b: list[float]) -> dict[str, float] | None:
    """Mean per-draw difference with a 95% t interval; None with fewer than two paired draws."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.size < 2:
        return None
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


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels' multipletests)."""
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(p_values, method="holm")[1]] if p_values else []


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of the share k / n (scipy)."""
    if n == 0:
        return (float("nan"), float("nan"))
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(ci.low), float(ci.high))
