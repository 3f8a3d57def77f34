"""data.source: nezha — the Nezha layout on a hand-made two-day folder and on the shipped
TrainTicket copy (data/raw/nezha-trainticket)."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from momentad.errors import InputError
from momentad.loaders.nezha import NezhaParams, load, service_of
from tests.conftest import ROOT

SHIPPED = ROOT / "data" / "raw" / "nezha-trainticket"
KPIS = ["CpuUsage(m)", "PodServerLatencyP90(s)"]


def pod_file(path, pod, start, minutes, value, seconds=7, gz=False):
    t = pd.date_range(start, periods=minutes, freq="min") + pd.Timedelta(seconds=seconds)
    df = pd.DataFrame({"Time": [f"{x} +0000 UTC m=+{i}.5" for i, x in enumerate(t)],
                       "TimeStamp": (t.astype("int64") // 10**9), "PodName": pod,
                       KPIS[0]: value + np.arange(minutes), KPIS[1]: 0.1})  # fmt: skip
    text = df.to_csv(index=False)
    if gz:
        path.with_suffix(".csv.gz").write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def day_folder(root, day, faults, extra=()):
    metric = root / day / "metric"
    metric.mkdir(parents=True)
    pod_file(metric / "ts-order-service-5b67c48447-mv5hb_metric.csv", "ts-order-service-5b67c48447-mv5hb",
             f"{day} 08:00", 30, 10.0)  # fmt: skip
    # two replicas of one service, sampled at other seconds, one gzipped: averaged per minute
    pod_file(metric / "ts-food-service-6b8c7d9f5-aaaaa_metric.csv", "ts-food-service-6b8c7d9f5-aaaaa",
             f"{day} 08:00", 30, 100.0, seconds=41)  # fmt: skip
    pod_file(metric / "ts-food-service-6b8c7d9f5-bbbbb_metric", "ts-food-service-6b8c7d9f5-bbbbb",
             f"{day} 08:00", 30, 200.0, seconds=52, gz=True)  # fmt: skip
    for name in extra:
        (metric / name).write_text("a,b\n1,2\n")
    (root / day / f"{day}-fault_list.json").write_text(json.dumps({"08": faults}))


def test_pods_become_services_on_a_minute_grid_with_labels_per_day(tmp_path):
    fault = {"inject_time": "2023-01-29 08:10:30", "inject_timestamp": "0", "inject_pod":
             "ts-food-service-6b8c7d9f5-aaaaa", "inject_type": "cpu_contention"}  # fmt: skip
    day_folder(tmp_path, "2023-01-29", [fault])
    day_folder(tmp_path, "2023-01-30", [{**fault, "inject_time": "2023-01-30 08:20:00", "inject_type": "return",
                                         "inject_pod": "ts-order-service-5b67c48447-mv5hb"}],
               extra=("dependency.csv", "source_50.csv", "destination_50.csv"))  # fmt: skip
    raw = load(tmp_path, NezhaParams(label_minutes=4), None, 0)
    f = raw.frame
    assert list(f.columns) == ["timestamp", "ts-food-service_CpuUsage_m", "ts-food-service_PodServerLatencyP90_s",
                               "ts-order-service_CpuUsage_m", "ts-order-service_PodServerLatencyP90_s", "label",
                               "fault_type", "root_cause"]  # fmt: skip
    assert len(f) == 60 and f["timestamp"].iloc[0] == pd.Timestamp("2023-01-29 08:00")
    assert f["ts-food-service_CpuUsage_m"].iloc[0] == 150.0  # mean of the two replicas
    assert raw.info["segments"] == [{"day": "2023-01-29", "start_row": 0, "rows": 30},
                                    {"day": "2023-01-30", "start_row": 30, "rows": 30}]  # fmt: skip
    assert raw.info["ignored"] == ["2023-01-30/metric/dependency.csv", "2023-01-30/metric/destination_50.csv",
                                   "2023-01-30/metric/source_50.csv"]  # fmt: skip
    assert np.flatnonzero(f["label"]).tolist() == [10, 11, 12, 13, 50, 51, 52, 53]
    assert f.loc[10, "fault_type"] == "cpu_contention" and f.loc[10, "root_cause"] == "ts-food-service"
    assert f.loc[50, "fault_type"] == "return" and f.loc[50, "root_cause"] == "ts-order-service"
    assert raw.info["faults"] == 2


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: (d / "2023-01-29" / "2023-01-29-fault_list.json").unlink(), "no <day>-fault_list.json"),
        (lambda d: (d / "2023-01-29" / "2023-01-29-fault_list.json").write_text("{"), "not valid JSON"),
        (lambda d: (d / "2023-01-29" / "2023-01-29-fault_list.json").write_text('{"08": [{"inject_pod": "x"}]}'),
         "a fault entry lacks ['inject_time', 'inject_type']"),
        (lambda d: [p.unlink() for p in (d / "2023-01-29" / "metric").iterdir()], "no *_metric.csv file"),
    ],
)  # fmt: skip
def test_bad_nezha_folders_fail_clearly(tmp_path, mutate, message):
    day_folder(tmp_path, "2023-01-29", [])
    mutate(tmp_path)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("*", r"\*")):
        load(tmp_path, NezhaParams(label_minutes=5), None, 0)
    with pytest.raises(InputError, match="no <day>/metric/ folder"):
        load(tmp_path / "2023-01-29" / "metric", NezhaParams(label_minutes=5), None, 0)


def test_service_names_drop_replica_set_and_pod_hashes():
    assert service_of("ts-order-service-5b67c48447-mv5hb") == "ts-order-service"
    assert service_of("frontend-7d9f8b6c5-x2k9p") == "frontend"
    assert service_of("redis-cart") == "redis-cart"


def test_the_shipped_trainticket_days_load_with_their_45_faults():
    raw = load(SHIPPED, NezhaParams(label_minutes=5), None, 0)
    f = raw.frame
    assert [s["day"] for s in raw.info["segments"]] == ["2023-01-29", "2023-01-30"]
    assert raw.info["faults"] == 45 and len(f) == 1660
    starts = f["label"].diff().fillna(f["label"]) > 0
    types = f.loc[starts, "fault_type"].value_counts().to_dict()
    # touching 5-minute labels merge a few events: every type is there
    assert set(types) == {"return", "exception", "cpu_contention", "network_delay"}
    assert f["root_cause"].dropna().str.startswith("ts-").all()
    assert (SHIPPED / "LICENSE").read_text().startswith("MIT License")
