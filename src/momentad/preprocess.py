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


@dataclass
class Processed:
    """The three split tables and the schema that describes them."""

    splits: dict[str, pd.DataFrame]
    schema: dict[str, Any]


def divide(label: np.ndarray, a: int, n: int, val_share: float) -> int:
    """Where val ends when rows [a, n) go to val and test: val gets its share of the labelled
    events (boundary in the middle of the normal stretch between two events), or of the rows
    when fewer than two events lie there (a single event always stays in test). Faults often
    cluster (an injection campaign in the first hours of a day), so a row share can leave val
    or test without any."""
    ev = events(label[a:n])
    if len(ev) >= 2:
        k = min(max(int(round(len(ev) * val_share)), 1), len(ev) - 1)
        return a + (ev[k - 1][1] + ev[k][0]) // 2
    b = int(round((n - a) * val_share))
    if len(ev) == 1 and b > ev[0][0]:  # a single event (UCR) is what test must measure
        b = ev[0][0] // 2
    return a + b


def _row_at(ts: pd.Series, value: Any, key: str, origin: str) -> int:
    """First row at or after ``value`` on the time column."""
    where = f"params.yaml: data.split.{key}={value!r}"
    if pd.api.types.is_datetime64_any_dtype(ts):
        try:
            t = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise InputError(f"{where} is not a time; write it like '2023-01-30 12:00'") from None
        tz = ts.dt.tz
        if tz is not None and t.tzinfo is None:
            t = t.tz_localize(tz)
        elif tz is None and t.tzinfo is not None:
            t = t.tz_convert(None)
    else:
        try:
            t = float(value)
        except (ValueError, TypeError):
            raise InputError(f"{where}: {origin} has a numeric time column; give a number") from None
    return int(ts.searchsorted(t, side="left"))


def split_bounds(ts: pd.Series, label: np.ndarray, split: Any, train_end: int | None,
                 origin: str = "") -> tuple[dict[str, tuple[int, int]], str]:  # fmt: skip
    """Row ranges [start, stop) per split and what defined them (see params.yaml data.split)."""
    n = len(ts)
    share = split.val / (split.val + split.test)
    if split.train_end is not None:
        a = _row_at(ts, split.train_end, "train_end", origin)
        b = _row_at(ts, split.val_end, "val_end", origin) if split.val_end is not None else divide(label, a, n, share)
        by = "data.split.train_end" + ("/val_end" if split.val_end is not None else "")
        if not 0 < a < b < n:
            raise InputError(
                f"params.yaml: data.split.train_end/val_end leave a split empty ({origin} runs from "
                f"{ts.iloc[0]} to {ts.iloc[-1]}); pick times inside it, train_end before val_end"
            )
    elif train_end is not None:
        a, by = train_end, "format"
        b = divide(label, a, n, share)
    else:
        a = int(round(n * split.train))
        b = a + int(round(n * split.val))
        by = "data.split"
    return {"train": (0, a), "val": (a, b), "test": (b, n)}, by


def segment_ids(ts: pd.Series, limit: int) -> np.ndarray:
    """Segment number per row: a new segment starts after a time gap of more than ``limit``
    missing steps (the step is the median positive time difference). Event data whose times tie
    (step 0) is one segment."""
    if len(ts) < 2:
        return np.zeros(len(ts), dtype=np.int32)
    if pd.api.types.is_datetime64_any_dtype(ts):
        d = np.diff(ts.to_numpy().astype("datetime64[ns]").astype(np.int64)).astype(np.float64)
    else:
        d = np.diff(ts.to_numpy(dtype=np.float64))
    pos = d[d > 0]
    if not len(pos):
        return np.zeros(len(ts), dtype=np.int32)
    step = float(np.median(pos))
    gap = d > (limit + 1.5) * step  # half a step of tolerance for jittery sampling
    return np.concatenate([[0], np.cumsum(gap)]).astype(np.int32)


def forward_fill(feats: pd.DataFrame, segment: np.ndarray, limit: int) -> pd.DataFrame:
    """Fill gaps of at most ``limit`` steps from the last value, inside each segment (a value
    never crosses a time gap)."""
    if not limit:
        return feats
    return feats.ffill(limit=limit) if segment[-1] == 0 else feats.groupby(segment).ffill(limit=limit)


_ZONE = r"(?:Z|[+-]\d\d(?::?\d\d)?)$"  # an ISO 8601 zone designator at the end of a time


def parse_times(ts: pd.Series, where: str) -> pd.Series:
    """Times as naive UTC: ISO 8601 with ``Z`` or an offset (mixed offsets too) is converted to
    UTC, naive times are kept as they are; a column mixing both is refused (the two cannot be
    ordered). Numbers (Unix seconds, steps) pass unchanged."""
    if pd.api.types.is_numeric_dtype(ts):
        return ts
    if pd.api.types.is_datetime64_any_dtype(ts):
        return ts.dt.tz_convert("UTC").dt.tz_localize(None) if ts.dt.tz is not None else ts
    text = ts.astype(str).str.strip()
    zoned = text.str.contains(_ZONE, regex=True)
    if zoned.any() and not zoned.all():
        i = int(np.flatnonzero(~zoned.to_numpy() if zoned.iloc[0] else zoned.to_numpy())[0])
        raise InputError(f"{where} mixes times with and without a time zone ({text.iloc[0]!r} at row 0, "
                         f"{text.iloc[i]!r} at row {i}); give every time a zone (e.g. Z) or none")  # fmt: skip
    parsed = pd.to_datetime(text, errors="coerce", utc=bool(zoned.any()), format="ISO8601")
    if parsed.isna().any():
        retry = pd.to_datetime(text, errors="coerce", utc=bool(zoned.any()), format="mixed")
        parsed = parsed.fillna(retry) if not retry.isna().all() else parsed
    if parsed.isna().any():
        bad = ts[parsed.isna().to_numpy()].iloc[0]
        raise InputError(f"{where} has an unparseable time {bad!r}; use ISO 8601 or Unix seconds")
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None) if zoned.any() else parsed


def _timestamps(raw: RawData) -> pd.Series:
    ts = raw.frame["timestamp"]
    where = f"{raw.origin}: column 'timestamp'"
    if ts.isna().any():
        raise InputError(f"{where} is empty at row {int(np.flatnonzero(ts.isna())[0])}; fill or drop that row")
    ts = parse_times(ts, where)
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
        big = np.abs(s.to_numpy(dtype="float64", na_value=np.nan)) > FLOAT32_MAX
        if big.any():  # processed tables hold float32: it would become inf there (and square to inf in std)
            i = int(np.flatnonzero(big)[0])
            raise InputError(
                f"{raw.origin}: column '{c}' holds {raw.frame[c].iloc[i]!r} at row {i}, beyond the float32 range "
                f"(|x| <= {FLOAT32_MAX:.3g}) the processed data are stored in; fix the value or rescale the column"
            )
        out[str(c)] = s.astype("float64")
    return pd.DataFrame(out)


def _as_float(v) -> float:
    try:
        return float(str(v).strip())
    except ValueError:
        return float("nan")


FLOAT32_MAX = float(np.finfo(np.float32).max)


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
    segment = segment_ids(ts, limit)
    empty = int(feats.isna().sum().sum())
    feats = forward_fill(feats, segment, limit)
    imputed = feats.isna().sum()
    if empty:  # counted as preprocess counts them: a silent fill would change what gets flagged
        log.warning("%s: %d empty cells; %d forward-filled (gaps of at most %d steps), %d in %d KPI(s) imputed with "
                    "the train centre%s", raw.origin, empty, empty - int(imputed.sum()), limit, int(imputed.sum()),
                    int((imputed > 0).sum()), f" (most: '{imputed.idxmax()}')" if imputed.sum() else "")  # fmt: skip
    sc = schema["scaler"]
    scaled = scale_features(feats, pd.Series(sc["center"]), pd.Series(sc["scale"]), pd.Series(sc["impute"]))
    label = _labels(sub) if has_label else pd.Series(np.zeros(len(scaled), dtype="int8"))
    return pd.concat([ts.rename("timestamp"), scaled, label.rename("label"),
                      pd.Series([None] * len(scaled), dtype="string", name="fault_type"),
                      pd.Series(segment, name="segment")], axis=1)  # fmt: skip


def drop_repeated_rows(raw: RawData) -> tuple[RawData, int]:
    """Rows identical to the one before them in every column (an exporter writing a sample
    twice) carry nothing new: drop them and count them. A repeated time with other values is
    still an error (which one is right cannot be known)."""
    frame = raw.frame
    if not raw.unique_timestamps or len(frame) < 2:
        return raw, 0
    same = frame.astype("string").fillna("<NA>")
    repeat = (same == same.shift()).all(axis=1).to_numpy()
    repeat[0] = False
    if not repeat.any():
        return raw, 0
    import dataclasses

    keep = ~repeat
    train_end = None if raw.train_end is None else int(keep[: raw.train_end].sum())
    log.info("%s: %d rows repeat the row before them; dropped", raw.origin, int(repeat.sum()))
    return dataclasses.replace(raw, frame=frame[keep].reset_index(drop=True), train_end=train_end), int(repeat.sum())


def _drop_empty_runs(raw: RawData, feats: pd.DataFrame, limit: int) -> tuple[RawData, pd.DataFrame, dict[str, int]]:
    """Rows with no KPI value at all, in runs longer than ``limit``, are missing data, not data:
    drop them, so the time gap they leave separates segments."""
    empty = feats.isna().all(axis=1).to_numpy()
    drop = np.zeros(len(feats), dtype=bool)
    for s, e in events(empty):
        if e - s > limit:
            drop[s:e] = True
    labelled = raw.frame["label"].to_numpy()[drop].astype(bool).sum() if "label" in raw.frame else 0
    info = {"rows": int(drop.sum()), "labelled_rows": int(labelled)}
    if not drop.any():
        return raw, feats, info
    keep = ~drop
    train_end = None if raw.train_end is None else int(keep[: raw.train_end].sum())
    frame = raw.frame[keep].reset_index(drop=True)
    out = RawData(frame, raw.source, raw.name, raw.origin, train_end, raw.unique_timestamps, raw.info)
    return out, feats[keep].reset_index(drop=True), info


def preprocess(raw: RawData, data: DataParams, protocol: str = "default") -> Processed:
    """Validate, fill, split, drop constant channels and scale (fitted on train only). Under
    ``protocol="tsbad"`` no channel is dropped (TSB-AD's detectors see every channel)."""
    scaler, limit = data.scaler, data.ffill_limit

    raw, repeated = drop_repeated_rows(raw)
    feats = _features(raw)
    raw, feats, dropped_rows = _drop_empty_runs(raw, feats, limit)
    ts = _timestamps(raw)
    label = _labels(raw)
    n = len(feats)
    segment = segment_ids(ts, limit)
    bounds, defined_by = split_bounds(ts, label.to_numpy(), data.split, raw.train_end, raw.origin)
    for name, (a, b) in bounds.items():
        if b - a < 2:
            raise InputError(
                f"{raw.origin}: the {name} split has {b - a} rows of {n}; use a longer series or set "
                "data.split.train_end / val_end"
            )

    nan_before = feats.isna().sum()
    feats = forward_fill(feats, segment, limit)
    nan_after_ffill = feats.isna().sum()

    a, b = bounds["train"]
    train = feats.iloc[a:b]
    std, mean = train.std(ddof=0), train.mean()
    # constant up to float rounding too (a replica average's std of 3e-17): scaling by it would
    # blow the KPI's later values up to ~1e14 and swamp every score
    constant = [c for c in feats.columns if not np.isfinite(std[c]) or std[c] <= 1e-9 * abs(mean[c])]
    if len(constant) == feats.shape[1]:
        raise InputError(f"{raw.origin}: every KPI column is constant over the train split; nothing to model")
    dropped = constant if data.drop_constant and protocol != "tsbad" else []
    feats = feats.drop(columns=dropped)
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
    scale = scale.where(~scale.index.isin(constant), 1.0)  # kept constant KPIs are only centred
    # Gaps longer than the fill limit become the train centre (0 after scaling): neutral, and
    # counted in schema.json so users see how much was imputed.
    impute = pd.Series(0.0, index=feats.columns) if scaler != "none" else train.mean()
    gaps = feats.isna().sum()
    scaled = scale_features(feats, center, scale, impute)

    table = pd.concat(
        [ts.rename("timestamp"), scaled, label.rename("label"),
         raw.frame["fault_type"].reset_index(drop=True).astype("string"),
         raw.frame["root_cause"].reset_index(drop=True).astype("string"),
         pd.Series(segment, name="segment")],
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
            "segments": int(df["segment"].nunique()),
            "fault_types": fc,
        }
        if df["label"].sum() == 0 and k == "test":
            log.warning("the test split has no labelled anomaly: methods are judged by their false-alarm rate")
        if len(df) and df["label"].all():
            log.warning("every row of the %s split is labelled anomalous (label 1 = anomaly): check the label "
                        "column; with no normal rows there, its metrics and thresholds mean little", k)  # fmt: skip

    schema = {
        "source": raw.source,
        "name": raw.name,
        "origin": raw.origin,
        "synthetic": raw.source == "synthetic",
        "timestamp_dtype": str(ts.dtype),
        "features": list(scaled.columns),
        "n_features": scaled.shape[1],
        "split_defined_by": defined_by,
        "protocol": protocol,
        "segments": {
            "count": int(segment[-1]) + 1,
            "starts": [str(ts.iloc[i]) for i in np.flatnonzero(np.diff(segment)) + 1],
        },
        "splits": split_info,
        "scaler": {
            "method": scaler,
            "fitted_on": "train",
            "center": {c: float(center[c]) for c in scaled.columns},
            "scale": {c: float(scale[c]) for c in scaled.columns},
            "impute": {c: float(impute[c]) for c in scaled.columns},
        },
        "dropped_columns": {"constant_in_train": dropped},
        "constant_in_train_kept": [c for c in constant if c not in dropped],
        "quality": {
            "rows": n,
            "missing_values": int(nan_before.sum()),
            "forward_filled": int((nan_before - nan_after_ffill).sum()),
            "ffill_limit": limit,
            "gaps_left_after_ffill": int(gaps.sum()),
            "gaps_by_column": {c: int(v) for c, v in gaps.items() if v},
            "rows_without_any_kpi_dropped": dropped_rows["rows"],
            "repeated_rows_dropped": repeated,
            "labelled_rows_dropped": dropped_rows["labelled_rows"],
        },
    }
    if raw.info:
        schema["source_info"] = raw.info
    return Processed(splits=splits, schema=schema)
