"""data.source: tsbad — one TSB-AD benchmark CSV (feature columns plus ``Label``), e.g.
``001_NAB_id_1_Facility_tr_1007_1st_2014.csv``: the training part is the first N rows,
N taken from ``_tr_N_`` in the name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from momentad.errors import InputError
from momentad.loaders import Format, RawData
from momentad.loaders._common import finish, read_csv, require_column

FORMAT = Format(own_train_part=True)  # no options: the file name says where train ends


def load(path, options, data, seed) -> RawData:
    """No options: the train length comes from the file name."""
    path = Path(path)
    df = read_csv(path)
    require_column(df, "Label", path, "data.path (TSB-AD files end with a 'Label' column)")
    m = re.search(r"_tr_(\d+)_", path.name)
    if m is None:
        raise InputError(f"{path}: name lacks '_tr_<N>_' (the train length); rename it as in TSB-AD")
    train_end = int(m.group(1))
    if not 0 < train_end < len(df):
        raise InputError(f"{path}: '_tr_{train_end}_' but the file has {len(df)} rows")
    frame = df.drop(columns=["Label"])
    frame.insert(0, "timestamp", np.arange(len(df), dtype=np.int64))
    out = finish(frame, label=df["Label"])
    return RawData(frame=out, source="tsbad", name=path.stem, train_end=train_end)
