"""The `momentad` command: use what the pipeline trained.

momentad score --method isolation_forest_full --input new.csv --output scores.csv
momentad methods
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import typer

from momentad.cli import setup_logging, stage
from momentad.errors import InputError
from momentad.layout import Layout, parse_row
from momentad.results import weights_label

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False, no_args_is_help=True)


def _run_info(layout: Layout, row: str, listing: bool = False) -> dict:
    from momentad.detectors.registry import detector_class

    r = parse_row(row)
    detector_class(r.method)  # an unknown method fails here, naming the known ones
    path = layout.model_dir(r.method, r.budget) / "run.json"
    if not path.is_file():
        raise InputError(f"{row!r} is not trained ({path} missing); run `dvc repro {r.stage}` "
                         "(`momentad methods` lists what is trained)")  # fmt: skip
    info = json.loads(path.read_text())
    if info.get("status", "ok") != "ok" and not listing:
        raise InputError(f"{row!r} has no model: {info['status']}; pick another (`momentad methods`)")
    return info


def read_input(path: Path) -> pd.DataFrame:
    """A csv-layout table (CSV or Parquet): ``timestamp`` + KPI columns, optional ``label`` (read
    by the loaders' reader: the same checks and messages as preprocess, naming ``-i``)."""
    from momentad.loaders._common import read_csv, separator_hint

    frame = read_csv(path, option="-i/--input")
    if "timestamp" not in frame.columns:
        hint = separator_hint(frame.columns)
        raise InputError(f"{path}: column 'timestamp' not found; {hint or 'add it as the first column'}")
    return frame


@app.command()
@stage
def score(
    method: str = typer.Option(
        ..., help="a method at a budget, <method>_<budget> (e.g. moment_100, pca_full); `momentad methods` lists them."
    ),
    input: Path = typer.Option(
        ...,
        "--input",
        "-i",
        help="CSV: timestamp + the KPI columns seen in training; "
        "an optional 0/1 `label` column makes the command print VUS-PR.",
    ),  # fmt: skip
    output: Path = typer.Option(..., "--output", "-o", help="CSV written: timestamp, score, flag."),
    time_format: str = typer.Option(
        None,
        "--time-format",
        help="strftime codes of the timestamp column (e.g. '%d/%m/%Y %H:%M') where its "
        "dates read two ways; default: ISO 8601, Unix seconds, or slashed dates a field above 12 decides.",
    ),
    top: int = typer.Option(5, help="print the N services most implicated in each flagged event (0: none)."),
    root: Path = typer.Option(Path("."), help="project folder whose `dvc repro` trained the method."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Score every row of INPUT with METHOD as the last `dvc repro` trained it: the train-split
    scaler, the saved model and that method's validation threshold (flag = score > threshold)."""
    setup_logging(verbose)
    from momentad.detectors.registry import load_detector
    from momentad.io import atomic_file
    from momentad.loaders import RawData
    from momentad.preprocess import transform

    layout = Layout(root)
    info = _run_info(layout, method)
    raw = RawData(read_input(input), "input", input.name, str(input), time_format=time_format)
    frame = transform(raw, {"features": info["features"], "scaler": info["scaler"],
                            "quality": {"ffill_limit": info["ffill_limit"]}}, fix="--time-format")  # fmt: skip
    row = parse_row(method)
    det = load_detector(layout.model_dir(row.method, row.budget))
    n = len(frame)
    split = det.split_of(frame, info["features"])  # windowed as the stage windowed test, segments kept apart
    scores = det.decision_function(split)
    threshold = float(info["threshold"]["value"])
    out = pd.DataFrame({"timestamp": frame["timestamp"], "score": scores, "flag": (scores > threshold).astype(int)})
    with atomic_file(output) as tmp:
        out.to_csv(tmp, index=False)
    msg = f"{method}: {n} rows scored, {int(out['flag'].sum())} flagged (threshold {threshold:.6g}) -> {output}"
    if "label" in raw.frame.columns:
        from momentad.metrics import compute_metrics

        labels = frame["label"].to_numpy()
        if labels.any() and not labels.all():
            m = compute_metrics(labels, np.asarray(scores), int(info["sliding_window"]))
            msg += (
                f"; VUS-PR {m['vus_pr']:.4f}, AUC-PR {m['auc_pr']:.4f} with the saved model (draw 0; the stage's "
                f"mean over draws on its test split: {info.get('test_vus_pr') or float('nan'):.4f})"
            )
    typer.echo(msg)
    if top > 0:
        for line in flagged_events(det, split, out["flag"].to_numpy(), top):
            typer.echo(line)


def flagged_events(det, split, flag: np.ndarray, top: int, limit: int = 20) -> list[str]:
    """One line per run of flagged rows: its time span and the ``top`` services whose KPIs
    stand out most over it (per-KPI evidence as a robust z against the rows before it)."""
    from momentad.metrics import segments
    from momentad.rca import REFERENCE, rank_kpis, robust_event_scores, services_in_order, span_evidence

    starts, ends = segments(flag)
    if not len(starts):
        return []
    spans = [(max(0, int(s) - REFERENCE), int(s), int(e) + 1) for s, e in zip(starts, ends, strict=True)][:limit]
    if not det.kpi_evidence:
        return [f"{det.name}: no per-KPI evidence, so no root-cause ranking"]
    chunks = span_evidence(det, split, [(r, e) for r, _, e in spans])
    ts, lines = split.frame["timestamp"], []
    for (r, s, e), ev in zip(spans, chunks, strict=True):
        ranked = rank_kpis(robust_event_scores(ev, s - r), split.features)
        lines.append(f"flagged {ts.iloc[s]} .. {ts.iloc[e - 1]}: top services "
                     + ", ".join(services_in_order(ranked)[:top]))  # fmt: skip
    if len(starts) > limit:
        lines.append(f"... {len(starts) - limit} more flagged events (their rows are in the output CSV)")
    return lines


@app.command()
@stage
def methods(root: Path = typer.Option(Path("."), help="project folder.")) -> None:
    """List what the pipeline trained, per method by budget: weights origin, test VUS-PR (mean
    over draws) and validation threshold."""
    layout = Layout(root)
    folder = layout.root / "data" / "models"
    found = sorted(folder.glob("*/*/run.json")) if folder.is_dir() else []
    if not found:
        raise InputError(f"{folder}: no trained method; run `make run` (or `dvc repro`) first")

    def order(path: Path) -> tuple:
        b = path.parent.name
        return (path.parent.parent.name, float("inf") if b == "full" else float(b) if b.isdigit() else -1)

    typer.echo(f"{'row':28s} {'weights':22s} {'VUS-PR':>7s}  threshold")
    for path in sorted(found, key=order):
        row = f"{path.parent.parent.name}_{path.parent.name}"
        info = json.loads(path.read_text())
        m = info["model"]
        weights = weights_label(m)
        typer.echo(f"{row:28s} {weights:22s} {info.get('test_vus_pr') or float('nan'):7.3f}  "
                   f"{info['threshold']['value']:.6g} ({info['threshold']['rule']})")  # fmt: skip


@app.command()
@stage
def export(
    split: str = typer.Argument("test", help="the split to write: train, val or test."),
    output: Path = typer.Option(..., "--output", "-o", help="CSV written: timestamp, the KPIs, label."),
    root: Path = typer.Option(Path("."), help="project folder whose `dvc repro` prepared the data."),
) -> None:
    """Write one split as the pipeline saw it, unscaled back to the KPIs' own units, in the layout
    `momentad score` reads (timestamp, KPIs, label): e.g. `momentad export test -o test_raw.csv`
    to score the test split yourself."""
    from momentad.data import _read
    from momentad.io import atomic_file

    if split not in ("train", "val", "test"):
        raise InputError(f"split {split!r}: use train, val or test")
    layout = Layout(root)
    path = layout.processed / "schema.json"
    if not path.is_file():
        raise InputError(f"{path}: not found; run `make run` (or `dvc repro`) first")
    schema = json.loads(path.read_text())
    table = _read(layout.processed / f"{split}.parquet", "preprocess")
    feats = schema["features"]
    sc = schema["scaler"]
    frame = table[feats] * pd.Series(sc["scale"])[feats] + pd.Series(sc["center"])[feats]
    frame.insert(0, "timestamp", table["timestamp"])
    frame["label"] = table["label"]
    with atomic_file(output) as tmp:
        frame.to_csv(tmp, index=False)
    typer.echo(f"{split}: {len(frame)} rows, {len(feats)} KPIs -> {output}")


def main() -> None:
    """Console-script entry point."""
    app()
