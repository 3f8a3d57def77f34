"""data.source: iops — an AIOps-challenge KPI (the "IOPS" KPIs of NetManAIOps/donut and the 2018
AIOps challenge): one CSV (or ``.csv.gz``) with ``timestamp`` (Unix seconds), ``value`` and a
0/1 ``label``. The challenge's own files hold many KPIs in one table with a ``KPI ID`` column:
``data.iops.kpi_id`` picks one (null: the file must hold a single KPI).

Times become UTC; the KPI is the column ``value`` (renamed to the KPI id when the file names
one). The repository ships one KPI in ``data/raw/iops``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from momentad.config import optional
from momentad.errors import InputError
from momentad.loaders import Format, RawData
from momentad.loaders._common import finish, read_csv, require_column

KPI_ID = "KPI ID"


@dataclass(frozen=True)
class IOPSParams:
    # the KPI of a multi-KPI challenge file (its 'KPI ID' column); null: the file's only one
    kpi_id: str | None = optional(None)


FORMAT = Format(params=IOPSParams)


def load(path, options, data, seed) -> RawData:
    """Options (data.iops): kpi_id (null: the file's only KPI)."""
    path = Path(path)
    df = read_csv(path)
    for col in ("timestamp", "value"):
        require_column(df, col, path, "data.path (an AIOps KPI file: timestamp, value, label)")
    name = path.name.split(".")[0]
    if KPI_ID in df.columns:
        ids = sorted(df[KPI_ID].astype(str).unique())
        want = options.kpi_id
        if want is None and len(ids) > 1:
            raise InputError(f"{path}: holds {len(ids)} KPIs (column '{KPI_ID}'); set data.iops.kpi_id to one of "
                             f"{', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")  # fmt: skip
        want = want or ids[0]
        if want not in ids:
            raise InputError(f"{path}: no KPI {want!r} in column '{KPI_ID}'; set data.iops.kpi_id to one of "
                             f"{', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}")  # fmt: skip
        df = df[df[KPI_ID].astype(str) == want].drop(columns=[KPI_ID]).reset_index(drop=True)
        name = want
    elif options.kpi_id is not None:
        raise InputError(f"{path}: has no '{KPI_ID}' column to pick data.iops.kpi_id={options.kpi_id!r} from; "
                         "set it to null")  # fmt: skip
    seconds = pd.to_numeric(df["timestamp"], errors="coerce")
    if seconds.isna().any():
        row = int(seconds.isna().to_numpy().argmax())
        raise InputError(f"{path}: column 'timestamp' holds {df['timestamp'].iloc[row]!r} at row {row}; the AIOps "
                         "format has Unix seconds there")  # fmt: skip
    frame = pd.DataFrame({"timestamp": pd.to_datetime(seconds, unit="s"), "value": df["value"]})
    label = df["label"] if "label" in df.columns else None
    if label is None:
        raise InputError(f"{path}: no 'label' column; AIOps KPI files label each row 0/1")
    return RawData(frame=finish(frame, label=label), source="iops", name=name)
