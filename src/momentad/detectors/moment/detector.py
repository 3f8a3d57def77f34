"""MOMENT: per-timestep reconstruction error of channel-independent windows, zero-shot at budget
0 and fine-tuned on every training budget.

``fit`` loads the weights named by ``moment.checkpoint`` (hub id, local directory or
``random-init:<size>``, :mod:`.weights`). With no training data (budget 0) that is all:
zero-shot. With a budget's stretch of the train split it fine-tunes what
``moment.finetune.method`` names: ``lora`` (peft adapters on the T5 encoder, every base weight
frozen), ``head`` (momentfm's defaults: embedder and encoder frozen, the reconstruction head
trains, as TSB-AD's MOMENT_FT and MOMENT's tutorial do) or ``full`` (every weight). How windows
are cut, scored and trained on is the recipe's (``moment.zero_shot.recipe``, :mod:`.recipes`),
picked once here. ``zero_shot.score: reconstruction+stats`` adds what MOMENT's instance
normalisation hides (:mod:`.level_scale`), whatever the recipe.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from momentad.budgets import FULL, Budget
from momentad.data import Split
from momentad.detectors.base import Detector, RunContext, register
from momentad.detectors.moment.level_scale import Reference, moments_at
from momentad.detectors.moment.params import MomentParams
from momentad.detectors.moment.recipes import Recipe, recipe_class
from momentad.detectors.moment.scoring import quiet_checkpoint, reduce_channels, window_batches
from momentad.device import autocast, resolve_device
from momentad.errors import InputError, NotRun


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
        self.recipe: Recipe = recipe_class(params.zero_shot.recipe)(self)
        self.adapted_ = False  # LoRA adapters on the encoder
        self.finetuned_: str | None = None  # the finetune.method that trained it
        self.stats_: Reference | None = None
        self.rec_median_: np.ndarray | None = None
        self.quantized_layers_ = 0
        self.adapted_to_: dict[str, Any] | None = None  # moment.adapt's run, where it ran

    @classmethod
    def budgets(cls, sizes: list[int], options: MomentParams | None = None) -> list[Budget]:
        out = super().budgets(sizes, options)
        return out + [FULL] if options is not None and options.finetune.full_split else out

    def uses_labels(self) -> bool:
        return self.params.finetune.objective == "classification"

    # -- the weights --------------------------------------------------------------------------
    def _load_base(self) -> None:
        from momentad.detectors.moment.weights import load_moment

        p = self.params
        self.device_ = resolve_device(p.device)
        torch.manual_seed(self.seed)
        self.model_, self.info_ = load_moment(p.checkpoint, self.seed, p.cache_dir, p.revision, p.offline)
        self.patch_len_ = int(self.model_.config.patch_len)
        length, key = self.recipe.length()
        if length % self.patch_len_:
            raise InputError(f"params.yaml: {key}={length} must be a multiple of MOMENT's patch length "
                             f"{self.patch_len_} (MOMENT reads whole patches)")  # fmt: skip
        self.length_ = length
        self.context_ = self.recipe.context(length)

    def _adapt_to(self, history: Split | None) -> None:
        """``moment.adapt``: MOMENT's masked objective for ``adapt.steps`` steps on windows of the
        scoring length from every KPI of the train split (labels never read), once per (weights,
        settings, data): the result is cached beside the random-init checkpoints."""
        import hashlib

        from momentad.detectors.moment import pretrain as pt
        from momentad.detectors.moment.lora import enable_checkpointing

        a, n = self.params.adapt, self.length_
        if history is None:
            raise InputError("params.yaml: moment.adapt needs the train split: pass X to fit() (or set "
                             "moment.adapt.steps: 0)")  # fmt: skip
        series = [history.values[s:e, k] for s, e in history.segments for k in range(history.values.shape[1])]
        windows = pt.Windows(series, n)
        if not len(windows):
            longest = max((e - s for s, e in history.segments), default=0)
            raise InputError(f"params.yaml: moment.adapt needs a stretch of {n} train rows without a gap (the scoring "
                             f"window); the longest has {longest}: lower window.length or set moment.adapt.steps: "
                             "0")  # fmt: skip
        key = hashlib.sha256(json.dumps([self.info_.path, self.info_.revision, asdict(a), n, self.seed]).encode()
                             + history.values.tobytes()).hexdigest()[:20]  # fmt: skip
        cached = Path(self.params.cache_dir) / "adapted" / key / "model.safetensors"
        frozen = {name: q.requires_grad for name, q in self.model_.named_parameters()}
        if cached.is_file():
            from safetensors.torch import load_file

            self.model_.load_state_dict(load_file(str(cached)))
            run = json.loads((cached.parent / "run.json").read_text())
        else:
            torch.manual_seed(self.seed)
            objective = pt.Objective(a.steps, a.batch_size, a.lr, a.lr / 10, a.warmup_steps, a.weight_decay,
                                     a.grad_clip, a.mask_ratio)  # fmt: skip
            run = pt.train(self.model_, windows, objective, self.seed, self.device_,
                           pt.precision(self.params.precision, self.device_), progress=self.progress,
                           desc="moment adapt")  # fmt: skip
            run = {"steps": a.steps, "samples": run["samples"], "windows": len(windows)}
            # never cache a diverged run
            if not all(bool(q.isfinite().all()) for q in self.model_.parameters()):
                raise InputError(f"moment.adapt diverged on this train split (non-finite weights after "
                                 f"{a.steps} steps at lr {a.lr}): lower moment.adapt.lr or set "
                                 "moment.adapt.steps: 0")  # fmt: skip
            from safetensors.torch import save_file

            from momentad.io import atomic_dir

            with atomic_dir(cached.parent) as tmp:
                save_file({k: v.contiguous() for k, v in self.model_.state_dict().items()},
                          str(tmp / "model.safetensors"))  # fmt: skip
                (tmp / "run.json").write_text(json.dumps(run))
        for name, q in self.model_.named_parameters():  # back to momentfm's freezing
            q.requires_grad_(frozen[name])
        enable_checkpointing(self.model_, True)  # momentfm's default, which the recipes start from
        self.model_.eval()
        # the adapted base, before fine-tuning wraps or changes it (saved with the model)
        self._adapted_state = {k: v.detach().cpu().clone().contiguous() for k, v in self.model_.state_dict().items()}
        self.adapted_to_ = {**run, "lr": a.lr, "mask_ratio": a.mask_ratio, "window": n}

    def _add_lora(self) -> None:
        """Quantise (optionally) and wrap the encoder with LoRA."""
        from momentad.detectors.moment.lora import add_lora, quantize_encoder

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
            self._add_lora()
        else:
            if method == "full":
                self._check_full_memory(self.params.finetune.batch_size)
                for q in self.model_.parameters():
                    q.requires_grad_(True)
            if self.recipe.sets_checkpointing:
                from momentad.detectors.moment.lora import enable_checkpointing

                enable_checkpointing(self.model_, self.params.finetune.gradient_checkpointing)
        self.finetuned_ = method

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The weights fine-tuning changes (those that require a gradient)."""
        return {n: q.detach().cpu().clone() for n, q in self.model_.named_parameters() if q.requires_grad}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model_.named_parameters())
        missing = [k for k in state if k not in params]
        if missing:
            raise InputError(f"fine-tuned weights hold {missing[0]}, which the model lacks; they were trained with "
                             "other moment.lora / moment.checkpoint settings")  # fmt: skip
        with torch.no_grad():
            for k, v in state.items():
                params[k].copy_(v.to(params[k].device))

    # -- fitting ------------------------------------------------------------------------------
    def _fit(self, train: Split | None, val: Split | None) -> None:
        p = self.params
        lora = p.finetune.method == "lora"
        if train is not None and lora and p.quantization == "nf4" and resolve_device(p.device).type != "cuda":
            raise InputError("params.yaml: moment.quantization=nf4 trains only on CUDA (on CPU bitsandbytes' nf4 "
                             "layers break T5's dropout); use int8 or none on CPU")  # fmt: skip
        self._load_base()
        if p.adapt.steps:
            self._adapt_to(self.ctx.reference if self.ctx.reference is not None else train)
        if train is not None:
            self._make_trainable()
        self.model_.to(self.device_)
        if train is not None:
            self.recipe.fit(train, val)
        if p.zero_shot.score == "reconstruction+stats":
            self._fit_stats(train)

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
        with torch.inference_mode(), autocast(self.device_, self.params.precision), quiet_checkpoint():
            for _, xb, mb in window_batches(values, index, self.params.batch_size, self.context_, self.patch_len_):
                x, m = torch.from_numpy(xb).to(self.device_), torch.from_numpy(mb).to(self.device_)
                err.append(self.recipe.per_step(x, m)[:, -n:].float().mean(1).cpu().numpy())
        err = np.concatenate(err)
        self.rec_median_ = np.maximum(np.median(err.reshape(len(st), -1), axis=0), 1e-12)

    def with_stats(self, err: np.ndarray, values: np.ndarray, st: np.ndarray, length: int) -> np.ndarray:
        """(windows, KPIs) errors -> error in units of the training median + half the squared
        robust z of level and log-scale (each ~1 on normal windows); unchanged without stats."""
        if self.stats_ is None:
            return err
        return err / self.rec_median_ + self.stats_.deviation(*moments_at(values, st, length)) / 2

    # -- scoring ------------------------------------------------------------------------------
    def _scoring_mode(self) -> None:
        if self.recipe.score_in_train_mode:  # as TSB-AD scores after fit: dropout on, from a known state
            self.model_.train()
            torch.manual_seed(self.seed)
        else:
            self.model_.eval()

    @torch.inference_mode()
    def channel_scores(self, split: Split) -> np.ndarray:
        """(timesteps, channels) per-step evidence: the recipe's window errors mapped to steps."""
        self._scoring_mode()
        return self.recipe.channel_scores(split)

    def _score(self, split: Split) -> np.ndarray:
        zp = self.params.zero_shot
        return reduce_channels(self._keep_channels(split, self.channel_scores(split)), zp.channel_reduce, zp.topk)

    # -- what outputs record ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info = self.info_.to_dict()
        info["recipe"] = self.params.zero_shot.recipe
        info["score"] = self.params.zero_shot.score
        if self.adapted_to_ is not None:
            info["adapted"] = self.adapted_to_
        trainable = sum(q.numel() for q in self.model_.parameters() if q.requires_grad) + self.recipe.added_parameters()
        if self.finetuned_ in ("head", "full"):
            info.update(trainable_parameters=trainable, adapter=self.finetuned_)
        if self.adapted_:
            lp = self.params.lora
            info.update(trainable_parameters=trainable, adapter="lora", quantization=self.params.quantization,
                        lora={"rank": lp.rank, "alpha": lp.alpha, "dropout": lp.dropout,
                              "target_modules": list(lp.target_modules)})  # fmt: skip
        return info

    def n_parameters(self) -> int:
        return self.info_.parameters

    def extra(self) -> dict[str, Any]:
        return {"device": str(self.device_), **self.recipe.facts()}

    # -- artifacts: a reference to the weights (they live in the model cache) + peft's adapter --
    def _save_state(self, folder: Path) -> dict[str, Any]:
        state: dict[str, Any] = {"weights": self.info_.to_dict(),
                                 "score_in_train_mode": self.recipe.score_in_train_mode}  # fmt: skip
        if self.stats_ is not None:
            state["stats"] = {**self.stats_.state(), "rec_median": self.rec_median_.tolist()}
        if self.adapted_to_ is not None:  # the base the fine-tuning started from
            from safetensors.torch import save_file

            save_file(self._adapted_state, str(folder / "adapted.safetensors"))
            state.update(adapted="adapted.safetensors", adaptation=self.adapted_to_)
        if self.finetuned_ in ("head", "full"):
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in self.trainable_state().items()},
                      str(folder / "finetuned.safetensors"))  # fmt: skip
            state.update(finetuned="finetuned.safetensors", method=self.finetuned_, draw=self.ctx.draw)
        if self.adapted_:
            from momentad.detectors.moment.lora import save_adapter

            save_adapter(self.model_, folder / "adapter", self.info_.checkpoint)
            state.update(adapter="adapter", draw=self.ctx.draw)
        return {**state, **self.recipe.save(folder)}

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        self._load_base()
        if "adapted" in state:
            from safetensors.torch import load_file

            self.model_.load_state_dict(load_file(str(folder / state["adapted"])))
            self.adapted_to_ = state["adaptation"]
        if "stats" in state:
            self.stats_ = Reference.from_state(state["stats"])
            self.rec_median_ = np.asarray(state["stats"]["rec_median"])
        if "finetuned" in state:
            from safetensors.torch import load_file

            self.finetuned_ = state["method"]
            self.load_trainable_state(load_file(str(folder / state["finetuned"])))
        if "adapter" in state:
            from peft import PeftModel

            from momentad.detectors.moment.lora import quantize_encoder

            self.quantized_layers_ = quantize_encoder(self.model_, self.params.quantization)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.model_.encoder = PeftModel.from_pretrained(self.model_.encoder, str(folder / state["adapter"]))
            self.adapted_ = True
        self.recipe.load(folder, state)
        self.model_.to(self.device_).eval()


def _available_memory() -> int | None:
    """Bytes of memory the kernel says a new allocation can get (Linux), else None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
