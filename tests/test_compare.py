"""The compare stage on small fixture score and metrics files."""

import json

import numpy as np
import pandas as pd
import pytest
from stages.compare import app as compare_app
from tests.conftest import small_params, write_params

from momentad.layout import Layout

TYPES = ["cpu_exhaustion", "memory_leak", "network_delay"]


def fixture(root, pretrained=False, methods=None):
    """Three MOMENT rows and two baselines whose scores carry signal of known strength."""
    write_params(root, small_params(**{"finetune.budgets": [100, 500],
                                       "baselines.methods": ["isolation_forest", "random_forest"]}))  # fmt: skip
    lay = Layout(root)
    lay.details("moment_lora_1000").parent.mkdir(parents=True, exist_ok=True)
    lay.details("moment_lora_1000").write_text("{}")  # left over from other settings: ignored
    rng = np.random.default_rng(0)
    n = 600
    label = np.zeros(n, int)
    fault = np.full(n, None, object)
    for i, s in enumerate(range(50, 600, 120)):
        label[s : s + 15] = 1
        fault[s : s + 15] = TYPES[i % 3]
    ts = pd.date_range("2026-01-01", periods=n, freq="1min")
    methods = methods or {"moment_zero_shot": 0.5, "moment_lora_100": 1.0, "moment_lora_500": 1.5,
                          "isolation_forest": 2.0, "random_forest": 0.2}  # fmt: skip
    for m, strength in methods.items():
        score = rng.random(n) + strength * label
        spath, mpath = lay.scores(m), lay.details(m)
        if m == "moment_zero_shot":
            extra = {"detector": m, "budget": None}
        elif m.startswith("moment_lora_"):
            extra = {"detector": "moment_lora", "budget": int(m.rsplit("_", 1)[1]), "test_std": {"vus_pr": 0.01}}
        else:
            extra = {"detector": m, "budget": None}
        spath.parent.mkdir(parents=True, exist_ok=True)
        mpath.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {"timestamp": ts, "score": score, "label": label, "fault_type": pd.array(fault, dtype="string")}
        ).to_parquet(spath)
        baseline = not m.startswith("moment")
        doc = {
            "method": m, **extra,
            "test": {"vus_pr": 0.2 * strength, "vus_roc": 0.5, "auc_pr": 0.1 * strength, "f1_at_val_threshold": 0.3,
                     "precision_at_val_threshold": 0.4, "recall_at_val_threshold": 0.5},
            "threshold": {"rule": "val_best_f1", "value": 1.0, "chosen_on": "val"}, "sliding_window": 20,
            "fault_type_events": {t: 2 for t in TYPES},
            "detection_delay": {"events": 5, "detected": 4, "missed": 1, "median_steps": 2.0, "p90_steps": 5.0,
                                "step_minutes": 1.0, "median_minutes": 2.0, "p90_minutes": 5.0},
            "fault_type_recall": {t: round(min(1.0, strength / 2), 2) for t in TYPES},
            "runtime": {"fit_s": 1.0, "score_s": 2.0, "timesteps_per_s": 300.0, "peak_rss_mb": 500.0,
                        "peak_gpu_mb": None},
            "model": {"checkpoint": None if baseline else "random-init:small",
                      "pretrained": (not baseline) and pretrained},
            "data": {"source": "synthetic", "name": "synthetic-trainticket", "synthetic": True},
        }  # fmt: skip
        mpath.write_text(json.dumps(doc))


def test_report_table_plots_and_caveat(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixture(tmp_path)
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 0, result.output
    assert "best isolation_forest (VUS-PR 0.400)" in result.output
    md = (tmp_path / "reports/compare.md").read_text()
    assert "**MOMENT ran with random-init weights.**" in md and "not foundation-model results" in md
    assert "model.checkpoint=AutonLab/MOMENT-1-large" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split("|")[2].strip() for r in rows] == ["isolation_forest", "moment_lora_500", "moment_lora_100",
                                                       "moment_zero_shot", "random_forest"]  # fmt: skip
    assert "| 2 | moment_lora_500 | random-init | 500 | 0.300 ± 0.010 |" in md
    assert "| isolation_forest | 1.00 | 1.00 | 1.00 |" in md  # the per-fault-type table
    summary = json.loads((tmp_path / "metrics/compare.json").read_text())
    assert summary["best_method"] == "isolation_forest" and summary["best_moment"] == "moment_lora_500"
    assert summary["moment_pretrained"] is False
    assert summary["vus_pr"]["moment_lora"] == {"100": 0.2, "500": 0.3}
    assert summary["vus_pr"]["isolation_forest"] == {"full": 0.4}
    # isolation_forest's scores carry a clearly stronger signal (strength 2.0 vs 0.5): MOMENT is worse
    v = summary["verdict"]
    assert set(v) == {"0", "100", "500"} and v["0"]["verdict"] == "worse"
    assert v["0"]["ci_low"] <= v["0"]["moment_minus_best_baseline"] <= v["0"]["ci_high"] < 0
    assert md.splitlines()[2].startswith("- **Budget 0** (zero-shot, RANDOM-INIT (not pretrained) weights): MOMENT")
    assert "| isolation_forest | 5 | 4 | 1 | 2 minutes | 5 minutes |" in md
    assert "cpu_exhaustion (n=2)" in md
    assert summary["moment_minus_best_baseline_vus_pr"] == pytest.approx(0.3 - 0.4)
    curve = pd.read_csv(tmp_path / "plots/compare/learning_curve.csv")
    assert curve["budget"].tolist() == [0, 100, 500]
    assert curve["moment_vus_pr"].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert curve["best_baseline_vus_pr"].tolist() == pytest.approx([0.4] * 3)
    for png in ("learning_curve", "pr_curves", "fault_type_recall", "timeline"):
        assert (tmp_path / f"plots/compare/{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_no_caveat_with_pretrained_weights(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixture(tmp_path, pretrained=True)
    assert runner.invoke(compare_app, []).exit_code == 0
    md = (tmp_path / "reports/compare.md").read_text()
    assert "random-init weights" not in md and "| pretrained |" in md


def test_missing_or_malformed_scores_name_the_file(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixture(tmp_path)
    (tmp_path / "data/scores/moment_lora_100.parquet").unlink()
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 2 and "data/scores/moment_lora_100.parquet: scores file not found" in result.output
    fixture(tmp_path)
    (tmp_path / "data/scores/random_forest.parquet").write_bytes(b"not parquet")
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 2 and "data/scores/random_forest.parquet: not a readable Parquet file" in result.output
    fixture(tmp_path)
    (tmp_path / "reports/methods/random_forest.json").write_text("{broken")
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 2 and "reports/methods/random_forest.json: not valid JSON" in result.output
    assert not (tmp_path / "reports/compare.md").exists()
    fixture(tmp_path)
    (tmp_path / "reports/methods/isolation_forest.json").unlink()
    result = runner.invoke(compare_app, [])
    assert (
        result.exit_code == 2
        and "reports/methods/isolation_forest.json: not found; run `dvc repro baseline@isolation_forest` first"
        in result.output
    )
