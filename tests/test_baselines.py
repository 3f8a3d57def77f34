"""The classic detectors and one-liners: one interface, each through its stage, and on a real series (aeon)."""

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

from momentad import config
from momentad.data import Split, load_splits
from momentad.detectors.autoencoder import feature_scaled_weights, rf_weights
from momentad.detectors.base import Detector
from momentad.detectors.features import rolling_features
from momentad.detectors.registry import detector_class, make, names
from momentad.errors import InputError, NotRun
from momentad.evaluate import evaluate
from momentad.metrics import compute_metrics, find_period
from tests.conftest import ROOT, small_params, write_params

METHODS = [m for m in names() if m != "moment"]
EV = config.EvaluateParams(threshold="val_best_f1", percentile=99.0, k=3.0, iqr_factor=1.5, sliding_window="auto")
EV_PCT = config.EvaluateParams(threshold="percentile", percentile=99.0, k=3.0, iqr_factor=1.5, sliding_window="auto")


def prepare(runner, workdir, **overrides):
    params = small_params(**overrides)
    write_params(workdir, params)
    assert runner.invoke(preprocess_app, []).exit_code == 0
    assert runner.invoke(window_app, []).exit_code == 0
    return params


def test_interface_conformance_and_determinism(runner, workdir):
    from momentad.budgets import restrict

    params = prepare(runner, workdir)
    splits, _, _ = load_splits()
    part = restrict(splits["train"], 0, 1500)  # a stretch is enough to show the interface and the seeding
    for method in METHODS:
        opts = {**params[method], **({"epochs": 1} if "epochs" in params[method] else {})}
        a = make(method, seed=1, **opts)
        assert isinstance(a, Detector)
        train = part if a.trains else None
        s1 = a.fit(train, X_val=splits["val"]).score(splits["test"])
        s2 = make(method, seed=1, **opts).fit(train, X_val=splits["val"]).score(splits["test"])
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
        det = make("lstm_ae", **{**params["lstm_ae"], "loss": loss})
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
    with pytest.raises(NotRun, match="same score to every test timestep"):  # recorded, the stage goes on
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


@pytest.mark.parametrize("method", ["isolation_forest", "lstm_ae", "knn"])
def test_real_ucr_series_beats_random(runner, workdir, method):
    full = aeon_series("KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv")
    anomaly = np.flatnonzero(full["is_anomaly"])
    path = workdir / f"135_UCR_Anomaly_InternalBleeding16_1200_{anomaly[0]}_{anomaly[-1] + 1}.txt"
    path.write_text("\n".join(f"{v:.5f}" for v in full["value"]))
    # one anomaly per UCR series: a short val split (no anomaly) and a percentile threshold
    defaults = yaml.safe_load((ROOT / "params.yaml").read_text())[method]
    prepare(runner, workdir, **{"data.source": "ucr", "data.path": str(path),
                                "data.split": {"train": 0.15, "val": 0.05, "test": 0.8},
                                "window.length": 256, "window.eval_stride": 256, "methods": [method],
                                "evaluate.threshold": "percentile", method: defaults})  # fmt: skip
    result = runner.invoke(detect_app, [method, "--no-progress"])
    assert result.exit_code == 0, result.output
    doc = json.loads((workdir / f"reports/methods/{method}.json").read_text())["budgets"]["full"]
    test = pd.read_parquet(workdir / "data/processed/test.parquet")
    train = pd.read_parquet(workdir / "data/processed/train.parquet")
    window = find_period(train["value"].to_numpy())
    assert doc["sliding_window"] == window
    random = np.mean([compute_metrics(test["label"], np.random.default_rng(s).random(len(test)), window)["vus_pr"]
                      for s in range(3)])  # fmt: skip
    # InternalBleeding16's 12-step anomaly is subtle: TSB-AD reports VUS-PR well under 0.2 for
    # classic detectors on UCR; three times a random score's is a clear margin
    assert doc["test"]["vus_pr"] > 3 * random, (doc["test"]["vus_pr"], random)


def test_a_series_without_labels_is_judged_by_its_false_alarms(runner, workdir):
    d = aeon_series("Daphnet_S06R02E0/S06R02E0.csv")
    assert d["is_anomaly"].sum() == 0  # a real excerpt with no labelled anomaly
    d.rename(columns={"is_anomaly": "label"}).to_csv(workdir / "daphnet.csv", index=False)
    prepare(runner, workdir, **{"data.source": "csv", "data.path": "daphnet.csv", "window.length": 256,
                                "window.eval_stride": 256, "methods": ["isolation_forest"]})  # fmt: skip
    result = runner.invoke(detect_app, ["isolation_forest", "--no-progress"])
    assert result.exit_code == 0 and "full: " in result.output and "% of steps flagged" in result.output
    entry = json.loads((workdir / "reports/methods/isolation_forest.json").read_text())["budgets"]["full"]
    assert set(entry["test"]) == {"false_alarm_rate"} and 0 <= entry["test"]["false_alarm_rate"] <= 0.05
    from stages.compare import app as compare_app

    compared = runner.invoke(compare_app, [])
    assert compared.exit_code == 0, compared.output
    assert "no labelled test anomaly: fewest false alarms" in compared.output
    assert "**The test split holds no labelled anomaly**" in (workdir / "reports/compare.md").read_text()


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
    with pytest.raises(InputError, match="isolation_forest.n_trees is not a known key"):
        make("isolation_forest", window=8, n_trees=5)


def test_one_liners_are_the_formulas_per_kpi_and_causal():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 3))
    mv = make("moving_variance", window=10, reduce="mean").fit(None)
    sd = make("squared_difference", reduce="max").fit(None)
    assert not mv.trains and mv.zero_shot and detector_class("moving_variance").budgets([100, 500]) == ["0"]
    want_mv = pd.DataFrame(x).rolling(10, min_periods=1).var(ddof=0).mean(axis=1).to_numpy()
    np.testing.assert_allclose(mv.decision_function(x), want_mv, rtol=1e-5)
    want_sd = np.concatenate([[0.0], (np.diff(x, axis=0) ** 2).max(axis=1)])
    np.testing.assert_allclose(sd.decision_function(x), want_sd, rtol=1e-5)
    changed = x.copy()
    changed[200:] += 50
    for det in (mv, sd):  # row t sees rows <= t only
        np.testing.assert_array_equal(det.decision_function(x)[:200], det.decision_function(changed)[:200])
    with pytest.raises(InputError, match="pca needs training data"):
        make("pca", window=8, n_components=None).fit(None)


def test_subsequence_pca_and_knn_flag_an_odd_shape_and_use_tsbad_windows():
    """Sub-PCA / Sub-KNN on a periodic series: the window follows its period (TSB-AD's
    find_length_rank) and a distorted cycle scores highest at its centre rows."""
    t = np.arange(4000)
    rng = np.random.default_rng(0)
    x = np.sin(2 * np.pi * t / 50) + 0.05 * rng.normal(size=4000)
    test = x[3000:].copy()
    test[500:525] = 0.9  # one flattened half-cycle
    for name, opts in (("pca", {"window": "auto", "n_components": "auto"}),
                       ("knn", {"window": "auto", "n_neighbors": 10, "method": "auto",
                                "normalize": True})):  # fmt: skip
        det = make(name, **opts).fit(x[:3000])
        assert det.window_ in (50, 100), (name, det.window_)  # rank 1 / rank 2 periods of a 50-step cycle
        s = det.decision_function(test)
        assert s.shape == (1000,) and np.argmax(s) in range(480, 550), (name, np.argmax(s))
        ev = det.attribute(np.column_stack([test]), np.arange(505, 515))
        assert ev.shape == (10, 1) and np.isfinite(ev).all()
