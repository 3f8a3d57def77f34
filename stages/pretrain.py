"""DVC stage `pretrain`: a MOMENT-shaped model pretrained here with MOMENT's objective on a corpus
of public series -> models/pretrained/<name>/ (save_pretrained layout, safetensors) +
plots/pretrain/loss.csv. Runs as one process (`dvc repro pretrain`) or under torchrun
(`torchrun --nproc_per_node N -m stages.pretrain`, then `dvc commit pretrain`)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import typer

from momentad.cli import setup_logging, show_progress, stage

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)
log = logging.getLogger("stages.pretrain")


@app.command()
@stage
def main(
    params: Path = typer.Option(Path("params.yaml"), help="params file; reads `seed`, `threads` and `pretrain`."),
    study: Path = typer.Option(Path("study.yaml"), help="the study's datasets: the corpus must hold none of them."),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="progress bar (default: only when the output is a terminal)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="log the losses every pretrain.eval_every steps."),
) -> None:
    """Read every CSV of `pretrain.corpus` (one series per KPI, each z-scored), add
    `pretrain.synthetic` seeded synthetic series, hold `pretrain.holdout` of the series out, refuse
    a corpus that shares a stretch with any evaluation dataset (study.yaml's and params.yaml's
    `data`), then train MOMENT-`pretrain.size` from its seeded random initialisation for
    `pretrain.steps` steps of `pretrain.batch_size` windows (MOMENT's masked-patch objective) and
    write it to models/pretrained/`pretrain.name` with the held-out loss curve."""
    from momentad import config
    from momentad.detectors.moment import pretrain as pt
    from momentad.detectors.moment.evaluation import evaluation_series
    from momentad.device import resolve_device
    from momentad.io import atomic_file, write_json
    from momentad.threads import deterministic

    setup_logging(verbose)
    t0 = time.perf_counter()
    cfg = config.load(params)
    p = config.build(pt.PretrainParams, cfg.sections.get("pretrain"), "pretrain")
    device = resolve_device(p.device)
    import torch  # noqa: F401  (deterministic() pins torch's threads once it is loaded)

    deterministic(cfg.threads)
    world = pt.join(device)
    if world.size > 1 and device.type == "cuda":
        device = torch.device("cuda", world.rank % torch.cuda.device_count())
    data = pt.prepare_corpus(p, cfg.seed, lambda: evaluation_series(cfg, study))
    model, info = pt.initial_model(p.size, cfg.seed)
    pt.set_dropout(model, p.dropout)
    objective = pt.Objective(p.steps, p.batch_size, p.lr, p.min_lr, p.warmup_steps, p.weight_decay, p.grad_clip,
                             p.mask_ratio)  # fmt: skip
    state = Path(".cache") / "pretrain" / pt.run_key(p, cfg.seed, data["digest"])
    run = pt.train(model, data["train"], objective, cfg.seed, device, pt.precision(p.precision, device),
                   held_out=data["held_out"], eval_every=p.eval_every, world=world,
                   state_dir=state, progress=show_progress(progress), desc=f"pretrain {p.size}")  # fmt: skip
    if not world.main:
        return
    first, last = run["history"][0]["held_out_loss"], run["history"][-1]["held_out_loss"]
    marker = pt.marker(p, cfg.seed, data, run, info.parameters)
    out = Path("models") / "pretrained" / p.name
    pt.save_checkpoint(model, out, marker, data["fingerprint"])
    with atomic_file(Path("plots") / "pretrain" / "loss.csv") as tmp:
        pt.loss_frame(run["history"]).to_csv(tmp, index=False)
    wall = time.perf_counter() - t0
    Path("logs").mkdir(exist_ok=True)
    write_json(Path("logs") / "pretrain.json", {"wall_s": round(wall, 1), "steps_per_s": run["steps_per_s"],
                                               "samples": run["samples"], "processes": world.size,
                                               "device": str(device)})  # fmt: skip
    import shutil

    shutil.rmtree(state, ignore_errors=True)  # finished: nothing to resume
    typer.echo(f"pretrain: MOMENT-{p.size} ({info.parameters / 1e6:.2f} M parameters) on {data['description']}, "
               f"{p.steps:,} steps x {p.batch_size} windows ({run['samples']:,} samples, {run['steps_per_s']:.2f} "
               f"steps/s on {world.size} process(es)); held-out loss {first:.4f} (random init) -> {last:.4f} "
               f"-> {out} ({wall / 60:.1f} min)")  # fmt: skip
    log.info("marker: %s", json.dumps(marker))


if __name__ == "__main__":
    app()
