"""Stage processes end with their parent, and one method's checkpoint folder has one writer."""

import fcntl
import os
import signal
import subprocess
import sys
import time

from stages.detect import app as detect_app
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app

from tests.conftest import ROOT, interrupt_training, small_params, write_params

ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}


def prepare(runner, workdir, **overrides):
    write_params(workdir, small_params(**overrides))
    assert runner.invoke(preprocess_app, []).exit_code == 0
    assert runner.invoke(window_app, []).exit_code == 0


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split()[2] != "Z"


def test_killing_the_parent_ends_the_training_child(runner, workdir):
    """As when a user kills only the `dvc` process: the stage it started must not go on."""
    prepare(runner, workdir, **{"moment.finetune.epochs": 200, "moment.finetune.patience": 200, "budget.sizes": [16]})
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys; p = subprocess.Popen([sys.executable, '-m', 'stages.detect', "
         "'moment', '--no-progress']); print(p.pid, flush=True); p.wait()"],
        cwd=workdir, env=ENV, stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    child = int(parent.stdout.readline())
    deadline = time.time() + 60
    while not list((workdir / ".cache/train").glob("moment_16/*.lock")) and time.time() < deadline:
        time.sleep(0.5)  # training has started
    assert alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 20
    while alive(child) and time.time() < deadline:
        time.sleep(0.2)
    assert not alive(child), "the stage outlived its parent"


def test_a_second_run_cannot_write_into_a_running_checkpoint(runner, workdir):
    prepare(runner, workdir, **{"moment.finetune.epochs": 60, "moment.finetune.patience": 100, "budget.sizes": [8]})
    assert interrupt_training(workdir).returncode == 130
    (lock,) = (workdir / ".cache/train/moment_8").glob("*.lock")
    with open(lock, "a+") as held:  # another process is training this method
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        out = subprocess.run([sys.executable, "-m", "stages.detect", "moment", "--no-progress"], cwd=workdir,
                             env=ENV, capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 2 and "another process is training this method now" in out.stderr, out.stderr
    assert not (workdir / "reports").exists()
    result = runner.invoke(detect_app, ["moment", "--no-progress"])  # lock released: it resumes
    assert result.exit_code == 0, result.output
