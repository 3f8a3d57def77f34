"""data.source: rcaeval — an RCAEval case folder (e.g. RE2-TT/ts-order-service_cpu/1/):
``data.csv`` (or ``metrics.csv``) with a ``time`` column in Unix seconds and
``<service>_<metric>`` columns, and ``inject_time.txt`` with the injection time.

The fault type and root cause come from the case folder's name ``<service>_<fault>``; the
label covers ``data.rcaeval.label_seconds`` from the injection time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from momentad.config import optional
from momentad.errors import InputError
from momentad.loaders import Format, RawData
from momentad.loaders._common import existing, finish, read_csv, require_column


@dataclass(frozen=True)
class RCAEvalParams:
    label_seconds: float = optional(600.0, gt=0)
    # null = read from the RCAEval case folder
    inject_time: float | str | None = optional(None)
    fault_type: str | None = optional(None)
    root_cause: str | None = optional(None)


FORMAT = Format(params=RCAEvalParams)


def load(path, options, data, seed) -> RawData:
    """Options (data.rcaeval): label_seconds, inject_time / fault_type / root_cause overrides."""
    case = existing(path, "folder")
    if case.is_file():
        case, csv = case.parent, case
    else:
        csv = next(
            (case / n for n in ("data.csv", "metrics.csv", "simple_data.csv") if (case / n).exists()),
            None,
        )
        if csv is None:
            raise InputError(f"{case}: no data.csv or metrics.csv in the RCAEval case folder; check data.path")
    df = read_csv(csv)
    require_column(df, "time", csv, "data.path (RCAEval metrics need a 'time' column)")

    inject = options.inject_time
    if inject is None:
        inject_file = case / "inject_time.txt"
        if not inject_file.exists():
            raise InputError(f"{inject_file}: not found; add it or set data.rcaeval.inject_time (Unix seconds)")
        try:
            inject = float(inject_file.read_text().strip())
        except ValueError:
            raise InputError(f"{inject_file}: expected one number (Unix seconds)") from None
    seconds = options.label_seconds

    fault_type, root_cause = options.fault_type, options.root_cause
    if fault_type is None or root_cause is None:
        # The case folder may be <service>_<fault>/<run>/ or <service>_<fault>/ itself.
        named = case.parent if case.name.isdigit() else case
        m = re.match(r"^(?P<svc>.+)_(?P<fault>[a-z]+)$", named.name)
        if m is None and fault_type is None:
            raise InputError(
                f"{named}: cannot read '<service>_<fault>' from the folder name; "
                "set data.rcaeval.fault_type and data.rcaeval.root_cause"
            )
        fault_type = fault_type or m.group("fault")
        root_cause = root_cause or (m.group("svc") if m else None)

    time = pd.to_numeric(df["time"], errors="coerce")
    anomalous = (time >= inject) & (time < inject + seconds)
    frame = df.drop(columns=["time"])
    frame.insert(0, "timestamp", pd.to_datetime(time, unit="s", errors="coerce"))
    ft = pd.Series(pd.NA, index=df.index, dtype="string").mask(anomalous, fault_type)
    rc = pd.Series(pd.NA, index=df.index, dtype="string").mask(anomalous, root_cause)
    out = finish(frame, label=anomalous.astype("int8"), fault_type=ft, root_cause=rc)
    return RawData(frame=out, source="rcaeval", name=f"{root_cause}_{fault_type}",
                   info={"inject_time": inject, "label_seconds": seconds})  # fmt: skip
