"""Baseline name -> detector class; a new method is one module plus one line here."""

from __future__ import annotations

from momentad.detectors.isolation_forest import IsolationForestDetector
from momentad.detectors.lstm_ae import LSTMAutoencoder
from momentad.detectors.random_forest import RandomForestDetector
from momentad.detectors.sd_mae import SDMAEDetector
from momentad.detectors.tcn_ae import TCNAutoencoder
from momentad.detectors.transformer_ae import TransformerAutoencoder
from momentad.errors import InputError

BASELINES = {
    "isolation_forest": IsolationForestDetector,
    "random_forest": RandomForestDetector,
    "lstm_ae": LSTMAutoencoder,
    "tcn_ae": TCNAutoencoder,
    "transformer_ae": TransformerAutoencoder,
    "sd_mae": SDMAEDetector,
}


def make_detector(name: str, options: dict, seed: int, progress: bool = True):
    """Instantiate baseline ``name`` from its params section (``baselines.<name>``)."""
    if name not in BASELINES:
        raise InputError(f"params.yaml: baselines.methods has {name!r}; known: {', '.join(BASELINES)}")
    cls = BASELINES[name]
    kwargs = dict(options or {})
    if name not in ("isolation_forest", "random_forest"):
        kwargs["progress"] = progress
    try:
        return cls(seed=seed, **kwargs)
    except TypeError as e:
        raise InputError(f"params.yaml: baselines.{name} has an unknown option ({e}); see README 'Baselines'") from None
