"""The pre-training corpus: public series read from a folder, plus seeded synthetic ones.

:func:`read_corpus` reads every CSV under a folder (plain or ``.csv.gz``) in one of three shapes:

- long: a ``value`` column and text key columns (``spacecraft,channel,part,value``): one series
  per key;
- one KPI: ``timestamp,value`` (NAB): one series;
- wide: a time column and numeric columns (ETT): one series per numeric column.

Every series is z-scored on its own (MOMENT's pre-training data are scaled per series; its RevIN
then normalises each window again). :func:`synthesize` adds series in the spirit of Chronos'
KernelSynth: sums and products of periodic, trend and noise components, with level shifts and
regime changes, drawn from a seed. :func:`fingerprint` hashes z-normalised windows, so that an
evaluation series can be checked against a corpus (:func:`overlap`) whatever scaler it went
through.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from momentad.errors import InputError

FINGERPRINT_WINDOW = 64  # steps of a fingerprinted window
FINGERPRINT_STRIDE = 32  # corpus windows kept: a copied stretch of 96+ steps always holds one
MIN_LEVELS = 8  # distinct (quantised) values a window needs to be fingerprinted


@dataclass
class Series:
    """One univariate series of the corpus, z-scored (float32)."""

    name: str
    source: str  # the file it came from, or "synthetic"
    values: np.ndarray


def _zscore(v: np.ndarray) -> np.ndarray:
    sd = v.std()
    return ((v - v.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A column as finite floats, or one line naming the file, the column and the fix."""
    col = frame[column]
    values = pd.to_numeric(col, errors="coerce")
    bad = col[values.isna() & col.notna()]
    if len(bad):
        raise InputError(f"{path}: column '{column}' is not numeric (e.g. {bad.iloc[0]!r} at row {bad.index[0]}); "
                         "fix or remove the file from the corpus")  # fmt: skip
    v = values.to_numpy(dtype=np.float64)
    if not np.isfinite(v).any():
        raise InputError(f"{path}: column '{column}' is empty; remove it or the file from the corpus")
    if np.isinf(v).any():
        i = int(np.flatnonzero(np.isinf(v))[0])
        raise InputError(f"{path}: column '{column}' is infinite at row {i}; fix the value or remove the file")
    return v[np.isfinite(v)]  # gaps are dropped: a window never spans a missing value's place badly


def _read(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, low_memory=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise InputError(f"{path}: not a readable CSV ({type(e).__name__}); fix or remove it from the corpus") from None
    if frame.empty:
        raise InputError(f"{path}: holds no rows; remove it from the corpus")
    return frame


def series_of(path: Path, frame: pd.DataFrame, root: Path) -> list[Series]:
    """The series a corpus file holds (long, one-KPI or wide, module docstring)."""
    rel = path.relative_to(root).as_posix()
    if "value" in frame.columns:
        keys = [c for c in frame.columns if c != "value" and not _is_time(c) and frame[c].dtype == object]
        if keys:
            out = []
            for key, part in frame.groupby(keys, sort=True):
                key = key if isinstance(key, tuple) else (key,)
                out.append(Series(f"{rel}:{'/'.join(map(str, key))}", rel, _numeric(part, "value", path)))
            return out
        return [Series(rel, rel, _numeric(frame, "value", path))]
    numeric = [c for c in frame.columns if not _is_time(c)]
    if not numeric:
        raise InputError(f"{path}: no value columns besides the time; remove it from the corpus")
    return [Series(f"{rel}:{c}", rel, _numeric(frame, c, path)) for c in numeric]


def _is_time(column: str) -> bool:
    return str(column).strip().lower() in ("timestamp", "time", "date", "datetime", "ds")


def read_corpus(folder: Path) -> list[Series]:
    """Every series of every CSV under ``folder``, z-scored, in a stable order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: corpus folder not found; set pretrain.corpus to a folder of CSV files "
                         "(the repository ships data/raw/pretrain-corpus)")  # fmt: skip
    files = sorted(p for p in folder.rglob("*") if p.name.endswith((".csv", ".csv.gz")))
    if not files:
        raise InputError(f"{folder}: holds no .csv or .csv.gz file; set pretrain.corpus to a folder of CSV files")
    out = []
    for f in files:
        out += [Series(s.name, s.source, _zscore(s.values)) for s in series_of(f, _read(f), folder)]
    return out


def synthesize(n: int, length: int, seed: int) -> list[Series]:
    """``n`` synthetic series of ``length`` steps (KernelSynth-like; module docstring)."""
    rng = np.random.default_rng([seed, 17])
    return [Series(f"synthetic:{i}", "synthetic", _zscore(_one(rng, length))) for i in range(n)]


def _component(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    kind = rng.choice(["periodic", "periodic", "periodic", "trend", "walk", "ar", "noise"])
    n = len(t)
    if kind == "periodic":
        period = float(rng.choice([rng.uniform(4, 48), 24.0, 168.0, 12.0, 60.0, rng.uniform(48, 400)]))
        wave = np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        if rng.random() < 0.4:  # harmonics: peaked or square-ish cycles
            wave += rng.uniform(0.2, 0.6) * np.sin(4 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        if rng.random() < 0.2:
            wave = np.sign(wave) * np.abs(wave) ** rng.uniform(0.2, 0.6)
        return wave * rng.uniform(0.3, 2.0)
    if kind == "trend":
        x = t / n
        return rng.normal() * x + (rng.normal() * x**2 if rng.random() < 0.5 else 0.0)
    if kind == "walk":
        return np.cumsum(rng.normal(size=n)) / np.sqrt(n) * rng.uniform(0.5, 3)
    if kind == "ar":
        phi, e, out = rng.uniform(0.5, 0.98), rng.normal(size=n), np.zeros(n)
        for i in range(1, n):
            out[i] = phi * out[i - 1] + e[i]
        return out * np.sqrt(1 - phi**2)
    return rng.normal(size=n) * rng.uniform(0.05, 0.5)


def _one(rng: np.random.Generator, length: int) -> np.ndarray:
    t = np.arange(length, dtype=np.float64)
    x = _component(rng, t)
    for _ in range(int(rng.integers(0, 3))):
        c = _component(rng, t)
        x = x + c if rng.random() < 0.7 else x * (1 + 0.5 * c / (np.abs(c).max() + 1e-9))
    x = x + rng.normal(size=length) * rng.uniform(0.01, 0.3) * (x.std() + 1e-3)
    if rng.random() < 0.3:  # level shifts that persist
        for at in rng.integers(1, length, size=int(rng.integers(1, 3))):
            x[at:] += rng.normal() * (x.std() + 1e-3)
    if rng.random() < 0.3:  # a regime change: the second part louder or quieter
        at = int(rng.integers(length // 4, 3 * length // 4))
        x[at:] = x[at:].mean() + (x[at:] - x[at:].mean()) * rng.uniform(0.3, 3)
    if rng.random() < 0.1:  # counts: non-negative integers, often zero
        x = np.round(np.maximum(x - np.quantile(x, rng.uniform(0.2, 0.7)), 0) * rng.uniform(1, 20))
    return x


def family(name: str) -> str:
    """Series recorded by one sensor share a family: a channel's train and test parts (SMAP/MSL)."""
    for part in ("/train", "/test"):
        if name.endswith(part):
            return name[: -len(part)]
    return name


def split(series: list[Series], holdout: float, seed: int) -> tuple[list[Series], list[Series]]:
    """(train, held out): ``holdout`` of the series' families (a channel's parts go together),
    drawn from the seed, never trained on."""
    families = sorted({family(s.name) for s in series})
    if len(families) < 2 or holdout <= 0:
        return list(series), []
    rng = np.random.default_rng([seed, 23])
    n_out = min(max(1, int(round(holdout * len(families)))), len(families) - 1)
    out = {families[i] for i in rng.choice(len(families), size=n_out, replace=False)}
    return [s for s in series if family(s.name) not in out], [s for s in series if family(s.name) in out]


# -- fingerprints: which windows a corpus holds -----------------------------------------------
def window_hashes(values: np.ndarray, stride: int) -> np.ndarray:
    """64-bit hashes of z-normalised ``FINGERPRINT_WINDOW``-step windows at ``stride`` (constant
    windows are left out: every flat stretch looks alike)."""
    return window_hashes_at(values, stride)[1]


def window_hashes_at(values: np.ndarray, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The start of each hashed window and its hash (see ``window_hashes``)."""
    w = FINGERPRINT_WINDOW
    v = np.asarray(values, dtype=np.float64)
    none = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.uint64))
    if len(v) < w:
        return none
    win = np.lib.stride_tricks.sliding_window_view(v, w)[::stride]
    starts = np.arange(len(win)) * stride
    sd = win.std(axis=1)
    keep = sd > 1e-9 * (np.abs(win).mean(axis=1) + 1)
    win, starts = win[keep], starts[keep]
    if not len(win):
        return none
    z = (win - win.mean(axis=1, keepdims=True)) / win.std(axis=1, keepdims=True)
    q = np.round(z * 20).astype(np.int64)  # 0.05 steps of a standard deviation: robust to rounding
    # windows of a few distinct levels (a count series' zeros and one spike) look alike in any
    # series: they say nothing about where a stretch came from
    levels = (np.diff(np.sort(q, axis=1), axis=1) != 0).sum(axis=1) + 1
    q, starts = q[levels >= MIN_LEVELS], starts[levels >= MIN_LEVELS]
    coef = np.random.default_rng(7).integers(1, 2**62, size=w, dtype=np.int64)
    with np.errstate(over="ignore"):
        h = (q * coef).sum(axis=1)
    return starts, h.astype(np.uint64)


def fingerprint(series: list[np.ndarray]) -> np.ndarray:
    """Sorted hashes of every corpus series' windows at ``FINGERPRINT_STRIDE``."""
    parts = [window_hashes(v, FINGERPRINT_STRIDE) for v in series]
    return np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)


def overlaps(values: np.ndarray, prints: np.ndarray) -> bool:
    """Whether a series shares a stretch with the corpus: three corpus windows found one corpus
    stride apart (a copied stretch of 128+ steps), which chance matches of single windows
    (a flat stretch with one step, a square wave) do not line up into."""
    return lined_up(window_hashes_at(values), prints)


def lined_up(hashed: tuple[np.ndarray, np.ndarray], prints: np.ndarray) -> bool:
    """``overlaps`` for a series already hashed by ``window_hashes_at`` (hash it once, test many)."""
    starts, h = hashed
    found = np.flatnonzero(np.isin(h, prints)) if len(h) and len(prints) else np.empty(0, dtype=np.int64)
    hits = set(starts[found].tolist())
    return any(s + FINGERPRINT_STRIDE in hits and s + 2 * FINGERPRINT_STRIDE in hits for s in hits)


def digest(series: list[Series]) -> str:
    """A short hash of the corpus' contents (what the marker records)."""
    h = hashlib.sha256()
    for s in series:
        h.update(s.name.encode() + s.values.tobytes())
    return h.hexdigest()[:16]
