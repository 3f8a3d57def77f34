"""The one interface every method implements: MOMENT, each baseline, each one-liner.

scikit-learn / PyOD style: ``fit`` returns self and ``decision_function`` gives one anomaly
score per timestep (higher = more anomalous). Both take the pipeline's :class:`Split` or, for
notebook users, a (timesteps, KPIs) array or DataFrame::

    from momentad.detectors.registry import make
    det = make("pca", window=64, n_components=0.9)
    det.fit(X_train)
    scores = det.decision_function(X_test)

A detector says what it can do through class attributes, which the runner, ``compare`` and
``momentad score`` read instead of its name: ``zero_shot`` (scores without training: it runs
at budget 0), ``trains`` (it fits on training windows: it runs at every budget),
``full_split`` (it also runs on the whole train split), ``uses_labels`` (it reads the labels
of its training rows) and ``kpi_evidence`` (it gives per-KPI evidence for root-cause ranking).
Where its weights come from is part of :meth:`Detector.describe` (:mod:`momentad.results`).

Artifacts are safe formats only: ``save(folder)`` writes JSON plus safetensors (torch) or
skops (scikit-learn); ``load(folder)`` reads them back.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from momentad.budgets import Budget, all_budgets
from momentad.config import WindowParams, as_dict, build
from momentad.data import Split
from momentad.errors import InputError
from momentad.io import write_json
from momentad.windows import window_index

ARTIFACT = "detector.json"
_CLASSES: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make ``cls`` a method under ``cls.name`` (momentad.detectors.registry
    finds every module of the package, so a new method is one file)."""
    if cls.name in _CLASSES and _CLASSES[cls.name] is not cls:
        raise RuntimeError(f"two detectors are named {cls.name!r}")
    _CLASSES[cls.name] = cls
    return cls


@dataclass(frozen=True)
class RunContext:
    """What the pipeline hands every detector besides its own options section."""

    seed: int = 0  # the model seed of this draw
    draw: int = 0
    window: WindowParams | None = None  # the pipeline's windows (`window` in params.yaml)
    mask_anomalies: bool = False  # budget.include_anomalous: train on windows with anomalies, masked
    state_dir: Path | None = None  # per-epoch checkpoints, for resuming an interrupted run
    progress: bool = False
    # the whole train split, whatever the budget: what "normal" looks like for statistics a
    # detector fits without training (MOMENT's level/scale reference at budget 0)
    reference: Split | None = None


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
    Params: ClassVar[type]  # the typed options: the params.yaml section named ``name``
    zero_shot: ClassVar[bool] = False
    trains: ClassVar[bool] = True
    full_split: ClassVar[bool] = True
    kpi_evidence: ClassVar[bool] = True
    stochastic: ClassVar[bool] = True  # False: the same rows give the same model (one draw on the full split)
    device_: Any = "cpu"  # where the model runs, once fitted

    def __init__(self, params: Any, ctx: RunContext = RunContext()):
        self.params, self.ctx = params, ctx
        self.seed, self.progress = ctx.seed, ctx.progress
        self.history_: list[dict[str, float]] = []
        self.features_: list[str] | None = None
        self._channels: tuple[Split, np.ndarray] | None = None  # per-KPI scores of the last split scored

    # -- what it can do -----------------------------------------------------------------------
    @classmethod
    def budgets(cls, sizes: list[int], options: Any = None) -> list[Budget]:
        """The budgets it runs at: 0 (no training) if ``zero_shot``, every size (and ``full``)
        if it ``trains``; ``options`` (its params section) may change that."""
        if not cls.trains:
            return all_budgets([], zero=cls.zero_shot, full=False)
        return all_budgets(sizes, zero=cls.zero_shot, full=cls.full_split)

    def uses_labels(self) -> bool:
        """Whether fitting reads the labels of its training rows (supervised, or labels as hints)."""
        return False

    @classmethod
    def capabilities(cls) -> dict[str, bool]:
        return {"zero_shot": cls.zero_shot, "trains": cls.trains, "full_split": cls.full_split,
                "kpi_evidence": cls.kpi_evidence, "stochastic": cls.stochastic}  # fmt: skip

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, ctx: RunContext, method: str | None = None) -> Detector:
        """Build from the validated params tree: the options section named like the method
        (``method``: a variant id such as ``moment-tsbad``, whose section it reads instead)."""
        return cls(cfg.options[method or cls.name], ctx)

    # -- the interface ------------------------------------------------------------------------
    def fit(self, X: Any = None, y: Any = None, X_val: Any = None) -> Detector:
        """Learn from training data (a Split, or an array / DataFrame with optional labels ``y``);
        ``X_val`` is used only for early stopping, never for thresholds. ``X=None`` readies a
        ``zero_shot`` detector without training."""
        val = None if X_val is None else as_split(X_val, None, "val", *self.windowing(eval_=True))
        if X is None:
            if not self.zero_shot:
                raise InputError(f"{self.name} needs training data: pass X")
            self._fit(None, val)
            return self
        train = as_split(X, y, "train", *self.windowing())
        self.features_ = list(train.features)
        self._fit(train, val)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """One float64 score per timestep of X; higher = more anomalous."""
        split = as_split(X, None, "input", *self.windowing(eval_=True))
        if self.features_ is not None and len(split.features) != len(self.features_):
            raise InputError(f"X has {len(split.features)} KPIs; the detector was fitted on {len(self.features_)}")
        return np.asarray(self._score(split), dtype=np.float64)

    score = decision_function  # the pipeline's name for it

    def windowing(self, eval_: bool = False) -> tuple[int, int]:
        """(length, stride) of the windows it reads: the pipeline's ``window`` for methods that
        use it, else one window of up to 512 rows (methods with their own windows ignore it)."""
        w = self.ctx.window
        if w is None:
            return (512, 512)
        return w.length, (w.eval_stride if eval_ else w.train_stride)

    def split_of(self, frame: pd.DataFrame, features: list[str], name: str = "input") -> Split:
        """A processed table as a Split windowed the way this detector scores (segments kept apart)."""
        return Split(name, frame, list(features), window_index(frame, *self.windowing(eval_=True)))

    def attribute(self, X: Any, rows: np.ndarray | None = None) -> np.ndarray:
        """Per-KPI evidence for root-cause ranking: (len(rows) or timesteps, KPIs), higher = that
        KPI looks more anomalous at that step. Methods with per-channel errors return them, kept
        from the last ``score`` of the same split so it costs nothing extra; the others override
        this (e.g. occlusion, :func:`momentad.detectors.attribution.occlusion`)."""
        split = as_split(X, None, "input", *self.windowing(eval_=True))
        kept = self._channels
        cs = kept[1] if kept is not None and kept[0] is split else self.channel_scores(split)
        return cs if rows is None else cs[rows]

    def channel_scores(self, split: Split) -> np.ndarray:
        """(timesteps, KPIs) per-KPI anomaly evidence (methods with per-channel errors)."""
        raise NotImplementedError(f"{self.name} overrides attribute() instead")

    def _keep_channels(self, split: Split, cs: np.ndarray) -> np.ndarray:
        """Remember the per-KPI scores of ``split`` for :meth:`attribute`; returns them."""
        self._channels = (split, cs)
        return cs

    def _fit(self, train: Split | None, val: Split | None) -> None:
        raise NotImplementedError

    def _score(self, split: Split) -> np.ndarray:
        raise NotImplementedError

    # -- what outputs record ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The ``model`` block of the details: weights origin and parameter counts. ``checkpoint``
        is None for methods trained from scratch (or not trained at all)."""
        n = self.n_parameters()
        return {"checkpoint": None, "origin": "scratch" if self.trains else "none",
                "source": "trained from scratch" if self.trains else "none", "parameters": n,
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
        params = as_dict(self.params) if dataclasses.is_dataclass(self.params) else self.params
        meta = {"method": self.name, "params": params, "seed": self.seed, "features": self.features_,
                "window": None if self.ctx.window is None else as_dict(self.ctx.window),
                "state": self._save_state(folder)}  # fmt: skip
        write_json(folder / ARTIFACT, meta)

    def _save_state(self, folder: Path) -> dict[str, Any]:
        return {}

    @classmethod
    def load(cls, folder: Path, meta: dict[str, Any]) -> Detector:
        params = build(cls.Params, meta["params"], f"{folder / ARTIFACT}: params")
        window = None if meta.get("window") is None else build(WindowParams, meta["window"], "window")
        det = cls(params, RunContext(seed=meta["seed"], window=window))
        det.features_ = meta["features"]
        det._load_state(folder, meta["state"])
        return det

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        pass


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """numpy arrays as one safetensors file (C order: safetensors writes the raw buffer)."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))
    return path.name


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

        from momentad.device import resolve_device

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
