"""data.source: mscloud — one series of Microsoft's Cloud Monitoring Dataset
(microsoft/cloud-monitoring-dataset): a CSV (or ``.csv.gz``) with ``TimeStamp`` (ISO 8601,
quoted or not, with or without a time zone such as ``Z``), ``Value`` and a 0/1 ``Label``.

Some series hold no labelled anomaly on purpose (they test false alarms): they load, and the
comparison reports their false-alarm rate instead of a VUS-PR. The repository ships three
domains of the dataset in ``data/raw/ms-cloud-monitoring``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from momentad.loaders import Format, RawData
from momentad.loaders._common import finish, read_csv, require_column

FORMAT = Format()  # no options: the file says everything


def load(path, options, data, seed) -> RawData:
    """No options."""
    path = Path(path)
    df = read_csv(path)
    for col in ("TimeStamp", "Value", "Label"):
        require_column(df, col, path, "data.path (a Cloud Monitoring series: TimeStamp, Value, Label)")
    frame = pd.DataFrame({"timestamp": df["TimeStamp"], "value": df["Value"]})
    return RawData(frame=finish(frame, label=df["Label"]), source="mscloud", name=path.name.split(".")[0])
