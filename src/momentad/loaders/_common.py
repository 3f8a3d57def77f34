"""Helpers the format loaders share: file checks and CSV reading with clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from momentad.errors import InputError


def existing(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` if it exists (a file, or a folder when what='folder'), else fail clearly."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: {what} not found; check data.path in params.yaml")
    if what == "file" and not p.is_file():
        raise InputError(f"{p}: expected a file, found a folder; point data.path at the file")
    if what == "file" and p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty; point data.path at a file with data")
    return p


GZIP_MAGIC = b"\x1f\x8b"


def read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """Read a CSV (plain or compressed, by its extension) as every entry point does: parser
    failures, encodings, empty tables and repeated column names become one-line errors."""
    path = existing(path)
    try:
        df = pd.read_csv(path, **kwargs)
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, **kwargs) if len(df.columns) else None
        header = [] if first is None else first.iloc[0].tolist()
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: file has no rows; point data.path at a file with data") from None
    except UnicodeDecodeError as e:
        with open(path, "rb") as f:
            compressed = f.read(2) == GZIP_MAGIC
        if compressed:
            raise InputError(f"{path}: the file is gzip-compressed; name it {path.name}.gz or decompress it") from None
        raise InputError(f"{path}: not UTF-8 text (byte {e.object[e.start:e.start + 1]!r} at offset {e.start}); "
                         "save it as UTF-8 (spreadsheets: 'CSV UTF-8')") from None  # fmt: skip
    except pd.errors.ParserError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{path}: not a readable CSV ({first}); the first line must be the header (remove "
                         "comment or title lines above it) and every row needs as many fields") from None  # fmt: skip
    except OSError as e:  # a corrupt .gz, a permission problem
        raise InputError(f"{path}: cannot be read ({e.strerror or e}); check the file") from None
    if df.empty:
        raise InputError(f"{path}: file has a header but no rows; point data.path at a file with data")
    seen: dict[str, int] = {}
    for i, name in enumerate(str(h).strip() for h in header):
        if name in seen:  # pandas would rename it "<name>.1" and hand it on as another column
            raise InputError(f"{path}: column '{name}' appears twice (columns {seen[name] + 1} and {i + 1}); rename "
                             "or drop one")  # fmt: skip
        seen[name] = i
    return df


def separator_hint(columns) -> str:
    """'' or a hint when a one-column header holds another separator (a ;-separated CSV)."""
    first = str(list(columns)[0]) if len(columns) else ""
    sep = next((s for s in (";", "\t", "|") if s in first), None) if len(columns) == 1 else None
    return f"the header holds {sep!r}: save the file comma-separated" if sep else ""


def require_column(df: pd.DataFrame, column: str, path: Path, param: str) -> None:
    """Fail naming the file, the column and the param that names it."""
    if column not in df.columns:
        hint = separator_hint(df.columns)
        if hint:
            raise InputError(f"{path}: column '{column}' not found and {hint}")
        shown = ", ".join(map(str, list(df.columns)[:8])) + (" ..." if df.shape[1] > 8 else "")
        raise InputError(
            f"{path}: column '{column}' not found (columns: {shown}); rename it or set {param} in params.yaml"
        )


def finish(
    frame: pd.DataFrame,
    label: pd.Series | None = None,
    fault_type: pd.Series | None = None,
    root_cause: pd.Series | None = None,
) -> pd.DataFrame:
    """Attach the label / fault_type / root_cause columns in the raw-table layout.

    A missing label is derived from fault_type (non-null = anomalous); a missing fault_type
    becomes "anomaly" wherever label is 1.
    """
    n = len(frame)
    if label is None and fault_type is None:
        raise ValueError("a loader must give label or fault_type")
    if fault_type is not None:
        fault_type = fault_type.astype("string").str.strip()
        fault_type = fault_type.mask(fault_type.isin(["", "normal", "none", "None", "nan", "NaN", "0"]))
    if label is None:
        label = fault_type.notna().astype("int8")
    label = label.reset_index(drop=True)
    out = frame.reset_index(drop=True).copy()
    out["label"] = label
    if fault_type is None:
        fault_type = pd.Series(pd.NA, index=range(n), dtype="string").mask(label.astype(bool), "anomaly")
    out["fault_type"] = fault_type.reset_index(drop=True).astype("string")
    out["root_cause"] = (
        root_cause.reset_index(drop=True).astype("string")
        if root_cause is not None
        else pd.Series(pd.NA, index=range(n), dtype="string")
    )
    return out
