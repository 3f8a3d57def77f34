"""Where every output lives: one module that stages, ``compare`` and ``momentad score`` share, so
method names, DVC stage names and file names always agree.

A method (``moment``, ``pca``, ...) runs in one DVC stage, ``detect@<method>``, at every budget
it can (its detector says which: 0 = no training, each ``budget.sizes`` entry, ``full`` = the
whole train split). A row of the comparison is ``<method>_<budget>`` (``moment_0`` is MOMENT
zero-shot, ``pca_full`` PCA on the whole split).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from momentad.budgets import FULL
from momentad.errors import InputError

_ROW = re.compile(r"^(?P<method>[a-z][a-z0-9_-]*?)_(?P<budget>\d+|full)$")


@dataclass(frozen=True)
class Row:
    """A row id split into its method and budget (training windows, 0 or ``"full"``)."""

    id: str
    method: str
    budget: int | str

    @property
    def stage(self) -> str:
        return f"detect@{self.method}"


def row_id(method: str, budget: int | str) -> str:
    return f"{method}_{budget}"


def parse_row(row: str) -> Row:
    """``moment_100`` -> (moment, 100); ``pca_full`` -> (pca, "full")."""
    m = _ROW.match(row)
    if not m:
        raise InputError(f"{row!r} is not a method at a budget; use <method>_<budget>, e.g. {row}_full or {row}_100 "
                         "(`momentad methods` lists them)")  # fmt: skip
    b = m.group("budget")
    return Row(row, m.group("method"), FULL if b == FULL else int(b))


@dataclass(frozen=True)
class Layout:
    """Paths of one project folder (``root``: the repository, or one dataset of a study);
    checkpoints for resuming and timing logs go under ``cache_root`` / ``logs_root`` (default:
    ``root/.cache`` and ``root/logs``), never into DVC outputs."""

    root: Path = Path(".")
    cache_root: Path | None = None
    logs_root: Path | None = None

    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def windows(self) -> Path:
        return self.root / "data" / "windows"

    def scores_dir(self, method: str) -> Path:
        """Every budget's val/test scores of a method (one DVC output)."""
        return self.root / "data" / "scores" / method

    def scores(self, method: str, budget: int | str, split: str = "test") -> Path:
        suffix = "" if split == "test" else f".{split}"
        return self.scores_dir(method) / f"{budget}{suffix}.parquet"

    def models_dir(self, method: str) -> Path:
        """Every budget's saved model of a method (one DVC output)."""
        return self.root / "data" / "models" / method

    def model_dir(self, method: str, budget: int | str) -> Path:
        return self.models_dir(method) / str(budget)

    def details(self, method: str) -> Path:
        """Everything a method's stage measured, per budget (git-tracked, no timings)."""
        return self.root / "reports" / "methods" / f"{method}.json"

    def timings(self, method: str) -> Path:
        """Wall times of a method's last run: a log, outside git and DVC outputs, so a re-run with
        identical results changes no tracked file."""
        return (self.logs_root or self.root / "logs") / "timings" / f"{method}.json"

    def state_dir(self, method: str, budget: int | str, key: str) -> Path:
        """Per-epoch checkpoints for resuming (outside DVC outputs; removed when a run ends)."""
        return (self.cache_root or self.root / ".cache") / "train" / f"{method}_{budget}" / key

    @property
    def compare_metrics(self) -> Path:
        """The headline numbers (`dvc metrics show`, `dvc exp show`)."""
        return self.root / "metrics" / "compare.json"

    @property
    def compare_details(self) -> Path:
        """Every row's VUS-PR and every verdict with its interval (outside `dvc exp show`)."""
        return self.root / "reports" / "compare.json"

    @property
    def report(self) -> Path:
        return self.root / "reports" / "compare.md"

    @property
    def compare_plots(self) -> Path:
        return self.root / "plots" / "compare"


def read_details(layout: Layout, method: str) -> dict[str, Any]:
    """A method's detail document, or a one-line error naming the stage to run."""
    path = layout.details(method)
    if not path.is_file():
        raise InputError(f"{path}: not found; run `dvc repro detect@{method}` first")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise InputError(f"{path}: not valid JSON; run `dvc repro -f detect@{method}`") from None
