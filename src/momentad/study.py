"""The study: one answer from many datasets (``make study``).

``study.yaml`` lists datasets (name: source, path, system, per-dataset ``set`` overrides of
params.yaml keys; a top-level ``set`` applies to all). Each dataset runs through the same steps as
the single-dataset pipeline (preprocess, windows, every method at every budget, the per-dataset
comparison) in one DVC stage, ``run@<dataset>`` (study/dvc.yaml), writing ``study/runs/<dataset>``;
``aggregate`` turns every dataset's result into the answer across datasets.

Caching, at two levels: DVC re-runs a dataset's stage only when its entry, params.yaml or the code
change (adding a dataset runs only that one); inside the stage each method's result is kept under
``.cache/study/<dataset>/<method>/<key>``, the key covering everything that determines it (its
options, the run settings, the processed data, the code it runs), so a change to one method's
options recomputes that method on every dataset and reuses the others.

A dataset that cannot be read or prepared is recorded as failed (the others are aggregated); a
bad study.yaml or params.yaml stops with one line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from momentad.config import Params, as_dict, parse
from momentad.errors import InputError
from momentad.io import atomic_dir, write_json
from momentad.layout import Layout
from momentad.prepare import prepare_data
from momentad.study_file import STUDY, Dataset, Variant, override, read_study

log = logging.getLogger(__name__)


def dataset_params(raw: dict[str, Any], study_set: dict[str, Any], ds: Dataset,
                   variants: dict[str, Variant] | None = None) -> Params:  # fmt: skip
    """params.yaml for one dataset: its source and path, the study-wide and its own overrides,
    and each variant as a method of its own (its base's section with the variant's overrides)."""
    from momentad.detectors.registry import base_name, configure

    p = override(raw, study_set, "set")
    for v in (variants or {}).values():
        base = base_name(v.name)
        if base not in p:
            raise InputError(f"study.yaml: variants.{v.name} builds on method {base}, which params.yaml has no "
                             "section for")  # fmt: skip
        p[v.name] = override(p[base], v.set, f"variants.{v.name}.set")
        p["methods"] = [*p["methods"], v.name] if v.name not in p["methods"] else p["methods"]
    p = override(p, {"data.source": ds.source, "data.path": ds.path}, f"datasets.{ds.name}")
    p = override(p, ds.set, f"datasets.{ds.name}.set")
    return configure(parse(p, f"params.yaml with study.yaml's datasets.{ds.name}"))


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:20]


def code_version(method: str, root: Path = Path(".")) -> str:
    """A hash of the code a method's result depends on: the files its DVC stage
    ``detect@<method>`` lists in dvc.yaml (its own package and the shared modules), so the memo
    and `dvc repro` agree on what an edit re-runs (editing knn re-runs knn only)."""
    from momentad.detectors.registry import base_name

    stage = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["detect"]["do"]
    params = yaml.safe_load((root / "params.yaml").read_text()) if (root / "params.yaml").is_file() else {}
    pretrained = str(((params or {}).get("pretrain") or {}).get("name", ""))
    h = hashlib.sha256()
    for dep in stage["deps"]:
        path = root / dep.replace("${item}", base_name(method)).replace("${pretrain.name}", pretrained)
        if dep.startswith("data/") or not path.exists():
            continue
        # code: its modules; the pretrained checkpoint: every file (re-pretraining re-runs, as in DVC)
        pattern = "*" if dep.startswith("models/") else "*.py"
        for f in sorted(p for p in path.rglob(pattern) if p.is_file()) if path.is_dir() else [path]:
            h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    return h.hexdigest()[:20]


def _method_key(cfg: Params, method: str, data_key: str, code: str) -> str:
    core = {k: as_dict(getattr(cfg, k)) for k in ("window", "evaluate", "budget")}
    return _digest({"method": method, "options": as_dict(cfg.options[method]), "seed": cfg.seed,
                    "threads": cfg.threads, "core": core, "data": data_key, "code": code})  # fmt: skip


def _copy(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)


def run_method(method: str, cfg: Params, layout: Layout, memo: Path, key: str) -> str:
    """One method on one dataset, from the memo when its key is there; returns "memo", "ran" or
    "failed: <why>"."""
    from momentad.runner import run

    slot = memo / method / key
    parts = {"details.json": layout.details(method), "scores": layout.scores_dir(method),
             "timings.json": layout.timings(method)}  # fmt: skip
    if (slot / "details.json").is_file():
        for name, target in parts.items():
            if (slot / name).exists():
                _copy(slot / name, target)
        return "memo"
    try:
        run(method, cfg, layout, save_models=False)
    except InputError as e:  # this method on this data; the other methods go on
        log.warning("%s on %s: %s", method, layout.root.name, e)
        return f"failed: {e}"
    tmp = slot.with_name(slot.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for name, source in parts.items():
        if source.exists():
            _copy(source, tmp / name)
    shutil.rmtree(slot, ignore_errors=True)
    tmp.rename(slot)
    return "ran"


def run_dataset(name: str, params_path: Path = Path("params.yaml"), study_path: Path = STUDY,
                project: Layout = Layout()) -> dict[str, Any]:  # fmt: skip
    """Everything of one dataset into ``study/runs/<name>`` (atomically): prepared data, every
    method's scores and details, the per-dataset comparison and ``result.json``."""
    from momentad.compare import run_compare

    datasets, study_set, variants = read_study(study_path)
    if name not in datasets:
        raise InputError(f"study.yaml: no dataset {name!r}; known: {', '.join(datasets)}")
    ds = datasets[name]
    if not params_path.is_file():
        raise InputError(f"{params_path}: params file not found; run from the repository root")
    raw = yaml.safe_load(params_path.read_text()) or {}
    cfg = dataset_params(raw, study_set, ds, variants)
    result: dict[str, Any] = {"dataset": name, "system": ds.system, "source": ds.source, "path": ds.path}
    t0 = time.perf_counter()
    with atomic_dir(project.study_run(name)) as tmp:
        layout = project.study_dataset(name, tmp)
        memo = project.study_memo / name
        try:
            prepare_data(cfg, layout.processed, layout.windows)
        except InputError as e:
            result.update(status=f"failed: {e}")
            log.warning("%s: %s", name, e)
            write_json(tmp / "result.json", result)
            return result
        data_key = _digest(
            [(layout.processed / "schema.json").read_text(), (layout.windows / "windows.json").read_text()]
        )
        kpis = json.loads((layout.processed / "schema.json").read_text())["n_features"]
        status = {}
        for m in cfg.methods:
            cap = variants[m].max_kpis if m in variants else None
            if cap is not None and kpis > cap:  # recorded, shown under "What could not run"
                status[m] = f"skipped: {kpis} KPIs, over the variant's max_kpis {cap} (study.yaml)"
                continue
            key = _method_key(cfg, m, data_key, code_version(m, project.root))
            status[m] = run_method(m, cfg, layout, memo, key)
        ran = [m for m, s in status.items() if not s.startswith(("failed", "skipped"))]
        result.update(status="ok", methods_status=status, **summarise_dataset(cfg, layout, ran))
        if ran:
            try:
                result["weights"] = run_compare(_only(cfg, ran), layout, plots=False, answer=False)["weights"]
            except InputError as e:  # e.g. every method was "not run" on this data
                result["compare"] = f"failed: {e}"
        write_json(tmp / "result.json", result)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def _only(cfg: Params, methods: list[str]) -> Params:
    import dataclasses

    return dataclasses.replace(cfg, methods=methods)


def summarise_dataset(cfg: Params, layout: Layout, methods: list[str]) -> dict[str, Any]:
    """What the aggregate needs of one dataset: per method and budget the test VUS-PR (mean over
    draws) or false-alarm rate, the validation VUS-PR, draws and why a budget did not run."""
    from momentad.layout import read_details
    from momentad.results import weights_label

    schema = json.loads((layout.processed / "schema.json").read_text())
    windows = json.loads((layout.windows / "windows.json").read_text())
    rows: dict[str, dict[str, Any]] = {}
    uses_labels: dict[str, bool] = {}
    for m in methods:
        rows[m] = {}
        details = read_details(layout, m)
        uses_labels[m] = details.uses_labels
        for r in details.rows():
            if not r.ok:
                rows[m][r.budget] = {"status": r.status}
                continue
            t = r.test
            rows[m][r.budget] = {"status": "ok", "vus_pr": t.get("vus_pr"),
                                 "false_alarm_rate": t.get("false_alarm_rate"), "val_vus_pr": r.val_vus_pr,
                                 "draws": r.draws, "checkpoint": r.model.get("checkpoint"),
                                 "weights": r.origin, "weights_label": weights_label(r.model, long=True)}  # fmt: skip
    splits = schema["splits"]
    return {"labelled": splits["test"]["events"] > 0, "validation_labelled": splits["val"]["events"] > 0,
            "events": {k: v["events"] for k, v in splits.items()}, "rows": {k: v["rows"] for k, v in splits.items()},
            "anomaly_ratio": splits["test"]["anomaly_ratio"], "kpis": schema["n_features"],
            "split_rule": schema.get("split_rule", {}), "window": {"length": windows["length"], "train_stride":
            windows["strides"]["train"]}, "uses_labels": uses_labels, "results": rows}  # fmt: skip
