"""Where every output lives, by method id: one module that stages, ``compare`` and
``momentad score`` share, so ids, DVC stage names and file names always agree.

Method ids: ``moment_zero_shot``; ``moment_lora_<budget>`` (one per ``finetune.budgets``);
one per baseline in ``baselines.methods`` (its name). DVC stage of an id: ``moment_zero_shot``,
``moment_lora@<budget>``, ``baseline@<name>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from momentad.errors import InputError

ZERO_SHOT = "moment_zero_shot"
LORA = "moment_lora"
_LORA_ID = re.compile(rf"^{LORA}_(\d+)$")


@dataclass(frozen=True)
class MethodId:
    """A method id split into the detector that runs it and its training budget (None = all)."""

    id: str
    detector: str
    budget: int | None = None

    @property
    def stage(self) -> str:
        if self.detector == ZERO_SHOT:
            return ZERO_SHOT
        if self.detector == LORA:
            return f"{LORA}@{self.budget}"
        return f"baseline@{self.detector}"


def parse(method_id: str) -> MethodId:
    """``moment_lora_100`` -> (moment_lora, 100); any other id is its own detector."""
    m = _LORA_ID.match(method_id)
    if m:
        return MethodId(method_id, LORA, int(m.group(1)))
    if method_id == LORA:
        raise InputError(f"method id {LORA!r} needs a budget, e.g. {LORA}_100 (one per finetune.budgets)")
    return MethodId(method_id, method_id)


def method_ids(cfg) -> list[str]:
    """Every method id the params ask for, in pipeline order."""
    return [ZERO_SHOT] + [f"{LORA}_{b}" for b in cfg.finetune.budgets] + list(cfg.baselines.methods)


@dataclass(frozen=True)
class Layout:
    """Paths of one repository checkout (``root``, the DVC project folder)."""

    root: Path = Path(".")

    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def windows(self) -> Path:
        return self.root / "data" / "windows"

    def scores(self, method_id: str, split: str = "test") -> Path:
        suffix = "" if split == "test" else f".{split}"
        return self.root / "data" / "scores" / f"{method_id}{suffix}.parquet"

    def model_dir(self, method_id: str) -> Path:
        return self.root / "data" / "models" / method_id

    def metrics(self, method_id: str) -> Path:
        """Headline numbers only (DVC metrics)."""
        return self.root / "metrics" / f"{method_id}.json"

    def details(self, method_id: str) -> Path:
        """Everything else about the run: threshold, runtime, per-fault-type, draws, params echo."""
        return self.root / "reports" / "methods" / f"{method_id}.json"

    def pr_curve(self, method_id: str) -> Path:
        return self.root / "plots" / "pr" / f"{method_id}.csv"

    def training_curve(self, method_id: str) -> Path:
        return self.root / "plots" / "training" / f"{method_id}.csv"

    def state_dir(self, method_id: str) -> Path:
        """Per-epoch checkpoints for resuming (outside DVC outputs; removed when a run ends)."""
        return self.root / ".cache" / "train" / method_id

    @property
    def compare_metrics(self) -> Path:
        return self.root / "metrics" / "compare.json"

    @property
    def report(self) -> Path:
        return self.root / "reports" / "compare.md"

    @property
    def compare_plots(self) -> Path:
        return self.root / "plots" / "compare"


def read_details(layout: Layout, method_id: str) -> dict[str, Any]:
    """A method's detail document, or a one-line error naming the stage to run."""
    path = layout.details(method_id)
    if not path.is_file():
        raise InputError(f"{path}: not found; run `dvc repro {parse(method_id).stage}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{path}: not valid JSON; run `dvc repro -f {parse(method_id).stage}`") from None
