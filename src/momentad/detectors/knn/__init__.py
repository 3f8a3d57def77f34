"""k nearest neighbours of sliding subsequences, as TSB-AD's KNN / Sub-KNN (adapted there from
PyOD).

Each window of ``window`` rows (all KPIs, channel-major), z-normalised on its own
(``normalize``), is scored by its distance to its ``n_neighbors`` nearest training windows
(``method``: the largest, mean or median of those distances); the score goes to the window's
centre row. ``auto`` settings follow TSB-AD's tuned ones: for a univariate series the
second-ranked period as window (find_length_rank, rank 2), 50 neighbours and the largest
distance; for several KPIs one row per window (TSB-AD-M's point KNN), 50 neighbours, their mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from sklearn.neighbors import NearestNeighbors

from momentad.config import rng
from momentad.data import Split
from momentad.detectors.base import Detector, as_split, register, save_arrays
from momentad.detectors.subsequence import auto_window, row_windows, scored_windows, subsequences
from momentad.errors import NotRun


@dataclass(frozen=True)
class KNNParams:
    window: int | Literal["auto"] = rng(ge=1, le=4096)
    n_neighbors: int = rng(ge=1)
    method: Literal["auto", "largest", "mean", "median"]
    normalize: bool  # z-normalise each window on its own (shape, not level)


def znorm(x: np.ndarray) -> np.ndarray:
    """Each row minus its mean, over its standard deviation (ddof 1); constant rows become 0."""
    sd = x.std(axis=1, ddof=1, keepdims=True) if x.shape[1] > 1 else np.zeros((len(x), 1))
    return np.nan_to_num((x - x.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, np.inf))


@register
class KNNDetector(Detector):
    name = "knn"
    Params = KNNParams
    stochastic = False  # the same rows give the same neighbours: one draw on the whole split

    def _fit(self, train: Split, val: Split | None) -> None:
        p = self.params
        multivariate = train.values.shape[1] > 1
        self.window_ = auto_window(train, 2, 1) if p.window == "auto" else int(p.window)
        self.method_ = ("mean" if multivariate else "largest") if p.method == "auto" else p.method
        w = self.window_
        parts = [subsequences(train.values[a:b], w) for a, b in train.segments if b - a >= w]
        if not parts:
            raise NotRun(f"no stretch of its training rows without a time gap holds knn.window={w} rows")
        self.train_ = self._prepare(np.concatenate(parts))
        self.k_ = min(p.n_neighbors, len(self.train_))
        self.model_ = NearestNeighbors(n_neighbors=self.k_).fit(self.train_)
        self.reference_ = np.median(np.concatenate(parts), axis=0)  # occlusion baseline (raw values)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        return znorm(x.astype(np.float64)) if self.params.normalize else x.astype(np.float64)

    def _window_scores(self, x: np.ndarray) -> np.ndarray:
        dist, _ = self.model_.kneighbors(self._prepare(x), n_neighbors=self.k_)
        if self.method_ == "largest":
            return dist[:, -1]
        return dist.mean(axis=1) if self.method_ == "mean" else np.median(dist, axis=1)

    def _score(self, split: Split) -> np.ndarray:
        out = np.empty(len(split))
        for a, b in split.segments:
            out[a:b] = scored_windows(split.values[a:b], self.window_, self._window_scores)
        return out

    def attribute(self, X, rows: np.ndarray | None = None) -> np.ndarray:
        """Occlusion per KPI: the drop in a row's window score when that KPI's values are set to
        their training medians."""
        from momentad.detectors.attribution import occlusion

        split = as_split(X, None, "input", *self.windowing(eval_=True))
        c, w = len(split.features), self.window_
        return occlusion(row_windows(split, w, rows), np.arange(c * w) // w, self.reference_, self._window_scores, c)

    def n_parameters(self) -> int:
        return int(self.train_.size)

    def extra(self) -> dict:
        return {"window": self.window_, "method": self.method_, "n_neighbors": self.k_}

    def _save_state(self, folder: Path) -> dict:
        weights = save_arrays(folder / "knn.safetensors", {"train": self.train_, "reference": self.reference_})
        return {"weights": weights, "window": self.window_, "method": self.method_, "k": self.k_}

    def _load_state(self, folder: Path, state: dict) -> None:
        from safetensors.numpy import load_file

        t = load_file(str(folder / state["weights"]))
        self.window_, self.method_, self.k_ = int(state["window"]), state["method"], int(state["k"])
        self.train_, self.reference_ = t["train"], t["reference"]
        self.model_ = NearestNeighbors(n_neighbors=self.k_).fit(self.train_)
