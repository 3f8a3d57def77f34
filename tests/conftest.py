"""Shared fixtures: a small copy of the repository and helpers to run stage CLIs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[1]
# random-init checkpoints are deterministic per (size, seed): share them across tests
MODEL_CACHE = ROOT / ".cache" / "test-models"

SMALL_SYNTHETIC = {
    "services": 8,
    "timesteps": 6000,
    "faults_per_type": {"train": 1, "val": 1, "test": 1},
    "fault_minutes": [4, 10],
}


def small_params(**overrides) -> dict:
    """The repository's params.yaml shrunk for tests: small synthetic series, 128-step windows."""
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["data"]["synthetic"].update(SMALL_SYNTHETIC)
    p["data"]["split"].update({"train": 0.7, "val": 0.15, "test": 0.15})  # the tests' expectations assume it
    p["window"].update({"length": 128, "train_stride": 32})  # eval_stride: null follows the length
    p["moment"].update({"checkpoint": "random-init:tiny", "cache_dir": str(MODEL_CACHE), "batch_size": 256})
    p["budget"].update({"sizes": [8, 16], "draws": 1})
    p["compare"]["bootstrap"] = 200
    p["moment"]["finetune"].update({"epochs": 2, "batch_size": 8})
    for name in p["methods"]:
        opts = p[name]
        if name != "moment" and "epochs" in opts:
            opts["epochs"] = 2
            for key in ("hidden", "d_model"):
                if key in opts:
                    opts[key] = 16
    p["cnn"]["channels"] = [8, 8]
    p["isolation_forest"]["n_estimators"] = 50
    p["random_forest"]["n_estimators"] = 20
    for dotted, value in overrides.items():
        node = p
        *parents, leaf = dotted.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = value
    return p


def write_params(folder: Path, params: dict) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A temporary working directory holding small params.yaml; stages run with cwd here."""
    write_params(tmp_path, small_params())
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """A git + DVC copy of the repository's tracked files with small params, for `dvc repro`."""
    dest = tmp_path / "repo"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout.split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    (dest / "dvc.lock").unlink(missing_ok=True)
    (dest / "study" / "dvc.lock").unlink(missing_ok=True)  # the study's outputs are not in the copy's cache
    # the copy uses the committed checkpoint as it is (`dvc freeze`): pretraining takes 25 minutes
    # and is tested through its own stage (test_pretrain.py)
    stages = (dest / "dvc.yaml").read_text()
    assert "  pretrain:\n    cmd:" in stages
    (dest / "dvc.yaml").write_text(stages.replace("  pretrain:\n    cmd:", "  pretrain:\n    frozen: true\n    cmd:"))
    write_params(dest, small_params())
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "copy"]):
        subprocess.run(cmd, cwd=dest, check=True, env=env, capture_output=True)
    return dest


def dvc(repo: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the venv's dvc in ``repo`` with the venv's python first on PATH."""
    bindir = Path(sys.executable).parent
    # the copy's own source first (the venv's editable install points at this checkout)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(repo / "src"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    return run_bounded([str(bindir / "dvc"), *args], cwd=repo, env=env)


def run_bounded(cmd: list[str], timeout: float = 540, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` whose timeout kills the whole process group (dvc's stage processes too),
    so a stage that runs away fails its test instead of outliving it."""
    import signal

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            **kwargs)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"{' '.join(cmd[-3:])} ran past {timeout:.0f} s\n{(err or '')[-2000:]}") from None
    except BaseException:  # pytest-timeout's or Ctrl-C's exception: leave nothing running
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


STAGE_ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}


def interrupt_training(workdir: Path, method: str = "moment", after_epoch: int = 1,
                       timeout: float = 120) -> subprocess.CompletedProcess:  # fmt: skip
    """Run ``stages.detect <method>`` in a subprocess and press Ctrl-C (SIGINT) once a training
    checkpoint of at least ``after_epoch`` epochs is on disk: a real interruption mid-training.
    The stage's params must train long enough to be caught (many epochs)."""
    import json
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "stages.detect", method, "--no-progress"], cwd=workdir,
                            env=STAGE_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        states = list((workdir / ".cache" / "train").glob(f"{method}_*/*/state.json"))
        try:
            if any(json.loads(s.read_text())["epoch"] >= after_epoch for s in states):
                break
        except (OSError, ValueError):  # a checkpoint being replaced
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
