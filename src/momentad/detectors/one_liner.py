"""What the one-liners share (``moving_variance``, ``squared_difference``; "When Foundation
Models are One-Liners", ICLR 2026): per-KPI statistics of the scaled series that need no
training, causal (row t sees rows <= t), computed on each segment alone; ``reduce`` (mean | max)
turns the per-KPI values (the per-KPI evidence for root-cause ranking) into one score per row.
"""

from __future__ import annotations

import numpy as np

from momentad.data import Split
from momentad.detectors.base import Detector
from momentad.windows import per_segment


class OneLiner(Detector):
    """No training: every score comes from the scored rows alone."""

    zero_shot = True
    trains = False
    stochastic = False

    def _fit(self, train: Split | None, val: Split | None) -> None:
        pass

    def per_kpi(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def channel_scores(self, split: Split) -> np.ndarray:
        return per_segment(split.values.astype(np.float64), split.segments, self.per_kpi)

    def _score(self, split: Split) -> np.ndarray:
        cs = self._keep_channels(split, self.channel_scores(split))
        return cs.max(axis=1) if self.params.reduce == "max" else cs.mean(axis=1)
