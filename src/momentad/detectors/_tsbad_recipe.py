"""MOMENT as TSB-AD 1.5 runs it (``TSB_AD/models/MOMENT.py``; ``moment.zero_shot.recipe: tsbad``).

- Windows of ``w`` steps (TSB-AD tuned 64 over 64/128/256), stride 1, fed at their own length
  with an all-ones input mask (``ReconstructDataset_Moment``): a univariate series gives its
  n - w + 1 windows; with several KPIs row i gives the window starting there (the last window for
  the final w rows).
- One score per window: the mean squared reconstruction error over the window of the **last**
  channel; a univariate series' scores are edge-padded to one per timestep (ceil((w-1)/2) in
  front, (w-1)//2 behind).
- Fine-tuning (TSB-AD's MOMENT_FT, ``fit``): shuffled windows of the train part in batches,
  30% of patches masked (momentfm's ``Masking``), the squared error over the whole output, Adam
  over the model's parameters (momentfm freezes embedder and encoder, so the head trains), a fixed
  number of epochs; the model is left in training mode, so its scores carry dropout noise, as
  TSB-AD's do.

Every step uses the same torch and momentfm calls in the same order as TSB-AD's code, so from the
same weights and the same random state the scores are the same (tests/test_tsbad_moment.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch


class Windows(torch.utils.data.Dataset):
    """TSB-AD's ``ReconstructDataset_Moment`` without its unused normalisation: (window as a
    float32 (w, channels) tensor, an all-ones numpy mask)."""

    def __init__(self, values: np.ndarray, w: int):
        self.values, self.w = np.asarray(values, dtype=np.float64), w
        n, c = self.values.shape
        if c == 1:
            self.samples = torch.from_numpy(
                np.lib.stride_tricks.sliding_window_view(self.values[:, 0], w).astype(np.float32)
            ).unsqueeze(-1)
        else:
            self.samples = torch.from_numpy(self.values.astype(np.float32))

    def __len__(self) -> int:
        n, c = self.values.shape
        return max(0, n - self.w + 1) if c == 1 else n

    def __getitem__(self, i: int):
        mask = np.ones(self.w)
        if self.values.shape[1] == 1:
            return self.samples[i], mask
        n = self.values.shape[0]
        start = i if i < n - self.w else n - self.w
        return self.samples[start : start + self.w], mask


def score(model: torch.nn.Module, values: np.ndarray, w: int, batch_size: int,
          device: torch.device) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(scores (n,), per-channel window errors (n, channels)) of one stretch, as TSB-AD's
    ``zero_shot`` / ``decision_function`` compute them."""
    loader = torch.utils.data.DataLoader(Windows(values, w), batch_size=batch_size, shuffle=False)
    errs = []
    with torch.no_grad():
        for batch_x, batch_masks in loader:
            batch_x = batch_x.to(device).float().permute(0, 2, 1)  # (b, channels, w)
            out = model(x_enc=batch_x, input_mask=batch_masks.to(device))
            errs.append(torch.mean((batch_x - out.reconstruction) ** 2, dim=-1).detach().cpu().numpy())
    per = np.concatenate(errs, axis=0).astype(np.float64)  # (windows, channels)
    n = len(values)
    if len(per) < n:  # univariate: edge-pad to one score per timestep
        front, back = math.ceil((w - 1) / 2), (w - 1) // 2
        per = np.concatenate([np.repeat(per[:1], front, axis=0), per, np.repeat(per[-1:], back, axis=0)])
    return per[:, -1], per


def fit(model: torch.nn.Module, values: np.ndarray, w: int, batch_size: int, epochs: int, lr: float,
        mask_ratio: float, device: torch.device) -> list[dict[str, float]]:  # fmt: skip
    """TSB-AD's ``fit``: returns the mean training loss per epoch."""
    from momentfm.utils.masking import Masking

    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(Windows(values, w), batch_size=batch_size, shuffle=True)
    criterion = torch.nn.MSELoss()
    masking = Masking(mask_ratio=mask_ratio)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        losses = []
        for batch_x, batch_masks in loader:
            batch_x = batch_x.to(device).float().permute(0, 2, 1)
            original = batch_x
            n_channels = batch_x.shape[1]
            batch_x = batch_x.reshape((-1, 1, w))
            batch_masks = batch_masks.to(device).long().repeat_interleave(n_channels, axis=0)
            mask = masking.generate_mask(x=batch_x, input_mask=batch_masks).to(device).long()
            mask = torch.nn.functional.pad(mask, (0, batch_masks.size(1) - mask.size(1)), mode="constant", value=1)
            rec = model(x_enc=batch_x, input_mask=batch_masks, mask=mask).reconstruction
            rec = torch.nn.functional.pad(rec, (0, original.size(2) - rec.size(2)), mode="replicate")
            loss = criterion(rec.reshape(original.size(0), n_channels, w), original)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan")})
    return history
