"""Isolation Forest (scikit-learn) on causal window features.

``features: raw`` (default) gives each timestep the trailing subsequence of ``window`` values
of every KPI, as TSB-AD's IForest does with sliding windows; ``stats`` gives trailing mean,
std, min and max instead (smaller for very wide data)."""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest

from momentad.data import Split
from momentad.detectors.features import rolling_features
from momentad.errors import InputError


class IsolationForestDetector:
    """Unsupervised: fit on train-window features, score = -score_samples (higher = odder)."""

    name = "isolation_forest"

    def __init__(self, seed: int = 0, window: int = 16, n_estimators: int = 200, max_samples: int | str = 2048,
                 features: str = "raw"):  # fmt: skip
        if features not in ("raw", "stats"):
            raise InputError(f"params.yaml: baselines.isolation_forest.features={features!r}; use raw or stats")
        self.seed, self.window, self.n_estimators = seed, window, n_estimators
        self.max_samples, self.features = max_samples, features

    def _features(self, split: Split) -> np.ndarray:
        values = split.values
        if self.features == "stats":
            return rolling_features(values, [self.window], ("mean", "std", "min", "max")).to_numpy()
        # trailing subsequences, edge-padded at the start so row t sees rows <= t only
        padded = np.concatenate([np.repeat(values[:1], self.window - 1, axis=0), values])
        idx = np.arange(len(values))[:, None] + np.arange(self.window)[None, :]
        return padded[idx].reshape(len(values), -1)

    def fit(self, train: Split, val: Split | None = None) -> IsolationForestDetector:
        x = self._features(train)
        self.model_ = IsolationForest(n_estimators=self.n_estimators, max_samples=min(self.max_samples, len(x))
                                      if isinstance(self.max_samples, int) else self.max_samples,
                                      random_state=self.seed, n_jobs=-1).fit(x)  # fmt: skip
        return self

    def score(self, split: Split) -> np.ndarray:
        return -self.model_.score_samples(self._features(split)).astype(np.float64)
