"""The ``momentad`` recipe: windows of ``window.length`` steps (non-overlapping at test, stride
``window.eval_stride``), each KPI a univariate sequence, per-step errors of overlapping windows
averaged; fine-tuning in :class:`momentad.training.TrainLoop` (AdamW, cosine schedule, early
stopping on validation) on masked patches (``finetune.objective: reconstruction``, label-free) or
with a per-patch anomaly head (``classification``).

Cost model (CPU): one optimisation pass touches ``budget x channels_per_window`` univariate
sequences per epoch, each a forward and a backward pass (about 3x a forward). The budget counts
*windows*; from each window ``finetune.channels_per_window`` KPI channels are drawn once (seeded),
which keeps CPU runs practical while every window still contributes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from momentad.data import Split
from momentad.detectors.moment.recipes import Recipe
from momentad.detectors.moment.scoring import masked_loss, patch_mask, whole_patches, window_batches
from momentad.device import autocast
from momentad.errors import InputError, NotRun
from momentad.training import LoopConfig, TrainLoop
from momentad.windows import CONTEXT_LENGTH

PATCH_HEAD = "patch_head."


def sequences(split: Split, rows: np.ndarray, channels_per_window: int, seed: int, draw: int,
              channel_weights: np.ndarray | None = None,
              context: int = CONTEXT_LENGTH, patch_len: int = 8) -> dict[str, np.ndarray]:  # fmt: skip
    """Univariate training sequences: per window, ``channels_per_window`` channels drawn once.

    Returns x (n, 1, context), input mask (n, context), per-step labels (n, context)."""
    index = split.index.iloc[rows]
    x, mask = whole_patches(split.values, index, context, patch_len)
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


class PatchHead(torch.nn.Module):
    """A per-patch anomaly logit on MOMENT's patch embeddings (the classification objective)."""

    def __init__(self, d_model: int, patch_len: int):
        super().__init__()
        self.patch_len = patch_len
        self.linear = torch.nn.Linear(d_model, 1)

    def forward(self, model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, 1, 512) -> (b, n_patches) logits."""
        emb = model.embed(x_enc=x, input_mask=mask, reduction="none").embeddings  # (b, 1, p, d)
        return self.linear(emb[:, 0]).squeeze(-1)


class Momentad(Recipe):
    """The recipe of this project (module docstring); the TrainLoop's hooks are its methods."""

    name = "momentad"

    def __init__(self, host: Any):
        super().__init__(host)
        self.head: PatchHead | None = None

    def length(self) -> tuple[int, str]:
        return self.host.windowing()[0], "window.length"

    def context(self, length: int) -> int:
        return CONTEXT_LENGTH if self.host.params.context == "pad" else length

    # -- training -----------------------------------------------------------------------------
    def fit(self, train: Split, val: Split | None) -> None:
        h = self.host
        p, ft = h.params, h.params.finetune
        classification = ft.objective == "classification"
        if classification:
            self.head = PatchHead(h.model_.config.d_model, h.patch_len_).to(h.device_)
        any_anomaly = train.index["any_anomaly"].to_numpy()
        use_all = h.ctx.mask_anomalies or classification
        rows = np.arange(len(train.index)) if use_all else np.flatnonzero(~any_anomaly)
        if len(rows) == 0:
            raise NotRun("the training span holds no anomaly-free window")
        weights = fault_channel_weights(train, rows) if classification else None
        c = h.context_
        self._train = sequences(train, rows, ft.channels_per_window, h.seed, h.ctx.draw, weights, c, h.patch_len_)
        if val is None:
            raise InputError("moment needs a validation split for early stopping")
        self._val = sequences(val, np.arange(len(val.index)), ft.channels_per_window, h.seed, h.ctx.draw,
                              context=c, patch_len=h.patch_len_)  # fmt: skip
        if classification and self._train["labels"].sum() == 0:
            raise NotRun(f"moment.finetune.objective=classification: the {len(rows)} training windows hold no "
                         "labelled anomaly")  # fmt: skip
        pos = float(self._train["labels"].mean())
        self._pos_weight = (1 - pos) / pos if classification and pos > 0 else 1.0  # class imbalance
        cfg = LoopConfig(epochs=ft.epochs, batch_size=ft.batch_size, lr=ft.lr, patience=ft.patience,
                         weight_decay=ft.weight_decay, optimizer="adamw", schedule="cosine",
                         warmup_ratio=ft.warmup_ratio, grad_clip=ft.grad_clip)  # fmt: skip
        loop = TrainLoop(cfg, h.device_, p.precision, h.seed, h.ctx.draw, h.ctx.state_dir, h.progress,
                         desc=f"moment draw {h.ctx.draw}")  # fmt: skip
        self.training = loop.fit(self, len(self._train["x"]))
        h.history_ = self.training["history"]
        del self._train, self._val

    def added_parameters(self) -> int:
        return 0 if self.head is None else sum(q.numel() for q in self.head.parameters())

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = [q for q in self.host.model_.parameters() if q.requires_grad]
        return params + (list(self.head.parameters()) if self.head is not None else [])

    def train_mode(self, on: bool) -> None:
        self.host.model_.train(on)
        if self.head is not None:
            self.head.train(on)

    def on_epoch_end(self, epoch: int) -> None:
        pass

    def _batch(self, data: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v[idx]).to(self.host.device_) for k, v in data.items()}

    def _loss(self, b: dict[str, torch.Tensor], gen: torch.Generator) -> torch.Tensor:
        h = self.host
        x, m, y = b["x"], b["mask"], b["labels"]
        pl = h.patch_len_
        if self.head is None:
            vis = patch_mask(len(x), h.params.finetune.mask_ratio, gen, pl, x.shape[-1], m).to(h.device_)
            # masked, observed, and not labelled anomalous: learn what normal looks like
            total, count = masked_loss(h.model_, x, m, vis, keep=y == 0)
            return total / count.clamp(min=1)
        logits = self.head(h.model_, x, m).float()
        target = y.reshape(len(y), -1, pl).amax(dim=2)  # a patch is anomalous if any step is
        observed = m.reshape(len(m), -1, pl).amin(dim=2).float()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, reduction="none", pos_weight=torch.tensor(self._pos_weight, device=h.device_)
        )
        return (bce * observed).sum() / observed.sum().clamp(min=1)

    def batch_loss(self, idx: np.ndarray, gen: torch.Generator, epoch: int) -> torch.Tensor:
        return self._loss(self._batch(self._train, idx), gen)

    def validation_loss(self) -> float:
        gen = torch.Generator().manual_seed(12345)  # the same masks every epoch
        total, n = 0.0, len(self._val["x"])
        bs = self.host.params.finetune.batch_size
        for a in range(0, n, bs):
            idx = np.arange(a, min(a + bs, n))
            total += float(self._loss(self._batch(self._val, idx), gen)) * len(idx)
        return total / max(n, 1)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The host's trainable weights and the classification head (its own prefix: MOMENT's
        reconstruction head is ``head.*``)."""
        state = self.host.trainable_state()
        if self.head is not None:
            state.update({f"{PATCH_HEAD}{k}": v.detach().cpu().clone() for k, v in self.head.state_dict().items()})
        return state

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        self.host.load_trainable_state({k: v for k, v in state.items() if not k.startswith(PATCH_HEAD)})
        if self.head is not None:
            n = len(PATCH_HEAD)
            self.head.load_state_dict({k[n:]: v for k, v in state.items() if k.startswith(PATCH_HEAD)})

    # -- scoring ------------------------------------------------------------------------------
    def per_step(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Squared reconstruction error, or the classification head's anomaly probability."""
        if self.head is None:
            return super().per_step(x, mask)
        prob = torch.sigmoid(self.head(self.host.model_, x, mask).float())
        return prob.repeat_interleave(self.head.patch_len, dim=1)

    def channel_scores(self, split: Split) -> np.ndarray:
        h = self.host
        values, index = split.values, split.index
        c = values.shape[1]
        acc = np.zeros((len(split), c), dtype=np.float64)
        count = np.zeros(len(split), dtype=np.float64)
        bar = tqdm(total=len(index) * c, desc=f"moment {split.name}", unit="seq", disable=not h.progress,
                   leave=False, mininterval=2.0)  # fmt: skip
        lengths = (index["stop"] - index["start"]).to_numpy()
        for length in np.unique(lengths):  # one group unless a short segment has a shorter window
            sub = index[lengths == length]
            err = np.empty((len(sub) * c, length), dtype=np.float32)
            with autocast(h.device_, h.params.precision):
                for a, xb, mb in window_batches(values, sub, h.params.batch_size, h.context_, h.patch_len_):
                    x = torch.from_numpy(xb).to(h.device_)
                    m = torch.from_numpy(mb).to(h.device_)
                    err[a : a + len(xb)] = self.per_step(x, m)[:, -length:].float().cpu().numpy()
                    bar.update(len(xb))
            rows = sub["start"].to_numpy()[:, None] + np.arange(length)[None, :]
            err = err.reshape(len(sub), c, length)
            if h.stats_ is not None:  # per window: the window's mean error, then its statistics
                err = np.repeat(h.with_stats(err.mean(axis=2), values, sub["start"].to_numpy(), length)[..., None],
                                length, axis=2)  # fmt: skip
            np.add.at(acc, rows, err.transpose(0, 2, 1))
            np.add.at(count, rows, 1.0)
        bar.close()
        with np.errstate(invalid="ignore"):  # rows no window covers stay NaN
            return acc / count[:, None]

    # -- artifacts and facts ------------------------------------------------------------------
    def save(self, folder: Path) -> dict[str, Any]:
        if self.head is None:
            return {}
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / "head.safetensors"))
        return {"head": "head.safetensors"}

    def load(self, folder: Path, state: dict[str, Any]) -> None:
        if "head" not in state:
            return
        from safetensors.torch import load_file

        h = self.host
        self.head = PatchHead(h.model_.config.d_model, h.patch_len_)
        self.head.load_state_dict(load_file(str(folder / state["head"])))
        self.head.to(h.device_)

    def facts(self) -> dict[str, Any]:
        t = self.training
        if t is None:
            return {}
        return {"quantized_layers": self.host.quantized_layers_,
                "training": {"objective": self.host.params.finetune.objective, "epochs_run": t["epoch"],
                             "best_epoch": t["best_epoch"], "best_val_loss": round(t["best_val_loss"], 6),
                             "stopped_early": t["stopped_early"]}}  # fmt: skip


RECIPE = Momentad
