"""Our PCA, KNN and CNN against TSB-AD 1.5's own implementations on two real series the
repository ships (reference figures: benchmarks/tsbad_detectors.py, run in a throwaway
environment with tsb-ad installed; tests/data/tsbad_detectors_reference.json).

Same hyper-parameters (TSB-AD-U's tuned ones, windows as TSB-AD chose them), the TSB-AD protocol
(`evaluate.protocol: tsbad`: fit on the file's train part, score and measure the whole series):
our PCA and KNN VUS-PR must equal TSB-AD's run under that protocol to 1e-4 (the same arithmetic;
the details round to 6 decimals), our CNN within 0.02 (its training is seeded differently). Where TSB-AD's published
protocol differs (Sub-PCA and Sub-KNN fit on the whole series; its KNN scores new windows without
the z-normalisation it fits on; its CNN reads unscaled values and early-stops on the train
part's last 20%), the measured difference is asserted as documented in docs/methods.md "Methods".
"""

import json

import pytest
from benchmarks.tsbad_detectors import series_files
from stages.detect import app as detect_app
from stages.preprocess import app as preprocess_app
from stages.window import app as window_app

from tests.conftest import ROOT, small_params, write_params

REF = json.loads((ROOT / "tests/data/tsbad_detectors_reference.json").read_text())["series"]


def run(runner, workdir, name, method, options):
    path = series_files(workdir / "series")[name]
    write_params(workdir, small_params(**{"data.source": "tsbad", "data.path": str(path), "evaluate.protocol": "tsbad",
                                          "methods": [method], method: options, "budget.sizes": [100000],
                                          "window.length": 512, "window.train_stride": 64}))  # fmt: skip
    for app, args in ((preprocess_app, []), (window_app, []), (detect_app, [method, "--no-progress"])):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    doc = json.loads((workdir / f"reports/methods/{method}.json").read_text())
    full = doc["budgets"]["full"]
    assert full["sliding_window"] == REF[name]["vus_window"]  # the same VUS window as TSB-AD's
    return full


@pytest.mark.parametrize("name", list(REF))
def test_pca_equals_tsbads_pca(runner, workdir, name):
    ref = REF[name]
    got = run(runner, workdir, name, "pca", {"window": ref["pca_window"], "n_components": None})
    assert got["extra"]["window"] == ref["pca_window"]
    assert abs(got["test"]["vus_pr"] - ref["pca_train_part"]) <= 1e-4, (got["test"]["vus_pr"], ref)


@pytest.mark.parametrize("name", list(REF))
def test_knn_equals_tsbads_knn(runner, workdir, name):
    ref = REF[name]
    got = run(runner, workdir, name, "knn", {"window": ref["knn_window"], "n_neighbors": 50, "method": "largest",
                                             "normalize": True})  # fmt: skip
    assert got["extra"] == {"window": ref["knn_window"], "method": "largest", "n_neighbors": 50}
    # TSB-AD's Sub-KNN z-normalises the windows it fits on but not those its decision_function
    # scores; its fitted tree queried with normalised windows is the same method as ours
    assert abs(got["test"]["vus_pr"] - ref["knn_train_part_normalized"]) <= 1e-4, (got["test"]["vus_pr"], ref)


CNN = {
    "window": 50,
    "channels": [32, 40],
    "kernel": 3,
    "dropout": 0.25,
    "train_stride": 1,
    "epochs": 50,
    "batch_size": 128,
    "lr": 0.0008,
    "patience": 3,
}  # TSB-AD-U's tuned CNN


def test_cnn_against_tsbads_cnn(runner, workdir):
    """On the AIOps KPI, fed the same (train-scaled) series: within 0.02 of TSB-AD's CNN. On
    ingress-01 TSB-AD's own CNN moves from 0.44 (raw values) to 0.31 (scaled): a training-noise
    band wider than any bound; docs/methods.md "Methods" gives the figures."""
    got = run(runner, workdir, "iops-301c70d8", "cnn", CNN)
    ref = REF["iops-301c70d8"]["cnn_scaled_input"]
    assert abs(got["test"]["vus_pr"] - ref) <= 0.02, (got["test"]["vus_pr"], ref)
