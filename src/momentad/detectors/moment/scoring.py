"""What every MOMENT recipe scores with: batches of univariate sequences, the per-step
reconstruction error, and the reduction of per-KPI errors to one score per step."""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch

from momentad.windows import CONTEXT_LENGTH, materialize


def reduce_channels(errors: np.ndarray, how: str = "mean", topk: int = 5) -> np.ndarray:
    """(timesteps, channels) errors -> one score per timestep (``last``: the last KPI's, as
    TSB-AD scores MOMENT)."""
    if how == "last":
        return errors[:, -1]
    if how == "mean":
        return errors.mean(axis=1)
    if how == "max":
        return errors.max(axis=1)
    k = min(int(topk), errors.shape[1])
    return np.sort(errors, axis=1)[:, -k:].mean(axis=1)


def whole_patches(values: np.ndarray, index, context: int = CONTEXT_LENGTH,
                  patch_len: int = 8) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """:func:`momentad.windows.materialize`, with a window of fewer than ``patch_len`` rows (a
    stretch between two time gaps) left-padded to one patch by repeating its first row, marked
    observed. MOMENT attends only to whole observed patches: such a window would leave it
    nothing to attend to, and score NaN. Its own rows stay last, where scores are read."""
    x, mask = materialize(values, index, context)
    seen = mask.sum(axis=1)
    for i in np.flatnonzero((seen > 0) & (seen < patch_len)):
        first = context - seen[i]
        x[i, :, context - patch_len : first] = x[i, :, first : first + 1]
        mask[i, context - patch_len :] = 1
    return x, mask


def window_batches(values: np.ndarray, index, batch_size: int, context: int = CONTEXT_LENGTH, patch_len: int = 8):
    """Yield (first sequence, x (b, 1, context), input mask (b, context)) over windows x channels
    (:func:`whole_patches`).

    Channels are scored as independent univariate sequences, as MOMENT is channel-independent;
    flattening them lets one batch mix windows and channels.
    """
    x, mask = whole_patches(values, index, context, patch_len)
    w, c, _ = x.shape
    seqs = x.reshape(w * c, 1, context)
    seq_mask = np.repeat(mask, c, axis=0)
    for a in range(0, w * c, batch_size):
        yield a, seqs[a : a + batch_size], seq_mask[a : a + batch_size]


def reconstruction_error(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(b, 1, context) sequences -> (b, context) squared reconstruction error per step."""
    rec = model(x_enc=x, input_mask=mask).reconstruction
    return (x[:, 0].float() - rec[:, 0].float()) ** 2


def patch_mask(b: int, ratio: float, gen: torch.Generator, patch_len: int,
               context: int = CONTEXT_LENGTH, observed: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """(b, context) MOMENT mask: 1 = visible, 0 = masked, whole patches at a time. Every row
    keeps at least one visible patch among its ``observed`` ones ((b, context) input mask; all
    when None): MOMENT normalises a window by its visible observed steps, so a row with none
    is 0/0 and its NaN reaches the weights (likely on short windows: 8 patches at ratio 0.3 are
    all masked once in 15,000 rows). The extra draw happens only for such rows."""
    keep = torch.rand(b, context // patch_len, generator=gen) >= ratio
    seen = (torch.ones(b, context // patch_len, dtype=torch.bool) if observed is None
            else observed.detach().cpu().reshape(b, -1, patch_len).amax(dim=2) > 0)  # fmt: skip
    empty = torch.nonzero(~(keep & seen).any(dim=1) & seen.any(dim=1)).flatten()
    if len(empty):
        pick = torch.rand(len(empty), seen.shape[1], generator=gen) * seen[empty]
        keep[empty, pick.argmax(dim=1)] = True
    return keep.repeat_interleave(patch_len, dim=1).long()


def masked_loss(model: torch.nn.Module, x: torch.Tensor, input_mask: torch.Tensor, visible: torch.Tensor,
                keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """MOMENT's pre-training objective: (sum of squared errors, count) over the steps that are
    masked (``visible == 0``), observed (``input_mask == 1``) and kept (``keep``, e.g. not
    labelled anomalous). The caller divides, so a sum over processes stays exact."""
    rec = model(x_enc=x, input_mask=input_mask, mask=visible).reconstruction[:, 0].float()
    w = (visible == 0) & (input_mask == 1)
    if keep is not None:
        w &= keep
    w = w.float()
    return (((rec - x[:, 0].float()) ** 2) * w).sum(), w.sum()


@contextlib.contextmanager
def quiet_checkpoint():
    """momentfm's T5 checkpoints activations in training mode (TSB-AD keeps that); with the
    encoder frozen torch warns on every forward pass, which is harmless."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*use_reentrant.*")
        warnings.filterwarnings("ignore", message="None of the inputs have requires_grad")
        yield
