"""Real monitoring exports through preprocess (docs/examples: Prometheus long format, an InfluxDB
annotated CSV, a Grafana panel CSV), Parquet input, repeated local times merged on request,
header names with spaces, and a file too large to fit refused before it is read."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from stages.preprocess import app as preprocess_app

from tests.conftest import ROOT, small_params, write_params

EXAMPLES = ROOT / "docs" / "examples"
SERIES = ["node_cpu_seconds_total/web-1:9100", "node_cpu_seconds_total/web-2:9100",
          "http_request_duration_seconds/web-1:9100"]  # fmt: skip
SETTINGS = {
    "prometheus_long.csv": {"data.csv.long": {"series": ["metric", "instance"], "value": "value"}},
    "influxdb_annotated.csv": {"data.csv.label_column": "label/incident/all"},
    "grafana.csv": {"data.csv.timestamp_column": "Time"},
}


def preprocess(runner, workdir, source_file, **params):
    shutil.copy(source_file, workdir / source_file.name)
    write_params(workdir, small_params(**{"data.source": "csv", "data.path": source_file.name, **params}))
    result = runner.invoke(preprocess_app, [])
    return result, (json.loads((workdir / "data/processed/schema.json").read_text()) if result.exit_code == 0
                    else None)  # fmt: skip


@pytest.mark.parametrize("name", list(SETTINGS))
def test_each_monitoring_export_loads_with_one_setting(runner, workdir, name):
    result, schema = preprocess(runner, workdir, EXAMPLES / name, **SETTINGS[name])
    assert result.exit_code == 0, result.output
    rows = sum(s["rows"] for s in schema["splits"].values())
    assert rows == 864 and sum(s["events"] for s in schema["splits"].values()) == 3  # 3 days, 3 incidents
    if name == "prometheus_long.csv":
        assert schema["features"] == sorted(SERIES)
    elif name == "influxdb_annotated.csv":
        assert schema["features"] == ["cpu/usage/web-1", "cpu/usage/web-2", "http/duration/web-1"]
    else:
        assert len(schema["features"]) == 2 and schema["features"][0].startswith("rate(node_cpu_seconds_total{")
    train = pd.read_parquet(workdir / "data/processed/train.parquet")
    assert np.isfinite(train[schema["features"]].to_numpy()).all()


def test_the_three_exports_give_the_same_series(runner, workdir):
    """The long export and the Influx export hold the same numbers: after pivoting they agree."""
    tables = {}
    for name in ("prometheus_long.csv", "influxdb_annotated.csv"):
        result, schema = preprocess(runner, workdir, EXAMPLES / name, **SETTINGS[name])
        assert result.exit_code == 0, result.output
        tables[name] = pd.read_parquet(workdir / "data/processed/test.parquet")[schema["features"]].to_numpy()
    np.testing.assert_allclose(tables["prometheus_long.csv"][:, [1, 2, 0]], tables["influxdb_annotated.csv"],
                               rtol=1e-5, atol=1e-5)  # fmt: skip


def test_parquet_input_equals_csv_input(runner, workdir):
    frame = pd.read_csv(EXAMPLES / "grafana.csv")
    frame.to_parquet(workdir / "grafana.parquet", index=False)
    r1, s1 = preprocess(runner, workdir, EXAMPLES / "grafana.csv", **SETTINGS["grafana.csv"])
    a = pd.read_parquet(workdir / "data/processed/train.parquet")
    write_params(workdir, small_params(**{"data.source": "csv", "data.path": "grafana.parquet",
                                          **SETTINGS["grafana.csv"]}))  # fmt: skip
    r2 = runner.invoke(preprocess_app, [])
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    pd.testing.assert_frame_equal(a, pd.read_parquet(workdir / "data/processed/train.parquet"))


@pytest.mark.parametrize("how, expect", [("first", 40.0), ("mean", 45.0)])
def test_repeated_local_times_are_merged_on_request_and_counted(runner, workdir, how, expect):
    """The hour daylight saving repeats (01:00 twice, hourly data) with data.repeated_times."""
    t = list(pd.date_range("2026-10-28", "2026-11-01 01:00", freq="1h")) + list(pd.date_range(
        "2026-11-01 01:00", "2026-11-06", freq="1h"))  # fmt: skip
    n = len(t)
    frame = pd.DataFrame({"timestamp": [x.strftime("%Y-%m-%d %H:%M") for x in t],
                          "kpi": np.sin(np.arange(n) / 4) + 30.0, "label": 0})  # fmt: skip
    frame.loc[range(20, 24), "label"] = 1
    frame.loc[range(90, 93), "label"] = 1
    frame.loc[range(110, 113), "label"] = 1
    dup = t.index(pd.Timestamp("2026-11-01 01:00"))
    frame.loc[dup, "kpi"], frame.loc[dup + 1, "kpi"] = 40.0, 50.0
    frame.to_csv(workdir / "local.csv", index=False)
    write_params(workdir, small_params(**{"data.source": "csv", "data.path": "local.csv", "window.length": 16,
                                          "window.train_stride": 4, "data.repeated_times": how}))  # fmt: skip
    result = runner.invoke(preprocess_app, [])
    assert result.exit_code == 0, result.output
    schema = json.loads((workdir / "data/processed/schema.json").read_text())
    assert schema["quality"]["repeated_times_merged"] == 1
    assert sum(s["rows"] for s in schema["splits"].values()) == n - 1
    sc = schema["scaler"]
    processed = pd.concat([pd.read_parquet(workdir / f"data/processed/{k}.parquet") for k in ("train", "val", "test")])
    at = processed.loc[processed["timestamp"] == pd.Timestamp("2026-11-01 01:00"), "kpi"].iloc[0]
    assert at * sc["scale"]["kpi"] + sc["center"]["kpi"] == pytest.approx(expect, rel=1e-5)


def test_header_names_with_spaces_are_stripped_and_said(runner, workdir, caplog):
    frame = pd.read_csv(EXAMPLES / "grafana.csv").rename(columns={"label": " label ", "Time": "Time "})
    frame.to_csv(workdir / "spaced.csv", index=False)
    write_params(workdir, small_params(**{"data.source": "csv", "data.path": "spaced.csv",
                                          **SETTINGS["grafana.csv"]}))  # fmt: skip
    result = runner.invoke(preprocess_app, [])
    assert result.exit_code == 0, result.output
    assert "2 column name(s) had spaces around them, stripped" in caplog.text


def test_a_file_too_large_for_memory_is_refused_before_it_is_read(runner, workdir, monkeypatch):
    import momentad.loaders._common as common

    shutil.copy(EXAMPLES / "grafana.csv", workdir / "big.csv")
    read = []
    with monkeypatch.context() as m:  # its own context: undoing the fixture's would leave the work folder
        m.setattr(common, "available_memory", lambda: 100_000)  # pretend 100 kB are free
        m.setattr(common, "_read_arrow", lambda *a, **k: read.append(1))
        write_params(workdir, small_params(**{"data.source": "csv", "data.path": "big.csv",
                                              **SETTINGS["grafana.csv"]}))  # fmt: skip
        result = runner.invoke(preprocess_app, [])
    assert result.exit_code == 2 and not read
    line = result.output.strip()
    assert line.startswith("error: big.csv: reading it needs about ") and "GiB (8" in line and "x 4 columns)" in line
    assert line.endswith("read fewer KPIs (data.csv.kpis), fewer rows (data.max_rows), or convert it to Parquet")
    # the fixes it names work: fewer rows
    write_params(workdir, small_params(**{"data.source": "csv", "data.path": "big.csv", "data.max_rows": 3,
                                          **SETTINGS["grafana.csv"]}))  # fmt: skip
    result = runner.invoke(preprocess_app, [])
    assert "the train split has" in result.output or "rows of 3" in result.output  # 3 rows read: too short to split
