"""Self-distilled masked autoencoder (SD-MAE).

Windows are cut into patches (``patch`` steps x all KPIs, one token each). A random share of
the patches (``mask_ratio``, 0.4-0.75) is replaced by a learned mask token; a Transformer
encoder reads the sequence; a deep *teacher* decoder and a shallow *student* decoder both
reconstruct the masked patches. Loss = masked reconstruction (teacher and student)
+ lambda x discrepancy, where the student is pulled towards the (detached) teacher on normal
patches and, by margin-based negative learning, pushed at least ``margin`` away on patches
labelled anomalous in train. That anomaly term is warmed up linearly over ``warmup_epochs``.

Score: slide a window one patch at a time, mask its last patch, and take the teacher's squared
reconstruction error there plus lambda x the teacher-student discrepancy: every timestep is scored
exactly once, from its past context and its own values (the masked patch's reconstruction comes
from the context; its error is measured against what the patch holds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from momentad.config import rng
from momentad.data import Split
from momentad.detectors.base import TorchDetector, register
from momentad.device import resolve_device
from momentad.errors import InputError, NotRun
from momentad.training import LoopConfig, TrainLoop
from momentad.windows import padded_windows, per_segment


class _SDMAE(nn.Module):
    def __init__(self, channels: int, patch: int, n_patches: int, d: int, heads: int, enc: int, teacher: int,
                 student: int):  # fmt: skip
        super().__init__()
        self.patch = patch
        self.embed = nn.Linear(channels * patch, d)
        self.pos = nn.Parameter(torch.randn(1, n_patches, d) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))

        def stack(n: int) -> nn.TransformerEncoder:
            layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.1, batch_first=True)
            return nn.TransformerEncoder(layer, n, enable_nested_tensor=False)

        self.encoder, self.teacher, self.student = stack(enc), stack(teacher), stack(student)
        self.teacher_out = nn.Linear(d, channels * patch)
        self.student_out = nn.Linear(d, channels * patch)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:  # (b, L, C) -> (b, P, patch*C)
        b, length, c = x.shape
        return x.reshape(b, length // self.patch, self.patch * c)

    def forward(self, x: torch.Tensor, masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """masked: (b, P) bool. Returns target tokens, teacher and student reconstructions."""
        tok = self.tokens(x)
        h = self.embed(tok)
        h = torch.where(masked.unsqueeze(-1), self.mask_token.expand_as(h), h) + self.pos
        z = self.encoder(h)
        return tok, self.teacher_out(self.teacher(z)), self.student_out(self.student(z))


@dataclass(frozen=True)
class SDMAEParams:
    window: int = rng(ge=2, le=4096)
    patch: int = rng(ge=1)
    train_stride: int = rng(ge=1)
    d_model: int = rng(ge=1)
    heads: int = rng(ge=1)
    encoder_layers: int = rng(ge=1)
    teacher_layers: int = rng(ge=1)
    student_layers: int = rng(ge=1)
    mask_ratio: float = rng(ge=0.4, le=0.75)
    lambda_: float = rng(ge=0)
    margin: float = rng(ge=0)
    warmup_epochs: int = rng(ge=1)
    epochs: int = rng(ge=1, le=1000)
    batch_size: int = rng(ge=1)
    lr: float = rng(gt=0)
    patience: int = rng(ge=1)

    def check(self) -> None:
        if self.window % self.patch:
            raise InputError(f"params.yaml: sd_mae.window={self.window} must be a multiple of patch={self.patch}")
        if self.d_model % self.heads:
            raise InputError(f"params.yaml: sd_mae.d_model={self.d_model} must be a multiple of heads={self.heads}")


@register
class SDMAEDetector(TorchDetector):
    name = "sd_mae"
    Params = SDMAEParams

    def uses_labels(self) -> bool:
        return True  # labelled training anomalies are its negatives

    def _windows(self, split: Split, stride: int) -> tuple[np.ndarray, np.ndarray]:
        """Full windows inside the segments, with patch labels; none when every segment is shorter."""
        p = self.params
        idx, real = padded_windows(split.segments, p.window, stride)
        idx = idx[real.all(axis=1)]
        lab = split.labels[idx].reshape(len(idx), p.window // p.patch, p.patch).max(axis=2)  # patch labels
        return split.values[idx], lab

    def build(self, channels: int) -> nn.Module:
        p = self.params
        return _SDMAE(channels, p.patch, p.window // p.patch, p.d_model, p.heads, p.encoder_layers, p.teacher_layers,
                      p.student_layers)  # fmt: skip

    def _losses(self, xb, lb, masked, anomaly_weight):
        p = self.params
        tok, t, s = self.model_(xb, masked)
        m = masked.float()
        normal = m * (1 - lb)
        rec = (((t - tok) ** 2).mean(-1) * normal + ((s - tok) ** 2).mean(-1) * normal).sum() / normal.sum().clamp(
            min=1
        )
        disc = ((s - t.detach()) ** 2).mean(-1)
        pull = (disc * normal).sum() / normal.sum().clamp(min=1)
        anom = m * lb
        push = (torch.relu(p.margin - disc) * anom).sum() / anom.sum().clamp(min=1)
        return rec + p.lambda_ * (pull + anomaly_weight * push)

    # -- training (hooks of momentad.training.TrainLoop) --------------------------------------
    def _fit(self, train: Split, val: Split | None) -> None:
        p = self.params
        torch.manual_seed(self.seed)
        self.device_ = resolve_device(self.device)
        self._x, self._lab = self._windows(train, p.train_stride)
        if not len(self._x):
            raise NotRun(f"no stretch of its training rows without a time gap holds sd_mae.window="
                         f"{p.window} rows")  # fmt: skip
        self._vx, self._vlab = self._windows(val, p.window) if val is not None else (self._x[:64], self._lab[:64])
        if not len(self._vx):  # validation too short for one window: early-stop on training windows
            self._vx, self._vlab = self._x[:64], self._lab[:64]
        n_p = p.window // p.patch
        self.channels_ = self._x.shape[2]
        self.model_ = self.build(self.channels_).to(self.device_)
        vgen = torch.Generator().manual_seed(self.seed + 1)
        self._vmask = torch.rand(len(self._vx), n_p, generator=vgen) < p.mask_ratio
        loop = TrainLoop(LoopConfig(epochs=p.epochs, batch_size=p.batch_size, lr=p.lr, patience=p.patience,
                                    min_delta=1e-6), self.device_, "fp32", self.seed, progress=self.progress,
                         desc=self.name)  # fmt: skip
        self.history_ = loop.fit(self, len(self._x))["history"]
        del self._x, self._lab, self._vx, self._vlab, self._vmask

    def batch_loss(self, idx: np.ndarray, gen: torch.Generator, epoch: int) -> torch.Tensor:
        p = self.params
        warm = min(1.0, (epoch + 1) / max(1, p.warmup_epochs))  # anomaly term warm-up
        xb = torch.from_numpy(self._x[idx]).to(self.device_)
        lb = torch.from_numpy(self._lab[idx]).float().to(self.device_)
        masked = (torch.rand(len(idx), p.window // p.patch, generator=gen) < p.mask_ratio).to(self.device_)
        return self._losses(xb, lb, masked, warm)

    def validation_loss(self) -> float:
        return float(self._losses(torch.from_numpy(self._vx).to(self.device_),
                                  torch.from_numpy(self._vlab).float().to(self.device_),
                                  self._vmask.to(self.device_), 0.0))  # fmt: skip

    # -- scoring ------------------------------------------------------------------------------
    @torch.no_grad()
    def _score(self, split: Split) -> np.ndarray:
        """Teacher-student discrepancy on each window's masked last patch, one patch at a time,
        each segment on its own."""
        self.model_.eval()
        both = per_segment(split.values, split.segments, self._score_rows)
        self._keep_channels(split, both[:, 1:])
        return both[:, 0]

    def channel_scores(self, split: Split) -> np.ndarray:
        """(timesteps, KPIs) teacher-student discrepancy per KPI of the masked last patch."""
        self.score(split)
        return self._channels[1]

    def _score_rows(self, values: np.ndarray) -> np.ndarray:
        """(n, 1 + KPIs): column 0 the score (the discrepancy's mean over KPIs), then per KPI."""
        p = self.params
        pad = p.window  # edge-padded past-only context, enough for a segment shorter than a patch
        padded = np.concatenate([np.repeat(values[:1], pad, axis=0), values])
        n = len(values)
        ends = np.arange(p.patch, n + 1, p.patch)
        if len(ends) == 0 or ends[-1] != n:
            ends = np.append(ends, n)
        st = ends + pad - p.window
        n_p = p.window // p.patch
        out = np.zeros((n, 1 + values.shape[1]))
        for a in range(0, len(st), 512):
            s = st[a : a + 512]
            xb = torch.from_numpy(padded[s[:, None] + np.arange(p.window)[None, :]]).to(self.device_)
            masked = torch.zeros(len(s), n_p, dtype=torch.bool, device=self.device_)
            masked[:, -1] = True
            tok, t, stu = self.model_(xb, masked)
            # the teacher's error on the patch it did not see, plus the discrepancy it was trained
            # to open on anomalies: the discrepancy alone reads the context only, never the patch
            err = (t[:, -1] - tok[:, -1]) ** 2 + p.lambda_ * (stu[:, -1] - t[:, -1]) ** 2
            per_kpi = err.reshape(len(s), p.patch, -1)
            d = per_kpi.mean(-1).cpu().numpy()
            per_kpi = per_kpi.cpu().numpy()
            for k, e in enumerate(ends[a : a + 512]):
                lo = max(0, e - p.patch)
                out[lo:e, 0] = d[k][p.patch - (e - lo) :]
                out[lo:e, 1:] = per_kpi[k, p.patch - (e - lo) :]
        return out
