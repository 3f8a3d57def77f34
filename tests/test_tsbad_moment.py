"""MOMENT's ``tsbad`` recipe equals TSB-AD 1.5's own MOMENT on identical weights.

The reference (tests/data/tsbad_moment/reference.parquet) is TSB-AD's ``MOMENT`` class run by
benchmarks/tsbad_moment.py in a throwaway environment with ``tsb-ad==1.5``, from the committed
random-init checkpoint, on two real series the repository ships. Here the pipeline's own stages
run the same files under ``evaluate.protocol: tsbad`` (train on the ``_tr_N_`` part, score the
whole series) with ``data.scaler: none`` (TSB-AD hands MOMENT the values as they are): zero-shot
at budget 0, TSB-AD's MOMENT_FT (head only, 2 epochs, Adam 1e-4, batch 128, 30% masked) at
budget ``full``. Every per-timestep score must match to 1e-5 of the score range.
"""

import json

import numpy as np
import pandas as pd
import pytest
from benchmarks.tsbad_moment import CHECKPOINT, SEED, WINDOW, series_files
from stages.detect import app as detect_app
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app

from tests.conftest import ROOT, small_params, write_params

REFERENCE = pd.read_parquet(ROOT / "tests/data/tsbad_moment/reference.parquet")

TSBAD = {"zero_shot": {"recipe": "tsbad", "window": WINDOW, "channel_reduce": "last"},
         "finetune": {"method": "head", "full_split": True, "epochs": 2, "lr": 0.0001, "batch_size": 128,
                      "mask_ratio": 0.3}}  # fmt: skip


def tsbad_params(path, **overrides) -> dict:
    p = small_params(**{"seed": SEED, "data.source": "tsbad", "data.path": str(path), "data.scaler": "none",
                        "evaluate.protocol": "tsbad", "methods": ["moment"], "budget.sizes": [100000],
                        "budget.include_anomalous": False, "window.length": 64, "window.train_stride": 1,
                        **overrides})  # fmt: skip
    p["moment"].update({"checkpoint": str(CHECKPOINT), "batch_size": 128})
    for section, values in TSBAD.items():
        p["moment"][section].update(values)
    return p


@pytest.mark.parametrize("name", sorted(REFERENCE["series"].unique()))
def test_tsbad_recipe_equals_tsbads_moment(runner, workdir, name):
    path = series_files(workdir / "series")[name]
    write_params(workdir, tsbad_params(path))
    for app, args in ((preprocess_app, []), (window_app, []), (detect_app, ["moment", "--no-progress"])):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    ref = REFERENCE[REFERENCE["series"] == name]
    doc = json.loads((workdir / "reports/methods/moment.json").read_text())
    assert doc["model"]["origin"] == "random-init" and doc["model"]["recipe"] == "tsbad"
    for budget, column in (("0", "zero_shot"), ("full", "fine_tuned")):
        got = pd.read_parquet(workdir / f"data/scores/moment/{budget}.parquet")["score"].to_numpy()
        want = ref[column].to_numpy()
        assert got.shape == want.shape
        gap = np.abs(got - want).max() / np.ptp(want)
        assert gap <= 1e-5, (budget, gap)
    # fine-tuning moved the scores (the head trained), so the comparison is not zero-shot twice
    assert np.abs(ref["fine_tuned"].to_numpy() - ref["zero_shot"].to_numpy()).max() > 1e-3 * np.ptp(ref["zero_shot"])
