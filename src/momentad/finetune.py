"""Training data for few-shot MOMENT fine-tuning: budget draws, sequences and masks.

Cost model (CPU): one optimisation pass touches ``budget x channels_per_window`` univariate
512-step sequences per epoch, each a forward and a backward pass (about 3x a forward). The
budget counts *windows*; from each window ``finetune.channels_per_window`` KPI channels are
drawn once (seeded), which keeps CPU runs practical while every window still contributes.
"""

from __future__ import annotations

import numpy as np
import torch

from momentad.data import Split
from momentad.windows import CONTEXT_LENGTH, materialize


def sequences(split: Split, rows: np.ndarray, channels_per_window: int, seed: int, draw: int,
              channel_weights: np.ndarray | None = None,
              context: int = CONTEXT_LENGTH) -> dict[str, np.ndarray]:  # fmt: skip
    """Univariate training sequences: per window, ``channels_per_window`` channels drawn once.

    Returns x (n, 1, context), input mask (n, context), per-step labels (n, context)."""
    index = split.index.iloc[rows]
    x, mask = materialize(split.values, index, context)
    w, c, _ = x.shape
    k = min(channels_per_window, c)
    rng = np.random.default_rng([seed, draw, 7])
    picks = []
    for i in range(w):
        p = None
        if channel_weights is not None and channel_weights[i].sum() > 0:
            p = channel_weights[i] / channel_weights[i].sum()
        picks.append(rng.choice(c, size=k, replace=False, p=p))
    picks = np.asarray(picks)
    labels = np.zeros((w, context), dtype=np.float32)
    lab = split.labels
    for i, (s, e) in enumerate(zip(index["start"].to_numpy(), index["stop"].to_numpy(), strict=True)):
        labels[i, context - (e - s) :] = lab[s:e]
    return {
        "x": np.ascontiguousarray(x[np.arange(w)[:, None], picks].reshape(w * k, 1, context)),
        "mask": np.repeat(mask, k, axis=0),
        "labels": np.repeat(labels, k, axis=0),
    }


def fault_channel_weights(split: Split, rows: np.ndarray) -> np.ndarray:
    """For the classification objective: favour channels that move during a window's labelled
    anomaly (|z| at anomalous steps), so positive examples show their fault. Training data only."""
    index = split.index.iloc[rows]
    values, lab = split.values, split.labels.astype(bool)
    out = np.ones((len(index), values.shape[1]))
    for i, (s, e) in enumerate(zip(index["start"], index["stop"], strict=True)):
        m = lab[s:e]
        if m.any():
            out[i] = np.abs(values[s:e][m]).mean(axis=0) ** 2 + 1e-6
    return out


def patch_mask(
    b: int, ratio: float, gen: torch.Generator, patch_len: int, context: int = CONTEXT_LENGTH
) -> torch.Tensor:
    """(b, context) MOMENT mask: 1 = visible, 0 = masked, whole patches at a time."""
    keep = torch.rand(b, context // patch_len, generator=gen) >= ratio
    return keep.repeat_interleave(patch_len, dim=1).long()
