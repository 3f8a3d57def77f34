"""MOMENT zero-shot: per-timestep reconstruction error of channel-independent windows.

No training: ``fit`` loads the weights named by ``model.checkpoint`` (hub id, local
directory or ``random-init:<size>``, see :mod:`momentad.models.moment`) and scoring
reconstructs every window of ``window.length`` steps (stride ``window.eval_stride``), each KPI
channel as an independent univariate sequence, batched by ``model.batch_size``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from momentad.config import ModelParams, WindowParams, ZeroShotParams
from momentad.data import Split
from momentad.detectors.base import Detector
from momentad.detectors.registry import register
from momentad.models.device import autocast, resolve_device
from momentad.windows import CONTEXT_LENGTH, materialize

log = logging.getLogger(__name__)


def reduce_channels(errors: np.ndarray, how: str = "mean", topk: int = 5) -> np.ndarray:
    """(timesteps, channels) errors -> one score per timestep."""
    if how == "mean":
        return errors.mean(axis=1)
    if how == "max":
        return errors.max(axis=1)
    k = min(int(topk), errors.shape[1])
    return np.sort(errors, axis=1)[:, -k:].mean(axis=1)


def window_batches(values: np.ndarray, index, batch_size: int):
    """Yield (first sequence, x (b, 1, 512), input mask (b, 512)) over windows x channels.

    Channels are scored as independent univariate sequences, as MOMENT is channel-independent;
    flattening them lets one batch mix windows and channels.
    """
    x, mask = materialize(values, index)
    w, c, _ = x.shape
    seqs = x.reshape(w * c, 1, CONTEXT_LENGTH)
    seq_mask = np.repeat(mask, c, axis=0)
    for a in range(0, w * c, batch_size):
        yield a, seqs[a : a + batch_size], seq_mask[a : a + batch_size]


@dataclass(frozen=True)
class MomentParams:
    """The params sections MOMENT zero-shot reads."""

    model: ModelParams
    zero_shot: ZeroShotParams
    window: WindowParams


@register
class MomentZeroShot(Detector):
    """MOMENT reconstruction error as the anomaly score."""

    name = "moment_zero_shot"
    Params = MomentParams
    kind = "foundation"

    @classmethod
    def from_config(cls, cfg, progress: bool = False, **run: Any) -> MomentZeroShot:
        return cls(MomentParams(cfg.model, cfg.zero_shot, cfg.window), cfg.seed, progress)

    def _window(self, eval_: bool = False) -> tuple[int, int]:
        w = self.params.window
        return w.length, w.eval_stride if eval_ else w.train_stride

    # -- the weights --------------------------------------------------------------------------
    def _load_base(self) -> None:
        from momentad.models.moment import load_moment

        mp = self.params.model
        self.device_ = resolve_device(mp.device)
        torch.manual_seed(self.seed)
        self.model_, self.info_ = load_moment(mp.checkpoint, self.seed, mp.cache_dir, mp.revision, mp.offline)

    def _fit(self, train: Split, val: Split | None) -> None:
        self._load_base()
        self.model_.to(self.device_)

    def describe(self) -> dict[str, Any]:
        return self.info_.to_dict()

    def n_parameters(self) -> int:
        return self.info_.parameters

    def extra(self) -> dict[str, Any]:
        return {"device": str(self.device_)}

    # -- scoring ------------------------------------------------------------------------------
    def per_step(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, 1, 512) sequences -> (b, 512) anomaly evidence per step: squared reconstruction error."""
        rec = self.model_(x_enc=x, input_mask=mask).reconstruction
        return (x[:, 0].float() - rec[:, 0].float()) ** 2

    @torch.inference_mode()
    def channel_scores(self, split: Split) -> np.ndarray:
        """(timesteps, channels) per-step evidence, averaged over overlapping windows."""
        values, index = split.values, split.index
        c = values.shape[1]
        acc = np.zeros((len(split), c), dtype=np.float64)
        count = np.zeros(len(split), dtype=np.float64)
        self.model_.eval()
        bar = tqdm(total=len(index) * c, desc=f"{self.name} {split.name}", unit="seq", disable=not self.progress,
                   leave=False, mininterval=2.0)  # fmt: skip
        lengths = (index["stop"] - index["start"]).to_numpy()
        for length in np.unique(lengths):  # one group unless a short segment has a shorter window
            sub = index[lengths == length]
            err = np.empty((len(sub) * c, length), dtype=np.float32)
            with autocast(self.device_, self.params.model.precision):
                for a, xb, mb in window_batches(values, sub, self.params.model.batch_size):
                    x = torch.from_numpy(xb).to(self.device_)
                    m = torch.from_numpy(mb).to(self.device_)
                    err[a : a + len(xb)] = self.per_step(x, m)[:, -length:].float().cpu().numpy()
                    bar.update(len(xb))
            rows = sub["start"].to_numpy()[:, None] + np.arange(length)[None, :]
            np.add.at(acc, rows, err.reshape(len(sub), c, length).transpose(0, 2, 1))
            np.add.at(count, rows, 1.0)
        bar.close()
        with np.errstate(invalid="ignore"):  # rows no window covers stay NaN
            return acc / count[:, None]

    def _score(self, split: Split) -> np.ndarray:
        zp = self.params.zero_shot
        return reduce_channels(self._keep_channels(split, self.channel_scores(split)), zp.channel_reduce, zp.topk)

    # -- artifacts: a reference to the weights, which live in the model cache -------------------
    def _save_state(self, folder: Path) -> dict[str, Any]:
        return {"weights": self.info_.to_dict()}

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        self._load_base()
        self.model_.to(self.device_)
