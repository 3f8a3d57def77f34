"""params.yaml as one typed tree: every mistake is one line naming the key and the fix."""

import pytest
import yaml
from stages.preprocess import app as preprocess_app
from tests.conftest import ROOT, small_params, write_params

from momentad import config
from momentad.detectors.registry import configure
from momentad.errors import InputError


def check(overrides: dict) -> config.Params:
    return configure(config.parse(small_params(**overrides)))


def test_repository_params_are_valid_and_complete():
    cfg = configure(config.load(ROOT / "params.yaml"))
    assert cfg.seed == 42 and cfg.finetune.lr == pytest.approx(1e-3)
    assert cfg.baselines.options["tcn_ae"].dilations == [1, 2, 4, 8]
    assert set(cfg.baselines.methods) <= set(cfg.baselines.options)
    assert cfg.window.eval_stride == cfg.window.length == 512 and cfg.budget.draws == 3


def test_eval_stride_follows_a_lowered_window_length():
    assert check({"window.length": 256}).window.eval_stride == 256
    assert check({"window.length": 256, "window.eval_stride": 64}).window.eval_stride == 64
    with pytest.raises(InputError, match=r"window.eval_stride=300 is out of range; use a value in \[1, 256\]"):
        check({"window.length": 256, "window.eval_stride": 300})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"lora.alpha": "abc"}, "lora.alpha must be a number, got 'abc'"),
        ({"lora.dropout": 2}, "lora.dropout=2.0 is out of range; use a value in [0, 1)"),
        ({"lora.rank": 2.5}, "lora.rank must be an integer, got 2.5"),
        ({"model.batch_size": 0}, "model.batch_size=0 is out of range"),
        ({"finetune.gradient_checkpointing": "yes"}, "finetune.gradient_checkpointing must be true or false"),
        ({"budget.sizes": []}, "budget.sizes is empty"),
        ({"finetune.budgets": [100]}, "finetune.budgets is not a known key"),
        ({"finetune.epoch": 3}, "finetune.epoch is not a known key; did you mean finetune.epochs?"),
        ({"baselines.lstm_ae.epoch": 3}, "lstm_ae.epoch is not a known key; did you mean baselines.lstm_ae.epochs?"),
        ({"baselines.lstm_ae.loss": "huber"}, "baselines.lstm_ae.loss must be one of 'mse', 'feature_scaled'"),
        ({"baselines.methods": ["knn"]}, "baselines.methods has 'knn'"),
        ({"baselines.iforest": {"window": 3}}, "baselines.iforest is not a known baseline; did you mean"),
        ({"evaluate.sliding_window": "big"}, "evaluate.sliding_window must be an integer or one of 'auto'"),
        ({"data.split": {"train": 0.7, "val": 0.2, "test": 0.2}}, "data.split fractions sum to 1.100"),
        ({"window.eval_stride": 1000}, "window.eval_stride=1000 is out of range"),
        ({"modle": {}}, "modle is not a known section; did you mean model?"),
    ],
)  # fmt: skip
def test_mistakes_name_the_key(overrides, message):
    with pytest.raises(InputError) as e:
        check(overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_key_is_an_error_not_a_silent_default():
    p = small_params()
    del p["finetune"]["patience"]
    with pytest.raises(InputError, match="finetune.patience is missing; add it"):
        config.parse(p)


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("lr: 0.001", "lr: 1e-3")
    assert "lr: 1e-3" in text and yaml.safe_load(text)["finetune"]["lr"] == "1e-3"  # YAML 1.1 reads a string
    (tmp_path / "params.yaml").write_text(text)
    assert config.load(tmp_path / "params.yaml").finetune.lr == pytest.approx(1e-3)


def test_a_bad_key_stops_the_first_stage_before_any_work(runner, workdir):
    write_params(workdir, small_params(**{"lora.alpha": "abc"}))
    result = runner.invoke(preprocess_app, [])
    assert result.exit_code == 2
    assert result.output.strip() == "error: params.yaml: lora.alpha must be a number, got 'abc'"
    assert not (workdir / "data").exists()
    (workdir / "params.yaml").write_text("seed: [1\n")
    result = runner.invoke(preprocess_app, [])
    assert result.exit_code == 2 and "not valid YAML at line" in result.output
