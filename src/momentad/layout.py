"""Where every output lives, by method id: one module that stages, ``compare`` and
``momentad score`` share, so ids, DVC stage names and file names always agree.

Method ids: ``moment_zero_shot`` (budget 0); ``<detector>_<budget>`` for every method at every
``budget.sizes`` (``moment_lora_100``, ``isolation_forest_500``); ``<baseline>_full`` on the
whole train split. DVC stage of an id: ``moment_zero_shot``, ``moment_lora@<budget>``,
``baseline@<name>-<budget>``, ``baseline_full@<name>``.
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
FULL = "full"
_ID = re.compile(r"^(?P<detector>[a-z][a-z0-9_]*?)_(?P<budget>\d+|full)$")


@dataclass(frozen=True)
class MethodId:
    """A method id split into the detector that runs it and its training budget
    (windows, ``"full"``, or None for zero-shot)."""

    id: str
    detector: str
    budget: int | str | None = None

    @property
    def stage(self) -> str:
        if self.detector == ZERO_SHOT:
            return ZERO_SHOT
        if self.detector == LORA:
            return f"{LORA}@{self.budget}"
        if self.budget == FULL:
            return f"baseline_full@{self.detector}"
        return f"baseline@{self.detector}-{self.budget}"


def parse(method_id: str) -> MethodId:
    """``moment_lora_100`` -> (moment_lora, 100); ``tcn_ae_full`` -> (tcn_ae, "full")."""
    if method_id == ZERO_SHOT:
        return MethodId(method_id, ZERO_SHOT)
    m = _ID.match(method_id)
    if not m:
        raise InputError(f"method id {method_id!r} needs a budget suffix, e.g. {method_id}_100 or {method_id}_full "
                         "(`momentad methods` lists them)")  # fmt: skip
    budget = m.group("budget")
    return MethodId(method_id, m.group("detector"), FULL if budget == FULL else int(budget))


def method_ids(cfg) -> list[str]:
    """Every method id the params ask for, in pipeline order."""
    sizes = cfg.budget.sizes
    return ([ZERO_SHOT] + [f"{LORA}_{b}" for b in sizes]
            + [f"{m}_{b}" for m in cfg.baselines.methods for b in [*sizes, FULL]])  # fmt: skip


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
