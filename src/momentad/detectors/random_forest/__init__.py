"""Random Forest (scikit-learn, supervised) on causal rolling statistics per KPI.

It predicts the per-timestep label. The seed study's Random Forest reached F1 = 1.0 on
validation through leakage; this one is fitted on train only, its features look only
backwards, and it reports the train-vs-validation gap so overfitting is visible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import average_precision_score

from momentad.config import rng
from momentad.data import Split
from momentad.detectors.base import Detector, as_split, register
from momentad.detectors.features import STATS, kpi_importance, split_features
from momentad.detectors.sklearn_io import load_estimator, save_estimator
from momentad.errors import NotRun


@dataclass(frozen=True)
class RandomForestParams:
    windows: list[int] = rng(ge=1)
    n_estimators: int = rng(ge=1)
    max_depth: int | None = rng(ge=1)
    min_samples_leaf: int = rng(ge=1)
    max_samples: float = rng(gt=0, le=1)


@register
class RandomForestDetector(Detector):
    """Supervised per-timestep classifier; score = P(anomaly)."""

    name = "random_forest"
    Params = RandomForestParams

    def uses_labels(self) -> bool:
        return True

    def _features(self, split: Split):
        return split_features(split, self.params.windows, STATS)

    def _fit(self, train: Split, val: Split | None) -> None:
        y = train.labels
        if y.sum() == 0:
            raise NotRun("supervised, and its training rows hold no labelled anomaly")
        x = self._features(train)
        p = self.params
        self.feature_names_ = list(x.columns)
        self.model_ = RandomForestClassifier(
            n_estimators=p.n_estimators, max_depth=p.max_depth, min_samples_leaf=p.min_samples_leaf,
            max_samples=p.max_samples, class_weight="balanced_subsample", random_state=self.seed, n_jobs=-1,
        ).fit(x.to_numpy(), y)  # fmt: skip
        # threaded predict_proba sums trees in a varying order (1e-16 differences): predict serially
        self.model_.n_jobs = 1
        self.kpi_importance_ = kpi_importance(self.feature_names_, self.model_.feature_importances_, train.features)
        self.reference_ = np.median(x.to_numpy(), axis=0)  # occlusion baseline for per-KPI attribution
        self.gap_ = {"train_auc_pr": float(average_precision_score(y, self._proba(x.to_numpy())))}
        if val is not None and val.labels.sum() > 0:
            self.gap_["val_auc_pr"] = float(average_precision_score(val.labels, self._score(val)))
            self.gap_["train_minus_val_auc_pr"] = self.gap_["train_auc_pr"] - self.gap_["val_auc_pr"]

    def _proba(self, x: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(x)[:, 1].astype(np.float64)

    def _score(self, split: Split) -> np.ndarray:
        return self._proba(self._features(split).to_numpy())

    def attribute(self, X, rows: np.ndarray | None = None) -> np.ndarray:
        """Occlusion per KPI (:mod:`momentad.detectors.attribution`) on ``rows``: the drop in
        P(anomaly) when a KPI's trailing statistics are set to their training medians."""
        from momentad.detectors.attribution import occlusion

        split = as_split(X, None, "input", *self.windowing(eval_=True))
        feats = self._features(split)
        x = feats.to_numpy() if rows is None else feats.to_numpy()[rows]
        kpi = {k: i for i, k in enumerate(split.features)}
        groups = np.array([kpi[name.rsplit("|", 1)[0]] for name in feats.columns])
        return occlusion(x, groups, self.reference_, self._proba, len(split.features))

    def n_parameters(self) -> int:
        """Tree nodes (not weights): the size of the forest."""
        return int(sum(e.tree_.node_count for e in self.model_.estimators_))

    def extra(self) -> dict:
        return {"train_vs_val": {k: round(v, 6) for k, v in self.gap_.items()}}

    def _save_state(self, folder: Path) -> dict:
        return {"model": save_estimator(self.model_, folder / "model.skops"), "reference": self.reference_.tolist()}

    def _load_state(self, folder: Path, state: dict) -> None:
        self.model_ = load_estimator(folder / state["model"])
        self.reference_ = np.asarray(state.get("reference", []), dtype=np.float64)
