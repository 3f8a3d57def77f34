"""DVC stage `preprocess`: raw source -> data/processed/{train,val,test}.parquet + schema.json."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import typer

from momentad import config
from momentad.cli import setup_logging, stage
from momentad.preprocess import write_processed

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)
log = logging.getLogger("stages.preprocess")


@app.command()
@stage
def main(
    params: Path = typer.Option(
        Path("params.yaml"), help="params file; reads `seed`, the `data` section and `evaluate.protocol`."
    ),
    out: Path = typer.Option(Path("data/processed"), help="output folder, replaced atomically on success."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Load `data.source` from `data.path`, validate it, forward-fill short gaps
    (`data.ffill_limit`), split chronologically (`data.split`, unless the format defines its
    train part), drop channels constant on train (`data.drop_constant`; never under
    `evaluate.protocol: tsbad`), scale with `data.scaler` fitted on train
    only, and write one Parquet table per split plus schema.json."""
    setup_logging(verbose)
    t0 = time.perf_counter()
    cfg = config.load(params)
    log.info("loading data.source=%s", cfg.data.source)
    s = write_processed(cfg, out)
    rows = {k: v["rows"] for k, v in s["splits"].items()}
    kind = "synthetic" if s["synthetic"] else s["source"]
    typer.echo(
        f"preprocess: {kind} '{s['name']}', {s['n_features']} KPIs, rows train/val/test "
        f"{rows['train']}/{rows['val']}/{rows['test']}, "
        f"{len(s['dropped_columns']['constant_in_train'])} constant dropped, "
        f"{s['quality']['gaps_left_after_ffill']} gaps imputed -> {out} ({time.perf_counter() - t0:.1f}s)"
    )


if __name__ == "__main__":
    app()
