"""Each real-format loader on small files written in that exact format."""

import re

import numpy as np
import pandas as pd
import pytest

from momentad.config import DataParams, build
from momentad.errors import InputError
from momentad.loaders import load
from momentad.preprocess import preprocess
from tests.conftest import small_params


def data_params(source, path, **options):
    """The repository's data section with this source, path and source options, validated."""
    data = small_params()["data"]
    data.update(source=source, path=str(path))
    if options:
        data[source] = {**(data.get(source) or {}), **options}
    return build(DataParams, data, "data")


def test_csv_label_and_fault_type(tmp_path):
    n = 300
    ts = pd.date_range("2024-03-01", periods=n, freq="1min")
    rng = np.random.default_rng(0)
    fault = np.full(n, "", dtype=object)
    fault[100:110] = "cpu"
    fault[250:260] = "delay"
    df = pd.DataFrame({"timestamp": ts.astype(str), "ts-order-service_cpu": rng.random(n),
                       "ts-order-service_latency": rng.random(n), "label": (fault != "").astype(int),
                       "fault_type": fault, "root_cause": np.where(fault != "", "ts-order-service", "")})  # fmt: skip
    df.to_csv(tmp_path / "tt.csv", index=False)
    raw = load(data_params("csv", tmp_path / "tt.csv"), seed=0)
    assert list(raw.frame.columns) == ["timestamp", "ts-order-service_cpu", "ts-order-service_latency",
                                       "label", "fault_type", "root_cause"]  # fmt: skip
    assert raw.frame["label"].sum() == 20
    assert raw.frame["fault_type"].iloc[105] == "cpu" and pd.isna(raw.frame["fault_type"].iloc[0])
    assert raw.frame["root_cause"].iloc[255] == "ts-order-service"


def test_csv_fault_type_only_derives_label(tmp_path):
    df = pd.DataFrame({"time": range(50), "kpi": np.arange(50.0), "fault": [None] * 40 + ["loss"] * 10})
    df.to_csv(tmp_path / "tt.csv", index=False)
    raw = load(data_params("csv", tmp_path / "tt.csv", timestamp_column="time",
                           label_column=None, fault_type_column="fault"), seed=0)  # fmt: skip
    assert raw.frame["label"].tolist() == [0] * 40 + [1] * 10
    assert list(raw.frame.columns[:2]) == ["timestamp", "kpi"]


def test_rcaeval_case_folder(tmp_path):
    case = tmp_path / "RE2-TT" / "ts-auth-service_cpu" / "1"
    case.mkdir(parents=True)
    t0 = 1_700_000_000
    df = pd.DataFrame({"time": t0 + np.arange(0, 1200, 10), "ts-auth-service_cpu": np.arange(120.0),
                       "ts-auth-service_mem": np.ones(120) + np.arange(120) % 3})  # fmt: skip
    df.to_csv(case / "data.csv", index=False)
    (case / "inject_time.txt").write_text(str(t0 + 600))
    raw = load(data_params("rcaeval", case, label_seconds=100), seed=0)
    lab = raw.frame["label"].to_numpy()
    assert lab.sum() == 10 and lab[60] == 1 and lab[59] == 0 and lab[70] == 0
    assert set(raw.frame["fault_type"].dropna()) == {"cpu"}
    assert set(raw.frame["root_cause"].dropna()) == {"ts-auth-service"}
    assert raw.frame["timestamp"].iloc[0] == pd.Timestamp(t0, unit="s")


def test_smd_respects_format_train_part(tmp_path):
    rng = np.random.default_rng(1)
    for sub in ("train", "test", "test_label"):
        (tmp_path / sub).mkdir()
    np.savetxt(tmp_path / "train" / "machine-1-1.txt", rng.random((400, 3)), delimiter=",", fmt="%.5f")
    np.savetxt(tmp_path / "test" / "machine-1-1.txt", rng.random((200, 3)), delimiter=",", fmt="%.5f")
    lab = np.zeros(200, dtype=int)
    lab[150:160] = 1
    lab[20:25] = 1
    np.savetxt(tmp_path / "test_label" / "machine-1-1.txt", lab, fmt="%d")
    raw = load(data_params("smd", tmp_path, machine="machine-1-1"), seed=0)
    assert raw.train_end == 400 and len(raw.frame) == 600
    assert raw.frame["label"].iloc[:400].sum() == 0 and raw.frame["label"].sum() == 15
    out = preprocess(raw, data_params("smd", tmp_path))
    rows = {k: len(v) for k, v in out.splits.items()}
    # the rest goes to val and test by events (val:test = 15:15 -> one event each), the boundary
    # in the middle of the normal stretch between them: rows 25 and 150 of the rest -> 87
    assert rows == {"train": 400, "val": 87, "test": 113}
    assert out.splits["val"]["label"].sum() == 5 and out.splits["test"]["label"].sum() == 10


def test_ucr_name_gives_train_end_and_anomaly(tmp_path):
    values = np.sin(np.arange(3000) / 10)
    path = tmp_path / "135_UCR_Anomaly_InternalBleeding16_1200_2500_2510.txt"
    path.write_text("  ".join(f"{v:.6f}" for v in values))  # archive files may be one line
    raw = load(data_params("ucr", path), seed=0)
    assert raw.train_end == 1200 and raw.name == "InternalBleeding16"
    lab = raw.frame["label"].to_numpy()
    assert lab.sum() == 10 and lab[2500] == 1 and lab[2509] == 1 and lab[2499] == 0 and lab[2510] == 0


def test_ucr_bad_name_is_clear(tmp_path):
    path = tmp_path / "series.txt"
    path.write_text("1\n2\n3\n")
    with pytest.raises(InputError, match="UCR_Anomaly"):
        load(data_params("ucr", path), seed=0)


def test_tsbad_train_length_from_name(tmp_path):
    path = tmp_path / "001_NAB_id_1_Facility_tr_300_1st_400.csv"
    rng = np.random.default_rng(2)
    lab = np.zeros(600, dtype=int)
    lab[400:420] = 1
    pd.DataFrame({"Data": rng.random(600), "Data2": rng.random(600), "Label": lab}).to_csv(path, index=False)
    raw = load(data_params("tsbad", path), seed=0)
    assert raw.train_end == 300
    assert list(raw.frame.columns[:3]) == ["timestamp", "Data", "Data2"]
    assert raw.frame["label"].sum() == 20


def test_cicddos_orders_flows_and_drops_identifiers(tmp_path):
    rows = 40
    ts = pd.date_range("2018-12-01 10:00", periods=rows, freq="s")
    order = np.random.default_rng(3).permutation(rows)
    df = pd.DataFrame({
        "Unnamed: 0": range(rows), "Flow ID": ["f"] * rows, " Source IP": ["1.2.3.4"] * rows,
        " Timestamp": ts[order].astype(str), " Flow Duration": order.astype(float),
        "Flow Bytes/s": np.where(order == 5, np.inf, 1.0),
        " Label": np.where(order >= 30, "DrDoS_DNS", "BENIGN"),
    })  # fmt: skip
    df.to_csv(tmp_path / "DrDoS_DNS.csv", index=False)
    raw = load(data_params("cicddos", tmp_path / "DrDoS_DNS.csv"), seed=0)
    f = raw.frame
    assert f["timestamp"].is_monotonic_increasing
    assert f["Flow Duration"].tolist() == list(range(rows))  # ordered by time
    assert "Source IP" not in f.columns and "Flow ID" not in f.columns
    assert f["label"].tolist() == [0] * 30 + [1] * 10
    assert set(f["fault_type"].dropna()) == {"DrDoS_DNS"}
    assert np.isnan(f["Flow Bytes/s"].iloc[5])  # Infinity becomes a gap, filled by preprocess


def nab_folder(tmp_path, windows):
    root = tmp_path / "nab"
    (root / "realX").mkdir(parents=True)
    (root / "labels").mkdir()
    ts = pd.date_range("2014-02-14 14:30", periods=400, freq="5min")
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": np.arange(400.0)}).to_csv(
        root / "realX" / "cpu.csv", index=False
    )
    (root / "labels" / "combined_windows.json").write_text(__import__("json").dumps(windows))
    return root / "realX" / "cpu.csv"


def test_nab_labels_the_steps_inside_its_windows_ends_included(tmp_path):
    path = nab_folder(tmp_path, {"realX/cpu.csv": [["2014-02-14 16:00:00.000000", "2014-02-14 17:00:00.000000"]]})
    raw = load(data_params("nab", path), seed=0)
    lab = raw.frame["label"].to_numpy()
    # 16:00 is row 18 (90 minutes after 14:30), 17:00 row 30: both ends inside, 13 steps
    assert lab.sum() == 13 and lab[18] == 1 and lab[30] == 1 and lab[17] == 0 and lab[31] == 0
    assert list(raw.frame.columns[:2]) == ["timestamp", "value"] and raw.source == "nab"


def test_the_shipped_nab_series_load_with_their_windows():
    from tests.conftest import ROOT

    path = ROOT / "data/raw/nab/realKnownCause/machine_temperature_system_failure.csv"
    raw = load(data_params("nab", path), seed=0)
    from momentad.preprocess import events

    assert len(events(raw.frame["label"].to_numpy())) == 4 and raw.info["windows"] == 4


@pytest.mark.parametrize("windows, message", [
    ({}, "cpu.csv: no entry 'realX/cpu.csv' in"),
    ({"realX/cpu.csv": [["2015-01-01 00:00:00", "2015-01-02 00:00:00"]]},
     "cpu.csv: NAB window 1 [2015-01-01 00:00:00, 2015-01-02 00:00:00] lies outside the file's times"),
    ({"realX/cpu.csv": [["soon", "later"]]}, "window 1 of 'realX/cpu.csv' is not [start, end] times"),
])  # fmt: skip
def test_nab_windows_that_do_not_fit_are_one_line(tmp_path, windows, message):
    path = nab_folder(tmp_path, windows)
    with pytest.raises(InputError, match=re.escape(message)):
        load(data_params("nab", path), seed=0)


@pytest.mark.parametrize("late", ["float", "first_empty", "bad_row"])
def test_a_csv_read_block_by_block_equals_the_whole_file_read(tmp_path, monkeypatch, late):
    """Large CSVs are read block by block (memory of about the table); where a later block
    does not fit the types of the first (integers, then a fraction; a column empty at first)
    the whole-file reader decides, so the table is the one pandas reads, or the error is."""
    from momentad.loaders import _common

    monkeypatch.setattr(_common, "BLOCK_BYTES", 1 << 10)  # many blocks from a small file
    n = 2000
    frame = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="min").astype(str),
                          "cpu": np.arange(n) % 7, "mem": np.linspace(0, 1, n), "label": np.zeros(n, int)})  # fmt: skip
    frame["cpu"] = frame["cpu"].astype(float)
    if late == "float":
        frame.loc[n - 5, "cpu"] = 1.5
    frame["disk"] = np.where(np.arange(n) < 500, np.nan, np.arange(n) / 3) if late == "first_empty" else 1.0
    path = tmp_path / "kpis.csv"
    text = frame.to_csv(index=False).replace(".0,", ",").replace(".0\n", "\n")  # integers as an exporter writes them
    if late == "bad_row":
        text += "2024-01-02 10:00:00,1,2\n"
    path.write_text(text)
    if late == "bad_row":
        with pytest.raises(InputError, match=r"kpis.csv: not a readable CSV \(CSV parse error: Expected 5 columns"):
            _common.read_csv(path)
        return
    got = _common.read_csv(path)
    want = pd.read_csv(path)
    kpis = ["cpu", "mem", "disk"]
    np.testing.assert_allclose(got[kpis].to_numpy(float), want[kpis].to_numpy(float))
    assert got["cpu"].iloc[n - 5] == (1.5 if late == "float" else (n - 5) % 7)
