"""MOMENT as a detector: per-timestep reconstruction error of channel-independent windows."""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from momentad.data import Split
from momentad.errors import InputError
from momentad.models.device import autocast
from momentad.windows import CONTEXT_LENGTH, materialize

REDUCTIONS = ("mean", "max", "topk_mean")


def reduce_channels(errors: np.ndarray, how: str = "mean", topk: int = 5) -> np.ndarray:
    """(timesteps, channels) errors -> one score per timestep."""
    if how == "mean":
        return errors.mean(axis=1)
    if how == "max":
        return errors.max(axis=1)
    if how == "topk_mean":
        k = min(int(topk), errors.shape[1])
        return np.sort(errors, axis=1)[:, -k:].mean(axis=1)
    raise InputError(f"params.yaml: zero_shot.channel_reduce={how!r}; use one of {', '.join(REDUCTIONS)}")


def window_batches(values: np.ndarray, index, batch_size: int):
    """Yield (first window, x (b, 1, 512), input mask (b, 512)) over windows x channels.

    Channels are scored as independent univariate sequences, as MOMENT is channel-independent;
    flattening them lets one batch mix windows and channels.
    """
    x, mask = materialize(values, index)
    w, c, _ = x.shape
    seqs = x.reshape(w * c, 1, CONTEXT_LENGTH)
    seq_mask = np.repeat(mask, c, axis=0)
    for a in range(0, w * c, batch_size):
        yield a, seqs[a : a + batch_size], seq_mask[a : a + batch_size]


class MomentReconstruction:
    """MOMENT reconstruction error as the anomaly score (zero-shot, or after fine-tuning)."""

    name = "moment"

    def __init__(self, model: torch.nn.Module, device: torch.device, precision: str = "auto",
                 batch_size: int = 64, channel_reduce: str = "mean", topk: int = 5, progress: bool = True):  # fmt: skip
        self.model = model
        self.device = device
        self.precision = precision
        self.batch_size = batch_size
        self.channel_reduce = channel_reduce
        self.topk = topk
        self.progress = progress
        reduce_channels(np.zeros((1, 1)), channel_reduce, topk)  # validate early

    def fit(self, train: Split, val: Split | None = None) -> MomentReconstruction:
        """Zero-shot: nothing to learn."""
        return self

    def per_step(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, 1, 512) sequences -> (b, 512) anomaly evidence per step: squared reconstruction error."""
        rec = self.model(x_enc=x, input_mask=mask).reconstruction
        return (x[:, 0].float() - rec[:, 0].float()) ** 2

    @torch.inference_mode()
    def channel_errors(self, split: Split) -> np.ndarray:
        """(timesteps, channels) per-step evidence, averaged over overlapping windows."""
        values, index = split.values, split.index
        w, c = len(index), values.shape[1]
        length = int(index["stop"].iloc[0] - index["start"].iloc[0])
        err = np.empty((w * c, length), dtype=np.float32)
        self.model.eval()
        bar = tqdm(total=w * c, desc=f"{self.name} {split.name}", unit="seq", disable=not self.progress,
                   leave=False, mininterval=2.0)  # fmt: skip
        with autocast(self.device, self.precision):
            for a, xb, mb in window_batches(values, index, self.batch_size):
                x = torch.from_numpy(xb).to(self.device)
                m = torch.from_numpy(mb).to(self.device)
                err[a : a + len(xb)] = self.per_step(x, m)[:, -length:].float().cpu().numpy()
                bar.update(len(xb))
        bar.close()
        per_window = err.reshape(w, c, length).transpose(0, 2, 1)  # (w, length, c)
        acc = np.zeros((len(split), c), dtype=np.float64)
        count = np.zeros(len(split), dtype=np.float64)
        rows = index["start"].to_numpy()[:, None] + np.arange(length)[None, :]
        np.add.at(acc, rows, per_window)
        np.add.at(count, rows, 1.0)
        with np.errstate(invalid="ignore"):  # rows no window covers stay NaN
            return acc / count[:, None]

    def score(self, split: Split) -> np.ndarray:
        """One score per timestep: channel evidence reduced by ``channel_reduce``."""
        return reduce_channels(self.channel_errors(split), self.channel_reduce, self.topk)


class PatchHead(torch.nn.Module):
    """A per-patch anomaly logit on MOMENT's patch embeddings (the classification objective)."""

    def __init__(self, d_model: int, patch_len: int = 8):
        super().__init__()
        self.patch_len = patch_len
        self.linear = torch.nn.Linear(d_model, 1)

    def forward(self, model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, 1, 512) -> (b, n_patches) logits."""
        emb = model.embed(x_enc=x, input_mask=mask, reduction="none").embeddings  # (b, 1, p, d)
        return self.linear(emb[:, 0]).squeeze(-1)


class MomentPatchClassifier(MomentReconstruction):
    """A LoRA-adapted MOMENT with a supervised patch head: score = anomaly probability."""

    name = "moment_classifier"

    def __init__(self, model: torch.nn.Module, head: PatchHead, *args, **kwargs):
        super().__init__(model, *args, **kwargs)
        self.head = head

    def per_step(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        prob = torch.sigmoid(self.head(self.model, x, mask).float())
        return prob.repeat_interleave(self.head.patch_len, dim=1)
