"""Random Forest (scikit-learn, supervised) on causal rolling statistics per KPI.

It predicts the per-timestep label. The seed study's Random Forest reached F1 = 1.0 on
validation through leakage; this one is fitted on train only, its features look only
backwards, and it reports the train-vs-validation gap so overfitting is visible.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score

from momentad.data import Split
from momentad.detectors.features import STATS, kpi_importance, rolling_features
from momentad.errors import InputError


class RandomForestDetector:
    """Supervised per-timestep classifier; score = P(anomaly)."""

    name = "random_forest"

    def __init__(self, seed: int = 0, windows: tuple[int, ...] = (10, 30), n_estimators: int = 100,
                 max_depth: int | None = 12, min_samples_leaf: int = 5, max_samples: float = 0.5):  # fmt: skip
        self.seed, self.windows, self.n_estimators = seed, list(windows), n_estimators
        self.max_depth, self.min_samples_leaf, self.max_samples = max_depth, min_samples_leaf, max_samples

    def _features(self, split: Split):
        return rolling_features(split.values, self.windows, STATS, names=split.features)

    def fit(self, train: Split, val: Split | None = None) -> RandomForestDetector:
        y = train.labels
        if y.sum() == 0:
            raise InputError("random_forest is supervised but the train split has no labelled anomalies; "
                             "drop it from baselines.methods or change data.split")  # fmt: skip
        x = self._features(train)
        self.feature_names_ = list(x.columns)
        self.model_ = RandomForestClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth, min_samples_leaf=self.min_samples_leaf,
            max_samples=self.max_samples, class_weight="balanced_subsample", random_state=self.seed, n_jobs=-1,
        ).fit(x.to_numpy(), y)  # fmt: skip
        # threaded predict_proba sums trees in a varying order (1e-16 differences): predict serially
        self.model_.n_jobs = 1
        self.kpi_importance_ = kpi_importance(self.feature_names_, self.model_.feature_importances_, train.features)
        self.gap_ = {"train_auc_pr": float(average_precision_score(y, self._proba(x.to_numpy())))}
        if val is not None and val.labels.sum() > 0:
            self.gap_["val_auc_pr"] = float(average_precision_score(val.labels, self.score(val)))
            self.gap_["train_minus_val_auc_pr"] = self.gap_["train_auc_pr"] - self.gap_["val_auc_pr"]
        return self

    def _proba(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(x)[:, 1].astype(np.float64)

    def score(self, split: Split) -> np.ndarray:
        return self._proba(self._features(split).to_numpy())
