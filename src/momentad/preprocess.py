"""From a raw table to scaled, chronologically split tables (the `preprocess` stage's library).

Nothing fitted here sees validation or test rows: constant-channel detection and scaler
statistics use the training split only; forward fill only looks backwards in time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from momentad.config import DataParams
from momentad.data import META_COLUMNS
from momentad.errors import InputError
from momentad.loaders import RawData

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SCALERS = ("standard", "robust", "none")


@dataclass
class Processed:
    """The three split tables and the schema that describes them."""

    splits: dict[str, pd.DataFrame]
    schema: dict[str, Any]


def split_bounds(n: int, fractions: dict[str, float], train_end: int | None) -> dict[str, tuple[int, int]]:
    """Row ranges [start, stop) per split. A format-defined train part is kept as is and the
    rest is divided between val and test in the ratio of their fractions."""
    if train_end is None:
        a = int(round(n * fractions["train"]))
        b = a + int(round(n * fractions["val"]))
    else:
        a = train_end
        b = a + int(round((n - a) * fractions["val"] / (fractions["val"] + fractions["test"])))
    return {"train": (0, a), "val": (a, b), "test": (b, n)}


def _timestamps(raw: RawData) -> pd.Series:
    ts = raw.frame["timestamp"]
    where = f"{raw.origin}: column 'timestamp'"
    if ts.isna().any():
        raise InputError(f"{where} is empty at row {int(np.flatnonzero(ts.isna())[0])}; fill or drop that row")
    if not pd.api.types.is_numeric_dtype(ts) and not pd.api.types.is_datetime64_any_dtype(ts):
        parsed = pd.to_datetime(ts, errors="coerce")
        if parsed.isna().any():
            bad = ts[parsed.isna()].iloc[0]
            raise InputError(f"{where} has an unparseable time {bad!r}; use ISO 8601 or Unix seconds")
        ts = parsed
    diffs = np.diff(ts.to_numpy())
    zero = diffs == diffs.dtype.type(0)
    neg = diffs < diffs.dtype.type(0)
    if neg.any():
        i = int(np.flatnonzero(neg)[0]) + 1
        raise InputError(f"{where} decreases at row {i} ({ts.iloc[i]}); sort the file by time")
    if raw.unique_timestamps and zero.any():
        i = int(np.flatnonzero(zero)[0]) + 1
        raise InputError(f"{where} repeats {ts.iloc[i]} at row {i}; drop or aggregate duplicate rows")
    return ts.reset_index(drop=True)


def _features(raw: RawData) -> pd.DataFrame:
    cols = [c for c in raw.frame.columns if c not in META_COLUMNS]
    if not cols:
        raise InputError(f"{raw.origin}: no KPI columns besides timestamp/label; add numeric feature columns")
    out = {}
    for c in cols:
        s = raw.frame[c]
        if pd.api.types.is_bool_dtype(s):
            s = s.astype("float64")
        elif not pd.api.types.is_numeric_dtype(s):
            num = pd.to_numeric(s, errors="coerce")
            # pandas gives up on overflowing literals such as 1e400; Python reads them as inf
            odd = num.isna() & s.notna()
            num[odd] = [_as_float(v) for v in s[odd]]
            bad = s[num.isna() & s.notna()]
            if len(bad):
                raise InputError(
                    f"{raw.origin}: column '{c}' is not numeric (e.g. {bad.iloc[0]!r} at row "
                    f"{bad.index[0]}); drop the column or fix its values"
                )
            s = num
        if s.isna().all():
            raise InputError(f"{raw.origin}: column '{c}' is entirely empty (all NaN); drop it from the file")
        inf = np.isinf(s.to_numpy(dtype="float64", na_value=np.nan))
        if inf.any():  # an overflow (1e400) or a sensor's inf would poison the scaler and every score
            i = int(np.flatnonzero(inf)[0])
            raise InputError(
                f"{raw.origin}: column '{c}' is infinite at row {i} ({raw.frame[c].iloc[i]!r}); "
                "fix the value or leave the cell empty (empty cells are forward-filled and counted)"
            )
        out[str(c)] = s.astype("float64")
    return pd.DataFrame(out)


def _as_float(v) -> float:
    try:
        return float(str(v).strip())
    except ValueError:
        return float("nan")


def _labels(raw: RawData) -> pd.Series:
    lab = pd.to_numeric(raw.frame["label"], errors="coerce")
    if lab.isna().any() or not lab.isin([0, 1]).all():
        bad = raw.frame["label"][~lab.isin([0, 1])].iloc[0]
        raise InputError(f"{raw.origin}: column 'label' must be 0/1, found {bad!r}; map it to 0/1")
    return lab.astype("int8")


def events(label: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous runs of label==1 as [start, stop) pairs."""
    d = np.diff(np.concatenate([[0], label.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1).tolist(), np.flatnonzero(d == -1).tolist(), strict=True))


def fault_counts(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per fault type: number of events and of anomalous timesteps."""
    out: dict[str, dict[str, int]] = {}
    ft = df["fault_type"].fillna("anomaly").to_numpy()
    for s, e in events(df["label"].to_numpy()):
        for kind in pd.unique(ft[s:e]):
            c = out.setdefault(str(kind), {"events": 0, "timesteps": 0})
            c["events"] += 1
            c["timesteps"] += int((ft[s:e] == kind).sum())
    return dict(sorted(out.items()))


def scale_features(feats: pd.DataFrame, center: pd.Series, scale: pd.Series, impute: pd.Series) -> pd.DataFrame:
    """Scale with train statistics, fill remaining gaps with ``impute``; float32."""
    return ((feats - center) / scale).fillna(impute).astype("float32")


def transform(raw: RawData, schema: dict[str, Any]) -> pd.DataFrame:
    """New data -> the processed table layout, with the scaler fitted at training time.

    ``raw.frame`` needs ``timestamp`` and every KPI in ``schema['features']`` (others are
    ignored); ``label`` is optional. Used by ``momentad score``."""
    features = schema["features"]
    missing = [c for c in features if c not in raw.frame.columns]
    if missing:
        raise InputError(f"{raw.origin}: missing KPI column(s) {', '.join(missing[:5])}"
                         f"{' ...' if len(missing) > 5 else ''} seen in training; add them to the file")  # fmt: skip
    has_label = "label" in raw.frame.columns
    sub = RawData(raw.frame[["timestamp", *features] + (["label"] if has_label else [])], raw.source, raw.name,
                  raw.origin)  # fmt: skip
    ts = _timestamps(sub)
    feats = _features(sub)[features]
    limit = schema["quality"]["ffill_limit"]
    feats = feats.ffill(limit=limit) if limit else feats
    sc = schema["scaler"]
    scaled = scale_features(feats, pd.Series(sc["center"]), pd.Series(sc["scale"]), pd.Series(sc["impute"]))
    label = _labels(sub) if has_label else pd.Series(np.zeros(len(scaled), dtype="int8"))
    return pd.concat([ts.rename("timestamp"), scaled, label.rename("label"),
                      pd.Series([None] * len(scaled), dtype="string", name="fault_type")], axis=1)  # fmt: skip


def preprocess(raw: RawData, data: DataParams) -> Processed:
    """Validate, fill, split, drop constant channels and scale (fitted on train only)."""
    fractions = {"train": data.split.train, "val": data.split.val, "test": data.split.test}
    scaler, limit = data.scaler, data.ffill_limit

    ts = _timestamps(raw)
    feats = _features(raw)
    label = _labels(raw)
    n = len(feats)
    bounds = split_bounds(n, fractions, raw.train_end)
    for name, (a, b) in bounds.items():
        if b - a < 2:
            raise InputError(
                f"{raw.origin}: the {name} split has {b - a} rows of {n}; use a longer series or change data.split"
            )

    nan_before = feats.isna().sum()
    feats = feats.ffill(limit=limit) if limit else feats
    nan_after_ffill = feats.isna().sum()

    a, b = bounds["train"]
    train = feats.iloc[a:b]
    std = train.std(ddof=0)
    constant = [c for c in feats.columns if not np.isfinite(std[c]) or std[c] == 0]
    if len(constant) == feats.shape[1]:
        raise InputError(f"{raw.origin}: every KPI column is constant over the train split; nothing to model")
    feats = feats.drop(columns=constant)
    train = feats.iloc[a:b]

    if scaler == "standard":
        center, scale = train.mean(), train.std(ddof=0)
    elif scaler == "robust":
        center = train.median()
        scale = train.quantile(0.75) - train.quantile(0.25)
        scale = scale.where(scale > 0, train.std(ddof=0))  # IQR is 0 for mostly-flat KPIs
    else:
        center = pd.Series(0.0, index=feats.columns)
        scale = pd.Series(1.0, index=feats.columns)
    # Gaps longer than the fill limit become the train centre (0 after scaling): neutral, and
    # counted in schema.json so users see how much was imputed.
    impute = pd.Series(0.0, index=feats.columns) if scaler != "none" else train.mean()
    gaps = feats.isna().sum()
    scaled = scale_features(feats, center, scale, impute)

    table = pd.concat(
        [ts.rename("timestamp"), scaled, label.rename("label"),
         raw.frame["fault_type"].reset_index(drop=True).astype("string"),
         raw.frame["root_cause"].reset_index(drop=True).astype("string")],
        axis=1,
    )  # fmt: skip
    splits = {k: table.iloc[a:b].reset_index(drop=True) for k, (a, b) in bounds.items()}

    split_info = {}
    for k, df in splits.items():
        fc = fault_counts(df)
        split_info[k] = {
            "rows": len(df),
            "first_timestamp": str(df["timestamp"].iloc[0]),
            "last_timestamp": str(df["timestamp"].iloc[-1]),
            "row_range": list(bounds[k]),
            "anomalous_timesteps": int(df["label"].sum()),
            "anomaly_ratio": round(float(df["label"].mean()), 6),
            "events": sum(v["events"] for v in fc.values()),
            "fault_types": fc,
        }
        if df["label"].sum() == 0:
            log.warning("%s split has no labelled anomalies: metrics on it will be undefined", k)

    schema = {
        "source": raw.source,
        "name": raw.name,
        "origin": raw.origin,
        "synthetic": raw.source == "synthetic",
        "timestamp_dtype": str(ts.dtype),
        "features": list(scaled.columns),
        "n_features": scaled.shape[1],
        "split_defined_by": "format" if raw.train_end is not None else "data.split",
        "splits": split_info,
        "scaler": {
            "method": scaler,
            "fitted_on": "train",
            "center": {c: float(center[c]) for c in scaled.columns},
            "scale": {c: float(scale[c]) for c in scaled.columns},
            "impute": {c: float(impute[c]) for c in scaled.columns},
        },
        "dropped_columns": {"constant_in_train": constant},
        "quality": {
            "rows": n,
            "missing_values": int(nan_before.sum()),
            "forward_filled": int((nan_before - nan_after_ffill).sum()),
            "ffill_limit": limit,
            "gaps_left_after_ffill": int(gaps.sum()),
            "gaps_by_column": {c: int(v) for c, v in gaps.items() if v},
        },
    }
    if raw.info:
        schema["source_info"] = raw.info
    return Processed(splits=splits, schema=schema)
