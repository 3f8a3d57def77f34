"""Own data the DVC way: `dvc add data/raw/<file>`, then two queued experiments on it through
`dvc exp run --queue` + `dvc queue start` (the queue runs in a temporary copy of the repository,
which has the data only if DVC tracks it)."""

import json
import subprocess
import time

import numpy as np
import pandas as pd

from tests.conftest import dvc, small_params, write_params


def own_csv(path, n=3000):
    """A trainticket-layout CSV: two KPIs with a daily-ish cycle and labelled level shifts."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    label = np.zeros(n, dtype=int)
    for s in range(150, n, 300):
        label[s : s + 12] = 1
    df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=n, freq="1min").astype(str),
                       "cpu": np.sin(t / 60) + 0.1 * rng.normal(size=n) + 3 * label,
                       "latency": np.cos(t / 45) + 0.1 * rng.normal(size=n) + 2 * label, "label": label})  # fmt: skip
    df.to_csv(path, index=False)


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)  # fmt: skip


def test_a_queued_experiment_runs_on_dvc_tracked_own_data(repo_copy):
    own_csv(repo_copy / "data" / "raw" / "own.csv")
    added = dvc(repo_copy, "add", "data/raw/own.csv")
    assert added.returncode == 0, added.stderr + added.stdout
    write_params(repo_copy, small_params(**{
        "data.source": "csv", "data.path": "data/raw/own.csv", "methods": ["isolation_forest"],
        "budget.sizes": [8], "window.length": 128, "window.train_stride": 16}))  # fmt: skip
    git(repo_copy, "add", "-A")
    git(repo_copy, "commit", "-qm", "own data tracked by DVC")
    tracked = subprocess.run(["git", "ls-files", "data/raw"], cwd=repo_copy, capture_output=True, text=True).stdout
    assert "data/raw/own.csv.dvc" in tracked and "data/raw/own.csv\n" not in tracked  # in DVC, not in git
    for n in (50,):
        queued = dvc(repo_copy, "exp", "run", "--queue", "-S", f"isolation_forest.n_estimators={n}")
        assert queued.returncode == 0, queued.stderr + queued.stdout
    started = dvc(repo_copy, "queue", "start")
    assert started.returncode == 0, started.stderr + started.stdout
    deadline = time.time() + 420
    while time.time() < deadline:
        status = dvc(repo_copy, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(5)
    assert "Failed" not in status, status + dvc(repo_copy, "queue", "logs", status.split()[-1]).stdout
    shown = dvc(repo_copy, "exp", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    found = {}
    for commit in json.loads(shown.stdout):
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                params = data.get("params", {}).get("params.yaml", {}).get("data", {})
                metrics = data.get("metrics", {}).get("metrics/scores.json", {}).get("data", {})
                if metrics:
                    found[params["isolation_forest"]["n_estimators"]] = metrics["vus_pr"]["isolation_forest"]
    assert set(found) == {50}, (found, status)
    assert all(0 < v <= 1 for v in found.values())
