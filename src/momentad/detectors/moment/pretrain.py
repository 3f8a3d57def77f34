"""MOMENT's pre-training objective, here: on a corpus (the ``pretrain`` stage) and on a dataset's
own unlabelled history (``moment.adapt``).

The objective is MOMENT's (moment-research ``tasks/pretrain.py``): windows of 512 steps in
patches of 8, 30 % of the patches masked, the mean squared error on the masked and observed
steps only; AdamW, linear warm-up then cosine decay, gradient clipping. Windows and masks of
step ``k`` are drawn from ``(seed, k)``, so a run resumed from a checkpoint, or spread over N
processes (``torchrun``: torch.distributed DDP, gloo on CPU, nccl on GPU), takes exactly the same
steps as one uninterrupted process: each process takes its share of the global batch, and the
loss is divided by the global count of masked steps before DDP averages the gradients.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from momentad.config import _fail, rng
from momentad.detectors.moment.scoring import masked_loss, patch_mask, quiet_checkpoint
from momentad.device import autocast
from momentad.errors import InputError

log = logging.getLogger(__name__)

SIZES = Literal["tiny", "mini", "small", "base", "large"]


@dataclass(frozen=True)
class PretrainParams:
    """params.yaml's ``pretrain`` section (params.yaml documents each key)."""

    name: str
    size: SIZES
    corpus: str
    synthetic: int = rng(ge=0, le=1_000_000)
    synthetic_length: int = rng(ge=512, le=100_000)
    holdout: float = rng(ge=0, lt=1)
    steps: int = rng(ge=1, le=10_000_000)
    batch_size: int = rng(ge=1)
    lr: float = rng(gt=0)
    min_lr: float = rng(ge=0)
    warmup_steps: int = rng(ge=0)
    weight_decay: float = rng(ge=0)
    grad_clip: float = rng(gt=0)
    mask_ratio: float = rng(ge=0.05, le=0.95)
    dropout: float = rng(ge=0, lt=1)
    eval_every: int = rng(ge=1)
    eval_windows: int = rng(ge=1)
    device: str
    precision: Literal["auto", "fp32", "bf16", "fp16"]

    def check(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise _fail("pretrain.name", f"={self.name!r}; use a plain folder name such as mini")
        if self.min_lr > self.lr:
            raise _fail("pretrain.min_lr", f"={self.min_lr} is above pretrain.lr={self.lr}; make it lower")


@dataclass(frozen=True)
class AdaptParams:
    """``moment.adapt``: continue pre-training on the dataset's own train split, no labels."""

    steps: int = rng(ge=0, le=1_000_000)  # 0: no adaptation
    batch_size: int = rng(ge=1)
    lr: float = rng(gt=0)
    warmup_steps: int = rng(ge=0)
    weight_decay: float = rng(ge=0)
    grad_clip: float = rng(gt=0)
    mask_ratio: float = rng(ge=0.05, le=0.95)


@dataclass(frozen=True)
class Objective:
    """The optimisation settings both uses share."""

    steps: int
    batch_size: int
    lr: float
    min_lr: float
    warmup_steps: int
    weight_decay: float
    grad_clip: float
    mask_ratio: float


class Windows:
    """Training windows of ``length`` steps from a list of series: window ``i`` of the whole list
    is a start in one series, every start equally likely (long series give more windows)."""

    def __init__(self, series: list[np.ndarray], length: int):
        self.series = [np.asarray(s, dtype=np.float32) for s in series if len(s) >= length]
        self.length = length
        counts = np.array([len(s) - length + 1 for s in self.series], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(counts)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def take(self, picks: np.ndarray) -> np.ndarray:
        """(len(picks), length) float32 windows for global window numbers ``picks``."""
        which = np.searchsorted(self.offsets, picks, side="right") - 1
        out = np.empty((len(picks), self.length), dtype=np.float32)
        for i, (s, p) in enumerate(zip(which, picks, strict=True)):
            start = int(p - self.offsets[s])
            out[i] = self.series[s][start : start + self.length]
        return out

    def batch(self, seed: int, step: int, size: int) -> np.ndarray:
        """The ``size`` windows of step ``step`` (the same on every process)."""
        return self.take(np.random.default_rng([seed, step, 31]).integers(0, len(self), size))

    def fixed(self, seed: int, size: int) -> np.ndarray:
        """``size`` windows spread over the series (the held-out loss reads the same ones always)."""
        n = len(self)
        return self.take(np.unique(np.linspace(0, n - 1, min(size, n)).round().astype(np.int64)))


@dataclass
class World:
    """This process's place among ``torchrun``'s processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> slice:
        per = n // self.size
        return slice(self.rank * per, (self.rank + 1) * per)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.size == 1:
            return value
        import torch.distributed as dist

        out = value.detach().clone()
        dist.all_reduce(out)
        return out


def join(device: torch.device) -> World:
    """torch.distributed's process group when started by ``torchrun`` (gloo on CPU, nccl on GPU)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return World()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def _lr_at(step: int, cfg: Objective) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at the last step."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    done = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * done))


def _mask(seed: int, step: int, size: int, ratio: float, patch_len: int, length: int,
          tag: int = 37) -> torch.Tensor:  # fmt: skip
    """The masks of step ``step`` (``tag`` 41: the held-out windows' fixed masks)."""
    gen = torch.Generator().manual_seed(int(np.random.default_rng([seed, step, tag]).integers(2**62)))
    return patch_mask(size, ratio, gen, patch_len, length)


@torch.no_grad()
def held_out_loss(model: torch.nn.Module, windows: np.ndarray, ratio: float, seed: int, device: torch.device,
                  precision: str = "fp32", batch: int = 64) -> float:  # fmt: skip
    """Masked-patch MSE on fixed windows with fixed masks (comparable across steps and models)."""
    was = model.training
    model.eval()
    total = count = 0.0
    patch_len = int(model.config.patch_len)
    mask = _mask(seed, 0, len(windows), ratio, patch_len, windows.shape[1], tag=41)
    for a in range(0, len(windows), batch):
        x = torch.from_numpy(windows[a : a + batch])[:, None, :].to(device)
        ones = torch.ones(x.shape[0], x.shape[2], dtype=torch.long, device=device)
        with autocast(device, precision), quiet_checkpoint():
            s, c = masked_loss(model, x, ones, mask[a : a + batch].to(device))
        total, count = total + float(s), count + float(c)
    model.train(was)
    return total / max(count, 1.0)


def set_dropout(model: torch.nn.Module, p: float) -> None:
    """Every dropout's rate (the checkpoint's config keeps MOMENT's own): the layers, and T5's
    attention, which holds its rate as a float and draws from torch's global generator."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = p
        elif isinstance(getattr(m, "dropout", None), float):
            m.dropout = p


def train(model: torch.nn.Module, windows: Windows, cfg: Objective, seed: int, device: torch.device,
          precision: str = "fp32", held_out: np.ndarray | None = None, eval_every: int = 0,
          world: World = World(), state_dir: Path | None = None, progress: bool = False,
          desc: str = "pretrain") -> dict[str, Any]:  # fmt: skip
    """Train every weight of ``model`` with the masked objective for ``cfg.steps`` steps; returns
    the history (train and held-out loss per ``eval_every`` steps) and what the run saw. With
    ``state_dir`` the run checkpoints every ``eval_every`` steps and resumes from there."""
    from momentad.training import read_checkpoint, write_checkpoint

    if cfg.batch_size % world.size:
        raise InputError(f"params.yaml: pretrain.batch_size={cfg.batch_size} is the global batch, which "
                         f"{world.size} processes cannot share evenly; use a multiple of {world.size} or "
                         f"torchrun --nproc_per_node {_divisor(cfg.batch_size, world.size)}")  # fmt: skip
    from momentad.detectors.moment.lora import enable_checkpointing

    length, patch_len = windows.length, int(model.config.patch_len)
    torch.manual_seed(seed)  # whatever still draws from torch's generator (dropout > 0) is seeded
    for name, q in model.named_parameters():
        # T5's token table never takes part (MOMENT feeds patch embeddings); trained, DDP would wait for its gradient
        q.requires_grad_(not name.endswith("embed_tokens.weight"))
    enable_checkpointing(model, False)  # momentfm switches it on: ~25 % more compute for memory not needed here
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: _lr_at(k, cfg) / cfg.lr)
    info: dict[str, Any] = {"step": 0, "history": [], "samples": 0}
    found = read_checkpoint(state_dir, opt, sched, device, ("model",))  # every process: the same state
    if found is not None:
        info, weights = found
        model.load_state_dict(weights["model"])
        log.warning("resuming %s from step %d", state_dir, info["step"])
    net: torch.nn.Module = model
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if held_out is not None and not info["history"]:
        info["history"].append({"step": 0, "train_loss": None,
                                "held_out_loss": held_out_loss(model, held_out, cfg.mask_ratio, seed, device,
                                                               precision)})  # fmt: skip
    local = world.share(cfg.batch_size)
    fp16 = precision == "fp16" and device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=fp16)
    t0, first, recent = time.perf_counter(), info["step"], []
    bar = tqdm(total=cfg.steps, initial=info["step"], desc=desc, unit="step", disable=not (progress and world.main),
               leave=False, mininterval=2.0)  # fmt: skip
    while info["step"] < cfg.steps:
        step = info["step"]
        x = torch.from_numpy(windows.batch(seed, step, cfg.batch_size)[local])[:, None, :].to(device)
        vis = _mask(seed, step, cfg.batch_size, cfg.mask_ratio, patch_len, length)[local].to(device)
        ones = torch.ones(x.shape[0], length, dtype=torch.long, device=device)
        with autocast(device, precision), quiet_checkpoint():
            total, count = masked_loss(net, x, ones, vis)
        global_count = world.sum(count.detach()).clamp(min=1)
        loss = total / global_count * world.size  # DDP averages: the mean over the global batch
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(opt)
        scaler.update()
        sched.step()
        recent.append(float(world.sum(total.detach()) / global_count))
        info["step"] += 1
        info["samples"] += cfg.batch_size
        bar.update(1)
        last = info["step"] == cfg.steps
        if eval_every and (info["step"] % eval_every == 0 or last):
            row = {"step": info["step"], "train_loss": float(np.mean(recent))}
            if held_out is not None:
                row["held_out_loss"] = held_out_loss(model, held_out, cfg.mask_ratio, seed, device, precision)
            info["history"].append(row)
            recent = []
            rate = (info["step"] - first) / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(loss=f"{row['train_loss']:.4f}", refresh=False)
            log.info("%s step %d/%d: train %.4f held-out %s (%.2f steps/s, %d samples)", desc, info["step"], cfg.steps,
                     row["train_loss"], f"{row['held_out_loss']:.4f}" if "held_out_loss" in row else "-", rate,
                     info["samples"])  # fmt: skip
            if state_dir is not None and world.main and not last:
                write_checkpoint(state_dir, {"model": model.state_dict()}, opt, sched, info)
    bar.close()
    model.eval()
    info["steps_per_s"] = round((info["step"] - first) / max(time.perf_counter() - t0, 1e-9), 3)
    return info


def _divisor(batch: int, size: int) -> int:
    """The largest process count up to ``size`` that divides ``batch``."""
    return next(k for k in range(size, 0, -1) if batch % k == 0)


def save_checkpoint(model: torch.nn.Module, folder: Path, marker: dict[str, Any], prints: np.ndarray,
                    dropout: float = 0.1) -> None:  # fmt: skip
    """The model in the save_pretrained layout (config.json + model.safetensors, no pickle), this
    project's marker and the corpus fingerprint, written atomically into ``folder``."""
    from safetensors.numpy import save_file

    from momentad.detectors.moment.weights import MARKER
    from momentad.io import atomic_dir

    set_dropout(model, dropout)
    with atomic_dir(folder) as tmp, contextlib.redirect_stdout(None):
        model.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n")
        save_file({"hashes": np.ascontiguousarray(prints)}, str(tmp / "corpus_fingerprint.safetensors"))
        (tmp / "README.md").unlink(missing_ok=True)  # save_pretrained's empty model card template
        for f in tmp.iterdir():
            f.chmod(0o644)


# -- the pretrain stage's pieces --------------------------------------------------------------
CONTEXT = 512  # MOMENT's input length: pre-training windows are whole contexts


def precision(asked: str, device: torch.device) -> str:
    """``auto``: bf16 on CUDA, fp32 on CPU."""
    return ("bf16" if device.type == "cuda" else "fp32") if asked == "auto" else asked


def initial_model(size: str, seed: int) -> tuple[torch.nn.Module, Any]:
    """MOMENT-``size`` with the seeded random weights ``random-init:<size>`` loads: pre-training
    starts from exactly the weights the study's random-init variant scores with."""
    from momentad.detectors.moment.weights import load_moment

    return load_moment(f"random-init:{size}", seed, Path(".cache") / "models")


def check_no_evaluation_series(public: list[Any], evaluation: list[tuple[str, str, np.ndarray]]) -> None:
    """Refuse a corpus that shares a stretch with an evaluation series, naming both."""
    from momentad.detectors.moment.corpus import fingerprint, lined_up, window_hashes_at

    prints = [fingerprint([s.values]) for s in public]
    every = np.unique(np.concatenate(prints)) if prints else np.empty(0, dtype=np.uint64)
    for name, kpi, values in evaluation:
        hashed = window_hashes_at(values)  # once per series: the corpus-wide test rules most out
        if not lined_up(hashed, every):
            continue
        for series, found in zip(public, prints, strict=True):
            if lined_up(hashed, found):
                raise InputError(f"pretrain.corpus: {series.name} shares a stretch with the evaluation dataset {name} "
                                 f"(KPI {kpi}); remove that file from the corpus: a model pretrained on it would be "
                                 "scored on what it has seen")  # fmt: skip


def prepare_corpus(p: PretrainParams, seed: int, evaluation: Callable[[], list[tuple[str, str, np.ndarray]]]
                   ) -> dict[str, Any]:  # fmt: skip
    """The corpus read and checked against ``evaluation()`` (the evaluation series, read only once the
    corpus itself is sound), the synthetic series added, the held-out series set apart."""
    from momentad.detectors.moment.corpus import digest, fingerprint, read_corpus, split, synthesize

    public = read_corpus(Path(p.corpus))
    longest = max(len(s.values) for s in public)
    if longest < CONTEXT:
        raise InputError(f"{p.corpus}: every series is shorter than MOMENT's {CONTEXT}-step window (the longest has "
                         f"{longest} values); add longer series")  # fmt: skip
    check_no_evaluation_series(public, evaluation())
    kept, held = split(public, p.holdout, seed)
    synthetic = synthesize(p.synthetic, p.synthetic_length, seed)
    train_windows = Windows([s.values for s in kept + synthetic], CONTEXT)
    held_out = Windows([s.values for s in held], CONTEXT)
    values = sum(len(s.values) for s in public)
    name = Path(p.corpus).name
    return {"train": train_windows, "held_out": held_out.fixed(seed, p.eval_windows) if len(held_out) else None,
            "fingerprint": fingerprint([s.values for s in public]), "digest": digest(public + synthetic),
            "public": len(public), "values": values, "held_out_series": [s.name for s in held],
            "description": f"{name} ({len(public)} public series, {values:,} values; {len(held)} held out) + "
                           f"{p.synthetic:,} synthetic series",
            "corpus": f"{name} + {p.synthetic:,} synthetic series"}  # fmt: skip


def run_key(p: PretrainParams, seed: int, corpus_digest: str) -> str:
    """What a resumable run is (its settings, corpus and the code that trains it)."""
    import hashlib
    from dataclasses import asdict

    key = {"params": asdict(p), "seed": seed, "corpus": corpus_digest}
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode())
    for f in ("pretrain.py", "corpus.py", "scoring.py"):
        h.update((Path(__file__).parent / f).read_bytes())
    return h.hexdigest()[:16]


def marker(p: PretrainParams, seed: int, data: dict[str, Any], run: dict[str, Any], parameters: int) -> dict:
    """What the checkpoint says of itself (``momentad_init.json``): origin ``here``, and on what
    and how long it was pretrained (no timings: a rebuild writes the same bytes)."""
    hist = run["history"]
    return {"origin": "here", "size": p.size, "seed": seed, "parameters": parameters,
            "pretraining": {"corpus": data["corpus"], "corpus_detail": data["description"],
                            "corpus_digest": data["digest"], "steps": p.steps, "batch_size": p.batch_size,
                            "samples": run["samples"], "window": CONTEXT, "mask_ratio": p.mask_ratio, "lr": p.lr,
                            "objective": "MOMENT's masked-patch reconstruction (MSE on masked, observed steps)",
                            "random_init_held_out_loss": round(hist[0]["held_out_loss"], 6)
                            if hist[0].get("held_out_loss") is not None else None,
                            "held_out_loss": round(hist[-1]["held_out_loss"], 6)
                            if hist[-1].get("held_out_loss") is not None else None,
                            "held_out_series": data["held_out_series"]}}  # fmt: skip


def loss_frame(history: list[dict[str, Any]]) -> Any:
    """The loss curve as the DVC plot reads it: step, train and held-out loss."""
    import pandas as pd

    frame = pd.DataFrame(history, columns=["step", "train_loss", "held_out_loss"])
    return frame.round(6)
