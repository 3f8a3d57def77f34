"""Method name -> detector class. A method is the package ``momentad.detectors.<name>``: its
``__init__.py`` (or, for a method of several modules such as MOMENT, its ``detector.py``) defines
a :class:`~momentad.detectors.base.Detector` subclass decorated with ``@register``. Adding one is
that file, its options section in params.yaml (named like the method) and its name in
``methods``; its DVC stage ``detect@<name>`` depends on its own folder and the shared modules, so
editing one method re-runs that method only. A variant ``<method>-<name>`` (e.g.
``moment-tsbad``) is the same detector with its own options section. Looking a method up imports
its package only, so a stage that runs a scikit-learn method never pays for importing torch."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from pathlib import Path
from typing import Any

from momentad.config import Params, build, method_names
from momentad.config import load as load_config
from momentad.detectors import base
from momentad.detectors.base import Detector, RunContext, read_artifact
from momentad.errors import InputError

HERE = Path(__file__).parent


def module_of(name: str) -> str:
    """The module that registers method ``name``: ``<name>/detector.py`` where the package has
    one, else the package itself."""
    return f"momentad.detectors.{name}" + (".detector" if (HERE / name / "detector.py").is_file() else "")


def _load(name: str) -> type[Detector] | None:
    """The class of method ``name`` from its own package, if there is one."""
    if name in base._CLASSES:
        return base._CLASSES[name]
    if name not in names():
        return None
    importlib.import_module(module_of(name))
    return base._CLASSES.get(name)


def _discover() -> dict[str, type[Detector]]:
    for name in names():
        _load(name)
    return base._CLASSES


def names() -> list[str]:
    """Every method: the packages of momentad.detectors (found without importing any)."""
    return method_names()


def base_name(name: str) -> str:
    """The method a variant id belongs to: ``moment-tsbad`` -> ``moment`` (a variant is the same
    detector under its own options section, so one study can run several recipes side by side)."""
    return name.split("-", 1)[0]


def detector_class(name: str) -> type[Detector]:
    """The class registered as ``name`` (or as the base of a variant id ``<method>-<variant>``),
    or a one-line error listing the known ones."""
    name = base_name(name)
    found = _load(name)
    if found is None:
        known = names()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise InputError(f"unknown method {name!r}; {hint}known: {', '.join(known)}")
    return found


def make(name: str, seed: int = 0, progress: bool = False, **options: Any) -> Detector:
    """A method from keyword options, validated like its params.yaml section (notebooks)."""
    cls = detector_class(name)
    return cls(build(cls.Params, options, name), RunContext(seed=seed, progress=progress))


def load_detector(folder: str | Path) -> Detector:
    """A detector saved by :meth:`Detector.save` (any method), e.g.
    ``load_detector("data/models/pca/full")``."""
    folder = Path(folder)
    meta = read_artifact(folder)
    return detector_class(meta["method"]).load(folder, meta)


def configure(cfg: Params, only: str | None = None) -> Params:
    """``cfg`` with every method's options section checked and typed by its detector's Params
    (an unknown section, method, key or type fails with one line); ``only``: that method's
    section alone (a stage that runs one method checks what it reads, and imports no other)."""
    if only is not None:
        cls = detector_class(only)
        if only not in cfg.options:
            raise InputError(f"params.yaml: section '{only}' (the options of method {only}) is missing; copy it from "
                             "the repository's params.yaml")  # fmt: skip
        return dataclasses.replace(cfg, options={only: build(cls.Params, cfg.options[only], only)})
    known = names()
    options = {}
    for name, opts in cfg.options.items():
        if base_name(name) not in known:
            close = difflib.get_close_matches(name, known + ["seed", "threads", "data", "window", "evaluate",
                                                             "budget", "methods"], n=1)  # fmt: skip
            hint = f"did you mean {close[0]}?" if close else f"methods: {', '.join(known)}"
            raise InputError(f"params.yaml: {name} is not a known section; {hint}")
        options[name] = build(detector_class(name).Params, opts, name)
    for m in cfg.methods:
        if base_name(m) not in known:
            close = difflib.get_close_matches(base_name(m), known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise InputError(f"params.yaml: methods lists {m!r}; {hint}known: {', '.join(known)}")
        if m not in options:
            raise InputError(f"params.yaml: section '{m}' (the options of method {m}) is missing; copy it from the "
                             "repository's params.yaml")  # fmt: skip
    return dataclasses.replace(cfg, options=options)


def load_params(path: Any = "params.yaml", only: str | None = None) -> Params:
    """params.yaml validated, with every method's options (or ``only`` that method's)."""
    return configure(load_config(path), only)
