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
  with every block once the result equals :func:`momentad.metrics.vus` exactly. Replicates
  average VUS over at most ``REPLICATE_WIDTHS`` buffer widths evenly spread over 0..window
  (VUS-PR is smooth in the width; the point estimates use every width).
- :class:`Resampler`: one set of resampled blocks and draws per test series, shared by every
  comparison on it, so each row's replicate values are computed once (Holm's comparison of one
  row with every other is then a subtraction per pair).
- :func:`wilson`: the 95% interval of a detection share (k of n events).
"""

from __future__ import annotations

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

    def __init__(self, labels: np.ndarray, scores: np.ndarray, window: int, blocks: list[tuple[int, int]],
                 widths: list[int] | None = None):  # fmt: skip
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
        widths = list(range(window + 1)) if widths is None else list(widths)
        self.B = np.zeros((nb, len(widths), T))
        self.E = np.zeros((nb, len(widths), T))
        self.S = np.zeros((nb, len(widths)))
        # every count belongs to the block of the event it comes from: a replicate that leaves an
        # event out leaves out its buffer and its existence term too
        ev_blk = blk[s0]
        for j, w in enumerate(widths):
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
                    self.B[:, j] += np.cumsum(c.reshape(nb, T + 1)[:, :T], axis=1)
            ls, le = np.maximum(s0 - h, 0), np.minimum(e0 + h, n - 1)
            first = np.concatenate([[True], le[:-1] < ls[1:]])
            ms = ls[first]
            me = le[np.concatenate([np.flatnonzero(first)[1:] - 1, [len(le) - 1]])]
            bounds = np.empty(2 * len(ms), dtype=np.int64)
            bounds[0::2], bounds[1::2] = ms, me + 1
            mins = np.minimum.reduceat(np.append(rank, rank.max()), bounds)[0::2]
            seg_blk = ev_blk[first]
            c = np.bincount(seg_blk * (T + 1) + mins, minlength=nb * (T + 1)).reshape(nb, T + 1)
            self.E[:, j] = np.cumsum(c[:, :T], axis=1)
            self.S[:, j] = np.bincount(seg_blk, minlength=nb)

    def vus_pr(self, weights: np.ndarray) -> np.ndarray:
        """VUS-PR for each row of ``weights`` (replicates x blocks: how often each block is
        drawn); NaN where a replicate holds no anomaly."""
        C = np.atleast_2d(weights).astype(np.float64)
        out = np.zeros(len(C))
        for a in range(0, len(C), 512):  # bounded memory
            out[a : a + 512] = self._vus_pr(C[a : a + 512])
        return out

    def _vus_pr(self, C: np.ndarray) -> np.ndarray:
        P = (C @ self.P)[:, None]
        A = C @ self.A
        N = C @ self.N
        # a replicate without the top-scored rows predicts nothing at the first thresholds
        inv_n = np.divide(1.0, N, out=np.zeros_like(N), where=N > 0)
        out = np.zeros(len(C))
        with np.errstate(invalid="ignore", divide="ignore"):
            for w in range(self.B.shape[1]):
                B = C @ self.B[:, w]
                tp = A + B
                tpr = np.minimum(tp / (P + 0.5 * B), 1.0)
                tpr *= (C @ self.E[:, w]) / (C @ self.S[:, w])[:, None]
                prec = tp * inv_n
                # sum over thresholds of (tpr_t - tpr_{t-1}) * precision_t, tpr_{-1} = 0
                out += np.einsum("rt,rt->r", tpr, prec) - np.einsum("rt,rt->r", tpr[:, :-1], prec[:, 1:])
        out /= self.B.shape[1]
        out[P[:, 0] == 0] = np.nan
        return out


REPLICATE_WIDTHS = 33


def replicate_widths(window: int) -> list[int]:
    """The buffer widths a replicate's VUS-PR averages: all of 0..window when few, else
    ``REPLICATE_WIDTHS`` evenly spread (the ends included)."""
    if window + 1 <= REPLICATE_WIDTHS:
        return list(range(window + 1))
    return sorted({int(round(x)) for x in np.linspace(0, window, REPLICATE_WIDTHS)})


class Resampler:
    """One bootstrap of a test series: ``replicates`` multisets of its event blocks and of
    ``draws`` draw indices (seeded), shared by every row compared on that series."""

    def __init__(self, labels: np.ndarray, window: int, replicates: int, seed: int, draws: int):
        self.labels = np.asarray(labels).astype(np.int8)
        self.window, self.draws = window, draws
        self.blocks = event_blocks(self.labels)
        nb = len(self.blocks)
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, nb, (replicates, nb))
        self.draw_picks = rng.integers(0, draws, (replicates, draws))
        counts = np.bincount((picks + nb * np.arange(replicates)[:, None]).ravel(), minlength=replicates * nb)
        self.weights = counts.reshape(replicates, nb)
        self.widths = replicate_widths(window)
        self._cache: dict[int, np.ndarray] = {}
        self._exact: dict[int, float] = {}

    def exact(self, scores: np.ndarray) -> float:
        """The VUS-PR of one score vector on the series itself, every width (cached)."""
        key = hash(np.asarray(scores, dtype=np.float64).tobytes())
        if key not in self._exact:
            self._exact[key] = vus(self.labels, scores, self.window)[1]
        return self._exact[key]

    def values(self, scores: np.ndarray) -> np.ndarray:
        """(replicates,) VUS-PR of one score vector on every resampled series (cached)."""
        key = hash(np.asarray(scores, dtype=np.float64).tobytes())
        if key not in self._cache:
            bv = BlockVUS(self.labels, scores, self.window, self.blocks, self.widths)
            self._cache[key] = bv.vus_pr(self.weights)
        return self._cache[key]

    def compare(self, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        """Mean over paired draws of VUS-PR(a) - VUS-PR(b) with a 95% interval and a two-sided
        p-value; ``a``, ``b``: (draws, timesteps), rows paired."""
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        k = a.shape[0]
        if k != self.draws:
            raise ValueError(f"{k} draws; this resampler pairs {self.draws}")
        point = float(np.mean([self.exact(a[i]) - self.exact(b[i]) for i in range(k)]))
        per_draw = np.stack([self.values(a[i]) - self.values(b[i]) for i in range(k)])
        replicates = len(self.weights)
        diffs = per_draw[self.draw_picks, np.arange(replicates)[:, None]].mean(axis=1)
        diffs = diffs[np.isfinite(diffs)]
        lo, hi = np.percentile(diffs, [2.5, 97.5])
        p = min(1.0, 2 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
        return {"diff": point, "ci_low": float(lo), "ci_high": float(hi), "p_value": p, "replicates": int(len(diffs)),
                "blocks": len(self.blocks), "draws": k,
                "method": f"paired bootstrap over test events and draws ({len(diffs)} replicates)"}  # fmt: skip


def paired_bootstrap(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, window: int,
                     replicates: int = 2000, seed: int = 0) -> dict[str, float]:  # fmt: skip
    """Mean over paired draws of VUS-PR(a) - VUS-PR(b), with a 95% interval and a two-sided
    p-value from resampling test-event blocks and draws together. ``scores_*``: (draws,
    timesteps), rows paired (a single-draw side is repeated by the caller)."""
    a = np.atleast_2d(scores_a)
    return Resampler(labels, window, replicates, seed, a.shape[0]).compare(a, scores_b)


# -- the verdict rules (every answer the project gives comes from one of these) ---------------
ALPHA = 0.05


def verdict(ci_low: float, ci_high: float) -> str:
    """One dataset, one opponent: better / worse when the whole 95 % interval is on one side of zero."""
    if ci_low > 0:
        return "better"
    if ci_high < 0:
        return "worse"
    return "not distinguishable"


def verdict_against_all(diffs: list[float], adjusted_p: list[float]) -> tuple[str, list[int], list[int]]:
    """One dataset, every opponent at once (no test-free way to pick one): worse if significantly
    worse than any (Holm-adjusted), better if significantly better than all; with the indices of
    those it is worse and better than."""
    worse = [i for i, (d, p) in enumerate(zip(diffs, adjusted_p, strict=True)) if p < ALPHA and d < 0]
    better = [i for i, (d, p) in enumerate(zip(diffs, adjusted_p, strict=True)) if p < ALPHA and d > 0]
    word = "worse" if worse else "better" if better and len(better) == len(diffs) else "not distinguishable"
    return word, worse, better


def verdict_over_datasets(adjusted_p: float | None, median: float) -> str:
    """Across datasets: the paired test decides (Holm-adjusted p < 0.05), in the direction of the
    median difference; the interval says how large the difference is."""
    if adjusted_p is None or adjusted_p >= ALPHA or median == 0:
        return "not distinguishable"
    return "better" if median > 0 else "worse"


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels' multipletests)."""
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(p_values, method="holm")[1]] if p_values else []


def wilcoxon(d: np.ndarray) -> tuple[float | None, float | None]:
    """Two-sided Wilcoxon signed-rank p over paired differences (zeros dropped, scipy) and the
    matched-pairs rank-biserial effect size; (None, None) without a non-zero difference."""
    nonzero = np.asarray(d, dtype=float)
    nonzero = nonzero[nonzero != 0]
    if not nonzero.size:
        return None, None
    r = stats.rankdata(np.abs(nonzero))
    plus, minus = r[nonzero > 0].sum(), r[nonzero < 0].sum()
    return float(stats.wilcoxon(nonzero).pvalue), float((plus - minus) / (plus + minus))


def cluster_bootstrap(values: np.ndarray, clusters: list[str], replicates: int, seed: int) -> tuple[float, float]:
    """95 % interval of the mean of ``values`` (one per dataset) from a hierarchical bootstrap:
    resample the clusters (systems) with replacement, then the datasets within each drawn cluster;
    a replicate's value is the mean over every dataset it drew. With one dataset per cluster this
    is the ordinary bootstrap over datasets."""
    v = np.asarray(values, dtype=float)
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(clusters):
        groups.setdefault(c, []).append(i)
    members = list(groups.values())
    rng = np.random.default_rng(seed)
    means = np.empty(replicates)
    for r in range(replicates):
        picked = rng.integers(0, len(members), len(members))
        total = count = 0.0
        for g in picked:
            idx = members[g]
            draw = v[np.asarray(idx)[rng.integers(0, len(idx), len(idx))]]
            total, count = total + draw.sum(), count + len(draw)
        means[r] = total / count
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson interval of the share k / n (scipy)."""
    if n == 0:
        return (float("nan"), float("nan"))
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(ci.low), float(ci.high))
