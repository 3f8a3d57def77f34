"""DVC stage `compare`: every method's metrics and scores -> report, summary metrics, plots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from sklearn.metrics import precision_recall_curve

from momentad.cli import setup_logging, stage
from momentad.compare import (
    fault_recall_table,
    learning_curve,
    learning_curve_wide,
    read_metrics,
    read_scores,
    scores_path,
    summary,
    table,
)
from momentad.io import atomic_file, write_json
from momentad.params import load_params, section
from momentad.plots import heatmap_png, learning_curve_png, pr_curves_png, timeline_png

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)

CAVEAT = (
    "> **MOMENT ran with random-init weights.** Its rows below (`weights: random-init`) use the MOMENT "
    "architecture with seeded random weights because the pretrained checkpoint could not be loaded here; "
    "they are **not foundation-model results**. To get them, run on a machine that reaches the Hugging Face "
    "hub (or has the model in its cache): `dvc exp run -S model.checkpoint=AutonLab/MOMENT-1-large`."
)


@app.command()
@stage
def main(
    params: Path = typer.Option(
        Path("params.yaml"),
        help="params file; reads `finetune.budgets` and `baselines.methods` (which rows to compare).",
    ),
    metrics: Path = typer.Option(Path("metrics"), help="folder holding zero_shot.json, finetune/ and baselines/."),
    scores: Path = typer.Option(Path("data/scores"), help="folder holding every method's test scores."),
    out_metrics: Path = typer.Option(Path("metrics/compare.json"), help="summary metrics for dvc metrics diff."),
    report: Path = typer.Option(Path("reports/compare.md"), help="the Markdown report."),
    plots: Path = typer.Option(Path("plots/compare"), help="folder for learning_curve.csv and the PNG plots."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Rank every method by test VUS-PR, tabulate cost and per-fault-type recall, draw the
    learning curve, PR curves, recall heatmap and a test-period timeline, and state plainly
    when MOMENT's weights were random."""
    setup_logging(verbose)
    p = load_params(params)
    budgets = list(section(p, "finetune").get("budgets") or [])
    methods = list(section(p, "baselines").get("methods") or [])
    docs = read_metrics(metrics, budgets, methods)
    frames, reference = {}, None
    for d in docs:
        frames[d["method"]] = read_scores(scores_path(d, scores), reference)
        reference = frames[d["method"]] if reference is None else reference
    tab = table(docs)
    order = list(tab["method"])
    recall = fault_recall_table(docs, order)
    curve = learning_curve(docs)
    random_init = bool((tab["weights"] == "random-init").any())
    moment_weights = "random-init" if random_init else "pretrained"

    plots.mkdir(parents=True, exist_ok=True)
    with atomic_file(plots / "learning_curve.csv") as tmp:
        learning_curve_wide(curve).round(6).to_csv(tmp, index=False)
    learning_curve_png(curve, plots / "learning_curve.png", moment_weights)
    heatmap_png(
        recall, plots / "fault_type_recall.png", "Share of test fault events detected at the validation threshold"
    )
    curves = {}
    for m in order:
        p, r, _ = precision_recall_curve(frames[m]["label"], frames[m]["score"])
        step = max(1, len(p) // 400)
        curves[m] = (p[::step], r[::step])
    pr_curves_png(curves, plots / "pr_curves.png")
    by = {d["method"]: d for d in docs}
    best = order[0]
    shown = [best] + [m for m in order if m.startswith("moment") and m != best][:1]
    shown += [m for m in ("moment_zero_shot",) if m in by and m not in shown]
    series = {m: (frames[m]["score"].to_numpy(), by[m]["threshold"]["value"]) for m in shown}
    title = "Test period: best method and MOMENT (dashed: validation threshold)"
    timeline_png(reference, series, plots / "timeline.png", title)

    summ = summary(tab)
    with atomic_file(out_metrics) as tmp:
        write_json(tmp, summ)
    with atomic_file(report) as tmp:
        tmp.write_text(_report(tab, recall, docs, random_init))
    top = tab.iloc[0]
    gap = summ.get("moment_minus_best_baseline_vus_pr")
    typer.echo(
        f"compare: {len(tab)} methods; best {top['method']} (VUS-PR {top['vus_pr']:.3f}); "
        + (f"best MOMENT minus best baseline {gap:+.3f}; " if gap is not None else "")
        + f"MOMENT weights {moment_weights} -> {report}"
    )


def _fmt(v, digits=3):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _report(tab, recall, docs, random_init: bool) -> str:
    data = docs[0].get("data", {})
    lines = ["# Does MOMENT beat the classic detectors?", ""]
    if random_init:
        lines += [CAVEAT, ""]
    source = data.get("source", "?")
    lines += [
        f"Data: `{source}` ({data.get('name', '')})"
        + (" — **synthetic** TrainTicket-like telemetry" if data.get("synthetic") else ""),
        "",
        "Ranked by **VUS-PR** on the test split (threshold-free, the headline). F1 / precision / recall use the "
        "threshold chosen on the validation split. Oracle-threshold scores (standard, PA, event, range, affiliation "
        "F1) are in each `metrics/*.json`; PA-F1 inflates and is never a headline.",
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
              "least one step flagged at the validation threshold.", ""]  # fmt: skip
    cols = list(recall.columns)
    lines.append("| method | " + " | ".join(cols) + " |")
    lines.append("| --- |" + " --- |" * len(cols))
    for m, row in recall.iterrows():
        lines.append(f"| {m} | " + " | ".join(_fmt(v, 2) for v in row) + " |")
    lines += ["", "Plots: `plots/compare/` (learning curve, PR curves, recall heatmap, timeline); "
              "`dvc plots show` renders them with the per-stage plots.", ""]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    app()
