"""The moving-window variance one-liner: the variance of each KPI over the trailing ``window``
rows, reduced over KPIs (no training)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from momentad.config import rng
from momentad.detectors.base import register
from momentad.detectors.one_liner import OneLiner


@dataclass(frozen=True)
class MovingVarianceParams:
    window: int = rng(ge=2, le=4096)
    reduce: Literal["mean", "max"]


@register
class MovingVariance(OneLiner):
    name = "moving_variance"
    Params = MovingVarianceParams

    def per_kpi(self, values: np.ndarray) -> np.ndarray:
        return pd.DataFrame(values).rolling(self.params.window, min_periods=1).var(ddof=0).to_numpy()
