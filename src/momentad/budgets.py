"""Training budgets shared by every method: which slice of the train split a (budget, draw) gets.

A budget of N is N consecutive training windows (``window.length`` steps, ``window.train_stride``
apart) starting at a seeded position per draw: a stretch of history, the few-shot question an
SRE meets with a new service ("I have a day of telemetry"). Windows holding labelled anomalies
do not count toward N unless ``budget.include_anomalous``; the stretch then runs on past them.
Draws are nested: per draw, the 100-window stretch is the start of the 500, of the 1,000.

Every method at a budget gets the same rows: label-free methods train on the anomaly-free
windows inside, methods that use labels see only the labels inside. ``full`` is the whole train
split; its draws differ only in the model's seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np

from momentad.data import Split
from momentad.errors import NotRun

# A budget, everywhere (details keys, row ids, file names, study results): "0" (no training), a
# size such as "100" (training windows) or "full" (the whole train split).
Budget = str
ZERO: Budget = "0"
FULL: Budget = "full"


def all_budgets(sizes: list[int], zero: bool = True, full: bool = True) -> list[Budget]:
    """``budget.sizes`` as budgets, with 0 in front and ``full`` at the end where asked."""
    return [ZERO] * zero + [str(int(s)) for s in sizes] + [FULL] * full


def hash_int(*parts: Any) -> int:
    """A stable 63-bit seed from JSON-able parts."""
    h = hashlib.sha256(json.dumps(parts).encode()).digest()
    return int.from_bytes(h[:8], "little") & (2**63 - 1)


def draw_seed(seed: int, draw: int) -> int:
    """The model seed of a draw: ``seed`` itself for draw 0, a stable derived seed otherwise
    (below 2**31 so scikit-learn's ``random_state`` takes it)."""
    if draw == 0:
        return seed
    return hash_int(seed, "draw", draw) % 2**31


def order(budget: Budget) -> float:
    """Sort key of a budget: its number of windows, ``full`` last."""
    return float("inf") if budget == FULL else float(budget)


# span's reason for a budget the train split is too short for, as a row's status records it
_TOO_SHORT = re.compile(
    r"^not run: budget (\d+) needs \d+ (?:anomaly-free )?training windows; the train split has (\d+)$"
)


def too_short(status: str | None) -> bool:
    """Whether a row's status says its budget did not run because the train split holds fewer windows."""
    m = _TOO_SHORT.match(status or "")
    return bool(m) and int(m.group(2)) < int(m.group(1))


def at_most(budget: str, ran: Collection[str], status: Mapping[str, str]) -> list[str]:
    """Budgets of one method's rows that stand for it at ``budget``, "at most b windows of
    history", for every method alike: its rows up to b (0 included), plus its full-split row where
    the train split is too short for b (``status``: the method's not-run reasons by budget); at
    ``full`` (the whole history), every row it has."""
    if budget == FULL:
        return list(ran)
    out = [b for b in ran if b != FULL and order(b) <= order(budget)]
    return out + [FULL] if FULL in ran and too_short(status.get(budget)) else out


def span(index, size: int, largest: int, seed: int, draw: int, include_anomalous: bool) -> tuple[int, int]:
    """[lo, hi) train rows of budget ``size`` in draw ``draw``; ``largest`` is the biggest budget
    (the shared start is drawn so that it fits too, which nests the budgets)."""
    eligible = np.arange(len(index)) if include_anomalous else np.flatnonzero(~index["any_anomaly"].to_numpy())
    if size > len(eligible):
        kind = "training windows" if include_anomalous else "anomaly-free training windows"
        raise NotRun(f"budget {size} needs {size} {kind}; the train split has {len(eligible)}")
    room = len(eligible) - min(largest, len(eligible))
    first = int(np.random.default_rng([seed, draw]).integers(0, room + 1))
    chosen = eligible[first : first + size]
    return int(index["start"].iloc[chosen[0]]), int(index["stop"].iloc[chosen[-1]])


def restrict(split: Split, lo: int, hi: int) -> Split:
    """The rows [lo, hi) of a split as a split of its own, with the windows that lie inside."""
    frame = split.frame.iloc[lo:hi].reset_index(drop=True)
    idx = split.index
    inside = idx[(idx["start"] >= lo) & (idx["stop"] <= hi)].copy()
    inside["start"] -= lo
    inside["stop"] -= lo
    return dataclasses.replace(split, frame=frame, index=inside.reset_index(drop=True))
