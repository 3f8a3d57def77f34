"""Window index per split, and turning it into model-ready arrays.

The window stage stores only an index (start/stop rows into the processed split table plus
per-window labels), so its output does not grow with overlap; :func:`materialize` builds the
(windows, channels, context) arrays and the input mask on demand.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentad.config import CONTEXT_LENGTH, WindowParams
from momentad.errors import InputError
from momentad.io import atomic_dir, write_json, write_parquet

__all__ = ["CONTEXT_LENGTH"]


def starts(n: int, length: int, stride: int) -> np.ndarray:
    """Window starts covering [0, n): every ``stride`` rows, plus one window aligned to the
    end so the last rows are always covered. Requires n >= length."""
    s = np.arange(0, n - length + 1, stride)
    if s[-1] + length < n:
        s = np.append(s, n - length)
    return s


def segment_bounds(frame: pd.DataFrame) -> list[tuple[int, int]]:
    """[start, stop) rows of each contiguous segment of a split table (its ``segment`` column,
    written by preprocess where the time series has a gap; one segment without it)."""
    n = len(frame)
    if n == 0:
        return []
    if "segment" not in frame.columns:
        return [(0, n)]
    cuts = (np.flatnonzero(np.diff(frame["segment"].to_numpy())) + 1).tolist()
    edges = [0, *cuts, n]
    return list(zip(edges[:-1], edges[1:], strict=True))


def segment_windows(bounds: list[tuple[int, int]], length: int, stride: int,
                    short: bool = True) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(starts, stops) of windows that never cross a segment boundary. A segment of at least
    ``length`` rows gets full windows (:func:`starts`); a shorter one gets a single window of its
    own length when ``short`` (scored padded and masked), none otherwise."""
    st, sp = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    for a, b in bounds:
        if b - a >= length:
            s = starts(b - a, length, stride) + a
            st.append(s)
            sp.append(s + length)
        elif short and b > a:
            st.append(np.array([a]))
            sp.append(np.array([b]))
    return np.concatenate(st).astype(np.int64), np.concatenate(sp).astype(np.int64)


def padded_windows(bounds: list[tuple[int, int]], length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-length windows for models that need one shape (the autoencoders): row indices
    (windows, length) of :func:`segment_windows`, and which positions are real rows. A segment
    shorter than ``length`` gets one window left-padded by repeating its first row (not real)."""
    st, sp = segment_windows(bounds, length, stride)
    rows = sp[:, None] - length + np.arange(length)[None, :]
    return np.maximum(rows, st[:, None]), rows >= st[:, None]


def per_segment(values: np.ndarray, bounds: list[tuple[int, int]], fn) -> np.ndarray:
    """Apply a row-wise causal feature function to each segment on its own (so no trailing
    window reaches back across a gap) and stack the results in row order."""
    if len(bounds) <= 1:
        return np.asarray(fn(values))
    return np.concatenate([np.asarray(fn(values[a:b])) for a, b in bounds])


def window_index(split: pd.DataFrame, length: int, stride: int, short: bool = True) -> pd.DataFrame:
    """One row per window of a split: row range, timestamps and window-level labels. Windows
    stay inside segments (:func:`segment_windows`)."""
    st, stop = segment_windows(segment_bounds(split), length, stride, short)
    label = split["label"].to_numpy().astype(np.int64)
    csum = np.concatenate([[0], np.cumsum(label)])
    anomalous = csum[stop] - csum[st]
    codes, kinds = pd.factorize(split["fault_type"], use_na_sentinel=True)
    types = []
    for a, b, k in zip(st, stop, anomalous, strict=True):
        types.append(sorted(kinds[np.unique(c)].tolist()) if k and (c := codes[a:b][codes[a:b] >= 0]).size else [])
    ts = split["timestamp"]
    return pd.DataFrame(
        {
            "window": np.arange(len(st)),
            "start": st,
            "stop": stop,
            "start_timestamp": ts.iloc[st].to_numpy(),
            "stop_timestamp": ts.iloc[stop - 1].to_numpy(),
            "any_anomaly": anomalous > 0,
            "anomaly_fraction": (anomalous / np.maximum(stop - st, 1)).astype("float32"),
            "fault_types": types,
        }
    )


AUTO_MIN, AUTO_HOLDS = 16, 8


def resolve(cfg: WindowParams, train: pd.DataFrame) -> WindowParams:
    """Concrete window settings for a train split. ``length: auto``: the longest power of two up
    to MOMENT's 512 that the longest stretch of the train split without a time gap holds
    ``AUTO_HOLDS`` (8) times over, at least ``AUTO_MIN`` (16); ``train_stride: auto``: one
    window start every length / 64 rows (8 for 512, 1 for 64 and shorter), so every series
    offers hundreds of training windows for the budgets to draw from."""
    import dataclasses

    length = cfg.length
    if length == "auto":
        longest = max((b - a for a, b in segment_bounds(train)), default=0)
        length = max(AUTO_MIN, min(CONTEXT_LENGTH, 2 ** int(np.floor(np.log2(max(longest // AUTO_HOLDS, 1))))))
    stride = max(1, length // 64) if cfg.train_stride == "auto" else cfg.train_stride
    eval_stride = length if cfg.eval_stride is None else cfg.eval_stride
    for key, value in (("train_stride", stride), ("eval_stride", eval_stride)):
        if value > length:
            raise InputError(f"params.yaml: window.{key}={value} is out of range for window.length={length}; use a "
                             f"value in [1, {length}] (or auto)")  # fmt: skip
    return dataclasses.replace(cfg, length=int(length), train_stride=int(stride), eval_stride=int(eval_stride))


def build_index(splits: dict[str, pd.DataFrame], cfg: WindowParams) -> dict[str, pd.DataFrame]:
    """Window indices for train (train_stride) and val/test (eval_stride). Windows never cross
    a split or segment boundary. Training needs full windows; a val/test segment shorter than
    ``window.length`` is scored with one shorter window (padded and masked)."""
    out = {}
    for name, df in splits.items():
        stride = cfg.train_stride if name == "train" else cfg.eval_stride
        out[name] = window_index(df, cfg.length, stride, short=name != "train")
        if not len(out[name]):
            longest = max((b - a for a, b in segment_bounds(df)), default=0)
            raise InputError(
                f"data/processed/{name}.parquet: no stretch of the {name} split without a time gap has "
                f"window.length={cfg.length} rows (longest: {longest}); lower window.length or give the "
                "train split more rows (a later data.split.train_end)"
            )
    return out


def materialize(
    values: np.ndarray, index: pd.DataFrame, context: int = CONTEXT_LENGTH
) -> tuple[np.ndarray, np.ndarray]:
    """Model-ready arrays for the windows in ``index``.

    values: (timesteps, channels) of one split. Returns x (windows, channels, context) float32,
    left-padded with zeros when a window is shorter than ``context``, and the input mask
    (windows, context) with 1 on observed steps and 0 on padding (MOMENT's ``input_mask``).
    Windows may differ in length (a short segment's window).
    """
    st = index["start"].to_numpy()
    lengths = index["stop"].to_numpy() - st
    if len(st) and lengths.max() > context:
        raise ValueError(f"window length {lengths.max()} exceeds the model context {context}")
    x = np.zeros((len(st), values.shape[1], context), dtype=np.float32)
    mask = np.zeros((len(st), context), dtype=np.int64)
    for length in np.unique(lengths):
        sel = np.flatnonzero(lengths == length)
        gather = st[sel][:, None] + np.arange(length)[None, :]
        x[sel, :, context - length :] = values[gather].transpose(0, 2, 1)
        mask[sel, context - length :] = 1
    return x, mask


def resolved_window(asked: WindowParams, meta: dict[str, Any], path: Path) -> WindowParams:
    """The window settings the index at ``path`` (windows.json) was built with, checked against
    what params.yaml asks (``auto`` stays ``auto`` in both): a stale index is one line naming
    the stage to re-run."""
    mine = {"length": asked.length, "train_stride": asked.train_stride, "eval_stride": asked.eval_stride}
    if "asked" not in meta or "strides" not in meta:
        raise InputError(f"{path}: written by another version of momentad; run `dvc repro window`")
    theirs = meta["asked"]
    # eval_stride null follows the length: compare what it resolved to where the length is fixed
    if asked.length != "auto":
        theirs = {**theirs, "eval_stride": theirs.get("eval_stride") or theirs.get("length")}
    if any(theirs.get(k) != v for k, v in mine.items() if not (k == "eval_stride" and v is None)):
        raise InputError(f"{path}: built with other window params than params.yaml ({meta['asked']} vs {mine}); "
                         "run `dvc repro window`")  # fmt: skip
    s = meta["strides"]
    import dataclasses

    return dataclasses.replace(asked, length=meta["length"], train_stride=s["train"], eval_stride=s["val"])


SPLITS = ("train", "val", "test")


def read_processed(folder: Path) -> dict[str, pd.DataFrame]:
    """The processed split tables, failing clearly if preprocess has not run."""
    out = {}
    for name in SPLITS:
        f = folder / f"{name}.parquet"
        if not f.is_file():
            raise InputError(f"{f}: not found; run `dvc repro preprocess` first")
        try:
            out[name] = pd.read_parquet(f)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise InputError(
                f"{f}: not a readable Parquet file ({type(e).__name__}); run `dvc repro -f preprocess`"
            ) from None
    return out


def write_windows(asked: WindowParams, processed: Path, out: Path) -> dict[str, Any]:
    """Index windows per split (``auto`` settings resolved on the train split) and write the
    index plus ``windows.json`` into ``out`` (atomically); returns windows.json."""
    splits = read_processed(processed)
    cfg = resolve(asked, splits["train"])
    indices = build_index(splits, cfg)
    meta = {
        "asked": {"length": asked.length, "train_stride": asked.train_stride, "eval_stride": asked.eval_stride},
        "length": cfg.length,
        "context_length": CONTEXT_LENGTH,
        # MOMENT left-pads shorter windows to its context and masks the padding
        "padding": {"side": "left", "steps": CONTEXT_LENGTH - cfg.length, "input_mask": "1 = observed, 0 = padding"},
        "strides": {"train": cfg.train_stride, "val": cfg.eval_stride, "test": cfg.eval_stride},
        "windows": {k: len(v) for k, v in indices.items()},
        "windows_with_anomaly": {k: int(v["any_anomaly"].sum()) for k, v in indices.items()},
    }
    with atomic_dir(out) as tmp:
        for name, idx in indices.items():
            write_parquet(idx, tmp / f"{name}.parquet")
        write_json(tmp / "windows.json", meta)
    return meta
