"""MOMENT as TSB-AD 1.5 runs it (``TSB_AD/models/MOMENT.py``; ``moment.zero_shot.recipe: tsbad``).

- Windows of ``w`` steps (TSB-AD tuned 64 over 64/128/256), stride 1, fed at their own length
  with an all-ones input mask (``ReconstructDataset_Moment``; it computes a z-scored copy of the
  series but builds its windows from the series as given): a univariate series gives its
  n - w + 1 windows; with several KPIs row i gives the window starting there (the last window for
  the final w rows).
- One error per window and channel: the mean squared reconstruction error over the window;
  TSB-AD's score is that of the **last** channel (``zero_shot.channel_reduce: last``). A
  univariate series' scores are edge-padded to one per timestep (ceil((w-1)/2) in front,
  (w-1)//2 behind).
- Fine-tuning (TSB-AD's MOMENT_FT, ``fit``): shuffled windows of the training rows in batches,
  30% of patches masked (momentfm's ``Masking``), the squared error over the whole output, Adam
  over the model's parameters (with momentfm's defaults only the head trains), a fixed number of
  epochs; the model is left in training mode, so its scores carry dropout noise, as TSB-AD's do.

Every step uses the same torch and momentfm calls in the same order as TSB-AD's code, so from the
same weights and the same random state the scores are the same (tests/test_tsbad_moment.py).
Where TSB-AD has no answer this module adds one: a stretch shorter than ``w`` (a short segment)
is one window left-padded to whole patches with the padding masked, and training windows that
hold labelled anomalies (``budget.include_anomalous``) leave those steps out of the loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from momentad.config import _fail
from momentad.detectors.moment.recipes import Recipe
from momentad.detectors.moment.scoring import quiet_checkpoint
from momentad.device import autocast
from momentad.errors import NotRun


class Windows(torch.utils.data.Dataset):
    """TSB-AD's ``ReconstructDataset_Moment``: (window as a float32 (w, channels) tensor, an
    all-ones numpy mask[, the window's labels when given])."""

    def __init__(self, values: np.ndarray, w: int, labels: np.ndarray | None = None):
        self.values, self.w, self.labels = np.asarray(values), w, labels
        n, c = self.values.shape
        if c == 1:
            view = np.lib.stride_tricks.sliding_window_view(self.values[:, 0].astype(np.float32), w)
            self.samples = torch.from_numpy(np.array(view)).unsqueeze(-1)  # a copy: the view is read-only
        else:
            self.samples = torch.from_numpy(self.values.astype(np.float32))

    def __len__(self) -> int:
        n, c = self.values.shape
        return max(0, n - self.w + 1) if c == 1 else n

    def start(self, i: int) -> int:
        n, c = self.values.shape
        return i if c == 1 or i < n - self.w else n - self.w

    def __getitem__(self, i: int):
        mask = np.ones(self.w)
        s = self.start(i)
        x = self.samples[i] if self.values.shape[1] == 1 else self.samples[s : s + self.w]
        if self.labels is None:
            return x, mask
        return x, mask, torch.from_numpy(self.labels[s : s + self.w].astype(np.float32))


def starts(n: int, w: int, channels: int) -> np.ndarray:
    """First row of each window TSB-AD scores in a stretch of ``n`` rows."""
    if channels == 1:
        return np.arange(max(0, n - w + 1))
    return np.minimum(np.arange(n), max(n - w, 0))


def to_steps(per_window: np.ndarray, n: int, w: int) -> np.ndarray:
    """(windows, ...) -> (n, ...): TSB-AD's edge padding of a univariate series' window scores
    (a multivariate series already has one window per row)."""
    if len(per_window) >= n:
        return per_window
    front, back = math.ceil((w - 1) / 2), (w - 1) // 2
    return np.concatenate([np.repeat(per_window[:1], front, axis=0), per_window,
                           np.repeat(per_window[-1:], back, axis=0)])  # fmt: skip


def window_errors(model: torch.nn.Module, values: np.ndarray, w: int, batch_size: int, device: torch.device,
                  patch_len: int = 8, progress: Callable[[int], None] | None = None) -> np.ndarray:  # fmt: skip
    """(windows, channels) mean squared reconstruction error of each window TSB-AD scores in one
    stretch, as its ``zero_shot`` / ``decision_function`` compute them."""
    n, c = values.shape
    if n < w:  # shorter than one window: one window of whole patches, the padding masked
        return _short_window_error(model, values, patch_len, device)[None, :]
    loader = torch.utils.data.DataLoader(Windows(values, w), batch_size=batch_size, shuffle=False)
    errs = []
    with torch.no_grad():
        for batch_x, batch_masks in loader:
            batch_x = batch_x.to(device).float().permute(0, 2, 1)  # (b, channels, w)
            out = model(x_enc=batch_x, input_mask=batch_masks.to(device))
            errs.append(torch.mean((batch_x - out.reconstruction) ** 2, dim=-1).detach().cpu().numpy())
            if progress is not None:
                progress(len(batch_x))
    return np.concatenate(errs, axis=0).astype(np.float64)


def _short_window_error(model: torch.nn.Module, values: np.ndarray, patch_len: int, device: torch.device) -> np.ndarray:
    n, c = values.shape
    length = max(patch_len, math.ceil(n / patch_len) * patch_len)
    seen = max(n, patch_len)  # under one patch: its first row repeated, as MOMENT attends only to whole patches
    x = torch.zeros(c, 1, length)
    rows = np.maximum(np.arange(seen) - (seen - n), 0)
    x[:, 0, length - seen :] = torch.from_numpy(values[rows].T.astype(np.float32))
    mask = torch.zeros(c, length)
    mask[:, length - seen :] = 1
    with torch.no_grad():
        rec = model(x_enc=x.to(device), input_mask=mask.to(device)).reconstruction.cpu()
    return ((x[:, 0, length - n :] - rec[:, 0, length - n :]) ** 2).mean(dim=-1).double().numpy()


def fit(model: torch.nn.Module, stretches: list[tuple[np.ndarray, np.ndarray | None]], w: int, batch_size: int,
        epochs: int, lr: float, mask_ratio: float, device: torch.device,
        progress: Callable[[int], None] | None = None) -> list[dict[str, float]]:  # fmt: skip
    """TSB-AD's ``fit`` over the windows of every (values, labels or None) stretch; returns the mean
    training loss per epoch. A batch holding labelled steps leaves them out of its loss."""
    from momentfm.utils.masking import Masking

    sets = [Windows(v, w, lab) for v, lab in stretches if len(v) >= w]
    data = sets[0] if len(sets) == 1 else torch.utils.data.ConcatDataset(sets)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=True)
    criterion = torch.nn.MSELoss()
    masking = Masking(mask_ratio=mask_ratio)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for batch in loader:
            batch_x, batch_masks = batch[0], batch[1]
            batch_x = batch_x.to(device).float().permute(0, 2, 1)
            original = batch_x
            n_channels = batch_x.shape[1]
            batch_x = batch_x.reshape((-1, 1, w))
            batch_masks = batch_masks.to(device).long().repeat_interleave(n_channels, axis=0)
            mask = masking.generate_mask(x=batch_x, input_mask=batch_masks).to(device).long()
            mask = torch.nn.functional.pad(mask, (0, batch_masks.size(1) - mask.size(1)), mode="constant", value=1)
            rec = model(x_enc=batch_x, input_mask=batch_masks, mask=mask).reconstruction
            rec = torch.nn.functional.pad(rec, (0, original.size(2) - rec.size(2)), mode="replicate")
            output = rec.reshape(original.size(0), n_channels, w)
            labels = batch[2].to(device) if len(batch) > 2 else None
            if labels is not None and bool(labels.any()):
                keep = (1 - labels)[:, None, :].expand_as(output)
                loss = (((output - original) ** 2) * keep).sum() / keep.sum().clamp(min=1)
            else:
                loss = criterion(output, original)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(len(original))
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan")})
    return history


class Tsbad(Recipe):
    """TSB-AD 1.5's MOMENT (module docstring): stride-1 windows of ``zero_shot.window`` steps,
    scored and fine-tuned as its code does, each segment on its own."""

    name = "tsbad"
    score_in_train_mode = True  # TSB-AD never calls eval(): dropout stays on when it scores
    sets_checkpointing = False  # keeps momentfm's default (on)

    @staticmethod
    def check(params: Any) -> None:
        if params.finetune.objective == "classification":
            raise _fail("moment.finetune.objective", "=classification has no TSB-AD counterpart; use "
                        "objective reconstruction with zero_shot.recipe tsbad, or recipe momentad")  # fmt: skip

    def length(self) -> tuple[int, str]:
        return self.host.params.zero_shot.window, "moment.zero_shot.window"

    def fit(self, train: Any, val: Any) -> None:
        """TSB-AD's MOMENT_FT loop on the budget's rows (:func:`fit`)."""
        h = self.host
        ft, w = h.params.finetune, h.params.zero_shot.window
        labels = train.labels if h.ctx.mask_anomalies else None
        stretches = [(train.values[a:b], None if labels is None else labels[a:b]) for a, b in train.segments]
        windows = sum(len(starts(len(v), w, v.shape[1])) for v, _ in stretches if len(v) >= w)
        if not windows:
            raise NotRun(f"the training rows hold no {w}-step window (moment.zero_shot.window)")
        torch.manual_seed(h.seed)  # shuffling, masks and dropout, as a seeded TSB-AD run
        with tqdm(total=windows * ft.epochs, desc=f"moment draw {h.ctx.draw}", unit="win",
                  disable=not h.progress, leave=False, mininterval=2.0) as bar, quiet_checkpoint():  # fmt: skip
            h.history_ = fit(h.model_, stretches, w, ft.batch_size, ft.epochs, ft.lr, ft.mask_ratio, h.device_,
                             bar.update)  # fmt: skip
        self.training = {"epoch": ft.epochs, "windows": windows, "train_loss": h.history_[-1]["train_loss"]}

    def channel_scores(self, split: Any) -> np.ndarray:
        """TSB-AD's scoring (:func:`window_errors`) of each segment on its own."""
        h = self.host
        w, values = h.params.zero_shot.window, split.values
        out = np.full(values.shape, np.nan)
        bar = tqdm(total=sum(max(1, len(starts(b - a, w, values.shape[1]))) for a, b in split.segments),
                   desc=f"moment {split.name}", unit="win", disable=not h.progress, leave=False,
                   mininterval=2.0)  # fmt: skip
        with autocast(h.device_, h.params.precision), quiet_checkpoint():
            for a, b in split.segments:
                v = values[a:b]
                per = window_errors(h.model_, v, w, h.params.batch_size, h.device_, h.patch_len_, bar.update)
                if b - a < w:
                    out[a:b] = h.with_stats(per, v, np.zeros(1, dtype=np.int64), b - a)
                    continue
                per = h.with_stats(per, v, starts(b - a, w, v.shape[1]), w)
                out[a:b] = to_steps(per, b - a, w)
        bar.close()
        return out

    def facts(self) -> dict[str, Any]:
        t = self.training
        if t is None:
            return {}
        return {"training": {"recipe": "tsbad", "method": self.host.finetuned_, "epochs_run": t["epoch"],
                             "windows": t["windows"], "train_loss": round(t["train_loss"], 6)}}  # fmt: skip


RECIPE = Tsbad
