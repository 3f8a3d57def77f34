"""data.source: nezha — the Nezha dataset's layout (TrainTicket and OnlineBoutique days):

    <path>/<day>/metric/<pod>_metric.csv        one file per pod, about one row per minute
    <path>/<day>/metric/front_service.csv       the frontend's service-level metrics
    <path>/<day>/<day>-fault_list.json          the faults injected that day, grouped by hour

``data.path`` is the folder holding the days (or one day's folder); null reads the two
TrainTicket days shipped in ``data/raw/nezha-trainticket``. Files may be gzipped (``.csv.gz``;
the shipped copy is). Pods are named
``<service>-<replica-set hash>-<pod hash>``; their rows are put on a one-minute grid per day
(samples are not exactly on the minute) and averaged per service, so columns are
``<service>_<KPI>``. Other CSVs in a metric folder (OnlineBoutique's ``dependency.csv``,
``source_50.csv``, ``destination_50.csv``) are not metric tables: they are skipped and listed
in ``schema.json`` (``source_info.ignored``).

Labels: each fault marks ``data.nezha.label_minutes`` minutes from its ``inject_time``
(the fault list gives start times only; ``inject_timestamp`` is 8 hours off and unused);
``fault_type`` is ``inject_type`` and ``root_cause`` the injected pod's service. The days are
not contiguous: preprocess sees the time gap and keeps each day a segment of its own. With two
or more days, every day but the last is the format's train part (faults are injected in bursts
in the first hours of each day, so a row-fraction split leaves val and test without any).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from momentad.config import optional
from momentad.errors import InputError
from momentad.loaders import Format, RawData
from momentad.loaders._common import existing, finish, read_csv, require_column

SHIPPED = Path("data/raw/nezha-trainticket")  # relative to the project root, where stages run
POD = re.compile(r"^(?P<service>.+?)-[0-9a-f]{6,10}-[0-9a-z]{5}$")
METRIC_FILE = re.compile(r"^(?P<pod>.+)_metric\.csv(\.gz)?$")
FRONT_FILE = re.compile(r"^front_service\.csv(\.gz)?$")


def service_of(pod: str) -> str:
    """``ts-order-service-5b67c48447-mv5hb`` -> ``ts-order-service`` (a name without the
    replica-set and pod hashes is its own service)."""
    m = POD.match(pod)
    return m.group("service") if m else pod


def _minutes(times: pd.Series, path: Path) -> pd.Series:
    """Go's ``2023-01-29 08:41:10.17 +0000 UTC m=+1.2`` -> the minute it falls in."""
    parsed = pd.to_datetime(times.astype(str).str.slice(0, 19), errors="coerce")
    if parsed.isna().any():
        bad = times[parsed.isna()].iloc[0]
        raise InputError(f"{path}: column 'Time' has an unparseable time {bad!r}; expected the Nezha layout")
    return parsed.dt.floor("min")


def _kpi(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def _table(path: Path, who: str) -> pd.DataFrame:
    """One metric file as (minute x KPI) means, columns ``<service>_<KPI>``."""
    df = read_csv(path)
    require_column(df, "Time", path, "data.path (a Nezha metric file has a 'Time' column)")
    name_col = "PodName" if "PodName" in df.columns else "ServiceName" if "ServiceName" in df.columns else None
    if name_col is None:
        raise InputError(f"{path}: neither 'PodName' nor 'ServiceName' column; is data.path a Nezha folder?")
    minute = _minutes(df["Time"], path)
    numeric = df.drop(columns=["Time", "TimeStamp", name_col], errors="ignore").apply(pd.to_numeric, errors="coerce")
    service = service_of(str(df[name_col].iloc[0])) if who == "pod" else "frontend"
    numeric.columns = [f"{service}_{_kpi(c)}" for c in numeric.columns]
    return numeric.groupby(minute.to_numpy()).mean()


def _faults(day: Path) -> list[dict]:
    files = sorted(day.glob("*fault_list.json"))
    if not files:
        raise InputError(f"{day}: no <day>-fault_list.json; every Nezha day folder has one")
    try:
        raw = json.loads(files[0].read_text())
    except json.JSONDecodeError:
        raise InputError(f"{files[0]}: not valid JSON") from None
    entries = [e for group in (raw.values() if isinstance(raw, dict) else [raw]) for e in group]
    out = []
    for e in entries:
        missing = [k for k in ("inject_time", "inject_pod", "inject_type") if k not in e]
        if missing:
            raise InputError(
                f"{files[0]}: a fault entry lacks {missing}; expected inject_time, inject_pod, inject_type"
            )
        out.append({"start": pd.Timestamp(e["inject_time"]).floor("min"), "type": str(e["inject_type"]),
                    "service": service_of(str(e["inject_pod"]))})  # fmt: skip
    return out


def load_day(day: Path, label_minutes: int) -> tuple[pd.DataFrame, list[str], int]:
    """One day: the minute grid with every service's KPIs and the labels; the skipped files;
    the number of faults."""
    folder = day / "metric"
    if not folder.is_dir():
        raise InputError(f"{day}: no 'metric' folder; data.path must hold Nezha day folders (<day>/metric/)")
    tables, ignored = [], []
    for f in sorted(folder.iterdir()):
        if METRIC_FILE.match(f.name):
            tables.append(_table(f, "pod"))
        elif FRONT_FILE.match(f.name):
            tables.append(_table(f, "front"))
        else:
            ignored.append(f"{day.name}/metric/{f.name}")
    if not tables:
        raise InputError(f"{folder}: no *_metric.csv file; data.path must hold Nezha day folders")
    # replicas of one service share column names: average them
    wide = pd.concat(tables, axis=1)
    wide = wide.T.groupby(level=0).mean().T.sort_index(axis=1)
    grid = pd.date_range(wide.index.min(), wide.index.max(), freq="min")
    wide = wide.reindex(grid)
    label = np.zeros(len(grid), dtype=np.int8)
    ftype = pd.Series(pd.NA, index=range(len(grid)), dtype="string")
    cause = pd.Series(pd.NA, index=range(len(grid)), dtype="string")
    faults = _faults(day)
    for fault in sorted(faults, key=lambda f: f["start"]):
        lo = grid.searchsorted(fault["start"])
        hi = grid.searchsorted(fault["start"] + pd.Timedelta(minutes=label_minutes))
        label[lo:hi] = 1
        ftype.iloc[lo:hi] = fault["type"]
        cause.iloc[lo:hi] = fault["service"]
    frame = wide.reset_index(drop=True)
    frame.insert(0, "timestamp", grid)
    return finish(frame, label=pd.Series(label), fault_type=ftype, root_cause=cause), ignored, len(faults)


@dataclass(frozen=True)
class NezhaParams:
    label_minutes: int = optional(5, ge=1, le=1440)  # minutes labelled from each injection


FORMAT = Format(params=NezhaParams, needs_path=False, own_train_part=True)


def load(path, options, data, seed) -> RawData:
    """Options (data.nezha): label_minutes (minutes labelled anomalous from each injection).
    ``path`` None: the TrainTicket days shipped in the repository."""
    if not path:
        if not SHIPPED.is_dir():
            raise InputError(f"params.yaml: data.path is empty and the shipped copy {SHIPPED} is missing; set "
                             "data.path to a folder of Nezha days")  # fmt: skip
        path = SHIPPED
    root = existing(path, "folder")
    days = [root] if (root / "metric").is_dir() else sorted(d for d in root.iterdir() if (d / "metric").is_dir())
    if not days:
        raise InputError(f"{root}: no <day>/metric/ folder; point data.path at the folder that holds the Nezha days")
    label_minutes = options.label_minutes
    frames, ignored, segments = [], [], []
    row = n_faults = 0
    for day in days:
        frame, skipped, n = load_day(day, label_minutes)
        n_faults += n
        frames.append(frame)
        ignored += skipped
        segments.append({"day": day.name, "start_row": row, "rows": len(frame)})
        row += len(frame)
    out = pd.concat(frames, ignore_index=True, sort=False)
    meta = ["timestamp", "label", "fault_type", "root_cause"]
    out = out[meta[:1] + sorted(c for c in out.columns if c not in meta) + meta[1:]]
    train_end = segments[-1]["start_row"] if len(days) > 1 else None
    return RawData(frame=out, source="nezha", name=root.name, train_end=train_end,
                   info={"days": [d.name for d in days], "segments": segments, "ignored": ignored,
                         "label_minutes": label_minutes, "faults": n_faults})  # fmt: skip
