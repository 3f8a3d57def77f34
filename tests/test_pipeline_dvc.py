"""The DVC pipeline end to end in a temporary copy of the repository."""

import json
import re
import subprocess

import yaml

from tests.conftest import ROOT, dvc, small_params, write_params


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def stale_stages(status: str) -> set[str]:
    """The stages `dvc status` lists as changed (compare follows them when `dvc repro` runs)."""
    return set(re.findall(r"^(\S+):\s*$", status, re.M))


def test_repro_then_up_to_date_then_knob_reruns_data_stages_only(repo_copy):
    # MOMENT, two classic detectors (one supervised) and a one-liner keep the run short; two
    # draws exercise the intervals
    methods = ["moment", "isolation_forest", "random_forest", "squared_difference"]
    write_params(repo_copy, small_params(**{"methods": methods, "budget.draws": 2}))
    first = dvc(repo_copy, "repro")
    assert first.returncode == 0, first.stderr + first.stdout
    stages = {"preprocess", "window", "compare"} | {f"detect@{m}" for m in methods}
    assert stages == ran(first.stdout)
    summary = json.loads((repo_copy / "metrics/compare.json").read_text())
    scores = json.loads((repo_copy / "metrics/scores.json").read_text())
    # "0": MOMENT zero-shot against the one-liner, the only rows without training
    assert set(summary["answer"]) == {"0", "8", "16", "full"} and set(scores["vus_pr"]) == set(methods)
    details = json.loads((repo_copy / "reports/compare.json").read_text())
    assert set(details["vus_pr"]["isolation_forest"]) == {"8", "16", "full"}
    assert set(details["vus_pr"]["squared_difference"]) == {"0"}
    doc = json.loads((repo_copy / "reports/methods/isolation_forest.json").read_text())
    assert [d["draw"] for d in doc["budgets"]["16"]["per_draw"]] == [0, 1]
    assert first.stdout.rstrip().count("\n") < 60, "a run prints a short summary per stage, not noise"
    # the copy freezes pretrain on purpose (conftest.repo_copy); DVC says so once
    noise = [line for line in (first.stdout + first.stderr).splitlines()
             if ("WARNING" in line or "Warning" in line) and "'pretrain' is frozen" not in line]  # fmt: skip
    assert not noise, noise
    assert (repo_copy / "data/processed/schema.json").is_file()
    assert (repo_copy / "data/windows/windows.json").is_file()
    assert (repo_copy / "dvc.lock").is_file()

    again = dvc(repo_copy, "repro")
    assert again.returncode == 0 and ran(again.stdout) == set(), again.stdout
    status = dvc(repo_copy, "status", "dvc.yaml")  # the single-dataset pipeline (study/dvc.yaml is the study's)
    assert "up to date" in status.stdout, status.stdout

    # editing one method's code makes that method's stage (and compare) stale, nothing else: each
    # detect@<method> depends on its own package and the shared modules only
    module = repo_copy / "src/momentad/detectors/isolation_forest/__init__.py"
    original = module.read_text()
    module.write_text(original + "\n# an edit\n")
    stale = dvc(repo_copy, "status", "dvc.yaml")
    assert stale_stages(stale.stdout) == {"detect@isolation_forest"}, stale.stdout
    module.write_text(original)
    edit = repo_copy / "src/momentad/detectors/moment/recipes/momentad.py"  # one of MOMENT's modules
    original = edit.read_text()
    edit.write_text(original + "\n# an edit\n")
    stale = dvc(repo_copy, "status", "dvc.yaml")
    assert stale_stages(stale.stdout) == {"detect@moment"}, stale.stdout
    edit.write_text(original)

    dvc(repo_copy, "commit", "-f")  # dvc exp run needs a commit to branch from
    subprocess.run(["git", "add", "-A"], cwd=repo_copy, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock"],
                   cwd=repo_copy, check=True)  # fmt: skip
    # the same results again leave git clean: run timings live under logs/ (untracked), not in outputs
    redo = dvc(repo_copy, "repro", "--single-item", "--force", "compare")
    assert redo.returncode == 0 and ran(redo.stdout) == {"compare"}, redo.stdout + redo.stderr
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo_copy, capture_output=True, text=True).stdout
    assert dirty == "", dirty

    # bad input through `dvc repro`: the one-line error and exit code of the stage; the outputs are
    # persistent (DVC leaves them in place) and written atomically, so the last good ones stay
    processed = sorted(p.name for p in (repo_copy / "data/processed").iterdir())
    before = (repo_copy / "data/processed/train.parquet").read_bytes()
    (repo_copy / "own.csv").write_text("timestamp,a,label,label\n2026-01-01T00:00:00Z,1,0,0\n")
    write_params(repo_copy, small_params(**{"methods": methods, "budget.draws": 2, "data.source": "csv",
                                            "data.path": "own.csv"}))  # fmt: skip
    bad = dvc(repo_copy, "repro")
    assert bad.returncode != 0
    assert "error: own.csv: column 'label' appears twice (columns 3 and 4); rename or drop one" in bad.stderr
    assert sorted(p.name for p in (repo_copy / "data/processed").iterdir()) == processed
    assert (repo_copy / "data/processed/train.parquet").read_bytes() == before
    subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=repo_copy, check=True)
    (repo_copy / "own.csv").unlink()
    assert "up to date" in dvc(repo_copy, "status", "dvc.yaml").stdout

    # a data knob makes the data stages stale (running it would recompute everything)
    write_params(repo_copy, small_params(**{"methods": methods, "budget.draws": 2, "data.synthetic.noise": 0.08}))
    stale = dvc(repo_copy, "status", "dvc.yaml")
    assert re.search(r"preprocess:\s+changed deps:\s+params.yaml:\s+modified:\s+data", stale.stdout), stale.stdout
    assert "detect@" not in stale.stdout, stale.stdout  # the methods read no data params: only their inputs change
    subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=repo_copy, check=True)
    # a LoRA knob re-runs MOMENT's stage only, and one classic detector's knob that detector's
    exp = dvc(repo_copy, "exp", "run", "-S", "moment.lora.rank=4")
    assert exp.returncode == 0, exp.stderr + exp.stdout
    assert ran(exp.stdout) == {"detect@moment", "compare"}, exp.stdout
    exp = dvc(repo_copy, "exp", "run", "-S", "isolation_forest.n_estimators=30")
    assert exp.returncode == 0, exp.stderr + exp.stdout
    assert ran(exp.stdout) == {"detect@isolation_forest", "compare"}, exp.stdout
    diff = dvc(repo_copy, "metrics", "diff", "--json")
    assert diff.returncode == 0 and "metrics/scores.json" in diff.stdout  # the headline did not move
    assert "runtime" not in diff.stdout and "_s" not in diff.stdout  # no timings in metrics

    # every declared plot renders: in `dvc plots show --json` and in the HTML page
    shown = dvc(repo_copy, "plots", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    rendered = json.loads(shown.stdout)["data"]
    declared = yaml.safe_load((repo_copy / "dvc.yaml").read_text())
    expected = {k if isinstance(k, str) else next(iter(k)) for k in declared["plots"]}
    for key in expected:
        assert any(key in name for name in rendered), (key, list(rendered))
    # the study's charts too (study/dvc.yaml's paths are relative to study/), those on disk
    study = [p.removeprefix("../") for p in yaml.safe_load((repo_copy / "study/dvc.yaml").read_text())["plots"]]
    on_disk = [p for p in study if (repo_copy / p).is_file()]
    assert len(on_disk) >= 5 and all(any(p in name for name in rendered) for p in on_disk), (on_disk, list(rendered))
    html = dvc(repo_copy, "plots", "show", "-o", "html")
    assert html.returncode == 0, html.stderr
    page = (repo_copy / "html/index.html").read_text()
    # renders with no network: Vega is inlined by .dvc/plots/offline.html, nothing is fetched
    assert "vegaEmbed" in page and not re.search(r"<script[^>]+src=\"https?://", page)
    # every Vega plot has its own title and labelled axes
    for v in rendered.values():
        for p in v:
            if p["type"] == "vega":
                spec = json.dumps(p["content"])
                assert not re.search(r'"title": "(x|y|step|value)"', spec), spec[:300]


def test_stages_declare_exactly_the_params_they_read():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["preprocess"]["params"] == ["seed", "data", "evaluate.protocol"]  # no channel drop under tsbad
    assert stages["window"]["params"] == ["window"]
    # every method's stage reads the shared run settings and its own section, nothing else
    detect = stages["detect"]
    assert detect["foreach"] == "${methods}"
    assert detect["do"]["params"] == ["seed", "threads", "window", "budget", "evaluate", "${item}"]
    assert stages["compare"]["params"] == ["seed", "methods", "budget.sizes", "compare"]


NEW_METHOD = '''"""A toy foundation model: scores by the distance of each row from a "pretrained" centre."""

from dataclasses import dataclass

import numpy as np

from momentad.config import rng
from momentad.detectors.base import Detector, register


@dataclass(frozen=True)
class ToyParams:
    scale: float = rng(gt=0)


@register
class ToyFoundation(Detector):
    name = "toy_fm"
    Params = ToyParams
    zero_shot, trains = True, False

    def _fit(self, train, val):
        pass

    def channel_scores(self, split):
        return np.abs(split.values) * self.params.scale

    def _score(self, split):
        return self._keep_channels(split, self.channel_scores(split)).mean(axis=1)

    def describe(self):
        return {"checkpoint": "toy/centre-v1", "origin": "random-init", "source": "random-init", "parameters": 1,
                "trainable_parameters": 0}
'''


def test_a_new_method_is_one_module_and_its_params(repo_copy):
    """docs "Add a method": a package in src/momentad/detectors/ (one file, its __init__.py), its
    section in params.yaml and its name in `methods` (here a foundation model: the comparison asks
    it the question)."""
    (repo_copy / "src/momentad/detectors/toy_fm").mkdir()
    (repo_copy / "src/momentad/detectors/toy_fm/__init__.py").write_text(NEW_METHOD)
    write_params(repo_copy, small_params(**{"methods": ["toy_fm", "squared_difference", "isolation_forest"],
                                            "toy_fm": {"scale": 2.0}}))  # fmt: skip
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=repo_copy, capture_output=True, text=True).stdout
    assert sorted(line[3:] for line in changed.splitlines()) == ["params.yaml", "src/momentad/detectors/toy_fm/"]
    result = dvc(repo_copy, "repro")
    assert result.returncode == 0, result.stderr + result.stdout
    assert {"detect@toy_fm", "compare"} <= ran(result.stdout)
    summary = json.loads((repo_copy / "metrics/compare.json").read_text())
    scores = json.loads((repo_copy / "metrics/scores.json").read_text())
    assert "toy_fm" in scores["vus_pr"] and summary["weights"] == "RANDOM-INIT"
    verdict = json.loads((repo_copy / "reports/compare.json").read_text())["verdict"]
    assert {v["moment"] for v in verdict.values()} == {"toy_fm_0"}  # the foundation-model side of every budget
    assert "The foundation model ran with random-init weights" in (repo_copy / "reports/compare.md").read_text()


NEW_SOURCE = '''"""data.source: toy — a JSON-lines export: {"t": seconds, "cpu": x, "bad": 0/1} per line."""

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from momentad.config import optional
from momentad.loaders import Format, RawData
from momentad.loaders._common import finish


@dataclass(frozen=True)
class ToyParams:
    label_key: str = optional("bad")


FORMAT = Format(params=ToyParams)


def load(path, options, data, seed) -> RawData:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    frame = pd.DataFrame({"timestamp": pd.to_datetime([r["t"] for r in rows], unit="s"),
                          "cpu": [r["cpu"] for r in rows]})
    return RawData(frame=finish(frame, label=pd.Series([r[options.label_key] for r in rows])), source="toy",
                   name=Path(path).stem)
'''


def test_a_new_source_is_one_module_and_its_params(repo_copy):
    """docs "Add a data source": a module in src/momentad/loaders/ (its options class and what it
    needs in FORMAT, and load()) and its section in params.yaml; no other file names formats."""
    import numpy as np

    (repo_copy / "src/momentad/loaders/toy.py").write_text(NEW_SOURCE)
    rng = np.random.default_rng(0)
    lines = [json.dumps({"t": 1_700_000_000 + 60 * i, "cpu": float(np.sin(i / 9) + 0.1 * rng.normal()),
                         "flag": int(i % 400 in range(200, 210))}) for i in range(3000)]  # fmt: skip
    (repo_copy / "own.jsonl").write_text("\n".join(lines) + "\n")
    params = small_params(**{"methods": ["squared_difference"], "data.source": "toy", "data.path": "own.jsonl",
                             "data.toy": {"label_key": "flag"}, "window.length": 64})  # fmt: skip
    del params["data"]["synthetic"]  # only the chosen format's section
    write_params(repo_copy, params)
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=repo_copy, capture_output=True, text=True).stdout
    assert sorted(line[3:] for line in changed.splitlines()) == ["own.jsonl", "params.yaml",
                                                                "src/momentad/loaders/toy.py"]  # fmt: skip
    result = dvc(repo_copy, "repro")
    assert result.returncode == 0, result.stderr + result.stdout
    schema = json.loads((repo_copy / "data/processed/schema.json").read_text())
    assert schema["source"] == "toy" and schema["features"] == ["cpu"]
    assert sum(s["events"] for s in schema["splits"].values()) == 7  # 10 flagged minutes every 400 of 3,000
    assert (repo_copy / "metrics/compare.json").is_file()  # through to the comparison
