"""Reading the preprocess and window stages' outputs back as splits for the model stages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from momentad.errors import InputError
from momentad.windows import segment_bounds

SPLITS = ("train", "val", "test")
META_COLUMNS = ("timestamp", "label", "fault_type", "root_cause")


@dataclass
class Split:
    """One split: its processed table, KPI names and window index."""

    name: str
    frame: pd.DataFrame
    features: list[str]
    index: pd.DataFrame

    @property
    def values(self) -> np.ndarray:
        """(timesteps, channels) float32."""
        return self.frame[self.features].to_numpy(dtype=np.float32)

    @property
    def labels(self) -> np.ndarray:
        return self.frame["label"].to_numpy().astype(np.int8)

    @property
    def segments(self) -> list[tuple[int, int]]:
        """[start, stop) rows of the stretches without a time gap (one unless the data has gaps)."""
        return segment_bounds(self.frame)

    def __len__(self) -> int:
        return len(self.frame)


def _read(path: Path, stage: str) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: not found; run `dvc repro {stage}` first")
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a truncated or foreign file
        raise InputError(
            f"{path}: not a readable Parquet file ({type(e).__name__}); run `dvc repro -f {stage}`"
        ) from None


def load_splits(
    processed: str | Path = "data/processed", windows: str | Path = "data/windows"
) -> tuple[dict[str, Split], dict, dict]:
    """All three splits, plus schema.json and windows.json."""
    processed, windows = Path(processed), Path(windows)
    schema_path, meta_path = processed / "schema.json", windows / "windows.json"
    if not schema_path.is_file():
        raise InputError(f"{schema_path}: not found; run `dvc repro preprocess` first")
    if not meta_path.is_file():
        raise InputError(f"{meta_path}: not found; run `dvc repro window` first")
    try:
        schema = json.loads(schema_path.read_text())
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        raise InputError(
            f"{schema_path.parent}: schema.json / windows.json is not valid JSON; run `dvc repro -f preprocess window`"
        ) from None
    features = [c for c in schema["features"]]
    splits = {}
    for name in SPLITS:
        frame = _read(processed / f"{name}.parquet", "preprocess")
        missing = [c for c in features + list(META_COLUMNS) if c not in frame.columns]
        if missing:
            raise InputError(f"{processed / (name + '.parquet')}: missing column(s) {missing[:3]}; re-run preprocess")
        splits[name] = Split(name, frame, features, _read(windows / f"{name}.parquet", "window"))
    return splits, schema, meta
