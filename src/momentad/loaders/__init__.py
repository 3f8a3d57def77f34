"""Loaders turn a data source into one time-ordered frame (the raw table).

A format is one module of this package (``data.source`` names it) that declares :data:`FORMAT`
(its options class, the params.yaml section ``data.<format>``, and what it needs) and defines
``load(path, options, data, seed) -> RawData``. Adding a source is that module and, if it has
options, its section in params.yaml; nothing else names formats. Every loader returns a frame
with ``timestamp``, numeric KPI columns, ``label`` (0/1), ``fault_type`` (string or null) and
``root_cause`` (string or null), plus ``train_end`` where the format itself defines the training
part (SMD, UCR, TSB-AD).
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from momentad.config import DataParams, build
from momentad.errors import InputError

HERE = Path(__file__).parent
RENAMED = {"trainticket": "csv"}  # old source names, each answered with one line


@dataclass(frozen=True)
class NoOptions:
    """A format whose file says everything (its name or columns)."""


@dataclass(frozen=True)
class Format:
    """What a loader module declares about its format."""

    params: type = NoOptions  # the options class: params.yaml's data.<format> section
    needs_path: bool = True  # data.path must name its file or folder
    own_train_part: bool = False  # the file says where train ends (evaluate.protocol tsbad needs that)
    simulated: bool = False  # the data are generated (outputs say "synthetic")


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
    simulated: bool = False  # generated data (the format's FORMAT.simulated)
    time_format: str | None = None  # strftime codes of the time column, where the format was told them


def names() -> list[str]:
    """Every data format: the modules of this package (found without importing any)."""
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))


def module(source: str) -> ModuleType:
    """The loader module of ``source``, or one line naming the known formats."""
    if source in RENAMED:
        new = RENAMED[source]
        raise InputError(f"params.yaml: data.source={source} is now called {new}; set data.source: {new} (and "
                         f"rename a data.{source} section to data.{new})")  # fmt: skip
    known = names()
    if source not in known:
        close = difflib.get_close_matches(str(source), known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise InputError(f"params.yaml: data.source must be one of {', '.join(map(repr, known))}; got {source!r} "
                         f"({hint}each format is a module of momentad.loaders)")  # fmt: skip
    return importlib.import_module(f"{__name__}.{source}")


def configure(data: DataParams, protocol: str = "default") -> tuple[Format, Any]:
    """The chosen format and its typed options (``data.<source>``; defaults where the section is
    left out). Every format section present is checked by its own module; a section that names
    no format fails with one line."""
    known = names()
    for key in data.formats:
        if key in RENAMED and key != data.source:
            raise InputError(f"params.yaml: data.{key} is now called data.{RENAMED[key]}; rename the section")
        if key not in known:
            close = difflib.get_close_matches(str(key), known + ["source", "path", "split", "scaler",
                                                                 "drop_constant", "ffill_limit"], n=1)  # fmt: skip
            hint = f"did you mean data.{close[0]}?" if close else f"formats: {', '.join(known)}"
            raise InputError(f"params.yaml: data.{key} is not a known key; {hint}")
    mod = module(data.source)
    fmt: Format = mod.FORMAT
    for key, section in data.formats.items():
        if key != data.source:
            build(module(key).FORMAT.params, section if section is not None else {}, f"data.{key}")
    options = build(fmt.params, data.formats.get(data.source) or {}, f"data.{data.source}")
    if fmt.needs_path and not data.path:
        raise InputError(f"params.yaml: data.path is empty; set it to your {data.source} file or folder")
    if protocol == "tsbad" and not fmt.own_train_part:
        own = [n for n in known if module(n).FORMAT.own_train_part]
        raise InputError(f"params.yaml: evaluate.protocol=tsbad needs a file with its own train part (data.source "
                         f"{' or '.join(own)}), not {data.source}; use protocol default")  # fmt: skip
    return fmt, options


def load(data: DataParams, seed: int, protocol: str = "default") -> RawData:
    """Load ``data.source`` from ``data.path`` with that format's typed options."""
    fmt, options = configure(data, protocol)
    raw = module(data.source).load(path=data.path, options=options, data=data, seed=seed)
    raw.origin = raw.origin or str(data.path or data.source)
    raw.simulated = fmt.simulated
    return raw
