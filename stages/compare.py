"""DVC stage `compare`: every method's results -> report, headline metrics, plots."""

from __future__ import annotations

from pathlib import Path

import typer

from momentad import config
from momentad.cli import setup_logging, stage
from momentad.compare import (
    baro_reference,
    best_per_method,
    details,
    fault_recall_table,
    learning_curve,
    pr_curves,
    read_all_scores,
    read_rows,
    root_cause_rows,
    summary,
    table,
    timeline_rows,
    verdicts,
)
from momentad.io import atomic_file, write_json
from momentad.layout import Layout
from momentad.plots import heatmap_png, learning_curve_png, pr_curves_png, root_cause_rank_png, timeline_png
from momentad.report import render_report

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


@app.command()
@stage
def main(
    params: Path = typer.Option(
        Path("params.yaml"),
        help="params file; `methods` and `budget.sizes` name the rows, `seed` and `compare.bootstrap` the intervals.",
    ),  # fmt: skip
    root: Path = typer.Option(Path("."), help="project folder (paths as in momentad.layout)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Rank every (method, budget) row by test VUS-PR, answer the question per budget with a
    paired bootstrap interval, tabulate per-fault-type recall, delays and root-cause ranking,
    draw the plots, and state plainly when MOMENT's weights were random."""
    setup_logging(verbose)
    cfg = config.load(params)
    layout = Layout(root)
    rows, not_run = read_rows(layout, cfg.methods)
    frames = read_all_scores(layout, rows)
    tab = table(rows)
    best = best_per_method(tab)
    recall = fault_recall_table(rows, best)
    curve = learning_curve(tab, cfg.budget.sizes)
    verdict = verdicts(tab, rows, frames, cfg.budget.sizes, seed=cfg.seed, replicates=cfg.compare.bootstrap)
    rca = root_cause_rows(rows, best, baro_reference(layout.processed))

    out = layout.compare_plots
    with atomic_file(out / "learning_curve.csv") as tmp:
        curve.round(6).to_csv(tmp, index=False)
    learning_curve_png(curve, out / "learning_curve.png")
    heatmap_png(recall, out / "fault_type_recall.png",
                "Share of test fault events detected at the validation threshold (each method's best row)")  # fmt: skip
    pr_curves_png(pr_curves(frames, best), out / "pr_curves.png")
    by = {r["id"]: r for r in rows}
    reference = frames[tab.iloc[0]["id"]]
    series = {m: (frames[m]["score"].to_numpy(), by[m]["threshold"]["value"]) for m in timeline_rows(tab)}
    timeline_png(reference, series, out / "timeline.png",
                 "Test period: best row and MOMENT, first draw (dashed: validation threshold)")  # fmt: skip
    if rca:
        ranks = {r["method"]: [e["rank"] for e in r["events_ranked"]] for r in rca}
        types = [e["fault_type"] for e in rca[0]["events_ranked"]]
        root_cause_rank_png(
            ranks,
            types,
            out / "root_cause_rank.png",
            "Rank of the true root-cause service per "
            "test fault event (first draw of each method's best row; BARO = statistical reference)",
        )
    else:  # the stage declares the plot: say why it is empty
        root_cause_rank_png({}, [], out / "root_cause_rank.png", "No test fault event names its root cause")
    summ = summary(tab, verdict)
    with atomic_file(layout.compare_metrics) as tmp:
        write_json(tmp, summ)
    with atomic_file(layout.compare_details) as tmp:
        write_json(tmp, details(tab, verdict, rca))
    with atomic_file(layout.report) as tmp:
        tmp.write_text(render_report(tab, recall, rows, verdict, not_run, rca))
    weights = "random-init" if (tab["weights"] == "random-init").any() else "pretrained"
    words = ", ".join(f"{b}: {v['verdict']} ({v['moment_minus_best_baseline']:+.3f})" for b, v in verdict.items())
    typer.echo(f"compare: {len(tab)} rows ran, {len(not_run)} not run; best {summ['best']} "
               f"(VUS-PR {summ['best_vus_pr']:.3f}); MOMENT ({weights}) vs the classic detectors per budget: "
               f"{words or 'n/a'}")  # fmt: skip
    typer.echo(f"the answer: {layout.report} (headline numbers: {layout.compare_metrics})")


if __name__ == "__main__":
    app()
