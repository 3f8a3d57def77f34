"""From a raw table to scaled, chronologically split tables (the `preprocess` stage's library).

Nothing fitted here sees validation or test rows: constant-channel detection and scaler
statistics use the training split only; forward fill only looks backwards in time.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentad.config import DataParams, Params
from momentad.data import META_COLUMNS
from momentad.errors import InputError
from momentad.io import atomic_dir, write_json, write_parquet
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


def ensure_test_events(bounds: dict[str, tuple[int, int]], label: np.ndarray, k: int, min_train: float,
                       train_fixed: bool) -> tuple[dict[str, tuple[int, int]], dict[str, Any] | None]:  # fmt: skip
    """``data.split.min_test_events``: where test holds fewer than ``k`` labelled events, move its
    start earlier by the least amount that gives it ``k`` (to the middle of the normal stretch
    before the k-th event from the end), validation keeping its length; train never shrinks below
    ``min_train`` of the rows (nor moves when the format fixes it). Returns the bounds and what
    moved (None: nothing did)."""
    n = len(label)
    (a, b), ev = bounds["val"], events(label)
    if k <= 0 or sum(1 for s, _ in ev if s >= b) >= k:
        return bounds, None
    after = [(s, e) for s, e in ev if s >= (a if train_fixed else int(np.ceil(min_train * n)))]
    if len(after) < k:  # the series has too few events where test could reach: nothing to do
        return bounds, {"moved": False, "why": f"fewer than {k} labelled events after the train split's floor"}
    s_k = after[-k][0]
    prev_end = max([e for _, e in ev if e <= s_k] + [0])
    new_b = min(b, (prev_end + s_k) // 2)
    new_a = a if train_fixed else min(a, new_b - max(2, b - a))
    floor = a if train_fixed else int(np.ceil(min_train * n))
    if new_a < floor or new_b - new_a < 2:
        return bounds, {"moved": False, "why": "the train or validation split would become too short"}
    out = {"train": (0, new_a), "val": (new_a, new_b), "test": (new_b, n)}
    return out, {"moved": True, "test_start_moved_by_rows": b - new_b, "train_end_moved_by_rows": a - new_a,
                 "test_start_share": round(new_b / n, 4)}  # fmt: skip


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
    never crosses a time gap); column by column, so only one column is copied at a time."""
    if not limit:
        return feats
    for c in feats.columns:
        if feats[c].isna().any():
            col = feats[c]
            feats[c] = col.ffill(limit=limit) if segment[-1] == 0 else col.groupby(segment).ffill(limit=limit)
    return feats


_UNITS = r"^\s*[-+]?[\d.,]+(?:e[-+]?\d+)?\s*(?:%|[a-zA-Zµ/]+)\s*$"  # 2.02%, 101 ms, 1.2 GB/s
_ZONE = r"(?:Z|[+-]\d\d(?::?\d\d)?)$"  # an ISO 8601 zone designator at the end of a time


_SLASHED = r"^\s*(\d{1,2})[/.](\d{1,2})[/.](\d{2,4})\b"  # 03/01/2024, 3.1.24: day or month first?


def _day_first(text: pd.Series, where: str, fix: str) -> bool | None:
    """Whether slashed dates read day first (True), month first (False) or are not slashed
    (None): decided by a field above 12; dates that read both ways are refused, naming both
    readings and the key that settles it."""
    parts = text.str.extract(_SLASHED)
    if parts[0].isna().all():
        return None
    first, second = parts[0].dropna().astype(int), parts[1].dropna().astype(int)
    if (first > 12).any() and (second > 12).any():
        raise InputError(f"{where} mixes day-first and month-first dates ({text[first.idxmax()]!r}, "
                         f"{text[second.idxmax()]!r}); export the times in ISO 8601 (2024-03-01 00:00)")  # fmt: skip
    if (first > 12).any():
        return True
    if (second > 12).any():
        return False
    eg = text[parts[0].first_valid_index()]
    d, m = int(parts.loc[parts[0].first_valid_index(), 0]), int(parts.loc[parts[0].first_valid_index(), 1])
    names = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December"]  # fmt: skip
    sep = "/" if "/" in eg else "."
    time = " %H:%M" + (":%S" if eg.count(":") >= 2 else "") if ":" in eg else ""
    year = "%Y" if len(parts.loc[parts[0].first_valid_index(), 2]) == 4 else "%y"
    raise InputError(f"{where} holds dates like {eg.strip()!r} that read as {d} {names[m - 1]} (day first) or "
                     f"{m} {names[d - 1]} (month first); set {fix}: '%d{sep}%m{sep}{year}{time}' or "
                     f"'%m{sep}%d{sep}{year}{time}'")  # fmt: skip


def parse_times(ts: pd.Series, where: str, time_format: str | None = None,
                fix: str = "data.csv.time_format") -> pd.Series:  # fmt: skip
    """Times as naive UTC: ISO 8601 with ``Z`` or an offset (mixed offsets too) is converted to
    UTC, naive times are kept as they are; a column mixing both is refused (the two cannot be
    ordered). Numbers (Unix seconds, steps) pass unchanged. ``time_format`` (strftime codes) reads
    any other layout; without it, slashed dates are read day first or month first only where a
    field above 12 says which (``fix``: the key that sets the format, named when it cannot)."""
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
    utc = bool(zoned.any())
    if time_format:
        parsed = pd.to_datetime(text, errors="coerce", utc=utc, format=time_format)
        if parsed.isna().any():
            bad = ts[parsed.isna().to_numpy()].iloc[0]
            raise InputError(f"{where} has a time {bad!r} that {fix}={time_format!r} does not read; fix the format")
    else:
        parsed = pd.to_datetime(text, errors="coerce", utc=utc, format="ISO8601")
        if parsed.isna().any():
            dayfirst = _day_first(text[parsed.isna()], where, fix)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                retry = pd.to_datetime(text, errors="coerce", utc=utc, format="mixed", dayfirst=bool(dayfirst))
            parsed = parsed.fillna(retry) if not retry.isna().all() else parsed
    if parsed.isna().any():
        bad = ts[parsed.isna().to_numpy()].iloc[0]
        raise InputError(f"{where} has an unparseable time {bad!r}; use ISO 8601 or Unix seconds (or set {fix})")
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None) if utc else parsed


def _dst_like(t: pd.Timestamp) -> bool:
    """A wall-clock time where daylight-saving changes happen (spring and autumn, at night)."""
    return isinstance(t, pd.Timestamp) and t.month in (3, 4, 10, 11) and t.hour <= 3


def _timestamps(raw: RawData, fix: str = "data.csv.time_format") -> pd.Series:
    ts = raw.frame["timestamp"]
    where = f"{raw.origin}: column 'timestamp'"
    if ts.isna().any():
        raise InputError(f"{where} is empty at row {int(np.flatnonzero(ts.isna())[0])}; fill or drop that row")
    ts = parse_times(ts, where, raw.time_format, fix)
    diffs = np.diff(ts.to_numpy())
    zero = diffs == diffs.dtype.type(0)
    neg = diffs < diffs.dtype.type(0)
    dst = ("; it looks like a daylight-saving change ({}): export in UTC or with offsets, or set "
           "data.repeated_times: mean or first")  # fmt: skip
    if neg.any():
        i = int(np.flatnonzero(neg)[0]) + 1
        back = ts.iloc[i - 1] - ts.iloc[i]
        if _dst_like(ts.iloc[i]) and back <= pd.Timedelta(hours=1):
            raise InputError(f"{where} goes back {back} at row {i} ({ts.iloc[i]})" + dst.format(ts.iloc[i].date()))
        raise InputError(f"{where} decreases at row {i} ({ts.iloc[i]}); sort the file by time")
    if raw.unique_timestamps and zero.any():
        i = int(np.flatnonzero(zero)[0]) + 1
        if _dst_like(ts.iloc[i]):
            raise InputError(f"{where} repeats {ts.iloc[i]} at row {i}" + dst.format(ts.iloc[i].date()))
        raise InputError(f"{where} repeats {ts.iloc[i]} at row {i}; drop or aggregate duplicate rows (or set "
                         "data.repeated_times: mean or first)")  # fmt: skip
    return ts.reset_index(drop=True)


def merge_repeated_times(raw: RawData, how: str) -> tuple[RawData, int]:
    """``data.repeated_times``: mean / first of the rows that share a time (a naive local hour
    written twice at a daylight-saving change), counted; ``refuse`` leaves them for the time
    checks to name."""
    if how == "refuse" or not raw.unique_timestamps:
        return raw, 0
    import dataclasses

    frame = raw.frame.copy()
    ts = parse_times(frame["timestamp"], f"{raw.origin}: column 'timestamp'", raw.time_format)
    frame["timestamp"] = ts
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    repeated = int(frame["timestamp"].duplicated().sum())
    if not repeated:
        return raw, 0
    numeric = [c for c in frame.columns if c not in META_COLUMNS and pd.api.types.is_numeric_dtype(frame[c])]
    agg = {c: ("mean" if how == "mean" else "first") for c in numeric}
    agg.update({c: "first" for c in frame.columns if c not in numeric and c != "timestamp"})
    if "label" in frame:
        agg["label"] = "max"  # a repeated step that is labelled anomalous once stays so
    merged = frame.groupby("timestamp", sort=True, as_index=False).agg(agg)[list(frame.columns)]
    log.warning("%s: %d rows repeat an earlier time; merged by data.repeated_times=%s", raw.origin, repeated, how)
    train_end = None if raw.train_end is None else int(merged["timestamp"].searchsorted(ts.iloc[raw.train_end]))
    return dataclasses.replace(raw, frame=merged, train_end=train_end), repeated


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
            if len(bad) and pd.Series(bad.astype(str)).str.match(_UNITS).mean() > 0.5:
                raise InputError(f"{raw.origin}: column '{c}' has values with units (e.g. {bad.iloc[0]!r} at row "
                                 f"{bad.index[0]}); values carry units: export raw values (Grafana: Inspect > Data > "
                                 "'Formatted data' off)")  # fmt: skip
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
        out[str(c)] = s.astype("float64", copy=False)
    return pd.DataFrame(out, copy=False)


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
    """Scale with train statistics, fill remaining gaps with ``impute``; float32. Column by column
    (the same arithmetic as on the whole table), so a large table is never copied whole in float64."""
    out = np.empty((len(feats), feats.shape[1]), dtype=np.float32)
    for j, c in enumerate(feats.columns):
        out[:, j] = ((feats[c] - center[c]) / scale[c]).fillna(impute[c]).to_numpy(dtype=np.float32)
    return pd.DataFrame(out, columns=feats.columns, copy=False)


def transform(raw: RawData, schema: dict[str, Any], fix: str = "data.csv.time_format") -> pd.DataFrame:
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
                  raw.origin, time_format=raw.time_format)  # fmt: skip
    ts = _timestamps(sub, fix)
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
    still an error (which one is right cannot be known). Compared column by column on the values
    (NaN equal to NaN), so a gigabyte table is never turned into text."""
    frame = raw.frame
    if not raw.unique_timestamps or len(frame) < 2:
        return raw, 0
    repeat = np.ones(len(frame), dtype=bool)
    repeat[0] = False
    for c in frame.columns:
        v = frame[c].to_numpy()
        if v.dtype.kind == "O":  # pd.NA in a text column: its == has no truth value
            na = pd.isna(v)
            w = np.where(na, None, v)
            same = np.array([x == y for x, y in zip(w[1:], w[:-1], strict=True)], dtype=bool)
        else:
            same = v[1:] == v[:-1]
        if v.dtype.kind in "fO":  # NaN == NaN here: two empty cells are the same cell
            na = pd.isna(v)
            same = same | (na[1:] & na[:-1])
        repeat[1:] &= same
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
    raw, merged = merge_repeated_times(raw, data.repeated_times)
    feats = _features(raw)
    raw, feats, dropped_rows = _drop_empty_runs(raw, feats, limit)
    ts = _timestamps(raw)
    label = _labels(raw)
    n = len(feats)
    segment = segment_ids(ts, limit)
    bounds, defined_by = split_bounds(ts, label.to_numpy(), data.split, raw.train_end, raw.origin)
    moved = None
    if data.split.train_end is None:  # explicit boundaries are the user's choice
        bounds, moved = ensure_test_events(bounds, label.to_numpy(), data.split.min_test_events, data.split.min_train,
                                           train_fixed=raw.train_end is not None)  # fmt: skip
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
    columns = list(feats.columns)
    del feats, train  # the float64 table: gone before the split tables are built
    fault = raw.frame["fault_type"].reset_index(drop=True).astype("string")
    cause = raw.frame["root_cause"].reset_index(drop=True).astype("string")
    raw = dataclasses.replace(raw, frame=raw.frame.iloc[:0])  # what is left of the raw table is its metadata
    splits = {}
    for k, (a, b) in bounds.items():
        part = scaled.iloc[a:b].reset_index(drop=True)
        part.insert(0, "timestamp", ts.iloc[a:b].reset_index(drop=True))
        part["label"] = label.iloc[a:b].reset_index(drop=True)
        part["fault_type"] = fault.iloc[a:b].reset_index(drop=True)
        part["root_cause"] = cause.iloc[a:b].reset_index(drop=True)
        part["segment"] = segment[a:b]
        splits[k] = part
    del scaled

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
        "synthetic": raw.simulated,
        "timestamp_dtype": str(ts.dtype),
        "features": columns,
        "n_features": len(columns),
        "split_defined_by": defined_by,
        "split_rule": {"min_test_events": data.split.min_test_events, **(moved or {"moved": False})},
        "protocol": protocol,
        "segments": {
            "count": int(segment[-1]) + 1,
            "starts": [str(ts.iloc[i]) for i in np.flatnonzero(np.diff(segment)) + 1],
        },
        "splits": split_info,
        "scaler": {
            "method": scaler,
            "fitted_on": "train",
            "center": {c: float(center[c]) for c in columns},
            "scale": {c: float(scale[c]) for c in columns},
            "impute": {c: float(impute[c]) for c in columns},
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
            "repeated_times_merged": merged,
            "labelled_rows_dropped": dropped_rows["labelled_rows"],
        },
    }
    if raw.info:
        schema["source_info"] = raw.info
    return Processed(splits=splits, schema=schema)


def write_processed(cfg: Params, out: Path) -> dict[str, Any]:
    """Load ``data.source``, validate, fill, split, scale (:mod:`momentad.preprocess`) and write one
    Parquet table per split plus ``schema.json`` into ``out`` (atomically); returns the schema."""
    from momentad import loaders

    raw = loaders.load(cfg.data, cfg.seed, cfg.evaluate.protocol)
    processed = preprocess(raw, cfg.data, cfg.evaluate.protocol)
    with atomic_dir(out) as tmp:
        for name, df in processed.splits.items():
            write_parquet(df, tmp / f"{name}.parquet")
        write_json(tmp / "schema.json", processed.schema)
    return processed.schema
