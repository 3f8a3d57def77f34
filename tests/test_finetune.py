"""LoRA fine-tuning: budgets, adapters, objectives, resume, and bad settings."""

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from stages.finetune import app as finetune_app
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app
from tests.conftest import MODEL_CACHE, small_params, write_params

from momentad.data import load_splits
from momentad.errors import InputError
from momentad.finetune import INTERRUPT_ENV, FinetuneConfig, Trainer, budget_windows, sequences
from momentad.models.device import resolve_device
from momentad.models.lora import add_lora, quantize_encoder
from momentad.models.moment import load_moment


def prepare(runner, workdir, **overrides):
    write_params(workdir, small_params(**overrides))
    assert runner.invoke(preprocess_app, []).exit_code == 0
    assert runner.invoke(window_app, []).exit_code == 0


def finetune(runner, budget=8, env=None):
    return runner.invoke(finetune_app, ["--budget", str(budget), "--no-progress"], env=env)


def test_budgets_are_nested_seeded_and_clean():
    index = pd.DataFrame({"any_anomaly": np.arange(3000) % 5 == 0})
    b100, b500, b1000 = (set(budget_windows(index, n, 42, 0, False)) for n in (100, 500, 1000))
    assert len(b100) == 100 and b100 < b500 < b1000
    assert not index["any_anomaly"].to_numpy()[list(b1000)].any()
    assert set(budget_windows(index, 100, 42, 0, False)) == b100  # seeded
    assert set(budget_windows(index, 100, 42, 1, False)) != b100  # another draw
    assert index["any_anomaly"].to_numpy()[budget_windows(index, 2000, 42, 0, True)].any()
    with pytest.raises(InputError, match="only 2400 anomaly-free training windows"):
        budget_windows(index, 2500, 42, 0, False)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_lora_trains_only_adapter_weights(runner, workdir, checkpointing):
    prepare(runner, workdir)
    splits, _, _ = load_splits()
    model, _ = load_moment("random-init:tiny", 42, MODEL_CACHE)
    base_before = {k: v.clone() for k, v in model.state_dict().items()}
    add_lora(model, 4, 8, 0.0, ["q", "v"], gradient_checkpointing=checkpointing)
    lora_before = {n: p.clone() for n, p in model.named_parameters() if "lora_" in n}
    assert lora_before and all(p.requires_grad == ("lora_" in n) for n, p in model.named_parameters())
    rows = budget_windows(splits["train"].index, 16, 42, 0, False)
    train = sequences(splits["train"], rows, 1, 42, 0)
    val = sequences(splits["val"], np.arange(len(splits["val"].index)), 1, 42, 0)
    cfg = FinetuneConfig(epochs=2, batch_size=8, lr=1e-2)
    Trainer(model, None, cfg, resolve_device("cpu"), "fp32", workdir / "state", 42, 0, False).fit(train, val)
    after = {
        k.replace("base_model.model.", "").replace(".base_layer", ""): v
        for k, v in model.state_dict().items()
        if "lora_" not in k
    }  # peft's renamed wrappers
    assert set(after) == set(base_before)
    assert all(torch.equal(after[k], v) for k, v in base_before.items())  # base weights bit-identical
    changed = [n for n, p in model.named_parameters() if "lora_" in n and not torch.equal(p, lora_before[n])]
    assert changed, "training must move the adapters"


@pytest.mark.parametrize("objective", ["reconstruction", "classification"])
def test_each_objective_end_to_end(runner, workdir, objective):
    prepare(runner, workdir, **{"finetune.objective": objective})
    result = finetune(runner, 16)
    assert result.exit_code == 0, result.output
    assert "RANDOM-INIT base (not pretrained)" in result.output
    doc = json.loads((workdir / "metrics/finetune/16.json").read_text())
    assert doc["method"] == "moment_lora_16" and doc["budget"] == 16
    assert doc["model"]["pretrained"] is False and doc["model"]["adapter"] == "lora"
    t = doc["training"]
    assert t["objective"] == objective and 1 <= t["epochs_run"] <= 2 and t["train_s"] > 0
    assert np.isfinite(t["best_val_loss"]) and t["trainable_parameters"] == doc["model"]["trainable_parameters"] > 0
    assert all(0 <= v <= 1 for v in doc["test"].values())
    scores = pd.read_parquet(workdir / "data/scores/finetune_16.parquet")
    test = pd.read_parquet(workdir / "data/processed/test.parquet")
    assert len(scores) == len(test) and (scores["timestamp"].to_numpy() == test["timestamp"].to_numpy()).all()
    assert np.isfinite(scores["score"]).all() and scores["score"].std() > 0
    loss = pd.read_csv(workdir / "plots/finetune/loss/16.csv")
    assert list(loss.columns) == ["epoch", "train_loss", "val_loss"] and len(loss) == t["epochs_run"]
    assert (workdir / "data/models/finetune_16/draw0.safetensors").is_file()
    assert not list((workdir / ".cache/finetune").rglob("state.json"))  # finished runs leave no state


def test_resume_after_interruption_matches_uninterrupted(runner, workdir, tmp_path_factory):
    prepare(runner, workdir, **{"finetune.epochs": 3, "finetune.patience": 5})
    assert finetune(runner).exit_code == 0
    reference = json.loads((workdir / "metrics/finetune/8.json").read_text())
    from safetensors.torch import load_file

    ref_adapter = load_file(str(workdir / "data/models/finetune_8/draw0.safetensors"))
    (workdir / "metrics/finetune/8.json").unlink()

    interrupted = finetune(runner, env={INTERRUPT_ENV: "2"})
    assert interrupted.exit_code != 0
    assert list((workdir / ".cache/finetune/8").glob("draw0-*/state.json"))  # epoch 2 checkpoint kept
    assert not (workdir / "metrics/finetune/8.json").exists()
    os.environ.pop(INTERRUPT_ENV, None)
    resumed = finetune(runner)
    assert resumed.exit_code == 0, resumed.output
    doc = json.loads((workdir / "metrics/finetune/8.json").read_text())
    assert doc["test"] == reference["test"]
    assert doc["training"]["best_val_loss"] == reference["training"]["best_val_loss"]
    adapter = load_file(str(workdir / "data/models/finetune_8/draw0.safetensors"))
    assert all(torch.equal(adapter[k], ref_adapter[k]) for k in ref_adapter)


def test_several_seeds_report_mean_and_spread(runner, workdir):
    prepare(runner, workdir, **{"finetune.seeds": [0, 1], "finetune.epochs": 1})
    assert finetune(runner).exit_code == 0
    doc = json.loads((workdir / "metrics/finetune/8.json").read_text())
    assert doc["draws"] == 2 and len(doc["per_draw"]) == 2
    vus = [d["vus_pr"] for d in doc["per_draw"]]
    assert doc["test"]["vus_pr"] == pytest.approx(np.mean(vus), abs=1e-6)
    assert doc["test_std"]["vus_pr"] == pytest.approx(np.std(vus), abs=1e-6)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model.quantization": "int4"}, "model.quantization='int4'"),
        ({"model.quantization": "nf4", "model.precision": "fp16"}, "model.quantization=nf4 with model.precision=fp16"),
        ({"lora.target_modules": ["qkv"]}, "lora.target_modules has ['qkv']"),
        ({"finetune.budgets": [8, 100000]}, "finetune.budgets has 100000"),
    ],
)
def test_bad_settings_fail_clearly(runner, workdir, overrides, message):
    prepare(runner, workdir, **overrides)
    budget = 100000 if "finetune.budgets" in overrides else 8
    result = finetune(runner, budget)
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (workdir / "metrics/finetune").exists()


@pytest.mark.parametrize("how", ["int8", "nf4"])
def test_quantized_base_trains_lora_on_cpu(how):
    model, _ = load_moment("random-init:tiny", 42, MODEL_CACHE)
    assert quantize_encoder(model, how) > 0
    add_lora(model, 4, 8, 0.0, ["q", "v"])
    x = torch.randn(4, 1, 512)
    out = model(x_enc=x, input_mask=torch.ones(4, 512)).reconstruction
    out.pow(2).mean().backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_" in n]
    assert grads and all(g is not None for g in grads)
