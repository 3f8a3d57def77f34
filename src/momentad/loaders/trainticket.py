"""data.source: trainticket — one CSV: a timestamp column, KPI columns, a label and/or a
fault-type column (and optionally a root-cause column), as the TrainTicket studies export."""

from __future__ import annotations

from pathlib import Path

from momentad.errors import InputError
from momentad.loaders import RawData
from momentad.loaders._common import finish, read_csv, require_column

# the columns the pipeline adds to every table: a file column of that name that is not read as
# such would be overwritten (or, with no label at all, handed to every detector as a KPI)
_OWN = {"label": "label_column", "fault_type": "fault_type_column", "root_cause": "root_cause_column"}


def load(path, options, data, seed) -> RawData:
    """Options (data.trainticket): timestamp_column, label_column, fault_type_column,
    root_cause_column; a column set to null is not used."""
    path = Path(path)
    ts_col, label_col = options.timestamp_column, options.label_column
    fault_col, root_col = options.fault_type_column, options.root_cause_column
    df = read_csv(path)
    require_column(df, ts_col, path, "data.trainticket.timestamp_column")
    has_label = bool(label_col) and label_col in df.columns
    has_fault = bool(fault_col) and fault_col in df.columns
    if not has_label and not has_fault:
        require_column(df, label_col or "label", path, "data.trainticket.label_column (or fault_type_column)")
    meta = {c for c in (ts_col, label_col, fault_col, root_col) if c}
    for name, key in _OWN.items():
        if name in df.columns and name not in meta:
            now = getattr(options, key)
            raise InputError(f"{path}: column '{name}' is not read as the {name.replace('_', ' ')} "
                             f"(data.trainticket.{key} is {'null' if now is None else repr(now)}); set "
                             f"data.trainticket.{key}: {name}, or rename the column")  # fmt: skip
    frame = df[[c for c in df.columns if c not in meta]].copy()
    frame.insert(0, "timestamp", df[ts_col])
    out = finish(
        frame,
        label=df[label_col] if has_label else None,
        fault_type=df[fault_col] if has_fault else None,
        root_cause=df[root_col] if root_col and root_col in df.columns else None,
    )
    return RawData(frame=out, source="trainticket", name=path.stem)
