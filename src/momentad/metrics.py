"""The evaluation core every method goes through.

``compute_metrics`` returns the nine threshold-free / oracle-threshold scores of TSB-AD 1.5
(``get_metrics(score, labels, slidingWindow)``, version 'opt', 250 thresholds), re-derived
and vectorised so 100,000 timesteps take seconds rather than minutes. Their definitions:

- auc_pr / auc_roc: average precision / ROC AUC of the raw score.
- vus_pr / vus_roc: range-AUC averaged over buffer widths 0..sliding_window (Paparrizos et
  al., VLDB 2022): labels are extended by a soft sqrt ramp of half the width on each side.
- standard_f1: best point-wise F1 over all thresholds (oracle).
- pa_f1: best point-adjusted F1 over 100 thresholds (oracle; inflates, never headline it).
- event_f1: best of event recall x point precision F1 over 100 thresholds (oracle).
- r_f1: best range-based F1 (Tatbul et al. 2018, alpha 0.2, flat bias) over 100 thresholds.
- affiliation_f1: best affiliation F1 (Huet et al. KDD 2022) over 100 thresholds.

Threshold-dependent reporting for deployment uses :func:`select_threshold` on validation
scores and :func:`at_threshold` on test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from momentad.errors import InputError

METRIC_KEYS = ("auc_pr", "auc_roc", "vus_pr", "vus_roc", "standard_f1", "pa_f1", "event_f1", "r_f1", "affiliation_f1")
THRESHOLD_RULES = ("val_best_f1", "percentile", "mean_kstd", "iqr")
_VUS_THRESHOLDS = 250
_GRID = 100


# --------------------------------------------------------------------------------------------
# helpers
def segments(label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and inclusive ends of runs of 1 in a 0/1 vector."""
    d = np.diff(np.concatenate([[0], (np.asarray(label) > 0).astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels ({labels.size}) and scores ({scores.size}) differ in length")
    if not np.isfinite(scores).all():
        raise InputError("scores contain NaN or infinite values; the detector produced invalid output")
    if labels.sum() == 0:
        raise InputError("the evaluated split has no labelled anomalies; metrics are undefined there")
    if labels.sum() == labels.size:
        raise InputError("the evaluated split is anomalous everywhere; metrics are undefined there")
    return labels, scores


def _grid(scores: np.ndarray) -> np.ndarray:
    return np.linspace(scores.min(), scores.max(), _GRID)


def _f1(p, r, eps):
    return 2 * p * r / (p + r + eps)


# --------------------------------------------------------------------------------------------
# VUS
def vus(labels: np.ndarray, scores: np.ndarray, sliding_window: int) -> tuple[float, float]:
    """(VUS-ROC, VUS-PR) over buffer widths 0..sliding_window with 250 score-rank thresholds.

    Per width the soft labels only matter on normal points near an anomaly, so each threshold's
    true positives are a cumulative sum over points ordered by the threshold that first
    predicts them: O(n + segments x width) per width instead of O(n x thresholds).
    """
    n = labels.size
    P = float(labels.sum())
    s0, e0 = segments(labels)
    thr = -np.sort(-scores)[np.linspace(0, n - 1, _VUS_THRESHOLDS).astype(int)]
    rank = np.searchsorted(-thr, -scores, side="left")  # first threshold index predicting x

    def by_threshold(ranks: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        counts = np.bincount(ranks, weights=weights, minlength=_VUS_THRESHOLDS + 1)
        return np.cumsum(counts[:_VUS_THRESHOLDS])

    n_pred = by_threshold(rank)
    anomalous = labels > 0
    A = by_threshold(rank[anomalous])
    rocs, prs = [], []
    for w in range(sliding_window + 1):
        h = w // 2
        B = np.zeros(_VUS_THRESHOLDS)
        if h:
            d = np.arange(1, h + 1)
            ramp = np.tile(np.sqrt(1 - d / w), len(s0))
            soft = np.zeros(n)
            for pos in ((e0[:, None] + d).ravel(), (s0[:, None] - d).ravel()):
                ok = (pos >= 0) & (pos < n)
                np.add.at(soft, pos[ok], ramp[ok])
            soft[anomalous] = 0
            near = np.flatnonzero(soft)
            B = by_threshold(rank[near], np.minimum(soft[near], 1))
        # buffered anomaly segments, merged where they touch: the existence term counts these
        ls, le = np.maximum(s0 - h, 0), np.minimum(e0 + h, n - 1)
        first = np.concatenate([[True], le[:-1] < ls[1:]])
        ms = ls[first]
        me = le[np.concatenate([np.flatnonzero(first)[1:] - 1, [len(le) - 1]])]
        existence = by_threshold(_seg_min(rank, ms, me)) / len(ms)

        tp = A + B
        p_new = P + B / 2
        tpr = np.concatenate([[0.0], np.minimum(tp / p_new, 1) * existence, [1.0]])
        fpr = np.concatenate([[0.0], (n_pred - tp) / (n - p_new), [1.0]])
        rocs.append(np.dot(np.diff(fpr), (tpr[1:] + tpr[:-1]) / 2))
        prs.append(np.dot(np.diff(tpr[:-1]), tp / n_pred))
    return float(np.mean(rocs)), float(np.mean(prs))


def _seg_min(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Minimum of values[start..end] (inclusive) for disjoint, sorted segments."""
    bounds = np.empty(2 * len(starts), dtype=np.int64)
    bounds[0::2], bounds[1::2] = starts, ends + 1
    padded = np.append(values, values.max())  # reduceat needs every bound < len
    return np.minimum.reduceat(padded, bounds)[0::2]


# --------------------------------------------------------------------------------------------
# oracle-threshold F1 family
def standard_f1(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best point-wise F1 over every distinct threshold."""
    p, r, _ = precision_recall_curve(labels, scores)
    return float(np.max(_f1(p, r, 1e-5)))


def pa_f1(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best point-adjusted F1: a segment counts whole once any of its points is flagged."""
    t = _grid(scores)
    s, e = segments(labels)
    seg_max = -_seg_min(-scores, s, e)
    detected = seg_max[None, :] > t[:, None]
    length = (e - s + 1)[None, :] - ((s == 0)[None, :] & (scores[0] <= t[:, None]))
    tp = (detected * length).sum(axis=1)
    normal = np.sort(scores[labels == 0])
    fp = normal.size - np.searchsorted(normal, t, side="right")
    fn = labels.sum() - tp
    denom = 2 * tp + fp + fn
    return float(np.max(np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)))


def event_f1(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best F1 of event-wise recall and point-wise precision."""
    t = _grid(scores)
    s, e = segments(labels)
    e = e.copy()
    if e[-1] == labels.size - 1:
        e[-1] -= 1  # the reference drops the last point of an event that ends the series
    hit = np.zeros((t.size, s.size), bool)
    ok = e >= s
    hit[:, ok] = (-_seg_min(-scores, s[ok], e[ok]))[None, :] > t[:, None]
    rec = hit.sum(axis=1) / s.size
    order = np.sort(scores)
    n_pred = scores.size - np.searchsorted(order, t, side="right")
    anom = np.sort(scores[labels == 1])
    tp = anom.size - np.searchsorted(anom, t, side="right")
    prec = np.where(n_pred > 0, tp / np.maximum(n_pred, 1), 0.0)
    return float(np.max(_f1(prec, rec, 1e-15)))


def _range_score(real: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray],
                 other_vec: np.ndarray, alpha: float) -> float:  # fmt: skip
    """Tatbul et al. range recall of ``real`` ranges against ``other`` (flat bias)."""
    rs, re_ = real
    if rs.size == 0:
        return 0.0
    csum = np.concatenate([[0], np.cumsum(other_vec)])
    inside = csum[re_ + 1] - csum[rs]
    os_, oe = other
    count = np.searchsorted(os_, re_, side="right") - np.searchsorted(oe, rs, side="left")
    overlap = inside / (re_ - rs + 1) * np.where(count > 0, 1.0 / np.maximum(count, 1), 0.0)
    return float(np.sum(alpha * (inside > 0) + (1 - alpha) * overlap) / rs.size)


def r_f1(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best range-based F1 (alpha 0.2 for recall, 0 for precision)."""
    lab_seg = segments(labels)
    best = 0.0
    for t in _grid(scores):
        pred = (scores > t).astype(np.int64)
        pred_seg = segments(pred)
        rr = _range_score(lab_seg, pred_seg, pred, 0.2)
        rp = _range_score(pred_seg, lab_seg, labels, 0.0)
        best = max(best, 2 * rr * rp / (rr + rp) if rr + rp else 0.0)
    return best


# --------------------------------------------------------------------------------------------
# affiliation
def _minint(d1, d2, m):
    """Integral of min(d, m) for d from d1 to d2."""
    return 0.5 * (np.minimum(d2, m) ** 2 - np.minimum(d1, m) ** 2) + m * (np.maximum(d2, m) - np.maximum(d1, m))


def _survival_integral(a1, a2, t1, t2, e1, e2):
    """Integral over x in [a1, a2] of P(dist(Y, T) >= dist(x, T)), Y uniform on E; T, A in E."""
    out = np.clip(np.minimum(a2, t2) - np.maximum(a1, t1), 0, None)  # inside T: probability 1
    size_e, size_t = e2 - e1, t2 - t1
    m = np.minimum(t1 - e1, e2 - t2)
    # left part of A (x < t1) and right part (x > t2); the distance d runs linearly across each
    left_hi, right_lo = np.minimum(a2, t1), np.maximum(a1, t2)
    for width, d_min, d_max in (
        (left_hi - a1, t1 - left_hi, t1 - a1),
        (a2 - right_lo, right_lo - t2, a2 - t2),
    ):
        cdf = size_t * width + 0.5 * (d_max**2 - d_min**2) + _minint(d_min, d_max, m)
        out = out + np.where(width > 0, width - cdf / size_e, 0.0)
    return out


def _recall_integral(j1, j2, a1, a2, e1, e2):
    """Integral over y in [j1, j2] (ground truth) of P(|X - y| >= dist(y, A)), X uniform on the
    zone E = [e1, e2], A = [a1, a2] the predicted piece: the affiliation recall's survival
    function is centred on the ground-truth point, not on A (Huet et al. 2022; TSB-AD 1.5)."""
    size_e = e2 - e1
    out = np.clip(np.minimum(j2, a2) - np.maximum(j1, a1), 0, None)  # inside A: probability 1
    # left of A: nearest point a1; (2y - a1, a1) inside E while y >= (e1 + a1) / 2
    lo, hi = j1, np.minimum(j2, a1)
    c = (e1 + a1) / 2
    w_far = np.clip(np.minimum(hi, c) - lo, 0, None)
    lo_near = np.maximum(lo, c)
    w_near = np.clip(hi - lo_near, 0, None)
    near = w_near - ((a1 - lo_near) ** 2 - (a1 - np.maximum(hi, lo_near)) ** 2) / size_e
    left = np.where(hi > lo, w_far * (1 - (a1 - e1) / size_e) + np.where(w_near > 0, near, 0.0), 0.0)
    out = out + np.where(a1 > e1, left, 0.0)
    # right of A: nearest point a2; (a2, 2y - a2) inside E while y <= (a2 + e2) / 2
    lo, hi = np.maximum(j1, a2), j2
    c = (a2 + e2) / 2
    hi_near = np.minimum(hi, c)
    w_near = np.clip(hi_near - lo, 0, None)
    near = w_near - ((np.maximum(hi_near, lo) - a2) ** 2 - (lo - a2) ** 2) / size_e
    w_far = np.clip(hi - np.maximum(lo, c), 0, None)
    right = np.where(hi > lo, np.where(w_near > 0, near, 0.0) + w_far * (1 - (e2 - a2) / size_e), 0.0)
    return out + np.where(a2 < e2, right, 0.0)


def affiliation_pr(labels: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Affiliation (precision, recall) of a 0/1 prediction; precision is NaN with no prediction."""
    n = labels.size
    gs, ge = segments(labels)
    ge = ge + 1.0  # events are half-open [start, stop+1)
    gs = gs.astype(float)
    # affiliation zone of each ground-truth event: midpoints to its neighbours, series ends
    zl = np.concatenate([[0.0], (ge[:-1] + gs[1:]) / 2])
    zr = np.concatenate([(ge[:-1] + gs[1:]) / 2, [float(n)]])
    ps, pe = segments(pred)
    if ps.size == 0:
        return float("nan"), 0.0
    ps, pe = ps.astype(float), pe + 1.0
    # cut predicted events at zone borders: piece k lies in zone z[k]
    z_first = np.searchsorted(zr, ps, side="right")
    z_last = np.searchsorted(zl, pe, side="left") - 1
    reps = z_last - z_first + 1
    idx = np.repeat(np.arange(ps.size), reps)
    z = z_first[idx] + np.arange(idx.size) - np.repeat(np.cumsum(reps) - reps, reps)
    a1 = np.maximum(ps[idx], zl[z])
    a2 = np.minimum(pe[idx], zr[z])
    keep = a2 > a1
    a1, a2, z = a1[keep], a2[keep], z[keep]
    nz = gs.size
    # precision: mean over zones holding a prediction of the survival-weighted share
    num = np.bincount(z, _survival_integral(a1, a2, gs[z], ge[z], zl[z], zr[z]), minlength=nz)
    den = np.bincount(z, a2 - a1, minlength=nz)
    has = den > 0
    precision = float(np.mean(num[has] / den[has])) if has.any() else float("nan")
    # recall: each ground-truth event is split between the predicted pieces of its zone by
    # their own midpoints; each part is scored against its nearest piece
    same_prev = np.concatenate([[False], z[1:] == z[:-1]])
    same_next = np.concatenate([z[:-1] == z[1:], [False]])
    left = np.where(same_prev, (np.roll(a2, 1) + a1) / 2, zl[z])
    right = np.where(same_next, (a2 + np.roll(a1, -1)) / 2, zr[z])
    j1, j2 = np.maximum(gs[z], left), np.minimum(ge[z], right)
    part = np.where(j2 > j1, _recall_integral(j1, np.maximum(j2, j1), a1, a2, zl[z], zr[z]), 0.0)
    recall_num = np.bincount(z, part, minlength=nz)
    recall = float(np.mean(recall_num / (ge - gs)))
    return precision, recall


def affiliation_f1(labels: np.ndarray, scores: np.ndarray) -> float:
    """Best affiliation F1 over 100 thresholds (thresholds with no prediction are skipped)."""
    best = float("nan")
    for t in _grid(scores):
        p, r = affiliation_pr(labels, (scores > t).astype(np.int8))
        f = 2 * p * r / (p + r + 1e-15)
        if not np.isnan(f) and (np.isnan(best) or f > best):
            best = f
    return best


# --------------------------------------------------------------------------------------------
def compute_metrics(labels: np.ndarray, scores: np.ndarray, sliding_window: int) -> dict[str, float]:
    """The nine TSB-AD scores of ``scores`` against 0/1 ``labels`` (see the module docstring)."""
    labels, scores = _check(labels, scores)
    vus_roc, vus_pr = vus(labels, scores, int(sliding_window))
    return {
        "auc_pr": float(average_precision_score(labels, scores)),
        "auc_roc": float(roc_auc_score(labels, scores)),
        "vus_pr": vus_pr,
        "vus_roc": vus_roc,
        "standard_f1": standard_f1(labels, scores),
        "pa_f1": pa_f1(labels, scores),
        "event_f1": event_f1(labels, scores),
        "r_f1": r_f1(labels, scores),
        "affiliation_f1": affiliation_f1(labels, scores),
    }


# --------------------------------------------------------------------------------------------
# deployment view: a threshold fixed on validation, applied to test
def find_period(x: np.ndarray, max_lag: int = 400, rank: int = 1) -> int:
    """Dominant period of ``x`` from its autocorrelation (TSB-AD's ``find_length_rank``): the
    highest local maximum of the ACF at lags 3..max_lag (``rank`` 2: the highest of those at a
    longer lag than that one); 125 when it lies outside 3..300."""
    x = np.asarray(x, dtype=np.float64)[:20000]
    x = x - x.mean()
    n = x.size
    if n < 10 or not np.any(x):
        return 125
    f = np.fft.rfft(x, 2 ** int(np.ceil(np.log2(2 * n))))
    acf = np.fft.irfft(f * np.conj(f))[: min(max_lag, n - 1) + 1]
    acf = acf / acf[0]
    base = 3
    a = acf[base:]
    peaks = np.flatnonzero((a[1:-1] > a[:-2]) & (a[1:-1] > a[2:])) + 1
    if peaks.size == 0:
        return 125
    order = np.argsort(a[peaks], kind="stable")[::-1]
    pick = order[0]
    if rank == 2:
        pick = next((i for i in order[1:] if i > order[0]), order[0])
    best = peaks[pick]
    return int(best + base) if 3 <= best <= 300 else 125


def select_threshold(val_labels: np.ndarray, val_scores: np.ndarray, rule: str, percentile: float = 99.0,
                     k: float = 3.0, iqr_factor: float = 1.5) -> float:  # fmt: skip
    """A threshold from **validation** scores (and labels, for val_best_f1) only."""
    s = np.asarray(val_scores, dtype=np.float64)
    if rule == "val_best_f1":
        y = np.asarray(val_labels)
        if y.sum() == 0:
            raise InputError(
                "evaluate.threshold=val_best_f1 needs anomalies in the validation split, which has none; "
                "use percentile, mean_kstd or iqr, or change data.split"
            )
        p, r, t = precision_recall_curve(y, s)
        f = _f1(p[:-1], r[:-1], 1e-12)
        return float(t[np.argmax(f)])
    if rule == "percentile":
        return float(np.percentile(s, percentile))
    if rule == "mean_kstd":
        return float(s.mean() + k * s.std())
    if rule == "iqr":
        q1, q3 = np.percentile(s, [25, 75])
        return float(q3 + iqr_factor * (q3 - q1))
    raise InputError(f"params.yaml: evaluate.threshold={rule!r}; use one of {', '.join(THRESHOLD_RULES)}")


def at_threshold(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Point-wise precision, recall and F1 of ``scores >= threshold``."""
    y = np.asarray(labels) > 0
    pred = np.asarray(scores) >= threshold
    tp = float(np.sum(pred & y))
    precision = tp / pred.sum() if pred.sum() else 0.0
    recall = tp / y.sum() if y.sum() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1_at_val_threshold": f1, "precision_at_val_threshold": precision, "recall_at_val_threshold": recall}


def fault_type_recall(labels: np.ndarray, fault_types, scores: np.ndarray, threshold: float) -> dict[str, dict]:
    """Per fault type: events (runs of one type) with at least one step flagged, and their share."""
    pred = np.asarray(scores) >= threshold
    ft = pd.Series(fault_types, dtype="string").fillna("anomaly").to_numpy(dtype=object)
    out: dict[str, dict] = {}
    for s, e in zip(*segments(labels), strict=True):
        kinds, starts = [], []
        for i in range(s, e + 1):  # an event can change type midway (overlapping injections)
            if i == s or ft[i] != ft[i - 1]:
                kinds.append(ft[i])
                starts.append(i)
        for kind, a, b in zip(kinds, starts, starts[1:] + [e + 1], strict=True):
            c = out.setdefault(str(kind), {"events": 0, "detected": 0})
            c["events"] += 1
            c["detected"] += int(pred[a:b].any())
    for c in out.values():
        c["recall"] = c["detected"] / c["events"]
    return dict(sorted(out.items()))


def detection_delays(labels: np.ndarray, scores: np.ndarray, threshold: float, timestamps=None) -> dict:
    """Per test event (a run of label 1): steps from its first step to the first step flagged
    (``score >= threshold``) inside it; an event with no flagged step is *missed* and counted
    apart. With datetime ``timestamps`` the delays are also given in minutes."""
    pred = np.asarray(scores) >= threshold
    starts, ends = segments(labels)
    delays, missed = [], 0
    for s, e in zip(starts, ends, strict=True):
        hit = np.flatnonzero(pred[s : e + 1])
        if hit.size:
            delays.append(int(hit[0]))
        else:
            missed += 1
    out: dict = {"events": int(starts.size), "detected": len(delays), "missed": missed,
                 "median_steps": float(np.median(delays)) if delays else None,
                 "p90_steps": float(np.percentile(delays, 90)) if delays else None}  # fmt: skip
    ts = None if timestamps is None else pd.Series(timestamps)
    if ts is not None and pd.api.types.is_datetime64_any_dtype(ts) and len(ts) > 1:
        step_min = float(pd.Series(ts).diff().median().total_seconds() / 60)
        out["step_minutes"] = step_min
        for k in ("median", "p90"):
            v = out[f"{k}_steps"]
            out[f"{k}_minutes"] = None if v is None else round(v * step_min, 3)
    return out
