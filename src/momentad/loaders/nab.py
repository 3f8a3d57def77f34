"""data.source: nab — one Numenta Anomaly Benchmark series (``timestamp,value``) labelled by NAB's
anomaly windows (``labels/combined_windows.json``: file path relative to the NAB data folder ->
list of ``[start, end]`` timestamps).

A step is anomalous when its timestamp lies in a window, ends included (NAB's scorer counts a
detection at either end as inside). ``data.nab.windows`` names the windows file; null looks for
``labels/combined_windows.json`` in the series' folder and the folders above it, and the key is
the series' path relative to the folder that holds ``labels/``. TSB-AD builds its NAB files from
the same windows but drops each file's first row and labels ``start < t <= end``: on these series
the two labelings differ by at most the window's first step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from momentad.config import optional
from momentad.errors import InputError
from momentad.loaders import Format, RawData
from momentad.loaders._common import finish, read_csv, require_column

WINDOWS = Path("labels") / "combined_windows.json"


@dataclass(frozen=True)
class NABParams:
    windows: str | None = optional(None)  # the windows JSON; null: labels/combined_windows.json above the file


FORMAT = Format(params=NABParams)


def find_windows(path: Path, given: str | None) -> tuple[Path, str]:
    """(windows file, the series' key in it)."""
    if given is not None:
        windows = Path(given)
        if not windows.is_file():
            raise InputError(f"params.yaml: data.nab.windows={given!r} is not a file; point it at NAB's "
                             "labels/combined_windows.json")  # fmt: skip
        root = windows.parent.parent
    else:
        root = next((d for d in path.resolve().parents if (d / WINDOWS).is_file()), None)
        if root is None:
            raise InputError(f"{path}: no {WINDOWS} in its folder or above; set data.nab.windows to NAB's windows "
                             "file")  # fmt: skip
        windows = root / WINDOWS
    try:
        key = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        key = path.name
    return windows, key


def load(path, options, data, seed) -> RawData:
    """Options (data.nab): windows (null: found above the file)."""
    path = Path(path)
    df = read_csv(path)
    for col in ("timestamp", "value"):
        require_column(df, col, path, "data.path (a NAB series: timestamp, value)")
    windows_file, key = find_windows(path, options.windows)
    try:
        table = json.loads(windows_file.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{windows_file}: not valid JSON at line {e.lineno}; fix the file") from None
    if key not in table:
        raise InputError(f"{path}: no entry {key!r} in {windows_file}; add its windows ([] if it has none)")
    times = pd.to_datetime(df["timestamp"], errors="coerce")
    if times.isna().any():
        row = int(times.isna().to_numpy().argmax())
        raise InputError(f"{path}: column 'timestamp' has an unparseable time {df['timestamp'].iloc[row]!r} at row "
                         f"{row}; NAB files hold 'YYYY-MM-DD HH:MM:SS'")  # fmt: skip
    label = np.zeros(len(df), dtype=np.int8)
    first, last = times.min(), times.max()
    for k, pair in enumerate(table[key]):
        try:
            start, end = (pd.Timestamp(t) for t in pair)
        except (TypeError, ValueError):
            raise InputError(f"{windows_file}: window {k + 1} of {key!r} is not [start, end] times ({pair!r}); fix "
                             "it") from None  # fmt: skip
        if end < first or start > last or end < start:
            raise InputError(f"{path}: NAB window {k + 1} [{start}, {end}] lies outside the file's times ({first} .. "
                             f"{last}); fix its entry in {windows_file}")  # fmt: skip
        label[((times >= start) & (times <= end)).to_numpy()] = 1
    frame = pd.DataFrame({"timestamp": df["timestamp"], "value": df["value"]})
    return RawData(frame=finish(frame, label=pd.Series(label)), source="nab", name=path.stem,
                   info={"windows": len(table[key]), "windows_file": windows_file.name})  # fmt: skip
