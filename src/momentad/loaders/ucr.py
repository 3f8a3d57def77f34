"""data.source: ucr — one UCR Anomaly Archive file, e.g.
``135_UCR_Anomaly_InternalBleeding16_1200_4187_4199.txt``: a single series whose name gives
the end of the training part and the anomaly range, read as rows [begin, end) counted from 0
(as aeon and TSB-AD label the archive: here rows 4187..4198)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from momentad.errors import InputError
from momentad.loaders import Format, RawData
from momentad.loaders._common import existing, finish

NAME = re.compile(r"^(?P<id>\d+)_UCR_Anomaly_(?P<name>.+)_(?P<train>\d+)_(?P<begin>\d+)_(?P<end>\d+)$")


FORMAT = Format(own_train_part=True)  # no options: the file name says everything


def load(path, options, data, seed) -> RawData:
    """No options: everything comes from the file name."""
    path = existing(path)
    m = NAME.match(Path(path).stem)
    if m is None:
        raise InputError(
            f"{path}: name does not follow <id>_UCR_Anomaly_<name>_<trainEnd>_<begin>_<end>.txt; "
            "rename it as in the UCR Anomaly Archive"
        )
    try:
        # Some archive files hold one value per line, others all values on one line.
        values = np.array(Path(path).read_text().split(), dtype=np.float64)
    except ValueError:
        raise InputError(f"{path}: holds non-numeric values; expected one number per value") from None
    if values.size == 0:
        raise InputError(f"{path}: file has no values")
    train_end, begin, end = int(m["train"]), int(m["begin"]), int(m["end"])
    if not (0 < train_end <= begin < end <= len(values)):
        raise InputError(
            f"{path}: name says train end {train_end}, anomaly {begin}-{end}, but the series has "
            f"{len(values)} values; check the file name"
        )
    label = np.zeros(len(values), dtype=np.int8)
    label[begin:end] = 1
    frame = pd.DataFrame({"timestamp": np.arange(len(values), dtype=np.int64), "value": values})
    out = finish(frame, label=pd.Series(label))
    return RawData(frame=out, source="ucr", name=m["name"], train_end=train_end)
