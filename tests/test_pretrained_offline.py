"""The pretrained path without network: a Hugging Face cache entry shaped like the hub's
AutonLab/MOMENT-1-large snapshot at the commit params.yaml pins (its config.json keys,
MOMENT-1-large's weight shapes, random values) loads through `moment.checkpoint:
AutonLab/MOMENT-1-large` with `moment.offline: true` and HF_HUB_OFFLINE=1, labelled pretrained; a
snapshot holding only a pickle file is refused; a revision given as a branch is recorded as the
commit it resolved to."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app

from momentad.detectors.moment.weights import HUB_REVISIONS, moment_config, write_random_init
from momentad.layout import Layout
from tests.conftest import MODEL_CACHE, ROOT, small_params, write_params

REPO = "AutonLab/MOMENT-1-large"
REVISION = HUB_REVISIONS[REPO]  # a snapshot folder is named by its commit


def hub_config() -> dict:
    """config.json as momentfm's hub snapshots carry it: d_model left null (momentfm derives it
    from t5_config for flan-t5 backbones) and the full flan-t5-large T5 config."""
    cfg = moment_config("large")
    cfg["d_model"] = None
    cfg["t5_config"].update({"_name_or_path": "google/flan-t5-large", "n_positions": 512,
                             "classifier_dropout": 0.0, "use_cache": True, "output_past": True})  # fmt: skip
    return cfg


@pytest.fixture(scope="module")
def large_weights():
    """MOMENT-1-large-shaped safetensors (341 M parameters, random), built once and cached."""
    folder = MODEL_CACHE / "random-init-large-seed0"
    if not (folder / "model.safetensors").is_file():
        write_random_init("large", 0, folder)
    return folder / "model.safetensors"


def hf_cache(root, weights=None, pickle_only=False, repo=REPO, revision=REVISION, config=None):
    snap = root / "hub" / f"models--{repo.replace('/', '--')}" / "snapshots" / revision
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(config or hub_config()))
    if pickle_only:
        (snap / "pytorch_model.bin").write_bytes(b"a pickle that must never be unpickled")
    else:
        os.symlink(weights, snap / "model.safetensors")  # the hub cache links blobs the same way
    refs = snap.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text(revision)
    return root


def run_zero_shot(workdir, hf_home, runner, **params):
    """MOMENT zero-shot offline against ``hf_home`` (a budget the data cannot supply leaves only
    budget 0); ``params`` override the checkpoint's defaults (params.yaml's moment.revision unless
    given)."""
    # a short, narrow series: MOMENT-1-large scores about 5 sequences/s on 2 CPU cores
    write_params(workdir, small_params(**{"moment.checkpoint": REPO, "moment.offline": True, "methods": ["moment"],
                                          "moment.batch_size": 64, "data.synthetic.services": 2,
                                          "budget.sizes": [100000],
                                          "window.length": 512, "window.train_stride": 64,
                                          "window.eval_stride": 512, **params}))  # fmt: skip
    assert runner.invoke(preprocess_app, []).exit_code == 0
    assert runner.invoke(window_app, []).exit_code == 0
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "stages.detect", "moment", "--no-progress"], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip


def test_hub_snapshot_in_the_cache_loads_offline_as_pretrained(workdir, runner, tmp_path, large_weights):
    assert small_params()["moment"]["revision"] == REVISION  # the default pins this snapshot's commit
    home = hf_cache(tmp_path / "hf", large_weights)
    out = run_zero_shot(workdir, home, runner)
    assert out.returncode == 0, out.stderr
    assert f"moment [pretrained elsewhere ({REPO}), not by this project]" in out.stdout
    doc = json.loads(Layout(workdir).details("moment").read_text())
    m = doc["budgets"]["0"]["model"]
    assert m["origin"] == "hub" and m["source"] == "hub" and m["checkpoint"] == REPO
    assert m["revision"] == REVISION and m["parameters"] > 340_000_000
    assert json.loads((Layout(workdir).model_dir("moment", 0) / "run.json").read_text())["model"]["origin"] == "hub"


def test_snapshot_with_only_a_pickle_is_refused(workdir, runner, tmp_path):
    home = hf_cache(tmp_path / "hf", pickle_only=True)
    out = run_zero_shot(workdir, home, runner)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "has no model.safetensors (it has pytorch_model.bin" in lines[0], out.stderr
    assert not (workdir / "reports").exists()
    shutil.rmtree(home)


def test_a_branch_revision_is_recorded_as_its_commit(workdir, runner, tmp_path):
    """moment.revision: main loads what refs/main points at, and the details name that commit."""
    tiny = MODEL_CACHE / "random-init-tiny-seed0"
    if not (tiny / "model.safetensors").is_file():
        write_random_init("tiny", 0, tiny)
    commit = "0123456789abcdef0123456789abcdef01234567"
    home = hf_cache(tmp_path / "hf", tiny / "model.safetensors", repo="me/moment-tiny", revision=commit,
                    config=moment_config("tiny"))  # fmt: skip
    out = run_zero_shot(workdir, home, runner, **{"moment.checkpoint": "me/moment-tiny", "moment.revision": "main"})
    assert out.returncode == 0, out.stderr
    m = json.loads(Layout(workdir).details("moment").read_text())["budgets"]["0"]["model"]
    assert m["revision"] == commit and m["origin"] == "hub" and m["source"] == "hub"
