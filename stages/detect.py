"""DVC stages `moment_zero_shot`, `moment_lora@<budget>`, `baseline@<name>-<budget>` and
`baseline_full@<name>`: one method id,
run end to end by momentad.runner (fit, score val/test, threshold on val, evaluate, write)."""

from __future__ import annotations

from pathlib import Path

import typer

from momentad.cli import setup_logging, stage
from momentad.detectors.registry import load_params
from momentad.layout import Layout
from momentad.runner import echo_summary, run

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


@app.command()
@stage
def main(
    method: str = typer.Argument(
        ...,
        help="method id: moment_zero_shot, moment_lora_<budget>, <baseline>_<budget> (budget in "
        "budget.sizes) or <baseline>_full (baseline in baselines.methods).",
    ),  # fmt: skip
    params: Path = typer.Option(Path("params.yaml"), help="params file; validated whole before any work."),
    root: Path = typer.Option(
        Path("."),
        help="project folder: reads data/processed and data/windows, writes "
        "data/scores, data/models, metrics, reports/methods and plots (see momentad.layout).",
    ),  # fmt: skip
    progress: bool = typer.Option(True, help="show progress bars while training and scoring."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Fit METHOD on the training split (its budget's stretch of it, once per draw in
    budget.draws; validation only for early stopping), score every val/test timestep, pick the threshold on
    validation (`evaluate.threshold`), compute the test metrics and write scores, the saved
    model (safetensors / skops / peft adapter), headline metrics, details and plot data."""
    setup_logging(verbose)
    cfg = load_params(params)
    doc = run(method, cfg, Layout(root), progress)
    typer.echo(echo_summary(doc))


if __name__ == "__main__":
    app()
