"""The compare stage on small fixture score and metrics files."""

import json

import numpy as np
import pandas as pd
import pytest
from stages.compare import app as compare_app

from momentad.layout import Layout
from tests.conftest import small_params, write_params

TYPES = ["cpu_exhaustion", "memory_leak", "network_delay"]


STRENGTH = {"moment": {"0": 0.25, "100": 0.35, "500": 0.45},
            "isolation_forest": {"100": 1.2, "500": 1.8, "full": 2.0},
            "random_forest": {"100": None, "500": 0.3, "full": 0.2}}  # fmt: skip
WINDOWS = {"0": 0, "100": 100, "500": 500, "full": 2000}


def fixture(root, pretrained=False, strengths=None, validation=True):
    """MOMENT at budgets 0 / 100 / 500 and two classic detectors at 100 / 500 / full, two draws
    each (one at 0), whose scores carry signal of known strength; random_forest at 100 did not
    run. ``validation=False``: no labelled validation anomaly (no validation VUS-PR)."""
    write_params(root, small_params(**{"budget.sizes": [100, 500], "budget.draws": 2,
                                       "methods": ["moment", "isolation_forest", "random_forest"]}))  # fmt: skip
    lay = Layout(root)
    lay.details("knn").parent.mkdir(parents=True, exist_ok=True)
    lay.details("knn").write_text("{}")  # left over from other settings: ignored
    rng = np.random.default_rng(0)
    n = 600
    label = np.zeros(n, int)
    fault = np.full(n, None, object)
    for i, s in enumerate(range(50, 600, 120)):
        label[s : s + 15] = 1
        fault[s : s + 15] = TYPES[i % 3]
    ts = pd.date_range("2026-01-01", periods=n, freq="1min")
    for method, budgets in (strengths or STRENGTH).items():
        doc = {"method": method, "capabilities": {"trains": True}, "budgets": {},
               "data": {"source": "synthetic", "name": "synthetic-trainticket", "synthetic": True}}  # fmt: skip
        for budget, strength in budgets.items():
            if strength is None:
                doc["budgets"][budget] = {"status": "not run: supervised, and its training rows hold no labelled "
                                                    "anomaly", "not_run_draws": []}  # fmt: skip
                continue
            draws = 1 if budget == "0" else 2
            scores = {f"score_{k}": rng.random(n) + strength * label for k in range(draws)}
            spath = lay.scores(method, budget)
            spath.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"timestamp": ts, "score": scores["score_0"], "label": label,
                          "fault_type": pd.array(fault, dtype="string"), **scores}).to_parquet(spath)  # fmt: skip
            vus = round(0.2 * strength, 6)
            doc["budgets"][budget] = {
                "status": "ok", "draws": draws, "test_std": {"vus_pr": 0.01 * (draws - 1)},
                "val_vus_pr": vus if validation else None,
                "per_draw": [{"draw": k, "vus_pr": vus + 0.01 * (2 * k - 1) * (draws - 1),
                              "train_windows": WINDOWS[budget]} for k in range(draws)],
                "test": {"vus_pr": vus, "vus_roc": 0.5, "auc_pr": 0.1 * strength, "f1_at_val_threshold": 0.3,
                         "precision_at_val_threshold": 0.4, "recall_at_val_threshold": 0.5},
                "threshold": {"rule": "val_best_f1", "value": 1.0, "chosen_on": "val"}, "sliding_window": 20,
                "fault_type_events": {t: 2 for t in TYPES},
                "detection_delay": {"events": 5, "detected": 4, "missed": 1, "median_steps": 2.0, "p90_steps": 5.0,
                                    "step_minutes": 1.0, "median_minutes": 2.0, "p90_minutes": 5.0},
                "fault_type_recall": {t: round(min(1.0, strength / 2), 2) for t in TYPES},
                "model": {"checkpoint": ("models/pretrained/mini" if pretrained else "random-init:small")
                          if method.startswith("moment") else None,
                          "origin": ("here" if pretrained else "random-init") if method.startswith("moment")
                          else "scratch",
                          "pretraining": {"corpus": "pretrain-corpus", "steps": 1000} if pretrained else None},
            }  # fmt: skip
        lay.details(method).write_text(json.dumps(doc))
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
    assert result.output.strip().splitlines()[-1].startswith("the answer: reports/compare.md")
    md = (tmp_path / "reports/compare.md").read_text()
    # the rows carry no per-KPI evidence, so BARO is the only root-cause row: 5 events, all found
    assert "| baro (reference) | statistics, no training | 1.000 | 1.000 | 1.000 | 5 |" in md
    details = json.loads((tmp_path / "reports/compare.json").read_text())
    assert details["root_cause"] == {"baro (reference)": {"ac1": 1.0, "ac3": 1.0}}
    assert "**The foundation model ran with random-init weights.**" in md and "not foundation-model results" in md
    assert "moment.checkpoint=AutonLab/MOMENT-1-large" in md
    assert md.index("random-init weights") < md.index("- **Budget 100**")  # the caveat comes first
    rows = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split("|")[2].strip() for r in rows] == [
        "isolation_forest_full", "isolation_forest_500", "isolation_forest_100", "moment_500",
        "moment_100", "random_forest_500", "moment_0", "random_forest_full"]  # fmt: skip
    assert "| 4 | moment_500 | RANDOM-INIT | 500 | 2 | 500 | 0.090 ± 0.010 | 0.090 |" in md
    assert "| random_forest | 100 | not run: supervised, and its training rows hold no labelled anomaly |" in md
    # per-fault-type: each method's best row, share with its Wilson interval over n=2 events
    assert "| isolation_forest_full | 1.00 [0.34, 1.00] | 1.00 [0.34, 1.00] | 1.00 [0.34, 1.00] |" in md
    assert "| random_forest_500 | 0.15 [0.00, 0.66] |" in md  # 0 of 2 events: Wilson [0, 0.66]
    summary = json.loads((tmp_path / "metrics/compare.json").read_text())
    assert summary["best"] == "isolation_forest_full" and summary["weights"] == "RANDOM-INIT"
    scores = json.loads((tmp_path / "metrics/scores.json").read_text())
    assert scores["vus_pr"] == {"isolation_forest": 0.4, "moment": 0.09, "random_forest": 0.06}
    assert set(summary) == {"answer", "best", "best_vus_pr", "weights"}  # the headline only
    assert details["vus_pr"]["moment"] == {"500": 0.09, "100": 0.07, "0": 0.05}
    assert details["vus_pr"]["isolation_forest"] == {"full": 0.4, "500": 0.36, "100": 0.24}
    # isolation_forest's scores carry a clearly stronger signal at every budget: MOMENT is worse
    assert summary["answer"] == {"100": "worse", "500": "worse", "full": "worse"}
    v = details["verdict"]
    assert v["100"]["ci_low"] <= v["100"]["moment_minus_best_baseline"] <= v["100"]["ci_high"] < 0
    assert v["100"]["chosen_by"] == "validation VUS-PR" and v["100"]["best_baseline"] == "isolation_forest_100"
    assert scores["difference"]["100"] == v["100"]["moment_minus_best_baseline"]
    assert v["100"]["interval"] == "paired bootstrap over test events and draws (200 replicates)"  # compare.bootstrap
    line = next(x for x in md.splitlines() if x.startswith("- **Budget 100**"))
    assert line.startswith("- **Budget 100** (100 training windows; MOMENT with RANDOM-INIT weights, not pretrained): "
                           "`moment_100` is **worse** against the classic detector picked on validation, "
                           "`isolation_forest_100`")  # fmt: skip
    assert "paired bootstrap over test events and draws" in md
    assert "| isolation_forest_full | 5 | 4 | 1 | 2 minutes | 5 minutes |" in md
    assert "cpu_exhaustion (n=2)" in md
    curve = pd.read_csv(tmp_path / "plots/compare/learning_curve.csv")
    iso = curve[curve["method"] == "isolation_forest"]
    assert iso["train_windows"].tolist() == [100, 500, 2000] and iso["budget"].tolist() == ["100", "500", "full"]
    assert iso["vus_pr"].tolist() == pytest.approx([0.24, 0.36, 0.4])
    zs = curve[curve["method"] == "moment (zero-shot, RANDOM-INIT)"]  # the foundation model names its weights
    assert zs["train_windows"].tolist() == [100, 500, 2000] and zs["vus_pr"].tolist() == pytest.approx([0.05] * 3)
    ft = curve[curve["method"] == "moment (RANDOM-INIT)"]
    assert ft["vus_pr_std"].tolist() == pytest.approx([0.01, 0.01])
    for png in ("learning_curve", "pr_curves", "verdict", "fault_type_recall", "timeline"):
        assert (tmp_path / f"plots/compare/{png}.png").read_bytes()[:4] == b"\x89PNG"


def test_without_validation_labels_moment_faces_every_detector_holm_corrected(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixture(tmp_path, validation=False)
    assert runner.invoke(compare_app, []).exit_code == 0
    v = json.loads((tmp_path / "reports/compare.json").read_text())["verdict"]
    assert v["100"]["chosen_by"] == "every detector, Holm-corrected" and v["100"]["moment"] == "moment_100"
    assert v["100"]["compared_with"] == 1 and v["100"]["verdict"] == "worse"  # random_forest_100 did not run
    # at most 500 windows: isolation_forest's 100-window row competes at 500 too
    assert v["500"]["compared_with"] == 3
    assert v["500"]["worse_than"] == ["isolation_forest_500", "isolation_forest_100"]
    assert v["full"]["moment"] == "moment_500"  # at full: its largest trained budget


def test_a_budget_the_train_split_is_too_short_for_is_answered_by_the_full_split(runner, tmp_path, monkeypatch):
    """Budget b means at most b windows: where the train split holds fewer than b, a method's
    full-split row (every window there is) stands for it at b, as in the study's aggregate;
    a budget that did not run for another reason is not replaced."""
    monkeypatch.chdir(tmp_path)
    fixture(tmp_path)
    lay = Layout(tmp_path)
    doc = json.loads(lay.details("isolation_forest").read_text())
    doc["budgets"]["500"] = {"status": "not run: budget 500 needs 500 training windows; the train split has 300",
                             "not_run_draws": []}  # fmt: skip
    lay.details("isolation_forest").write_text(json.dumps(doc))
    assert runner.invoke(compare_app, []).exit_code == 0
    v = json.loads((tmp_path / "reports/compare.json").read_text())["verdict"]
    assert v["500"]["best_baseline"] == "isolation_forest_full"  # validation VUS-PR 0.4 > its 100 row's 0.24
    assert v["100"]["best_baseline"] == "isolation_forest_100"  # 100 ran: the full split stays out


def test_intervals_resample_draws_as_well_as_events():
    from momentad.stats import paired_bootstrap

    rng = np.random.default_rng(1)
    labels = np.zeros(2000, np.int8)
    for s in range(100, 2000, 200):
        labels[s : s + 20] = 1
    base = rng.random(2000)
    # a is better than b on average but one of its draws is much worse: the draws' spread must widen the interval
    a = np.stack([base + 1.0 * labels, base + 1.0 * labels, base + 0.0 * labels])
    b = np.stack([base + 0.4 * labels] * 3)
    steady = paired_bootstrap(labels, a[:2], b[:2], 20, replicates=2000, seed=0)
    mixed = paired_bootstrap(labels, a, b, 20, replicates=2000, seed=0)
    assert steady["ci_low"] > 0 and steady["draws"] == 2
    assert mixed["ci_high"] - mixed["ci_low"] > 2 * (steady["ci_high"] - steady["ci_low"])
    assert mixed["ci_low"] < 0 < mixed["ci_high"]
    # 2,000 replicates: the interval barely moves when only the bootstrap seed does
    other = paired_bootstrap(labels, a, b, 20, replicates=2000, seed=1)
    assert abs(other["ci_low"] - mixed["ci_low"]) < 0.02 and abs(other["ci_high"] - mixed["ci_high"]) < 0.02


def test_block_vus_equals_vus_and_a_replicate_is_a_weighted_sum():
    from momentad.metrics import vus
    from momentad.stats import BlockVUS, event_blocks

    rng = np.random.default_rng(4)
    for _ in range(5):
        n = int(rng.integers(500, 4000))
        labels = np.zeros(n, np.int8)
        for s in rng.choice(n - 40, int(rng.integers(1, 15)), replace=False):
            labels[s : s + rng.integers(1, 30)] = 1
        scores = rng.random(n) + labels * rng.uniform(0, 2)
        window = int(rng.integers(1, 120))
        blocks = event_blocks(labels)
        bv = BlockVUS(labels, scores, window, blocks)
        assert bv.vus_pr(np.ones((1, len(blocks))))[0] == pytest.approx(vus(labels, scores, window)[1], abs=1e-12)
        # a replicate drawing only the first event's block: that block's own VUS-PR
        first = next(i for i, (a, b) in enumerate(blocks) if labels[a:b].any())
        w = np.zeros((1, len(blocks)))
        w[0, first] = 1
        assert np.isfinite(bv.vus_pr(w)[0])


def test_no_caveat_with_pretrained_weights(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixture(tmp_path, pretrained=True)
    assert runner.invoke(compare_app, []).exit_code == 0
    md = (tmp_path / "reports/compare.md").read_text()
    assert "random-init weights" not in md and "| pretrained here |" in md
    assert json.loads((tmp_path / "metrics/compare.json").read_text())["weights"] == "pretrained here"


def test_missing_or_malformed_scores_name_the_file(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fixture(tmp_path)
    (tmp_path / "data/scores/moment/100.parquet").unlink()
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 2 and "data/scores/moment/100.parquet: scores file not found" in result.output
    fixture(tmp_path)
    (tmp_path / "data/scores/random_forest/full.parquet").write_bytes(b"not parquet")
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 2
    assert "data/scores/random_forest/full.parquet: not a readable Parquet file" in result.output
    fixture(tmp_path)
    (tmp_path / "reports/methods/random_forest.json").write_text("{broken")
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 2 and "reports/methods/random_forest.json: not valid JSON" in result.output
    assert not (tmp_path / "reports/compare.md").exists()
    fixture(tmp_path)
    (tmp_path / "reports/methods/isolation_forest.json").unlink()
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 2
    assert "reports/methods/isolation_forest.json: not found; run `dvc repro detect@isolation_forest` first" in (
        result.output
    )


def test_the_pr_chart_shows_each_methods_best_row_named_with_its_weights_and_budget(tmp_path):
    """pr_curves.png: one curve per method (its best row), the foundation model named with its
    weights, each with the budget of that row."""
    from momentad.compare import best_per_method, pr_curves, read_all_scores, read_rows, table

    fixture(tmp_path, strengths={**STRENGTH, "moving_variance": {"0": 1.0}})
    rows, _ = read_rows(Layout(tmp_path), ["moment", "isolation_forest", "random_forest", "moving_variance"])
    tab = table(rows)
    curves = pr_curves(tab, read_all_scores(Layout(tmp_path), rows), best_per_method(tab))
    names = sorted(curves)
    assert [n.split(", ")[0] for n in names] == ["isolation_forest", "moment (RANDOM-INIT)", "moving_variance",
                                                 "random_forest"]  # fmt: skip
    best = tab.drop_duplicates("method").set_index("method")["budget"]
    said = {"0": "zero-shot", "full": "full split"}
    assert "moving_variance, zero-shot" in names
    assert f"moment (RANDOM-INIT), {said.get(best['moment'], best['moment'] + ' windows')}" in names
    p, r = curves[next(n for n in names if n.startswith("isolation_forest"))]
    assert r[0] == 1.0 and p[-1] == 1.0  # sklearn order: recall from 1 down, precision up to 1


@pytest.mark.parametrize("first", ["moment", "moment-head"])
def test_without_validation_labels_the_first_listed_recipe_stands_not_the_best_on_test(tmp_path, first):
    """Two MOMENT recipes trained on as many windows and no labelled validation anomaly: nothing
    test-free ranks them, so the one params.yaml lists first stands (whichever is better on test)."""
    from momentad.compare import read_all_scores, read_rows, table, verdicts

    fixture(tmp_path, validation=False, strengths={**STRENGTH, "moment-head": {"0": 0.25, "100": 1.5, "500": 1.9}})
    order = [first, *({"moment", "moment-head"} - {first}), "isolation_forest", "random_forest"]
    rows, not_run = read_rows(Layout(tmp_path), order)
    v = verdicts(table(rows), rows, read_all_scores(Layout(tmp_path), rows), [100, 500], replicates=200,
                 not_run=not_run)  # fmt: skip
    assert v["500"]["moment"] == f"{first}_500" and v["100"]["moment"] == f"{first}_100"
