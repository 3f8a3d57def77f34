"""Sliding subsequences, as TSB-AD's subsequence detectors (Sub-PCA, Sub-KNN) use them: every
window of ``w`` consecutive rows of a segment is one sample (its KPIs' values, channel-major),
and a window's score is given to its centre row, the edges padded with the first and last score.
Segments are windowed on their own, so no subsequence crosses a time gap."""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from momentad.data import Split
from momentad.metrics import find_period

MAX_FEATURES = 2048  # KPIs x window: keeps wide data (hundreds of KPIs) tractable


def auto_window(train: Split, rank: int, multivariate: int) -> int:
    """TSB-AD's choice: the ``rank``-th dominant period of a univariate series' training rows;
    ``multivariate`` rows for data with several KPIs (TSB-AD-M's default for the method), fewer
    where KPIs x rows would pass ``MAX_FEATURES``."""
    c = train.values.shape[1]
    if c > 1:
        return max(1, min(multivariate, MAX_FEATURES // c))
    return find_period(train.values[:, 0], rank=rank)


def subsequences(values: np.ndarray, w: int) -> np.ndarray:
    """(n - w + 1, KPIs x w) windows of one segment, channel-major like TSB-AD's ``Window``."""
    n, c = values.shape
    return sliding_window_view(values, w, axis=0).reshape(n - w + 1, c * w)


def scored_windows(values: np.ndarray, w: int, score, chunk: int = 4096) -> np.ndarray:
    """``score`` of every window of one segment, a chunk at a time (wide data: bounded memory);
    a segment shorter than ``w`` is edge-padded at its start to one window. Returns one score per
    row of the segment (:func:`centre_pad`)."""
    n = len(values)
    if n < w:
        values = np.concatenate([np.repeat(values[:1], w - n, axis=0), values])
    view = sliding_window_view(values, w, axis=0)  # (windows, KPIs, w), no copy
    k = len(view)
    out = np.concatenate([score(view[a : a + chunk].reshape(len(view[a : a + chunk]), -1)) for a in range(0, k, chunk)])
    return centre_pad(out, len(values), w)[-n:]


def centre_pad(scores: np.ndarray, n: int, w: int) -> np.ndarray:
    """n scores from n - w + 1 window scores: each window's score at its centre row, the first
    and last repeated over the edges (TSB-AD's padding)."""
    if len(scores) >= n:
        return scores[:n]
    return np.concatenate([np.full(math.ceil((w - 1) / 2), scores[0]), scores,
                           np.full((w - 1) // 2, scores[-1])])  # fmt: skip


def row_windows(split: Split, w: int, rows: np.ndarray | None = None) -> np.ndarray:
    """(rows, KPIs x w): for each row, the window whose score :func:`centre_pad` gives it (a
    segment shorter than ``w`` edge-padded at its start)."""
    values = split.values
    rows = np.arange(len(split)) if rows is None else np.asarray(rows)
    out = np.empty((len(rows), values.shape[1] * w), dtype=values.dtype)
    bounds = split.segments
    seg_of = np.searchsorted([a for a, _ in bounds], rows, side="right") - 1
    for s in np.unique(seg_of):
        a, b = bounds[s]
        v = values[a:b]
        pad = max(0, w - len(v))
        if pad:
            v = np.concatenate([np.repeat(v[:1], pad, axis=0), v])
        sel = np.flatnonzero(seg_of == s)
        j = np.clip(rows[sel] - a + pad - math.ceil((w - 1) / 2), 0, len(v) - w)
        out[sel] = v[j[:, None] + np.arange(w)[None, :]].transpose(0, 2, 1).reshape(len(sel), -1)
    return out
