"""data.source: smd — Server Machine Dataset (OmniAnomaly): ``train/<machine>.txt``,
``test/<machine>.txt`` and ``test_label/<machine>.txt``, comma-separated, no header (each file
may be gzipped, ``.txt.gz``); optionally ``interpretation_label/<machine>.txt``, one line per
labelled event, ``start-end:kpi,kpi,...`` (test rows [start, end) counted from 0, as the label
file's runs; KPI numbers from 1).

The format's train file is the training split; its test file follows it in time. KPIs are named
``kpi-01`` .. ``kpi-38``; an event's interpretation names its root cause (those KPIs), so
root-cause ranking asks whether a named KPI is among a method's top k.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from momentad.config import optional
from momentad.errors import InputError
from momentad.loaders import Format, RawData
from momentad.loaders._common import existing, finish


def _find(path: Path) -> Path:
    """``path`` or its gzipped twin."""
    gz = path.with_name(path.name + ".gz")
    return gz if not path.exists() and gz.exists() else path


def _read(path: Path) -> np.ndarray:
    path = existing(_find(path))
    try:
        arr = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise InputError(f"{path}: not numeric comma-separated values ({e}); check the SMD file") from None
    if arr.size == 0:
        raise InputError(f"{path}: file has no rows; point data.path at the SMD folder")
    return arr


@dataclass(frozen=True)
class SMDParams:
    machine: str = optional("machine-1-1")


FORMAT = Format(params=SMDParams, own_train_part=True)


def load(path, options, data, seed) -> RawData:
    """Options (data.smd): machine."""
    root = existing(path, "folder")
    machine = options.machine
    train = _read(root / "train" / f"{machine}.txt")
    test = _read(root / "test" / f"{machine}.txt")
    label = _read(root / "test_label" / f"{machine}.txt").ravel()
    if train.shape[1] != test.shape[1]:
        raise InputError(f"{root}: train has {train.shape[1]} columns, test {test.shape[1]}; files do not match")
    if len(label) != len(test):
        raise InputError(f"{root / 'test_label' / (machine + '.txt')}: {len(label)} labels for {len(test)} test rows")
    values = np.vstack([train, test])
    kpis = [f"kpi-{i + 1:02d}" for i in range(values.shape[1])]
    frame = pd.DataFrame(values, columns=kpis)
    # SMD has no clock; rows are one minute apart in the original collection.
    frame.insert(0, "timestamp", np.arange(len(frame), dtype=np.int64))
    labels = pd.Series(np.concatenate([np.zeros(len(train)), label]).astype("int8"))
    causes = _interpretation(root / "interpretation_label" / f"{machine}.txt", len(train), len(frame), kpis)
    out = finish(frame, label=labels, root_cause=causes)
    return RawData(frame=out, source="smd", name=machine, train_end=len(train))


def _interpretation(path: Path, offset: int, n: int, kpis: list[str]) -> pd.Series | None:
    """Per row, the KPIs the labelled event there is interpreted by (comma-joined), or None."""
    if not path.exists():
        return None
    cause = pd.Series(pd.NA, index=range(n), dtype="string")
    for k, line in enumerate(path.read_text().split()):
        try:
            span, dims = line.split(":")
            a, b = (int(x) for x in span.split("-"))
            names = ",".join(kpis[int(d) - 1] for d in dims.split(","))
        except (ValueError, IndexError):
            raise InputError(f"{path}: line {k + 1} ({line!r}) is not 'start-end:kpi,kpi,...' with KPI numbers 1.."
                             f"{len(kpis)}; fix or remove it") from None  # fmt: skip
        cause.iloc[offset + a : offset + b] = names
    return cause
