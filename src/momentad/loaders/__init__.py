"""Loaders turn a data source into one time-ordered frame (the raw table).

Every loader returns :class:`RawData`: a frame with ``timestamp``, numeric KPI columns,
``label`` (0/1), ``fault_type`` (string or null) and ``root_cause`` (string or null), plus
``train_end`` where the format itself defines the training part (SMD, UCR, TSB-AD).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class RawData:
    """A loaded source: the raw table and what the format says about it."""

    frame: pd.DataFrame
    source: str
    name: str
    origin: str = ""  # the file or folder it came from, for error messages
    train_end: int | None = None  # rows [0, train_end) are the format's own training part
    unique_timestamps: bool = True  # False for event data (flows) where ties are normal
    info: dict[str, Any] = field(default_factory=dict)


def load(data: Any, seed: int) -> RawData:
    """Load ``data.source`` from ``data.path`` with that format's typed options (``data.<source>``);
    ``data`` is the validated :class:`momentad.config.DataParams`. Each format is the module of its
    name in this package, with ``load(path, options, data, seed)``."""
    import importlib

    source, path = data.source, data.path
    module = importlib.import_module(f"momentad.loaders.{source}")
    raw = module.load(path=path, options=data.options, data=data, seed=seed)
    raw.origin = raw.origin or str(path or source)
    return raw
