"""The six baselines: one interface, each through its stage, and on a real series (aeon)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from stages.detect import app as detect_app
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app
from tests.conftest import ROOT, small_params, write_params

from momentad import config
from momentad.data import Split, load_splits
from momentad.detectors import Detector
from momentad.detectors.autoencoder import feature_scaled_weights, rf_weights
from momentad.detectors.features import rolling_features
from momentad.detectors.registry import baseline_names, make
from momentad.errors import InputError
from momentad.evaluate import evaluate
from momentad.metrics import compute_metrics, find_period

METHODS = baseline_names()
EV = config.EvaluateParams(threshold="val_best_f1", percentile=99.0, k=3.0, iqr_factor=1.5, sliding_window="auto")
EV_PCT = config.EvaluateParams(threshold="percentile", percentile=99.0, k=3.0, iqr_factor=1.5, sliding_window="auto")


def prepare(runner, workdir, **overrides):
    params = small_params(**overrides)
    write_params(workdir, params)
    assert runner.invoke(preprocess_app, []).exit_code == 0
    assert runner.invoke(window_app, []).exit_code == 0
    return params


def test_interface_conformance_and_determinism(runner, workdir):
    params = prepare(runner, workdir)
    splits, _, _ = load_splits()
    for method in METHODS:
        opts = {**params["baselines"][method], **({"epochs": 1} if "epochs" in params["baselines"][method] else {})}
        a = make(method, seed=1, **opts)
        assert isinstance(a, Detector)
        s1 = a.fit(splits["train"], X_val=splits["val"]).score(splits["test"])
        s2 = make(method, seed=1, **opts).fit(splits["train"], X_val=splits["val"]).score(splits["test"])
        assert s1.shape == (len(splits["test"]),) and s1.dtype == np.float64, method
        np.testing.assert_array_equal(s1, s2, err_msg=f"{method} is not deterministic for a seed")


def test_loss_strategies_weigh_kpis_as_specified(runner, workdir):
    errors = np.array([0.5, 1.0, 2.0, 4.0])
    w = feature_scaled_weights(errors)
    assert w.mean() == pytest.approx(1) and np.allclose(w * errors, (w * errors)[0])  # w ~ 1/difficulty
    imp = np.array([0.0, 0.1, 0.3, 0.6])
    r = rf_weights(imp)
    assert r.mean() == pytest.approx(1) and np.all(np.diff(r) > 0) and r[0] > 0  # floor keeps every KPI
    params = prepare(runner, workdir)
    splits, _, _ = load_splits()
    got = {}
    for loss in ("mse", "feature_scaled", "rf_weighted"):
        det = make("lstm_ae", **{**params["baselines"]["lstm_ae"], "loss": loss})
        got[loss] = det.fit(splits["train"], X_val=splits["val"]).weights_
    assert np.all(got["mse"] == 1)
    assert got["feature_scaled"].std() > 0 and got["rf_weighted"].std() > 0
    assert not np.allclose(got["feature_scaled"], got["rf_weighted"])


def test_rolling_features_use_no_future_values():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 3))
    base = rolling_features(values, [10, 30])
    changed = values.copy()
    changed[151:] += 100 * rng.normal(size=(149, 3))
    after = rolling_features(changed, [10, 30])
    pd.testing.assert_frame_equal(base.iloc[:151], after.iloc[:151])
    assert not np.allclose(base.iloc[151:].to_numpy(), after.iloc[151:].to_numpy())
    # the slope is a real least-squares slope
    ramp = rolling_features(np.arange(50, dtype=float)[:, None] * 2.0, [10], ("slope",))
    assert ramp.iloc[20, 0] == pytest.approx(2.0)


def test_degenerate_inputs_give_clear_messages(runner, workdir):
    prepare(runner, workdir)
    splits, _, _ = load_splits()
    val, test = splits["val"], splits["test"]
    flat = Split(test.name, test.frame.assign(**{c: 0.0 for c in test.features}), test.features, test.index)
    det = make("isolation_forest", window=16, n_estimators=20, max_samples=256, features="raw").fit(splits["train"])
    with pytest.raises(InputError, match="same score to every test timestep"):
        evaluate(val, det.score(val), flat, det.score(flat), EV, 16)
    calm = Split(val.name, val.frame.assign(label=0), val.features, val.index)
    # val_best_f1 needs validation anomalies: without them it falls back to a label-free rule
    # and says so, rather than failing the stage (a UCR file's one anomaly is in test)
    fell_back = evaluate(calm, det.score(calm), test, det.score(test), EV, 16)
    assert fell_back["threshold"]["rule"] == "percentile" and fell_back["threshold"]["asked"] == "val_best_f1"
    ok = evaluate(calm, det.score(calm), test, det.score(test), EV_PCT, 16)
    assert np.isfinite(list(ok["test"].values())).all() and "asked" not in ok["threshold"]
    assert ok["threshold"]["value"] == fell_back["threshold"]["value"]


def aeon_series(name: str) -> pd.DataFrame:
    """A CSV shipped inside the aeon wheel, read as data (aeon itself is never imported)."""
    spec = importlib.util.find_spec("aeon")
    if spec is None:
        pytest.fail("aeon (a test dependency in requirements.lock) is not installed; run `make test`")
    return pd.read_csv(Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name)


@pytest.mark.parametrize("method", ["isolation_forest", "lstm_ae"])
def test_real_ucr_series_beats_random(runner, workdir, method):
    full = aeon_series("KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv")
    anomaly = np.flatnonzero(full["is_anomaly"])
    path = workdir / f"135_UCR_Anomaly_InternalBleeding16_1200_{anomaly[0]}_{anomaly[-1] + 1}.txt"
    path.write_text("\n".join(f"{v:.5f}" for v in full["value"]))
    # one anomaly per UCR series: a short val split (no anomaly) and a percentile threshold
    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())["baselines"][method]
    prepare(runner, workdir, **{"data.source": "ucr", "data.path": str(path),
                                "data.split": {"train": 0.15, "val": 0.05, "test": 0.8},
                                "window.length": 256, "window.eval_stride": 256,
                                "evaluate.threshold": "percentile", f"baselines.{method}": defaults})  # fmt: skip
    result = runner.invoke(detect_app, [f"{method}_full", "--no-progress"])
    assert result.exit_code == 0, result.output
    doc = json.loads((workdir / f"reports/methods/{method}_full.json").read_text())
    test = pd.read_parquet(workdir / "data/processed/test.parquet")
    train = pd.read_parquet(workdir / "data/processed/train.parquet")
    window = find_period(train["value"].to_numpy())
    assert doc["sliding_window"] == window
    random = np.mean([compute_metrics(test["label"], np.random.default_rng(s).random(len(test)), window)["vus_pr"]
                      for s in range(3)])  # fmt: skip
    # InternalBleeding16's 12-step anomaly is subtle: TSB-AD reports VUS-PR well under 0.2 for
    # classic detectors on UCR; three times a random score's is a clear margin
    assert doc["test"]["vus_pr"] > 3 * random, (doc["test"]["vus_pr"], random)


def test_daphnet_excerpt_has_no_labels_and_is_refused(runner, workdir):
    d = aeon_series("Daphnet_S06R02E0/S06R02E0.csv")
    assert d["is_anomaly"].sum() == 0  # why docs/benchmarks.md reports no VUS-PR for it
    d.rename(columns={"is_anomaly": "label"}).to_csv(workdir / "daphnet.csv", index=False)
    prepare(runner, workdir, **{"data.source": "trainticket", "data.path": "daphnet.csv", "window.length": 256,
                                "window.eval_stride": 256})  # fmt: skip
    result = runner.invoke(detect_app, ["isolation_forest_full", "--no-progress"])
    assert result.exit_code == 2 and "the evaluated split has no labelled anomalies" in result.output


def test_pyod_style_api_on_arrays_and_frames():
    """fit(X) / decision_function(X) on plain arrays and DataFrames, as a notebook user would."""
    rng = np.random.default_rng(0)
    t = np.arange(3000)
    x = np.sin(t / 20)[:, None] + 0.05 * rng.normal(size=(3000, 3))
    test = x[2000:].copy()
    test[500:520] += 3.0  # an obvious level shift
    det = make("isolation_forest", window=8, n_estimators=50, max_samples=256, features="raw").fit(x[:2000])
    scores = det.decision_function(pd.DataFrame(test, columns=["a", "b", "c"]))
    assert scores.shape == (1000,) and scores.dtype == np.float64
    assert scores[505:520].mean() > np.percentile(scores, 90)
    ae = make("lstm_ae", window=32, train_stride=8, eval_stride=16, hidden=8, epochs=1, batch_size=32, lr=1e-3,
              patience=1, loss="mse").fit(x[:2000], X_val=x[2000:2400])  # fmt: skip
    assert ae.decision_function(test).shape == (1000,)
    with pytest.raises(InputError, match="X has 2 KPIs; the detector was fitted on 3"):
        det.decision_function(test[:, :2])
    with pytest.raises(InputError, match="baselines.isolation_forest.n_trees is not a known key"):
        make("isolation_forest", window=8, n_trees=5)
