"""DVC stage `compare`: every method's results -> report, summary metrics, plots."""

from __future__ import annotations

from pathlib import Path

import typer

from momentad import config
from momentad.cli import setup_logging, stage
from momentad.compare import (
    fault_recall_table,
    learning_curve,
    learning_curve_wide,
    pr_curves,
    read_docs,
    read_scores,
    render_report,
    summary,
    table,
    timeline_methods,
    verdicts,
)
from momentad.io import atomic_file, write_json
from momentad.layout import Layout, method_ids
from momentad.plots import heatmap_png, learning_curve_png, pr_curves_png, timeline_png

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


@app.command()
@stage
def main(
    params: Path = typer.Option(
        Path("params.yaml"), help="params file; `finetune.budgets` and `baselines.methods` name the rows to compare."
    ),  # fmt: skip
    root: Path = typer.Option(Path("."), help="project folder (paths as in momentad.layout)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Rank every method by test VUS-PR, tabulate cost and per-fault-type recall, draw the
    learning curve, PR curves, recall heatmap and a test-period timeline, and state plainly
    when MOMENT's weights were random."""
    setup_logging(verbose)
    cfg = config.load(params)
    layout = Layout(root)
    docs = read_docs(layout, method_ids(cfg))
    frames, reference = {}, None
    for d in docs:
        frames[d["method"]] = read_scores(layout.scores(d["method"]), reference)
        reference = frames[d["method"]] if reference is None else reference
    tab = table(docs)
    order = list(tab["method"])
    recall = fault_recall_table(docs, order)
    curve = learning_curve(docs)
    moment_weights = "random-init" if (tab["weights"] == "random-init").any() else "pretrained"

    out = layout.compare_plots
    with atomic_file(out / "learning_curve.csv") as tmp:
        learning_curve_wide(curve).round(6).to_csv(tmp, index=False)
    learning_curve_png(curve, out / "learning_curve.png", moment_weights)
    heatmap_png(
        recall, out / "fault_type_recall.png", "Share of test fault events detected at the validation threshold"
    )
    pr_curves_png(pr_curves(frames, order), out / "pr_curves.png")
    by = {d["method"]: d for d in docs}
    series = {m: (frames[m]["score"].to_numpy(), by[m]["threshold"]["value"]) for m in timeline_methods(order, docs)}
    timeline_png(reference, series, out / "timeline.png", "Test period: best method and MOMENT (dashed: validation "
                 "threshold)")  # fmt: skip

    verdict = verdicts(docs, frames, tab, seed=cfg.seed)
    summ = summary(tab, verdict)
    with atomic_file(layout.compare_metrics) as tmp:
        write_json(tmp, summ)
    with atomic_file(layout.report) as tmp:
        tmp.write_text(render_report(tab, recall, docs, verdict))
    gap = summ.get("moment_minus_best_baseline_vus_pr")
    typer.echo(
        f"compare: {len(tab)} methods; best {summ['best_method']} (VUS-PR {summ['best_vus_pr']:.3f}); "
        + (f"best MOMENT minus best baseline {gap:+.3f}; " if gap is not None else "")
        + f"MOMENT weights {moment_weights} -> {layout.report}"
    )


if __name__ == "__main__":
    app()
