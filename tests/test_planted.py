"""Every detector on a planted-anomaly series clears a floor set well above what a random score
gets on the same data: the one check of detection quality that does not lean on a reference
implementation (a detector whose score stopped reading the data would fail here)."""

import numpy as np
import pandas as pd
import pytest

from momentad.detectors.registry import make, names
from momentad.metrics import vus
from tests.conftest import MODEL_CACHE, small_params

PERIOD = 24
# test VUS-PR each method must reach (measured with these params and seed 0: cnn 0.62, isolation
# forest 0.82, knn 0.70, lstm_ae 0.63, MOMENT tiny random-init 0.28, moving variance 0.43, pca 0.79,
# random forest 0.78, sd_mae 0.61, squared difference 0.53, tcn_ae 0.71, transformer_ae 0.61);
# random scores get 0.139 on average and at most 0.162 over 100 seeds
FLOOR = {"cnn": 0.45, "isolation_forest": 0.6, "knn": 0.5, "lstm_ae": 0.45, "moment": 0.22, "moving_variance": 0.33,
         "pca": 0.55, "random_forest": 0.5, "sd_mae": 0.4, "squared_difference": 0.4, "tcn_ae": 0.5,
         "transformer_ae": 0.45}  # fmt: skip


def planted(n: int, starts: list[int], seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A noisy daily-like cycle (period 24) with one-period anomalies at ``starts``, in turn a
    spike (+3), a level shift (+2), a noise burst and a faster cycle."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = np.sin(2 * np.pi * t / PERIOD) + 0.1 * rng.normal(size=n)
    label = np.zeros(n, np.int8)
    for k, s in enumerate(starts):
        e = s + PERIOD
        kind = k % 4
        if kind == 0:
            x[s:e] += 3
        elif kind == 1:
            x[s:e] += 2
        elif kind == 2:
            x[s:e] += rng.normal(size=e - s)
        else:
            x[s:e] = np.sin(2 * np.pi * t[s:e] / 6)
        label[s:e] = 1
    return pd.DataFrame({"kpi": x.astype(np.float32)}), label


TRAIN = planted(3000, [600, 1500, 2400], 0)  # a few labelled events: the supervised forest needs some
VAL = planted(1000, [300, 700], 1)
TEST = planted(2000, list(range(150, 1900, 220)), 2)


def random_vus_pr(seeds: int = 100) -> np.ndarray:
    labels = TEST[1]
    return np.array([vus(labels, np.random.default_rng(s).random(len(labels)), PERIOD)[1] for s in range(seeds)])


def test_the_floors_sit_well_above_random_scores():
    chance = random_vus_pr()
    assert 0.10 < chance.mean() < 0.18
    assert min(FLOOR.values()) >= chance.max() + 0.05 and min(FLOOR.values()) >= 1.5 * chance.mean()
    assert set(FLOOR) == set(names())  # every method has a floor, a new one must add its own


@pytest.mark.parametrize("method", names())
def test_every_detector_finds_planted_anomalies(method):
    params = small_params()[method]
    if method == "moment":  # the tiny architecture with seeded random weights, as every MOMENT test
        params = {**params, "checkpoint": "random-init:tiny", "cache_dir": str(MODEL_CACHE)}
    det = make(method, seed=0, **params)
    (x, y), (xv, _) = TRAIN, VAL
    det.fit(x if det.trains else None, y=y, X_val=xv)
    scores = det.decision_function(TEST[0])
    got = vus(TEST[1], scores, PERIOD)[1]
    assert got >= FLOOR[method], (method, round(got, 3))


def test_every_detector_on_a_mostly_zero_count_series_gives_finite_scores_or_one_reason():
    """A service-unavailable count: 0 almost always, a rare spike; the train split nearly (or
    entirely) constant. Each detector scores every step with a finite number, or declines with one
    line saying it cannot model it (recorded as not run, never NaN scores)."""
    from momentad.errors import NotRun

    rng = np.random.default_rng(4)
    x = np.zeros(3000, dtype=np.float32)
    x[rng.choice(np.arange(2000, 3000), 6, replace=False)] = rng.integers(1, 4, 6)
    x[[700, 1500]] = 1  # two lone counts in train
    label = (x > 0).astype(np.int8)
    frame = pd.DataFrame({"count": x})
    train, val, test = frame.iloc[:1600], frame.iloc[1600:2000], frame.iloc[2000:].reset_index(drop=True)
    declined = {}
    for method in names():
        params = small_params()[method]
        if method == "moment":
            params = {**params, "checkpoint": "random-init:tiny", "cache_dir": str(MODEL_CACHE)}
        det = make(method, seed=0, **params)
        try:
            det.fit(train if det.trains else None, y=label[:1600], X_val=val)
            scores = det.decision_function(test)
        except NotRun as e:
            declined[method] = str(e)
            assert "\n" not in str(e) and str(e), method
            continue
        assert np.isfinite(scores).all(), (method, np.isnan(scores).sum())
    assert set(declined) <= {"random_forest"}, declined  # the forest needs labelled anomalies in training
