"""DVC stage `compare`: every method's results -> report, headline metrics, plots."""

from __future__ import annotations

from pathlib import Path

import typer

from momentad import config
from momentad.cli import setup_logging, stage
from momentad.compare import run_compare
from momentad.layout import Layout

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
    summ = run_compare(cfg, layout)
    best = (f"VUS-PR {summ['best_vus_pr']:.3f}" if "best_vus_pr" in summ
            else "no labelled test anomaly: fewest false alarms")  # fmt: skip
    words = ", ".join(
        f"{b}: {v['verdict']} ({v['moment_minus_best_baseline']:+.3f})" for b, v in summ["verdict"].items()
    )
    typer.echo(f"compare: {summ['rows']} rows ran, {summ['not_run']} not run; best {summ['best']} ({best}); MOMENT "
               f"({summ['weights']}) vs the classic detectors per budget: {words or 'n/a'}")  # fmt: skip
    typer.echo(f"the answer: {layout.report} (headline numbers: {layout.compare_metrics})")


if __name__ == "__main__":
    app()
