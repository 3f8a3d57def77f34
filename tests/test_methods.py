"""Every method through the one runner (`python -m stages.detect <id>`) on short synthetic data
with a tiny random-init MOMENT: the output contract, saved artifacts, determinism, LoRA."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from stages.detect import app as detect_app
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app

from momentad import config
from momentad.budgets import restrict, span
from momentad.data import load_splits
from momentad.detectors.base import Detector
from momentad.detectors.moment.lora import add_lora, quantize_encoder
from momentad.detectors.moment.scoring import window_batches
from momentad.detectors.moment.weights import load_moment
from momentad.detectors.registry import configure, detector_class, load_detector, names
from momentad.errors import InputError
from momentad.evaluate import evaluate
from momentad.layout import Layout
from tests.conftest import MODEL_CACHE, ROOT, interrupt_training, small_params, write_params

METHODS = names()
TEST_KEYS = {"vus_pr", "vus_roc", "auc_pr", "auc_roc", "standard_f1", "pa_f1", "event_f1", "r_f1", "affiliation_f1",
             "f1_at_val_threshold", "precision_at_val_threshold", "recall_at_val_threshold"}  # fmt: skip
WEIGHT_FILES = {"moment": {"detector.json"}, "isolation_forest": {"model.skops"}, "random_forest": {"model.skops"},
                "pca": {"pca.safetensors"}, "knn": {"knn.safetensors"}, "moving_variance": set(),
                "squared_difference": set()}  # fmt: skip


def prepare(runner, workdir, **overrides):
    write_params(workdir, small_params(**overrides))
    assert runner.invoke(preprocess_app, []).exit_code == 0
    assert runner.invoke(window_app, []).exit_code == 0


def detect(runner, method, env=None):
    return runner.invoke(detect_app, [method, "--no-progress"], env=env)


def cfg_here():
    return configure(config.load("params.yaml"))


def ctx(cfg, **kw):
    from momentad.detectors.base import RunContext

    return RunContext(seed=cfg.seed, window=cfg.window, **kw)


@pytest.mark.parametrize("method", METHODS)
def test_each_method_end_to_end_through_the_runner(runner, workdir, method):
    prepare(runner, workdir)
    result = detect(runner, method)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(method) and len(result.output.strip().splitlines()) == 1
    cls = detector_class(method)
    if method == "moment":
        assert "[RANDOM-INIT weights (random-init:tiny), not pretrained]" in result.output
    lay = Layout(workdir)
    doc = json.loads(lay.details(method).read_text())
    assert doc["method"] == method and doc["capabilities"] == cls.capabilities()
    want = ["0"] * cls.zero_shot + (["8", "16"] + ["full"] * cls.full_split) * cls.trains
    assert list(doc["budgets"]) == want
    assert doc["data"]["synthetic"] is True and "runtime" not in json.dumps(doc)  # timings live in logs/
    assert json.loads(lay.timings(method).read_text())["budgets"].keys() == doc["budgets"].keys()
    test = pd.read_parquet(workdir / "data/processed/test.parquet")
    splits, _, _ = load_splits()
    for budget, entry in doc["budgets"].items():
        assert entry["status"] == "ok" and set(entry["test"]) == TEST_KEYS, budget
        assert all(0 <= v <= 1 for v in entry["test"].values())
        assert entry["threshold"]["chosen_on"] == "val" and len(entry["fault_type_recall"]) == 14
        origin = "random-init" if method == "moment" else "scratch" if budget != "0" else "none"
        assert entry["model"]["origin"] == origin and (entry["model"]["checkpoint"] is None) != (method == "moment")
        scores = pd.read_parquet(lay.scores(method, budget))
        assert list(scores.columns) == ["timestamp", "score", "label", "fault_type", "score_0"]
        assert (scores["score"] == scores["score_0"]).all()
        assert (scores["timestamp"].to_numpy() == test["timestamp"].to_numpy()).all()
        assert np.isfinite(scores["score"]).all() and scores["score"].std() > 0
        # saved model: safe formats only, and loading it back gives the same scores
        folder = lay.model_dir(method, budget)
        files = {q.name for q in folder.rglob("*") if q.is_file()}
        assert not [f for f in files if f.endswith((".pkl", ".pickle", ".bin", ".pt", ".joblib"))], files
        assert {"detector.json", "run.json"} | WEIGHT_FILES.get(method, {"model.safetensors"}) <= files, files
        again = load_detector(folder).decision_function(splits["test"])
        np.testing.assert_allclose(again, scores["score"].to_numpy(), rtol=1e-5, atol=1e-7)


def test_lora_adapter_is_peft_loadable(runner, workdir):
    from peft import PeftConfig

    prepare(runner, workdir)
    assert detect(runner, "moment").exit_code == 0
    folder = Layout(workdir).model_dir("moment", 8) / "adapter"
    pc = PeftConfig.from_pretrained(str(folder))
    assert pc.peft_type == "LORA" and pc.r == 8 and sorted(pc.target_modules) == ["q", "v"]
    saved = json.loads((folder / "adapter_config.json").read_text())
    assert saved["target_modules"] == ["q", "v"]  # a stable order on disk (peft keeps a set)
    assert pc.base_model_name_or_path.startswith("random-init:tiny")  # names its base model
    assert not (folder / "README.md").exists()  # no empty model card
    history = json.loads(Layout(workdir).details("moment").read_text())["budgets"]["8"]["history"]
    assert set(history[0]) == {"epoch", "train_loss", "val_loss"} and len(history) >= 1


def test_zero_shot_identical_scores_on_two_runs(runner, workdir):
    prepare(runner, workdir, **{"budget.sizes": [8]})
    lay = Layout(workdir)
    assert detect(runner, "moment").exit_code == 0
    first, d1 = pd.read_parquet(lay.scores("moment", 0)), lay.details("moment").read_text()
    assert detect(runner, "moment").exit_code == 0
    pd.testing.assert_frame_equal(first, pd.read_parquet(lay.scores("moment", 0)))
    assert d1 == lay.details("moment").read_text()


@pytest.mark.parametrize("length", [256, 128])
def test_short_windows_are_padded_and_masked(runner, workdir, length):
    prepare(runner, workdir, **{"window.length": length, "window.eval_stride": length})
    splits, _, _ = load_splits()
    test = splits["test"]
    batches = list(window_batches(test.values, test.index, batch_size=7))
    x = np.concatenate([b[1] for b in batches])
    mask = np.concatenate([b[2] for b in batches])
    assert x.shape == (len(test.index) * len(test.features), 1, 512)
    assert (mask.sum(axis=1) == length).all() and (mask[:, : 512 - length] == 0).all()
    assert (x[:, 0, : 512 - length] == 0).all()
    cfg = cfg_here()
    det = detector_class("moment").from_config(cfg, ctx(cfg)).fit(None)
    scores = det.score(test)
    assert scores.shape == (len(test),) and np.isfinite(scores).all()
    # padding must not leak into the score: the same window scored alone gives the same errors
    alone = det.channel_scores(type(test)(test.name, test.frame, test.features, test.index.iloc[:1]))
    np.testing.assert_allclose(alone[:length], det.channel_scores(test)[:length], rtol=1e-4, atol=1e-6)


def test_threshold_never_sees_test_labels(runner, workdir):
    prepare(runner, workdir)
    splits, _, _ = load_splits()
    val, test = splits["val"], splits["test"]
    rng = np.random.default_rng(0)
    val_scores, test_scores = rng.random(len(val)), rng.random(len(test))
    ev = cfg_here().evaluate
    before = evaluate(val, val_scores, test, test_scores, ev, 32)
    flipped = type(test)(test.name, test.frame.assign(label=1 - test.frame["label"]), test.features, test.index)
    after = evaluate(val, val_scores, flipped, test_scores, ev, 32)
    assert before["threshold"] == after["threshold"]  # test labels changed, threshold did not
    assert before["test"]["auc_roc"] == pytest.approx(1 - after["test"]["auc_roc"], abs=1e-6)
    val2 = type(val)(val.name, val.frame.assign(label=np.roll(val.frame["label"], 50)), val.features, val.index)
    assert evaluate(val2, val_scores, test, test_scores, ev, 32)["threshold"] != before["threshold"]


def test_budgets_are_nested_seeded_and_clean():
    n = 3000
    index = pd.DataFrame({"start": np.arange(n) * 8, "stop": np.arange(n) * 8 + 512,
                          "any_anomaly": np.arange(n) % 5 == 0})  # fmt: skip
    spans = {b: span(index, b, 1000, 42, 0, False) for b in (100, 500, 1000)}
    assert spans[100][0] == spans[500][0] == spans[1000][0]  # one start per draw: nested stretches
    assert spans[100][1] < spans[500][1] < spans[1000][1]
    frame = pd.DataFrame({"label": np.zeros(n * 8 + 512, dtype=np.int8), "timestamp": 0, "fault_type": None})
    train = type("S", (), {})  # a minimal Split stand-in for restrict
    from momentad.data import Split

    train = Split("train", frame, [], index)
    for b, (lo, hi) in spans.items():
        part = restrict(train, lo, hi)
        assert len(part) == hi - lo and (part.index["start"] >= 0).all() and (part.index["stop"] <= hi - lo).all()
        assert (~part.index["any_anomaly"]).sum() == b  # exactly b anomaly-free windows
    assert span(index, 100, 1000, 42, 0, False) == spans[100]  # seeded
    assert span(index, 100, 1000, 42, 1, False) != spans[100]  # another draw, another stretch
    lo, hi = span(index, 100, 1000, 42, 0, True)
    assert (hi - lo - 512) // 8 + 1 == 100  # counting every window: exactly 100 consecutive ones
    from momentad.errors import NotRun

    with pytest.raises(NotRun, match="budget 2500 needs 2500 anomaly-free training windows; the train split has 2400"):
        span(index, 2500, 2500, 42, 0, False)


def test_a_budget_the_data_cannot_supply_is_recorded_not_failed(runner, workdir):
    from stages.compare import app as compare_app

    prepare(runner, workdir, **{"budget.sizes": [1, 100000], "methods": ["moment", "random_forest"]})
    lay = Layout(workdir)
    # one anomaly-free window holds no label: the supervised forest cannot train on it
    for method, budget, reason in (
            ("random_forest", "1", "supervised, and its training rows hold no labelled anomaly"),
            ("moment", "100000", "budget 100000 needs 100000 training windows")):  # fmt: skip
        result = detect(runner, method)
        assert result.exit_code == 0, result.output
        assert f"{budget}: not run" in result.output, result.output
        entry = json.loads(lay.details(method).read_text())["budgets"][budget]
        assert entry["status"].startswith(f"not run: {reason}")
        assert not lay.scores(method, budget).exists() and not lay.model_dir(method, budget).exists()
        # every path the method's DVC stage declares exists, or `dvc repro` fails the stage
        stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["detect"]["do"]
        declared = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
        for path in declared:
            assert (workdir / path.replace("${item}", method)).exists(), path
    result = runner.invoke(compare_app, [])
    assert result.exit_code == 0, result.output
    report = (workdir / "reports/compare.md").read_text()
    assert "## Not run" in report and "| random_forest | 1 | not run: supervised" in report
    assert "| moment | 100000 | not run: budget 100000 needs" in report


@pytest.mark.parametrize("checkpointing", [False, True])
def test_lora_trains_only_adapter_weights(runner, workdir, checkpointing):
    prepare(runner, workdir, **{"moment.finetune.gradient_checkpointing": checkpointing, "moment.lora.dropout": 0.0})
    splits, _, _ = load_splits()
    base, _ = load_moment("random-init:tiny", 42, MODEL_CACHE)
    base_before = {k: v.clone() for k, v in base.state_dict().items()}
    cfg = cfg_here()
    det = detector_class("moment").from_config(cfg, ctx(cfg))
    det.fit(restrict(splits["train"], *span(splits["train"].index, 16, 16, 42, 0, False)), X_val=splits["val"])
    model = det.model_
    assert all(p.requires_grad == ("lora_" in n) for n, p in model.named_parameters())
    after = {k.replace("base_model.model.", "").replace(".base_layer", ""): v
             for k, v in model.state_dict().items() if "lora_" not in k}  # fmt: skip
    assert set(after) == set(base_before)
    assert all(torch.equal(after[k], v) for k, v in base_before.items())  # base weights bit-identical
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b), "training must move the adapters (B starts at 0)"


@pytest.mark.parametrize("objective", ["reconstruction", "classification"])
def test_each_lora_objective_end_to_end(runner, workdir, objective):
    prepare(runner, workdir, **{"moment.finetune.objective": objective, "budget.sizes": [16]})
    result = detect(runner, "moment")
    assert result.exit_code == 0, result.output
    doc = json.loads(Layout(workdir).details("moment").read_text())["budgets"]["16"]
    assert doc["model"]["adapter"] == "lora" and doc["model"]["origin"] == "random-init"
    t = doc["extra"]["training"]
    assert t["objective"] == objective and 1 <= t["epochs_run"] <= 2
    assert np.isfinite(t["best_val_loss"]) and doc["model"]["trainable_parameters"] > 0
    assert not list((workdir / ".cache/train").rglob("state.json"))  # finished runs leave no state


def test_resume_after_interruption_matches_uninterrupted(runner, workdir):
    prepare(runner, workdir, **{"moment.finetune.epochs": 60, "moment.finetune.patience": 100, "budget.sizes": [16]})
    lay = Layout(workdir)
    assert detect(runner, "moment").exit_code == 0
    reference = json.loads(lay.details("moment").read_text())["budgets"]["16"]
    from safetensors.torch import load_file

    adapter = lay.model_dir("moment", 16) / "adapter" / "adapter_model.safetensors"
    ref_adapter = load_file(str(adapter))
    lay.details("moment").unlink()
    interrupted = interrupt_training(workdir, after_epoch=2)  # Ctrl-C mid-training, a real SIGINT
    assert interrupted.returncode == 130, interrupted.stderr
    assert interrupted.stderr.strip().splitlines()[-1].startswith("interrupted: nothing was written")
    (state,) = (workdir / ".cache/train/moment_16").glob("*/state.json")  # the checkpoint is kept
    assert 2 <= json.loads(state.read_text())["epoch"] < 60
    assert not lay.details("moment").exists()
    resumed = detect(runner, "moment")
    assert resumed.exit_code == 0, resumed.output
    doc = json.loads(lay.details("moment").read_text())["budgets"]["16"]
    assert doc["test"] == reference["test"]
    assert doc["extra"]["training"]["best_val_loss"] == reference["extra"]["training"]["best_val_loss"]
    got = load_file(str(adapter))
    assert all(torch.equal(got[k], ref_adapter[k]) for k in ref_adapter)


def test_corrupt_checkpoint_is_set_aside_and_training_restarts(runner, workdir):
    prepare(runner, workdir, **{"moment.finetune.epochs": 60, "moment.finetune.patience": 100, "budget.sizes": [8]})
    assert interrupt_training(workdir).returncode == 130
    (state,) = (workdir / ".cache/train/moment_8").glob("*/current.safetensors")
    state.write_bytes(state.read_bytes()[:50])  # truncated
    result = detect(runner, "moment")
    assert result.exit_code == 0, result.output
    assert list((workdir / ".cache/train/moment_8").glob("*.corrupt-*"))


def test_several_draws_report_mean_and_spread(runner, workdir):
    prepare(runner, workdir, **{"budget.draws": 2, "moment.finetune.epochs": 1})
    lay = Layout(workdir)
    docs = {}
    for m in ("moment", "lstm_ae", "random_forest", "pca"):
        assert detect(runner, m).exit_code == 0
        docs[m] = json.loads(lay.details(m).read_text())["budgets"]
    doc = docs["moment"]["8"]
    assert doc["draws"] == 2 and len(doc["per_draw"]) == 2 and docs["moment"]["0"]["draws"] == 1
    vus = [d["vus_pr"] for d in doc["per_draw"]]
    assert doc["test"]["vus_pr"] == pytest.approx(np.mean(vus), abs=1e-6)
    assert doc["test_std"]["vus_pr"] == pytest.approx(np.std(vus), abs=1e-6)
    assert [d["train_windows"] for d in doc["per_draw"]] == [8, 8]  # LoRA trains on exactly the budget
    # draw k of every method at a budget trains on the same rows; the draws differ
    rows = {m: [d["train_rows"] for d in docs[m]["8"]["per_draw"]] for m in docs}
    assert rows["moment"] == rows["lstm_ae"] == rows["pca"]
    assert docs["pca"]["full"]["draws"] == 1 and docs["lstm_ae"]["full"]["draws"] == 2  # seeds matter only there
    scores = pd.read_parquet(lay.scores("lstm_ae", 8))
    assert {"score_0", "score_1"} <= set(scores.columns) and not np.allclose(scores["score_0"], scores["score_1"])


@pytest.mark.parametrize(
    "overrides, method, message",
    [
        ({"moment.quantization": "int4"}, "moment", "moment.quantization must be one of 'none', 'int8', 'nf4'"),
        ({"moment.quantization": "nf4", "moment.precision": "fp16"}, "moment",
         "moment.quantization=nf4 with moment.precision=fp16"),
        ({"moment.lora.target_modules": ["qkv"]}, "moment", "moment.lora.target_modules[0] must be one of"),
        ({"budget.sizes": [8, 8]}, "moment", "budget.sizes repeats a budget"),
        ({"budget.draws": 0}, "moment", "budget.draws=0 is out of range; use a value in [1, 100]"),
        ({"moment.zero_shot.channel_reduce": "median"}, "moment", "moment.zero_shot.channel_reduce must be one of"),
        ({"methods": ["pca"]}, "knn", "method 'knn' is not in params.yaml's methods (pca); add it there"),
        ({}, "kmeans", "unknown method 'kmeans'"),
        ({"window.length": 100, "window.eval_stride": 100}, "moment",
         "window.length=100 must be a multiple of MOMENT's patch length 8"),
    ],
)  # fmt: skip
def test_bad_settings_fail_clearly(runner, workdir, overrides, method, message):
    prepare(runner, workdir, **{k: v for k, v in overrides.items() if k.startswith("window.")})
    write_params(workdir, small_params(**overrides))
    result = detect(runner, method)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert not (workdir / "reports").exists()
    assert not [p for d in ("data/models", "data/scores") for p in (workdir / d).rglob("*")]  # nothing half-written


@pytest.mark.parametrize("how", ["int8", "nf4"])
def test_quantized_base_runs_lora_backward_on_cpu(how):
    model, _ = load_moment("random-init:tiny", 42, MODEL_CACHE)
    assert quantize_encoder(model, how) > 0
    add_lora(model, 4, 8, 0.0, ["q", "v"])
    x = torch.randn(4, 1, 512)
    out = model(x_enc=x, input_mask=torch.ones(4, 512)).reconstruction
    out.pow(2).mean().backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_" in n]
    assert grads and all(g is not None for g in grads)


def test_every_registered_method_is_a_detector_in_the_pool():
    pool = yaml.safe_load((ROOT / "params.yaml").read_text())["methods"]
    assert sorted(pool) == METHODS  # the default pool is every method there is
    for name in METHODS:
        cls = detector_class(name)
        assert issubclass(cls, Detector) and cls.name == name
        assert cls.zero_shot or cls.trains
    assert detector_class("moment").budgets([100, 500]) == ["0", "100", "500"]
    assert detector_class("pca").budgets([100, 500]) == ["100", "500", "full"]
    with pytest.raises(InputError, match="unknown method 'kmeans'"):
        detector_class("kmeans")


def test_outputs_are_readable_by_the_group(runner, workdir):
    import stat

    prepare(runner, workdir)
    old = os.umask(0o022)
    try:
        assert detect(runner, "isolation_forest").exit_code == 0
    finally:
        os.umask(old)
    lay = Layout(workdir)
    m = "isolation_forest"
    for path in (lay.details(m), lay.scores(m, "full"), lay.model_dir(m, "full") / "run.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE(lay.models_dir(m).stat().st_mode) == 0o755


def test_same_results_with_one_or_two_threads(runner, workdir):
    """OMP_NUM_THREADS must not change a result: the runner fixes torch's thread count
    (`threads` in params). tcn_ae differed by ~2e-4 between 1 and 2 threads before."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    prepare(runner, workdir)
    got = {}
    for t in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": t, "MKL_NUM_THREADS": t,
               "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}  # fmt: skip
        out = subprocess.run([sys.executable, "-m", "stages.detect", "tcn_ae", "--no-progress"], cwd=workdir,
                             env=env, capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 0, out.stderr
        got[t] = pd.read_parquet(Layout(workdir).scores("tcn_ae", 16))["score"].to_numpy()
    np.testing.assert_array_equal(got["1"], got["2"])


def test_blas_follows_threads_not_omp_num_threads(tmp_path):
    """PCA's SVD runs in OpenBLAS, which splits its sums by its own thread count: the runner
    pins it to `threads` like torch. Unpinned, these scores (range 2.9e5) differed by 0.19 between
    OMP_NUM_THREADS=1 and 2 (3.5e-7 of the score range on the AIOps KPI in the study)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = (
        "import sys, numpy as np\n"
        "from momentad.threads import deterministic\n"
        "from momentad.detectors.pca import PCADetector, PCAParams\n"
        "from threadpoolctl import threadpool_info\n"
        "deterministic(2)\n"
        "print(sorted({i['num_threads'] for i in threadpool_info()}))\n"
        "x = np.random.default_rng(0).normal(size=(3000, 3))\n"
        "d = PCADetector(PCAParams(window=100, n_components=0.9)).fit(x)\n"
        "np.save(sys.argv[1], d.decision_function(x))\n"
    )
    got = {}
    for t in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": t, "OPENBLAS_NUM_THREADS": t,
               "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}  # fmt: skip
        out = subprocess.run([sys.executable, "-c", script, str(tmp_path / f"{t}.npy")], env=env,
                             capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "[2]", out.stdout  # every BLAS / OpenMP pool at 2 threads
        got[t] = np.load(tmp_path / f"{t}.npy")
    np.testing.assert_array_equal(got["1"], got["2"])
