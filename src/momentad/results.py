"""The results contract: what the runner writes for a method (``reports/methods/<method>.json``)
and what ``compare``, the study, ``aggregate``, ``momentad`` and the plots read back, typed once.

A :class:`MethodResult` holds one :class:`BudgetResult` per budget (``"0"``, a size such as
``"100"``, or ``"full"``: :data:`momentad.budgets.Budget`). Where a method's weights come from is
decided here only (:func:`origin`, :func:`weights_label`): pretrained on the hub, pretrained
here (on what, how long), random-init, trained from scratch, or no training at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from momentad.budgets import Budget, order
from momentad.errors import InputError

# the weights' origin: a checkpoint's (hub | here | random-init), else how the method learns
ORIGINS = ("hub", "here", "random-init", "scratch", "none")
SHORT = {"hub": "hub-pretrained", "here": "pretrained here", "random-init": "RANDOM-INIT",
         "scratch": "trained from scratch", "none": "no training"}  # fmt: skip


def origin(model: dict[str, Any] | None, trains: bool = True) -> str:
    """Where a row's weights come from (:data:`ORIGINS`), from its details' ``model`` block."""
    m = model or {}
    if m.get("checkpoint"):
        found = m.get("origin")
        if found is None:  # details written before origins had names
            found = "hub" if m.get("pretrained") else "random-init"
        return found
    return m.get("origin") or ("scratch" if trains else "none")


def is_foundation(model: dict[str, Any] | None) -> bool:
    """A method whose weights come from a checkpoint is the foundation-model side."""
    return bool((model or {}).get("checkpoint"))


def weights_label(model: dict[str, Any] | None, trains: bool = True, long: bool = False) -> str:
    """The weights' origin in words: short for legends and tables (``pretrained here``,
    ``RANDOM-INIT``), ``long`` for sentences ("pretrained here on pretrain-corpus (6,000 steps)")."""
    m = model or {}
    o = origin(m, trains)
    if not long:
        return SHORT[o]
    if o == "here":
        p = m.get("pretraining") or {}
        steps = p.get("steps")
        return f"pretrained here on {p.get('corpus', 'a local corpus')}" + (f" ({steps:,} steps)" if steps else "")
    if o == "hub":
        return f"pretrained elsewhere ({m.get('checkpoint')}), not by this project"
    if o == "random-init":
        return f"RANDOM-INIT weights ({m.get('checkpoint')}), not pretrained"
    return SHORT[o]


def tag(method: str, model: dict[str, Any] | None, trains: bool = True) -> str:
    """A legend entry: the method, and for the foundation side its weights (``moment (RANDOM-INIT)``)."""
    return f"{method} ({weights_label(model, trains)})" if is_foundation(model) else method


@dataclass
class BudgetResult:
    """One (method, budget) row: its status, test metrics (mean over draws) and what made them."""

    method: str
    budget: Budget
    status: str  # "ok" or "not run: <why>"
    trains: bool
    uses_labels: bool
    model: dict[str, Any]
    data: dict[str, Any]
    entry: dict[str, Any]  # the details' budget entry as written (threshold, delays, recall, ...)

    @property
    def id(self) -> str:
        return f"{self.method}_{self.budget}"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def origin(self) -> str:
        return origin(self.model, self.trains)

    @property
    def foundation(self) -> bool:
        return is_foundation(self.model)

    @property
    def test(self) -> dict[str, float]:
        return self.entry.get("test", {})

    @property
    def vus_pr(self) -> float | None:
        return self.test.get("vus_pr")

    @property
    def val_vus_pr(self) -> float | None:
        return self.entry.get("val_vus_pr")

    @property
    def draws(self) -> int:
        return int(self.entry.get("draws", 1))

    def get(self, key: str, default: Any = None) -> Any:
        return self.entry.get(key, default)


@dataclass
class MethodResult:
    """A method's whole details document."""

    method: str
    capabilities: dict[str, bool]
    protocol: str
    data: dict[str, Any]
    params: dict[str, Any]
    budgets: dict[Budget, dict[str, Any]] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    uses_labels: bool = False

    def rows(self) -> list[BudgetResult]:
        """One row per budget, in budget order."""
        out = []
        for b in sorted(self.budgets, key=order):
            e = self.budgets[b]
            out.append(BudgetResult(self.method, b, e.get("status", "ok"), bool(self.capabilities.get("trains")),
                                    self.uses_labels, e.get("model") or self.model, self.data, e))  # fmt: skip
        return out

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "capabilities": self.capabilities, "protocol": self.protocol,
                "data": self.data, "params": self.params, "budgets": self.budgets, "model": self.model,
                "uses_labels": self.uses_labels}  # fmt: skip

    @classmethod
    def read(cls, path: Path, stage: str) -> MethodResult:
        """A method's details, or a one-line error naming the stage to run (``stage``)."""
        if not path.is_file():
            raise InputError(f"{path}: not found; run `dvc repro {stage}` first")
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise InputError(f"{path}: not valid JSON; run `dvc repro -f {stage}`") from None
        if not isinstance(doc, dict) or "budgets" not in doc or "method" not in doc:
            raise InputError(f"{path}: missing 'budgets'; run `dvc repro -f {stage}`")
        return cls(doc["method"], doc.get("capabilities", {}), doc.get("protocol", "default"), doc.get("data", {}),
                   doc.get("params", {}), doc["budgets"], doc.get("model") or {},
                   bool(doc.get("uses_labels")))  # fmt: skip
