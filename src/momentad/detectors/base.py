"""The interface every detector implements (scikit-learn style: fit returns self)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from momentad.data import Split


@runtime_checkable
class Detector(Protocol):
    """Fit on train windows, score a split to one score per timestep."""

    name: str

    def fit(self, train: Split, val: Split | None = None) -> Detector:
        """Learn from the training split; ``val`` only for early stopping, never thresholds."""
        ...

    def score(self, split: Split) -> np.ndarray:
        """float64 array of len(split): higher = more anomalous."""
        ...
