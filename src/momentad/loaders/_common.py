"""Helpers the format loaders share: file checks and CSV reading with clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from momentad.errors import InputError


def existing(path: str | Path, what: str = "file", option: str = "data.path") -> Path:
    """Return ``path`` if it exists (a file, or a folder when what='folder'), else fail clearly
    naming the ``option`` the user gave it with (``data.path``, ``-i``)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: {what} not found; check {option}")
    if what == "file" and not p.is_file():
        raise InputError(f"{p}: expected a file, found a folder; point {option} at the file")
    if what == "file" and p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty; point {option} at a file with data")
    return p


GZIP_MAGIC = b"\x1f\x8b"
PARQUET = (".parquet", ".pq")
INFLUX = ("#datatype", "#group", "#default")
SNIFF = 1 << 16  # bytes read to look at the header before reading the file
BLOCK_BYTES = 1 << 24  # the CSV reader's block: types come from the first one when streaming


def available_memory() -> int:
    """Bytes a new allocation can get (psutil)."""
    import psutil

    return int(psutil.virtual_memory().available)


def _opener(path: Path):
    import bz2
    import gzip
    import lzma

    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    return open(path, "rb")


def _head(path: Path) -> bytes:
    """The first bytes of the (decompressed) file."""
    with open(path, "rb") as f:
        raw = f.read(2)
    if raw == GZIP_MAGIC and not path.name.lower().endswith(".gz"):
        raise InputError(f"{path}: the file is gzip-compressed; name it {path.name}.gz or decompress it")
    try:
        with _opener(path) as f:
            return f.read(SNIFF)
    except OSError as e:  # a corrupt .gz
        raise InputError(f"{path}: cannot be read ({e.strerror or e}); check the file") from None


def _bad_utf8(path: Path) -> InputError:
    """The first byte that is not UTF-8, found by decoding the file in pieces."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with _opener(path) as f:
        while chunk := f.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                at = offset + e.start - len(decoder.getstate()[0])
                return InputError(f"{path}: not UTF-8 text (byte {chunk[e.start:e.start + 1]!r} at offset {at}); save "
                                  "it as UTF-8 (spreadsheets: 'CSV UTF-8')")  # fmt: skip
            offset += len(chunk)
    return InputError(f"{path}: not UTF-8 text; save it as UTF-8 (spreadsheets: 'CSV UTF-8')")


def _fields(line: str) -> list[str]:
    import csv

    return next(csv.reader([line]), [])


def _header_at(path: Path, head: bytes) -> tuple[int, list[str], bool]:
    """(lines above the header, the header's fields, InfluxDB annotations?): a first line with
    fewer fields than the lines after it is a title or comment, named as such."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not just a character cut at the sample's end
            raise _bad_utf8(path) from None
        text = head[: e.start].decode("utf-8")
    lines = text.splitlines()[:-1] if len(head) == SNIFF else text.splitlines()
    if not lines or not lines[0].strip():
        raise InputError(f"{path}: file is empty; point data.path at a file with data")
    influx = any(ln.startswith(INFLUX) for ln in lines[:4])
    if influx:
        skip = next(i for i, ln in enumerate(lines) if ln.strip() and not ln.startswith("#"))
        return skip, [f.strip() for f in _fields(lines[skip])], True
    counts = [len(_fields(ln)) for ln in lines[:12] if ln.strip()]
    body = max(set(counts[1:]), key=counts[1:].count) if len(counts) > 1 else counts[0]
    skip = 0
    while skip < len(counts) - 1 and counts[skip] < body and (lines[skip].startswith("#") or counts[skip] <= 1
                                                                or counts[skip] < body / 2):  # fmt: skip
        skip += 1
    if skip:
        raise InputError(f"{path}: line 1 ({lines[0][:60]!r}) is a title or comment above the header (line {skip + 1} "
                         f"has the {body} column names); remove comment or title lines above it")  # fmt: skip
    return 0, [f.strip() for f in _fields(lines[0])], False


def read_csv(path: Path, option: str = "data.path", max_rows: int | None = None,
             columns: list[str] | None = None, **kwargs) -> pd.DataFrame:  # fmt: skip
    """Read a table as every entry point does: CSV (plain, .gz, .bz2, .xz) with pyarrow's
    columnar reader (numbers become float64 columns without a pass through Python objects), or
    Parquet (``.parquet``); an InfluxDB annotated CSV with its annotations dropped (``info``:
    ``attrs["influx"]``). Names are stripped of surrounding spaces (and the log says so); a file
    that would not fit in memory is refused before it is read, with the estimate and the fixes.
    Parser failures, encodings, titles above the header, empty tables and repeated column names
    are one-line errors naming the file and ``option``."""
    import logging

    path = existing(path, option=option)
    if path.name.lower().endswith(PARQUET):
        df = _read_parquet(path, max_rows, columns)
        header, influx = [str(c) for c in df.columns], False
    else:
        head = _head(path)
        skip, header, influx = _header_at(path, head)
        if columns is not None:
            columns = [c for c in header if c in columns]  # the ones the file has, in its order
        _fits(path, head, header, max_rows, columns)
        df = _read_arrow(path, skip, header, max_rows, columns, option)
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in seen:  # pandas would rename it "<name>.1" and hand it on as another column
            raise InputError(f"{path}: column '{name}' appears twice (columns {seen[name] + 1} and {i + 1}); rename "
                             "or drop one")  # fmt: skip
        seen[name] = i
    stripped = [c for c in df.columns if str(c) != str(c).strip()]
    if stripped:
        logging.getLogger(__name__).warning("%s: %d column name(s) had spaces around them, stripped (e.g. %r)", path,
                                            len(stripped), stripped[0])  # fmt: skip
        df.columns = [str(c).strip() for c in df.columns]
    if influx:
        df = df.drop(columns=[c for c in ("", "result", "table", "_start", "_stop") if c in df.columns])
        df.attrs["influx"] = True
    if df.empty:
        raise InputError(f"{path}: file has a header but no rows; point {option} at a file with data")
    return df


def _fits(path: Path, head: bytes, header: list[str], max_rows: int | None, columns: list[str] | None) -> None:
    """Refuse a CSV whose table would not fit in memory, with the estimate and the fixes."""
    size = path.stat().st_size
    if path.name.lower().endswith(".gz"):
        with open(path, "rb") as f:  # gzip records the uncompressed size (mod 4 GiB) at its end
            f.seek(-4, 2)
            size = max(size, int.from_bytes(f.read(4), "little"))
    lines = head.count(b"\n") or 1
    rows = int(size / (len(head) / lines))
    rows = min(rows, max_rows) if max_rows else rows
    cols = len(columns) + 1 if columns else len(header)
    need = rows * cols * 8 * 2 + rows * 80  # numbers as float64 twice over (the table, then the scaled copies) + times
    free = available_memory()
    if need > 0.8 * free:
        raise InputError(f"{path}: reading it needs about {need / 2**30:.1f} GiB ({rows:,} rows x {cols} columns) and "
                         f"{free / 2**30:.1f} GiB are free; read fewer KPIs (data.csv.kpis), fewer rows "
                         "(data.max_rows), or convert it to Parquet")  # fmt: skip


def _read_parquet(path: Path, max_rows: int | None, columns: list[str] | None) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=columns)
    except Exception as e:  # pyarrow raises several types for a damaged or foreign file
        raise InputError(f"{path}: not a readable Parquet file ({type(e).__name__}); check the file") from None
    if max_rows:
        table = table.slice(0, max_rows)
    return table.to_pandas(self_destruct=True, split_blocks=True)


def _read_arrow(path: Path, skip: int, header: list[str], max_rows: int | None, columns: list[str] | None,
                option: str) -> pd.DataFrame:  # fmt: skip
    import pyarrow as pa
    import pyarrow.csv as pc

    pool = _pool()
    read = pc.ReadOptions(skip_rows=skip, block_size=BLOCK_BYTES, use_threads=True)
    parse = pc.ParseOptions()
    convert = pc.ConvertOptions(strings_can_be_null=True, include_columns=columns,
                                null_values=["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"])  # fmt: skip
    try:
        try:
            table = _stream(path, read, parse, convert, max_rows, pool)
        except pa.ArrowInvalid:  # a type the first block did not show, or a bad row: the whole-file reader decides
            if max_rows:
                raise
            table = None
        if table is None:
            table = pc.read_csv(path, read_options=read, parse_options=parse, convert_options=convert,
                                memory_pool=pool)  # fmt: skip
    except pa.ArrowInvalid as e:
        msg = str(e)
        if "UTF8" in msg or "utf-8" in msg.lower():
            raise _bad_utf8(path) from None
        if "Empty CSV file" in msg:
            raise InputError(f"{path}: file has no rows; point {option} at a file with data") from None
        first = msg.strip().splitlines()[0][:160]
        raise InputError(f"{path}: not a readable CSV ({first}); the first line must be the header (remove "
                         "comment or title lines above it) and every row needs as many fields") from None  # fmt: skip
    except OSError as e:
        raise InputError(f"{path}: cannot be read ({e}); check the file") from None
    return table.to_pandas(self_destruct=True, split_blocks=True, memory_pool=pool)


def _pool():
    """jemalloc where pyarrow has it, as every Arrow allocation's pool, returning freed pages at
    once: with the default pool the CSV reader's parse buffers stay resident beside the table
    (a 433 MB CSV: 1.7 GB while reading, 0.6 GB with this)."""
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()
    pa.set_memory_pool(pool)
    pa.jemalloc_set_decay_ms(0)
    return pool


def _stream(path: Path, read, parse, convert, max_rows: int | None, pool):
    """The CSV block by block (at most ``max_rows`` rows): memory of about the table, not the
    whole-file reader's buffers. Types come from the first block, so None where a column is
    empty there (text or numbers may follow: the whole-file reader decides); a later block that
    does not fit them raises ArrowInvalid."""
    import pyarrow as pa
    import pyarrow.csv as pc

    reader = pc.open_csv(path, read_options=read, parse_options=parse, convert_options=convert, memory_pool=pool)
    if not max_rows and any(pa.types.is_null(f.type) for f in reader.schema):
        reader.close()
        return None
    batches, n = [], 0
    for batch in reader:
        batches.append(batch)
        n += batch.num_rows
        if max_rows and n >= max_rows:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return table.slice(0, max_rows) if max_rows else table


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
    out = frame  # the loader's own frame: columns are added in place (a large table is never copied)
    out.index = pd.RangeIndex(n)
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
