"""params.yaml as one typed tree: every mistake is one line naming the key and the fix."""

import pytest
import yaml
from stages.preprocess import app as preprocess_app

from momentad import config
from momentad.detectors.registry import configure
from momentad.errors import InputError
from tests.conftest import ROOT, small_params, write_params


def check(overrides: dict) -> config.Params:
    from momentad import loaders

    cfg = configure(config.parse(small_params(**overrides)))
    loaders.configure(cfg.data, cfg.evaluate.protocol)  # what preprocess checks of the data section
    return cfg


def test_repository_params_are_valid_and_complete():
    cfg = configure(config.load(ROOT / "params.yaml"))
    assert cfg.seed == 42 and cfg.options["moment"].finetune.lr == pytest.approx(1e-3)
    assert cfg.options["tcn_ae"].dilations == [1, 2, 4, 8]
    assert set(cfg.methods) == set(cfg.options)  # every method has its section, and only methods do
    assert cfg.window.length == cfg.window.train_stride == "auto" and cfg.window.eval_stride is None
    assert cfg.budget.draws == 3 and cfg.budget.include_anomalous is True


def test_eval_stride_follows_a_lowered_window_length():
    assert check({"window.length": 256}).window.eval_stride == 256
    assert check({"window.length": 256, "window.eval_stride": 64}).window.eval_stride == 64
    with pytest.raises(InputError, match=r"window.eval_stride=300 is out of range; use a value in \[1, 256\]"):
        check({"window.length": 256, "window.eval_stride": 300})


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"moment.lora.alpha": "abc"}, "moment.lora.alpha must be a number, got 'abc'"),
        ({"moment.lora.dropout": 2}, "moment.lora.dropout=2.0 is out of range; use a value in [0, 1)"),
        ({"moment.lora.rank": 2.5}, "moment.lora.rank must be an integer, got 2.5"),
        ({"moment.batch_size": 0}, "moment.batch_size=0 is out of range"),
        ({"moment.finetune.gradient_checkpointing": "yes"},
         "moment.finetune.gradient_checkpointing must be true or false"),
        ({"budget.sizes": []}, "budget.sizes is empty"),
        ({"moment.finetune.budgets": [100]}, "moment.finetune.budgets is not a known key"),
        ({"moment.finetune.epoch": 3},
         "moment.finetune.epoch is not a known key; did you mean moment.finetune.epochs?"),
        ({"lstm_ae.epoch": 3}, "lstm_ae.epoch is not a known key; did you mean lstm_ae.epochs?"),
        ({"lstm_ae.loss": "huber"}, "lstm_ae.loss must be one of 'mse', 'feature_scaled'"),
        ({"methods": ["knn", "kmeans"]}, "methods lists 'kmeans'"),
        ({"methods": ["knn", "knn"]}, "methods lists 'knn' twice; list each method once"),
        ({"iforest": {"window": 3}}, "iforest is not a known section; did you mean"),
        ({"pca.window": 0}, "pca.window=0 is out of range"),
        ({"cnn.window": 8}, "cnn.window=8 is too short"),
        ({"evaluate.sliding_window": "big"}, "evaluate.sliding_window must be an integer or one of 'auto'"),
        ({"data.split": {"train": 0.7, "val": 0.2, "test": 0.2}}, "data.split fractions sum to 1.100"),
        ({"window.eval_stride": 1000}, "window.eval_stride=1000 is out of range"),
        ({"momnet": {}}, "momnet is not a known section; did you mean moment?"),
        ({"data.source": "kafka"}, "data.source must be one of 'cicddos', 'csv', 'iops'"),
        ({"data.source": "trainticket"}, "data.source=trainticket is now called csv; set data.source: csv"),
        ({"data.synthetic.services": 1}, "data.synthetic.services=1 is out of range"),
        ({"data.smd": {"machne": "x"}}, "data.smd.machne is not a known key; did you mean data.smd.machine?"),
        ({"data.kafka": {}}, "data.kafka is not a known key"),
        ({"data.source": "csv"}, "data.path is empty; set it to your csv file or folder"),
        ({"evaluate.protocol": "tsbad"}, "evaluate.protocol=tsbad needs a file with its own train part (data.source "
                                         "nezha or smd or tsbad or ucr), not synthetic"),
    ],
)  # fmt: skip
def test_mistakes_name_the_key(overrides, message):
    with pytest.raises(InputError) as e:
        check(overrides)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_missing_key_is_an_error_not_a_silent_default():
    p = small_params()
    del p["moment"]["finetune"]["patience"]
    with pytest.raises(InputError, match="moment.finetune.patience is missing; add it"):
        configure(config.parse(p))
    p = small_params()
    del p["pca"]
    with pytest.raises(InputError, match="methods lists 'pca' but params.yaml has no section 'pca'"):
        configure(config.parse(p))


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("lr: 0.001", "lr: 1e-3")
    assert "lr: 1e-3" in text and yaml.safe_load(text)["moment"]["finetune"]["lr"] == "1e-3"  # YAML 1.1: a string
    (tmp_path / "params.yaml").write_text(text)
    assert configure(config.load(tmp_path / "params.yaml")).options["moment"].finetune.lr == pytest.approx(1e-3)


def test_a_bad_key_stops_the_first_stage_before_any_work(runner, workdir):
    write_params(workdir, small_params(**{"budget.draws": "abc"}))
    result = runner.invoke(preprocess_app, [])
    assert result.exit_code == 2
    assert result.output.strip() == "error: params.yaml: budget.draws must be an integer, got 'abc'"
    assert not (workdir / "data").exists()
    (workdir / "params.yaml").write_text("seed: [1\n")
    result = runner.invoke(preprocess_app, [])
    assert result.exit_code == 2 and "not valid YAML at line" in result.output
