"""Window index per split, and turning it into model-ready arrays.

The window stage stores only an index (start/stop rows into the processed split table plus
per-window labels), so its output does not grow with overlap; :func:`materialize` builds the
(windows, channels, context) arrays and the input mask on demand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from momentad.errors import InputError

if TYPE_CHECKING:
    from momentad.config import WindowParams

CONTEXT_LENGTH = 512  # MOMENT's fixed input length


def starts(n: int, length: int, stride: int) -> np.ndarray:
    """Window starts covering [0, n): every ``stride`` rows, plus one window aligned to the
    end so the last rows are always covered. Requires n >= length."""
    s = np.arange(0, n - length + 1, stride)
    if s[-1] + length < n:
        s = np.append(s, n - length)
    return s


def window_index(split: pd.DataFrame, length: int, stride: int) -> pd.DataFrame:
    """One row per window of a split: row range, timestamps and window-level labels."""
    n = len(split)
    st = starts(n, length, stride)
    stop = st + length
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
            "anomaly_fraction": (anomalous / length).astype("float32"),
            "fault_types": types,
        }
    )


def build_index(splits: dict[str, pd.DataFrame], cfg: WindowParams) -> dict[str, pd.DataFrame]:
    """Window indices for train (train_stride) and val/test (eval_stride); windows never cross
    a split boundary because each split is windowed on its own rows."""
    total = sum(len(df) for df in splits.values())
    if total < cfg.length:
        raise InputError(
            f"data/processed: the series has {total} rows, shorter than one window "
            f"(window.length={cfg.length}); lower window.length or use a longer series"
        )
    out = {}
    for name, df in splits.items():
        if len(df) < cfg.length:
            raise InputError(
                f"data/processed/{name}.parquet: {len(df)} rows give no window of "
                f"window.length={cfg.length}; lower window.length or enlarge data.split.{name}"
            )
        stride = cfg.train_stride if name == "train" else cfg.eval_stride
        out[name] = window_index(df, cfg.length, stride)
    return out


def materialize(
    values: np.ndarray, index: pd.DataFrame, context: int = CONTEXT_LENGTH
) -> tuple[np.ndarray, np.ndarray]:
    """Model-ready arrays for the windows in ``index``.

    values: (timesteps, channels) of one split. Returns x (windows, channels, context) float32,
    left-padded with zeros when the window is shorter than ``context``, and the input mask
    (windows, context) with 1 on observed steps and 0 on padding (MOMENT's ``input_mask``).
    """
    st = index["start"].to_numpy()
    length = int(index["stop"].iloc[0] - st[0]) if len(index) else 0
    if length > context:
        raise ValueError(f"window length {length} exceeds the model context {context}")
    x = np.zeros((len(st), values.shape[1], context), dtype=np.float32)
    gather = st[:, None] + np.arange(length)[None, :]
    x[:, :, context - length :] = values[gather].transpose(0, 2, 1)
    mask = np.zeros((len(st), context), dtype=np.int64)
    mask[:, context - length :] = 1
    return x, mask
