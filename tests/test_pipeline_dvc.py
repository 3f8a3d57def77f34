"""The DVC pipeline end to end in a temporary copy of the repository."""

import json
import re
import subprocess

import yaml

from tests.conftest import ROOT, dvc, small_params, write_params


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


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
    assert set(summary["answer"]) == {"8", "16", "full"} and set(scores["vus_pr"]) == set(methods)
    details = json.loads((repo_copy / "reports/compare.json").read_text())
    assert set(details["vus_pr"]["isolation_forest"]) == {"8", "16", "full"}
    assert set(details["vus_pr"]["squared_difference"]) == {"0"}
    doc = json.loads((repo_copy / "reports/methods/isolation_forest.json").read_text())
    assert [d["draw"] for d in doc["budgets"]["16"]["per_draw"]] == [0, 1]
    assert first.stdout.rstrip().count("\n") < 60, "a run prints a short summary per stage, not noise"
    noise = [line for line in (first.stdout + first.stderr).splitlines() if "WARNING" in line or "Warning" in line]
    assert not noise, noise
    assert (repo_copy / "data/processed/schema.json").is_file()
    assert (repo_copy / "data/windows/windows.json").is_file()
    assert (repo_copy / "dvc.lock").is_file()

    again = dvc(repo_copy, "repro")
    assert again.returncode == 0 and ran(again.stdout) == set(), again.stdout
    status = dvc(repo_copy, "status", "dvc.yaml")  # the single-dataset pipeline (study/dvc.yaml is the study's)
    assert "up to date" in status.stdout, status.stdout

    dvc(repo_copy, "commit", "-f")  # dvc exp run needs a commit to branch from
    subprocess.run(["git", "add", "-A"], cwd=repo_copy, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock"],
                   cwd=repo_copy, check=True)  # fmt: skip
    # the same results again leave git clean: run timings live under logs/ (untracked), not in outputs
    redo = dvc(repo_copy, "repro", "--single-item", "--force", "compare")
    assert redo.returncode == 0 and ran(redo.stdout) == {"compare"}, redo.stdout + redo.stderr
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=repo_copy, capture_output=True, text=True).stdout
    assert dirty == "", dirty

    # bad input through `dvc repro`: the one-line error and exit code of the stage; DVC removed the
    # stage's outputs before running it, and `dvc checkout` brings back the last good ones
    processed = sorted(p.name for p in (repo_copy / "data/processed").iterdir())
    (repo_copy / "own.csv").write_text("timestamp,a,label,label\n2026-01-01T00:00:00Z,1,0,0\n")
    write_params(repo_copy, small_params(**{"methods": methods, "budget.draws": 2, "data.source": "trainticket",
                                            "data.path": "own.csv"}))  # fmt: skip
    bad = dvc(repo_copy, "repro")
    assert bad.returncode != 0
    assert "error: own.csv: column 'label' appears twice (columns 3 and 4); rename or drop one" in bad.stderr
    assert not (repo_copy / "data/processed").exists()
    subprocess.run(["git", "checkout", "-q", "params.yaml"], cwd=repo_copy, check=True)
    (repo_copy / "own.csv").unlink()
    restored = dvc(repo_copy, "checkout", "preprocess")
    assert restored.returncode == 0, restored.stderr
    assert sorted(p.name for p in (repo_copy / "data/processed").iterdir()) == processed
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
        return {"checkpoint": "toy/centre-v1", "pretrained": False, "source": "random-init", "parameters": 1,
                "trainable_parameters": 0}
'''


def test_a_new_method_is_one_module_and_its_params(repo_copy):
    """README "Add a method": a module in src/momentad/detectors/, its section in params.yaml and
    its name in `methods` (here a foundation model: the comparison asks it the question)."""
    (repo_copy / "src/momentad/detectors/toy_fm.py").write_text(NEW_METHOD)
    write_params(repo_copy, small_params(**{"methods": ["toy_fm", "squared_difference", "isolation_forest"],
                                            "toy_fm": {"scale": 2.0}}))  # fmt: skip
    changed = subprocess.run(["git", "status", "--porcelain"], cwd=repo_copy, capture_output=True, text=True).stdout
    assert sorted(line[3:] for line in changed.splitlines()) == ["params.yaml", "src/momentad/detectors/toy_fm.py"]
    result = dvc(repo_copy, "repro")
    assert result.returncode == 0, result.stderr + result.stdout
    assert {"detect@toy_fm", "compare"} <= ran(result.stdout)
    summary = json.loads((repo_copy / "metrics/compare.json").read_text())
    scores = json.loads((repo_copy / "metrics/scores.json").read_text())
    assert "toy_fm" in scores["vus_pr"] and summary["pretrained"] is False
    verdict = json.loads((repo_copy / "reports/compare.json").read_text())["verdict"]
    assert {v["moment"] for v in verdict.values()} == {"toy_fm_0"}  # the foundation-model side of every budget
    assert "The foundation model ran with random-init weights" in (repo_copy / "reports/compare.md").read_text()
