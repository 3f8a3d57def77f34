"""Seeded simulator of TrainTicket-like microservice telemetry with 14 labelled fault types.

The data are *synthetic*: a call graph of services, daily/weekly load that propagates from the
entry service down the graph, latency and errors that propagate back up to callers, noise, and
injected faults whose signatures follow what fault-injection studies on TrainTicket report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from momentad.config import _fail, optional
from momentad.errors import InputError

ServiceMetric = Literal["latency", "cpu", "memory", "error_rate", "request_rate"]
PlatformMetric = Literal["gateway_request_rate", "gateway_error_rate", "mysql_query_time", "redis_hit_ratio",
                         "node_disk_io_util", "node_memory_used"]  # fmt: skip


@dataclass(frozen=True)
class FaultsPerSplit:
    train: int = optional(1, ge=1)
    val: int = optional(2, ge=1)
    test: int = optional(5, ge=1)


@dataclass(frozen=True)
class SyntheticParams:
    """The simulator's size and shape (``data.synthetic``; params.yaml documents each key)."""

    services: int = optional(20, ge=2, le=500)
    timesteps: int = optional(40320, ge=2000)
    start: str = optional("2026-01-05 00:00")
    freq_minutes: int = optional(1, ge=1)
    service_metrics: list[ServiceMetric] = optional(["latency", "cpu"])
    platform_metrics: list[PlatformMetric] = optional(["gateway_request_rate", "gateway_error_rate",
                                                       "mysql_query_time", "redis_hit_ratio", "node_disk_io_util",
                                                       "node_memory_used"])  # fmt: skip
    faults_per_type: FaultsPerSplit = optional(FaultsPerSplit())
    fault_minutes: list[int] = optional([5, 20], ge=2)
    noise: float = optional(0.05, ge=0, le=1)
    benign_spike_rate: float = optional(0.0005, ge=0, le=1)

    def check(self) -> None:
        if not self.service_metrics:
            raise _fail("data.synthetic.service_metrics", "is empty; choose from " + ", ".join(get_args(ServiceMetric)))
        if len(self.fault_minutes) != 2 or self.fault_minutes[0] > self.fault_minutes[1]:
            raise _fail("data.synthetic.fault_minutes", f"={self.fault_minutes}; use [min, max] with min <= max")


# The 41 services of the TrainTicket benchmark (FudanSELab/train-ticket).
TRAINTICKET_SERVICES = [
    "ts-ui-dashboard", "ts-auth-service", "ts-user-service", "ts-verification-code-service",
    "ts-travel-service", "ts-travel2-service", "ts-travel-plan-service", "ts-route-plan-service",
    "ts-route-service", "ts-station-service", "ts-train-service", "ts-config-service",
    "ts-basic-service", "ts-ticketinfo-service", "ts-price-service", "ts-seat-service",
    "ts-order-service", "ts-order-other-service", "ts-preserve-service", "ts-preserve-other-service",
    "ts-contacts-service", "ts-security-service", "ts-food-service", "ts-food-map-service",
    "ts-consign-service", "ts-consign-price-service", "ts-assurance-service",
    "ts-inside-payment-service", "ts-payment-service", "ts-cancel-service", "ts-rebook-service",
    "ts-execute-service", "ts-notification-service", "ts-admin-basic-info-service",
    "ts-admin-order-service", "ts-admin-route-service", "ts-admin-travel-service",
    "ts-admin-user-service", "ts-voucher-service", "ts-news-service", "ts-delivery-service",
]  # fmt: skip

# name -> one-line signature (also written to schema.json so users see what was injected).
FAULT_TYPES: dict[str, str] = {
    "cpu_exhaustion": "root cpu pinned near 100%, root latency x2-4 from queueing, callers slower",
    "memory_leak": "root memory ramps up over the fault, latency grows with it, node memory rises",
    "network_delay": "constant +50-200 ms on root latency, propagated to every caller",
    "packet_loss": "retransmission spikes on root latency, root error rate +5-20%, callers see both",
    "disk_io_saturation": "node disk I/O util near 100%, root latency x2 and jittery, cpu iowait up",
    "pod_restart": "root cpu and memory drop to ~0 then warm-up spike, errors ~50-100% while down",
    "thread_pool_exhaustion": "root latency saturates at a flat plateau, cpu drops, rejections",
    "gc_pressure": "root memory high with sawtooth, periodic cpu and latency spikes",
    "db_slow_query": "mysql query time x4-8, root latency up with it, callers slower",
    "cache_failure": "redis hit ratio collapses, mysql query time up, root latency and cpu up",
    "config_error": "root error rate bursts to 30-90%, fast-fail latency drop, errors reach callers",
    "traffic_surge": "request rate x2-4 at the root and every service it calls, cpu and latency up",
    "dependency_timeout": "root latency pinned at the client timeout, errors at root and callers",
    "clock_skew": "root latency measured with a large offset, auth-like errors on root",
}

SPLITS = ("train", "val", "test")


def service_names(n: int) -> list[str]:
    """TrainTicket's names for the first 41 services, then ts-extra-NN."""
    names = TRAINTICKET_SERVICES[:n]
    return names + [f"ts-extra-{i:02d}-service" for i in range(len(names), n)]


def call_graph(n: int, rng: np.random.Generator) -> list[list[tuple[int, float]]]:
    """A random DAG rooted at service 0: callees[i] = [(j, calls per request), ...], j > i."""
    callees: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    for j in range(1, n):
        # Services early in the list are the front tier; later ones sit deeper in the graph.
        lo = max(0, j - 12)
        parents = {int(rng.integers(lo, j))}
        if rng.random() < 0.35 and j > 1:
            parents.add(int(rng.integers(0, j)))
        for p in parents:
            callees[p].append((j, float(rng.uniform(0.3, 1.0))))
    return callees


def generate(cfg: SyntheticParams, split_fractions: dict[str, float], seed: int) -> tuple[pd.DataFrame, dict]:
    """Simulate the telemetry. Returns the frame and a description (graph, faults) for schema.json.

    ``split_fractions`` is used only to place faults so that every split holds every fault type.
    """
    rng = np.random.default_rng(seed)
    T, n = cfg.timesteps, cfg.services
    names = service_names(n)
    callees = call_graph(n, rng)
    callers: list[list[int]] = [[] for _ in range(n)]
    for i, cs in enumerate(callees):
        for j, _ in cs:
            callers[j].append(i)
    uses_db = rng.random(n) < 0.4
    uses_cache = rng.random(n) < 0.3
    uses_db[rng.integers(1, n)] = uses_cache[rng.integers(1, n)] = True

    t = np.arange(T)
    minute_of_day = (t * cfg.freq_minutes) % 1440
    day = (t * cfg.freq_minutes) // 1440
    daily = 1.0 + 0.55 * np.sin(2 * np.pi * (minute_of_day - 9 * 60) / 1440)
    weekly = np.where(day % 7 >= 5, 0.75, 1.0)

    def ar1(scale: float, phi: float = 0.9) -> np.ndarray:
        """Stationary AR(1) noise with standard deviation ``scale``."""
        return lfilter([1.0], [1.0, -phi], rng.normal(0, scale * np.sqrt(1 - phi**2), T))

    faults = _schedule_faults(cfg, split_fractions, n, uses_db, uses_cache, rng)

    # --- request rates: load enters at service 0 and flows down the graph -------------------
    entry = 200.0 * daily * weekly * (1 + ar1(cfg.noise))
    surge = np.ones((n, T))
    for f in faults:
        if f["type"] == "traffic_surge":
            surge[f["root"], f["start"] : f["end"]] *= f["magnitude"]
    rate = np.zeros((n, T))
    rate[0] = entry * surge[0]
    for i in range(n):
        if i:
            rate[i] *= surge[i]
        for j, w in callees[i]:  # a surge at i reaches everything i calls through rate[i]
            rate[j] += w * rate[i]
    capacity = rate.mean(axis=1, keepdims=True) * rng.uniform(2.0, 3.0, (n, 1))
    util = rate / capacity

    base_latency = rng.uniform(5, 40, (n, 1))
    own_lat = base_latency * (1 + 0.4 * util**2) * np.exp(np.stack([ar1(cfg.noise) for _ in range(n)]))
    own_err = np.clip(0.002 + 0.001 * rng.standard_normal((n, T)), 0, None)
    cpu = 5 + 60 * util * rng.uniform(0.6, 1.0, (n, 1)) + np.stack([ar1(2.0) for _ in range(n)])
    memory = rng.uniform(30, 60, (n, 1)) + np.stack([ar1(1.5, 0.99) for _ in range(n)])
    db_time = 4.0 * (1 + 0.5 * util[uses_db].mean(axis=0)) * np.exp(ar1(cfg.noise))
    hit_ratio = 0.95 + ar1(0.01)
    disk_io = 20 + 15 * util.mean(axis=0) + ar1(2.0)
    skew = np.zeros((n, T))

    for f in faults:
        _inject(f, rng, own_lat, own_err, cpu, memory, skew, util)
        s, e, m = f["start"], f["end"], f["magnitude"]
        if f["type"] == "db_slow_query":
            db_time[s:e] *= m
        elif f["type"] == "cache_failure":
            hit_ratio[s:e] = rng.uniform(0.05, 0.3) + 0.02 * rng.standard_normal(e - s)
            db_time[s:e] *= 1.8
        elif f["type"] == "disk_io_saturation":
            disk_io[s:e] = 92 + 4 * rng.random(e - s)

    # Database / cache latency feeds the services that use them.
    own_lat += uses_db[:, None] * (db_time - db_time.mean()) * 2.0
    own_lat += uses_cache[:, None] * np.clip(0.95 - hit_ratio, 0, None) * 60.0

    # --- latency and errors propagate from callees back up to callers ----------------------
    latency = own_lat.copy()
    err = own_err.copy()
    for i in range(n - 1, -1, -1):
        for j, w in callees[i]:
            latency[i] += 0.5 * w * latency[j]
            err[i] += 0.6 * err[j]
    latency = latency + skew  # clock skew is a measurement artefact: it does not propagate
    err = np.clip(err, 0, 1)
    cpu = np.clip(cpu, 0, 100)
    memory = np.clip(memory, 0, 100)

    # Rare unlabelled blips: real telemetry has benign spikes that detectors must tolerate.
    blips = rng.random((n, T)) < cfg.benign_spike_rate
    latency = latency * np.where(blips, rng.uniform(1.5, 3.0, (n, T)), 1.0)

    per_service = {
        "latency": latency,
        "cpu": cpu,
        "memory": memory,
        "error_rate": err,
        "request_rate": rate,
    }
    platform = {
        "gateway_request_rate": rate[0] * (1 + 0.01 * rng.standard_normal(T)),
        "gateway_error_rate": err[0],
        "mysql_query_time": db_time,
        "redis_hit_ratio": np.clip(hit_ratio, 0, 1),
        "node_disk_io_util": np.clip(disk_io, 0, 100),
        "node_memory_used": memory.mean(axis=0),
    }

    cols: dict[str, np.ndarray] = {}
    for i, name in enumerate(names):
        for metric in cfg.service_metrics:
            cols[f"{name}_{metric}"] = per_service[metric][i]
    for metric in cfg.platform_metrics:
        cols[metric] = platform[metric]

    timestamps = pd.date_range(cfg.start, periods=T, freq=f"{cfg.freq_minutes}min")
    label = np.zeros(T, dtype=np.int8)
    fault_type = np.full(T, None, dtype=object)
    root_cause = np.full(T, None, dtype=object)
    for f in faults:
        label[f["start"] : f["end"]] = 1
        fault_type[f["start"] : f["end"]] = f["type"]
        root_cause[f["start"] : f["end"]] = names[f["root"]]

    frame = pd.DataFrame({"timestamp": timestamps})
    frame = pd.concat([frame, pd.DataFrame(cols).astype("float32")], axis=1)
    frame["label"] = label
    frame["fault_type"] = pd.Series(fault_type, dtype="string")
    frame["root_cause"] = pd.Series(root_cause, dtype="string")

    description = {
        "generator": "momentad.synthetic (synthetic TrainTicket-like telemetry, not real data)",
        "services": names,
        "call_graph": {names[i]: [names[j] for j, _ in cs] for i, cs in enumerate(callees)},
        "fault_signatures": FAULT_TYPES,
        "faults": [
            {"type": f["type"], "root_cause": names[f["root"]], "split": f["split"],
             "start": str(timestamps[f["start"]]), "minutes": (f["end"] - f["start"]) * cfg.freq_minutes}
            for f in faults
        ],
    }  # fmt: skip
    return frame, description


def _schedule_faults(
    cfg: SyntheticParams,
    fractions: dict[str, float],
    n: int,
    uses_db: np.ndarray,
    uses_cache: np.ndarray,
    rng: np.random.Generator,
) -> list[dict]:
    """Place every fault type ``faults_per_type[split]`` times inside each split, one per slot."""
    T = cfg.timesteps
    bounds = np.cumsum([0.0] + [fractions[s] for s in SPLITS])
    edges = np.round(bounds * T).astype(int)
    step = cfg.freq_minutes
    lo, hi = (max(2, m // step) for m in cfg.fault_minutes)
    faults = []
    for k, split in enumerate(SPLITS):
        a, b = int(edges[k]), int(edges[k + 1])
        types = [ft for ft in FAULT_TYPES for _ in range(getattr(cfg.faults_per_type, split))]
        rng.shuffle(types)
        slot = (b - a) / len(types)
        if slot < 2 * hi + 20:
            raise InputError(
                f"params.yaml: data.synthetic.timesteps={T} leaves {slot:.0f} steps per fault in the "
                f"{split} split; raise timesteps or lower faults_per_type / fault_minutes"
            )
        for q, ftype in enumerate(types):
            dur = (
                int(rng.integers(max(2, lo // 4), max(3, lo // 2) + 1))
                if ftype == "pod_restart"
                else int(rng.integers(lo, hi + 1))
            )
            s0 = a + int(q * slot) + 10
            start = s0 + int(rng.integers(0, int(slot) - dur - 20 + 1))
            if ftype in ("db_slow_query",):
                pool = np.flatnonzero(uses_db)
            elif ftype == "cache_failure":
                pool = np.flatnonzero(uses_cache)
            elif ftype == "traffic_surge":
                pool = np.arange(0, min(n, 6))  # surges arrive at front-tier services
            else:
                pool = np.arange(n)
            magnitude = {
                "traffic_surge": rng.uniform(2, 4), "db_slow_query": rng.uniform(4, 8),
            }.get(ftype, 1.0)  # fmt: skip
            faults.append({"type": ftype, "root": int(rng.choice(pool)), "start": start,
                           "end": start + dur, "split": split, "magnitude": float(magnitude)})  # fmt: skip
    return faults


def _inject(f: dict, rng: np.random.Generator, lat, err, cpu, mem, skew, util) -> None:
    """Apply a fault's signature to the root service's own metrics, in place."""
    s, e, r, kind = f["start"], f["end"], f["root"], f["type"]
    d = e - s
    ramp = np.linspace(0, 1, d)
    base = lat[r, max(0, s - 60) : s].mean() if s else lat[r].mean()
    if kind == "cpu_exhaustion":
        cpu[r, s:e] = 94 + 5 * rng.random(d)
        lat[r, s:e] *= rng.uniform(2, 4)
    elif kind == "memory_leak":
        mem[r, s:e] += ramp * rng.uniform(30, 45)
        lat[r, s:e] *= 1 + 1.5 * ramp**2
    elif kind == "network_delay":
        lat[r, s:e] += rng.uniform(50, 200)
    elif kind == "packet_loss":
        lat[r, s:e] += (rng.random(d) < 0.35) * rng.uniform(100, 400, d)
        err[r, s:e] += rng.uniform(0.05, 0.2)
    elif kind == "disk_io_saturation":
        lat[r, s:e] *= 2 * np.exp(0.3 * rng.standard_normal(d))
        cpu[r, s:e] += 10
    elif kind == "pod_restart":
        down = max(1, d // 2)
        cpu[r, s : s + down] = rng.random(down)
        cpu[r, s + down : e] *= 1.8
        mem[r, s:e] = np.linspace(5, mem[r, s], d)
        err[r, s : s + down] = rng.uniform(0.5, 1.0)
        lat[r, s:e] *= 3
    elif kind == "thread_pool_exhaustion":
        lat[r, s:e] = base * 6 * (1 + 0.01 * rng.standard_normal(d))
        cpu[r, s:e] *= 0.4
        err[r, s:e] += rng.uniform(0.02, 0.1)
    elif kind == "gc_pressure":
        saw = (np.arange(d) % 5) / 4
        mem[r, s:e] = 85 + 10 * saw
        cpu[r, s:e] += 35 * (saw > 0.7)
        lat[r, s:e] *= 1 + 3 * (saw > 0.7)
    elif kind == "db_slow_query":
        lat[r, s:e] *= 1.5
    elif kind == "cache_failure":
        lat[r, s:e] *= 1.5
        cpu[r, s:e] += 15
    elif kind == "config_error":
        err[r, s:e] += rng.uniform(0.3, 0.9)
        lat[r, s:e] *= 0.5
    elif kind == "traffic_surge":
        pass  # applied to request rates before propagation
    elif kind == "dependency_timeout":
        lat[r, s:e] = 3000.0 * (1 + 0.002 * rng.standard_normal(d))
        err[r, s:e] += 0.3
    elif kind == "clock_skew":
        skew[r, s:e] = rng.choice([-1.0, 1.0]) * (base + rng.uniform(100, 300))
        err[r, s:e] += rng.uniform(0.05, 0.15)
