"""MOMENT's recipes and fine-tuning methods beyond the TSB-AD equality (tests/test_tsbad_moment.py):
what instance normalisation hides and ``zero_shot.score: reconstruction+stats`` restores,
``finetune.method`` head / full, saved and reloaded detectors, variant method ids."""

import copy

import numpy as np
import pytest
import yaml

from momentad.config import WindowParams, build, parse
from momentad.detectors.base import RunContext, as_split
from momentad.detectors.moment import detector as moment_module
from momentad.detectors.registry import configure, detector_class, load_detector, make
from momentad.errors import InputError
from momentad.layout import parse_row
from tests.conftest import MODEL_CACHE, ROOT

OPTIONS = yaml.safe_load((ROOT / "params.yaml").read_text())["moment"]
OPTIONS.update(checkpoint="random-init:tiny", cache_dir=str(MODEL_CACHE), batch_size=256)
OPTIONS["finetune"].update(epochs=1, batch_size=64, lr=1e-4)
WINDOW = build(WindowParams, {"length": 64, "train_stride": 16, "eval_stride": 16}, "window")


def options(**dotted):
    o = copy.deepcopy(OPTIONS)
    for key, value in dotted.items():
        node = o
        *parents, leaf = key.split(".")
        for k in parents:
            node = node[k]
        node[leaf] = value
    return o


def detector(seed=0, reference=None, **dotted):
    d = make("moment", seed=seed, **options(**dotted))
    return type(d)(d.params, RunContext(seed=seed, window=WINDOW, reference=reference))


def shifted_series(seed):
    """A 50-step sine with noise; in the second half a level shift (+3) over 300 steps and a
    change of scale (x3) over 300 steps."""
    rs = np.random.default_rng(seed)
    t = np.arange(4000)
    x = np.sin(2 * np.pi * t / 50) + 0.2 * rs.standard_normal(4000)
    x[2600:2900] += 3
    x[3400:3700] *= 3
    return x[:2000, None], x[2000:, None]


def caught(scores, rows):
    """Share of a stretch's steps scoring above every step far (> 64 rows) from both anomalies."""
    far = np.ones(len(scores), bool)
    far[600 - 64 : 900 + 64] = far[1400 - 64 : 1700 + 64] = False
    return float((scores[rows] > scores[far].max()).mean())


@pytest.mark.parametrize("recipe", ["momentad", "tsbad"])
@pytest.mark.parametrize("seed", [0, 1])
def test_stats_catch_the_level_shift_instance_normalisation_hides(recipe, seed):
    """Zero-shot, random weights of two seeds: inside the shift (away from its edges) the plain
    reconstruction error never rises above normal, with the level/scale statistics every step
    does; the change of scale is caught entirely only with them."""
    train, test = shifted_series(seed)
    level, scale = slice(664, 836), slice(1464, 1636)  # the anomalies' interiors
    plain = detector(seed, **{"zero_shot.recipe": recipe})
    plain.fit(None)
    got = plain.decision_function(test)
    assert caught(got, level) <= 0.05
    stats = detector(seed, reference=as_split(train), **{"zero_shot.recipe": recipe,
                                                         "zero_shot.score": "reconstruction+stats"})  # fmt: skip
    stats.fit(None)
    got = stats.decision_function(test)
    assert caught(got, level) >= 0.95 and caught(got, scale) >= 0.95


def test_stats_need_a_reference():
    det = detector(**{"zero_shot.score": "reconstruction+stats"})
    with pytest.raises(InputError, match="reconstruction\\+stats needs normal rows"):
        det.fit(None)


@pytest.mark.parametrize("recipe", ["momentad", "tsbad"])
@pytest.mark.parametrize("method", ["head", "full"])
def test_head_and_full_train_what_they_name_and_reload(tmp_path, recipe, method):
    train, test = shifted_series(0)
    det = detector(reference=as_split(train), **{"zero_shot.recipe": recipe, "finetune.method": method,
                                                  "zero_shot.score": "reconstruction+stats", "finetune.lr": 1e-3,
                                                  "finetune.epochs": 2, "finetune.batch_size": 16})  # fmt: skip
    det.fit(train[:400], X_val=train[1000:1400])
    trainable = {n.split(".")[0] for n, q in det.model_.named_parameters() if q.requires_grad}
    assert trainable == ({"head"} if method == "head" else {"head", "encoder", "patch_embedding"})
    assert det.describe()["adapter"] == method and det.describe()["origin"] == "random-init"
    before = det.decision_function(test)
    zero_shot = detector(reference=as_split(train), **{"zero_shot.recipe": recipe,
                                                        "zero_shot.score": "reconstruction+stats"})  # fmt: skip
    assert not np.allclose(before, zero_shot.fit(None).decision_function(test))  # training changed the model
    det.save(tmp_path / "m")
    again = load_detector(tmp_path / "m")
    np.testing.assert_allclose(again.decision_function(test), before, rtol=1e-5)


def test_full_is_refused_up_front_when_memory_cannot_hold_it(monkeypatch):
    monkeypatch.setattr(moment_module, "_available_memory", lambda: 2**20)
    train, _ = shifted_series(0)
    with pytest.raises(InputError, match="moment.finetune.method=full needs about .* GiB .* use finetune.method lora"):
        detector(**{"finetune.method": "full"}).fit(train[:500], X_val=train[500:700])


@pytest.mark.parametrize(
    ("dotted", "message"),
    [
        ({"zero_shot.recipe": "tsbad", "finetune.objective": "classification"}, "has no TSB-AD counterpart"),
        ({"quantization": "int8", "finetune.method": "head"}, "finetune.method=head trains unquantised"),
        ({"zero_shot.recipe": "tsbad_v2"}, "moment.zero_shot.recipe must be one of"),
        ({"finetune.method": "adapter"}, "moment.finetune.method must be one of"),
    ],
)
def test_recipe_options_are_checked(dotted, message):
    with pytest.raises(InputError, match=message):
        make("moment", **options(**dotted))


def test_tsbad_window_must_hold_whole_patches():
    with pytest.raises(InputError, match="moment.zero_shot.window=60 must be a multiple of MOMENT's patch length 8"):
        detector(**{"zero_shot.recipe": "tsbad", "zero_shot.window": 60}).fit(None)


def test_full_split_adds_the_full_budget_and_variants_are_methods():
    cls = detector_class("moment-tsbad")
    assert cls is detector_class("moment")
    opts = make("moment", **options(**{"finetune.full_split": True})).params
    assert cls.budgets([100, 500], opts) == ["0", "100", "500", "full"]
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["moment-tsbad"] = options(**{"zero_shot.recipe": "tsbad"})
    raw["methods"] = ["moment", "moment-tsbad"]
    cfg = configure(parse(raw))
    assert cfg.options["moment-tsbad"].zero_shot.recipe == "tsbad"
    assert cfg.options["moment"].zero_shot.recipe == "momentad"
    row = parse_row("moment-tsbad_full")
    assert (row.method, row.budget) == ("moment-tsbad", "full")
    raw["methods"] = ["momnet-tsbad"]
    with pytest.raises(InputError, match="methods lists 'momnet-tsbad', which is not a method; did you mean moment"):
        configure(parse(raw))


@pytest.mark.parametrize("recipe", ["momentad", "tsbad"])
def test_a_stretch_shorter_than_one_patch_scores_finitely(recipe):
    """NAB's rogue-agent series has one-row stretches between time gaps. MOMENT attends only to
    whole observed patches, so a window of fewer than 8 rows used to score NaN (every method
    but MOMENT ran on that dataset); it is padded with its first row to one patch."""
    import pandas as pd

    from momentad.data import Split
    from momentad.windows import window_index

    sizes = [200, 1, 5, 8, 100]
    n = sum(sizes)
    frame = pd.DataFrame({"k0": np.sin(np.arange(n) / 5.0).astype(np.float32)})
    frame["timestamp"] = np.arange(n) + np.repeat(np.arange(len(sizes)) * 1000, sizes)
    frame["label"] = np.zeros(n, np.int8)
    frame["fault_type"] = pd.Series([None] * n, dtype="string")
    frame["segment"] = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    split = Split("test", frame, ["k0"], window_index(frame, 64, 64))
    det = detector(**{"zero_shot.recipe": recipe})
    det.fit(None)
    scores = det.decision_function(split)
    assert scores.shape == (n,) and np.isfinite(scores).all()
    # the padding never reaches the scores of the rows around it: a long stretch scores as on its own
    head = frame.iloc[:200].copy()
    alone = det.decision_function(Split("test", head, ["k0"], window_index(head, 64, 64)))
    np.testing.assert_allclose(scores[:200], alone, rtol=1e-5)
