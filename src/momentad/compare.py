"""Gathering every method's metrics and scores into one comparison (the `compare` stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from momentad.errors import InputError
from momentad.layout import LORA, ZERO_SHOT, Layout, parse, read_details

SCORE_COLUMNS = ("timestamp", "score", "label", "fault_type")


def read_docs(layout: Layout, ids: list[str]) -> list[dict[str, Any]]:
    """The detail document of every method id the params name; files left over from other
    settings are ignored, a missing one is an error naming the stage to run."""
    docs = []
    for mid in ids:
        doc = read_details(layout, mid)
        for key in ("method", "test", "runtime", "model", "threshold"):
            if key not in doc:
                raise InputError(f"{layout.details(mid)}: missing '{key}'; run `dvc repro -f {parse(mid).stage}`")
        docs.append(doc)
    return docs


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
    if not np.isfinite(df["score"].to_numpy(dtype=float)).all():
        raise InputError(f"{path}: column 'score' holds NaN or infinite values; re-run its stage")
    if reference is not None and (
        len(df) != len(reference) or (df["timestamp"].values != reference["timestamp"].values).any()
    ):
        raise InputError(f"{path}: rows differ from the other methods' test rows; re-run every stage on the same data")
    return df


def kind(doc: dict[str, Any]) -> str:
    """moment_zero_shot | moment_lora | baseline"""
    return doc["detector"] if doc["detector"] in (ZERO_SHOT, LORA) else "baseline"


def weights(doc: dict[str, Any]) -> str:
    if kind(doc) == "baseline":
        return "trained from scratch"
    return "pretrained" if doc["model"].get("pretrained") else "random-init"


def table(docs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per method, sorted by VUS-PR."""
    rows = []
    for d in docs:
        t, r = d["test"], d["runtime"]
        rows.append({
            "method": d["method"], "kind": kind(d), "weights": weights(d),
            "budget": (d["budget"] or 0) if kind(d) != "baseline" else None,
            "vus_pr": t["vus_pr"], "vus_pr_std": d.get("test_std", {}).get("vus_pr"), "vus_roc": t["vus_roc"],
            "auc_pr": t["auc_pr"], "f1": t["f1_at_val_threshold"], "precision": t["precision_at_val_threshold"],
            "recall": t["recall_at_val_threshold"], "fit_s": r.get("fit_s"), "score_s": r.get("score_s"),
            "peak_rss_mb": r.get("peak_rss_mb"), "peak_gpu_mb": r.get("peak_gpu_mb"),
        })  # fmt: skip
    return pd.DataFrame(rows).sort_values("vus_pr", ascending=False, kind="stable").reset_index(drop=True)


def fault_recall_table(docs: list[dict[str, Any]], order: list[str]) -> pd.DataFrame:
    """Methods x fault types: share of test events detected at the validation threshold."""
    by = {d["method"]: d.get("fault_type_recall", {}) for d in docs}
    types = sorted({k for v in by.values() for k in v})
    return pd.DataFrame([[by[m].get(t, np.nan) for t in types] for m in order], index=order, columns=types)


def learning_curve(docs: list[dict[str, Any]]) -> pd.DataFrame:
    """x = budget (0 = zero-shot); MOMENT's points, and each baseline as a flat reference line."""
    moment = sorted((d for d in docs if kind(d) != "baseline"), key=lambda d: d["budget"] or 0)
    budgets = [d["budget"] or 0 for d in moment] or [0]
    rows = []
    for d in moment:
        rows.append({"budget": d["budget"] or 0, "series": "MOMENT", "vus_pr": d["test"]["vus_pr"],
                     "vus_pr_std": d.get("test_std", {}).get("vus_pr", 0.0),
                     "f1": d["test"]["f1_at_val_threshold"]})  # fmt: skip
    for d in docs:
        if kind(d) == "baseline":
            for b in budgets:
                rows.append({"budget": b, "series": d["method"], "vus_pr": d["test"]["vus_pr"], "vus_pr_std": 0.0,
                             "f1": d["test"]["f1_at_val_threshold"]})  # fmt: skip
    return pd.DataFrame(rows)


def summary(tab: pd.DataFrame, verdict: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """metrics/compare.json: flat headline keys for `dvc metrics diff` / `dvc exp show`: the
    mean test VUS-PR of every method at every budget (``vus_pr.<method>.<budget>``) and, per
    budget, the verdict with its interval."""
    moment = tab[tab["kind"] != "baseline"]
    base = tab[tab["kind"] == "baseline"]
    out: dict[str, Any] = {"best_method": tab.iloc[0]["method"], "best_vus_pr": round(float(tab.iloc[0]["vus_pr"]), 6)}
    if len(moment):
        out["moment_pretrained"] = bool((moment["weights"] == "pretrained").all())
        out.update(best_moment=moment.iloc[0]["method"], best_moment_vus_pr=round(float(moment.iloc[0]["vus_pr"]), 6))
    if len(base):
        out.update(best_baseline=base.iloc[0]["method"], best_baseline_vus_pr=round(float(base.iloc[0]["vus_pr"]), 6))
    if len(moment) and len(base):
        out["moment_minus_best_baseline_vus_pr"] = round(float(moment.iloc[0]["vus_pr"] - base.iloc[0]["vus_pr"]), 6)
    vp: dict[str, dict[str, float]] = {}
    for r in tab.itertuples():
        name = LORA if r.kind == LORA else r.method
        budget = "full" if r.kind == "baseline" else str(int(r.budget))
        vp.setdefault(name, {})[budget] = round(float(r.vus_pr), 6)
    out["vus_pr"] = vp
    if verdict:
        out["verdict"] = {b: {k: v[k] for k in ("moment_minus_best_baseline", "ci_low", "ci_high", "verdict")}
                          for b, v in verdict.items()}  # fmt: skip
    return out


def verdicts(docs: list[dict[str, Any]], frames: dict[str, pd.DataFrame], tab: pd.DataFrame,
             seed: int = 0, replicates: int = 200) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per MOMENT budget (0 = zero-shot): that MOMENT row minus the best baseline in test VUS-PR,
    with a 95% interval (paired over draws when both sides have several, else a paired block
    bootstrap over test events) and a verdict word."""
    from momentad.stats import block_bootstrap_diff, paired_draws_diff, verdict

    by = {d["method"]: d for d in docs}
    base = tab[tab["kind"] == "baseline"]
    if base.empty:
        return {}
    best = base.iloc[0]["method"]
    out = {}
    for d in sorted((d for d in docs if kind(d) != "baseline"), key=lambda d: d["budget"] or 0):
        m = d["method"]
        boot = block_bootstrap_diff(frames[m]["label"].to_numpy(), frames[m]["score"].to_numpy(),
                                    frames[best]["score"].to_numpy(), int(d["sliding_window"]), replicates,
                                    seed)  # fmt: skip
        draws = paired_draws_diff([p["vus_pr"] for p in d.get("per_draw", [])],
                                  [p["vus_pr"] for p in by[best].get("per_draw", [])])  # fmt: skip
        ci = draws or boot
        out[str(d["budget"] or 0)] = {
            "moment": m, "best_baseline": best, "moment_minus_best_baseline": round(ci["diff"], 6),
            "ci_low": round(ci["ci_low"], 6), "ci_high": round(ci["ci_high"], 6),
            "verdict": verdict(ci["ci_low"], ci["ci_high"]), "interval": ci["method"],
            "bootstrap": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in boot.items()},
        }  # fmt: skip
    return out


def pr_curves(frames: dict[str, pd.DataFrame], order: list[str], points: int = 400) -> dict[str, tuple]:
    """Test precision-recall curves per method, thinned to about ``points`` points."""
    curves = {}
    for m in order:
        p, r, _ = precision_recall_curve(frames[m]["label"], frames[m]["score"])
        step = max(1, len(p) // points)
        curves[m] = (p[::step], r[::step])
    return curves


def timeline_methods(order: list[str], docs: list[dict[str, Any]]) -> list[str]:
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
        where = "zero-shot" if b == "0" else f"LoRA on {b} training windows"
        out.append(f"- **Budget {b}** ({where}, {weights} weights): MOMENT is **{v['verdict']}** against the "
                   f"best baseline `{v['best_baseline']}` — test VUS-PR difference "
                   f"{v['moment_minus_best_baseline']:+.3f}, 95% interval [{v['ci_low']:+.3f}, {v['ci_high']:+.3f}] "
                   f"({v['interval']}).")  # fmt: skip
    return out


def render_report(tab: pd.DataFrame, recall: pd.DataFrame, docs: list[dict[str, Any]],
                  verdict: dict[str, dict[str, Any]] | None = None) -> str:  # fmt: skip
    """reports/compare.md: the answer per budget, the ranked table, per-fault-type recall,
    detection delays and the weights caveat."""
    data = docs[0].get("data", {})
    lines = ["# Does MOMENT beat the classic detectors?", ""]
    random_init = (tab["weights"] == "random-init").any()
    if verdict:
        lines += answer_lines(verdict, "RANDOM-INIT (not pretrained)" if random_init else "pretrained")
        lines += ["", "The baselines here trained on the whole train split (not yet on each budget); the interval "
                  "resamples test events (a block = an event and the normal rows after it), pairing both methods "
                  "on the same blocks.", ""]  # fmt: skip
    if random_init:
        lines += [CAVEAT, ""]
    lines += [
        f"Data: `{data.get('source', '?')}` ({data.get('name', '')})"
        + (" — **synthetic** TrainTicket-like telemetry" if data.get("synthetic") else ""),
        "",
        "Ranked by **VUS-PR** on the test split (threshold-free, the headline). F1 / precision / recall use the "
        "threshold chosen on the validation split. Oracle-threshold scores (standard, PA, event, range, affiliation "
        "F1) are in each `reports/methods/*.json`; PA-F1 inflates and is never a headline.",
        "",
        "| # | method | weights | budget | VUS-PR | VUS-ROC | AUC-PR | F1 | precision | recall | fit s | score s "
        "| peak RSS MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for i, r in enumerate(tab.itertuples(), 1):
        vus = _fmt(r.vus_pr) + (f" ± {r.vus_pr_std:.3f}" if r.vus_pr_std and r.vus_pr_std > 0 else "")
        budget = "" if r.budget is None or (isinstance(r.budget, float) and np.isnan(r.budget)) else int(r.budget)
        lines.append(
            f"| {i} | {r.method} | {r.weights} | {budget} | {vus} | {_fmt(r.vus_roc)} | {_fmt(r.auc_pr)} | "
            f"{_fmt(r.f1)} | {_fmt(r.precision)} | {_fmt(r.recall)} | {_fmt(r.fit_s, 1)} | {_fmt(r.score_s, 1)} | "
            f"{_fmt(r.peak_rss_mb, 0)} |"
        )
    lines += ["", "## Which faults each method catches", "", "Share of the test split's fault events with at "
              "least one step flagged at the validation threshold; the header gives each type's number of test "
              "events (n), and with so few events a share carries a wide interval: 95% Wilson intervals for "
              "1 of 1, 0 of 1, 3 of 5 are [0.21, 1], [0, 0.79], [0.23, 0.88].", ""]  # fmt: skip
    cols = list(recall.columns)
    events = docs[0].get("fault_type_events", {})
    lines.append("| method | " + " | ".join(f"{c} (n={events.get(c, '?')})" for c in cols) + " |")
    lines.append("| --- |" + " --- |" * len(cols))
    for m, row in recall.iterrows():
        lines.append(f"| {m} | " + " | ".join(_fmt(v, 2) for v in row) + " |")
    lines += [
        "",
        "## How fast each method flags a fault",
        "",
        "Per test fault event: time from its first labelled step to the first step flagged at the validation "
        "threshold (inside the event). Median and 90th percentile over the detected events; missed events are "
        "counted apart.",
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
    lines += ["", "Plots: `plots/compare/` (learning curve, PR curves, recall heatmap, timeline); "
              "`dvc plots show` renders them with the per-method plots.", ""]  # fmt: skip
    return "\n".join(lines)


def learning_curve_wide(curve: pd.DataFrame) -> pd.DataFrame:
    """The DVC-plot form: one row per budget, MOMENT and the best baseline side by side."""
    m = curve[curve["series"] == "MOMENT"].set_index("budget")
    base = curve[curve["series"] != "MOMENT"]
    out = pd.DataFrame({"budget": m.index, "moment_vus_pr": m["vus_pr"].values,
                        "moment_vus_pr_std": m["vus_pr_std"].values, "moment_f1": m["f1"].values})  # fmt: skip
    if len(base):
        best = base.groupby("series")["vus_pr"].max().idxmax()
        b = base[base["series"] == best].iloc[0]
        out["best_baseline_vus_pr"] = b["vus_pr"]
        out["best_baseline_f1"] = b["f1"]
    return out
