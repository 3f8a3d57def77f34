"""The evaluation series a pretraining corpus must not contain: params.yaml's data and every
dataset of study.yaml, read by their loaders. Apart from pretrain.py, so that the MOMENT detector
(which imports pretrain.py to adapt) does not depend on every loader and the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def evaluation_series(cfg: Any, study: Path) -> list[tuple[str, str, np.ndarray]]:
    """(dataset, KPI, raw values) of every evaluation dataset: params.yaml's ``data`` and each
    dataset of ``study`` (its overrides applied), read by their loaders."""
    import yaml

    from momentad import config, loaders
    from momentad.data import META_COLUMNS
    from momentad.study_file import override, read_study

    raw = yaml.safe_load(Path("params.yaml").read_text()) if Path("params.yaml").is_file() else None
    entries = [("params.yaml's data", cfg.data)]
    if study.is_file() and raw is not None:
        datasets, study_set, _ = read_study(study)
        for name, ds in datasets.items():
            p = override(override(raw, {k: v for k, v in study_set.items() if str(k).startswith("data.")}, "set"),
                         {"data.source": ds.source, "data.path": ds.path}, f"datasets.{name}")  # fmt: skip
            p = override(p, {k: v for k, v in ds.set.items() if str(k).startswith("data.")}, f"datasets.{name}.set")
            entries.append((name, config.parse(p).data))
    out = []
    for name, data in entries:
        if loaders.module(data.source).FORMAT.simulated:
            continue  # generated here: nothing of it can be in a public corpus
        frame = loaders.load(data, cfg.seed).frame
        for col in frame.columns:
            if col not in META_COLUMNS:
                v = pd_numeric(frame[col])
                out.append((name, str(col), v))
    return out


def pd_numeric(column: Any) -> np.ndarray:
    import pandas as pd

    v = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    return v[np.isfinite(v)]
