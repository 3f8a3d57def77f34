"""The study through `dvc repro study/dvc.yaml` in a copy of the repository: tiny settings, a few
shipped datasets (one without labelled anomalies, one unreadable), then adding a dataset and
changing one method's options."""

import json
import re

import pytest
import yaml

from tests.conftest import dvc, small_params, write_params

METHODS = ["moment", "squared_difference", "pca"]
APP = "data/raw/ms-cloud-monitoring/application-crash-rate-2/app2-{:02d}.csv.gz"
SMALL = {
    "methods": METHODS,
    "budget.draws": 2,
    "budget.sizes": [8],
    "window.length": 64,
    "window.train_stride": 8,
    "compare.bootstrap": 200,
}


TSBAD = {"zero_shot.recipe": "tsbad", "zero_shot.channel_reduce": "last", "finetune.method": "head"}
VARIANTS = {"moment-tsbad": {"set": TSBAD, "max_kpis": 1},
            "moment-tsbad-stats": {"set": {**TSBAD, "zero_shot.score": "reconstruction+stats"}}}  # fmt: skip


def study_file(repo, datasets: dict, variants: dict | None = None) -> None:
    doc = {"set": {}, "variants": variants or {}, "datasets": datasets}
    (repo / "study.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def ran(output: str) -> set[str]:
    return {s.removeprefix("study/dvc.yaml:") for s in re.findall(r"Running stage '([^']+)'", output)}


@pytest.fixture
def study_repo(repo_copy):
    write_params(repo_copy, small_params(**SMALL))
    (repo_copy / "data/raw/broken.csv").write_text("timestamp,value,label\n2026-01-01,high,0\n2026-01-02,1,0\n")
    study_file(repo_copy, {
        "app-02": {"source": "mscloud", "path": APP.format(2), "system": "ms-crash"},
        "app-05": {"source": "mscloud", "path": APP.format(5), "system": "ms-crash"},
        "purchase-01": {"source": "mscloud", "system": "ms-purchase",
                        "path": "data/raw/ms-cloud-monitoring/consumer-purchase-rate/purchase-01.csv.gz"},
        "broken": {"source": "trainticket", "path": "data/raw/broken.csv", "system": "own"},
    }, VARIANTS)  # fmt: skip
    return repo_copy


def test_study_end_to_end_then_one_more_dataset_then_one_method(study_repo):
    repo = study_repo
    first = dvc(repo, "repro", "study/dvc.yaml")
    assert first.returncode == 0, first.stderr + first.stdout
    assert ran(first.stdout) == {f"run@{d}" for d in ("app-02", "app-05", "purchase-01", "broken")} | {"aggregate"}
    assert first.stdout.rstrip().splitlines()[-1] != "" and "the answer: reports/study.md" in first.stdout
    head = json.loads((repo / "metrics/study.json").read_text())["study"]
    assert head["datasets"] == 4 and head["failed"] == 1 and head["pretrained"] is False
    assert set(head["answer"]) == {"0", "8", "full"}
    numbers = json.loads((repo / "metrics/study_scores.json").read_text())["study"]
    assert set(numbers["difference"]) <= {"0", "8", "full"} and set(numbers["best_by_rank"]) == {"0", "8", "full"}
    # the study's headline sits beside compare.json's in `dvc exp show` without a name clash
    # (a clash turns a column into "metrics/x.json:answer.100", which --keep 'answer' misses)
    cols = dvc(repo, "exp", "show", "--csv").stdout.splitlines()[0].split(",")
    assert {"study.answer.8", "study.best_by_rank.8", "answer.full"} <= set(cols) and not [
        c for c in cols if ".json:" in c
    ], cols
    report = (repo / "reports/study.md").read_text()
    assert report.startswith("# Does MOMENT beat the classic detectors? 4 datasets from 3 systems")
    assert report.index("**MOMENT ran with random-init weights**") < report.index("## The answer")
    assert "| broken | (all) |  | failed: data/raw/broken.csv: column 'value' is not numeric" in report
    assert "## Series without labelled anomalies: false-alarm rate" in report and "| purchase-01 |" in report
    assert "## Per system: the best method and every method's regret" in report
    for png in ("cd_full.png", "cd_8.png", "rank_by_budget.png", "heatmap.png"):
        assert (repo / "plots/study" / png).read_bytes()[:4] == b"\x89PNG"
    result = json.loads((repo / "study/runs/app-02/result.json").read_text())
    assert result["status"] == "ok" and set(result["results"]) == set(METHODS) | set(VARIANTS)
    assert result["methods_status"] == {m: "ran" for m in [*METHODS, *VARIANTS]}
    # each recipe meets the classic detectors on its own; the statistics' effect per dataset
    assert "## Each MOMENT recipe against the classic detectors" in report
    for m in ("moment", *VARIANTS):
        assert re.search(rf"\| `{m}` \| [^|]+ \| (better|worse|not distinguishable) [-+]\d", report), m
    assert "| dataset | moment-tsbad / +stats (0) | moment-tsbad / +stats (full) |" in report
    assert re.search(r"\| app-02 \| 0\.\d{3} / 0\.\d{3} \| 0\.\d{3} / 0\.\d{3} \|", report)

    # one more dataset: only its stage and the aggregate run
    data = yaml.safe_load((repo / "study.yaml").read_text())
    data["datasets"]["app-09"] = {"source": "mscloud", "path": APP.format(9), "system": "ms-crash"}
    (repo / "study.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    second = dvc(repo, "repro", "study/dvc.yaml")
    assert second.returncode == 0, second.stderr + second.stdout
    assert ran(second.stdout) == {"run@app-09", "aggregate"}, second.stdout
    assert json.loads((repo / "metrics/study.json").read_text())["study"]["datasets"] == 5

    # one method's options: every dataset's stage re-runs, but only that method is recomputed
    write_params(repo, small_params(**SMALL, **{"pca.n_components": 0.9}))
    third = dvc(repo, "repro", "study/dvc.yaml")
    assert third.returncode == 0, third.stderr + third.stdout
    lines = [ln for ln in third.stdout.splitlines() if re.match(r"^(app-0\d|purchase-01): ", ln)]
    assert len(lines) == 4 and all("1 methods ran, 4 reused" in ln for ln in lines), lines
    again = json.loads((repo / "study/runs/app-02/result.json").read_text())["methods_status"]
    assert again == {"moment": "memo", "squared_difference": "memo", "pca": "ran", "moment-tsbad": "memo",
                     "moment-tsbad-stats": "memo"}  # fmt: skip


def git(repo, *args):
    import subprocess

    out = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, capture_output=True,
                         text=True)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out


def test_study_split_across_two_machines_equals_one_queue(repo_copy, tmp_path):
    """Two clones sharing a git remote and a DVC remote each run part of the study and push it
    (`dvc exp push --run-cache`); a third pulls both and aggregates: every dataset comes back from
    the run-cache, nothing is recomputed, and each dataset's result is the one its machine made."""
    write_params(repo_copy, small_params(**SMALL))
    study_file(repo_copy, {f"app-{i:02d}": {"source": "mscloud", "path": APP.format(i), "system": "ms-crash"}
                           for i in (2, 5)})  # fmt: skip
    origin, store = tmp_path / "origin.git", tmp_path / "dvc-store"
    assert dvc(repo_copy, "remote", "add", "-d", "store", str(store)).returncode == 0
    git(repo_copy, "add", "-A")
    git(repo_copy, "commit", "-qm", "study")
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(repo_copy, "push", "-q", str(origin), "HEAD:refs/heads/main")
    clones = {}
    for name in ("a", "b", "c"):
        git(tmp_path, "clone", "-q", "-b", "main", str(origin), name)
        clones[name] = tmp_path / name
    for name, dataset in (("a", "app-02"), ("b", "app-05")):
        ran_part = dvc(clones[name], "exp", "run", "-n", f"part-{name}", f"study/dvc.yaml:run@{dataset}")
        assert ran_part.returncode == 0, ran_part.stderr + ran_part.stdout
        pushed = dvc(clones[name], "exp", "push", "--run-cache", "origin", f"part-{name}")
        assert pushed.returncode == 0, pushed.stderr + pushed.stdout
    c = clones["c"]
    for part in ("part-a", "part-b"):
        pulled = dvc(c, "exp", "pull", "--run-cache", "origin", part)
        assert pulled.returncode == 0, pulled.stderr + pulled.stdout
    collected = dvc(c, "repro", "study/dvc.yaml")
    assert collected.returncode == 0, collected.stderr + collected.stdout
    assert ran(collected.stdout) == {"aggregate"}, collected.stdout  # both datasets restored, not recomputed
    # what came back is what each machine computed, byte for byte, and the answer covers both
    for name, dataset in (("a", "app-02"), ("b", "app-05")):
        mine = (clones[name] / f"study/runs/{dataset}/result.json").read_text()
        assert (c / f"study/runs/{dataset}/result.json").read_text() == mine
    head = json.loads((c / "metrics/study.json").read_text())["study"]
    assert head["datasets"] == 2 and head["failed"] == 0
