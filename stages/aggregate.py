"""DVC stage `aggregate` of the study (study/dvc.yaml): the answer across every dataset."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from momentad.cli import setup_logging, stage

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)


@app.command()
@stage
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file: methods, budget.sizes, seed, compare."),
    study: Path = typer.Option(Path("study.yaml"), help="study file listing the datasets."),
    runs: Path = typer.Option(Path("study/runs"), help="folder of the datasets' results."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log each step."),
) -> None:
    """Answer the question across datasets: per budget the mean ranks, Friedman + Nemenyi,
    MOMENT against the classic detectors (Wilcoxon, effect size, bootstrap interval, wins /
    ties / losses), per-system regrets, false-alarm rates of unlabelled series; writes
    reports/study.md, metrics/study.json and plots/study/."""
    from momentad.aggregate import answer, load_results, require_results
    from momentad.config import load
    from momentad.io import atomic_file, write_json
    from momentad.study_file import read_study
    from momentad.study_report import headline, plots, render

    setup_logging(verbose)
    t0 = time.perf_counter()
    cfg = load(params)
    datasets, _, variants = read_study(study)
    results = load_results(list(datasets), runs)
    require_results(results)
    ans = answer(results, cfg.methods, cfg.budget.sizes, cfg.seed, cfg.compare.bootstrap, list(variants))
    fm = ans["foundation"]
    pretrained = all(x.get("pretrained") for r in results.values() for m in fm
                     for x in r.get("results", {}).get(m, {}).values() if x.get("status") == "ok")  # fmt: skip
    systems = {n: d.system for n, d in datasets.items()}
    head = headline(ans, results, pretrained)
    plots(ans, Path("plots/study"), pretrained)
    # the headline (study.json) and the numbers behind it (study_scores.json), as compare.json and
    # scores.json; under one key, so `dvc exp show` columns study.answer.100 … never clash with
    # compare.json's answer.100
    short = ("datasets", "failed", "pretrained", "answer")
    for name, part in (("study", {k: head[k] for k in short}),
                       ("study_scores", {k: v for k, v in head.items() if k not in short})):  # fmt: skip
        with atomic_file(Path(f"metrics/{name}.json")) as tmp:
            write_json(tmp, {"study": part})
    with atomic_file(Path("reports/study.md")) as tmp:
        tmp.write_text(render(ans, results, cfg.methods, cfg.budget.sizes, systems, pretrained, variants))
    words = ", ".join(f"{b}: {v}" for b, v in head["answer"].items())
    typer.echo(f"study: {head['datasets']} datasets ({head['failed']} failed); MOMENT "
               f"({'pretrained' if pretrained else 'RANDOM-INIT'}) vs the classic detectors per budget: {words} "
               f"({time.perf_counter() - t0:.0f}s)")  # fmt: skip
    typer.echo("the answer: reports/study.md (headline numbers: metrics/study.json)")


if __name__ == "__main__":
    app()
