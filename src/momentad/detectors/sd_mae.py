"""Self-distilled masked autoencoder (SD-MAE).

Windows are cut into patches (``patch`` steps x all KPIs, one token each). A random share of
the patches (``mask_ratio``, 0.4-0.75) is replaced by a learned mask token; a Transformer
encoder reads the sequence; a deep *teacher* decoder and a shallow *student* decoder both
reconstruct the masked patches. Loss = masked reconstruction (teacher and student)
+ lambda x discrepancy, where the student is pulled towards the (detached) teacher on normal
patches and, by margin-based negative learning, pushed at least ``margin`` away on patches
labelled anomalous in train. That anomaly term is warmed up linearly over ``warmup_epochs``.

Score: slide a window one patch at a time, mask its last patch, and take the teacher-student
discrepancy there: every timestep is scored exactly once, from its past context only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from momentad.data import Split
from momentad.detectors.early_stopping import EarlyStopping
from momentad.errors import InputError
from momentad.models.device import resolve_device


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


class SDMAEDetector:
    name = "sd_mae"

    def __init__(self, seed: int = 0, window: int = 64, patch: int = 8, train_stride: int = 8, d_model: int = 64,
                 heads: int = 4, encoder_layers: int = 2, teacher_layers: int = 3, student_layers: int = 1,
                 mask_ratio: float = 0.5, lambda_: float = 1.0, margin: float = 1.0, warmup_epochs: int = 2,
                 epochs: int = 10, batch_size: int = 64, lr: float = 1e-3, patience: int = 3, device: str = "auto",
                 progress: bool = True):  # fmt: skip
        if window % patch:
            raise InputError(f"params.yaml: baselines.sd_mae.window={window} must be a multiple of patch={patch}")
        if not 0.4 <= mask_ratio <= 0.75:
            raise InputError(f"params.yaml: baselines.sd_mae.mask_ratio={mask_ratio}; use 0.4..0.75")
        self.__dict__.update({k: v for k, v in locals().items() if k != "self"})

    def _windows(self, split: Split, stride: int) -> tuple[np.ndarray, np.ndarray]:
        st = np.arange(0, len(split) - self.window + 1, stride)
        idx = st[:, None] + np.arange(self.window)[None, :]
        lab = split.labels[idx].reshape(len(st), -1, self.patch).max(axis=2)  # patch labels
        return split.values[idx], lab

    def _losses(self, xb, lb, masked, anomaly_weight):
        tok, t, s = self.model_(xb, masked)
        m = masked.float()
        normal = m * (1 - lb)
        rec = (((t - tok) ** 2).mean(-1) * normal + ((s - tok) ** 2).mean(-1) * normal).sum() / normal.sum().clamp(
            min=1
        )
        disc = ((s - t.detach()) ** 2).mean(-1)
        pull = (disc * normal).sum() / normal.sum().clamp(min=1)
        anom = m * lb
        push = (torch.relu(self.margin - disc) * anom).sum() / anom.sum().clamp(min=1)
        return rec + self.lambda_ * (pull + anomaly_weight * push)

    def fit(self, train: Split, val: Split | None = None) -> SDMAEDetector:
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        self.device_ = resolve_device(self.device)
        x, lab = self._windows(train, self.train_stride)
        vx, vlab = self._windows(val, self.window) if val is not None else (x[:64], lab[:64])
        n_p = self.window // self.patch
        self.model_ = _SDMAE(x.shape[2], self.patch, n_p, self.d_model, self.heads, self.encoder_layers,
                             self.teacher_layers, self.student_layers).to(self.device_)  # fmt: skip
        opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        vgen = torch.Generator().manual_seed(self.seed + 1)
        vmask = torch.rand(len(vx), n_p, generator=vgen) < self.mask_ratio
        stopper, self.history_ = EarlyStopping(self.patience), []
        for epoch in range(self.epochs):
            warm = min(1.0, (epoch + 1) / max(1, self.warmup_epochs))  # anomaly term warm-up
            self.model_.train()
            order = rng.permutation(len(x))
            losses = []
            for a in tqdm(range(0, len(order), self.batch_size), desc=f"sd_mae epoch {epoch + 1}", leave=False,
                          disable=not self.progress, mininterval=2.0):  # fmt: skip
                i = order[a : a + self.batch_size]
                xb = torch.from_numpy(x[i]).to(self.device_)
                lb = torch.from_numpy(lab[i]).float().to(self.device_)
                masked = (torch.rand(len(i), n_p, generator=gen) < self.mask_ratio).to(self.device_)
                loss = self._losses(xb, lb, masked, warm)
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.model_.parameters(), 1.0)
                opt.step()
                losses.append(float(loss.detach()))
            self.model_.eval()
            with torch.no_grad():
                vl = float(self._losses(torch.from_numpy(vx).to(self.device_),
                                        torch.from_numpy(vlab).float().to(self.device_),
                                        vmask.to(self.device_), 0.0))  # fmt: skip
            self.history_.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": vl})
            if stopper.step(vl, self.model_):
                break
        stopper.restore(self.model_)
        return self

    @torch.no_grad()
    def score(self, split: Split) -> np.ndarray:
        """Teacher-student discrepancy on each window's masked last patch, one patch at a time."""
        self.model_.eval()
        values = split.values
        pad = self.window - self.patch
        padded = np.concatenate([np.repeat(values[:1], pad, axis=0), values])  # past-only context at the start
        n = len(values)
        ends = np.arange(self.patch, n + 1, self.patch)
        if ends[-1] != n:
            ends = np.append(ends, n)
        st = ends + pad - self.window
        n_p = self.window // self.patch
        out = np.zeros(n)
        for a in range(0, len(st), 512):
            s = st[a : a + 512]
            xb = torch.from_numpy(padded[s[:, None] + np.arange(self.window)[None, :]]).to(self.device_)
            masked = torch.zeros(len(s), n_p, dtype=torch.bool, device=self.device_)
            masked[:, -1] = True
            _, t, stu = self.model_(xb, masked)
            d = ((stu[:, -1] - t[:, -1]) ** 2).reshape(len(s), self.patch, -1).mean(-1).cpu().numpy()
            for k, e in enumerate(ends[a : a + 512]):
                out[e - self.patch : e] = d[k]
        return out
