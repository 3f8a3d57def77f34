"""DVC stage `detect@<method>`: one method, at every budget it can run at, end to end by
momentad.runner (fit, score val/test, threshold on val, evaluate, write)."""

from __future__ import annotations

from pathlib import Path

import typer

from momentad.cli import setup_logging, show_progress, stage
from momentad.detectors.registry import load_params
from momentad.layout import Layout
from momentad.runner import echo_summary, run

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


@app.command()
@stage
def main(
    method: str = typer.Argument(..., help="a method named in params.yaml's `methods` (e.g. moment, pca)."),
    params: Path = typer.Option(Path("params.yaml"), help="params file; validated whole before any work."),
    root: Path = typer.Option(
        Path("."),
        help="project folder: reads data/processed and data/windows, writes data/scores/<method>, "
        "data/models/<method> and reports/methods/<method>.json (see momentad.layout).",
    ),  # fmt: skip
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="progress bars (default: only when the output is a terminal)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Run METHOD at every budget its detector can: 0 (no training), each `budget.sizes` entry
    (that budget's stretch of the training split, once per draw in `budget.draws`; validation only
    for early stopping) and `full`. Per budget: score every val/test timestep, pick the threshold
    on validation (`evaluate.threshold`), compute the test metrics, and write scores, the saved
    model (safetensors / skops / peft adapter) and the details."""
    setup_logging(verbose)
    cfg = load_params(params, only=method)  # its own section: a method's stage imports no other method
    doc = run(method, cfg, Layout(root), show_progress(progress))
    typer.echo(echo_summary(doc))


if __name__ == "__main__":
    app()
