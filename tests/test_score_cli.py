"""`momentad score` on new data reproduces what the stage measured, and refuses bad input."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from stages.detect import app as detect_app
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app

from momentad import config, loaders
from momentad.app import app as momentad_app
from momentad.layout import Layout, parse_row
from tests.conftest import small_params, write_params

METHODS = ["moment_16", "isolation_forest_full", "pca_full"]


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """A project folder whose methods are trained once for every test of this module."""
    import os

    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("trained")
    old = os.getcwd()
    os.chdir(root)
    try:
        write_params(root, small_params(**{"methods": ["moment", "isolation_forest", "pca"], "budget.sizes": [16]}))
        runner = CliRunner()
        assert runner.invoke(preprocess_app, []).exit_code == 0
        assert runner.invoke(window_app, []).exit_code == 0
        for m in ("moment", "isolation_forest", "pca"):
            assert runner.invoke(detect_app, [m, "--no-progress"]).exit_code == 0
        # the test split as a user would have it: raw (unscaled) KPIs in the trainticket CSV layout
        cfg = config.load("params.yaml")
        raw = loaders.load(cfg.data, cfg.seed)
        schema = json.loads((root / "data/processed/schema.json").read_text())
        a, b = schema["splits"]["test"]["row_range"]
        raw.frame.iloc[a:b][["timestamp", *schema["features"], "label"]].to_csv(root / "test.csv", index=False)
    finally:
        os.chdir(old)
    return root


@pytest.fixture
def trained(trained_once, tmp_path, monkeypatch):
    """A private copy of the trained folder, the working directory of the test."""
    import shutil

    work = tmp_path / "w"
    shutil.copytree(trained_once, work)
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("method", METHODS)
def test_score_reproduces_the_stage_vus_pr(runner, trained, method):
    result = runner.invoke(momentad_app, ["score", "--method", method, "-i", "test.csv", "-o", "out.csv"])
    assert result.exit_code == 0, result.output
    row = parse_row(method)
    entry = json.loads(Layout(trained).details(row.method).read_text())["budgets"][str(row.budget)]
    stage_vus = entry["test"]["vus_pr"]  # one draw here: the draw-0 model's VUS-PR is the mean
    assert f"VUS-PR {stage_vus:.4f}, AUC-PR" in result.output and "with the saved model (draw 0;" in result.output
    out = pd.read_csv(trained / "out.csv")
    stage = pd.read_parquet(Layout(trained).scores(row.method, row.budget))
    assert list(out.columns) == ["timestamp", "score", "flag"] and len(out) == len(stage)
    pd.testing.assert_series_equal(out["score"], stage["score"], check_names=False, rtol=1e-4)  # MOMENT: float32 noise
    threshold = entry["threshold"]["value"]
    assert (out["flag"] == (out["score"] > threshold)).all() and out["flag"].sum() > 0
    # one line per flagged event (at most 20) naming its top-5 services
    flag = out["flag"].to_numpy()
    n_events = int(((flag[1:] == 1) & (flag[:-1] == 0)).sum() + flag[0])
    lines = [ln for ln in result.output.splitlines() if ln.startswith("flagged ")]
    assert len(lines) == min(n_events, 20)
    kpis = [c for c in pd.read_csv(trained / "test.csv").columns if c not in ("timestamp", "label")]
    services = {c.split("_", 1)[0] for c in kpis}
    for ln in lines:
        top = ln.split(": top services ")[1].split(", ")
        assert len(top) == 5 and set(top) <= services and len(set(top)) == 5


def test_without_labels_it_only_scores(runner, trained):
    pd.read_csv(trained / "test.csv").drop(columns="label").to_csv(trained / "nolabel.csv", index=False)
    args = ["score", "--method", "isolation_forest_full", "-i", "nolabel.csv", "-o", "o.csv"]
    result = runner.invoke(momentad_app, args)
    assert result.exit_code == 0 and "VUS-PR" not in result.output
    assert len(pd.read_csv(trained / "o.csv")) == len(pd.read_csv(trained / "nolabel.csv"))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--method", "kmeans_100"], "unknown method 'kmeans'"),
        (["--method", "knn"], "'knn' is not a method at a budget; use <method>_<budget>"),
        (["--method", "moment_500"], "'moment_500' is not trained"),
        (["--method", "isolation_forest_full", "-i", "missing.csv"], "missing.csv: file not found"),
        (["--method", "isolation_forest_full", "-i", "dropped.csv"], "missing KPI column(s)"),
        (
            ["--method", "isolation_forest_full", "-i", "semicolon.csv"],
            "the header holds ';': save the file comma-separated",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(runner, trained, args, message):
    df = pd.read_csv(trained / "test.csv")
    df.drop(columns=df.columns[3]).to_csv(trained / "dropped.csv", index=False)
    df.to_csv(trained / "semicolon.csv", index=False, sep=";")
    full = ["score", "-i", "test.csv", "-o", "never.csv", *args]
    result = runner.invoke(momentad_app, full)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (trained / "never.csv").exists()


def test_methods_lists_every_trained_row_by_budget_with_its_vus_pr(runner, trained):
    result = runner.invoke(momentad_app, ["methods"])
    assert result.exit_code == 0, result.output
    rows = [ln.split()[0] for ln in result.output.strip().splitlines()[1:]]
    assert rows == ["isolation_forest_16", "isolation_forest_full", "moment_0", "moment_16", "pca_16", "pca_full"]
    moment = next(ln for ln in result.output.splitlines() if ln.startswith("moment_16"))
    vus = json.loads(Layout(trained).details("moment").read_text())["budgets"]["16"]["test"]["vus_pr"]
    assert "RANDOM-INIT" in moment and f"{vus:.3f}" in moment


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "momentad"
    assert exe.is_file(), "pyproject.toml declares the momentad console script; `make setup` installs it"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "score" in out.stdout and "methods" in out.stdout


def test_an_empty_stretch_is_counted_then_scored(runner, trained, caplog):
    """A block of empty rows in a few KPIs: scored (forward-filled up to data.ffill_limit, the rest
    imputed with the train centre) and reported with its count, as preprocess reports it."""
    df = pd.read_csv(trained / "test.csv").drop(columns="label")
    kpis = list(df.columns[1:5])
    df[kpis] = df[kpis].astype(float)
    df.loc[100:299, kpis] = float("nan")  # 200 rows x 4 KPIs
    df.to_csv(trained / "holes.csv", index=False)
    result = runner.invoke(
        momentad_app, ["score", "--method", "isolation_forest_full", "-i", "holes.csv", "-o", "o.csv"]
    )
    assert result.exit_code == 0, result.output
    # the same warning line preprocess logs (stderr on a terminal)
    assert (
        "holes.csv: 800 empty cells; 20 forward-filled (gaps of at most 5 steps), 780 in 4 KPI(s) imputed"
        in caplog.text
    )
    assert len(pd.read_csv(trained / "o.csv")) == len(df)


@pytest.mark.parametrize("where", ["score", "preprocess"])
def test_ctrl_c_is_an_interrupt_not_a_broken_input(runner, trained, monkeypatch, where):
    """Ctrl-C while a large CSV is read: exit 130 and one line saying so (not exit 2 'not a
    readable CSV'), nothing written."""
    import momentad.app
    import momentad.loaders

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    before = sorted(p.name for p in (trained / "data/processed").iterdir())
    if where == "score":
        monkeypatch.setattr(momentad.app, "read_input", interrupted)
        result = runner.invoke(momentad_app, ["score", "--method", "pca_full", "-i", "test.csv", "-o", "o.csv"])
    else:
        monkeypatch.setattr(momentad.loaders, "load", interrupted)
        result = runner.invoke(preprocess_app, [])
    assert result.exit_code == 130, result.output
    assert result.output.strip() == "interrupted: nothing was written; run the command again to resume"
    assert not (trained / "o.csv").exists()
    assert sorted(p.name for p in (trained / "data/processed").iterdir()) == before
