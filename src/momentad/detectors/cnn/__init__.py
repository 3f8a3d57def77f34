"""A 1-D convolutional forecaster scored by its prediction error, as TSB-AD's CNN.

From the previous ``window`` rows of every KPI it predicts the next row; the score of a row is
the mean over KPIs of its squared prediction error (the per-KPI errors are the per-KPI evidence).
The network is TSB-AD's: convolutions of width ``kernel`` into each of ``channels`` (ReLU, max
pool 2), average pooling, a hidden layer of the last width with ReLU and dropout, a linear output
per KPI (TSB-AD's ``num_channel`` [32, 32, 40] is ``channels`` [32, 40] here: its first entry
sets no layer). Trained with Adam on windows whose next row is not labelled anomalous (and
holding no anomaly unless ``budget.include_anomalous``), early stopping on validation loss.
The first ``window`` rows of a segment carry the first prediction's score (TSB-AD's padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from momentad.config import _fail, rng
from momentad.data import Split
from momentad.detectors.base import TorchDetector, register
from momentad.device import resolve_device
from momentad.errors import NotRun
from momentad.training import LoopConfig, TrainLoop


@dataclass(frozen=True)
class CNNParams:
    window: int = rng(ge=2, le=4096)
    channels: list[int] = rng(ge=1)
    kernel: int = rng(ge=1, le=64)
    dropout: float = rng(ge=0, lt=1)
    train_stride: int = rng(ge=1)
    epochs: int = rng(ge=1, le=1000)
    batch_size: int = rng(ge=1)
    lr: float = rng(gt=0)
    patience: int = rng(ge=1)

    def check(self) -> None:
        length = self.window
        for _ in self.channels:
            length = (length - self.kernel + 1) // 2
        if not self.channels or length < 1:
            raise _fail("cnn.window", f"={self.window} is too short for {len(self.channels)} convolutions of width "
                        f"{self.kernel} with pooling; raise it or use fewer cnn.channels")  # fmt: skip


class _CNN(nn.Module):
    def __init__(self, feats: int, channels: list[int], kernel: int, dropout: float):
        super().__init__()
        layers, prev = [], feats
        for out in channels:
            layers += [nn.Conv1d(prev, out, kernel), nn.ReLU(), nn.MaxPool1d(2)]
            prev = out
        self.conv = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Sequential(nn.Linear(2 * prev, prev), nn.ReLU(), nn.Dropout(dropout), nn.Linear(prev, feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, window, KPIs) -> (b, KPIs)
        h = self.pool(self.conv(x.transpose(1, 2)))[:, :, 0]
        return self.head(torch.cat([h, h], dim=1))  # TSB-AD concatenates two (average) poolings


@register
class CNNForecaster(TorchDetector):
    name = "cnn"
    Params = CNNParams

    def build(self, channels: int) -> nn.Module:
        p = self.params
        return _CNN(channels, p.channels, p.kernel, p.dropout)

    def _samples(self, split: Split, stride: int, train: bool) -> tuple[np.ndarray, np.ndarray]:
        """Row indices (samples, window + 1): each window and the row after it, inside segments."""
        w = self.params.window
        starts = [np.arange(a, b - w, stride) for a, b in split.segments if b - a > w]
        if not starts:
            return np.empty((0, w + 1), dtype=np.int64), np.empty(0, dtype=bool)
        s = np.concatenate(starts)
        idx = s[:, None] + np.arange(w + 1)[None, :]
        lab = split.labels[idx].astype(bool)
        keep = ~lab[:, -1] & (self.ctx.mask_anomalies | ~lab.any(axis=1)) if train else np.ones(len(s), bool)
        return idx[keep], keep

    # -- training (hooks of momentad.training.TrainLoop) --------------------------------------
    def _fit(self, train: Split, val: Split | None) -> None:
        p = self.params
        torch.manual_seed(self.seed)
        self.device_ = resolve_device(self.device)
        idx, _ = self._samples(train, p.train_stride, train=True)
        if not len(idx):
            raise NotRun(f"its training rows hold no cnn.window={p.window} rows followed by a normal row")
        self._x = train.values[idx]
        vidx = self._samples(val, 1, train=True)[0] if val is not None else idx[:0]
        self._vx = val.values[vidx] if len(vidx) else self._x[: min(len(self._x), 256)]
        self.channels_ = self._x.shape[2]
        self.model_ = self.build(self.channels_).to(self.device_)
        loop = TrainLoop(LoopConfig(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, patience=p.patience,
                                    min_delta=1e-6), self.device_, "fp32", self.seed, progress=self.progress,
                         desc=self.name)  # fmt: skip
        self.history_ = loop.fit(self, len(self._x))["history"]
        del self._x, self._vx

    def _errors(self, x: np.ndarray) -> torch.Tensor:
        xb = torch.from_numpy(x).to(self.device_)
        return (self.model_(xb[:, :-1]) - xb[:, -1]) ** 2

    def batch_loss(self, idx: np.ndarray, gen: torch.Generator, epoch: int) -> torch.Tensor:
        return self._errors(self._x[idx]).mean()

    @torch.no_grad()
    def validation_loss(self) -> float:
        total = sum(self._errors(self._vx[a : a + 1024]).sum().item() for a in range(0, len(self._vx), 1024))
        return total / max(self._vx[:, -1].size, 1)

    # -- scoring ------------------------------------------------------------------------------
    @torch.no_grad()
    def channel_scores(self, split: Split) -> np.ndarray:
        """(timesteps, KPIs) squared one-step prediction error; a segment's first ``window`` rows
        carry its first prediction's error."""
        self.model_.eval()
        w = self.params.window
        out = np.empty((len(split), split.values.shape[1]))
        for a, b in split.segments:
            v = split.values[a:b]
            pad = max(0, w + 1 - len(v))
            if pad:
                v = np.concatenate([np.repeat(v[:1], pad, axis=0), v])
            idx = np.arange(len(v) - w)[:, None] + np.arange(w + 1)[None, :]
            err = np.concatenate([self._errors(v[idx[i : i + 1024]]).cpu().numpy() for i in range(0, len(idx), 1024)])
            full = np.concatenate([np.repeat(err[:1], w, axis=0), err])
            out[a:b] = full[pad:]
        return out

    def _score(self, split: Split) -> np.ndarray:
        return self._keep_channels(split, self.channel_scores(split)).mean(axis=1)
