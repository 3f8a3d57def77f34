"""data.source: smd — Server Machine Dataset (OmniAnomaly): ``train/<machine>.txt``,
``test/<machine>.txt`` and ``test_label/<machine>.txt``, comma-separated, no header.

The format's train file is the training split; its test file follows it in time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from momentad.errors import InputError
from momentad.loaders import RawData
from momentad.loaders._common import existing, finish


def _read(path: Path) -> np.ndarray:
    existing(path)
    try:
        arr = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise InputError(f"{path}: not numeric comma-separated values ({e}); check the SMD file") from None
    if arr.size == 0:
        raise InputError(f"{path}: file has no rows; point data.path at the SMD folder")
    return arr


def load(path, options, data_params, seed) -> RawData:
    """Options (data.smd): machine (default machine-1-1)."""
    root = existing(path, "folder")
    machine = options.get("machine", "machine-1-1")
    train = _read(root / "train" / f"{machine}.txt")
    test = _read(root / "test" / f"{machine}.txt")
    label = _read(root / "test_label" / f"{machine}.txt").ravel()
    if train.shape[1] != test.shape[1]:
        raise InputError(f"{root}: train has {train.shape[1]} columns, test {test.shape[1]}; files do not match")
    if len(label) != len(test):
        raise InputError(f"{root / 'test_label' / (machine + '.txt')}: {len(label)} labels for {len(test)} test rows")
    values = np.vstack([train, test])
    frame = pd.DataFrame(values, columns=[f"dim_{i}" for i in range(values.shape[1])])
    # SMD has no clock; rows are one minute apart in the original collection.
    frame.insert(0, "timestamp", np.arange(len(frame), dtype=np.int64))
    labels = pd.Series(np.concatenate([np.zeros(len(train)), label]).astype("int8"))
    out = finish(frame, label=labels)
    return RawData(frame=out, source="smd", name=machine, train_end=len(train))
