"""Where every output lives: one module that stages, ``compare`` and ``momentad score`` share, so
method names, DVC stage names and file names always agree.

A method (``moment``, ``pca``, ...) runs in one DVC stage, ``detect@<method>``, at every budget
it can (its detector says which: 0 = no training, each ``budget.sizes`` entry, ``full`` = the
whole train split). A row of the comparison is ``<method>_<budget>`` (``moment_0`` is MOMENT
zero-shot, ``pca_full`` PCA on the whole split).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from momentad.budgets import Budget
from momentad.errors import InputError
from momentad.results import MethodResult

_ROW = re.compile(r"^(?P<method>[a-z][a-z0-9_-]*?)_(?P<budget>\d+|full)$")


@dataclass(frozen=True)
class Row:
    """A row id split into its method and budget (training windows, 0 or ``"full"``)."""

    id: str
    method: str
    budget: Budget

    @property
    def stage(self) -> str:
        return f"detect@{self.method}"


def row_id(method: str, budget: Budget) -> str:
    return f"{method}_{budget}"


def parse_row(row: str) -> Row:
    """``moment_100`` -> (moment, 100); ``pca_full`` -> (pca, "full")."""
    m = _ROW.match(row)
    if not m:
        raise InputError(f"{row!r} is not a method at a budget; use <method>_<budget>, e.g. {row}_full or {row}_100 "
                         "(`momentad methods` lists them)")  # fmt: skip
    return Row(row, m.group("method"), m.group("budget"))


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

    def scores(self, method: str, budget: Budget, split: str = "test") -> Path:
        suffix = "" if split == "test" else f".{split}"
        return self.scores_dir(method) / f"{budget}{suffix}.parquet"

    def models_dir(self, method: str) -> Path:
        """Every budget's saved model of a method (one DVC output)."""
        return self.root / "data" / "models" / method

    def model_dir(self, method: str, budget: Budget) -> Path:
        return self.models_dir(method) / str(budget)

    def details(self, method: str) -> Path:
        """Everything a method's stage measured, per budget (git-tracked, no timings)."""
        return self.root / "reports" / "methods" / f"{method}.json"

    def timings(self, method: str) -> Path:
        """Wall times of a method's last run: a log, outside git and DVC outputs, so a re-run with
        identical results changes no tracked file."""
        return (self.logs_root or self.root / "logs") / "timings" / f"{method}.json"

    def state_dir(self, method: str, budget: Budget, key: str) -> Path:
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

    @property
    def scores_metrics(self) -> Path:
        """Each method's best VUS-PR and MOMENT's differences, beside the headline (so `dvc metrics
        show metrics/compare.json` fits a terminal)."""
        return self.root / "metrics" / "scores.json"

    # -- the study (study.yaml, study/dvc.yaml) ------------------------------------------------
    @property
    def study_runs(self) -> Path:
        return self.root / "study" / "runs"

    def study_run(self, dataset: str) -> Path:
        """Everything of one dataset of the study (one DVC output)."""
        return self.study_runs / dataset

    def study_dataset(self, dataset: str, folder: Path | None = None) -> Layout:
        """The layout of one dataset of the study (written into ``folder``, its staging copy, when
        given); its resumable checkpoints and logs live in the study's memo, outside DVC outputs."""
        memo = self.study_memo / dataset
        return Layout(folder or self.study_run(dataset), cache_root=memo / "state", logs_root=memo / "logs")

    @property
    def study_memo(self) -> Path:
        """Each method's result per dataset, keyed by what determines it (reused across runs)."""
        return self.root / ".cache" / "study"

    @property
    def study_report(self) -> Path:
        return self.root / "reports" / "study.md"

    @property
    def study_details(self) -> Path:
        """Every number of the study's answer, and every (dataset, method, budget) that could not run."""
        return self.root / "reports" / "study.json"

    @property
    def study_metrics(self) -> Path:
        return self.root / "metrics" / "study.json"

    @property
    def study_scores(self) -> Path:
        return self.root / "metrics" / "study_scores.json"

    @property
    def study_plots(self) -> Path:
        return self.root / "plots" / "study"


def read_details(layout: Layout, method: str) -> MethodResult:
    """A method's details, or a one-line error naming the stage to run."""
    return MethodResult.read(layout.details(method), f"detect@{method}")
