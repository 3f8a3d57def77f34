"""MOMENT + LoRA: few-shot fine-tuning of MOMENT's encoder on a budget of training windows.

The runner hands ``fit`` the budget's stretch of the train split (momentad.budgets); the
reconstruction objective trains on its anomaly-free windows (exactly the budget). LoRA
adapters (``lora.*``, peft) go on the T5 encoder with
every base weight frozen; the objective (``finetune.objective``) is masked-patch
``reconstruction`` (label-free) or a supervised patch ``classification`` head. Training runs
in :class:`momentad.training.TrainLoop` (AdamW, warm-up + cosine, early stopping on validation
loss, per-epoch checkpoints that a re-run resumes). Scoring is MOMENT zero-shot's, with the
adapted weights (or the head's anomaly probability).

Cost (CPU): one epoch touches ``budget x finetune.channels_per_window`` univariate 512-step
sequences, each a forward and a backward pass.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from momentad.config import BudgetParams, FinetuneParams, LoraParams, ModelParams, WindowParams, ZeroShotParams
from momentad.data import Split
from momentad.detectors.moment import MomentZeroShot
from momentad.detectors.registry import register
from momentad.errors import InputError, NotRun
from momentad.finetune import fault_channel_weights, patch_mask, sequences
from momentad.training import LoopConfig, TrainLoop


@dataclass(frozen=True)
class MomentLoraParams:
    """The params sections MOMENT + LoRA reads."""

    model: ModelParams
    zero_shot: ZeroShotParams
    window: WindowParams
    budget: BudgetParams
    finetune: FinetuneParams
    lora: LoraParams


class PatchHead(torch.nn.Module):
    """A per-patch anomaly logit on MOMENT's patch embeddings (the classification objective)."""

    def __init__(self, d_model: int, patch_len: int = 8):
        super().__init__()
        self.patch_len = patch_len
        self.linear = torch.nn.Linear(d_model, 1)

    def forward(self, model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, 1, 512) -> (b, n_patches) logits."""
        emb = model.embed(x_enc=x, input_mask=mask, reduction="none").embeddings  # (b, 1, p, d)
        return self.linear(emb[:, 0]).squeeze(-1)


@register
class MomentLora(MomentZeroShot):
    name = "moment_lora"
    Params = MomentLoraParams

    def __init__(self, params: MomentLoraParams, seed: int = 0, progress: bool = False, draw: int = 0,
                 state_dir: Path | None = None):  # fmt: skip
        super().__init__(params, seed, progress)
        self.draw, self.state_dir = draw, state_dir
        self.head_: PatchHead | None = None

    @classmethod
    def from_config(cls, cfg, progress: bool = False, **run: Any) -> MomentLora:
        p = MomentLoraParams(cfg.model, cfg.zero_shot, cfg.window, cfg.budget, cfg.finetune, cfg.lora)
        return cls(p, cfg.seed, progress, run.get("draw", 0), run.get("state_dir"))

    @property
    def classification(self) -> bool:
        return self.params.finetune.objective == "classification"

    @property
    def uses_anomalous_windows(self) -> bool:
        return self.params.budget.include_anomalous or self.classification

    def _adapt(self) -> int:
        """Quantise (optionally) and wrap the encoder with LoRA; returns quantised layer count."""
        from momentad.models.lora import add_lora, quantize_encoder

        mp, lp = self.params.model, self.params.lora
        n_quant = quantize_encoder(self.model_, mp.quantization)
        add_lora(self.model_, lp.rank, lp.alpha, lp.dropout, list(lp.target_modules),
                 self.params.finetune.gradient_checkpointing)  # fmt: skip
        return n_quant

    # -- training (hooks of momentad.training.TrainLoop) --------------------------------------
    def _fit(self, train: Split, val: Split | None) -> None:
        ft = self.params.finetune
        if self.params.model.quantization != "none" and self.params.model.precision == "fp16":
            raise InputError(f"params.yaml: model.quantization={self.params.model.quantization} with "
                             "model.precision=fp16 is not supported; use auto or bf16")  # fmt: skip
        from momentad.models.device import resolve_device

        if self.params.model.quantization == "nf4" and resolve_device(self.params.model.device).type != "cuda":
            raise InputError("params.yaml: model.quantization=nf4 trains only on CUDA (on CPU bitsandbytes' nf4 "
                             "layers break T5's dropout); use int8 or none on CPU")  # fmt: skip
        self._load_base()
        self.quantized_layers_ = self._adapt()
        self.model_.to(self.device_)
        if self.classification:
            self.head_ = PatchHead(self.model_.config.d_model).to(self.device_)
        any_anomaly = train.index["any_anomaly"].to_numpy()
        rows = np.arange(len(train.index)) if self.uses_anomalous_windows else np.flatnonzero(~any_anomaly)
        if len(rows) == 0:
            raise NotRun("the training span holds no anomaly-free window")
        weights = fault_channel_weights(train, rows) if self.classification else None
        self._train = sequences(train, rows, ft.channels_per_window, self.seed, self.draw, weights)
        if val is None:
            raise InputError("moment_lora needs a validation split for early stopping")
        self._val = sequences(val, np.arange(len(val.index)), ft.channels_per_window, self.seed, self.draw)
        if self.classification and self._train["labels"].sum() == 0:
            raise NotRun(f"finetune.objective=classification: the {len(rows)} training windows hold no labelled "
                         "anomaly")  # fmt: skip
        pos = float(self._train["labels"].mean())
        self._pos_weight = (1 - pos) / pos if self.classification and pos > 0 else 1.0  # class imbalance
        cfg = LoopConfig(epochs=ft.epochs, batch_size=ft.batch_size, lr=ft.lr, patience=ft.patience,
                         weight_decay=ft.weight_decay, optimizer="adamw", schedule="cosine",
                         warmup_ratio=ft.warmup_ratio, grad_clip=ft.grad_clip)  # fmt: skip
        loop = TrainLoop(cfg, self.device_, self.params.model.precision, self.seed, self.draw, self.state_dir,
                         self.progress, desc=f"lora draw {self.draw}")  # fmt: skip
        self.training_ = loop.fit(self, len(self._train["x"]))
        self.history_ = self.training_["history"]
        del self._train, self._val

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        params = [p for p in self.model_.parameters() if p.requires_grad]
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
        if self.head_ is None:
            vis = patch_mask(len(x), self.params.finetune.mask_ratio, gen).to(self.device_)
            rec = self.model_(x_enc=x, input_mask=m, mask=vis).reconstruction[:, 0].float()
            # masked, observed, and not labelled anomalous: learn what normal looks like
            w = ((vis == 0) & (m == 1) & (y == 0)).float()
            return (((rec - x[:, 0]) ** 2) * w).sum() / w.sum().clamp(min=1)
        logits = self.head_(self.model_, x, m).float()
        target = y.reshape(len(y), -1, 8).amax(dim=2)  # a patch is anomalous if any step is
        observed = m.reshape(len(m), -1, 8).amin(dim=2).float()
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
        state = {n: p.detach().cpu().clone() for n, p in self.model_.named_parameters() if p.requires_grad}
        if self.head_ is not None:
            state.update({f"head.{k}": v.detach().cpu().clone() for k, v in self.head_.state_dict().items()})
        return state

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        params = dict(self.model_.named_parameters())
        missing = [k for k in state if not k.startswith("head.") and k not in params]
        if missing:
            raise InputError(f"adapter has weights the model lacks ({missing[0]}); it was trained with other lora.*")
        with torch.no_grad():
            for k, v in state.items():
                if not k.startswith("head."):
                    params[k].copy_(v.to(params[k].device))
        if self.head_ is not None:
            self.head_.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})

    # -- scoring ------------------------------------------------------------------------------
    def per_step(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.head_ is None:
            return super().per_step(x, mask)
        prob = torch.sigmoid(self.head_(self.model_, x, mask).float())
        return prob.repeat_interleave(self.head_.patch_len, dim=1)

    # -- what outputs record ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        info = self.info_.to_dict()
        trainable = sum(p.numel() for p in self.trainable_parameters())
        lp = self.params.lora
        info.update(trainable_parameters=trainable, adapter="lora", quantization=self.params.model.quantization,
                    lora={"rank": lp.rank, "alpha": lp.alpha, "dropout": lp.dropout,
                          "target_modules": list(lp.target_modules)})  # fmt: skip
        return info

    def extra(self) -> dict[str, Any]:
        t = self.training_
        return {"device": str(self.device_), "quantized_layers": self.quantized_layers_,
                "training": {"objective": self.params.finetune.objective, "epochs_run": t["epoch"],
                             "best_epoch": t["best_epoch"], "best_val_loss": round(t["best_val_loss"], 6),
                             "train_s": round(t["train_s"], 3), "stopped_early": t["stopped_early"]}}  # fmt: skip

    # -- artifacts: peft's own adapter format ---------------------------------------------------
    def _save_state(self, folder: Path) -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model_.encoder.save_pretrained(str(folder / "adapter"), safe_serialization=True)
        state = {"weights": self.info_.to_dict(), "adapter": "adapter", "draw": self.draw}
        if self.head_ is not None:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in self.head_.state_dict().items()}, str(folder / "head.safetensors"))
            state["head"] = "head.safetensors"
        return state

    def _load_state(self, folder: Path, state: dict[str, Any]) -> None:
        from peft import PeftModel

        from momentad.models.lora import quantize_encoder

        self._load_base()
        self.quantized_layers_ = quantize_encoder(self.model_, self.params.model.quantization)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model_.encoder = PeftModel.from_pretrained(self.model_.encoder, str(folder / state["adapter"]))
        if "head" in state:
            from safetensors.torch import load_file

            self.head_ = PatchHead(self.model_.config.d_model)
            self.head_.load_state_dict(load_file(str(folder / state["head"])))
            self.head_.to(self.device_)
        self.model_.to(self.device_).eval()
