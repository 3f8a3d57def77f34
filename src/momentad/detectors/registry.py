"""Method name -> detector class. A module in ``momentad.detectors`` that defines a
:class:`Detector` subclass decorated with :func:`register` is a method: adding one is one file
(plus its options section in params.yaml)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from momentad.detectors.base import Detector, read_artifact
from momentad.errors import InputError

_CLASSES: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if cls.name in _CLASSES and _CLASSES[cls.name] is not cls:
        raise RuntimeError(f"two detectors are named {cls.name!r}")
    _CLASSES[cls.name] = cls
    return cls


def _discover() -> dict[str, type[Detector]]:
    import momentad.detectors as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_") and mod.name not in ("base", "registry"):
            importlib.import_module(f"momentad.detectors.{mod.name}")
    return _CLASSES


def detector_class(name: str) -> type[Detector]:
    """The class registered as ``name``, or a one-line error listing the known ones."""
    classes = _discover()
    if name not in classes:
        raise InputError(f"unknown method {name!r}; known: {', '.join(sorted(classes))}")
    return classes[name]


def baseline_names() -> list[str]:
    """Methods whose options live under ``baselines.<name>`` (every non-MOMENT method)."""
    return sorted(n for n, c in _discover().items() if c.kind == "baseline")


def make(name: str, seed: int = 0, progress: bool = False, **options: Any) -> Detector:
    """A baseline from keyword options, validated like ``baselines.<name>`` in params.yaml."""
    from momentad.config import build

    cls = detector_class(name)
    return cls(build(cls.Params, options, f"baselines.{name}"), seed, progress)


def load_detector(folder: Path, **kwargs: Any) -> Detector:
    """A detector saved by :meth:`Detector.save` (any method)."""
    meta = read_artifact(folder)
    return detector_class(meta["method"]).load(folder, meta, **kwargs)


def configure(cfg: Any) -> Any:
    """``cfg`` with every ``baselines.<name>`` mapping checked and typed by its detector's Params
    (unknown methods, unknown keys and wrong types fail with one line)."""
    import dataclasses
    import difflib

    from momentad.config import BaselinesParams, build

    names = baseline_names()
    options = {}
    for name, opts in cfg.baselines.options.items():
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"did you mean baselines.{close[0]}?" if close else f"known: {', '.join(names)}"
            raise InputError(f"params.yaml: baselines.{name} is not a known baseline; {hint}")
        options[name] = build(detector_class(name).Params, opts, f"baselines.{name}")
    for m in cfg.baselines.methods:
        if m not in names:
            raise InputError(f"params.yaml: baselines.methods has {m!r}; known: {', '.join(names)}")
        if m not in options:
            raise InputError(f"params.yaml: baselines.{m} is missing; add its options (the repository's params.yaml "
                             "lists them)")  # fmt: skip
    return dataclasses.replace(cfg, baselines=BaselinesParams(methods=cfg.baselines.methods, options=options))


def load_params(path: Any = "params.yaml") -> Any:
    """params.yaml validated whole, baseline options included (for stages that run methods)."""
    from momentad import config

    return configure(config.load(path))
