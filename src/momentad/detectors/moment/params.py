"""The ``moment`` section of params.yaml, typed: the weights, then zero-shot scoring, fine-tuning
and LoRA. Checks that belong to one recipe live in that recipe (:mod:`.recipes`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from momentad.config import _fail, rng
from momentad.detectors.moment.lora import LoraTarget, Quantization
from momentad.detectors.moment.pretrain import AdaptParams
from momentad.detectors.moment.weights import HUB_REVISIONS, is_hub_id


@dataclass(frozen=True)
class ZeroShotParams:
    """How windows are cut and scored (zero-shot and fine-tuned alike)."""

    recipe: str  # a name in momentad.detectors.moment.recipes.RECIPES
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
    # continue pre-training on the dataset's own train split (no labels) before anything else
    adapt: AdaptParams
    zero_shot: ZeroShotParams
    finetune: FinetuneParams
    lora: LoraParams

    def check(self) -> None:
        from momentad.detectors.moment.recipes import recipe_class

        recipe_class(self.zero_shot.recipe).check(self)
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
