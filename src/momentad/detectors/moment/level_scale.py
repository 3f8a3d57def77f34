"""What MOMENT's instance normalisation hides (``moment.zero_shot.score: reconstruction+stats``).

MOMENT normalises every window by its own mean and standard deviation (RevIN) and de-normalises
the reconstruction, so a level shift or a change of scale that spans a window is reconstructed
almost perfectly and scores near zero, whatever the weights. This adds to the reconstruction
error of each (window, KPI) how far the window's level (mean) and scale (log standard deviation)
lie from those of the training windows: ``((mean - median) / MAD)^2 + ((log std - median) /
MAD)^2`` with median and 1.4826 x MAD over the training windows, per KPI.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-6


class Reference:
    """Per KPI, the median and robust spread of training windows' level and log-scale."""

    def __init__(self, level: np.ndarray, log_scale: np.ndarray):
        self.centre = np.stack([np.median(level, axis=0), np.median(log_scale, axis=0)])
        spread = np.stack([np.median(np.abs(level - self.centre[0]), axis=0),
                           np.median(np.abs(log_scale - self.centre[1]), axis=0)]) * 1.4826  # fmt: skip
        self.spread = np.maximum(spread, 1e-3)

    def deviation(self, level: np.ndarray, log_scale: np.ndarray) -> np.ndarray:
        """(windows, KPIs) squared robust z of level plus that of log-scale."""
        z_level = (level - self.centre[0]) / self.spread[0]
        z_scale = (log_scale - self.centre[1]) / self.spread[1]
        return z_level**2 + z_scale**2

    def state(self) -> dict[str, list]:
        return {"centre": self.centre.tolist(), "spread": self.spread.tolist()}

    @classmethod
    def from_state(cls, state: dict[str, list]) -> Reference:
        ref = cls.__new__(cls)
        ref.centre, ref.spread = np.asarray(state["centre"]), np.asarray(state["spread"])
        return ref


def moments_at(values: np.ndarray, starts: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Level and log-scale of the ``length``-step windows of ``values`` (rows, KPIs) starting at
    ``starts``: (windows, KPIs) each, from running sums (cheap at stride 1)."""
    v = np.asarray(values, dtype=np.float64)
    zero = np.zeros((1, v.shape[1]))
    s1 = np.concatenate([zero, np.cumsum(v, axis=0)])
    s2 = np.concatenate([zero, np.cumsum(v * v, axis=0)])
    starts = np.asarray(starts, dtype=np.int64)
    n = np.minimum(length, len(v) - starts)[:, None].astype(np.float64)
    stop = starts + n[:, 0].astype(np.int64)
    level = (s1[stop] - s1[starts]) / n
    var = np.maximum((s2[stop] - s2[starts]) / n - level**2, 0.0)
    return level, np.log(np.sqrt(var) + EPS)
