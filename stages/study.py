"""DVC stage `run@<dataset>` of the study (study/dvc.yaml): one dataset of study.yaml end to end."""

from __future__ import annotations

from pathlib import Path

import typer

from momentad.cli import setup_logging, stage

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


@app.command()
@stage
def main(
    dataset: str = typer.Argument(None, help="a dataset name from study.yaml; none: only check study.yaml."),
    params: Path = typer.Option(Path("params.yaml"), help="params file (the study's overrides apply on top)."),
    study: Path = typer.Option(Path("study.yaml"), help="study file listing the datasets."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Without DATASET: check study.yaml (every entry, before anything runs). With it: prepare
    DATASET (preprocess + windows), run every method of params.yaml's `methods` on it at
    every budget (a method whose options, data and code are unchanged is reused from
    .cache/study), compare them and write study/runs/DATASET (result.json is the summary the
    aggregate reads). A dataset that cannot be read is recorded as failed, exit 0."""
    from momentad.study import run_dataset

    setup_logging(verbose)
    if dataset is None:  # `make study` checks every entry before any dataset runs
        from momentad.study_file import read_study

        datasets, _, variants = read_study(study)
        typer.echo(f"{study}: {len(datasets)} datasets from {len({d.system for d in datasets.values()})} systems, "
                   f"{len(variants)} MOMENT variants")  # fmt: skip
        return
    import logging

    # every method and draw of a dataset meets the same facts of its data (e.g. no labelled
    # anomaly in validation): said once per dataset, not once per run
    seen: set[str] = set()

    def once(record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        new = msg not in seen
        seen.add(msg)
        return new

    for handler in logging.getLogger().handlers:
        handler.addFilter(once)
    r = run_dataset(dataset, params, study)
    if r["status"] != "ok":
        typer.echo(f"{dataset}: {r['status']}")
        return
    status = r["methods_status"]
    ran = sum(s == "ran" for s in status.values())
    memo = sum(s == "memo" for s in status.values())
    failed = [m for m, s in status.items() if s.startswith("failed")]
    failures = f", {len(failed)} failed ({', '.join(failed)})" if failed else ""
    moved = (r.get("split_rule") or {}).get("moved")
    typer.echo(f"{dataset}: {ran} methods ran, {memo} reused{failures}; test events {r['events']['test']}"
               f"{' (split rule moved the test start)' if moved else ''} ({r['seconds']:.0f}s)")  # fmt: skip


if __name__ == "__main__":
    app()
