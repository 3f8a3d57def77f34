"""MOMENT: per-timestep reconstruction error of channel-independent windows, zero-shot at budget
0 and fine-tuned on every training budget.

``fit`` loads the weights named by ``moment.checkpoint`` (hub id, local directory or
``random-init:<size>``, see :mod:`momentad.models.moment`). With no training data (budget 0) that
is all: zero-shot. With a budget's stretch of the train split it fine-tunes what
``moment.finetune.method`` names: ``lora`` (peft adapters on the T5 encoder, every base weight
frozen), ``head`` (momentfm's defaults: embedder and encoder frozen, the reconstruction head
trains, as TSB-AD's MOMENT_FT and MOMENT's tutorial do) or ``full`` (every weight).

Two recipes (``moment.zero_shot.recipe``) say how windows are cut, scored and trained on:
``momentad`` scores windows of ``window.length`` (stride ``window.eval_stride``), averages the
per-step errors of overlapping windows, and trains in :class:`momentad.training.TrainLoop`
(AdamW, cosine schedule, early stopping on validation, masked-patch ``reconstruction`` or a
supervised patch ``classification`` head); ``tsbad`` is TSB-AD 1.5's MOMENT
(:mod:`momentad.detectors._tsbad_recipe`). ``zero_shot.score: reconstruction+stats`` adds what
MOMENT's instance normalisation hides (:mod:`momentad.detectors._window_stats`).

Cost (CPU): one epoch touches ``budget x finetune.channels_per_window`` univariate sequences,
each a forward and a backward pass.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from momentad.budgets import FULL
from momentad.config import _fail, rng
from momentad.data import Split
from momentad.detectors import _tsbad_recipe as tsbad
from momentad.detectors._window_stats import Reference, moments_at
from momentad.detectors.base import Detector, RunContext, register
from momentad.errors import InputError, NotRun
from momentad.finetune import fault_channel_weights, patch_mask, sequences
from momentad.models.device import autocast, resolve_device
from momentad.models.lora import LoraTarget, Quantization
from momentad.models.moment import HUB_REVISIONS, is_hub_id
from momentad.training import LoopConfig, TrainLoop
from momentad.windows import CONTEXT_LENGTH, materialize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ZeroShotParams:
    """How windows are cut and scored (zero-shot and fine-tuned alike)."""

    recipe: Literal["momentad", "tsbad"]
    window: int = rng(ge=8, le=512)  # tsbad: the window TSB-AD slides at stride 1
    score: Literal["reconstruction", "reconstruction+stats"]
    channel_reduce: Literal["mean", "max", "topk_mean", "last"]
    topk: int = rng(ge=1)


@dataclass(frozen=True)
class FinetuneParams:
    method: Literal["lora", "head", "full"]
    full_split: bool  # also fine-tune on the whole train split (budget `full`; TSB-AD's MOMENT_FT)
    objective: Literal["reconstruction", "classification"]
    channels_per_window: int = rng(ge=1)
    epochs: int = rng(ge=1, le=1000)
    batch_size: int = rng(ge=1)
    lr: float = rng(gt=0)
    weight_decay: float = rng(ge=0)
    warmup_ratio: float = rng(ge=0, le=1)
    grad_clip: float = rng(gt=0)
    patience: int = rng(ge=1)
    mask_ratio: float = rng(ge=0.05, le=0.95)
    gradient_checkpointing: bool


@dataclass(frozen=True)
class LoraParams:
    rank: int = rng(ge=1, le=1024)
    alpha: float = rng(gt=0)
    dropout: float = rng(ge=0, lt=1)
    target_modules: list[LoraTarget]

    def check(self) -> None:
        if not self.target_modules:
            raise _fail("moment.lora.target_modules", "is empty; choose from q, k, v, o, wi_0, wi_1, wo")


@dataclass(frozen=True)
class MomentParams:
    """The ``moment`` section: the weights, then zero-shot scoring, fine-tuning and LoRA."""

    checkpoint: str
    revision: str | None
    offline: bool
    cache_dir: str
    batch_size: int = rng(ge=1)
    device: str
    precision: Literal["auto", "fp32", "bf16", "fp16"]
    quantization: Quantization
    # window: each window goes in at its own length (as TSB-AD feeds MOMENT; 8 patches for 64
    # steps); pad: left-padded to MOMENT's 512 with the padding masked (8x the compute at 64)
    context: Literal["window", "pad"]
    zero_shot: ZeroShotParams
    finetune: FinetuneParams
    lora: LoraParams

    def check(self) -> None:
        if self.zero_shot.recipe == "tsbad" and self.finetune.objective == "classification":
            raise _fail("moment.finetune.objective", "=classification has no TSB-AD counterpart; use "
                        "objective reconstruction with zero_shot.recipe tsbad, or recipe momentad")  # fmt: skip
        if self.quantization != "none" and self.finetune.method != "lora":
            raise _fail("moment.quantization", f"={self.quantization} quantises the frozen encoder under LoRA; "
                        f"finetune.method={self.finetune.method} trains unquantised weights: set "
                        "quantization none")  # fmt: skip
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise _fail("moment.device", f"={self.device!r}; use auto, cpu or cuda[:N]")
        if self.quantization != "none" and self.precision == "fp16":
            raise _fail("moment.quantization", f"={self.quantization} with moment.precision=fp16 is not supported; "
                        "use precision auto or bf16")  # fmt: skip
        # revision applies to hub ids only; a pin that belongs to another checkpoint would fail
        # later as "revision not found" (or silently load that commit of a fork)
        owner = next((repo for repo, sha in HUB_REVISIONS.items() if sha == self.revision), None)
        if owner and is_hub_id(self.checkpoint) and owner != self.checkpoint:
            fix = HUB_REVISIONS.get(self.checkpoint, f"a commit of {self.checkpoint} (or main)")
            raise _fail("moment.revision", f"={self.revision} is {owner}'s pinned commit, not "
                        f"{self.checkpoint}'s; set moment.revision to {fix}")  # fmt: skip


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


def window_batches(values: np.ndarray, index, batch_size: int, context: int = CONTEXT_LENGTH):
    """Yield (first sequence, x (b, 1, context), input mask (b, context)) over windows x channels.

    Channels are scored as independent univariate sequences, as MOMENT is channel-independent;
    flattening them lets one batch mix windows and channels.
    """
    x, mask = materialize(values, index, context)
    w, c, _ = x.shape
    seqs = x.reshape(w * c, 1, context)
    seq_mask = np.repeat(mask, c, axis=0)
    for a in range(0, w * c, batch_size):
        yield a, seqs[a : a + batch_size], seq_mask[a : a + batch_size]


PATCH_HEAD = "patch_head."


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


@register
class Moment(Detector):
    """MOMENT reconstruction error as the anomaly score; zero-shot or fine-tuned."""

    name = "moment"
    Params = MomentParams
    zero_shot = True
    trains = True
    full_split = False  # fine-tuning on the whole split is not few-shot, and costs budget x epochs

    def __init__(self, params: MomentParams, ctx: RunContext = RunContext()):
        super().__init__(params, ctx)
        self.head_: PatchHead | None = None
        self.adapted_ = False
        self.finetuned_: str | None = None  # the finetune.method that trained it
        self.score_in_train_mode_ = False  # TSB-AD leaves the model in training mode (dropout)
        self.stats_: Reference | None = None
        self.rec_median_: np.ndarray | None = None
        self.training_: dict[str, Any] | None = None
        self.quantized_layers_ = 0

    @classmethod
    def budgets(cls, sizes: list[int], options: MomentParams | None = None) -> list[int | str]:
        out = super().budgets(sizes, options)
        return out + [FULL] if options is not None and options.finetune.full_split else out

    def uses_labels(self) -> bool:
        return self.params.finetune.objective == "classification"

    # -- the weights --------------------------------------------------------------------------
    def _load_base(self) -> None:
        from momentad.models.moment import load_moment

        p = self.params
        self.device_ = resolve_device(p.device)
        torch.manual_seed(self.seed)
        self.model_, self.info_ = load_moment(p.checkpoint, self.seed, p.cache_dir, p.revision, p.offline)
        self.patch_len_ = int(self.model_.config.patch_len)
        if p.zero_shot.recipe == "tsbad":
            length, key = p.zero_shot.window, "moment.zero_shot.window"
        else:
            length, key = self.windowing()[0], "window.length"
        if length % self.patch_len_:
            raise InputError(f"params.yaml: {key}={length} must be a multiple of MOMENT's patch length "
                             f"{self.patch_len_} (MOMENT reads whole patches)")  # fmt: skip
        self.length_ = length
        self.context_ = CONTEXT_LENGTH if p.context == "pad" and p.zero_shot.recipe == "momentad" else length

    def _adapt(self) -> None:
        """Quantise (optionally) and wrap the encoder with LoRA."""
        from momentad.models.lora import add_lora, quantize_encoder

        p, lp = self.params, self.params.lora
        self.quantized_layers_ = quantize_encoder(self.model_, p.quantization)
        add_lora(self.model_, lp.rank, lp.alpha, lp.dropout, list(lp.target_modules),
                 p.finetune.gradient_checkpointing)  # fmt: skip
        self.adapted_ = True

    def _check_full_memory(self, batch_size: int) -> None:
        """Refuse ``finetune.method: full`` up front when weights, gradients, Adam's two moments
        and the activations of a batch cannot fit where it would run."""
        cfg = self.model_.config
        n = sum(q.numel() for q in self.model_.parameters())
        layers = int(cfg.t5_config["num_layers"])
        act = batch_size * (self.context_ // self.patch_len_) * int(cfg.d_model) * layers * 4 * 24
        need = 16 * n + act
        if self.device_.type == "cuda":
            free, where = torch.cuda.mem_get_info(self.device_)[0], f"{self.device_} has"
        else:
            free, where = _available_memory(), "this machine has"
        if free is not None and need > free:
            raise InputError(f"params.yaml: moment.finetune.method=full needs about {need / 2**30:.1f} GiB for "
                             f"{n / 1e6:.0f}M parameters (weights, gradients, Adam state, activations); {where} "
                             f"{free / 2**30:.1f} GiB free: use finetune.method lora or head, or a larger "
                             "GPU")  # fmt: skip

    def _make_trainable(self) -> None:
        """Unfreeze what ``finetune.method`` trains (momentfm loads embedder and encoder frozen)."""
        method = self.params.finetune.method
        if method == "lora":
            self._adapt()
        else:
            if method == "full":
                self._check_full_memory(self.params.finetune.batch_size)
                for q in self.model_.parameters():
                    q.requires_grad_(True)
            if self.params.zero_shot.recipe == "momentad":  # tsbad keeps momentfm's default (on)
                from momentad.models.lora import enable_checkpointing

                enable_checkpointing(self.model_, self.params.finetune.gradient_checkpointing)
        self.finetuned_ = method

    # -- training (hooks of momentad.training.TrainLoop) --------------------------------------
    def _fit(self, train: Split | None, val: Split | None) -> None:
        p = self.params
        lora = p.finetune.method == "lora"
        if train is not None and lora and p.quantization == "nf4" and resolve_device(p.device).type != "cuda":
            raise InputError("params.yaml: moment.quantization=nf4 trains only on CUDA (on CPU bitsandbytes' nf4 "
                             "layers break T5's dropout); use int8 or none on CPU")  # fmt: skip
        self._load_base()
        # TSB-AD never calls eval(): momentfm's from_pretrained leaves MOMENT in training mode, so
        # its zero-shot and fine-tuned scores alike carry dropout noise (here seeded)
        self.score_in_train_mode_ = p.zero_shot.recipe == "tsbad"
        if train is not None:
            self._make_trainable()
        self.model_.to(self.device_)
        if train is not None:
            (self._fit_tsbad if p.zero_shot.recipe == "tsbad" else self._fit_momentad)(train, val)
        if p.zero_shot.score == "reconstruction+stats":
            self._fit_stats(train)

    def _fit_tsbad(self, train: Split, val: Split | None) -> None:
        """TSB-AD's MOMENT_FT loop on the budget's rows (:func:`_tsbad_recipe.fit`)."""
        ft, w = self.params.finetune, self.params.zero_shot.window
        labels = train.labels if self.ctx.mask_anomalies else None
        stretches = [(train.values[a:b], None if labels is None else labels[a:b]) for a, b in train.segments]
        windows = sum(len(tsbad.starts(len(v), w, v.shape[1])) for v, _ in stretches if len(v) >= w)
        if not windows:
            raise NotRun(f"the training rows hold no {w}-step window (moment.zero_shot.window)")
        torch.manual_seed(self.seed)  # shuffling, masks and dropout, as a seeded TSB-AD run
        with tqdm(total=windows * ft.epochs, desc=f"moment draw {self.ctx.draw}", unit="win",
                  disable=not self.progress, leave=False, mininterval=2.0) as bar, _quiet_checkpoint():  # fmt: skip
            self.history_ = tsbad.fit(self.model_, stretches, w, ft.batch_size, ft.epochs, ft.lr, ft.mask_ratio,
                                      self.device_, bar.update)  # fmt: skip
        self.training_ = {"epoch": ft.epochs, "windows": windows, "train_loss": self.history_[-1]["train_loss"]}

    def _fit_momentad(self, train: Split, val: Split | None) -> None:
        p, ft = self.params, self.params.finetune
        classification = ft.objective == "classification"
        if classification:
            self.head_ = PatchHead(self.model_.config.d_model, self.patch_len_).to(self.device_)
        any_anomaly = train.index["any_anomaly"].to_numpy()
        use_all = self.ctx.mask_anomalies or classification
        rows = np.arange(len(train.index)) if use_all else np.flatnonzero(~any_anomaly)
        if len(rows) == 0:
            raise NotRun("the training span holds no anomaly-free window")
        weights = fault_channel_weights(train, rows) if classification else None
        c = self.context_
        self._train = sequences(train, rows, ft.channels_per_window, self.seed, self.ctx.draw, weights, c)
        if val is None:
            raise InputError("moment needs a validation split for early stopping")
        self._val = sequences(val, np.arange(len(val.index)), ft.channels_per_window, self.seed, self.ctx.draw,
                              context=c)  # fmt: skip
        if classification and self._train["labels"].sum() == 0:
            raise NotRun(f"moment.finetune.objective=classification: the {len(rows)} training windows hold no "
                         "labelled anomaly")  # fmt: skip
        pos = float(self._train["labels"].mean())
        self._pos_weight = (1 - pos) / pos if classification and pos > 0 else 1.0  # class imbalance
        cfg = LoopConfig(epochs=ft.epochs, batch_size=ft.batch_size, lr=ft.lr, patience=ft.patience,
                         weight_decay=ft.weight_decay, optimizer="adamw", schedule="cosine",
                         warmup_ratio=ft.warmup_ratio, grad_clip=ft.grad_clip)  # fmt: skip
        loop = TrainLoop(cfg, self.device_, p.precision, self.seed, self.ctx.draw, self.ctx.state_dir,
                         self.progress, desc=f"moment draw {self.ctx.draw}")  # fmt: skip
        self.training_ = loop.fit(self, len(self._train["x"]))
        self.history_ = self.training_["history"]
        del self._train, self._val

    def _fit_stats(self, train: Split | None) -> None:
        """The level/scale reference of ``zero_shot.score: reconstruction+stats``: non-overlapping
        windows of the scoring length over the whole train split (at most 256, evenly spaced),
        and their median reconstruction error per KPI, the unit the deviation is added in."""
        ref = self.ctx.reference if self.ctx.reference is not None else train
        if ref is None:
            raise InputError("moment.zero_shot.score=reconstruction+stats needs normal rows for its level/scale "
                             "reference: pass X to fit()")  # fmt: skip
        n = self.length_
        st = np.asarray([a + k * n for a, b in ref.segments for k in range((b - a) // n)], dtype=np.int64)
        if not len(st):
            raise NotRun(f"the train split holds no {n}-step window for the level/scale reference")
        if len(st) > 256:
            st = st[np.linspace(0, len(st) - 1, 256).round().astype(int)]
        values = ref.values
        self.stats_ = Reference(*moments_at(values, st, n))
        index = pd.DataFrame({"start": st, "stop": st + n})
        self._scoring_mode()
        err = []
        with torch.inference_mode(), autocast(self.device_, self.params.precision), _quiet_checkpoint():
            for _, xb, mb in window_batches(values, index, self.params.batch_size, self.context_):
                x, m = torch.from_numpy(xb).to(self.device_), torch.from_numpy(mb).to(self.device_)
                err.append(self.per_step(x, m)[:, -n:].float().mean(1).cpu().numpy())
        err = np.concatenate(err)
        self.rec_median_ = np.maximum(np.median(err.reshape(len(st), -1), axis=0), 1e-12)

    def _with_stats(self, err: np.ndarray, values: np.ndarray, st: np.ndarray, length: int) -> np.ndarray:
        """(windows, KPIs) errors -> error in units of the training median + half the squared
        robust z of level and log-scale (each ~1 on normal windows)."""
        if self.stats_ is None:
            return err
        return err / self.rec_median_ + self.stats_.deviation(*moments_at(values, st, length)) / 2

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = [q for q in self.model_.parameters() if q.requires_grad]
        return params + (list(self.head_.parameters()) if self.head_ is not None else [])

    def train_mode(self, on: bool) -> None:
        self.model_.train(on)
        if self.head_ is not None:
            self.head_.train(on)

    def on_epoch_end(self, epoch: int) -> None:
        pass

    def _batch(self, data: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v[idx]).to(self.device_) for k, v in data.items()}

    def _loss(self, b: dict[str, torch.Tensor], gen: torch.Generator) -> torch.Tensor:
        x, m, y = b["x"], b["mask"], b["labels"]
        pl = self.patch_len_
        if self.head_ is None:
            vis = patch_mask(len(x), self.params.finetune.mask_ratio, gen, pl, x.shape[-1]).to(self.device_)
            rec = self.model_(x_enc=x, input_mask=m, mask=vis).reconstruction[:, 0].float()
            # masked, observed, and not labelled anomalous: learn what normal looks like
            w = ((vis == 0) & (m == 1) & (y == 0)).float()
            return (((rec - x[:, 0]) ** 2) * w).sum() / w.sum().clamp(min=1)
        logits = self.head_(self.model_, x, m).float()
        target = y.reshape(len(y), -1, pl).amax(dim=2)  # a patch is anomalous if any step is
        observed = m.reshape(len(m), -1, pl).amin(dim=2).float()
        bce = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, reduction="none", pos_weight=torch.tensor(self._pos_weight, device=self.device_)
        )
        return (bce * observed).sum() / observed.sum().clamp(min=1)

    def batch_loss(self, idx: np.ndarray, gen: torch.Generator, epoch: int) -> torch.Tensor:
        return self._loss(self._batch(self._train, idx), gen)

    def validation_loss(self) -> float:
        gen = torch.Generator().manual_seed(12345)  # the same masks every epoch
        total, n = 0.0, len(self._val["x"])
        bs = self.params.finetune.batch_size
        for a in range(0, n, bs):
            idx = np.arange(a, min(a + bs, n))
            total += float(self._loss(self._batch(self._val, idx), gen)) * len(idx)
        return total / max(n, 1)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        state = {n: q.detach().cpu().clone() for n, q in self.model_.named_parameters() if q.requires_grad}
        if self.head_ is not None:  # MOMENT's own head is "head.*": the patch classifier gets its own prefix
            state.update({f"{PATCH_HEAD}{k}": v.detach().cpu().clone() for k, v in self.head_.state_dict().items()})
        return state

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model_.named_parameters())
        missing = [k for k in state if not k.startswith(PATCH_HEAD) and k not in params]
        if missing:
            raise InputError(f"fine-tuned weights hold {missing[0]}, which the model lacks; they were trained with "
                             "other moment.lora / moment.checkpoint settings")  # fmt: skip
        with torch.no_grad():
            for k, v in state.items():
                if not k.startswith(PATCH_HEAD):
                    params[k].copy_(v.to(params[k].device))
        if self.head_ is not None:
            n = len(PATCH_HEAD)
            self.head_.load_state_dict({k[n:]: v for k, v in state.items() if k.startswith(PATCH_HEAD)})

    # -- scoring ------------------------------------------------------------------------------
    def per_step(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, 1, context) sequences -> (b, context) anomaly evidence per step: squared
        reconstruction error (or the classification head's anomaly probability)."""
        if self.head_ is not None:
            prob = torch.sigmoid(self.head_(self.model_, x, mask).float())
            return prob.repeat_interleave(self.head_.patch_len, dim=1)
        rec = self.model_(x_enc=x, input_mask=mask).reconstruction
        return (x[:, 0].float() - rec[:, 0].float()) ** 2

    def _scoring_mode(self) -> None:
        if self.score_in_train_mode_:  # as TSB-AD scores after fit: dropout on, from a known state
            self.model_.train()
            torch.manual_seed(self.seed)
        else:
            self.model_.eval()

    @torch.inference_mode()
    def channel_scores(self, split: Split) -> np.ndarray:
        """(timesteps, channels) per-step evidence: the recipe's window errors mapped to steps."""
        if self.params.zero_shot.recipe == "tsbad":
            return self._channel_scores_tsbad(split)
        values, index = split.values, split.index
        c = values.shape[1]
        acc = np.zeros((len(split), c), dtype=np.float64)
        count = np.zeros(len(split), dtype=np.float64)
        self._scoring_mode()
        bar = tqdm(total=len(index) * c, desc=f"moment {split.name}", unit="seq", disable=not self.progress,
                   leave=False, mininterval=2.0)  # fmt: skip
        lengths = (index["stop"] - index["start"]).to_numpy()
        for length in np.unique(lengths):  # one group unless a short segment has a shorter window
            sub = index[lengths == length]
            err = np.empty((len(sub) * c, length), dtype=np.float32)
            with autocast(self.device_, self.params.precision):
                for a, xb, mb in window_batches(values, sub, self.params.batch_size, self.context_):
                    x = torch.from_numpy(xb).to(self.device_)
                    m = torch.from_numpy(mb).to(self.device_)
                    err[a : a + len(xb)] = self.per_step(x, m)[:, -length:].float().cpu().numpy()
                    bar.update(len(xb))
            rows = sub["start"].to_numpy()[:, None] + np.arange(length)[None, :]
            err = err.reshape(len(sub), c, length)
            if self.stats_ is not None:  # per window: the window's mean error, then its statistics
                err = np.repeat(self._with_stats(err.mean(axis=2), values, sub["start"].to_numpy(), length)[..., None],
                                length, axis=2)  # fmt: skip
            np.add.at(acc, rows, err.transpose(0, 2, 1))
            np.add.at(count, rows, 1.0)
        bar.close()
        with np.errstate(invalid="ignore"):  # rows no window covers stay NaN
            return acc / count[:, None]

    def _channel_scores_tsbad(self, split: Split) -> np.ndarray:
        """TSB-AD's scoring (:func:`_tsbad_recipe.window_errors`) of each segment on its own."""
        w, values = self.params.zero_shot.window, split.values
        out = np.full(values.shape, np.nan)
        self._scoring_mode()
        bar = tqdm(total=sum(max(1, len(tsbad.starts(b - a, w, values.shape[1]))) for a, b in split.segments),
                   desc=f"moment {split.name}", unit="win", disable=not self.progress, leave=False,
                   mininterval=2.0)  # fmt: skip
        with autocast(self.device_, self.params.precision), _quiet_checkpoint():
            for a, b in split.segments:
                v = values[a:b]
                per = tsbad.window_errors(self.model_, v, w, self.params.batch_size, self.device_, self.patch_len_,
                                          bar.update)  # fmt: skip
                if b - a < w:
                    out[a:b] = self._with_stats(per, v, np.zeros(1, dtype=np.int64), b - a)
                    continue
                per = self._with_stats(per, v, tsbad.starts(b - a, w, v.shape[1]), w)
                out[a:b] = tsbad.to_steps(per, b - a, w)
        bar.close()
        return out

    def _score(self, split: Split) -> np.ndarray:
        zp = self.params.zero_shot
        return reduce_channels(self._keep_channels(split, self.channel_scores(split)), zp.channel_reduce, zp.topk)

    # -- what outputs record ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info = self.info_.to_dict()
        info["recipe"] = self.params.zero_shot.recipe
        info["score"] = self.params.zero_shot.score
        if self.finetuned_ in ("head", "full"):
            info.update(trainable_parameters=sum(q.numel() for q in self.trainable_parameters()),
                        adapter=self.finetuned_)  # fmt: skip
        if self.adapted_:
            lp = self.params.lora
            info.update(trainable_parameters=sum(q.numel() for q in self.trainable_parameters()), adapter="lora",
                        quantization=self.params.quantization,
                        lora={"rank": lp.rank, "alpha": lp.alpha, "dropout": lp.dropout,
                              "target_modules": list(lp.target_modules)})  # fmt: skip
        return info

    def n_parameters(self) -> int:
        return self.info_.parameters

    def extra(self) -> dict[str, Any]:
        out: dict[str, Any] = {"device": str(self.device_)}
        t = self.training_
        if t is not None and "history" not in t:  # the tsbad loop: fixed epochs, no validation
            out.update(training={"recipe": "tsbad", "method": self.finetuned_, "epochs_run": t["epoch"],
                                 "windows": t["windows"], "train_loss": round(t["train_loss"], 6)})  # fmt: skip
        elif t is not None:
            out.update(quantized_layers=self.quantized_layers_,
                       training={"objective": self.params.finetune.objective, "epochs_run": t["epoch"],
                                 "best_epoch": t["best_epoch"], "best_val_loss": round(t["best_val_loss"], 6),
                                 "stopped_early": t["stopped_early"]})  # fmt: skip
        return out

    # -- artifacts: a reference to the weights (they live in the model cache) + peft's adapter --
    def _save_state(self, folder: Path) -> dict[str, Any]:
        state: dict[str, Any] = {"weights": self.info_.to_dict(), "score_in_train_mode": self.score_in_train_mode_}
        if self.stats_ is not None:
            state["stats"] = {**self.stats_.state(), "rec_median": self.rec_median_.tolist()}
        if self.finetuned_ in ("head", "full"):
            from safetensors.torch import save_file

            save_file(
                {k: v.contiguous() for k, v in self.trainable_state().items()}, str(folder / "finetuned.safetensors")
            )
            state.update(finetuned="finetuned.safetensors", method=self.finetuned_, draw=self.ctx.draw)
        if not self.adapted_:
            return state
        from momentad.models.lora import save_adapter

        save_adapter(self.model_, folder / "adapter", self.info_.checkpoint)
        state.update(adapter="adapter", draw=self.ctx.draw)
        if self.head_ is not None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in self.head_.state_dict().items()}, str(folder / "head.safetensors"))
            state["head"] = "head.safetensors"
        return state

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        self._load_base()
        self.score_in_train_mode_ = bool(state.get("score_in_train_mode", False))
        if "stats" in state:
            self.stats_ = Reference.from_state(state["stats"])
            self.rec_median_ = np.asarray(state["stats"]["rec_median"])
        if "finetuned" in state:
            from safetensors.torch import load_file

            self.finetuned_ = state["method"]
            self.load_trainable_state(load_file(str(folder / state["finetuned"])))
        if "adapter" in state:
            from peft import PeftModel

            from momentad.models.lora import quantize_encoder

            self.quantized_layers_ = quantize_encoder(self.model_, self.params.quantization)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model_.encoder = PeftModel.from_pretrained(self.model_.encoder, str(folder / state["adapter"]))
            self.adapted_ = True
        if "head" in state:
            from safetensors.torch import load_file

            self.head_ = PatchHead(self.model_.config.d_model, self.patch_len_)
            self.head_.load_state_dict(load_file(str(folder / state["head"])))
            self.head_.to(self.device_)
        self.model_.to(self.device_).eval()


@contextlib.contextmanager
def _quiet_checkpoint():
    """momentfm's T5 checkpoints activations in training mode (TSB-AD keeps that); with the
    encoder frozen torch warns on every forward pass, which is harmless."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*use_reentrant.*")
        warnings.filterwarnings("ignore", message="None of the inputs have requires_grad")
        yield


def _available_memory() -> int | None:
    """Bytes of memory the kernel says a new allocation can get (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
