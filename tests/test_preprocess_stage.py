"""The preprocess stage through its real CLI, on small synthetic data and on bad input."""

import json

import numpy as np
import pandas as pd
import pytest
from stages.preprocess import app

from tests.conftest import small_params, write_params


def run(runner, *args):
    return runner.invoke(app, list(args))


def test_outputs_scaled_on_train_only(runner, workdir):
    result = run(runner)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("preprocess: synthetic")
    out = workdir / "data" / "processed"
    splits = {k: pd.read_parquet(out / f"{k}.parquet") for k in ("train", "val", "test")}
    schema = json.loads((out / "schema.json").read_text())
    assert schema["synthetic"] is True and schema["source"] == "synthetic"
    assert schema["n_features"] == 8 * 2 + 6
    # chronological, contiguous, no overlap
    assert splits["train"]["timestamp"].max() < splits["val"]["timestamp"].min()
    assert splits["val"]["timestamp"].max() < splits["test"]["timestamp"].min()
    assert sum(len(s) for s in splits.values()) == 6000
    assert [len(s) for s in splits.values()] == [4200, 900, 900]
    feats = schema["features"]
    train = splits["train"][feats]
    np.testing.assert_allclose(train.mean().to_numpy(), 0, atol=1e-4)
    np.testing.assert_allclose(train.std(ddof=0).to_numpy(), 1, atol=1e-3)
    # the val split is *not* standardised on itself: its statistics were not used
    assert np.abs(splits["val"][feats].mean().to_numpy()).max() > 0.05
    assert all(splits["test"][c].dtype == np.float32 for c in feats)
    for k, info in schema["splits"].items():
        assert info["anomalous_timesteps"] > 0 and len(info["fault_types"]) == 14, k
    assert set(schema["scaler"]) == {"method", "fitted_on", "center", "scale", "impute"}
    assert schema["scaler"]["fitted_on"] == "train"


def test_same_seed_identical_outputs(runner, workdir):
    assert run(runner, "--out", "a").exit_code == 0
    assert run(runner, "--out", "b").exit_code == 0
    for k in ("train", "val", "test"):
        pd.testing.assert_frame_equal(pd.read_parquet(f"a/{k}.parquet"), pd.read_parquet(f"b/{k}.parquet"))


def _tt_csv(path, n=400, **cols):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="1min").astype(str),
                       "cpu": rng.random(n), "latency": rng.random(n), "flat": np.ones(n),
                       "label": (np.arange(n) % 50 == 0).astype(int)})  # fmt: skip
    for k, v in cols.items():
        df[k] = v
    df.to_csv(path, index=False)
    return df


def test_trainticket_gaps_constant_columns_and_robust_scaler(runner, workdir):
    n = 400
    gappy = np.random.default_rng(1).random(n)
    gappy[10:12] = np.nan  # short gap: forward filled
    gappy[100:120] = np.nan  # long gap: 5 filled, 15 imputed
    _tt_csv(workdir / "data.csv", gappy=gappy)
    write_params(workdir, small_params(**{"data.source": "csv", "data.path": "data.csv",
                                          "data.scaler": "robust"}))  # fmt: skip
    result = run(runner)
    assert result.exit_code == 0, result.output
    schema = json.loads((workdir / "data/processed/schema.json").read_text())
    assert schema["dropped_columns"]["constant_in_train"] == ["flat"]
    assert schema["features"] == ["cpu", "latency", "gappy"]
    q = schema["quality"]
    assert (q["missing_values"], q["forward_filled"], q["gaps_left_after_ffill"]) == (22, 7, 15)
    assert schema["scaler"]["method"] == "robust"
    train = pd.read_parquet(workdir / "data/processed/train.parquet")
    assert abs(float(train["cpu"].median())) < 1e-6
    assert not train[schema["features"]].isna().any().any()


BAD_INPUTS = {
    "missing file": ({"data.path": "nope.csv"}, None, "nope.csv: file not found"),
    "empty file": ({}, "", "file is empty"),
    "no timestamp": ({}, "t,cpu,label\n1,2,0\n", "column 'timestamp' not found"),
    "no label": ({}, "timestamp,cpu\n1,2\n", "column 'label' not found"),
    "non-numeric kpi": ({}, "timestamp,cpu,label\n1,2,0\n2,high,0\n3,4,0\n", "column 'cpu' is not numeric"),
    "duplicate ts": ({}, "timestamp,cpu,label\n1,2,0\n2,3,0\n2,4,0\n", "repeats 2 at row 2"),
    "decreasing ts": ({}, "timestamp,cpu,label\n1,2,0\n3,3,0\n2,4,0\n", "decreases at row 2"),
    "all-nan column": ({}, "timestamp,cpu,dead,label\n1,2,,0\n2,3,,0\n3,4,,0\n", "column 'dead' is entirely empty"),
    "bad label": ({}, "timestamp,cpu,label\n1,2,0\n2,3,yes\n3,4,0\n", "column 'label' must be 0/1"),
    "split sum": ({"data.split": {"train": 0.8, "val": 0.15, "test": 0.15}}, "ok", "data.split fractions sum"),
    "bad scaler": ({"data.scaler": "minmax"}, "ok", "data.scaler must be one of"),
    "bad source": ({"data.source": "kafka"}, "ok", "data.source must be one of 'cicddos', 'csv'"),
    "bad synthetic knob": ({"data.source": "synthetic", "data.synthetic.services": 1}, None,
                           "data.synthetic.services=1"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_bad_input_one_clear_line_no_output(runner, workdir, case):
    overrides, content, message = BAD_INPUTS[case]
    if content == "ok":
        _tt_csv(workdir / "data.csv")
    elif content is not None:
        (workdir / "data.csv").write_text(content)
    params = {"data.source": "csv", "data.path": "data.csv", **overrides}
    write_params(workdir, small_params(**params))
    result = run(runner)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0]
    assert not (workdir / "data" / "processed").exists()
    assert not list((workdir / "data").glob(".processed.tmp-*")) if (workdir / "data").exists() else True


def test_failure_keeps_previous_output_intact(runner, workdir):
    assert run(runner).exit_code == 0
    before = (workdir / "data/processed/train.parquet").read_bytes()
    write_params(workdir, small_params(**{"data.scaler": "minmax"}))
    assert run(runner).exit_code == 2
    assert (workdir / "data/processed/train.parquet").read_bytes() == before
    assert not list((workdir / "data").glob(".processed.tmp-*"))


def test_help_explains_every_option(runner):
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for option in ("--params", "--out", "--verbose"):
        assert option in result.output
    assert "fitted on train" in " ".join(result.output.split())


@pytest.mark.parametrize("drop", [True, False])
def test_rounding_flat_kpi_is_constant_and_drop_constant_is_a_param(runner, workdir, drop):
    # a replica average that is constant up to float rounding (std 3e-17, as Nezha's
    # ts-ui-dashboard_MemoryUsageRate) must not be scaled by its std: its test values would
    # become ~1e14 and swamp every score
    n = 600
    rng = np.random.default_rng(0)
    flat = np.where(np.arange(n) % 2, 0.23359375, 0.23359375 + 5.551115123125783e-17)
    flat[450:] = 0.25  # it moves on test
    pd.DataFrame({"timestamp": np.arange(n), "cpu": rng.random(n), "flat": flat,
                  "label": (np.arange(n) % 50 == 0).astype(int)}).to_csv(workdir / "d.csv", index=False)  # fmt: skip
    write_params(workdir, small_params(**{"data.source": "csv", "data.path": "d.csv",
                                          "data.drop_constant": drop}))  # fmt: skip
    result = run(runner)
    assert result.exit_code == 0, result.output
    schema = json.loads((workdir / "data/processed/schema.json").read_text())
    test = pd.read_parquet(workdir / "data/processed/test.parquet")
    if drop:
        assert schema["dropped_columns"]["constant_in_train"] == ["flat"] and "flat" not in test.columns
    else:
        assert schema["constant_in_train_kept"] == ["flat"] and schema["scaler"]["scale"]["flat"] == 1.0
        assert test["flat"].abs().max() < 1.0


def test_repeated_rows_with_missing_text_cells_are_compared_not_refused():
    """A text column holding pd.NA (a label or fault-type column with gaps, as the Microsoft series
    have) compares cell by cell: `pd.NA == x` has no truth value and used to raise TypeError."""
    from momentad.loaders import RawData
    from momentad.preprocess import drop_repeated_rows

    frame = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:00", "2024-01-01 00:01",
                                                       "2024-01-01 00:02", "2024-01-01 00:02"]),
                          "cpu": [1.0, 1.0, 2.0, 3.0, 3.0],
                          "fault_type": pd.array([pd.NA, pd.NA, "oom", pd.NA, "oom"], dtype=object)})  # fmt: skip
    out, dropped = drop_repeated_rows(RawData(frame=frame, source="csv", name="t"))
    assert dropped == 1 and len(out.frame) == 4  # the first row's exact copy goes; a differing label stays
