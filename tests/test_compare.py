"""The compare stage on small fixture score and metrics files."""

import json

import numpy as np
import pandas as pd
import pytest
from stages.compare import app as compare_app
from tests.conftest import small_params, write_params

from momentad.layout import Layout

TYPES = ["cpu_exhaustion", "memory_leak", "network_delay"]


STRENGTH = {"moment_zero_shot": 0.25, "moment_lora_100": 0.35, "moment_lora_500": 0.45,
            "isolation_forest_100": 1.2, "isolation_forest_500": 1.8, "isolation_forest_full": 2.0,
            "random_forest_500": 0.3, "random_forest_full": 0.2}  # fmt: skip
WINDOWS = {"100": 100, "500": 500, "full": 2000}


def fixture(root, pretrained=False, methods=None):
    """MOMENT rows and two baselines at budgets 100 / 500 / full, two draws each, whose scores
    carry signal of known strength; random_forest_100 did not run."""
    write_params(root, small_params(**{"budget.sizes": [100, 500], "budget.draws": 2,
                                       "baselines.methods": ["isolation_forest", "random_forest"]}))  # fmt: skip
    lay = Layout(root)
    lay.details("moment_lora_1000").parent.mkdir(parents=True, exist_ok=True)
    lay.details("moment_lora_1000").write_text("{}")  # left over from other settings: ignored
    lay.details("random_forest_100").write_text(json.dumps({
        "method": "random_forest_100", "detector": "random_forest", "budget": 100, "draws": 0,
        "status": "not run: supervised, and its training rows hold no labelled anomaly"}))  # fmt: skip
    rng = np.random.default_rng(0)
    n = 600
    label = np.zeros(n, int)
    fault = np.full(n, None, object)
    for i, s in enumerate(range(50, 600, 120)):
        label[s : s + 15] = 1
        fault[s : s + 15] = TYPES[i % 3]
    ts = pd.date_range("2026-01-01", periods=n, freq="1min")
    for m, strength in (methods or STRENGTH).items():
        detector, budget = ("moment_zero_shot", None) if m == "moment_zero_shot" else m.rsplit("_", 1)
        draws = 1 if budget is None else 2
        scores = {f"score_{k}": rng.random(n) + strength * label for k in range(draws)}
        spath, mpath = lay.scores(m), lay.details(m)
        spath.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"timestamp": ts, "score": scores["score_0"], "label": label,
                      "fault_type": pd.array(fault, dtype="string"), **scores}).to_parquet(spath)  # fmt: skip
        baseline = not m.startswith("moment")
        vus = 0.2 * strength
        doc = {
            "method": m, "detector": detector, "budget": budget if budget in (None, "full") else int(budget),
            "status": "ok", "draws": draws, "test_std": {"vus_pr": 0.01 * (draws - 1)},
            "per_draw": [{"draw": k, "vus_pr": vus + 0.01 * (2 * k - 1) * (draws - 1),
                          "train_windows": WINDOWS.get(budget, 0)} for k in range(draws)],
            "test": {"vus_pr": vus, "vus_roc": 0.5, "auc_pr": 0.1 * strength, "f1_at_val_threshold": 0.3,
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
    # the processed test split BARO ranks (root cause "svc-b"; its KPI jumps in every event)
    kpis = ["svc-a_cpu", "svc-b_cpu", "svc-c_cpu"]
    values = rng.normal(size=(n, 3))
    values[label == 1, 1] += 5
    cause = pd.array(np.where(label == 1, "svc-b", None), dtype="string")
    processed = root / "data" / "processed"
    processed.mkdir(parents=True, exist_ok=True)
    test = pd.DataFrame({"timestamp": ts, **dict(zip(kpis, values.T, strict=True)), "label": label,
                         "fault_type": pd.array(fault, dtype="string"), "root_cause": cause})  # fmt: skip
    test.to_parquet(processed / "test.parquet")
    (processed / "schema.json").write_text(json.dumps({"features": kpis}))


def test_report_table_plots_and_caveat(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixture(tmp_path)
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 0, result.output
    assert "8 rows ran, 1 not run; best isolation_forest_full (VUS-PR 0.400)" in result.output
    md = (tmp_path / "reports/compare.md").read_text()
    # the rows carry no per-KPI evidence, so BARO is the only root-cause row: 5 events, all found
    assert "| baro (reference) | statistics, no training | 1.000 | 1.000 | 1.000 | 5 |" in md
    assert json.loads((tmp_path / "metrics/compare.json").read_text())["root_cause"] == {
        "baro": {"ac1": 1.0, "ac3": 1.0}
    }
    assert "**MOMENT ran with random-init weights.**" in md and "not foundation-model results" in md
    assert "model.checkpoint=AutonLab/MOMENT-1-large" in md
    rows = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split("|")[2].strip() for r in rows] == [
        "isolation_forest_full", "isolation_forest_500", "isolation_forest_100", "moment_lora_500",
        "moment_lora_100", "random_forest_500", "moment_zero_shot", "random_forest_full"]  # fmt: skip
    assert "| 4 | moment_lora_500 | random-init | 500 | 2 | 500 | 0.090 ± 0.010 |" in md
    assert "| random_forest_100 | 100 | not run: supervised, and its training rows hold no labelled anomaly |" in md
    # per-fault-type: each detector's best row, share with its Wilson interval over n=2 events
    assert "| isolation_forest_full | 1.00 [0.34, 1.00] | 1.00 [0.34, 1.00] | 1.00 [0.34, 1.00] |" in md
    assert "| random_forest_500 | 0.15 [0.00, 0.66] |" in md  # 0 of 2 events: Wilson [0, 0.66]
    summary = json.loads((tmp_path / "metrics/compare.json").read_text())
    assert summary["best_method"] == "isolation_forest_full" and summary["moment_pretrained"] is False
    assert summary["vus_pr"]["moment_lora"] == {"100": 0.07, "500": 0.09}
    assert summary["vus_pr"]["moment_zero_shot"] == {"0": 0.05}
    assert summary["vus_pr"]["isolation_forest"] == {"100": 0.24, "500": 0.36, "full": 0.4}
    assert summary["vus_pr"]["random_forest"] == {"500": 0.06, "full": 0.04}
    # isolation_forest's scores carry a clearly stronger signal at every budget: MOMENT is worse
    v = summary["verdict"]
    assert set(v) == {"100", "500", "full"} and {x["verdict"] for x in v.values()} == {"worse"}
    assert v["100"]["ci_low"] <= v["100"]["moment_minus_best_baseline"] <= v["100"]["ci_high"] < 0
    assert set(v["100"]) == {"moment_minus_best_baseline", "ci_low", "ci_high", "verdict"}
    assert md.splitlines()[2].startswith(
        "- **Budget 100** (100 training windows; MOMENT with RANDOM-INIT weights, not pretrained): MOMENT "
        "(`moment_lora_100`) is **worse** against the best baseline `isolation_forest_100`"
    )
    assert "paired bootstrap over test events and draws" in md
    assert "| isolation_forest_full | 5 | 4 | 1 | 2 minutes | 5 minutes |" in md
    assert "cpu_exhaustion (n=2)" in md
    curve = pd.read_csv(tmp_path / "plots/compare/learning_curve.csv")
    iso = curve[curve["method"] == "isolation_forest"]
    assert iso["train_windows"].tolist() == [100, 500, 2000] and iso["budget"].tolist() == ["100", "500", "full"]
    assert iso["vus_pr"].tolist() == pytest.approx([0.24, 0.36, 0.4])
    zs = curve[curve["method"] == "moment_zero_shot"]
    assert zs["train_windows"].tolist() == [100, 500, 2000] and zs["vus_pr"].tolist() == pytest.approx([0.05] * 3)
    lora = curve[curve["method"] == "moment_lora"]
    assert lora["vus_pr_std"].tolist() == pytest.approx([0.01, 0.01])
    for png in ("learning_curve", "pr_curves", "fault_type_recall", "timeline"):
        assert (tmp_path / f"plots/compare/{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_intervals_resample_draws_as_well_as_events():
    from momentad.stats import two_level_bootstrap

    rng = np.random.default_rng(1)
    labels = np.zeros(2000, np.int8)
    for s in range(100, 2000, 200):
        labels[s : s + 20] = 1
    base = rng.random(2000)
    # a is better than b on average but one of its draws is much worse: the draws' spread must widen the interval
    a = np.stack([base + 1.0 * labels, base + 1.0 * labels, base + 0.0 * labels])
    b = np.stack([base + 0.4 * labels] * 3)
    steady = two_level_bootstrap(labels, a[:2], b[:2], 20, replicates=60, seed=0)
    mixed = two_level_bootstrap(labels, a, b, 20, replicates=60, seed=0)
    assert steady["ci_low"] > 0 and steady["draws"] == 2
    assert mixed["ci_high"] - mixed["ci_low"] > 2 * (steady["ci_high"] - steady["ci_low"])
    assert mixed["ci_low"] < 0 < mixed["ci_high"]


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
    (tmp_path / "data/scores/random_forest_full.parquet").write_bytes(b"not parquet")
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 2
    assert "data/scores/random_forest_full.parquet: not a readable Parquet file" in result.output
    fixture(tmp_path)
    (tmp_path / "reports/methods/random_forest_full.json").write_text("{broken")
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 2 and "reports/methods/random_forest_full.json: not valid JSON" in result.output
    assert not (tmp_path / "reports/compare.md").exists()
    fixture(tmp_path)
    (tmp_path / "reports/methods/isolation_forest_500.json").unlink()
    result = runner.invoke(compare_app, [])
    assert (
        result.exit_code == 2
        and "reports/methods/isolation_forest_500.json: not found; run `dvc repro baseline@isolation_forest-500` first"
        in result.output
    )
