"""The zero_shot stage through its CLI with a tiny random-init MOMENT on short synthetic data."""

import json

import numpy as np
import pandas as pd
import pytest
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app
from stages.zero_shot import app as zero_shot_app
from tests.conftest import MODEL_CACHE, small_params, write_params

from momentad.data import load_splits
from momentad.detectors.moment import MomentReconstruction, window_batches
from momentad.evaluate import EvalConfig, evaluate
from momentad.models.device import resolve_device
from momentad.models.moment import load_moment

SCHEMA_TEST_KEYS = {"vus_pr", "vus_roc", "auc_pr", "auc_roc", "standard_f1", "pa_f1", "event_f1", "r_f1",
                    "affiliation_f1", "f1_at_val_threshold", "precision_at_val_threshold",
                    "recall_at_val_threshold"}  # fmt: skip


def prepare(runner, workdir, **overrides):
    write_params(workdir, small_params(**overrides))
    assert runner.invoke(preprocess_app, []).exit_code == 0
    assert runner.invoke(window_app, []).exit_code == 0


def run_zero_shot(runner, *extra):
    result = runner.invoke(zero_shot_app, ["--no-progress", *extra])
    assert result.exit_code == 0, result.output
    return result


def test_outputs_follow_the_contract(runner, workdir):
    prepare(runner, workdir)
    result = run_zero_shot(runner)
    assert "RANDOM-INIT (not pretrained)" in result.output
    doc = json.loads((workdir / "metrics/zero_shot.json").read_text())
    assert doc["method"] == "moment_zero_shot"
    assert set(doc["test"]) == SCHEMA_TEST_KEYS
    assert all(0 <= v <= 1 for v in doc["test"].values())
    assert {"fit_s", "score_s", "timesteps_per_s", "peak_rss_mb", "peak_gpu_mb"} <= set(doc["runtime"])
    assert doc["runtime"]["timesteps_per_s"] > 0 and doc["runtime"]["peak_rss_mb"] > 0
    assert doc["model"]["pretrained"] is False and doc["model"]["checkpoint"] == "random-init:tiny"
    assert doc["model"]["parameters"] > doc["model"]["trainable_parameters"] > 0
    assert doc["data"]["synthetic"] is True
    assert doc["threshold"]["chosen_on"] == "val"
    assert set(doc["fault_type_recall"]) == set(doc["fault_type_events"]) and len(doc["fault_type_recall"]) == 14
    scores = pd.read_parquet(workdir / "data/scores/zero_shot.parquet")
    test = pd.read_parquet(workdir / "data/processed/test.parquet")
    assert list(scores.columns) == ["timestamp", "score", "label", "fault_type"]
    assert len(scores) == len(test)
    assert (scores["timestamp"].to_numpy() == test["timestamp"].to_numpy()).all()
    assert (scores["label"].to_numpy() == test["label"].to_numpy()).all()
    assert np.isfinite(scores["score"]).all() and scores["score"].std() > 0
    pr = pd.read_csv(workdir / "plots/zero_shot/pr_curve.csv")
    assert list(pr.columns) == ["method", "recall", "precision"] and len(pr) > 2
    png = (workdir / "plots/zero_shot/test_period.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_identical_scores_on_two_runs(runner, workdir):
    prepare(runner, workdir)
    run_zero_shot(runner)
    first = pd.read_parquet(workdir / "data/scores/zero_shot.parquet")
    m1 = json.loads((workdir / "metrics/zero_shot.json").read_text())["test"]
    run_zero_shot(runner)
    second = pd.read_parquet(workdir / "data/scores/zero_shot.parquet")
    m2 = json.loads((workdir / "metrics/zero_shot.json").read_text())["test"]
    pd.testing.assert_frame_equal(first, second)
    assert m1 == m2


@pytest.mark.parametrize("length", [256, 128])
def test_short_windows_are_padded_and_masked(runner, workdir, length):
    prepare(runner, workdir, **{"window.length": length, "window.eval_stride": length})
    splits, _, meta = load_splits()
    test = splits["test"]
    batches = list(window_batches(test.values, test.index, batch_size=7))
    x = np.concatenate([b[1] for b in batches])
    mask = np.concatenate([b[2] for b in batches])
    assert x.shape == (len(test.index) * len(test.features), 1, 512)
    assert (mask.sum(axis=1) == length).all() and (mask[:, : 512 - length] == 0).all()
    assert (x[:, 0, : 512 - length] == 0).all()
    model, _ = load_moment("random-init:tiny", 0, MODEL_CACHE)
    det = MomentReconstruction(model, resolve_device("cpu"), batch_size=64, progress=False)
    scores = det.score(test)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    # padding must not leak into the score: the same window scored alone gives the same errors
    alone = det.channel_errors(type(test)(test.name, test.frame, test.features, test.index.iloc[:1]))
    np.testing.assert_allclose(alone[:length], det.channel_errors(test)[:length], rtol=1e-4, atol=1e-6)


def test_threshold_never_sees_test_labels(runner, workdir):
    prepare(runner, workdir)
    splits, _, _ = load_splits()
    val, test = splits["val"], splits["test"]
    rng = np.random.default_rng(0)
    val_scores, test_scores = rng.random(len(val)), rng.random(len(test))
    cfg = EvalConfig()
    before = evaluate(val, val_scores, test, test_scores, cfg, 32)
    flipped = type(test)(test.name, test.frame.assign(label=1 - test.frame["label"]), test.features, test.index)
    after = evaluate(val, val_scores, flipped, test_scores, cfg, 32)
    assert before["threshold"] == after["threshold"]  # test labels changed, threshold did not
    assert before["test"]["auc_roc"] == pytest.approx(1 - after["test"]["auc_roc"], abs=1e-6)
    # and it does follow the validation labels
    val2 = type(val)(val.name, val.frame.assign(label=np.roll(val.frame["label"], 50)), val.features, val.index)
    assert evaluate(val2, val_scores, test, test_scores, cfg, 32)["threshold"] != before["threshold"]


def test_bad_zero_shot_params(runner, workdir):
    prepare(runner, workdir)
    write_params(workdir, small_params(**{"zero_shot.channel_reduce": "median"}))
    result = runner.invoke(zero_shot_app, ["--no-progress"])
    assert result.exit_code == 2 and "zero_shot.channel_reduce='median'" in result.output
    assert not (workdir / "metrics/zero_shot.json").exists()
