"""Loaders turn a data source into one time-ordered frame (the raw table).

Every loader returns :class:`RawData`: a frame with ``timestamp``, numeric KPI columns,
``label`` (0/1), ``fault_type`` (string or null) and ``root_cause`` (string or null), plus
``train_end`` where the format itself defines the training part (SMD, UCR, TSB-AD).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from momentad.errors import InputError


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


def _registry() -> dict[str, Callable[..., RawData]]:
    from momentad.loaders import cicddos, nezha, rcaeval, smd, synthetic, trainticket, tsbad, ucr

    return {
        "synthetic": synthetic.load,
        "trainticket": trainticket.load,
        "rcaeval": rcaeval.load,
        "smd": smd.load,
        "ucr": ucr.load,
        "tsbad": tsbad.load,
        "cicddos": cicddos.load,
        "nezha": nezha.load,
    }


SOURCES = ("synthetic", "trainticket", "rcaeval", "smd", "ucr", "tsbad", "cicddos", "nezha")


def load(data: Any, seed: int) -> RawData:
    """Load ``data.source`` from ``data.path`` with that source's options (``data.<source>``);
    ``data`` is the validated :class:`momentad.config.DataParams`."""
    from momentad.config import as_dict

    params = as_dict(data)
    source, path = data.source, data.path
    if source not in SOURCES:
        raise InputError(f"params.yaml: data.source={source!r}; choose one of {', '.join(SOURCES)}")
    options = params.get(source) or {}
    if source == "nezha" and not path:
        from momentad.loaders.nezha import SHIPPED

        if not SHIPPED.is_dir():
            raise InputError(f"params.yaml: data.path is empty and the shipped copy {SHIPPED} is missing; set "
                             "data.path to a folder of Nezha days")  # fmt: skip
        path = str(SHIPPED)
    if source != "synthetic" and not path:
        raise InputError(f"params.yaml: data.path is empty; set it to your {source} file or folder")
    raw = _registry()[source](path=path, options=options, data_params=params, seed=seed)
    raw.origin = raw.origin or str(path or source)
    return raw
