"""PCA on sliding subsequences, as TSB-AD's PCA / Sub-PCA (adapted there from PyOD).

Each window of ``window`` rows (all KPIs, channel-major) is standardised with statistics of the
training windows and scored by its summed Euclidean distance to the principal axes fitted on the
training windows, each divided by its explained-variance ratio (PyOD's weighted PCA score). The
score goes to the window's centre row. ``window: auto`` follows TSB-AD: the dominant period of a
univariate series (find_length_rank, rank 1), 100 rows for data with several KPIs (at most 2,048
values per window); ``n_components: auto`` keeps every component for a univariate series and
the components explaining 25% of the variance otherwise (TSB-AD's tuned PCA settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.decomposition import PCA

from momentad.config import rng
from momentad.data import Split
from momentad.detectors.base import Detector, as_split, register, save_arrays
from momentad.detectors.subsequence import auto_window, row_windows, scored_windows, subsequences
from momentad.errors import NotRun


@dataclass(frozen=True)
class PCAParams:
    window: int | Literal["auto"] = rng(ge=1, le=4096)
    # share of variance to keep (0-1), a number of components, null for all, or auto (TSB-AD's)
    n_components: float | int | Literal["auto"] | None = rng(gt=0)


@register
class PCADetector(Detector):
    name = "pca"
    Params = PCAParams
    stochastic = False  # the same rows give the same model: one draw on the whole split

    def _fit(self, train: Split, val: Split | None) -> None:
        p = self.params
        self.window_ = auto_window(train, 1, 100) if p.window == "auto" else int(p.window)
        x = self._train_windows(train)
        self.mean_ = x.mean(axis=0)
        std = x.std(axis=0)
        self.std_ = np.where(std > 0, std, 1.0)  # sklearn's StandardScaler keeps constant columns at 0
        z = (x - self.mean_) / self.std_
        self.keep_ = np.any(z != 0, axis=0)  # PyOD's zero pruning
        if not self.keep_.any():
            raise NotRun("cannot model: every training window is constant (nothing varies for PCA to project)")
        n = p.n_components
        if n == "auto":
            n = None if train.values.shape[1] == 1 else 0.25
        if isinstance(n, float) and n >= 1:
            n = int(n)
        if isinstance(n, int):
            n = min(n, *z[:, self.keep_].shape)
        self.model_ = PCA(n_components=n, random_state=0).fit(z[:, self.keep_])
        # a component with no variance (mostly-zero counts) would divide the score by 0: it carries
        # nothing, so it is dropped (TSB-AD's PCA would give NaN scores there)
        ratio = self.model_.explained_variance_ratio_
        live = ratio > 1e-12 * max(float(ratio.max()), 1e-300)
        if not live.all():
            self.model_.components_, self.model_.explained_variance_ratio_ = self.model_.components_[live], ratio[live]
            self.model_.n_components_ = int(live.sum())
        self.reference_ = np.median(x, axis=0)  # occlusion baseline for per-KPI attribution

    def _train_windows(self, train: Split) -> np.ndarray:
        w = self.window_
        parts = [subsequences(train.values[a:b], w) for a, b in train.segments if b - a >= w]
        if not parts:
            raise NotRun(f"no stretch of its training rows without a time gap holds pca.window={w} rows")
        return np.concatenate(parts)

    def _window_scores(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean_) / self.std_)[:, self.keep_]
        return np.sum(cdist(z, self.model_.components_) / self.model_.explained_variance_ratio_, axis=1)

    def _score(self, split: Split) -> np.ndarray:
        out = np.empty(len(split))
        for a, b in split.segments:
            out[a:b] = scored_windows(split.values[a:b], self.window_, self._window_scores)
        return out

    def attribute(self, X, rows: np.ndarray | None = None) -> np.ndarray:
        """Occlusion per KPI: the drop in a row's window score when that KPI's values are set to
        their training medians (the window whose score the row carries)."""
        from momentad.detectors.attribution import occlusion

        split = as_split(X, None, "input", *self.windowing(eval_=True))
        c, w = len(split.features), self.window_
        return occlusion(row_windows(split, w, rows), np.arange(c * w) // w, self.reference_, self._window_scores, c)

    def n_parameters(self) -> int:
        return int(self.model_.components_.size)

    def extra(self) -> dict:
        return {"window": self.window_, "components": int(self.model_.n_components_)}

    def _save_state(self, folder: Path) -> dict:
        weights = save_arrays(folder / "pca.safetensors", {
            "mean": self.mean_, "std": self.std_, "keep": self.keep_.astype(np.uint8),
            "components": self.model_.components_, "ratio": self.model_.explained_variance_ratio_,
            "reference": self.reference_})  # fmt: skip
        return {"weights": weights, "window": self.window_}

    def _load_state(self, folder: Path, state: dict) -> None:
        from safetensors.numpy import load_file

        t = load_file(str(folder / state["weights"]))
        self.window_ = int(state["window"])
        self.mean_, self.std_, self.keep_ = t["mean"], t["std"], t["keep"].astype(bool)
        self.reference_ = t["reference"]
        self.model_ = PCA(n_components=len(t["components"]))
        self.model_.components_, self.model_.explained_variance_ratio_ = t["components"], t["ratio"]
        self.model_.n_components_ = len(t["components"])
