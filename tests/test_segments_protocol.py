"""Real-data readiness: gaps split the series into segments no window or trailing feature
crosses, timestamp splits, masked anomalous steps, the TSB-AD protocol, and benchmark-format
files (UCR, TSB-AD-U, TSB-AD-M) running with only data.source and data.path."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from stages.detect import app as detect_app
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app

from momentad import config
from momentad.data import Split
from momentad.detectors.registry import detector_class, make, names
from momentad.errors import NotRun
from momentad.metrics import find_period
from momentad.windows import padded_windows, per_segment, segment_windows, window_index
from tests.conftest import ROOT, small_params, write_params

BENCH = ROOT / "tests" / "data" / "benchmarks"


def two_segment_split(rng, n1=300, n2=200, channels=3, labels=True) -> Split:
    """A split whose rows [0, n1) and [n1, n1+n2) are separate segments (a time gap between)."""
    n = n1 + n2
    values = rng.normal(size=(n, channels)).astype(np.float32)
    frame = pd.DataFrame(values, columns=[f"k{i}" for i in range(channels)])
    frame["timestamp"] = np.r_[np.arange(n1), np.arange(n2) + n1 + 1000]
    lab = np.zeros(n, np.int8)
    if labels:
        lab[[i for i in (10, 11, 40, 41, 42, 250, 251, 400, 401) if i < n]] = 1
    frame["label"] = lab
    frame["fault_type"] = pd.Series([None] * n, dtype="string")
    frame["segment"] = np.r_[np.zeros(n1, np.int32), np.ones(n2, np.int32)]
    return Split("test", frame, [f"k{i}" for i in range(channels)], window_index(frame, 64, 64))


def test_window_helpers_never_cross_a_segment():
    bounds = [(0, 100), (100, 130), (130, 300)]
    st, sp = segment_windows(bounds, 64, 32)
    for a, b in zip(st, sp, strict=True):
        assert any(lo <= a and b <= hi for lo, hi in bounds)
    assert [30] == [b - a for a, b in zip(st, sp, strict=True) if b - a != 64]  # the short segment
    st, _ = segment_windows(bounds, 64, 32, short=False)
    assert not any(100 <= a < 130 for a in st)
    idx, real = padded_windows(bounds, 64, 32)
    short = idx[~real.all(axis=1)]
    assert len(short) == 1 and set(short[0]) == set(range(100, 130))  # edge-padded with row 100
    covered = np.zeros(300, bool)
    covered[idx[real]] = True
    assert covered.all()
    # causal features restart at a segment start
    out = per_segment(np.arange(300.0)[:, None], bounds, lambda v: v - v[0])
    assert out[100, 0] == 0 and out[130, 0] == 0 and out[99, 0] == 99


TRAINED = [m for m in names() if m != "moment"]  # MOMENT: test_methods.py (its own windows)


@pytest.mark.parametrize("method", TRAINED)
def test_no_method_carries_information_across_a_gap(method):
    # scores of the second segment do not depend on the first segment's values
    params = small_params()[method]
    opts = {**params, **({"epochs": 1} if "epochs" in params else {})}
    rng = np.random.default_rng(0)
    train = two_segment_split(rng)
    det = make(method, seed=0, **opts)
    det.fit(train if det.trains else None, X_val=two_segment_split(rng))
    test = two_segment_split(np.random.default_rng(1))
    a = det.score(test)
    changed = test.frame.copy()
    changed.loc[:299, test.features] += 50.0  # a huge shift in segment 0 only
    b = det.score(Split("test", changed, test.features, test.index))
    np.testing.assert_array_equal(a[300:], b[300:])
    assert not np.array_equal(a[:300], b[:300])


@pytest.mark.parametrize("method", TRAINED)
def test_a_validation_split_shorter_than_the_window_is_fine(method):
    # Nezha's default val split is 45 rows, shorter than every baseline's 64-step window
    params = small_params()[method]
    opts = {**params, **({"epochs": 1} if "epochs" in params else {})}
    train = two_segment_split(np.random.default_rng(0))
    short = two_segment_split(np.random.default_rng(1), 30, 15)
    det = make(method, seed=0, **opts)
    scores = det.fit(train if det.trains else None, X_val=short).score(short)
    assert scores.shape == (45,) and np.isfinite(scores).all()


def test_autoencoder_masks_anomalous_steps_only_when_asked():
    rng = np.random.default_rng(0)
    train = two_segment_split(rng, 150, 150, labels=False)
    lab = np.zeros(300, np.int8)
    lab[::50] = 1  # every 64-step window holds an anomaly
    train.frame["label"] = lab
    opts = {**small_params()["lstm_ae"], "epochs": 1}
    det = make("lstm_ae", seed=0, **opts)
    with pytest.raises(NotRun, match="no anomaly-free window"):
        det.fit(train)
    from momentad.config import build
    from momentad.detectors.base import RunContext

    cls = detector_class("lstm_ae")
    det = cls(build(cls.Params, opts, "lstm_ae"), RunContext(mask_anomalies=True))
    x, m = det._windows(train, 16, train=True)
    idx, real = padded_windows(train.segments, 64, 16)
    assert len(x) == int(real.all(axis=1).sum()) and (m == 0).sum() > 0
    np.testing.assert_array_equal(m, (lab[idx[real.all(axis=1)]] == 0).astype(np.float32))
    assert det.fit(train).score(train).shape == (300,)


def test_timestamp_split_errors_name_the_key(runner, workdir):
    pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=400, freq="min"), "cpu": np.arange(400.0) % 7,
                  "label": (np.arange(400) % 50 == 0).astype(int)}).to_csv("d.csv", index=False)  # fmt: skip
    for split, message in [
        ({"train_end": "2024-02-01"}, "data.split.train_end/val_end leave a split empty"),
        ({"train_end": "soon"}, "data.split.train_end='soon' is not a time"),
        ({"val_end": "2024-01-01 03:00"}, "data.split.val_end is set without data.split.train_end"),
    ]:
        write_params(workdir, small_params(**{"data.source": "csv", "data.path": "d.csv",
                                              **{f"data.split.{k}": v for k, v in split.items()}}))  # fmt: skip
        result = runner.invoke(preprocess_app, [])
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not (workdir / "data/processed").exists()


def test_tsbad_protocol_needs_a_benchmark_file():
    from momentad import loaders

    cfg = config.parse(small_params(**{"evaluate.protocol": "tsbad"}))
    with pytest.raises(Exception, match="evaluate.protocol=tsbad needs a file with its own train part"):
        loaders.configure(cfg.data, cfg.evaluate.protocol)


def _run(runner, workdir, method, budget, **overrides):
    write_params(workdir, small_params(**overrides))
    for app, args in ((preprocess_app, []), (window_app, []), (detect_app, [method])):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    return json.loads((workdir / f"reports/methods/{method}.json").read_text()), budget


@pytest.mark.parametrize("protocol", ["default", "tsbad"])
def test_tsbad_m_file_both_protocols(runner, workdir, protocol):
    # the TSB-AD-M layout with a constant channel added: dropped by default, kept under tsbad,
    # and tsbad scores and measures the whole series with the whole series' period as VUS window
    src = pd.read_csv(BENCH / "902_DaphnetECG_id_1_Composite_tr_1500_1st_1560.csv")
    src.insert(1, "flat", 1.0)
    name = "902_DaphnetECG_id_1_Composite_tr_1500_1st_1560.csv"
    src.to_csv(workdir / name, index=False)
    top, _ = _run(runner, workdir, "isolation_forest", "full", **{"data.source": "tsbad", "data.path": name,
                                                                  "evaluate.protocol": protocol})  # fmt: skip
    doc = top["budgets"]["full"]
    schema = json.loads((workdir / "data/processed/schema.json").read_text())
    scores = pd.read_parquet(workdir / "data/scores/isolation_forest/full.parquet")
    assert schema["split_defined_by"] == "format" and schema["splits"]["train"]["rows"] == 1500
    assert top["protocol"] == protocol
    if protocol == "tsbad":
        assert "flat" in schema["features"] and len(scores) == len(src) and scores["label"].sum() == 300
        assert doc["sliding_window"] == find_period(src["ecg"].to_numpy())
    else:
        assert "flat" not in schema["features"] and len(scores) == schema["splits"]["test"]["rows"] < len(src)
        assert schema["splits"]["val"]["events"] >= 1 and schema["splits"]["test"]["events"] >= 1


def test_ucr_file_runs_with_defaults(runner, workdir):
    # one anomaly: it lands in test, val has none, so val_best_f1 falls back to a label-free
    # rule (said in the outputs) instead of failing the stage
    name = "135_UCR_Anomaly_InternalBleeding16_1200_4187_4199.txt"
    shutil.copy(BENCH / name, workdir / name)
    top, _ = _run(runner, workdir, "isolation_forest", "full", **{"data.source": "ucr", "data.path": name})
    doc = top["budgets"]["full"]
    assert doc["threshold"]["rule"] == "percentile" and doc["threshold"]["asked"] == "val_best_f1"
    assert 0 < doc["test"]["vus_pr"] <= 1


def test_find_period_equals_tsb_ads_find_length_rank():
    ref = json.loads((BENCH / "find_length_rank.json").read_text())["values"]
    m = pd.read_csv(BENCH / "902_DaphnetECG_id_1_Composite_tr_1500_1st_1560.csv")
    t = np.arange(5000)
    series = {
        "ucr135": np.loadtxt(BENCH / "135_UCR_Anomaly_InternalBleeding16_1200_4187_4199.txt"),
        "ecg901": pd.read_csv(BENCH / "901_ECG_id_1_Medical_tr_1500_1st_1560.csv")["Data"].to_numpy(),
        "daphnet902_ch0": m.iloc[:, 0].to_numpy(),
        "daphnet902_ch1": m.iloc[:, 1].to_numpy(),
        "sine50": np.sin(2 * np.pi * t / 50),
        "sine1440": np.sin(2 * np.pi * t / 1440),
    }
    assert {k: find_period(v) for k, v in series.items()} == ref
