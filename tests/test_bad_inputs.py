"""Bad input, table-driven, through the real CLIs: each case must give exit code 2, one line
`error: ...` naming the file, column or parameter and the fix, and change no output."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stages.detect import app as detect_app
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app

from momentad.app import app as momentad_app
from tests.conftest import small_params, write_params

OUTPUTS = ("data", "metrics", "reports", "plots")


def csv(changes: dict | None = None, n: int = 400) -> pd.DataFrame:
    """A valid trainticket-layout table with faults in every split."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=n, freq="1min").astype(str),
                       "svc_cpu": rng.random(n), "svc_latency": rng.random(n), "label": 0})  # fmt: skip
    for a in (50, 150, 300, 350):
        df.loc[a : a + 5, "label"] = 1
    for (row, col), value in (changes or {}).items():
        df[col] = df[col].astype(object)
        df.loc[row, col] = value
    return df


def own_data(tmp: Path, frame: pd.DataFrame | None = None, text: str | None = None, **params) -> None:
    path = tmp / "bad.csv"
    if text is not None:
        path.write_text(text)
    elif frame is not None:
        frame.to_csv(path, index=False)
    write_params(tmp, small_params(**{"data.source": "csv", "data.path": "bad.csv", "window.length": 64,
                                      "window.train_stride": 16, "window.eval_stride": 64, **params}))  # fmt: skip


def set_params(tmp: Path, **overrides) -> None:
    write_params(tmp, small_params(**overrides))


def without_section(tmp: Path, method: str) -> None:
    params = small_params(methods=[method, IF])
    del params[method]
    write_params(tmp, params)


def raw_params(tmp: Path, text: str) -> None:
    (tmp / "params.yaml").write_text(text)


def truncate(tmp: Path, rel: str) -> None:
    f = tmp / rel
    f.write_bytes(f.read_bytes()[: max(1, f.stat().st_size // 3)])


def edit_json(tmp: Path, rel: str, **changes) -> None:
    f = tmp / rel
    doc = json.loads(f.read_text())
    doc.update(changes)
    f.write_text(json.dumps(doc))


def model_dir_without_safetensors(tmp: Path) -> None:
    d = tmp / "mymodel"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "pytorch_model.bin").write_bytes(b"pickle would run code")
    set_params(tmp, **{"moment.checkpoint": str(d)})


def gzip_named_csv(path: Path, frame: pd.DataFrame) -> None:
    import gzip

    path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))


def latin1(path: Path, frame: pd.DataFrame) -> None:
    path.write_bytes(frame.rename(columns={frame.columns[1]: frame.columns[1] + "_caf\xe9"}).to_csv(index=False)
                     .encode("latin-1"))  # fmt: skip


def commented(path: Path, frame: pd.DataFrame) -> None:
    path.write_text("# exported by the monitoring system\n# units: ms\n" + frame.to_csv(index=False))


def duplicate_label(path: Path, frame: pd.DataFrame) -> None:
    frame = frame.copy()
    frame["label2"] = frame.get("label", 0)
    frame.rename(columns={"label2": "label"}).to_csv(path, index=False)


def duplicate_kpi(path: Path, frame: pd.DataFrame) -> None:
    cols = list(frame.columns)
    frame.set_axis([*cols[:2], cols[1], *cols[3:]], axis=1).to_csv(path, index=False)


def dated(fmt: str, start: str = "2026-03-01", n: int = 400) -> pd.DataFrame:
    """The valid table with its times written in another layout (e.g. day first)."""
    frame = csv(n=n)
    frame["timestamp"] = pd.date_range(start, periods=n, freq="1min").strftime(fmt)
    return frame


def dst_repeat(path: Path, sub_hourly: bool) -> None:
    """Naive local times across the night US daylight saving ended (1 Nov 2026): 01:00-01:59
    written twice (hourly data repeat 01:00, finer data go back an hour)."""
    freq = "10min" if sub_hourly else "1h"
    t = pd.date_range("2026-10-30 00:00", "2026-11-03 00:00", freq=freq)
    back = t[t < pd.Timestamp("2026-11-01 02:00")]
    again = t[(t >= pd.Timestamp("2026-11-01 01:00")) & (t < pd.Timestamp("2026-11-01 02:00"))]
    times = [*back, *again, *t[t >= pd.Timestamp("2026-11-01 02:00")]]
    frame = csv(n=len(times))
    frame["timestamp"] = [x.strftime("%Y-%m-%d %H:%M:%S") for x in times]
    frame.to_csv(path, index=False)


def long_export(path: Path, duplicate: bool = False) -> None:
    """A Prometheus-style long table: one row per (time, metric, instance)."""
    rows = []
    for i, ts in enumerate(pd.date_range("2026-01-01", periods=400, freq="1min").astype(str)):
        for inst in ("a", "b"):
            rows.append((ts, "cpu", inst, float(i % 7), int(i in range(50, 56) or i in range(300, 306))))
    if duplicate:
        rows.append(rows[10])
    pd.DataFrame(rows, columns=["timestamp", "metric", "instance", "value", "label"]).to_csv(path, index=False)


def new(t: Path) -> pd.DataFrame:
    return pd.read_csv(t / "new.csv")


def with_value(frame: pd.DataFrame, row: int, value: str) -> pd.DataFrame:
    frame = frame.copy()
    col = frame.columns[1]
    frame[col] = frame[col].astype(object)
    frame.loc[row, col] = value
    return frame


PRE, DET, SCORE = "preprocess", "detect", "score"
IF = "isolation_forest"  # the method the cases run
CASES = [
    # (id, mutation, cli, args, message)
    ("lora.alpha text", lambda t: set_params(t, **{"moment.lora.alpha": "abc"}), DET, ["moment"],
     "params.yaml: moment.lora.alpha must be a number, got 'abc'"),
    ("lora.dropout 2", lambda t: set_params(t, **{"moment.lora.dropout": 2}), DET, ["moment"],
     "moment.lora.dropout=2.0 is out of range"),
    ("batch_size 0", lambda t: set_params(t, **{"moment.batch_size": 0}), DET, ["moment"],
     "moment.batch_size=0 is out of range"),
    ("lr word", lambda t: set_params(t, **{"moment.finetune.lr": "fast"}), DET, ["moment"],
     "moment.finetune.lr must be a number"),
    ("misspelt finetune key", lambda t: set_params(t, **{"moment.finetune.epoch": 3}), DET, ["moment"],
     "moment.finetune.epoch is not a known key; did you mean moment.finetune.epochs?"),
    ("misspelt method key", lambda t: set_params(t, **{"lstm_ae.epoch": 3}), DET, ["lstm_ae"],
     "lstm_ae.epoch is not a known key"),
    ("split sum", lambda t: set_params(t, **{"data.split": {"train": 0.8, "val": 0.2, "test": 0.2}}), PRE, [],
     "data.split fractions sum to 1.200"),
    ("eval_stride too long", lambda t: set_params(t, **{"window.eval_stride": 1000}), PRE, [],
     "window.eval_stride=1000 is out of range"),
    ("negative seed", lambda t: set_params(t, seed=-1), PRE, [], "params.yaml: seed=-1 is out of range"),
    ("zero threads", lambda t: set_params(t, threads=0), PRE, [], "params.yaml: threads=0 is out of range"),
    ("threshold rule", lambda t: set_params(t, **{"evaluate.threshold": "best"}), PRE, [],
     "evaluate.threshold must be one of 'val_best_f1'"),
    ("precision fp8", lambda t: set_params(t, **{"moment.precision": "fp8"}), DET, ["moment"],
     "moment.precision must be one of"),
    ("yaml syntax", lambda t: raw_params(t, "seed: [42\n"), PRE, [], "params.yaml: not valid YAML at line"),
    ("unknown source", lambda t: set_params(t, **{"data.source": "kafka"}), PRE, [],
     "data.source must be one of 'cicddos', 'csv'"),
    ("missing data file", lambda t: own_data(t), PRE, [], "bad.csv: file not found"),
    ("empty data file", lambda t: own_data(t, text=""), PRE, [], "bad.csv: file is empty"),
    ("semicolon csv", lambda t: own_data(t, text=csv().to_csv(index=False, sep=";")), PRE, [],
     "the header holds ';': save the file comma-separated"),
    ("inf in train KPI", lambda t: own_data(t, csv({(20, "svc_cpu"): "inf"})), PRE, [],
     "column 'svc_cpu' is infinite at row 20"),
    ("1e400 in test KPI", lambda t: own_data(t, csv({(390, "svc_latency"): "1e400"})), PRE, [],
     "column 'svc_latency' is infinite at row 390 (inf)"),  # pyarrow reads the overflow as inf
    ("text in KPI", lambda t: own_data(t, csv({(7, "svc_cpu"): "high"})), PRE, [],
     "column 'svc_cpu' is not numeric (e.g. 'high' at row 7)"),
    ("decreasing time", lambda t: own_data(t, csv({(100, "timestamp"): "2025-01-01 00:00:00"})), PRE, [],
     "column 'timestamp' decreases at row"),
    ("duplicate time", lambda t: own_data(t, csv({(101, "timestamp"): "2026-01-01 01:40:00"})), PRE, [],
     "column 'timestamp' repeats"),
    ("label 2", lambda t: own_data(t, csv({(10, "label"): 2})), PRE, [], "column 'label' must be 0/1, found 2"),
    ("all-NaN KPI", lambda t: own_data(t, csv().assign(svc_cpu=np.nan)), PRE, [],
     "column 'svc_cpu' is entirely empty"),
    ("bad timestamp", lambda t: own_data(t, csv({(3, "timestamp"): "yesterday"})), PRE, [],
     "column 'timestamp' has an unparseable time 'yesterday'"),
    ("truncated train parquet", lambda t: truncate(t, "data/processed/train.parquet"), DET, [IF],
     "data/processed/train.parquet: not a readable Parquet file"),
    ("stale window index", lambda t: edit_json(t, "data/windows/windows.json", asked={"length": 64,
     "train_stride": 32, "eval_stride": 64}), DET, [IF],
     "windows.json: built with other window params than params.yaml"),
    ("broken schema.json", lambda t: (t / "data/processed/schema.json").write_text("{"), DET, [IF],
     "schema.json / windows.json is not valid JSON"),
    ("model dir without safetensors", model_dir_without_safetensors, DET, ["moment"],
     "has no model.safetensors (it has pytorch_model.bin: pickle files are never loaded)"),
    ("hub id not cached, offline", lambda t: set_params(t, **{"moment.checkpoint": "AutonLab/MOMENT-1-large",
                                                              "moment.offline": True}), DET, ["moment"],
     "moment.checkpoint=AutonLab/MOMENT-1-large: not reachable on the Hugging Face hub and not in the local cache"),
    ("another model's pinned revision", lambda t: set_params(t, **{"moment.checkpoint": "AutonLab/MOMENT-1-base"}),
     DET, ["moment"],
     "is AutonLab/MOMENT-1-large's pinned commit, not AutonLab/MOMENT-1-base's; set moment.revision to "
     "5e44b0ea26376a176360f87831124e018f876d96"),
    ("nf4 training on CPU", lambda t: set_params(t, **{"moment.quantization": "nf4"}), DET, ["moment"],
     "moment.quantization=nf4 trains only on CUDA"),
    ("method not in params", lambda t: set_params(t, methods=["pca"]), DET, ["knn"],
     "method 'knn' is not in params.yaml's methods (pca)"),
    ("score: missing KPI", lambda t: pd.read_csv(t / "new.csv").iloc[:, :-3].to_csv(t / "new.csv", index=False),
     SCORE, ["--method", "isolation_forest_full"], "new.csv: missing KPI column(s)"),
    ("score: unknown method", lambda t: None, SCORE, ["--method", "kmeans_full"], "unknown method 'kmeans'"),
    ("score: semicolon csv", lambda t: pd.read_csv(t / "new.csv").to_csv(t / "new.csv", index=False, sep=";"),
     SCORE, ["--method", "isolation_forest_full"], "the header holds ';'"),
    ("score: inf in input", lambda t: pd.read_csv(t / "new.csv").assign(**{pd.read_csv(t / "new.csv").columns[1]:
     np.inf}).to_csv(t / "new.csv", index=False), SCORE, ["--method", "isolation_forest_full"], "is infinite at row 0"),
    # one reader for preprocess and `momentad score`: the same faults, the same lines
    ("duplicate label column", lambda t: (own_data(t), duplicate_label(t / "bad.csv", csv())), PRE, [],
     "bad.csv: column 'label' appears twice (columns 4 and 5); rename or drop one"),
    ("duplicate KPI column", lambda t: (own_data(t), duplicate_kpi(t / "bad.csv", csv())), PRE, [],
     "bad.csv: column 'svc_cpu' appears twice (columns 2 and 3)"),
    ("score: duplicate KPI column", lambda t: duplicate_kpi(t / "new.csv", new(t)), SCORE,
     ["--method", "isolation_forest_full"], "new.csv: column '"),
    ("gzip named .csv", lambda t: (own_data(t), gzip_named_csv(t / "bad.csv", csv())), PRE, [],
     "bad.csv: the file is gzip-compressed; name it bad.csv.gz or decompress it"),
    ("score: gzip named .csv", lambda t: gzip_named_csv(t / "new.csv", new(t)), SCORE,
     ["--method", "isolation_forest_full"], "new.csv: the file is gzip-compressed"),
    ("latin-1 file", lambda t: (own_data(t), latin1(t / "bad.csv", csv())), PRE, [],
     "bad.csv: not UTF-8 text (byte b'\\xe9' at offset"),
    ("score: latin-1 file", lambda t: latin1(t / "new.csv", new(t)), SCORE, ["--method", "isolation_forest_full"],
     "new.csv: not UTF-8 text"),
    ("comment lines above the header", lambda t: (own_data(t), commented(t / "bad.csv", csv())), PRE, [],
     "remove comment or title lines above it"),
    ("score: comment lines", lambda t: commented(t / "new.csv", new(t)), SCORE, ["--method", "isolation_forest_full"],
     "remove comment or title lines above it"),
    ("1e39 in test KPI (beyond float32)", lambda t: own_data(t, csv({(390, "svc_latency"): "1e39"})), PRE, [],
     "column 'svc_latency' holds 1e+39 at row 390, beyond the float32 range"),
    ("1e308 in train KPI", lambda t: own_data(t, csv({(20, "svc_cpu"): "1e308"})), PRE, [],
     "column 'svc_cpu' holds 1e+308 at row 20, beyond the float32 range"),
    ("score: 1e39 in input", lambda t: with_value(new(t), 5, "1e39").to_csv(t / "new.csv", index=False), SCORE,
     ["--method", "isolation_forest_full"], "holds 1e+39 at row 5, beyond the float32 range"),
    ("score: --output is a folder", lambda t: (t / "out.csv").mkdir(), SCORE, ["--method", "isolation_forest_full"],
     "out.csv: is a folder; give a file name"),
    ("score: 1e308 in input", lambda t: with_value(new(t), 7, "1e308").to_csv(t / "new.csv", index=False), SCORE,
     ["--method", "isolation_forest_full"], "holds 1e+308 at row 7, beyond the float32 range"),
    ("score: text in KPI", lambda t: with_value(new(t), 3, "high").to_csv(t / "new.csv", index=False), SCORE,
     ["--method", "isolation_forest_full"], "is not numeric (e.g. 'high' at row 3)"),
    ("score: unparseable time", lambda t: new(t).assign(timestamp=lambda f: f["timestamp"].where(f.index != 4,
     "yesterday")).to_csv(t / "new.csv", index=False), SCORE, ["--method", "isolation_forest_full"],
     "column 'timestamp' has an unparseable time 'yesterday'"),
    ("score: empty file", lambda t: (t / "new.csv").write_text(""), SCORE, ["--method", "isolation_forest_full"],
     "new.csv: file is empty"),
    ("score: naive and aware times mixed", lambda t: new(t).assign(timestamp=lambda f: f["timestamp"].where(
     f.index != 6, "2026-01-01T00:06:00Z")).to_csv(t / "new.csv", index=False), SCORE,
     ["--method", "isolation_forest_full"], "column 'timestamp' mixes times with and without a time zone"),
    ("naive and aware times mixed", lambda t: own_data(t, csv({(6, "timestamp"): "2026-01-01T00:06:00+00:00"})),
     PRE, [], "column 'timestamp' mixes times with and without a time zone"),
    ("tab in params.yaml", lambda t: raw_params(t, (t / "params.yaml").read_text() + "extra:\n\t- 1\n"), PRE, [],
     "found character '\\t' that cannot start any token"),
    ("a method listed twice", lambda t: set_params(t, methods=[IF, IF]), PRE, [],
     "params.yaml: methods lists 'isolation_forest' twice; list each method once"),
    ("params.yaml missing", lambda t: (t / "params.yaml").unlink(), PRE, [], "params.yaml: params file not found"),
    ("label_column null, a label column in the file", lambda t: own_data(t, csv(), **{
     "data.csv.label_column": None}), PRE, [],
     "bad.csv: column 'label' is not read as the label (data.csv.label_column is null); set "
     "data.csv.label_column: label, or rename the column"),
    ("a KPI named like the pipeline's fault_type", lambda t: own_data(t, csv().assign(fault_type=1.0), **{
     "data.csv.fault_type_column": "cause"}), PRE, [],
     "bad.csv: column 'fault_type' is not read as the fault type"),
    # MOMENT's recipes
    ("tsbad recipe with a classification head", lambda t: set_params(t, **{"moment.zero_shot.recipe": "tsbad",
     "moment.finetune.objective": "classification"}), DET, ["moment"],
     "moment.finetune.objective=classification has no TSB-AD counterpart"),
    ("int8 with head fine-tuning", lambda t: set_params(t, **{"moment.quantization": "int8",
     "moment.finetune.method": "head"}), DET, ["moment"], "finetune.method=head trains unquantised weights"),
    ("tsbad window not whole patches", lambda t: set_params(t, **{"moment.zero_shot.recipe": "tsbad",
     "moment.zero_shot.window": 60}), DET, ["moment"],
     "moment.zero_shot.window=60 must be a multiple of MOMENT's patch length 8"),
    ("unknown fine-tuning method", lambda t: set_params(t, **{"moment.finetune.method": "prefix"}), DET, ["moment"],
     "moment.finetune.method must be one of 'lora', 'head', 'full'"),
    # this round: exports of monitoring tools, times, typos caught before work
    ("a misspelt method, caught by the first stage", lambda t: set_params(t, methods=["knnn", IF]), PRE, [],
     "params.yaml: methods lists 'knnn', which is not a method; did you mean knn?"),
    ("a method without its section", lambda t: without_section(t, "knn"), PRE, [],
     "params.yaml: methods lists 'knn' but params.yaml has no section 'knn' (its options)"),
    ("a misspelt method, through detect", lambda t: set_params(t, methods=["momnet", IF]), DET, [IF],
     "params.yaml: methods lists 'momnet', which is not a method; did you mean moment?"),
    ("day or month first?", lambda t: own_data(t, dated("%d/%m/%Y %H:%M")), PRE, [],
     "column 'timestamp' holds dates like '01/03/2026 00:00' that read as 1 March (day first) or 3 January (month "
     "first); set data.csv.time_format: '%d/%m/%Y %H:%M' or '%m/%d/%Y %H:%M'"),
    ("a time format that does not read the times", lambda t: own_data(t, dated("%d/%m/%Y %H:%M"), **{
     "data.csv.time_format": "%Y-%m-%d"}), PRE, [], "that data.csv.time_format='%Y-%m-%d' does not read"),
    ("hourly local times repeat when daylight saving ends", lambda t: (dst_repeat(t / "bad.csv", False), own_data(
     t)), PRE, [], "repeats 2026-11-01 01:00:00 at row 50; it looks like a daylight-saving change (2026-11-01): "
     "export in UTC or with offsets, or set data.repeated_times: mean or first"),
    ("10-minute local times go back an hour", lambda t: (dst_repeat(t / "bad.csv", True), own_data(t)), PRE, [],
     "goes back 0 days 00:50:00 at row 300 (2026-11-01 01:00:00); it looks like a daylight-saving change"),
    ("a time repeated, not at a clock change", lambda t: own_data(t, csv({(30, "timestamp"): "2026-01-01 00:29:00"})),
     PRE, [], "repeats 2026-01-01 00:29:00 at row 30; drop or aggregate duplicate rows (or set data.repeated_times"),
    ("repeated_times word", lambda t: set_params(t, **{"data.repeated_times": "average"}), PRE, [],
     "data.repeated_times must be one of 'refuse', 'mean', 'first'"),
    ("values with units (Grafana formatted data)", lambda t: own_data(t, csv().assign(svc_cpu=[
     f"{v:.2f}%" for v in csv()["svc_cpu"]])), PRE, [],
     "column 'svc_cpu' has values with units (e.g. '0.64%' at row 0); values carry units: export raw values"),
    ("a long export read as wide", lambda t: (long_export(t / "bad.csv"), own_data(t)), PRE, [],
     "looks like a long-format export (one row per time and series: columns metric, instance, value); set "
     "data.csv.long: {series: [metric, instance], value: value}"),
    ("a long export with a (series, time) twice", lambda t: (long_export(t / "bad.csv", True), own_data(t, **{
     "data.csv.long": {"series": ["metric", "instance"], "value": "value"}})), PRE, [],
     "series 'cpu/a' has two values at 2026-01-01 00:05:00 (row 800)"),
    ("data.csv.long names a missing column", lambda t: (long_export(t / "bad.csv"), own_data(t, **{
     "data.csv.long": {"series": ["metric", "host"], "value": "value"}})), PRE, [],
     "column 'host' not found (columns: timestamp, metric, instance, value, label); rename it or set data.csv.long"),
    ("a KPI named segment", lambda t: own_data(t, csv().assign(segment=1.0)), PRE, [],
     "column 'segment' is a KPI named like the pipeline's own 'segment' column; rename it (e.g. segment_kpi)"),
    ("a KPI named timestamp beside the time column", lambda t: own_data(t, csv().assign(time=csv()["timestamp"],
     timestamp=1.0), **{"data.csv.timestamp_column": "time"}), PRE, [],
     "column 'timestamp' is a KPI named like the pipeline's own 'timestamp' column"),
    ("data.csv.kpis names a missing KPI", lambda t: own_data(t, csv(), **{"data.csv.kpis": ["svc_mem"]}), PRE, [],
     "data.csv.kpis names 'svc_mem', which the file lacks; fix the list"),
    ("a misspelt data.csv key", lambda t: own_data(t, csv(), **{"data.csv.timestamp_col": "time"}), PRE, [],
     "data.csv.timestamp_col is not a known key; did you mean data.csv.timestamp_column?"),
    ("the old source name", lambda t: own_data(t, csv(), **{"data.source": "trainticket"}), PRE, [],
     "params.yaml: data.source=trainticket is now called csv; set data.source: csv"),
    ("a section of no format", lambda t: own_data(t, csv(), **{"data.kafka": {"topic": "x"}}), PRE, [],
     "params.yaml: data.kafka is not a known key"),
    ("a damaged Parquet input", lambda t: ((t / "bad.parquet").write_bytes(b"PAR1 not really"), own_data(t, **{
     "data.path": "bad.parquet"})), PRE, [], "bad.parquet: not a readable Parquet file"),
    ("max_rows 0", lambda t: set_params(t, **{"data.max_rows": 0}), PRE, [], "data.max_rows=0 is out of range"),
    ("min_test_events negative", lambda t: set_params(t, **{"data.split.min_test_events": -1}), PRE, [],
     "data.split.min_test_events=-1 is out of range"),
    ("an unknown MOMENT recipe", lambda t: set_params(t, **{"moment.zero_shot.recipe": "chronos"}), DET, ["moment"],
     "moment.zero_shot.recipe must be one of 'momentad', 'tsbad'; got 'chronos'"),
    ("adapt steps negative", lambda t: set_params(t, **{"moment.adapt.steps": -5}), DET, ["moment"],
     "moment.adapt.steps=-5 is out of range"),
    ("a random-init size that does not exist", lambda t: set_params(t, **{"moment.checkpoint": "random-init:huge"}),
     DET, ["moment"], "size must be one of tiny, mini, small, base, large"),
    ("score: a title line above the header", lambda t: (t / "new.csv").write_text(
     "Exported from Grafana, panel CPU\n" + new(t).to_csv(index=False)), SCORE, ["--method", f"{IF}_full"],
     "new.csv: line 1 ('Exported from Grafana, panel CPU') is a title or comment above the header"),
    ("score: the input missing, named by its option", lambda t: (t / "new.csv").unlink(), SCORE,
     ["--method", f"{IF}_full"], "new.csv: file not found; check -i/--input"),
    ("score: day or month first?", lambda t: new(t).assign(timestamp=pd.to_datetime(new(t)["timestamp"]).dt.strftime(
     "%d/%m/%Y %H:%M")).pipe(lambda f: f.iloc[:40]).to_csv(t / "new.csv", index=False), SCORE,
     ["--method", f"{IF}_full"], "set --time-format: '%d/%m/%Y %H:%M' or '%m/%d/%Y %H:%M'"),
    ("score: values with units", lambda t: new(t).assign(**{new(t).columns[1]: [f"{v:.1f} ms" for v in new(t).iloc[
     :, 1]]}).to_csv(t / "new.csv", index=False), SCORE, ["--method", f"{IF}_full"], "values carry units"),
]  # fmt: skip


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A project folder after preprocess, window and isolation_forest (shared, copied per case)."""
    import os

    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("prepared")
    write_params(root, small_params())
    old = os.getcwd()
    os.chdir(root)
    try:
        r = CliRunner()
        write_params(root, small_params(methods=[IF]))
        for app, args in ((preprocess_app, []), (window_app, []), (detect_app, [IF, "--no-progress"])):
            assert r.invoke(app, args).exit_code == 0
        schema = json.loads((root / "data/processed/schema.json").read_text())
        test = pd.read_parquet(root / "data/processed/test.parquet")
        raw = test[schema["features"]] * pd.Series(schema["scaler"]["scale"]) + pd.Series(schema["scaler"]["center"])
        raw.insert(0, "timestamp", test["timestamp"])
        raw.to_csv(root / "new.csv", index=False)
    finally:
        os.chdir(old)
    return root


def snapshot(root: Path) -> dict[str, str]:
    out = {}
    for top in OUTPUTS:
        for f in sorted((root / top).rglob("*")) if (root / top).exists() else []:
            if f.is_file():
                out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_one_line_exit_2_nothing_changed(case, prepared, tmp_path, monkeypatch, runner):
    name, mutate, cli, args, message = case
    work = tmp_path / "w"
    shutil.copytree(prepared, work)
    monkeypatch.chdir(work)
    mutate(work)
    before = snapshot(work)
    if cli == PRE:
        result = runner.invoke(preprocess_app, args)
    elif cli == DET:
        result = runner.invoke(detect_app, [*args, "--no-progress"])
    else:
        result = runner.invoke(momentad_app, ["score", *args, "-i", "new.csv", "-o", "out.csv"])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0], lines[0]
    assert snapshot(work) == before, "a failed run changed outputs"
    assert not (work / "out.csv").is_file() and not list(work.glob(".out.csv.tmp-*"))
    print(f"| {name} | {result.exit_code} | {lines[0]} |")  # the table for the closing note (pytest -s)
