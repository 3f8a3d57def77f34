"""data.source: cicddos — CIC-DDoS2019 flow CSVs (one file, or a folder of them): a
``Timestamp`` column, numeric flow features and ``Label`` (BENIGN or the attack name).

Rows are flows, not regular samples: they are ordered by time (stable, so equal timestamps
keep file order) and identifier columns (IPs, ports, flow ids) are dropped."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from momentad.config import optional
from momentad.errors import InputError
from momentad.loaders import Format, RawData
from momentad.loaders._common import existing, finish, read_csv, require_column

IDENTIFIERS = {"Unnamed: 0", "Flow ID", "Source IP", "Source Port", "Destination IP",
               "Destination Port", "Protocol", "SimillarHTTP", "Inbound"}  # fmt: skip


@dataclass(frozen=True)
class CICDDoSParams:
    max_rows: int | None = optional(None, ge=1)  # cap very large captures (null: every row)


FORMAT = Format(params=CICDDoSParams)


def load(path, options, data, seed) -> RawData:
    """Options (data.cicddos): max_rows (null = all) to cap very large captures."""
    root = existing(path, "folder")
    files = sorted(root.glob("*.csv")) if root.is_dir() else [root]
    if not files:
        raise InputError(f"{root}: no .csv files in the folder; check data.path")
    parts = []
    for f in files:
        df = read_csv(f, low_memory=False)
        df.columns = [c.strip() for c in df.columns]  # the published files pad names with spaces
        require_column(df, "Timestamp", f, "data.path (CIC-DDoS2019 flows carry 'Timestamp')")
        require_column(df, "Label", f, "data.path (CIC-DDoS2019 flows carry 'Label')")
        parts.append(df)
    df = pd.concat(parts, ignore_index=True)
    df["Timestamp"] = pd.to_datetime(df["Timestamp"], errors="coerce")
    if df["Timestamp"].isna().all():
        raise InputError(f"{root}: column 'Timestamp' has no parseable times; expected e.g. 2018-12-01 10:51:39.813448")
    df = df.sort_values("Timestamp", kind="stable").reset_index(drop=True)
    if options.max_rows:
        df = df.iloc[: options.max_rows]
    features = df.drop(columns=[c for c in df.columns if c in IDENTIFIERS | {"Timestamp", "Label"}])
    features = features.replace([np.inf, -np.inf], np.nan)  # Flow Bytes/s holds 'Infinity'
    frame = pd.concat([df[["Timestamp"]].rename(columns={"Timestamp": "timestamp"}), features], axis=1)
    label = df["Label"].astype("string").str.strip()
    fault = label.mask(label.str.upper() == "BENIGN")
    out = finish(frame, fault_type=fault)
    return RawData(frame=out, source="cicddos", name=root.stem, unique_timestamps=False,
                   info={"files": [f.name for f in files]})  # fmt: skip
