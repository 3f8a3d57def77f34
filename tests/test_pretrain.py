"""Pre-training here: the corpus, the `pretrain` stage through its CLI (one process and two under
torchrun), the checkpoint it writes and how it is named, adaptation to a dataset's own history,
and the bad inputs of each."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from momentad.detectors.moment import corpus as cp
from momentad.detectors.moment.weights import MARKER, load_moment
from momentad.errors import InputError
from momentad.results import weights_label
from tests.conftest import MODEL_CACHE, ROOT, dvc, run_bounded, small_params, write_params

ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}", "OMP_NUM_THREADS": "1"}


def make_corpus(folder: Path, n: int = 3, length: int = 1500) -> Path:
    """A small corpus in the three shapes the reader knows: long, one KPI, wide."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(length)
    pd.DataFrame(
        {
            "timestamp": pd.date_range("2020-01-01", periods=length, freq="5min").astype(str),
            "value": np.sin(t / 7) + 0.1 * rng.normal(size=length),
        }
    ).to_csv(folder / "one.csv", index=False)
    rows = [("A", p, v) for p in ("train", "test") for v in np.cos(t[: length // 2] / 5) + rng.normal(size=length // 2)]
    pd.DataFrame(rows, columns=["craft", "part", "value"]).to_csv(folder / "long.csv.gz", index=False)
    wide = pd.DataFrame({f"s{i}": np.sin(t / (3 + i)) * (i + 1) + rng.normal(size=length) for i in range(n)})
    wide.insert(0, "date", pd.date_range("2020-01-01", periods=length, freq="h").astype(str))
    wide.to_csv(folder / "wide.csv", index=False)
    return folder


def project(folder: Path, corpus: Path, **pretrain) -> Path:
    """A project folder whose params pretrain a tiny model on ``corpus`` for a few steps."""
    folder.mkdir(parents=True, exist_ok=True)
    p = small_params()
    p["threads"] = 1
    p["pretrain"].update({"size": "tiny", "corpus": str(corpus), "synthetic": 6, "synthetic_length": 600,
                          "steps": 6, "batch_size": 8, "warmup_steps": 2, "eval_every": 3, "eval_windows": 8,
                          "holdout": 0.3, **pretrain})  # fmt: skip
    write_params(folder, p)
    return folder


def run_stage(folder: Path, *args: str, processes: int = 1) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "stages.pretrain", "--no-progress", *args]
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
               "--master_port", str(29500 + os.getpid() % 1000), "-m", "stages.pretrain", "--no-progress"]  # fmt: skip
    return run_bounded(cmd, cwd=folder, env=ENV)


def test_the_reader_knows_long_one_kpi_and_wide_files(tmp_path):
    series = cp.read_corpus(make_corpus(tmp_path / "c"))
    names = [s.name for s in series]
    assert names == ["long.csv.gz:A/test", "long.csv.gz:A/train", "one.csv", "wide.csv:s0", "wide.csv:s1",
                     "wide.csv:s2"]  # fmt: skip
    for s in series:
        assert s.values.dtype == np.float32 and abs(float(s.values.mean())) < 1e-4 and abs(s.values.std() - 1) < 1e-3
    kept, held = cp.split(series, 0.3, seed=0)
    # a channel's train and test parts stay on one side
    assert {cp.family(s.name) for s in kept}.isdisjoint({cp.family(s.name) for s in held})
    assert len(held) >= 1 and len(kept) + len(held) == len(series)


def test_the_synthetic_series_are_seeded_and_diverse():
    a, b = cp.synthesize(50, 1024, seed=3), cp.synthesize(50, 1024, seed=3)
    assert all(np.array_equal(x.values, y.values) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0].values, cp.synthesize(1, 1024, seed=4)[0].values)
    # periodic ones, trending ones, noisy ones: lag-1 autocorrelation spreads widely
    ac = [np.corrcoef(s.values[:-1], s.values[1:])[0, 1] for s in a]
    assert min(ac) < 0.5 < 0.99 < max(ac)


def test_the_fingerprint_finds_a_copied_stretch_whatever_its_scale():
    rng = np.random.default_rng(1)
    corpus = [np.cumsum(rng.normal(size=3000)) for _ in range(3)]
    prints = cp.fingerprint(corpus)
    copied = np.concatenate([rng.normal(size=500), 40 + 7 * corpus[1][1000:1400], rng.normal(size=500)])
    assert cp.overlaps(copied, prints)  # a rescaled stretch of 400 steps is found
    assert not cp.overlaps(np.cumsum(rng.normal(size=3000)), prints)  # an unrelated walk is not


def test_no_evaluation_series_is_in_the_shipped_corpus():
    """No window of any dataset of study.yaml or of the default run occurs in the corpus."""
    from momentad import config
    from momentad.detectors.moment.evaluation import evaluation_series
    from momentad.detectors.moment.pretrain import check_no_evaluation_series

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        evaluation = evaluation_series(config.load("params.yaml"), ROOT / "study.yaml")
    finally:
        os.chdir(cwd)
    names = {name for name, _, _ in evaluation}
    assert len(names) >= 20 and "params.yaml's data" not in names  # the default run is simulated: nothing to find
    public = cp.read_corpus(ROOT / "data/raw/pretrain-corpus")
    check_no_evaluation_series(public, evaluation)  # raises, naming both, on a shared stretch
    # and it would: a copy of one evaluation series planted in the corpus is refused
    name, kpi, values = next(e for e in evaluation if len(e[2]) > 2000)
    planted = cp.Series("planted.csv", "planted.csv", cp._zscore(values[:2000]))
    with pytest.raises(InputError, match=f"planted.csv shares a stretch with the evaluation dataset {name}"):
        check_no_evaluation_series([*public, planted], evaluation)


def test_pretrain_stage_writes_a_checkpoint_named_as_made_here(tmp_path):
    proj = project(tmp_path / "p", make_corpus(tmp_path / "corpus"))
    out = run_stage(proj)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("pretrain: MOMENT-tiny (0.09 M parameters) on corpus (6 public series")
    ckpt = proj / "models/pretrained/mini"
    assert sorted(p.name for p in ckpt.iterdir()) == sorted(["config.json", "corpus_fingerprint.safetensors", MARKER,
                                                             "model.safetensors"])  # fmt: skip
    marker = json.loads((ckpt / MARKER).read_text())
    assert marker["origin"] == "here" and marker["pretraining"]["steps"] == 6
    assert marker["pretraining"]["samples"] == 48 and marker["pretraining"]["corpus"] == "corpus + 6 synthetic series"
    curve = pd.read_csv(proj / "plots/pretrain/loss.csv")
    assert curve["step"].tolist() == [0, 3, 6] and np.isnan(curve["train_loss"].iloc[0])
    assert curve["held_out_loss"].iloc[-1] < curve["held_out_loss"].iloc[0]  # step 0 = the random initialisation
    model, info = load_moment(str(ckpt), seed=0)
    assert info.origin == "here" and info.pretraining["steps"] == 6
    label = weights_label(info.to_dict(), long=True)
    assert label == "pretrained here on corpus + 6 synthetic series (6 steps)", label
    # the same params give the same bytes again, with 1 or 2 threads (params.yaml's threads pins both)
    # (the resumable state removed each time, so each run trains from the start)
    first = (ckpt / "model.safetensors").read_bytes()
    shutil.rmtree(proj / ".cache")
    again = run_stage(proj)
    assert again.returncode == 0 and (ckpt / "model.safetensors").read_bytes() == first
    env = {**ENV, "OMP_NUM_THREADS": "2"}
    shutil.rmtree(proj / ".cache")
    two = run_bounded([sys.executable, "-m", "stages.pretrain", "--no-progress"], cwd=proj, env=env)
    assert two.returncode == 0 and (ckpt / "model.safetensors").read_bytes() == first


def test_two_processes_follow_the_same_loss_curve_as_one(tmp_path):
    """torchrun --nproc_per_node 2 (DDP over gloo on CPU) at the same global batch: each process
    takes half of every step's windows; the loss curve matches one process within 1e-5."""
    corpus = make_corpus(tmp_path / "corpus")
    one = project(tmp_path / "one", corpus)
    two = project(tmp_path / "two", corpus)
    assert run_stage(one).returncode == 0
    out = run_stage(two, processes=2)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "on 2 process(es)" in out.stdout
    a, b = pd.read_csv(one / "plots/pretrain/loss.csv"), pd.read_csv(two / "plots/pretrain/loss.csv")
    for col in ("train_loss", "held_out_loss"):
        np.testing.assert_allclose(b[col].to_numpy(), a[col].to_numpy(), rtol=1e-5)


@pytest.mark.parametrize(
    "case, setup, message",
    [
        ("missing corpus folder", {"corpus": "nowhere"},
         "nowhere: corpus folder not found; set pretrain.corpus to a folder of CSV files"),
        ("text in a corpus file", "text", "bad.csv: column 'value' is not numeric (e.g. 'high' at row 3)"),
        ("inf in a corpus file", "inf", "bad.csv: column 'value' is infinite at row 5"),
        ("an empty column", "empty", "bad.csv: column 's1' is empty; remove it or the file from the corpus"),
        ("every series too short", "short", "every series is shorter than MOMENT's 512-step window (the longest "
                                            "has 300 values)"),
        ("zero steps", {"steps": 0}, "params.yaml: pretrain.steps=0 is out of range"),
        ("batch not shared by two processes", {"batch_size": 7},
         "pretrain.batch_size=7 is the global batch, which 2 processes cannot share evenly"),
    ],
)  # fmt: skip
def test_bad_pretrain_input_is_one_line_exit_2_nothing_written(tmp_path, case, setup, message):
    corpus = tmp_path / "corpus"
    if isinstance(setup, dict):
        make_corpus(corpus)
        proj = project(tmp_path / "p", corpus if "corpus" not in setup else tmp_path / setup["corpus"],
                       **{k: v for k, v in setup.items() if k != "corpus"})  # fmt: skip
    else:
        corpus.mkdir()
        n = 300 if setup == "short" else 1000
        frame = pd.DataFrame({"value": np.arange(n, dtype=float).astype(object), "s1": np.ones(n)})
        if setup == "text":
            frame.loc[3, "value"] = "high"
        if setup == "inf":
            frame.loc[5, "value"] = np.inf
        if setup == "empty":
            frame = pd.DataFrame({"date": range(n), "s0": np.arange(n, dtype=float), "s1": [None] * n})
        frame.to_csv(corpus / "bad.csv", index=False)
        proj = project(tmp_path / "p", corpus)
    out = run_stage(proj, processes=2 if "processes" in case else 1)
    lines = [x for x in out.stderr.strip().splitlines() if x.startswith("error: ")]
    assert out.returncode != 0 and len(lines) >= 1, out.stderr[-1500:]
    assert message in lines[0], lines[0]
    assert not (proj / "models").exists() and not (proj / "plots").exists()


def adapt_run(workdir, runner, **adapt):
    from stages.detect import app as detect_app
    from stages.preprocess import app as preprocess_app
    from stages.window import app as window_app

    write_params(workdir, small_params(**{"methods": ["moment"], "budget.sizes": [8],
                                          "moment.adapt": {**small_params()["moment"]["adapt"], **adapt}}))  # fmt: skip
    for app, args in ((preprocess_app, []), (window_app, []), (detect_app, ["moment", "--no-progress"])):
        result = runner.invoke(app, args)
        if result.exit_code != 0:
            return result
    return result


def test_adaptation_to_the_own_history_before_zero_shot(runner, workdir):
    assert adapt_run(workdir, runner).exit_code == 0
    plain = pd.read_parquet(workdir / "data/scores/moment/0.parquet")["score"].to_numpy()
    out = adapt_run(workdir, runner, steps=5, batch_size=4)
    assert out.exit_code == 0, out.output
    doc = json.loads((workdir / "reports/methods/moment.json").read_text())
    adapted = doc["budgets"]["0"]["model"]["adapted"]
    assert adapted["steps"] == 5 and adapted["samples"] == 20 and adapted["windows"] > 100
    scores = pd.read_parquet(workdir / "data/scores/moment/0.parquet")["score"].to_numpy()
    assert not np.allclose(scores, plain)  # budget 0 is now "adapted, no labels"
    cached = list((MODEL_CACHE / "adapted").glob("*/model.safetensors"))
    assert cached  # adapted once per (weights, settings, data), reused by every budget and draw
    from momentad.data import load_splits
    from momentad.detectors.registry import load_detector

    test = load_splits(workdir / "data/processed", workdir / "data/windows")[0]["test"]
    again = load_detector(workdir / "data/models/moment/0").decision_function(test)
    np.testing.assert_allclose(again, scores, rtol=1e-5, atol=1e-7)  # the saved model carries its adaptation


def test_adaptation_on_a_train_split_shorter_than_one_window():
    from momentad.detectors.registry import make

    opts = {**small_params()["moment"], "checkpoint": "random-init:tiny", "cache_dir": str(MODEL_CACHE)}
    det = make("moment", **{**opts, "adapt": {**opts["adapt"], "steps": 5}})  # scores 512-step windows
    x = np.sin(np.arange(300) / 5)[:, None]
    with pytest.raises(
        InputError,
        match="moment.adapt needs a stretch of 512 train rows without a gap .* the "
        "longest has 300: lower window.length or set moment.adapt.steps: 0",
    ):
        det.fit(x, X_val=x)


def test_the_shipped_checkpoint_is_the_default_and_loads_as_pretrained_here():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["moment"]["checkpoint"] == "models/pretrained/mini"
    folder = ROOT / "models/pretrained/mini"
    marker = json.loads((folder / MARKER).read_text())
    assert marker["origin"] == "here" and marker["size"] == "mini" and marker["pretraining"]["steps"] == 7000
    assert (folder / "model.safetensors").stat().st_size < 8 * 2**20  # a few MB, in git
    # dvc.lock records it as the pretrain stage's output of the current code: `make run` and every
    # `dvc repro` in a copy of the repository skip pretraining (25 min) instead of repeating it
    status = dvc(ROOT, "status", "pretrain")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr
    p = marker["pretraining"]
    assert p["held_out_loss"] < 0.5 * p["random_init_held_out_loss"]


def test_every_masked_row_keeps_a_visible_observed_patch():
    """A short window (8 patches) masked at 0.3 is all masked once in ~15,000 rows; MOMENT then
    normalises by zero steps and the NaN reaches the weights (the study's adapted variant failed
    that way on 64-step windows). Long windows keep exactly the masks they had."""
    import torch

    from momentad.detectors.moment.scoring import patch_mask

    short = patch_mask(200_000, 0.3, torch.Generator().manual_seed(0), 8, 64)
    assert int((short.sum(dim=1) == 0).sum()) == 0
    assert abs(1 - float(short.float().mean()) - 0.3) < 0.01  # the ratio is still MOMENT's 30 %
    observed = torch.zeros(50_000, 512)
    observed[:, 448:] = 1  # a 64-step window left-padded to MOMENT's 512
    padded = patch_mask(50_000, 0.3, torch.Generator().manual_seed(1), 8, 512, observed)
    assert int(((padded * observed).sum(dim=1) == 0).sum()) == 0
    plain = (torch.rand(32, 64, generator=torch.Generator().manual_seed(5)) >= 0.3).repeat_interleave(8, dim=1)
    assert torch.equal(patch_mask(32, 0.3, torch.Generator().manual_seed(5), 8, 512), plain.long())
