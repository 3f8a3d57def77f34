"""The one interface every method implements: MOMENT zero-shot, MOMENT + LoRA, each baseline.

scikit-learn / PyOD style: ``fit`` returns self and ``decision_function`` gives one anomaly
score per timestep (higher = more anomalous). Both take the pipeline's :class:`Split` or, for
notebook users, a (timesteps, KPIs) array or DataFrame::

    from momentad.detectors import make
    det = make("isolation_forest", window=16, n_estimators=200, max_samples=2048, features="raw")
    det.fit(X_train)
    scores = det.decision_function(X_test)

Artifacts are safe formats only: ``save(folder)`` writes JSON plus safetensors (torch) or
skops (scikit-learn); ``load(folder)`` reads them back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from momentad.config import as_dict, build
from momentad.data import Split
from momentad.errors import InputError
from momentad.io import write_json
from momentad.windows import window_index

ARTIFACT = "detector.json"


def as_split(x: Any, y: Any = None, name: str = "input", length: int = 512, stride: int = 512) -> Split:
    """A Split from a Split, a (timesteps, KPIs) array or a DataFrame (optionally with labels)."""
    if isinstance(x, Split):
        return x
    if isinstance(x, pd.DataFrame):
        features = [str(c) for c in x.columns]
        values = x.to_numpy(dtype=np.float32)
    else:
        values = np.asarray(x, dtype=np.float32)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2:
            raise InputError(f"X must be (timesteps, KPIs); got shape {values.shape}")
        features = [f"kpi_{i}" for i in range(values.shape[1])]
    if not np.isfinite(values).all():
        raise InputError("X holds NaN or infinite values; fill or drop them first")
    labels = np.zeros(len(values), dtype=np.int8) if y is None else np.asarray(y, dtype=np.int8)
    frame = pd.DataFrame(values, columns=features)
    frame["timestamp"] = np.arange(len(values))
    frame["label"] = labels
    frame["fault_type"] = pd.Series([None] * len(values), dtype="string")
    length = min(length, len(values))
    index = window_index(frame, length, min(stride, length)) if len(values) else pd.DataFrame()
    return Split(name, frame, features, index)


class Detector:
    """Base class. Subclasses set ``name`` and ``Params`` and implement ``_fit`` / ``_score``."""

    name: ClassVar[str]
    Params: ClassVar[type]  # the typed options (``baselines.<name>`` for baselines)
    kind: ClassVar[str] = "baseline"  # baseline | foundation
    device_: Any = "cpu"  # where the model runs, once fitted
    # budget.include_anomalous: train on windows holding labelled anomalies, those steps masked
    # out of a reconstruction loss (the autoencoders; MOMENT LoRA reads the budget itself)
    mask_anomalies: bool = False

    def __init__(self, params: Any, seed: int = 0, progress: bool = False):
        self.params, self.seed, self.progress = params, seed, progress
        self.history_: list[dict[str, float]] = []
        self.features_: list[str] | None = None

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg, progress: bool = False, **run: Any) -> Detector:
        """Build from the validated params tree (``run`` carries draw / state_dir where used)."""
        from momentad.budgets import draw_seed

        det = cls(cfg.baselines.options[cls.name], draw_seed(cfg.seed, run.get("draw", 0)), progress)
        det.mask_anomalies = cfg.budget.include_anomalous
        return det

    # -- the interface ------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, X_val: Any = None) -> Detector:
        """Learn from training data (a Split, or an array / DataFrame with optional labels ``y``);
        ``X_val`` is used only for early stopping, never for thresholds."""
        train = as_split(X, y, "train", *self._window())
        val = None if X_val is None else as_split(X_val, None, "val", *self._window(eval_=True))
        self.features_ = list(train.features)
        self._fit(train, val)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """One float64 score per timestep of X; higher = more anomalous."""
        split = as_split(X, None, "input", *self._window(eval_=True))
        if self.features_ is not None and len(split.features) != len(self.features_):
            raise InputError(f"X has {len(split.features)} KPIs; the detector was fitted on {len(self.features_)}")
        return np.asarray(self._score(split), dtype=np.float64)

    score = decision_function  # the pipeline's name for it

    def attribute(self, X: Any, rows: np.ndarray | None = None) -> np.ndarray:
        """Per-KPI evidence for root-cause ranking: (len(rows) or timesteps, KPIs), higher = that
        KPI looks more anomalous at that step. Reconstruction methods return their per-channel
        error, kept from the last ``score`` of the same split so it costs nothing extra; the
        forests override this with occlusion (:func:`momentad.detectors.attribution.occlusion`)."""
        split = as_split(X, None, "input", *self._window(eval_=True))
        last = getattr(self, "_last_channels", None)
        cs = last[1] if last is not None and last[0] is split else self.channel_scores(split)
        return cs if rows is None else cs[rows]

    def channel_scores(self, split: Split) -> np.ndarray:
        """(timesteps, KPIs) per-KPI anomaly evidence (methods with per-channel errors)."""
        raise NotImplementedError(f"{self.name} has no per-KPI scores")

    def _keep_channels(self, split: Split, cs: np.ndarray) -> np.ndarray:
        """Remember the per-KPI scores of ``split`` for :meth:`attribute`; returns them."""
        self._last_channels = (split, cs)
        return cs

    def _window(self, eval_: bool = False) -> tuple[int, int]:
        return (512, 512)

    def _fit(self, train: Split, val: Split | None) -> None:
        raise NotImplementedError

    def _score(self, split: Split) -> np.ndarray:
        raise NotImplementedError

    # -- what outputs record ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The ``model`` block of the metrics: weights origin and parameter counts."""
        n = self.n_parameters()
        return {"checkpoint": None, "pretrained": False, "source": "trained from scratch", "parameters": n,
                "trainable_parameters": n}  # fmt: skip

    def n_parameters(self) -> int | None:
        return None

    def extra(self) -> dict[str, Any]:
        """Method-specific facts for the detail JSON (e.g. a train-vs-val gap)."""
        return {}

    # -- artifacts ----------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write ``detector.json`` (+ the method's weights) into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"method": self.name, "params": as_dict(self.params) if self.params is not None else None,
                "seed": self.seed, "features": self.features_, "state": self._save_state(folder)}  # fmt: skip
        write_json(folder / ARTIFACT, meta)

    def _save_state(self, folder: Path) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any], **kwargs: Any) -> Detector:
        params = build(cls.Params, meta["params"], f"{folder / ARTIFACT}: params")
        det = cls(params, meta["seed"], progress=False)
        det.features_ = meta["features"]
        det._load_state(folder, meta["state"])
        return det

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        raise NotImplementedError


def read_artifact(folder: Path) -> dict[str, Any]:
    """``detector.json`` of a saved detector, or a one-line error naming what to run."""
    path = folder / ARTIFACT
    if not path.is_file():
        raise InputError(f"{path}: not found; train the method first (`dvc repro`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{path}: not valid JSON; re-run the method's stage (`dvc repro -f`)") from None


class TorchDetector(Detector):
    """A detector whose whole ``model_`` (a torch module built by ``build(channels)``) is trained
    by :class:`momentad.training.TrainLoop` and saved as safetensors."""

    device = "auto"

    def build(self, channels: int):
        raise NotImplementedError

    # hooks of momentad.training.TrainLoop
    def trainable_parameters(self) -> list:
        return list(self.model_.parameters())

    def train_mode(self, on: bool) -> None:
        self.model_.train(on)

    def on_epoch_end(self, epoch: int) -> None:
        pass

    def trainable_state(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.model_.state_dict().items()}

    def load_trainable_state(self, state: dict) -> None:
        self.model_.load_state_dict(state)

    def n_parameters(self) -> int:
        return int(sum(q.numel() for q in self.model_.parameters()))

    def extra(self) -> dict[str, Any]:
        return {"device": str(self.device_)}

    def _save_state(self, folder: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.trainable_state().items()}, str(folder / "model.safetensors"))
        return {"weights": "model.safetensors", "channels": self.channels_}

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        from safetensors.torch import load_file

        from momentad.models.device import resolve_device

        self.device_ = resolve_device(self.device)
        self.channels_ = int(state["channels"])
        self.model_ = self.build(self.channels_).to(self.device_)
        try:
            self.load_trainable_state(load_file(str(folder / state["weights"])))
        except Exception as e:  # truncated file, wrong shapes
            raise InputError(
                f"{folder / state['weights']}: unreadable ({type(e).__name__}); re-run the stage"
            ) from None
        self.model_.eval()
