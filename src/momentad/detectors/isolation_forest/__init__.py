"""Isolation Forest (scikit-learn) on causal window features.

``features: raw`` gives each timestep the trailing subsequence of ``window`` values of every
KPI, as TSB-AD's IForest does with sliding windows; ``stats`` gives trailing mean, std, min and
max instead (smaller for very wide data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from sklearn.ensemble import IsolationForest

from momentad.config import rng
from momentad.data import Split
from momentad.detectors.base import Detector, as_split, register
from momentad.detectors.features import rolling_features
from momentad.detectors.sklearn_io import load_estimator, save_estimator
from momentad.windows import per_segment


@dataclass(frozen=True)
class IsolationForestParams:
    window: int = rng(ge=1, le=4096)
    n_estimators: int = rng(ge=1)
    max_samples: int = rng(ge=2)
    features: Literal["raw", "stats"]


@register
class IsolationForestDetector(Detector):
    """Unsupervised: fit on train-window features, score = -score_samples (higher = odder)."""

    name = "isolation_forest"
    Params = IsolationForestParams

    def _features(self, split: Split) -> np.ndarray:
        return per_segment(split.values, split.segments, self._segment_features)

    def _segment_features(self, values: np.ndarray) -> np.ndarray:
        w = self.params.window
        if self.params.features == "stats":
            return rolling_features(values, [w], ("mean", "std", "min", "max")).to_numpy()
        # trailing subsequences, edge-padded at the start so row t sees rows <= t only
        padded = np.concatenate([np.repeat(values[:1], w - 1, axis=0), values])
        idx = np.arange(len(values))[:, None] + np.arange(w)[None, :]
        return padded[idx].reshape(len(values), -1)

    def _fit(self, train: Split, val: Split | None) -> None:
        x = self._features(train)
        p = self.params
        self.model_ = IsolationForest(n_estimators=p.n_estimators, max_samples=min(p.max_samples, len(x)),
                                      random_state=self.seed, n_jobs=-1).fit(x)  # fmt: skip
        self.reference_ = np.median(x, axis=0)  # occlusion baseline for per-KPI attribution

    def _score(self, split: Split) -> np.ndarray:
        return -self.model_.score_samples(self._features(split)).astype(np.float64)

    def _groups(self, channels: int) -> np.ndarray:
        """The KPI of each feature column: raw = (window, KPI) flattened; stats = stat-major."""
        n_feat = self.params.window * channels if self.params.features == "raw" else 4 * channels
        return np.arange(n_feat) % channels

    def attribute(self, X, rows: np.ndarray | None = None) -> np.ndarray:
        """Occlusion per KPI (:mod:`momentad.detectors.attribution`) on ``rows``."""
        from momentad.detectors.attribution import occlusion

        split = as_split(X, None, "input", *self.windowing(eval_=True))
        x = self._features(split)
        x = x if rows is None else x[rows]
        c = len(split.features)
        return occlusion(x, self._groups(c), self.reference_, lambda v: -self.model_.score_samples(v), c)

    def n_parameters(self) -> int:
        """Tree nodes (not weights): the size of the forest."""
        return int(sum(e.tree_.node_count for e in self.model_.estimators_))

    def _save_state(self, folder: Path) -> dict:
        return {"model": save_estimator(self.model_, folder / "model.skops"), "reference": self.reference_.tolist()}

    def _load_state(self, folder: Path, state: dict) -> None:
        self.model_ = load_estimator(folder / state["model"])
        self.reference_ = np.asarray(state.get("reference", []), dtype=np.float64)
