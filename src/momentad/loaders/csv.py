"""data.source: csv — one table (CSV, ``.csv.gz``, or Parquet): a timestamp column, KPI columns,
a label and/or a fault-type column (and optionally a root-cause column), as the TrainTicket
studies export. Monitoring tools' exports load too:

- **long format** (Prometheus / VictoriaMetrics: ``timestamp, metric, instance, value``, one row
  per time and series): ``data.csv.long: {series: [metric, instance], value: value}`` pivots it
  to one column per series (``metric/instance``); a (series, time) pair given twice is refused;
- **InfluxDB 2 annotated CSV** (``#datatype`` lines above the header) is recognised: the
  annotations and Flux's bookkeeping columns are dropped and ``_time`` / ``_value`` /
  ``_measurement`` ``_field`` and the tags become the long format above;
- **Grafana** panel exports (``Time`` in epoch milliseconds, one column per PromQL series):
  set ``timestamp_column: Time``; values exported with units (``2.02%``, ``101 ms``) are refused
  with the fix (export raw values).

Times are ISO 8601, Unix seconds, or what ``time_format`` (strftime codes) says; labels come from
``label_column`` (0/1) or ``fault_type_column`` (non-empty = anomalous)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from momentad.config import optional
from momentad.errors import InputError
from momentad.loaders import Format, RawData
from momentad.loaders._common import finish, read_csv, require_column

# the columns the pipeline adds to every table: a file column of that name that is not read as
# such would be overwritten (or, with no label at all, handed to every detector as a KPI)
_OWN = {"label": "label_column", "fault_type": "fault_type_column", "root_cause": "root_cause_column"}
RESERVED = ("timestamp", "segment")  # the processed table's own columns


@dataclass(frozen=True)
class LongParams:
    """One row per (time, series): the columns naming the series and the one holding the value."""

    series: list[str] = optional([])
    value: str = optional("value")


@dataclass(frozen=True)
class CsvParams:
    """Which columns are which (null: the file has no such column)."""

    timestamp_column: str = optional("timestamp")
    label_column: str | None = optional("label")  # null: derive the label from the fault-type column
    fault_type_column: str | None = optional("fault_type")
    root_cause_column: str | None = optional("root_cause")
    time_format: str | None = optional(None)  # strftime codes, e.g. '%d/%m/%Y %H:%M'; null: ISO 8601 or epoch
    kpis: list[str] | None = optional(None)  # read only these KPI columns (null: every other column)
    long: LongParams | None = optional(None)  # a long-format export (module docstring)


FORMAT = Format(params=CsvParams)

INFLUX_LONG = LongParams(series=["_measurement", "_field"], value="_value")


def load(path, options, data, seed) -> RawData:
    """Options (data.csv): the columns' roles, time_format, kpis, long."""
    path = Path(path)
    ts_col, label_col = options.timestamp_column, options.label_column
    fault_col, root_col = options.fault_type_column, options.root_cause_column
    meta = [c for c in (ts_col, label_col, fault_col, root_col) if c]
    wanted = None if options.kpis is None or options.long is not None else list(dict.fromkeys(options.kpis))
    # only the columns asked for are read (a narrower KPI set is how a file too big to fit is read)
    df = read_csv(path, max_rows=data.max_rows, columns=None if wanted is None else [*meta, *wanted])
    long = options.long
    if df.attrs.get("influx"):
        ts_col = "_time"
        tags = [c for c in df.columns if not c.startswith("_") and c not in meta]
        long = LongParams(series=[*INFLUX_LONG.series, *tags], value="_value") if long is None else long
    require_column(df, ts_col, path, "data.csv.timestamp_column")
    if long is not None:
        df = pivot(df, long, ts_col, label_col, [c for c in (fault_col, root_col) if c], path)
    elif _looks_long(df, ts_col):
        cols = [c for c in df.columns if c not in (ts_col, "value") and not pd.api.types.is_numeric_dtype(df[c])]
        raise InputError(f"{path}: looks like a long-format export (one row per time and series: columns "
                         f"{', '.join(cols)}, value); set data.csv.long: {{series: [{', '.join(cols)}], value: value}} "
                         "to get one column per series")  # fmt: skip
    if wanted is not None:
        missing = [k for k in wanted if k not in df.columns]
        if missing:
            raise InputError(f"{path}: data.csv.kpis names {missing[0]!r}, which the file lacks; fix the list")
        df = df[[c for c in df.columns if c in wanted or c in meta or c == ts_col]]
    has_label = bool(label_col) and label_col in df.columns
    has_fault = bool(fault_col) and fault_col in df.columns
    if not has_label and not has_fault:
        require_column(df, label_col or "label", path, "data.csv.label_column (or fault_type_column)")
    for name, key in _OWN.items():
        if name in df.columns and name not in meta:
            now = getattr(options, key)
            raise InputError(f"{path}: column '{name}' is not read as the {name.replace('_', ' ')} "
                             f"(data.csv.{key} is {'null' if now is None else repr(now)}); set "
                             f"data.csv.{key}: {name}, or rename the column")  # fmt: skip
    for name in RESERVED:
        if name in df.columns and name != ts_col:
            raise InputError(f"{path}: column '{name}' is a KPI named like the pipeline's own '{name}' column; "
                             f"rename it (e.g. {name}_kpi)")  # fmt: skip
    # the meta columns leave the table in place (pop): a large table is never copied
    times = df.pop(ts_col)
    label = df.pop(label_col) if has_label else None
    fault = df.pop(fault_col) if has_fault else None
    cause = df.pop(root_col) if root_col and root_col in df.columns else None
    for c in [c for c in meta if c in df.columns]:
        df.pop(c)
    df.insert(0, "timestamp", times)
    out = finish(df, label=label, fault_type=fault, root_cause=cause)
    return RawData(frame=out, source="csv", name=path.stem.removesuffix(".csv"), time_format=options.time_format)


def _looks_long(df: pd.DataFrame, ts_col: str) -> bool:
    """Text key columns beside a numeric ``value`` column, with repeated times: a long export."""
    if "value" not in df.columns or not pd.api.types.is_numeric_dtype(df["value"]):
        return False
    keys = [c for c in df.columns if c not in (ts_col, "value") and df[c].dtype == object]
    return bool(keys) and bool(df[ts_col].duplicated().any())


def pivot(df: pd.DataFrame, long: LongParams, ts_col: str, label_col: str | None, others: list[str],
          path: Path) -> pd.DataFrame:  # fmt: skip
    """A long table -> one column per series (the series columns' values joined by '/'), with the
    label (any anomalous) and fault type / root cause (the first) per time, where present."""
    for col in [*long.series, long.value]:
        require_column(df, col, path, "data.csv.long")
    name = df[long.series].astype(str).agg("/".join, axis=1) if long.series else pd.Series("value", index=df.index)
    twice = pd.DataFrame({"t": df[ts_col], "s": name}).duplicated()
    if twice.any():
        i = int(twice.to_numpy().argmax())
        raise InputError(f"{path}: series {name.iloc[i]!r} has two values at {df[ts_col].iloc[i]} (row {i}); a long "
                         "export needs one value per (series, time): add the column that tells them apart to "
                         "data.csv.long.series, or aggregate them first")  # fmt: skip
    wide = pd.DataFrame({"t": df[ts_col], "s": name, "v": df[long.value]}).pivot(index="t", columns="s", values="v")
    wide.columns = [str(c) for c in wide.columns]
    by = df.groupby(ts_col)
    if label_col and label_col in df.columns:
        wide[label_col] = by[label_col].max()
    for col in others:
        if col in df.columns and col not in long.series:
            wide[col] = by[col].first()
    out = wide.reset_index().rename(columns={"t": ts_col})
    return out.sort_values(ts_col, kind="stable").reset_index(drop=True)
