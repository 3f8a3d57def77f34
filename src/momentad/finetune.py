"""Few-shot LoRA fine-tuning of MOMENT on a sample budget (the `finetune@<budget>` stages).

Cost model (CPU): one optimisation pass touches ``budget x channels_per_window`` univariate
512-step sequences per epoch, each a forward and a backward pass (about 3x a forward). The
budget counts *windows*; from each window ``finetune.channels_per_window`` KPI channels are
drawn once (seeded), which keeps CPU runs practical while every window still contributes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from momentad.data import Split
from momentad.detectors.moment import PatchHead
from momentad.errors import InputError
from momentad.models.device import autocast
from momentad.models.lora import adapter_state, load_adapter_state
from momentad.params import build_config, require_choice, require_float, require_int
from momentad.windows import CONTEXT_LENGTH, materialize

log = logging.getLogger(__name__)
OBJECTIVES = ("reconstruction", "classification")
INTERRUPT_ENV = "MOMENTAD_INTERRUPT_AFTER_EPOCH"  # tests simulate a killed run with it


@dataclass(frozen=True)
class FinetuneConfig:
    """params.yaml: finetune (budgets and seeds are read by dvc.yaml's foreach / the stage)."""

    budgets: list[int] = field(default_factory=lambda: [100, 500, 1000])
    seeds: list[int] = field(default_factory=lambda: [0])
    objective: str = "reconstruction"
    include_anomalous: bool = False
    channels_per_window: int = 1
    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    grad_clip: float = 1.0
    patience: int = 2
    mask_ratio: float = 0.3
    gradient_checkpointing: bool = False

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> FinetuneConfig:
        cfg = build_config(cls, p, "finetune")
        require_choice(cfg.objective, "finetune.objective", OBJECTIVES)
        for b in cfg.budgets:
            require_int(b, "finetune.budgets[]", 1)
        if not cfg.seeds:
            raise InputError("params.yaml: finetune.seeds is empty; use e.g. [0] or [0, 1, 2]")
        for s in cfg.seeds:
            require_int(s, "finetune.seeds[]", 0)
        require_int(cfg.channels_per_window, "finetune.channels_per_window", 1)
        require_int(cfg.epochs, "finetune.epochs", 1, 1000)
        require_int(cfg.batch_size, "finetune.batch_size", 1)
        require_float(cfg.lr, "finetune.lr", 0)
        require_float(cfg.warmup_ratio, "finetune.warmup_ratio", 0, 1)
        require_float(cfg.mask_ratio, "finetune.mask_ratio", 0.05, 0.95)
        require_int(cfg.patience, "finetune.patience", 1)
        return cfg


def budget_windows(index, budget: int, seed: int, draw: int, include_anomalous: bool) -> np.ndarray:
    """Rows of the train window index for a budget: a seeded permutation of the eligible
    windows, cut at ``budget`` — so the 100 lie inside the 500, inside the 1,000."""
    eligible = np.arange(len(index)) if include_anomalous else np.flatnonzero(~index["any_anomaly"].to_numpy())
    if budget > len(eligible):
        kind = "training windows" if include_anomalous else "anomaly-free training windows"
        raise InputError(
            f"params.yaml: finetune.budgets has {budget} but there are only {len(eligible)} {kind}; "
            "lower the budget, lower window.train_stride, or set finetune.include_anomalous: true"
        )
    order = np.random.default_rng([seed, draw]).permutation(eligible)
    return np.sort(order[:budget])


def sequences(split: Split, rows: np.ndarray, channels_per_window: int, seed: int, draw: int,
              channel_weights: np.ndarray | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """Univariate training sequences: per window, ``channels_per_window`` channels drawn once.

    Returns x (n, 1, 512), input mask (n, 512), per-step labels (n, 512)."""
    index = split.index.iloc[rows]
    x, mask = materialize(split.values, index)
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
    labels = np.zeros((w, CONTEXT_LENGTH), dtype=np.float32)
    length = int(index["stop"].iloc[0] - index["start"].iloc[0])
    lab = split.labels
    for i, s in enumerate(index["start"].to_numpy()):
        labels[i, CONTEXT_LENGTH - length :] = lab[s : s + length]
    return {
        "x": np.ascontiguousarray(x[np.arange(w)[:, None], picks].reshape(w * k, 1, CONTEXT_LENGTH)),
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


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def patch_mask(b: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """(b, 512) MOMENT mask: 1 = visible, 0 = masked, whole 8-step patches at a time."""
    keep = torch.rand(b, CONTEXT_LENGTH // 8, generator=gen) >= ratio
    return keep.repeat_interleave(8, dim=1).long()


class Trainer:
    """One draw of one budget: train, validate, checkpoint, resume."""

    def __init__(self, model, head: PatchHead | None, cfg: FinetuneConfig, device, precision: str,
                 state_dir: Path, seed: int, draw: int, progress: bool = True):  # fmt: skip
        self.model, self.head, self.cfg = model, head, cfg
        self.device, self.precision = device, precision
        self.state_dir, self.seed, self.draw, self.progress = state_dir, seed, draw, progress
        self.params = [p for p in model.parameters() if p.requires_grad]
        if head is not None:
            self.params += list(head.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.pos_weight = 1.0

    # -- losses -------------------------------------------------------------------------------
    def loss(self, batch: dict[str, torch.Tensor], gen: torch.Generator) -> torch.Tensor:
        x, m, y = batch["x"], batch["mask"], batch["labels"]
        if self.head is None:
            vis = patch_mask(len(x), self.cfg.mask_ratio, gen).to(self.device)
            rec = self.model(x_enc=x, input_mask=m, mask=vis).reconstruction[:, 0].float()
            # masked, observed, and not labelled anomalous: learn what normal looks like
            w = ((vis == 0) & (m == 1) & (y == 0)).float()
            return (((rec - x[:, 0]) ** 2) * w).sum() / w.sum().clamp(min=1)
        logits = self.head(self.model, x, m).float()
        target = y.reshape(len(y), -1, 8).amax(dim=2)  # a patch is anomalous if any step is
        observed = m.reshape(len(m), -1, 8).amin(dim=2).float()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, reduction="none", pos_weight=torch.tensor(self.pos_weight, device=self.device)
        )
        return (bce * observed).sum() / observed.sum().clamp(min=1)

    def batches(self, data: dict[str, np.ndarray], order: np.ndarray):
        for a in range(0, len(order), self.cfg.batch_size):
            idx = order[a : a + self.cfg.batch_size]
            yield {k: torch.from_numpy(v[idx]).to(self.device) for k, v in data.items()}

    @torch.no_grad()
    def val_loss(self, data: dict[str, np.ndarray]) -> float:
        self.model.eval()
        if self.head is not None:
            self.head.eval()
        gen = torch.Generator().manual_seed(12345)  # the same masks every epoch
        total, n = 0.0, 0
        with autocast(self.device, self.precision):
            for b in self.batches(data, np.arange(len(data["x"]))):
                total += float(self.loss(b, gen)) * len(b["x"])
                n += len(b["x"])
        return total / max(n, 1)

    # -- checkpoints --------------------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        state = adapter_state(self.model)
        if self.head is not None:
            state.update({f"head.{k}": v.detach().cpu().clone() for k, v in self.head.state_dict().items()})
        return state

    def load_trainable(self, state: dict[str, torch.Tensor]) -> None:
        load_adapter_state(self.model, {k: v for k, v in state.items() if not k.startswith("head.")})
        if self.head is not None:
            self.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})

    def save(self, info: dict[str, Any], best: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        tmp = self.state_dir.with_name(self.state_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(self.trainable_state(), str(tmp / "current.safetensors"))
        save_file(best, str(tmp / "best.safetensors"))
        opt = self.opt.state_dict()
        tensors, meta = {}, {"param_groups": opt["param_groups"], "state_keys": {}}
        for pid, st in opt["state"].items():
            meta["state_keys"][str(pid)] = list(st)
            for k, v in st.items():
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous() if torch.is_tensor(v) else torch.tensor(v)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        (tmp / "optimizer.json").write_text(json.dumps(meta))
        (tmp / "state.json").write_text(json.dumps(info))
        shutil.rmtree(self.state_dir, ignore_errors=True)
        os.replace(tmp, self.state_dir)

    def restore(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]] | None:
        from safetensors.torch import load_file

        f = self.state_dir / "state.json"
        if not f.is_file():
            return None
        info = json.loads(f.read_text())
        self.load_trainable(load_file(str(self.state_dir / "current.safetensors")))
        meta = json.loads((self.state_dir / "optimizer.json").read_text())
        tensors = load_file(str(self.state_dir / "optimizer.safetensors"))
        state = {int(pid): {k: tensors[f"{pid}.{k}"].to(self.device) if k != "step" else tensors[f"{pid}.{k}"]
                            for k in keys} for pid, keys in meta["state_keys"].items()}  # fmt: skip
        self.opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        return info, load_file(str(self.state_dir / "best.safetensors"))

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, train: dict[str, np.ndarray], val: dict[str, np.ndarray]) -> dict[str, Any]:
        cfg = self.cfg
        if self.head is not None:
            pos = float(train["labels"].mean())
            self.pos_weight = (1 - pos) / pos if pos > 0 else 1.0  # class imbalance
        steps_per_epoch = math.ceil(len(train["x"]) / cfg.batch_size)
        total = steps_per_epoch * cfg.epochs
        warmup = max(1, int(cfg.warmup_ratio * total))
        info = {"epoch": 0, "step": 0, "best_val_loss": float("inf"), "best_epoch": 0, "bad_epochs": 0,
                "history": [], "stopped_early": False}  # fmt: skip
        best = self.trainable_state()
        resumed = self.restore()
        if resumed is not None:
            info, best = resumed
            log.warning("resuming %s from epoch %d", self.state_dir, info["epoch"])
        t0 = time.perf_counter()
        while info["epoch"] < cfg.epochs and not info["stopped_early"]:
            epoch = info["epoch"]
            torch.manual_seed(hash_int(self.seed, self.draw, epoch))  # dropout: same on resume
            gen = torch.Generator().manual_seed(hash_int(self.seed, self.draw, epoch, 1))
            order = np.random.default_rng([self.seed, self.draw, epoch]).permutation(len(train["x"]))
            self.model.train()
            if self.head is not None:
                self.head.train()
            losses = []
            bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       disable=not self.progress, mininterval=2.0)  # fmt: skip
            for batch in self.batches(train, order):
                for g in self.opt.param_groups:
                    g["lr"] = cfg.lr * lr_factor(info["step"], total, warmup)
                with autocast(self.device, self.precision):
                    loss = self.loss(batch, gen)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
                self.opt.step()
                info["step"] += 1
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
                bar.update(1)
            bar.close()
            val_loss = self.val_loss(val)
            info["history"].append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_loss})
            if val_loss < info["best_val_loss"]:
                info.update(best_val_loss=val_loss, best_epoch=epoch + 1, bad_epochs=0)
                best = self.trainable_state()
            else:
                info["bad_epochs"] += 1
                info["stopped_early"] = info["bad_epochs"] >= cfg.patience
            info["epoch"] = epoch + 1
            self.save(info, best)
            log.info("epoch %d: train %.4f val %.4f", epoch + 1, info["history"][-1]["train_loss"], val_loss)
            if os.environ.get(INTERRUPT_ENV) == str(epoch + 1):
                raise KeyboardInterrupt(f"{INTERRUPT_ENV}={epoch + 1}")
        self.load_trainable(best)
        info["train_s"] = time.perf_counter() - t0
        return info


def hash_int(*parts: int) -> int:
    """A stable 63-bit seed from integers."""
    h = hashlib.sha256(json.dumps(parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & (2**63 - 1)


def run_key(payload: dict[str, Any]) -> str:
    """Identify a training run by everything that determines its result (for resuming)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
