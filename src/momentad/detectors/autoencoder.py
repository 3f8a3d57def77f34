"""Shared machinery of the windowed PyTorch autoencoders (LSTM, TCN, Transformer).

An autoencoder reconstructs multivariate windows of ``window`` steps. Training windows
(``train_stride``) that hold labelled anomalies are left out, so the model learns normal
behaviour; validation loss drives early stopping. The score of a timestep is its weighted
reconstruction error, averaged over the overlapping evaluation windows (``eval_stride``) and
over KPIs with the loss weights:

- ``mse``: every KPI weighs 1;
- ``feature_scaled``: weights inversely proportional to each KPI's reconstruction difficulty
  (its mean error on train after a warm-up epoch), so easy KPIs are not drowned by noisy ones;
- ``rf_weighted``: weights from a Random Forest's feature importances, fitted on the train
  labels only and summed per KPI, so KPIs that carry faults count more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier

from momentad.config import rng
from momentad.data import Split
from momentad.detectors.base import TorchDetector
from momentad.detectors.features import STATS, kpi_importance, split_features
from momentad.device import resolve_device
from momentad.errors import NotRun
from momentad.training import LoopConfig, TrainLoop
from momentad.windows import padded_windows


@dataclass(frozen=True)
class AutoencoderParams:
    """Options every windowed autoencoder shares (the ``<name>`` section of params.yaml)."""

    window: int = rng(ge=2, le=4096)
    train_stride: int = rng(ge=1)
    eval_stride: int = rng(ge=1)
    hidden: int = rng(ge=1)
    epochs: int = rng(ge=1, le=1000)
    batch_size: int = rng(ge=1)
    lr: float = rng(gt=0)
    patience: int = rng(ge=1)
    loss: Literal["mse", "feature_scaled", "rf_weighted"]


def feature_scaled_weights(channel_error: np.ndarray) -> np.ndarray:
    """1 / difficulty, normalised to mean 1."""
    w = 1.0 / np.maximum(channel_error, 1e-8)
    return w / w.mean()


def rf_weights(importance: np.ndarray, floor: float = 0.05) -> np.ndarray:
    """Importances normalised to mean 1, with a floor so no KPI is ignored entirely."""
    w = importance / importance.mean() if importance.sum() > 0 else np.ones_like(importance)
    w = np.maximum(w, floor)
    return w / w.mean()


class AutoencoderDetector(TorchDetector):
    """Base class: subclasses define ``build(channels) -> nn.Module`` mapping (b, L, C) -> (b, L, C)."""

    RF_TREES = 50  # the rf_weighted loss's forest: a weighting aid, not a tuned model

    def uses_labels(self) -> bool:
        return self.params.loss == "rf_weighted"

    # -- data ---------------------------------------------------------------------------------
    def _windows(self, split: Split, stride: int, train: bool) -> tuple[np.ndarray, np.ndarray]:
        """Windows inside the segments: values (windows, L, C) and the loss mask (windows, L), 1 on
        real rows not labelled anomalous. Training keeps full windows only, and of those the
        anomaly-free ones unless ``mask_anomalies`` (then their anomalous steps get weight 0)."""
        w = self.params.window
        idx, real = padded_windows(split.segments, w, stride)
        normal = real & (split.labels[idx] == 0)
        if train:
            keep = real.all(axis=1) & (normal.all(axis=1) | self.ctx.mask_anomalies)
            idx, normal = idx[keep], normal[keep]
            if len(idx) == 0:
                what = "full" if self.ctx.mask_anomalies else "anomaly-free"
                raise NotRun(f"its training rows hold no {what} window of {self.name}.window={w} rows")
        return split.values[idx], normal.astype(np.float32)

    def _loss_weights(self, train: Split, channels: int) -> np.ndarray:
        if self.params.loss == "rf_weighted":
            if train.labels.sum() == 0:
                raise NotRun(f"{self.name}.loss=rf_weighted needs labelled anomalies; its training rows "
                             "hold none")  # fmt: skip
            feats = split_features(train, [10, 30], STATS)
            rf = RandomForestClassifier(n_estimators=self.RF_TREES, max_depth=10, class_weight="balanced_subsample",
                                        random_state=self.seed, n_jobs=-1, max_samples=0.5)  # fmt: skip
            rf.fit(feats.to_numpy(), train.labels)
            return rf_weights(kpi_importance(list(feats.columns), rf.feature_importances_, train.features))
        return np.ones(channels)

    # -- training (hooks of momentad.training.TrainLoop) --------------------------------------
    def _fit(self, train: Split, val: Split | None) -> None:
        p = self.params
        torch.manual_seed(self.seed)
        self.device_ = resolve_device(self.device)
        self._x, self._m = self._windows(train, p.train_stride, train=True)
        if val is not None:
            self._vx, vmask = self._windows(val, p.eval_stride, train=False)
        else:
            self._vx, vmask = self._x[:64], self._m[:64]
        # only masked training needs the weighted sum; mean keeps anomaly-free runs bit-identical
        self._masked = bool((self._m < 1).any())
        self.channels_ = self._x.shape[2]
        self.model_ = self.build(self.channels_).to(self.device_)
        self.weights_ = self._loss_weights(train, self.channels_)
        self._vmask = torch.tensor(vmask, dtype=torch.float32)
        loop = TrainLoop(LoopConfig(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, patience=p.patience,
                                    min_delta=1e-6), self.device_, "fp32", self.seed, progress=self.progress,
                         desc=self.name)  # fmt: skip
        self.history_ = loop.fit(self, len(self._x))["history"]
        del self._x, self._m, self._vx, self._vmask

    def batch_loss(self, idx: np.ndarray, gen: torch.Generator, epoch: int) -> torch.Tensor:
        xb = torch.from_numpy(self._x[idx]).to(self.device_)
        w = torch.tensor(self.weights_, dtype=torch.float32, device=self.device_)
        err = ((self.model_(xb) - xb) ** 2) * w
        if not self._masked:
            return err.mean()
        m = torch.from_numpy(self._m[idx]).to(self.device_)[:, :, None]
        return (err * m).sum() / (m.sum() * err.shape[2]).clamp(min=1)

    def on_epoch_end(self, epoch: int) -> None:
        if epoch == 0 and self.params.loss == "feature_scaled":
            # difficulty = each KPI's mean reconstruction error after the warm-up epoch
            self.weights_ = feature_scaled_weights(self._channel_error(self._x).mean(axis=(0, 1)))

    def validation_loss(self) -> float:
        verr = torch.from_numpy(self._channel_error(self._vx)) * torch.tensor(self.weights_, dtype=torch.float32)
        return float((verr.mean(dim=2) * self._vmask).sum() / self._vmask.sum().clamp(min=1))

    # -- scoring ------------------------------------------------------------------------------
    @torch.no_grad()
    def _channel_error(self, x: np.ndarray) -> np.ndarray:
        self.model_.eval()
        out = np.empty_like(x)
        for a in range(0, len(x), 256):
            xb = torch.from_numpy(x[a : a + 256]).to(self.device_)
            out[a : a + 256] = ((self.model_(xb) - xb) ** 2).cpu().numpy()
        return out

    def channel_scores(self, split: Split) -> np.ndarray:
        """(timesteps, KPIs) weighted reconstruction error, averaged over overlapping windows
        (padding rows of a short segment's window left out)."""
        idx, real = padded_windows(split.segments, self.params.window, self.params.eval_stride)
        err = self._channel_error(split.values[idx]) * self.weights_  # (windows, L, C)
        acc = np.zeros((len(split), err.shape[2]))
        cnt = np.zeros(len(split))
        np.add.at(acc, idx[real], err[real])
        np.add.at(cnt, idx[real], 1.0)
        return acc / cnt[:, None]

    def _score(self, split: Split) -> np.ndarray:
        return self._keep_channels(split, self.channel_scores(split)).mean(axis=1)

    # -- what outputs record ------------------------------------------------------------------
    def extra(self) -> dict:
        return {"loss_weights": {"strategy": self.params.loss, "min": round(float(self.weights_.min()), 4),
                                 "max": round(float(self.weights_.max()), 4)}, "device": str(self.device_)}  # fmt: skip

    def _save_state(self, folder: Path) -> dict:
        return {**super()._save_state(folder), "loss_weights": self.weights_.tolist()}

    def _load_state(self, folder: Path, state: dict) -> None:
        self.weights_ = np.asarray(state["loss_weights"], dtype=np.float64)
        super()._load_state(folder, state)
