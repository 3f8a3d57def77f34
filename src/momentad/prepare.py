"""Data prepared once, the same way everywhere: the raw source -> scaled chronological splits
(``data/processed``, :func:`momentad.preprocess.write_processed`, the ``preprocess`` stage) ->
the window index (``data/windows``, :func:`momentad.windows.write_windows`, the ``window``
stage). Each dataset of the study calls both through :func:`prepare_data`.

``windows.json`` has one layout: what params.yaml asked (``asked``, ``auto`` included) and what
that resolved to on this train split (``length``, ``strides``);
:func:`momentad.windows.resolved_window` is the one check that the index on disk is the one the
params ask for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from momentad.config import Params
from momentad.preprocess import write_processed
from momentad.windows import write_windows


def prepare_data(cfg: Params, processed: Path, windows: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both halves: (schema.json, windows.json)."""
    return write_processed(cfg, processed), write_windows(cfg.window, processed, windows)
