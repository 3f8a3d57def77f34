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

import logging

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier
from torch import nn
from tqdm.auto import tqdm

from momentad.data import Split
from momentad.detectors.early_stopping import EarlyStopping
from momentad.detectors.features import STATS, kpi_importance, rolling_features
from momentad.errors import InputError
from momentad.models.device import resolve_device
from momentad.windows import starts

log = logging.getLogger(__name__)
LOSSES = ("mse", "feature_scaled", "rf_weighted")


def feature_scaled_weights(channel_error: np.ndarray) -> np.ndarray:
    """1 / difficulty, normalised to mean 1."""
    w = 1.0 / np.maximum(channel_error, 1e-8)
    return w / w.mean()


def rf_weights(importance: np.ndarray, floor: float = 0.05) -> np.ndarray:
    """Importances normalised to mean 1, with a floor so no KPI is ignored entirely."""
    w = importance / importance.mean() if importance.sum() > 0 else np.ones_like(importance)
    w = np.maximum(w, floor)
    return w / w.mean()


def make_windows(values: np.ndarray, length: int, stride: int) -> np.ndarray:
    """Window starts covering the series (last window aligned to the end)."""
    if len(values) < length:
        raise InputError(f"a split has {len(values)} rows, fewer than the baseline window {length}; lower it")
    return starts(len(values), length, stride)


class AutoencoderDetector:
    """Base class: subclasses define ``build(channels) -> nn.Module`` mapping (b, L, C) -> (b, L, C)."""

    name = "autoencoder"

    def __init__(self, seed: int = 0, window: int = 64, train_stride: int = 8, eval_stride: int = 32,
                 hidden: int = 64, epochs: int = 10, batch_size: int = 64, lr: float = 1e-3,
                 patience: int = 3, loss: str = "mse", rf_trees: int = 50, device: str = "auto",
                 progress: bool = True, **arch):  # fmt: skip
        if loss not in LOSSES:
            raise InputError(f"params.yaml: baselines.{self.name}.loss={loss!r}; use one of {', '.join(LOSSES)}")
        self.seed, self.window, self.train_stride, self.eval_stride = seed, window, train_stride, eval_stride
        self.hidden, self.epochs, self.batch_size, self.lr, self.patience = hidden, epochs, batch_size, lr, patience
        self.loss, self.rf_trees, self.device, self.progress, self.arch = loss, rf_trees, device, progress, arch

    def build(self, channels: int) -> nn.Module:
        raise NotImplementedError

    # -- data ---------------------------------------------------------------------------------
    def _windows(self, split: Split, stride: int, clean: bool) -> tuple[np.ndarray, np.ndarray]:
        st = make_windows(split.values, self.window, stride)
        if clean:
            lab = np.concatenate([[0], np.cumsum(split.labels)])
            st = st[lab[st + self.window] - lab[st] == 0]
            if len(st) == 0:
                raise InputError(f"{self.name}: every training window holds an anomaly; lower the window")
        idx = st[:, None] + np.arange(self.window)[None, :]
        return split.values[idx], split.labels[idx]

    def _weights(self, train: Split, x: np.ndarray) -> np.ndarray:
        c = x.shape[2]
        if self.loss == "rf_weighted":
            if train.labels.sum() == 0:
                raise InputError(f"baselines.{self.name}.loss=rf_weighted needs labelled anomalies in train")
            feats = rolling_features(train.values, [10, 30], STATS, names=train.features)
            rf = RandomForestClassifier(n_estimators=self.rf_trees, max_depth=10, class_weight="balanced_subsample",
                                        random_state=self.seed, n_jobs=-1, max_samples=0.5)  # fmt: skip
            rf.fit(feats.to_numpy(), train.labels)
            return rf_weights(kpi_importance(list(feats.columns), rf.feature_importances_, train.features))
        return np.ones(c)

    # -- training -----------------------------------------------------------------------------
    def fit(self, train: Split, val: Split | None = None) -> AutoencoderDetector:
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.device_ = resolve_device(self.device)
        x, _ = self._windows(train, self.train_stride, clean=True)
        vx, vy = self._windows(val, self.eval_stride, clean=False) if val is not None else (x[:64], None)
        self.model_ = self.build(x.shape[2]).to(self.device_)
        opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        self.weights_ = self._weights(train, x)
        w = torch.tensor(self.weights_, dtype=torch.float32, device=self.device_)
        vmask = torch.tensor(1.0 - (vy if vy is not None else np.zeros(vx.shape[:2])), dtype=torch.float32)
        stopper, self.history_ = EarlyStopping(self.patience), []
        for epoch in range(self.epochs):
            self.model_.train()
            order = rng.permutation(len(x))
            losses = []
            for a in tqdm(range(0, len(order), self.batch_size), desc=f"{self.name} epoch {epoch + 1}", leave=False,
                          disable=not self.progress, mininterval=2.0):  # fmt: skip
                xb = torch.from_numpy(x[order[a : a + self.batch_size]]).to(self.device_)
                err = (self.model_(xb) - xb) ** 2
                loss = (err * w).mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.model_.parameters(), 1.0)
                opt.step()
                losses.append(float(loss.detach()))
            if epoch == 0 and self.loss == "feature_scaled":
                # difficulty = each KPI's mean reconstruction error after the warm-up epoch
                self.weights_ = feature_scaled_weights(self._channel_error(x).mean(axis=(0, 1)))
                w = torch.tensor(self.weights_, dtype=torch.float32, device=self.device_)
            verr = torch.from_numpy(self._channel_error(vx)) * w.cpu()
            val_loss = float((verr.mean(dim=2) * vmask).sum() / vmask.sum().clamp(min=1))
            self.history_.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_loss})
            if stopper.step(val_loss, self.model_):
                break
        stopper.restore(self.model_)
        return self

    @torch.no_grad()
    def _channel_error(self, x: np.ndarray) -> np.ndarray:
        self.model_.eval()
        out = np.empty_like(x)
        for a in range(0, len(x), 256):
            xb = torch.from_numpy(x[a : a + 256]).to(self.device_)
            out[a : a + 256] = ((self.model_(xb) - xb) ** 2).cpu().numpy()
        return out

    def score(self, split: Split) -> np.ndarray:
        st = make_windows(split.values, self.window, self.eval_stride)
        idx = st[:, None] + np.arange(self.window)[None, :]
        err = (self._channel_error(split.values[idx]) * self.weights_).mean(axis=2)  # (w, L)
        acc = np.zeros(len(split))
        cnt = np.zeros(len(split))
        np.add.at(acc, idx, err)
        np.add.at(cnt, idx, 1.0)
        return acc / cnt
