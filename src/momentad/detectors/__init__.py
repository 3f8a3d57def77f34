"""Detectors: every method (MOMENT and the baselines) behind one interface.

A detector is fitted on the training split (and may use validation for early stopping) and
scores a split to one anomaly score per timestep, higher = more anomalous.
"""

from momentad.detectors.base import Detector, as_split
from momentad.detectors.registry import detector_class, load_detector, make, register

__all__ = ["Detector", "as_split", "detector_class", "load_detector", "make", "register"]
