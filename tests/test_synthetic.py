import time

import numpy as np
import pandas as pd
import pytest
import yaml

from momentad.config import build
from momentad.errors import InputError
from momentad.synthetic import FAULT_TYPES, SyntheticParams, generate
from tests.conftest import ROOT, small_params

SPLIT = {"train": 0.7, "val": 0.15, "test": 0.15}
DEFAULTS = yaml.safe_load((ROOT / "params.yaml").read_text())["data"]["synthetic"]


def synthetic(**overrides) -> SyntheticParams:
    """params.yaml's data.synthetic (the only place defaults live), with overrides."""
    return build(SyntheticParams, {**DEFAULTS, **overrides}, "data.synthetic")


@pytest.fixture(scope="module")
def default_data():
    t0 = time.perf_counter()
    frame, desc = generate(synthetic(services=41), SPLIT, seed=42)  # TrainTicket's 41 services
    return frame, desc, time.perf_counter() - t0


def test_default_shape_matches_trainticket(default_data):
    frame, desc, seconds = default_data
    kpis = [c for c in frame.columns if c not in ("timestamp", "label", "fault_type", "root_cause")]
    assert len(desc["services"]) == 41
    assert len(kpis) == 88
    assert len(frame) >= 20_000
    assert (frame["timestamp"].diff().dropna() == pd.Timedelta(minutes=1)).all()
    assert all(frame[c].dtype == np.float32 for c in kpis)
    assert seconds < 15, f"generation took {seconds:.1f}s"


def test_every_split_has_every_fault_type(default_data):
    frame, desc, _ = default_data
    assert len(FAULT_TYPES) == 14
    n = len(frame)
    edges = [0, int(round(0.7 * n)), int(round(0.85 * n)), n]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        part = frame.iloc[a:b]
        assert set(part["fault_type"].dropna().unique()) == set(FAULT_TYPES)
        assert part["label"].sum() > 0
    # labels, fault types and root causes agree timestep by timestep
    assert ((frame["label"] == 1) == frame["fault_type"].notna()).all()
    assert ((frame["label"] == 1) == frame["root_cause"].notna()).all()
    assert set(frame["root_cause"].dropna()) <= set(desc["services"])


def test_same_seed_same_data_other_seed_differs():
    cfg = synthetic(services=8, timesteps=4000, faults_per_type={"train": 1, "val": 1, "test": 1},
                    fault_minutes=[4, 8])  # fmt: skip
    a, _ = generate(cfg, SPLIT, seed=7)
    b, _ = generate(cfg, SPLIT, seed=7)
    c, _ = generate(cfg, SPLIT, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a["ts-ui-dashboard_latency"].equals(c["ts-ui-dashboard_latency"])


def _fault(frame, desc, kind):
    f = next(f for f in desc["faults"] if f["type"] == kind)
    mask = (frame["fault_type"] == kind) & (frame["root_cause"] == f["root_cause"])
    start = frame.index[mask][0]
    return f, mask, start


def test_signatures_show_in_root_metrics(default_data):
    frame, desc, _ = default_data
    f, mask, start = _fault(frame, desc, "cpu_exhaustion")
    assert frame.loc[mask, f"{f['root_cause']}_cpu"].min() >= 90
    f, mask, start = _fault(frame, desc, "dependency_timeout")
    assert frame.loc[mask, f"{f['root_cause']}_latency"].median() > 2900
    f, mask, start = _fault(frame, desc, "cache_failure")
    before = frame["redis_hit_ratio"].iloc[start - 60 : start].mean()
    assert frame.loc[mask, "redis_hit_ratio"].mean() < before - 0.5


def test_latency_faults_propagate_to_callers(default_data):
    frame, desc, _ = default_data
    f, mask, start = _fault(frame, desc, "dependency_timeout")
    callers = [s for s, callees in desc["call_graph"].items() if f["root_cause"] in callees]
    assert callers, "every non-entry service has a caller"
    for caller in callers:
        col = f"{caller}_latency"
        before = frame[col].iloc[start - 120 : start].median()
        during = frame.loc[mask, col].median()
        assert during > before + 500, (caller, before, during)


def test_bad_knob_names_the_parameter():
    full = small_params()["data"]["synthetic"]
    with pytest.raises(InputError, match="data.synthetic.services=1 is out of range"):
        build(SyntheticParams, {**full, "services": 1}, "data.synthetic")
    with pytest.raises(InputError, match="data.synthetic.colour is not a known key"):
        build(SyntheticParams, {**full, "colour": "red"}, "data.synthetic")
    # a format's keys may be left out: the simulator's defaults (what params.yaml ships) apply
    assert build(SyntheticParams, {k: v for k, v in full.items() if k != "noise"}, "data.synthetic").noise == 0.05
    with pytest.raises(InputError, match=r"data.synthetic.service_metrics\[0\] must be one of"):
        build(SyntheticParams, {**full, "service_metrics": ["disk"]}, "data.synthetic")
    with pytest.raises(InputError, match="data.synthetic.timesteps"):
        generate(synthetic(timesteps=2500), SPLIT, seed=0)
