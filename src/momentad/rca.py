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


def span_evidence(det: Any, split: Any, spans: list[tuple[int, int]]) -> list[np.ndarray]:
    """A detector's per-KPI evidence on rows [lo, hi) of each span, from one ``attribute`` call."""
    rows = [np.arange(lo, hi) for lo, hi in spans]
    evidence = det.attribute(split, np.concatenate(rows))
    return np.split(evidence, np.cumsum([len(r) for r in rows])[:-1])


def robust_event_scores(evidence: np.ndarray, start: int) -> np.ndarray:
    """(rows, KPIs) evidence over a reference stretch then an event starting at row ``start`` ->
    one score per KPI: the event mean as a robust z against the reference (median, 1.4826 x MAD;
    the event mean alone when there are fewer than 2 reference rows)."""
    event = evidence[start:].mean(axis=0)
    if start < 2:
        return event
    ref = evidence[:start]
    med = np.median(ref, axis=0)
    mad = 1.4826 * np.median(np.abs(ref - med), axis=0)
    scale = np.where(mad > 0, mad, np.maximum(ref.std(axis=0), 1e-12))
    return (event - med) / scale


def method_scores(det: Any, split: Any, events: list[dict[str, Any]]) -> list[np.ndarray]:
    """Per event, each KPI's score from the detector's evidence (:func:`robust_event_scores`)."""
    chunks = span_evidence(det, split, [(e["ref_start"], e["stop"]) for e in events])
    return [robust_event_scores(c, e["start"] - e["ref_start"]) for c, e in zip(chunks, events, strict=True)]


def baro_scores(values: np.ndarray, start: int, normal: np.ndarray) -> np.ndarray:
    """BARO per KPI over a reference stretch then an event starting at row ``start``: max over the
    event of (x - median) / IQR of the reference's normal rows (all its rows when fewer than 2
    are normal; IQR 0 -> 1, as scikit-learn's RobustScaler)."""
    ref = values[:start][normal[:start]]
    if len(ref) < 2:
        ref = values[:start]
    med = np.median(ref, axis=0)
    q1, q3 = np.percentile(ref, [25, 75], axis=0)
    iqr = q3 - q1
    iqr = np.where(iqr > 0, iqr, 1.0)
    return ((values[start:] - med) / iqr).max(axis=0)


def baro_event_scores(values: np.ndarray, label: np.ndarray, events: list[dict[str, Any]]) -> list[np.ndarray]:
    """Per event, BARO's score of each KPI (the split's values and labels)."""
    return [baro_scores(values[e["ref_start"] : e["stop"]], e["start"] - e["ref_start"],
                        label[e["ref_start"] : e["stop"]] == 0) for e in events]  # fmt: skip


def rank_kpis(scores: np.ndarray, kpis: list[str]) -> list[str]:
    """KPIs by score, highest first (ties keep column order; NaN last)."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")
    return [kpis[i] for i in order]


def services_in_order(ranked_kpis: list[str]) -> list[str]:
    """Services in order of their first KPI in the ranking."""
    return list(dict.fromkeys(service_of(k) for k in ranked_kpis))


def service_rank(ranked_kpis: list[str], service: str) -> int:
    """1-based position of the first KPI of ``service`` in the KPI ranking (len + 1 if none).
    A root cause naming several (``a,b``, e.g. SMD's interpreted KPIs) is found at the first of
    them."""
    causes = set(service.split(","))
    for i, k in enumerate(ranked_kpis, 1):
        if service_of(k) in causes:
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


def localise(events: list[dict[str, Any]], scores: list[np.ndarray], kpis: list[str]) -> dict[str, Any]:
    """Rank KPIs per event by ``scores`` and score the rankings (:func:`fault_events` gives the
    events; :func:`method_scores` or :func:`baro_event_scores` the scores)."""
    per_event, ranks = [], []
    for ev, sc in zip(events, scores, strict=True):
        ranked = rank_kpis(sc, kpis)
        rank = service_rank(ranked, ev["root_cause"])
        ranks.append(rank)
        per_event.append({"start": ev["start"], "fault_type": ev["fault_type"], "root_cause": ev["root_cause"],
                          "rank": rank, "top_services": services_in_order(ranked)[:TOP],
                          "top_kpis": ranked[:TOP]})  # fmt: skip
    by_type: dict[str, list[int]] = {}
    for ev in per_event:
        by_type.setdefault(ev["fault_type"], []).append(ev["rank"])
    return {"level": "service", "candidates": len(set(map(service_of, kpis))), "kpis": len(kpis), **summary(ranks),
            "per_type": {t: summary(v) for t, v in sorted(by_type.items())},
            "events_ranked": per_event}  # fmt: skip
