"""The DVC pipeline end to end in a temporary copy of the repository."""

import json
import re
import subprocess

import yaml
from tests.conftest import ROOT, dvc, small_params, write_params


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def test_repro_then_up_to_date_then_knob_reruns_data_stages_only(repo_copy):
    # two baselines (one supervised) keep the run short; two draws exercise the intervals
    write_params(repo_copy, small_params(**{"baselines.methods": ["isolation_forest", "random_forest"],
                                            "budget.draws": 2}))  # fmt: skip
    first = dvc(repo_copy, "repro")
    assert first.returncode == 0, first.stderr + first.stdout
    stages = {"preprocess", "window", "moment_zero_shot", "moment_lora@8", "moment_lora@16", "compare"}
    stages |= {f"baseline@{m}-{b}" for m in ("isolation_forest", "random_forest") for b in (8, 16)}
    stages |= {"baseline_full@isolation_forest", "baseline_full@random_forest"}
    assert stages == ran(first.stdout)
    summary = json.loads((repo_copy / "metrics/compare.json").read_text())
    assert set(summary["verdict"]) == {"8", "16", "full"} and set(summary["vus_pr"]["isolation_forest"]) == {
        "8", "16", "full"}  # fmt: skip
    head = json.loads((repo_copy / "metrics/isolation_forest_16.json").read_text())
    assert set(head["vus_pr_draws"]) == {"0", "1"}
    assert first.stdout.rstrip().count("\n") < 120, "a run prints a short summary per stage, not noise"
    noise = [line for line in (first.stdout + first.stderr).splitlines() if "WARNING" in line or "Warning" in line]
    assert not noise, noise
    assert (repo_copy / "data/processed/schema.json").is_file()
    assert (repo_copy / "data/windows/windows.json").is_file()
    assert (repo_copy / "dvc.lock").is_file()

    again = dvc(repo_copy, "repro")
    assert again.returncode == 0 and ran(again.stdout) == set(), again.stdout
    status = dvc(repo_copy, "status")
    assert "up to date" in status.stdout, status.stdout

    dvc(repo_copy, "commit", "-f")  # dvc exp run needs a commit to branch from
    subprocess.run(["git", "add", "-A"], cwd=repo_copy, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "lock"],
                   cwd=repo_copy, check=True)  # fmt: skip
    exp = dvc(repo_copy, "exp", "run", "-S", "data.synthetic.noise=0.08")
    assert exp.returncode == 0, exp.stderr + exp.stdout
    assert {"preprocess", "window"} <= ran(exp.stdout), exp.stdout
    # a LoRA knob re-runs the fine-tune stages only
    exp = dvc(repo_copy, "exp", "run", "-S", "lora.rank=4")
    assert exp.returncode == 0, exp.stderr + exp.stdout
    assert ran(exp.stdout) == {"moment_lora@8", "moment_lora@16", "compare"}, exp.stdout
    diff = dvc(repo_copy, "metrics", "diff", "--json")
    assert diff.returncode == 0 and "metrics/moment_lora_8.json" in diff.stdout
    assert "runtime" not in diff.stdout  # timings live in reports/methods/, not in metrics

    # every declared plot renders: in `dvc plots show --json` and in the HTML page
    shown = dvc(repo_copy, "plots", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    rendered = json.loads(shown.stdout)["data"]
    declared = yaml.safe_load((repo_copy / "dvc.yaml").read_text())
    expected = {"plots/pr/moment_zero_shot.csv", "plots/pr/isolation_forest_full.csv", "plots/pr/moment_lora_16.csv",
                "plots/pr/isolation_forest_8.csv",
                "plots/training/moment_lora_8.csv"}  # fmt: skip
    expected |= {k if isinstance(k, str) else next(iter(k)) for k in declared["plots"]}
    for key in expected:
        assert any(key in name for name in rendered), (key, list(rendered))
    html = dvc(repo_copy, "plots", "show", "-o", "html")
    assert html.returncode == 0, html.stderr
    page = (repo_copy / "html" / "index.html").read_text()
    entries = set(re.findall(r"vegaEmbed\('#([^']+)'", page)) | set(re.findall(r'id="([^"]+)"', page))
    for key in expected:  # one rendered entry per declared plot (a folder's files may be grouped)
        ident = re.sub(r"[/.]", "_", key)
        assert any(e.startswith(ident) for e in entries), (ident, sorted(entries))
    assert len(rendered) >= len(expected) >= 9
    # every Vega plot has its own title and labelled axes
    titles = [p["content"]["title"] for v in rendered.values() for p in v if p["type"] == "vega"]
    titles = [t["text"] if isinstance(t, dict) else t for t in titles]
    assert len(titles) == len(set(titles)) >= 12, titles
    for v in rendered.values():
        for p in v:
            if p["type"] == "vega":
                spec = json.dumps(p["content"])
                assert not re.search(r'"title": "(x|y|step|value)"', spec), spec[:300]
                assert (
                    '"title": "recall (share' in spec
                    or '"title": "training windows (log scale' in spec
                    or '"title": "epoch"' in spec
                ), spec[:300]


def test_stages_declare_exactly_the_params_they_read():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["preprocess"]["params"] == ["seed", "data", "evaluate.protocol"]  # no channel drop under tsbad
    assert stages["window"]["params"] == ["window"]
    assert "data" not in stages["moment_zero_shot"]["params"] and "zero_shot" in stages["moment_zero_shot"]["params"]
    ft = stages["moment_lora"]["do"]["params"]
    assert "lora" in ft and "budget" in ft and "finetune" not in ft
    assert not any(p.startswith(("data", "baselines")) for p in ft)
    # every finetune.* key the stage reads is declared
    from momentad.config import FinetuneParams

    keys = {f"finetune.{k}" for k in FinetuneParams.__dataclass_fields__}
    assert keys == {p for p in ft if p.startswith("finetune.")}
    # baselines read their own section, the budget and evaluation, never MOMENT's
    for params in (stages["baseline"]["params"], stages["baseline_full"]["do"]["params"]):
        assert not any(p.startswith(("lora", "finetune", "model", "zero_shot")) for p in params), params
