"""DVC stage `window`: data/processed -> data/windows/{train,val,test}.parquet + windows.json."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from momentad import config
from momentad.cli import setup_logging, stage
from momentad.windows import CONTEXT_LENGTH, write_windows

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


@app.command()
@stage
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file; reads the `window` section."),
    processed: Path = typer.Option(Path("data/processed"), help="folder written by the preprocess stage."),
    out: Path = typer.Option(Path("data/windows"), help="output folder, replaced atomically on success."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Index windows of `window.length` steps per split (`window.train_stride` on train,
    `window.eval_stride` on val/test, last window aligned to the split's end), with per-window
    labels. Windows shorter than MOMENT's 512-step context are left-padded and masked when
    materialised. Only the index is stored: the values stay in data/processed."""
    setup_logging(verbose)
    t0 = time.perf_counter()
    meta = write_windows(config.load(params).window, processed, out)
    n = meta["windows"]
    typer.echo(
        f"window: length {meta['length']} (MOMENT's context {CONTEXT_LENGTH}), windows "
        f"train/val/test {n['train']}/{n['val']}/{n['test']} -> {out} ({time.perf_counter() - t0:.1f}s)"
    )


if __name__ == "__main__":
    app()
