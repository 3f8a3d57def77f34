"""DVC stage `aggregate` of the study (study/dvc.yaml): the answer across every dataset."""

from __future__ import annotations

import time
from pathlib import Path

import typer
import yaml

from momentad.cli import setup_logging, stage

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


@app.command()
@stage
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file: methods, budget.sizes, seed, compare."),
    study: Path = typer.Option(Path("study.yaml"), help="study file listing the datasets and their systems."),
    root: Path = typer.Option(Path("."), help="project folder (paths as in momentad.layout)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Answer the question across datasets: each MOMENT variant against the label-free classic
    detectors and, apart, against those that read labels; pretrained against random-init weights;
    per budget the mean difference with a hierarchical bootstrap interval (systems, then datasets),
    Wilcoxon p Holm-corrected over every test, wins / ties / losses, ranks, a per-system table.
    Writes reports/study.md, reports/study.json, metrics/study.json, metrics/study_scores.json and
    plots/study/."""
    from momentad.aggregate import answer, load_results, reconstruction_errors, reconstruction_pairs, require_results
    from momentad.config import load, parse
    from momentad.io import atomic_file, write_json
    from momentad.layout import Layout
    from momentad.study_file import override, read_study
    from momentad.study_report import details, headline, plots, render

    setup_logging(verbose)
    t0 = time.perf_counter()
    layout = Layout(root)
    datasets, study_set, variants = read_study(study)
    # the settings every dataset ran with: params.yaml under study.yaml's top-level `set` (budgets,
    # draws and methods the report's protocol and contests name)
    load(params)  # params.yaml's own errors first, named as such
    cfg = parse(override(yaml.safe_load(params.read_text()), study_set, "set"), f"{params} with {study}'s set")
    results = load_results(list(datasets), layout.study_runs)
    require_results(results)
    systems = {n: d.system for n, d in datasets.items()}
    methods = [*cfg.methods, *[v for v in variants if v not in cfg.methods]]
    ans = answer(results, methods, cfg.budget.sizes, systems, cfg.seed, cfg.compare.bootstrap)
    pairs = reconstruction_pairs(ans["roles"], cfg.options, variants)
    ans["reconstruction"] = {a: reconstruction_errors(layout.study_runs, results, [(a, b)]) for a, b in pairs}
    head = headline(ans, results, systems)
    plots(ans, layout.study_plots, head["head"]["weights"])
    # the headline (study.json) and the numbers behind it (study_scores.json), as compare.json and
    # scores.json; under one key, so `dvc exp show` columns study.answer.100 … never clash with
    # compare.json's answer.100
    for path, part in ((layout.study_metrics, head["head"]), (layout.study_scores, head["scores"]),
                       (layout.study_details, details(ans, results))):  # fmt: skip
        with atomic_file(path) as tmp:
            write_json(tmp, {"study": part} if path != layout.study_details else part)
    with atomic_file(layout.study_report) as tmp:
        tmp.write_text(render(ans, results, datasets, systems, cfg, variants))
    h = head["head"]
    words = ", ".join(f"{b}: {v}" for b, v in h["answer"].items())
    typer.echo(f"study: {h['datasets']} datasets from {h['systems']} systems ({h['failed']} failed); MOMENT "
               f"({h['weights']}) vs the label-free classic detectors per budget: {words}; pretraining helps: "
               + ", ".join(f"{b}: {v}" for b, v in h["pretraining_helps"].items())
               + f" ({time.perf_counter() - t0:.0f}s)")  # fmt: skip
    typer.echo(f"the answer: {layout.study_report} (headline numbers: {layout.study_metrics})")


if __name__ == "__main__":
    app()
