"""reports/compare.md: the answer first, then the ranked table, what did not run, per-fault-type
recall, detection delays and root-cause ranking."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from momentad.budgets import FULL

CAVEAT = (
    "> **The foundation model ran with random-init weights.** Its rows (`weights: random-init`) use the MOMENT "
    "architecture with seeded random weights because the pretrained checkpoint could not be loaded here; "
    "they are **not foundation-model results**. To get them, run where the Hugging Face hub is reachable "
    "(or the model is in its cache): `dvc exp run -S moment.checkpoint=AutonLab/MOMENT-1-large`."
)


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def answer_lines(verdict: dict[str, dict[str, Any]], weights: str) -> list[str]:
    """One sentence per budget answering the question, with its interval."""
    out = []
    for b, v in verdict.items():
        where = {
            FULL: "on the full train split (MOMENT: its row at any budget)",
            "0": "no training: MOMENT zero-shot against the one-liners",
        }.get(b, f"{b} training windows")
        against = (f"the classic detector picked on validation, `{v['best_baseline']}`" if "worse_than" not in v
                   else f"every classic detector at this budget ({v['compared_with']}, Holm-corrected; worse than "
                   f"{len(v['worse_than'])}, better than {len(v['better_than'])}); difference to the strongest on "
                   f"test, `{v['best_baseline']}`")  # fmt: skip
        out.append(f"- **Budget {b}** ({where}; MOMENT {weights}): `{v['moment']}` is **{v['verdict']}** against "
                   f"{against} — test VUS-PR difference {v['moment_minus_best_baseline']:+.3f}, 95% interval "
                   f"[{v['ci_low']:+.3f}, {v['ci_high']:+.3f}].")  # fmt: skip
    return out


def _recall_cell(share: float, n: int) -> str:
    from momentad.stats import wilson

    if not np.isfinite(share):
        return ""
    lo, hi = wilson(int(round(share * n)), n)
    return f"{share:.2f} [{lo:.2f}, {hi:.2f}]"


def render_report(tab: pd.DataFrame, recall: pd.DataFrame, rows: list[dict[str, Any]],
                  verdict: dict[str, dict[str, Any]], not_run: list[dict[str, Any]],
                  root_cause: list[dict[str, Any]]) -> str:  # fmt: skip
    """The whole report (markdown)."""
    data = rows[0].data
    lines = ["# Does MOMENT beat the classic detectors?", ""]
    random_init = (tab["origin"] == "random-init").any()
    if random_init:
        lines += [CAVEAT, ""]
    if verdict:
        fm = tab[tab["side"] == "foundation model"]
        lines += answer_lines(verdict, "with RANDOM-INIT weights, not pretrained" if random_init
                              else " / ".join(dict.fromkeys(fm["weights"])))  # fmt: skip
        reps = next(iter(verdict.values()))["interval"]
        lines += ["", "Every method trains at every budget on the same stretches of the train split (a budget of N "
                  "= N consecutive training windows from a seeded start per draw; the 100 begin the 500); methods "
                  "that need no training compete at every budget. MOMENT's row and its opponent are chosen by "
                  "validation VUS-PR, never on test (without labelled validation anomalies MOMENT faces every "
                  f"detector, Holm-corrected). Each difference is the mean over draws; its interval is a {reps}: a "
                  "replicate resamples test events (an event with the normal rows after it) and draws (draw k of "
                  "both methods saw the same training rows), the same for both methods. Verdict: better / worse "
                  "when the whole interval is on one side of zero, else not distinguishable.", ""]  # fmt: skip
    lines += [
        f"Data: `{data.get('source', '?')}` ({data.get('name', '')})"
        + (" — **synthetic** TrainTicket-like telemetry" if data.get("synthetic") else ""),
        "",
    ]
    if not tab["vus_pr"].notna().any():
        lines += ["**The test split holds no labelled anomaly**: no VUS-PR exists. Rows are ranked by their "
                  "false-alarm rate, the share of test steps flagged at the threshold validation gave them.", "",
                  "| # | row | weights | budget | false-alarm rate |", "| --- | --- | --- | --- | --- |"]  # fmt: skip
        lines += [f"| {i} | {r.id} | {r.weights} | {r.budget} | {r.false_alarm_rate:.4f} |"
                  for i, r in enumerate(tab.itertuples(), 1)]  # fmt: skip
        return "\n".join(lines + [""])
    lines += [
        "Ranked by mean **VUS-PR** on the test split over draws (± standard deviation; threshold-free, the "
        "headline); validation VUS-PR is what verdicts pick rows by. F1 / precision / recall use the threshold "
        "chosen on the validation split. Oracle-threshold scores are in `reports/methods/<method>.json`; PA-F1 "
        "inflates and is never a headline. Run times: `logs/timings/`.",
        "",
        "| # | row | weights | budget | draws | train windows | VUS-PR | val VUS-PR | VUS-ROC | AUC-PR | F1 "
        "| precision | recall |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for i, r in enumerate(tab.itertuples(), 1):
        vus = _fmt(r.vus_pr) + (f" ± {r.vus_pr_std:.3f}" if r.vus_pr_std and r.vus_pr_std > 0 else "")
        lines.append(f"| {i} | {r.id} | {r.weights} | {r.budget} | {r.draws} | {r.train_windows} | {vus} | "
                     f"{_fmt(r.val_vus_pr)} | {_fmt(r.vus_roc)} | {_fmt(r.auc_pr)} | {_fmt(r.f1)} | "
                     f"{_fmt(r.precision)} | {_fmt(r.recall)} |")  # fmt: skip
    if not_run:
        lines += ["", "## Not run", "", "| method | budget | reason |", "| --- | --- | --- |"]
        lines += [f"| {d.method} | {d.budget} | {d.status} |" for d in not_run]
    partial = [r for r in rows if r.get("not_run_draws")]
    if partial:
        lines += ["", "Draws that could not run (the row's mean is over the others): "
                  + "; ".join(f"`{r.id}` draw {s['draw']} ({s['reason']})" for r in partial
                              for s in r.get("not_run_draws")) + "."]  # fmt: skip
    events = rows[0].get("fault_type_events", {})
    lines += ["", "## Which faults each method catches", "", "Each method's best row. Share of the test split's "
              "fault events with at least one step flagged at the validation threshold (mean over draws), with a "
              "95% Wilson interval over the n events of that type (k rounded from the mean). A method that flags "
              "most steps catches every event: read it with the precision column above.", ""]  # fmt: skip
    cols = list(recall.columns)
    lines.append("| row | " + " | ".join(f"{c} (n={events.get(c, '?')})" for c in cols) + " |")
    lines.append("| --- |" + " --- |" * len(cols))
    for m, row in recall.iterrows():
        lines.append(f"| {m} | " + " | ".join(_recall_cell(v, int(events.get(c, 0))) for c, v in row.items()) + " |")
    lines += ["", "## How fast each method flags a fault", "",
              "Per test fault event: time from its first labelled step to the first step flagged at the validation "
              "threshold (inside the event), for the first draw. Median and 90th percentile over the detected "
              "events; missed events are counted apart.", "",
              "| row | events | detected | missed | median delay | p90 delay |",
              "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    by = {r.id: r for r in rows}
    for m in tab["id"]:
        dl = by[m].get("detection_delay")
        if not dl:
            continue
        unit = "minutes" if "median_minutes" in dl else "steps"
        med, p90 = dl.get(f"median_{unit}"), dl.get(f"p90_{unit}")
        lines.append(
            f"| {m} | {dl['events']} | {dl['detected']} | {dl['missed']} | "
            f"{'' if med is None else f'{med:g} {unit}'} | {'' if p90 is None else f'{p90:g} {unit}'} |"
        )
    lines += root_cause_lines(root_cause)
    lines += ["", "Plots: `plots/compare/` (learning curve, PR curves per budget, verdicts, recall heatmap, timeline, "
              "root-cause ranks); `dvc plots show` renders them.", ""]  # fmt: skip
    return "\n".join(lines)


def root_cause_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The report section: AC@1 / AC@3 / Avg@5 per method and AC@1 per fault type."""
    if not rows:
        return ["", "## Where the fault is", "", "No test fault event names its root cause: nothing to rank.", ""]
    first = rows[0]
    lines = ["", "## Where the fault is (root-cause service)", "",
             f"Per test fault event, the {first['kpis']} KPIs are ranked by each method's per-KPI evidence over the "
             "event (mean, as a robust z-score against the 60 rows before it; the forests and KNN by occlusion), "
             f"and the event's true root cause is looked up among the {first['candidates']} candidates "
             "(RCAEval's definitions: AC@k = share of events whose cause is among those of the top-k KPIs; "
             "Avg@5 = mean of AC@1..AC@5). First draw of each method's best row; BARO (robust z of the raw KPIs "
             "against the normal rows before the event) is the statistical reference a method must beat.", "",
             "| row | weights | AC@1 | AC@3 | Avg@5 | events |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['method']} | {r['weights']} | {r['ac1']:.3f} | {r['ac3']:.3f} | {r['avg5']:.3f} | "
                     f"{r['events']} |")  # fmt: skip
    types = list(first["per_type"])
    lines += ["", "AC@1 per fault type (n events):", "",
              "| row | " + " | ".join(f"{t} (n={first['per_type'][t]['events']})" for t in types) + " |",
              "| --- |" + " --- |" * len(types)]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(f"{r['per_type'][t]['ac1']:.2f}" for t in types) + " |")
    return lines
