"""The window stage through its real CLI, and materialising windows for the model."""

import json

import numpy as np
import pandas as pd
import pytest
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app

from momentad.windows import CONTEXT_LENGTH, materialize, starts
from tests.conftest import ROOT, small_params, write_params


@pytest.fixture
def processed(runner, workdir):
    assert runner.invoke(preprocess_app, []).exit_code == 0
    return workdir / "data" / "processed"


def test_windows_cover_each_split_without_crossing(runner, workdir, processed):
    result = runner.invoke(window_app, [])
    assert result.exit_code == 0, result.output
    out = workdir / "data" / "windows"
    meta = json.loads((out / "windows.json").read_text())
    assert meta["context_length"] == CONTEXT_LENGTH and meta["padding"]["steps"] == CONTEXT_LENGTH - meta["length"]
    assert meta["padding"]["steps"] == CONTEXT_LENGTH - 128
    for name, stride in (("train", 32), ("val", 128), ("test", 128)):
        split = pd.read_parquet(processed / f"{name}.parquet")
        idx = pd.read_parquet(out / f"{name}.parquet")
        assert meta["windows"][name] == len(idx)
        assert (idx["stop"] - idx["start"] == 128).all()
        assert idx["start"].min() == 0 and idx["stop"].max() == len(split)  # inside the split
        covered = np.zeros(len(split), bool)
        for a, b in zip(idx["start"], idx["stop"], strict=True):
            covered[a:b] = True
        assert covered.all()
        assert (np.diff(idx["start"])[:-1] == stride).all()
        # window labels agree with the per-timestep labels
        lab = split["label"].to_numpy()
        for row in idx.itertuples():
            frac = lab[row.start : row.stop].mean()
            assert row.any_anomaly == (frac > 0)
            assert row.anomaly_fraction == pytest.approx(frac, abs=1e-6)
            want = sorted(set(split["fault_type"].iloc[row.start : row.stop].dropna()))
            assert list(row.fault_types) == want
            assert row.start_timestamp == split["timestamp"].iloc[row.start]


def test_index_size_does_not_grow_with_values(runner, workdir, processed):
    # the index stores row ranges, not copies of the windows
    assert runner.invoke(window_app, []).exit_code == 0
    idx = pd.read_parquet(workdir / "data/windows/train.parquet")
    assert "values" not in idx.columns and len(idx.columns) == 8


def test_materialize_pads_left_and_masks():
    values = np.arange(40, dtype=np.float32).reshape(20, 2)
    idx = pd.DataFrame({"start": [0, 10], "stop": [8, 18]})
    x, mask = materialize(values, idx, context=16)
    assert x.shape == (2, 2, 16) and mask.shape == (2, 16)
    assert mask[0].tolist() == [0] * 8 + [1] * 8
    np.testing.assert_array_equal(x[1, 0, 8:], values[10:18, 0])
    np.testing.assert_array_equal(x[1, 1, 8:], values[10:18, 1])
    assert (x[:, :, :8] == 0).all()


def test_materialize_window_256_for_moment_context(runner, workdir):
    write_params(workdir, small_params(**{"window.length": 256, "window.eval_stride": 256}))
    assert runner.invoke(preprocess_app, []).exit_code == 0
    assert runner.invoke(window_app, []).exit_code == 0
    split = pd.read_parquet(workdir / "data/processed/test.parquet")
    idx = pd.read_parquet(workdir / "data/windows/test.parquet")
    feats = [c for c in split.columns if c not in ("timestamp", "label", "fault_type", "root_cause")]
    x, mask = materialize(split[feats].to_numpy(), idx)
    assert x.shape == (len(idx), len(feats), 512)
    assert (mask.sum(axis=1) == 256).all() and (mask[:, :256] == 0).all()


def test_starts_end_aligned():
    assert starts(10, 4, 4).tolist() == [0, 4, 6]
    assert starts(8, 4, 4).tolist() == [0, 4]
    assert starts(4, 4, 1).tolist() == [0]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"window.length": 1024}, "window.length=1024 is out of range"),
        ({"window.train_stride": 0}, "window.train_stride=0 is out of range"),
        ({"window.patch_length": 8}, "window.patch_length is not a known key"),  # MOMENT's patch: its config
    ],
)
def test_bad_window_params_clear_error_no_output(runner, workdir, overrides, message):
    data_only = {k: v for k, v in overrides.items() if k.startswith("data.")}
    write_params(workdir, small_params(**data_only))
    assert runner.invoke(preprocess_app, []).exit_code == 0
    write_params(workdir, small_params(**overrides))
    result = runner.invoke(window_app, [])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert not (workdir / "data/windows").exists()


def test_train_shorter_than_one_window(runner, workdir):
    n = 600
    pd.DataFrame({"timestamp": np.arange(n), "cpu": np.random.default_rng(0).random(n),
                  "label": np.arange(n) % 40 == 0}).astype({"label": int}).to_csv("d.csv", index=False)  # fmt: skip
    write_params(workdir, small_params(**{"data.source": "csv", "data.path": "d.csv",
                                          "window.length": 512}))  # fmt: skip
    assert runner.invoke(preprocess_app, []).exit_code == 0
    result = runner.invoke(window_app, [])
    assert result.exit_code == 2 and not (workdir / "data/windows").exists()
    assert result.output.strip() == (
        "error: data/processed/train.parquet: no stretch of the train split without a time gap has "
        "window.length=512 rows (longest: 420); lower window.length or give the train split more rows "
        "(a later data.split.train_end)"
    )


def test_short_val_and_test_get_one_shorter_masked_window(runner, workdir):
    # 3,000 rows: val and test have 450 rows each, fewer than window.length=512; they are
    # scored with one 450-step window (left-padded, masked), train with full 512-step windows
    write_params(workdir, small_params(**{"window.length": 512, "data.synthetic.timesteps": 3000,
                                          "data.synthetic.fault_minutes": [2, 4]}))  # fmt: skip
    assert runner.invoke(preprocess_app, []).exit_code == 0
    result = runner.invoke(window_app, [])
    assert result.exit_code == 0, result.output
    for name in ("val", "test"):
        split = pd.read_parquet(workdir / f"data/processed/{name}.parquet")
        idx = pd.read_parquet(workdir / f"data/windows/{name}.parquet")
        assert len(split) == 450 and idx[["start", "stop"]].values.tolist() == [[0, 450]]
        feats = [c for c in split.columns if c not in ("timestamp", "label", "fault_type", "root_cause", "segment")]
        x, mask = materialize(split[feats].to_numpy(), idx)
        assert mask.sum() == 450 and (mask[0, :62] == 0).all()
        np.testing.assert_array_equal(x[0, :, 62:], split[feats].to_numpy().T)
    train = pd.read_parquet(workdir / "data/windows/train.parquet")
    assert ((train["stop"] - train["start"]) == 512).all()


def test_windows_stay_inside_segments(runner, workdir):
    # two days of one-minute data with a 10-hour gap: no window may cross the gap, each day is
    # covered, and the day shorter than a window gets one short window
    rng = np.random.default_rng(0)
    day1 = pd.date_range("2023-01-29 08:00", periods=700, freq="min")
    day2 = pd.date_range("2023-01-30 08:00", periods=300, freq="min")
    ts = day1.append(day2)
    label = np.zeros(len(ts), int)
    label[[650, 820, 950]] = 1
    pd.DataFrame({"timestamp": ts, "cpu": rng.random(len(ts)), "mem": rng.random(len(ts)), "label": label}).to_csv(
        "d.csv", index=False)  # fmt: skip
    write_params(workdir, small_params(**{"data.source": "csv", "data.path": "d.csv",
                                          "data.split.train_end": "2023-01-29 18:00",
                                          "data.split.val_end": "2023-01-30 09:00"}))  # fmt: skip
    assert runner.invoke(preprocess_app, []).exit_code == 0
    schema = json.loads((workdir / "data/processed/schema.json").read_text())
    assert schema["segments"] == {"count": 2, "starts": ["2023-01-30 08:00:00"]}
    assert schema["split_defined_by"] == "data.split.train_end/val_end"
    assert {k: v["rows"] for k, v in schema["splits"].items()} == {"train": 600, "val": 160, "test": 240}
    assert schema["splits"]["val"]["segments"] == 2
    assert runner.invoke(window_app, []).exit_code == 0
    val = pd.read_parquet(workdir / "data/processed/val.parquet")
    idx = pd.read_parquet(workdir / "data/windows/val.parquet")
    seg = val["segment"].to_numpy()
    # day 1's last 100 rows and day 2's first 60: windows [0,100) and [100,160), never across
    assert idx[["start", "stop"]].values.tolist() == [[0, 100], [100, 160]]
    for a, b in zip(idx["start"], idx["stop"], strict=True):
        assert len(set(seg[a:b])) == 1


def test_missing_processed_input(runner, workdir):
    result = runner.invoke(window_app, [])
    assert result.exit_code == 2
    assert "train.parquet: not found; run `dvc repro preprocess` first" in result.output


def test_the_shipped_defaults_auto_windows_and_the_default_split(runner, workdir):
    """params.yaml's own window section (length and train stride `auto`, eval stride null) and
    split (0.6 / 0.1 / 0.3), which the other tests override: the window length follows the train
    split and the model stages read what the window stage resolved."""
    import yaml
    from stages.detect import app as detect_app

    shipped = yaml.safe_load((ROOT / "params.yaml").read_text())
    p = small_params(**{"methods": ["moment", "moving_variance"], "budget.sizes": [8]})
    p["window"], p["data"]["split"] = shipped["window"], shipped["data"]["split"]
    write_params(workdir, p)
    assert runner.invoke(preprocess_app, []).exit_code == 0
    schema = json.loads((workdir / "data/processed/schema.json").read_text())
    assert {k: v["rows"] for k, v in schema["splits"].items()} == {"train": 3600, "val": 600, "test": 1800}
    out = runner.invoke(window_app, [])
    assert out.exit_code == 0, out.output
    meta = json.loads((workdir / "data/windows/windows.json").read_text())
    assert meta["asked"] == {"length": "auto", "train_stride": "auto", "eval_stride": None}
    # the longest power of two the 3,600 train rows hold 8 times over: 256; stride 256 / 64
    assert meta["length"] == 256 and meta["strides"] == {"train": 4, "val": 256, "test": 256}
    assert meta["windows"] == {"train": 837, "val": 3, "test": 8}  # test: 7 non-overlapping + one end-aligned
    for method in ("moment", "moving_variance"):
        result = runner.invoke(detect_app, [method, "--no-progress"])
        assert result.exit_code == 0, result.output
    doc = json.loads((workdir / "reports/methods/moment.json").read_text())
    assert doc["budgets"]["8"]["per_draw"][0]["train_windows"] == 8
    assert doc["budgets"]["8"]["per_draw"][0]["train_rows"] == 256 + 7 * 4  # 8 windows of 256, 4 apart
