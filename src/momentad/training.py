"""One training loop for every torch model (autoencoders, SD-MAE, MOMENT + LoRA).

A model plugs in through :class:`TrainHooks` (PyOD's ``base_dl`` pattern: the loop owns
optimisation, scheduling, mixed precision, early stopping, checkpoints and progress; the
model owns its batches and losses). Data order, masks and dropout are seeded per
(seed, draw, epoch), so a run resumed from a checkpoint ends exactly where an uninterrupted
run would.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from momentad.budgets import hash_int
from momentad.device import autocast

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopConfig:
    """What the loop needs from a model's params."""

    epochs: int
    batch_size: int
    lr: float
    patience: int
    weight_decay: float = 0.0
    optimizer: Literal["adam", "adamw"] = "adam"
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_ratio: float = 0.0
    grad_clip: float = 1.0
    min_delta: float = 0.0


class TrainHooks(Protocol):
    """What a model gives the loop."""

    def trainable_parameters(self) -> list[torch.nn.Parameter]: ...

    def train_mode(self, on: bool) -> None: ...

    def batch_loss(self, idx: np.ndarray, gen: torch.Generator, epoch: int) -> torch.Tensor:
        """Loss on the training examples ``idx`` (a batch of indices into the model's train set)."""
        ...

    def validation_loss(self) -> float: ...

    def trainable_state(self) -> dict[str, torch.Tensor]: ...

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None: ...

    def on_epoch_end(self, epoch: int) -> None: ...


def _schedule(opt: torch.optim.Optimizer, cfg: LoopConfig, total: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from transformers import get_constant_schedule, get_cosine_schedule_with_warmup
    if cfg.schedule == "cosine":
        return get_cosine_schedule_with_warmup(opt, max(1, int(cfg.warmup_ratio * total)), total)
    return get_constant_schedule(opt)


class TrainLoop:
    """Train one draw of one model: ``fit(hooks, n_train)`` returns the run's history."""

    def __init__(self, cfg: LoopConfig, device: torch.device, precision: str = "fp32", seed: int = 0, draw: int = 0,
                 state_dir: Path | None = None, progress: bool = False, desc: str = "train"):  # fmt: skip
        self.cfg, self.device, self.precision = cfg, device, precision
        self.seed, self.draw, self.state_dir, self.progress, self.desc = seed, draw, state_dir, progress, desc

    def _lock(self) -> None:
        """Hold an exclusive lock on the checkpoint folder for this process's lifetime, so a
        second run of the same method cannot write into it."""
        self._lock_file = None
        if self.state_dir is None:
            return
        import fcntl

        from momentad.errors import InputError

        self.state_dir.parent.mkdir(parents=True, exist_ok=True)
        lock = self.state_dir.with_name(self.state_dir.name + ".lock")
        self._lock_file = open(lock, "a+")  # noqa: SIM115 - held open until the process ends
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(f"{self.state_dir}: another process is training this method now; wait for it "
                             "or stop it") from None  # fmt: skip

    # -- checkpoints --------------------------------------------------------------------------
    def _save(self, hooks: TrainHooks, opt, sched, info: dict, best: dict) -> None:
        write_checkpoint(self.state_dir, {"current": hooks.trainable_state(), "best": best}, opt, sched, info)

    def _restore(self, hooks: TrainHooks, opt, sched) -> tuple[dict, dict] | None:
        found = read_checkpoint(self.state_dir, opt, sched, self.device, ("current", "best"))
        if found is None:
            return None
        info, weights = found
        hooks.load_trainable_state(weights["current"])
        return info, weights["best"]

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, hooks: TrainHooks, n_train: int) -> dict[str, Any]:
        cfg = self.cfg
        params = hooks.trainable_parameters()
        opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        opt = opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(n_train / cfg.batch_size)
        sched = _schedule(opt, cfg, steps_per_epoch * cfg.epochs)
        # fp16 needs loss scaling against gradient underflow; bf16 and fp32 do not
        fp16 = self.precision == "fp16" and self.device.type == "cuda"
        scaler = torch.amp.GradScaler(self.device.type, enabled=fp16)
        best = hooks.trainable_state()
        self._lock()
        try:
            return self._fit(hooks, n_train, opt, sched, scaler, steps_per_epoch, best)
        finally:
            if self._lock_file is not None:  # released even when training is interrupted
                self._lock_file.close()
                self._lock_file = None

    def _fit(self, hooks, n_train, opt, sched, scaler, steps_per_epoch, best) -> dict[str, Any]:
        cfg = self.cfg
        params = [p for group in opt.param_groups for p in group["params"]]
        info = {"epoch": 0, "step": 0, "best_val_loss": float("inf"), "best_epoch": 0, "bad_epochs": 0,
                "history": [], "stopped_early": False}  # fmt: skip
        resumed = self._restore(hooks, opt, sched)
        if resumed is not None:
            info, best = resumed
            log.warning("resuming %s from epoch %d", self.state_dir, info["epoch"])
        t0 = time.perf_counter()
        while info["epoch"] < cfg.epochs and not info["stopped_early"]:
            epoch = info["epoch"]
            torch.manual_seed(hash_int(self.seed, self.draw, epoch))  # dropout: the same on resume
            gen = torch.Generator().manual_seed(hash_int(self.seed, self.draw, epoch, 1))
            order = np.random.default_rng([self.seed, self.draw, epoch]).permutation(n_train)
            hooks.train_mode(True)
            losses = []
            bar = tqdm(total=steps_per_epoch, desc=f"{self.desc} epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       disable=not self.progress, mininterval=2.0)  # fmt: skip
            for a in range(0, n_train, cfg.batch_size):
                with autocast(self.device, self.precision):
                    loss = hooks.batch_loss(order[a : a + cfg.batch_size], gen, epoch)
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
                sched.step()
                info["step"] += 1
                losses.append(float(loss.detach()))
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", refresh=False)  # redraw at mininterval only
                bar.update(1)
            bar.close()
            hooks.on_epoch_end(epoch)
            hooks.train_mode(False)
            with torch.no_grad(), autocast(self.device, self.precision):
                val_loss = float(hooks.validation_loss())
            info["history"].append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_loss})
            if val_loss < info["best_val_loss"] - cfg.min_delta:
                info.update(best_val_loss=val_loss, best_epoch=epoch + 1, bad_epochs=0)
                best = hooks.trainable_state()
            else:
                info["bad_epochs"] += 1
                info["stopped_early"] = info["bad_epochs"] >= cfg.patience
            info["epoch"] = epoch + 1
            if self.state_dir is not None:
                self._save(hooks, opt, sched, info, best)
            log.info("%s epoch %d: train %.4f val %.4f", self.desc, epoch + 1, info["history"][-1]["train_loss"],
                     val_loss)  # fmt: skip
        hooks.load_trainable_state(best)
        hooks.train_mode(False)
        info["train_s"] = time.perf_counter() - t0
        if self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)  # finished: nothing to resume
        return info


def write_checkpoint(folder: Path, weights: dict[str, dict[str, torch.Tensor]], opt, sched, info: dict) -> None:
    """A resumable training state in ``folder``: named weight sets (safetensors), the optimiser's
    and scheduler's state (safetensors + JSON) and ``info`` (JSON); no pickle. Written beside it
    and swapped in by renames only, so an interrupt at any moment leaves one whole checkpoint
    (the previous one under ``.old`` until the new one is in place)."""
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, tensors in weights.items():
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / f"{name}.safetensors"))
    state = opt.state_dict()
    tensors, meta = {}, {"param_groups": state["param_groups"], "state_keys": {}}
    for pid, st in state["state"].items():
        meta["state_keys"][str(pid)] = list(st)
        for k, v in st.items():
            tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous() if torch.is_tensor(v) else torch.tensor(v)
    if tensors:
        save_file(tensors, str(tmp / "optimizer.safetensors"))
    meta["scheduler"] = {k: v for k, v in sched.state_dict().items() if k != "lr_lambdas"}
    (tmp / "optimizer.json").write_text(json.dumps(meta))
    (tmp / "state.json").write_text(json.dumps(info))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def read_checkpoint(folder: Path | None, opt, sched, device: torch.device,
                    names: tuple[str, ...]) -> tuple[dict, dict[str, dict[str, torch.Tensor]]] | None:  # fmt: skip
    """``(info, weights by name)`` of :func:`write_checkpoint`'s folder, the optimiser and scheduler
    restored in place; None when there is none (a truncated one is set aside with a warning)."""
    if folder is None:
        return None
    old = folder.with_name(folder.name + ".old")
    if not folder.exists() and (old / "state.json").is_file():  # interrupted mid-swap
        os.replace(old, folder)
    if not (folder / "state.json").is_file():
        return None
    from safetensors.torch import load_file

    try:
        info = json.loads((folder / "state.json").read_text())
        weights = {n: load_file(str(folder / f"{n}.safetensors")) for n in names}
        meta = json.loads((folder / "optimizer.json").read_text())
        opt_file = folder / "optimizer.safetensors"
        tensors = load_file(str(opt_file)) if opt_file.is_file() else {}
        state = {int(pid): {k: tensors[f"{pid}.{k}"].to(device) if k != "step" else tensors[f"{pid}.{k}"]
                            for k in keys} for pid, keys in meta["state_keys"].items()}  # fmt: skip
        opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        sched.load_state_dict({**meta["scheduler"], "lr_lambdas": [None] * len(opt.param_groups)})
    except Exception as e:  # a truncated or foreign file: start again rather than wedge every run
        aside = folder.with_name(f"{folder.name}.corrupt-{int(time.time())}")
        os.replace(folder, aside)
        log.warning("checkpoint %s is unreadable (%s); set aside as %s, training from the start", folder,
                    type(e).__name__, aside.name)  # fmt: skip
        return None
    return info, weights
