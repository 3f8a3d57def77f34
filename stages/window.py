"""DVC stage `window`: data/processed -> data/windows/{train,val,test}.parquet + windows.json."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import typer

from momentad import config
from momentad.cli import setup_logging, stage
from momentad.errors import InputError
from momentad.io import atomic_dir, write_json, write_parquet
from momentad.windows import CONTEXT_LENGTH, build_index, resolve

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


def read_splits(folder: Path) -> dict[str, pd.DataFrame]:
    """Read the processed split tables, failing clearly if preprocess has not run."""
    out = {}
    for name in ("train", "val", "test"):
        f = folder / f"{name}.parquet"
        if not f.is_file():
            raise InputError(f"{f}: not found; run `dvc repro preprocess` first")
        try:
            out[name] = pd.read_parquet(f)
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise InputError(
                f"{f}: not a readable Parquet file ({type(e).__name__}); run `dvc repro -f preprocess`"
            ) from None
    return out


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
    asked = config.load(params).window
    splits = read_splits(processed)
    cfg = resolve(asked, splits["train"])
    indices = build_index(splits, cfg)
    with atomic_dir(out) as tmp:
        for name, idx in indices.items():
            write_parquet(idx, tmp / f"{name}.parquet")
        write_json(
            tmp / "windows.json",
            {
                "asked": {"length": asked.length, "train_stride": asked.train_stride, "eval_stride": asked.eval_stride},
                "length": cfg.length,
                "context_length": CONTEXT_LENGTH,
                # MOMENT left-pads shorter windows to its context and masks the padding
                "padding": {
                    "side": "left",
                    "steps": CONTEXT_LENGTH - cfg.length,
                    "input_mask": "1 = observed, 0 = padding",
                },
                "strides": {
                    "train": cfg.train_stride,
                    "val": cfg.eval_stride,
                    "test": cfg.eval_stride,
                },
                "windows": {k: len(v) for k, v in indices.items()},
                "windows_with_anomaly": {k: int(v["any_anomaly"].sum()) for k, v in indices.items()},
                "values_from": str(processed),
            },
        )
    n = {k: len(v) for k, v in indices.items()}
    typer.echo(
        f"window: length {cfg.length} (MOMENT's context {CONTEXT_LENGTH}), windows "
        f"train/val/test {n['train']}/{n['val']}/{n['test']} -> {out} ({time.perf_counter() - t0:.1f}s)"
    )


if __name__ == "__main__":
    app()
