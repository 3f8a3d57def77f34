"""The squared-difference one-liner: each KPI's squared change from the previous row, reduced
over KPIs (no training)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from momentad.detectors.base import register
from momentad.detectors.one_liner import OneLiner


@dataclass(frozen=True)
class SquaredDifferenceParams:
    reduce: Literal["mean", "max"]


@register
class SquaredDifference(OneLiner):
    name = "squared_difference"
    Params = SquaredDifferenceParams

    def per_kpi(self, values: np.ndarray) -> np.ndarray:
        return np.vstack([np.zeros((1, values.shape[1])), np.diff(values, axis=0) ** 2])
