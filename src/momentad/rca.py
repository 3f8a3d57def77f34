"""Root-cause localisation: which service (and KPI) is at fault, per test fault event.

Every method gives per-KPI evidence (:meth:`momentad.detectors.base.Detector.attribute`). For a
fault event [s, e) a KPI's score is its mean evidence over the event, as a robust z-score
against the ``REFERENCE`` rows before it (median and MAD there), so a KPI whose evidence is
always high (a noisy KPI's reconstruction error) does not win by default. KPIs are ranked by
that score; a KPI's service is its name up to the first ``_`` (``ts-order-service_latency``,
Nezha's ``ts-order-service_PodCPU``), or the whole name.

The statistical reference is BARO (Pham et al., FSE 2024), as RCAEval implements it: per KPI,
a RobustScaler fitted on the normal rows before the event (median, IQR) and the **maximum**
scaled value over the event; KPIs ranked by it.

Metrics follow RCAEval's ``Evaluator``: AC@k = share of events whose true root cause is among
the top k; at service level, among the services of the top-k ranked KPIs; Avg@k = the mean of
AC@1..AC@k. ``rank`` = the position of the first KPI of the true service (AC@k = rank <= k).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

REFERENCE = 60  # rows before an event that serve as its normal reference (capped at the segment)
TOP = 5


def service_of(kpi: str) -> str:
    """``ts-order-service_latency`` -> ``ts-order-service``; a name without ``_`` is its own."""
    return kpi.split("_", 1)[0]


def fault_events(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Labelled test events with a known root cause: rows [start, stop), type, service, and the
    reference rows [ref_start, start) before it inside its segment."""
    from momentad.metrics import segments

    seg = frame["segment"].to_numpy() if "segment" in frame.columns else np.zeros(len(frame), int)
    out = []
    starts, ends = segments(frame["label"].to_numpy())
    for s, e in zip(starts.tolist(), (ends + 1).tolist(), strict=True):
        cause = frame["root_cause"].iloc[s:e].dropna() if "root_cause" in frame.columns else pd.Series([], "string")
        if not len(cause):
            continue
        first = int(np.flatnonzero(seg == seg[s])[0])
        kind = frame["fault_type"].iloc[s]
        kind = str(kind) if pd.notna(kind) else "anomaly"
        out.append({"start": s, "stop": e, "ref_start": max(first, s - REFERENCE), "fault_type": kind,
                    "root_cause": str(cause.iloc[0])})  # fmt: skip
    return out


def robust_event_scores(evidence: np.ndarray, start: int, stop: int, ref_start: int) -> np.ndarray:
    """(rows, KPIs) evidence -> one score per KPI: the event mean as a robust z against the rows
    [ref_start, start) (median, 1.4826 x MAD; the event mean alone when there is no reference)."""
    event = evidence[start:stop].mean(axis=0)
    if start - ref_start < 2:
        return event
    ref = evidence[ref_start:start]
    med = np.median(ref, axis=0)
    mad = 1.4826 * np.median(np.abs(ref - med), axis=0)
    scale = np.where(mad > 0, mad, np.maximum(ref.std(axis=0), 1e-12))
    return (event - med) / scale


def baro_scores(values: np.ndarray, start: int, stop: int, ref_start: int, normal: np.ndarray) -> np.ndarray:
    """BARO per KPI: max over the event of (x - median) / IQR of the normal reference rows
    (IQR 0 -> 1, as scikit-learn's RobustScaler)."""
    ref = values[ref_start:start][normal[ref_start:start]]
    if len(ref) < 2:
        ref = values[ref_start:start] if start - ref_start >= 2 else values[:start]
    med = np.median(ref, axis=0)
    q1, q3 = np.percentile(ref, [25, 75], axis=0)
    iqr = q3 - q1
    iqr = np.where(iqr > 0, iqr, 1.0)
    return ((values[start:stop] - med) / iqr).max(axis=0)


def rank_kpis(scores: np.ndarray, kpis: list[str]) -> list[str]:
    """KPIs by score, highest first (ties keep column order; NaN last)."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    return [kpis[i] for i in order]


def services_in_order(ranked_kpis: list[str]) -> list[str]:
    """Services in order of their first KPI in the ranking."""
    return list(dict.fromkeys(service_of(k) for k in ranked_kpis))


def service_rank(ranked_kpis: list[str], service: str) -> int:
    """1-based position of the first KPI of ``service`` in the KPI ranking (len + 1 if none)."""
    for i, k in enumerate(ranked_kpis, 1):
        if service_of(k) == service:
            return i
    return len(ranked_kpis) + 1


def accuracy(ranks: list[int], k: int) -> float:
    """AC@k: share of events whose true root cause ranks within the top k."""
    return float(np.mean([r <= k for r in ranks])) if ranks else float("nan")


def average(ranks: list[int], k: int = TOP) -> float:
    """Avg@k = mean of AC@1..AC@k."""
    return float(np.mean([accuracy(ranks, j) for j in range(1, k + 1)])) if ranks else float("nan")


def summary(ranks: list[int]) -> dict[str, float]:
    return {"ac1": round(accuracy(ranks, 1), 6), "ac3": round(accuracy(ranks, 3), 6),
            "avg5": round(average(ranks, TOP), 6), "events": len(ranks)}  # fmt: skip


def localise(evidence_rows: dict[int, np.ndarray], frame: pd.DataFrame, kpis: list[str],
             how: str = "method") -> dict[str, Any]:  # fmt: skip
    """Rank KPIs per event and score the rankings.

    ``evidence_rows``: for how="method", a (rows, KPIs) array over the whole split under key -1
    (or per event index, rows [ref_start, stop)); for how="baro" the split's values under -1."""
    evs = fault_events(frame)
    per_event, ranks = [], []
    n_services = len(set(map(service_of, kpis)))
    for i, ev in enumerate(evs):
        s, e, r = ev["start"], ev["stop"], ev["ref_start"]
        if how == "baro":
            normal = frame["label"].to_numpy() == 0
            scores = baro_scores(evidence_rows[-1], s, e, r, normal)
        elif -1 in evidence_rows:
            scores = robust_event_scores(evidence_rows[-1], s, e, r)
        else:  # rows [ref_start, stop) only
            scores = robust_event_scores(evidence_rows[i], s - r, e - r, 0)
        ranked = rank_kpis(scores, kpis)
        rank = service_rank(ranked, ev["root_cause"])
        ranks.append(rank)
        per_event.append({"start": s, "fault_type": ev["fault_type"], "root_cause": ev["root_cause"],
                          "rank": rank, "top_services": services_in_order(ranked)[:TOP],
                          "top_kpis": ranked[:TOP]})  # fmt: skip
    by_type: dict[str, list[int]] = {}
    for ev, rank in zip(per_event, ranks, strict=True):
        by_type.setdefault(ev["fault_type"], []).append(rank)
    return {"level": "service", "candidates": n_services, "kpis": len(kpis), **summary(ranks),
            "per_type": {t: summary(v) for t, v in sorted(by_type.items())},
            "events_ranked": per_event}  # fmt: skip
