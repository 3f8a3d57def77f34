"""Atomic output: a stage writes into a temporary sibling, then renames, so a failure leaves
no half-written artifact behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from momentad.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _share(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create private (0600/0700) paths; outputs are for the team (umask)."""
    os.chmod(path, mode & ~_umask())


def _writable(target: Path) -> None:
    """Fail before any work when ``target`` could not be written or replaced."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{target.parent}: cannot be created ({e.strerror}); check the permissions") from None
    blocked = [p for p in (target.parent, *([target] if target.is_dir() else [])) if not os.access(p, os.W_OK)]
    if target.is_dir():
        blocked += [Path(r) for r, _, _ in os.walk(target) if not os.access(r, os.W_OK)]
    if blocked:
        raise InputError(f"{blocked[0]}: not writable, so {target} cannot be replaced; make it writable "
                         f"(chmod -R u+w {blocked[0]}) or write elsewhere")  # fmt: skip


@contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    _writable(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        _share(tmp, 0o777)
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(target: str | Path) -> Iterator[Path]:
    """Yield a temporary file path that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    if target.is_dir():
        raise InputError(f"{target}: is a folder; give a file name (e.g. {target / 'scores.csv'})")
    _writable(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _share(tmp, 0o666)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON (sorted keys, indented) to ``path`` directly; wrap in atomic_* for safety."""
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if isinstance(o, (pd.Timestamp,)):
        return o.isoformat()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write a frame to Parquet without the pandas index."""
    df.to_parquet(path, index=False)
