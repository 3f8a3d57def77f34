"""DVC stage `compare`: every method's results -> report, summary metrics, plots."""

from __future__ import annotations

from pathlib import Path

import typer

from momentad import config
from momentad.cli import setup_logging, stage
from momentad.compare import (
    baro_reference,
    best_per_detector,
    fault_recall_table,
    learning_curve,
    pr_curves,
    read_docs,
    read_scores,
    render_report,
    root_cause_rows,
    summary,
    table,
    timeline_methods,
    verdicts,
)
from momentad.io import atomic_file, write_json
from momentad.layout import Layout, method_ids
from momentad.plots import heatmap_png, learning_curve_png, pr_curves_png, root_cause_rank_png, timeline_png

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


@app.command()
@stage
def main(
    params: Path = typer.Option(
        Path("params.yaml"), help="params file; `budget.sizes` and `baselines.methods` name the rows to compare."
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
    docs, not_run = read_docs(layout, method_ids(cfg))
    frames, reference = {}, None
    for d in docs:
        frames[d["method"]] = read_scores(layout.scores(d["method"]), reference)
        reference = frames[d["method"]] if reference is None else reference
    tab = table(docs)
    order = list(tab["method"])
    best = best_per_detector(tab)
    recall = fault_recall_table(docs, best)
    curve = learning_curve(tab, cfg.budget.sizes)
    moment_weights = "random-init" if (tab["weights"] == "random-init").any() else "pretrained"

    out = layout.compare_plots
    with atomic_file(out / "learning_curve.csv") as tmp:
        curve.round(6).to_csv(tmp, index=False)
    learning_curve_png(curve, out / "learning_curve.png", moment_weights)
    heatmap_png(recall, out / "fault_type_recall.png",
                "Share of test fault events detected at the validation threshold (each detector's "
                "best row)")  # fmt: skip
    pr_curves_png(pr_curves(frames, best), out / "pr_curves.png")
    by = {d["method"]: d for d in docs}
    series = {m: (frames[m]["score"].to_numpy(), by[m]["threshold"]["value"]) for m in timeline_methods(order)}
    timeline_png(reference, series, out / "timeline.png", "Test period: best method and MOMENT, first draw (dashed: "
                 "validation threshold)")  # fmt: skip

    verdict = verdicts(tab, docs, frames, cfg.budget.sizes, seed=cfg.seed, workers=cfg.threads)
    rca = root_cause_rows(docs, best, baro_reference(layout.processed))
    if rca:
        ranks = {r["method"]: [e["rank"] for e in r["events_ranked"]] for r in rca}
        types = [e["fault_type"] for e in rca[0]["events_ranked"]]
        root_cause_rank_png(
            ranks,
            types,
            out / "root_cause_rank.png",
            "Rank of the true root-cause service per "
            "test fault event (first draw of each detector's best row; BARO = statistical reference)",
        )
    else:  # the stage declares the plot: say why it is empty
        root_cause_rank_png({}, [], out / "root_cause_rank.png", "No test fault event names its root cause")
    summ = summary(tab, verdict, rca)
    with atomic_file(layout.compare_metrics) as tmp:
        write_json(tmp, summ)
    with atomic_file(layout.report) as tmp:
        tmp.write_text(render_report(tab, recall, docs, verdict, not_run, rca))
    words = ", ".join(f"{b}: {v['verdict']} ({v['moment_minus_best_baseline']:+.3f})" for b, v in verdict.items())
    typer.echo(f"compare: {len(tab)} rows ran, {len(not_run)} not run; best {summ['best_method']} "
               f"(VUS-PR {summ['best_vus_pr']:.3f}); MOMENT ({moment_weights}) vs best baseline per budget: "
               f"{words or 'n/a'} -> {layout.report}")  # fmt: skip


if __name__ == "__main__":
    app()
