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


TSBAD = {"zero_shot.recipe": "tsbad", "zero_shot.channel_reduce": "last", "finetune.method": "head",
         "finetune.epochs": 1}  # fmt: skip
# the study's own variants, on the committed mini checkpoint pretrained here
VARIANTS = {"moment-random-init": {"set": {"checkpoint": "random-init:mini"}},
            "moment-adapted": {"set": {"adapt.steps": 4}},
            "moment-tsbad": {"set": TSBAD, "max_kpis": 1}}  # fmt: skip
SYSTEMS = {"ms-crash": "crash rates", "ms-purchase": "purchase rates", "own": "a user's file"}


def study_file(repo, datasets: dict, variants: dict | None = None) -> None:
    doc = {"set": {"moment.checkpoint": "models/pretrained/mini", "moment.finetune.epochs": 1},
           "systems": SYSTEMS, "variants": variants or {}, "datasets": datasets}  # fmt: skip
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
        "broken": {"source": "csv", "path": "data/raw/broken.csv", "system": "own"},
    }, VARIANTS)  # fmt: skip
    return repo_copy


def test_study_end_to_end_then_one_more_dataset_then_one_method(study_repo):
    repo = study_repo
    first = dvc(repo, "repro", "study/dvc.yaml")
    assert first.returncode == 0, first.stderr + first.stdout
    assert ran(first.stdout) == {f"run@{d}" for d in ("app-02", "app-05", "purchase-01", "broken")} | {"aggregate"}
    assert first.stdout.rstrip().splitlines()[-1] != "" and "the answer: reports/study.md" in first.stdout
    head = json.loads((repo / "metrics/study.json").read_text())["study"]
    assert head["datasets"] == 4 and head["systems"] == 3 and head["failed"] == 1
    assert head["weights"] == "pretrained-here" and set(head["answer"]) == {"0", "8", "full"}
    assert set(head["pretraining_helps"]) == {"0", "8", "full"}
    numbers = json.loads((repo / "metrics/study_scores.json").read_text())["study"]
    assert set(numbers["difference"]) == {"0", "8", "full"} and set(numbers["best_by_rank"]) == {"0", "8", "full"}
    # the study's headline sits beside compare.json's in `dvc exp show` without a name clash
    # (a clash turns a column into "metrics/x.json:answer.100", which --keep 'answer' misses)
    cols = dvc(repo, "exp", "show", "--csv").stdout.splitlines()[0].split(",")
    assert {"study.answer.8", "study.weights", "study.best_by_rank.8", "answer.full"} <= set(cols) and not [
        c for c in cols if ".json:" in c
    ], cols
    report = (repo / "reports/study.md").read_text()
    assert report.startswith("# Does a time-series foundation model beat the classic detectors? 4 datasets, 3 systems")
    sections = [ln for ln in report.splitlines() if ln.startswith("## ")]
    assert sections[:7] == [
        "## Question and weights",
        "## Datasets",
        "## Protocol",
        "## Answer",
        "## Per system: `moment` minus its label-free opponent",
        "## Ranks",
        "## Caveats",
    ]
    assert "`models/pretrained/mini` — pretrained here on pretrain-corpus + 2,000 synthetic series" in report
    assert "| broken | csv | own | failed |" in report
    assert re.search(r"\| `moment-random-init` \| 8 \| \*\*(better|worse|not distinguishable)\*\* \| [-+]\d", report)
    assert "### Does pretraining help?" in report and "| `moment` | full |" in report
    assert "Holm-corrected over all" in report and "p = 0.000" not in report
    # the protocol is what the datasets ran with: study.yaml's `set` over params.yaml (epochs 1, not 2)
    assert "fine-tuned with `lora` for 1 epoch (early stopping" in report and "; 2 draws (stretches" in report
    assert "## Series without labelled test events: false-alarm rate" in report and "| purchase-01 |" in report
    could_not = json.loads((repo / "reports/study.json").read_text())["could_not_run"]
    assert {
        "dataset": "broken",
        "method": "(all)",
        "budget": "",
        "reason": next(c["reason"] for c in could_not if c["dataset"] == "broken"),
    } in could_not
    assert "column 'value' is not numeric" in next(c["reason"] for c in could_not if c["dataset"] == "broken")
    for png in ("verdict.png", "cd_full.png", "cd_8.png", "rank_by_budget.png", "heatmap.png"):
        assert (repo / "plots/study" / png).read_bytes()[:4] == b"\x89PNG"
    result = json.loads((repo / "study/runs/app-02/result.json").read_text())
    assert result["status"] == "ok" and set(result["results"]) == set(METHODS) | set(VARIANTS)
    assert result["methods_status"] == {m: "ran" for m in [*METHODS, *VARIANTS]}
    assert result["results"]["moment"]["0"]["weights"] == "here"
    assert result["results"]["moment-random-init"]["0"]["weights"] == "random-init"

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
    assert len(lines) == 4 and all("1 methods ran, 5 reused" in ln for ln in lines), lines
    again = json.loads((repo / "study/runs/app-02/result.json").read_text())["methods_status"]
    assert again == {"moment": "memo", "squared_difference": "memo", "pca": "ran", "moment-random-init": "memo",
                     "moment-adapted": "memo", "moment-tsbad": "memo"}  # fmt: skip


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


@pytest.mark.parametrize("key, value, message", [
    ("system", "ms-crahs", "datasets.app-02.system ='ms-crahs' is not in systems (did you mean ms-crash?"),
    ("source", "mscloude", "datasets.app-02.source ='mscloude' is not a data format (did you mean mscloud?"),
    ("path", "data/raw/nowhere.csv", "datasets.app-02.path ='data/raw/nowhere.csv' does not exist"),
])  # fmt: skip
def test_a_bad_study_entry_is_refused_before_any_dataset_runs(repo_copy, key, value, message):
    import subprocess
    import sys

    entry = {"source": "mscloud", "path": APP.format(2), "system": "ms-crash", key: value}
    text = yaml.safe_dump({"systems": SYSTEMS, "datasets": {"app-02": entry}}, sort_keys=False, width=200)
    (repo_copy / "study.yaml").write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip().startswith(f"{key}:"))
    out = subprocess.run([sys.executable, "-m", "stages.study"], cwd=repo_copy, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: study.yaml line {line}: " + message + out.stderr.split(message, 1)[-1].rstrip()
    ]
    assert [p.name for p in (repo_copy / "study/runs").iterdir()] == [".gitignore"]  # no dataset ran


def test_a_dataset_named_twice_is_refused_with_both_lines(tmp_path):
    from momentad.errors import InputError
    from momentad.study_file import read_study

    (tmp_path / "study.yaml").write_text("datasets:\n  a: {source: mscloud, path: ., system: s}\n"
                                         "  a: {source: mscloud, path: ., system: s}\n")  # fmt: skip
    with pytest.raises(InputError, match="study.yaml line 3: datasets.a is given twice \\(first at line 2\\)"):
        read_study(tmp_path / "study.yaml")
