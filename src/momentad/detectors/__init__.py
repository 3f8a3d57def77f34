"""Detectors: every method (MOMENT, the baselines, the one-liners) behind one interface
(:mod:`momentad.detectors.base`); :mod:`momentad.detectors.registry` finds them by name.

A detector is fitted on the training split (and may use validation for early stopping) and
scores a split to one anomaly score per timestep, higher = more anomalous.
"""
