"""Gathering every method's metrics and scores into one comparison (the `compare` stage).

Rows are method ids: one per (detector, budget). A budget label is ``0`` (zero-shot), a
``budget.sizes`` entry, or ``full``. The question is asked per budget: the best MOMENT row at
that budget (zero-shot needs no training windows, so it competes at every budget) against the
best baseline at the same budget.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from momentad.errors import InputError
from momentad.layout import FULL, LORA, ZERO_SHOT, Layout, parse, read_details
from momentad.rca import baro_event_scores, fault_events, localise

SCORE_COLUMNS = ("timestamp", "score", "label", "fault_type")


def read_docs(layout: Layout, ids: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ran, not run): the detail documents of every method id the params name; files left
    over from other settings are ignored, a missing one is an error naming the stage to run."""
    ran, not_run = [], []
    for mid in ids:
        doc = read_details(layout, mid)
        if doc.get("status", "ok") != "ok":
            not_run.append(doc)
            continue
        for key in ("method", "test", "runtime", "model", "threshold"):
            if key not in doc:
                raise InputError(f"{layout.details(mid)}: missing '{key}'; run `dvc repro -f {parse(mid).stage}`")
        ran.append(doc)
    if not ran:
        raise InputError("no method ran on this data (every one says `not run`); see reports/methods/*.json")
    return ran, not_run


def read_scores(path: Path, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """A scores table, checked against the contract (and against the other methods' rows)."""
    if not path.is_file():
        raise InputError(f"{path}: scores file not found; re-run the stage that writes it")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: not a readable Parquet file ({type(e).__name__}); re-run its stage") from None
    missing = [c for c in SCORE_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; re-run its stage")
    score_cols = ["score", *draw_columns(df).values()]
    if not np.isfinite(df[score_cols].to_numpy(dtype=float)).all():
        raise InputError(f"{path}: a score column holds NaN or infinite values; re-run its stage")
    if reference is not None and (
        len(df) != len(reference) or (df["timestamp"].values != reference["timestamp"].values).any()
    ):
        raise InputError(f"{path}: rows differ from the other methods' test rows; re-run every stage on the same data")
    return df


def draw_columns(frame: pd.DataFrame) -> dict[int, str]:
    """{draw: its ``score_<draw>`` column}, in draw order."""
    draws = {int(c[6:]): c for c in frame.columns if c.startswith("score_") and c[6:].isdigit()}
    return dict(sorted(draws.items()))


def kind(doc: dict[str, Any]) -> str:
    """moment_zero_shot | moment_lora | baseline"""
    return doc["detector"] if doc["detector"] in (ZERO_SHOT, LORA) else "baseline"


def budget_label(doc: dict[str, Any]) -> str:
    return "0" if doc["budget"] is None else str(doc["budget"])


def weights(doc: dict[str, Any]) -> str:
    if kind(doc) == "baseline":
        return "trained from scratch"
    return "pretrained" if doc["model"].get("pretrained") else "random-init"


def table(docs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per method id, sorted by mean test VUS-PR."""
    rows = []
    for d in docs:
        t, r = d["test"], d["runtime"]
        per = d.get("per_draw", [])
        rows.append({
            "method": d["method"], "detector": d["detector"], "kind": kind(d), "weights": weights(d),
            "budget": budget_label(d), "draws": d.get("draws", 1),
            "train_windows": int(np.mean([p["train_windows"] for p in per])) if per and "train_windows" in per[0]
            else None,
            "vus_pr": t["vus_pr"], "vus_pr_std": d.get("test_std", {}).get("vus_pr"), "vus_roc": t["vus_roc"],
            "auc_pr": t["auc_pr"], "f1": t["f1_at_val_threshold"], "precision": t["precision_at_val_threshold"],
            "recall": t["recall_at_val_threshold"], "fit_s": r.get("fit_s"), "score_s": r.get("score_s"),
            "peak_rss_mb": r.get("peak_rss_mb"), "peak_gpu_mb": r.get("peak_gpu_mb"),
        })  # fmt: skip
    return pd.DataFrame(rows).sort_values("vus_pr", ascending=False, kind="stable").reset_index(drop=True)


def best_per_detector(tab: pd.DataFrame) -> list[str]:
    """Each detector's best row (by mean test VUS-PR), best first."""
    return list(tab.drop_duplicates("detector")["method"])


def fault_recall_table(docs: list[dict[str, Any]], order: list[str]) -> pd.DataFrame:
    """Methods x fault types: share of test events detected at the validation threshold."""
    by = {d["method"]: d.get("fault_type_recall", {}) for d in docs}
    types = sorted({k for v in by.values() for k in v})
    return pd.DataFrame([[by[m].get(t, np.nan) for t in types] for m in order], index=order, columns=types)


def learning_curve(tab: pd.DataFrame, budgets: list[int]) -> pd.DataFrame:
    """Long form, one row per (detector, budget): x = training windows (``full`` = every train
    window, at the right); zero-shot, which trains on nothing, is drawn at every budget."""
    full_windows = tab.loc[tab["budget"] == FULL, "train_windows"].dropna()
    x_full = int(full_windows.max()) if len(full_windows) else None
    rows = []
    for r in tab.itertuples():
        if r.kind == ZERO_SHOT:
            xs = [(str(b), b) for b in budgets] + ([(FULL, x_full)] if x_full else [])
        elif r.budget == FULL:
            xs = [(FULL, x_full)]
        else:
            xs = [(r.budget, int(r.budget))]
        for label, x in xs:
            rows.append({"method": r.detector, "budget": label, "train_windows": x, "vus_pr": r.vus_pr,
                         "vus_pr_std": r.vus_pr_std or 0.0, "draws": r.draws})  # fmt: skip
    return pd.DataFrame(rows).sort_values(["method", "train_windows"], kind="stable").reset_index(drop=True)


def summary(
    tab: pd.DataFrame, verdict: dict[str, dict[str, Any]] | None = None, root_cause: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """metrics/compare.json: flat headline keys for `dvc metrics diff` / `dvc exp show`: the
    mean test VUS-PR of every method at every budget (``vus_pr.<method>.<budget>``) and, per
    budget, the verdict with its interval; AC@1 / AC@3 of root-cause ranking per detector's best
    row and BARO (``root_cause.<method>.ac1``)."""
    moment = tab[tab["kind"] != "baseline"]
    out: dict[str, Any] = {"best_method": tab.iloc[0]["method"], "best_vus_pr": round(float(tab.iloc[0]["vus_pr"]), 6)}
    if len(moment):
        out["moment_pretrained"] = bool((moment["weights"] == "pretrained").all())
    vp: dict[str, dict[str, float]] = {}
    for r in tab.itertuples():
        vp.setdefault(r.detector, {})[r.budget] = round(float(r.vus_pr), 6)
    out["vus_pr"] = vp
    if verdict:
        out["verdict"] = {b: {k: v[k] for k in ("moment_minus_best_baseline", "ci_low", "ci_high", "verdict")}
                          for b, v in verdict.items()}  # fmt: skip
    if root_cause:
        out["root_cause"] = {r["method"].split(" ")[0]: {"ac1": r["ac1"], "ac3": r["ac3"]} for r in root_cause}
    return out


def verdicts(tab: pd.DataFrame, docs: list[dict[str, Any]], frames: dict[str, pd.DataFrame], budgets: list[int],
             seed: int = 0, replicates: int = 100, workers: int = 1) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per budget (each ``budget.sizes`` entry and ``full``): the best MOMENT row usable at that
    budget minus the best baseline at it, in mean test VUS-PR over draws, with a 95% interval
    from a paired bootstrap over test events and draws, and a verdict word. The budgets'
    bootstraps run in ``workers`` processes (each seeded alike, so the count changes nothing)."""
    from concurrent.futures import ProcessPoolExecutor

    from momentad.stats import paired_draws_diff, two_level_bootstrap, verdict

    by = {d["method"]: d for d in docs}
    pairs, jobs = {}, {}
    for b in [*map(str, budgets), FULL]:
        base = tab[(tab["kind"] == "baseline") & (tab["budget"] == b)]
        moment = tab[tab["kind"] != "baseline"]
        if b != FULL:  # at full, MOMENT's best row at any budget
            moment = moment[moment["budget"].isin(["0", b])]
        if base.empty or moment.empty:
            continue
        m, best = moment.iloc[0]["method"], base.iloc[0]["method"]
        sa, sb = _paired(_draw_scores(frames[m]), _draw_scores(frames[best]))
        pairs[b] = (m, best)
        jobs[b] = (frames[m]["label"].to_numpy(), np.stack(list(sa.values())), np.stack(list(sb.values())),
                   int(by[m]["sliding_window"]), replicates, seed)  # fmt: skip
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            columns = zip(*jobs.values(), strict=True)
            boots = dict(zip(jobs, pool.map(two_level_bootstrap, *columns), strict=True))
    else:
        boots = {b: two_level_bootstrap(*job) for b, job in jobs.items()}
    out = {}
    for b, (m, best) in pairs.items():
        boot = boots[b]
        va, vb = _paired(*({p["draw"]: p["vus_pr"] for p in by[x].get("per_draw", [])} for x in (m, best)))
        draws = paired_draws_diff(list(va.values()), list(vb.values()))
        out[b] = {
            "moment": m, "best_baseline": best, "moment_minus_best_baseline": round(boot["diff"], 6),
            "ci_low": round(boot["ci_low"], 6), "ci_high": round(boot["ci_high"], 6),
            "verdict": verdict(boot["ci_low"], boot["ci_high"]), "interval": boot["method"],
            "draws_only": None if draws is None else {k: (round(v, 6) if isinstance(v, float) else v)
                                                      for k, v in draws.items()},
        }  # fmt: skip
    return out


def _draw_scores(frame: pd.DataFrame) -> dict[int, np.ndarray]:
    """{draw: test scores} (draw 0 only for single-draw methods)."""
    cols = draw_columns(frame) or {0: "score"}
    return {k: frame[c].to_numpy(dtype=np.float64) for k, c in cols.items()}


def _paired(a: dict[int, Any], b: dict[int, Any]) -> tuple[dict[int, Any], dict[int, Any]]:
    """The draws both sides ran (draw k of two methods trained on the same rows); a single-draw
    side (zero-shot, which does not train) pairs with every draw of the other."""
    if len(a) == 1 and len(b) > 1:
        a = {k: next(iter(a.values())) for k in b}
    if len(b) == 1 and len(a) > 1:
        b = {k: next(iter(b.values())) for k in a}
    common = sorted(set(a) & set(b))
    return {k: a[k] for k in common}, {k: b[k] for k in common}


def pr_curves(frames: dict[str, pd.DataFrame], order: list[str], points: int = 400) -> dict[str, tuple]:
    """Test precision-recall curves per method, thinned to about ``points`` points."""
    curves = {}
    for m in order:
        p, r, _ = precision_recall_curve(frames[m]["label"], frames[m]["score"])
        step = max(1, len(p) // points)
        curves[m] = (p[::step], r[::step])
    return curves


def timeline_methods(order: list[str]) -> list[str]:
    """The best method, the best MOMENT row and zero-shot: the rows worth a timeline."""
    shown = [order[0]]
    shown += [m for m in order if m.startswith("moment") and m not in shown][:1]
    shown += [m for m in (ZERO_SHOT,) if m in order and m not in shown]
    return shown


CAVEAT = (
    "> **MOMENT ran with random-init weights.** Its rows below (`weights: random-init`) use the MOMENT "
    "architecture with seeded random weights because the pretrained checkpoint could not be loaded here; "
    "they are **not foundation-model results**. To get them, run on a machine that reaches the Hugging Face "
    "hub (or has the model in its cache): `dvc exp run -S model.checkpoint=AutonLab/MOMENT-1-large`."
)


def _fmt(v, digits=3):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def answer_lines(verdict: dict[str, dict[str, Any]], weights: str) -> list[str]:
    """One sentence per budget answering the question, with its interval."""
    out = []
    for b, v in verdict.items():
        where = ("on the full train split (MOMENT: its best row at any budget)" if b == FULL
                 else f"{b} training windows")  # fmt: skip
        out.append(f"- **Budget {b}** ({where}; MOMENT {weights}): MOMENT (`{v['moment']}`) is **{v['verdict']}** "
                   f"against the best baseline `{v['best_baseline']}` — test VUS-PR difference "
                   f"{v['moment_minus_best_baseline']:+.3f}, 95% interval "
                   f"[{v['ci_low']:+.3f}, {v['ci_high']:+.3f}].")  # fmt: skip
    return out


def _recall_cell(share: float, n: int) -> str:
    from momentad.stats import wilson

    if not np.isfinite(share):
        return ""
    lo, hi = wilson(int(round(share * n)), n)
    return f"{share:.2f} [{lo:.2f}, {hi:.2f}]"


def render_report(tab: pd.DataFrame, recall: pd.DataFrame, docs: list[dict[str, Any]],
                  verdict: dict[str, dict[str, Any]] | None = None, not_run: list[dict[str, Any]] | None = None,
                  root_cause: list[dict[str, Any]] | None = None) -> str:  # fmt: skip
    """reports/compare.md: the answer per budget, the ranked table, per-fault-type recall,
    detection delays, root-cause ranking, what did not run and the weights caveat."""
    data = docs[0].get("data", {})
    lines = ["# Does MOMENT beat the classic detectors?", ""]
    random_init = (tab["weights"] == "random-init").any()
    if verdict:
        lines += answer_lines(verdict, "with RANDOM-INIT weights, not pretrained" if random_init else "pretrained")
        reps = next(iter(verdict.values()))["interval"]
        lines += ["", f"Every method trains at every budget on the same stretches of the train split (a budget of N "
                  "= N consecutive training windows from a seeded start per draw; the 100 begin the 500). Each "
                  f"difference is the mean over draws; its interval is a {reps}: a replicate resamples test events "
                  "(an event with the normal rows after it) and draws (draw k of both methods saw the same "
                  "training rows), the same for both methods. Verdict: better / worse when the whole interval is "
                  "on one side of zero, else not distinguishable. `reports/methods/<id>.json` holds every draw.",
                  ""]  # fmt: skip
    if random_init:
        lines += [CAVEAT, ""]
    lines += [
        f"Data: `{data.get('source', '?')}` ({data.get('name', '')})"
        + (" — **synthetic** TrainTicket-like telemetry" if data.get("synthetic") else ""),
        "",
        "Ranked by mean **VUS-PR** on the test split over draws (± standard deviation; threshold-free, the "
        "headline). F1 / precision / recall use the threshold chosen on the validation split. Oracle-threshold "
        "scores are in each `reports/methods/*.json`; PA-F1 inflates and is never a headline.",
        "",
        "| # | method | weights | budget | draws | train windows | VUS-PR | VUS-ROC | AUC-PR | F1 | precision "
        "| recall | fit s | score s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for i, r in enumerate(tab.itertuples(), 1):
        vus = _fmt(r.vus_pr) + (f" ± {r.vus_pr_std:.3f}" if r.vus_pr_std and r.vus_pr_std > 0 else "")
        windows = "" if r.train_windows is None or pd.isna(r.train_windows) else int(r.train_windows)
        lines.append(
            f"| {i} | {r.method} | {r.weights} | {r.budget} | {r.draws} | {windows} | {vus} | {_fmt(r.vus_roc)} | "
            f"{_fmt(r.auc_pr)} | {_fmt(r.f1)} | {_fmt(r.precision)} | {_fmt(r.recall)} | {_fmt(r.fit_s, 1)} | "
            f"{_fmt(r.score_s, 1)} |"
        )
    if not_run:
        lines += ["", "## Not run", "", "| method | budget | reason |", "| --- | --- | --- |"]
        lines += [f"| {d['method']} | {d['budget']} | {d['status']} |" for d in not_run]
    partial = [d for d in docs if d.get("not_run_draws")]
    if partial:
        lines += ["", "Draws that could not run (the row's mean is over the others): "
                  + "; ".join(f"`{d['method']}` draw {s['draw']} ({s['reason']})" for d in partial
                              for s in d["not_run_draws"]) + "."]  # fmt: skip
    events = docs[0].get("fault_type_events", {})
    lines += ["", "## Which faults each method catches", "", "Each detector's best row. Share of the test split's "
              "fault events with at least one step flagged at the validation threshold (mean over draws), with a "
              "95% Wilson interval over the n events of that type (k rounded from the mean). A method that flags "
              "most steps catches every event: read it with the precision column above.", ""]  # fmt: skip
    cols = list(recall.columns)
    lines.append("| method | " + " | ".join(f"{c} (n={events.get(c, '?')})" for c in cols) + " |")
    lines.append("| --- |" + " --- |" * len(cols))
    for m, row in recall.iterrows():
        lines.append(f"| {m} | " + " | ".join(_recall_cell(v, int(events.get(c, 0))) for c, v in row.items()) + " |")
    lines += [
        "",
        "## How fast each method flags a fault",
        "",
        "Per test fault event: time from its first labelled step to the first step flagged at the validation "
        "threshold (inside the event), for the first draw. Median and 90th percentile over the detected events; "
        "missed events are counted apart.",
        "",
        "| method | events | detected | missed | median delay | p90 delay |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    by = {d["method"]: d for d in docs}
    for m in tab["method"]:
        dl = by[m].get("detection_delay")
        if not dl:
            continue
        unit = "minutes" if "median_minutes" in dl else "steps"
        med, p90 = dl.get(f"median_{unit}"), dl.get(f"p90_{unit}")
        lines.append(
            f"| {m} | {dl['events']} | {dl['detected']} | {dl['missed']} | "
            f"{'' if med is None else f'{med:g} {unit}'} | {'' if p90 is None else f'{p90:g} {unit}'} |"
        )
    lines += root_cause_lines(root_cause or [])
    lines += ["", "Plots: `plots/compare/` (learning curve, PR curves, recall heatmap, timeline, root-cause ranks); "
              "`dvc plots show` renders them with the per-method plots.", ""]  # fmt: skip
    return "\n".join(lines)


def baro_reference(processed: Path) -> dict[str, Any] | None:
    """BARO's ranking of the test fault events (:mod:`momentad.rca`), or None without root causes."""
    schema_path, test_path = processed / "schema.json", processed / "test.parquet"
    if not schema_path.is_file() or not test_path.is_file():
        raise InputError(f"{processed}: schema.json / test.parquet not found; run `dvc repro preprocess`")
    features = json.loads(schema_path.read_text())["features"]
    frame = pd.read_parquet(test_path)
    events = fault_events(frame)
    if not events:
        return None
    t0 = time.perf_counter()
    scores = baro_event_scores(frame[features].to_numpy(dtype=np.float64), frame["label"].to_numpy(), events)
    out = localise(events, scores, features)
    return {"status": "ok", "seconds": round(time.perf_counter() - t0, 3), **out}


def root_cause_rows(docs: list[dict[str, Any]], order: list[str], baro: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per method in ``order`` (each detector's best row) whose ranking ran, then BARO."""
    by = {d["method"]: d for d in docs}
    rows = []
    for m in order:
        rc = by[m].get("root_cause") or {}
        if rc.get("status") != "ok":
            continue
        score_s = by[m]["runtime"]["score_s"]
        rows.append({"method": m, "weights": weights(by[m]), **rc,
                     "share_of_score": rc["seconds"] / score_s if score_s else None})  # fmt: skip
    if baro:
        rows.append({"method": "baro (reference)", "weights": "statistics, no training", **baro,
                     "share_of_score": None})  # fmt: skip
    return rows


def root_cause_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The report section: AC@1 / AC@3 / Avg@5 per method and AC@1 per fault type."""
    if not rows:
        return ["", "## Where the fault is", "", "No test fault event names its root cause: nothing to rank.", ""]
    first = rows[0]
    lines = ["", "## Where the fault is (root-cause service)", "",
             f"Per test fault event, the {first['kpis']} KPIs are ranked by each method's per-KPI evidence over the "
             "event (mean, as a robust z-score against the 60 rows before it; the forests by occlusion), and the "
             f"event's true root-cause service is looked up among the {first['candidates']} services "
             "(RCAEval's definitions: AC@k = share of events whose service is among the services of the top-k "
             "KPIs; Avg@5 = mean of AC@1..AC@5). First draw of each detector's best row; BARO (robust z of the "
             "raw KPIs against the normal rows before the event) is the statistical reference a method must beat. "
             "`ranking s` = time to rank every event, and its share of the method's test scoring time.", "",
             "| method | weights | AC@1 | AC@3 | Avg@5 | events | ranking s | share of score time |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        share = "" if r["share_of_score"] is None else f"{100 * r['share_of_score']:.1f} %"
        lines.append(f"| {r['method']} | {r['weights']} | {r['ac1']:.3f} | {r['ac3']:.3f} | {r['avg5']:.3f} | "
                     f"{r['events']} | {r['seconds']:.2f} | {share} |")  # fmt: skip
    types = list(first["per_type"])
    lines += ["", "AC@1 per fault type (n events):", "",
              "| method | " + " | ".join(f"{t} (n={first['per_type'][t]['events']})" for t in types) + " |",
              "| --- |" + " --- |" * len(types)]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(f"{r['per_type'][t]['ac1']:.2f}" for t in types) + " |")
    return lines
