"""The study through `dvc repro study/dvc.yaml` in a copy of the repository: tiny settings, a few
shipped datasets (one without labelled anomalies, one unreadable), then adding a dataset and
changing one method's options."""

import json
import re

import pytest
import yaml

from tests.conftest import dvc, small_params, write_params

METHODS = ["moment", "pca", "isolation_forest", "squared_difference"]
APP = "data/raw/ms-cloud-monitoring/application-crash-rate-2/app2-{:02d}.csv.gz"


def study_file(repo, datasets: dict) -> None:
    (repo / "study.yaml").write_text(yaml.safe_dump({"set": {}, "datasets": datasets}, sort_keys=False))


def ran(output: str) -> set[str]:
    return {s.removeprefix("study/dvc.yaml:") for s in re.findall(r"Running stage '([^']+)'", output)}


@pytest.fixture
def study_repo(repo_copy):
    write_params(repo_copy, small_params(**{"methods": METHODS, "budget.draws": 2, "budget.sizes": [8, 16],
                                            "window.length": 64, "window.train_stride": 8}))  # fmt: skip
    (repo_copy / "data/raw/broken.csv").write_text("timestamp,value,label\n2026-01-01,high,0\n2026-01-02,1,0\n")
    study_file(repo_copy, {
        "synthetic": {"source": "synthetic", "path": "src/momentad/synthetic.py", "system": "synthetic"},
        "app-02": {"source": "mscloud", "path": APP.format(2), "system": "ms-crash"},
        "app-05": {"source": "mscloud", "path": APP.format(5), "system": "ms-crash"},
        "purchase-01": {"source": "mscloud", "system": "ms-purchase",
                        "path": "data/raw/ms-cloud-monitoring/consumer-purchase-rate/purchase-01.csv.gz"},
        "broken": {"source": "trainticket", "path": "data/raw/broken.csv", "system": "own"},
    })  # fmt: skip
    return repo_copy


def test_study_end_to_end_then_one_more_dataset_then_one_method(study_repo):
    repo = study_repo
    first = dvc(repo, "repro", "study/dvc.yaml")
    assert first.returncode == 0, first.stderr + first.stdout
    assert ran(first.stdout) == {f"run@{d}" for d in ("synthetic", "app-02", "app-05", "purchase-01", "broken")} | {
        "aggregate"}  # fmt: skip
    assert first.stdout.rstrip().splitlines()[-1] != "" and "the answer: reports/study.md" in first.stdout
    head = json.loads((repo / "metrics/study.json").read_text())
    assert head["datasets"] == 5 and head["failed"] == 1 and head["pretrained"] is False
    assert set(head["answer"]) <= {"8", "16", "full"} and head["answer"]
    report = (repo / "reports/study.md").read_text()
    assert report.startswith("# Does MOMENT beat the classic detectors? 5 datasets from 4 systems")
    assert report.index("**MOMENT ran with random-init weights**") < report.index("## The answer")
    assert "| broken | (all) |  | failed: data/raw/broken.csv: column 'value' is not numeric" in report
    assert "## Series without labelled anomalies: false-alarm rate" in report and "| purchase-01 |" in report
    assert "## Per system: the best method and every method's regret" in report
    for png in ("cd_full.png", "rank_by_budget.png", "heatmap.png"):
        assert (repo / "plots/study" / png).read_bytes()[:4] == b"\x89PNG"
    result = json.loads((repo / "study/runs/app-02/result.json").read_text())
    assert result["status"] == "ok" and set(result["results"]) == set(METHODS)
    assert result["methods_status"] == {m: "ran" for m in METHODS}

    # one more dataset: only its stage and the aggregate run
    data = yaml.safe_load((repo / "study.yaml").read_text())
    data["datasets"]["app-09"] = {"source": "mscloud", "path": APP.format(9), "system": "ms-crash"}
    (repo / "study.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    second = dvc(repo, "repro", "study/dvc.yaml")
    assert second.returncode == 0, second.stderr + second.stdout
    assert ran(second.stdout) == {"run@app-09", "aggregate"}, second.stdout
    assert json.loads((repo / "metrics/study.json").read_text())["datasets"] == 6

    # one method's options: every dataset's stage re-runs, but only that method is recomputed
    write_params(repo, small_params(**{"methods": METHODS, "budget.draws": 2, "budget.sizes": [8, 16],
                                       "window.length": 64, "window.train_stride": 8,
                                       "isolation_forest.n_estimators": 30}))  # fmt: skip
    third = dvc(repo, "repro", "study/dvc.yaml")
    assert third.returncode == 0, third.stderr + third.stdout
    lines = [ln for ln in third.stdout.splitlines() if re.match(r"^(synthetic|app-0\d|purchase-01): ", ln)]
    assert len(lines) == 5 and all("1 methods ran, 3 reused" in ln for ln in lines), lines
    again = json.loads((repo / "study/runs/app-02/result.json").read_text())["methods_status"]
    assert again == {"moment": "memo", "pca": "memo", "isolation_forest": "ran", "squared_difference": "memo"}
