"""study.yaml: the datasets of the study (name, source, path, system, overrides), checked."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from momentad.errors import InputError

STUDY = Path("study.yaml")
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


VARIANT = re.compile(r"^[a-z][a-z0-9_]*-[a-z0-9-]+$")


@dataclass(frozen=True)
class Variant:
    """A method run beside its base with other options: ``<base>-<name>`` in study.yaml's
    ``variants`` (e.g. ``moment-tsbad``); ``set`` overrides keys of the base's params section,
    ``max_kpis`` (optional) leaves it out of datasets with more KPIs (its cost grows with them)."""

    name: str
    set: dict[str, Any]
    max_kpis: int | None = None


@dataclass(frozen=True)
class Dataset:
    """One entry of study.yaml."""

    name: str
    source: str
    path: str
    system: str
    set: dict[str, Any] = field(default_factory=dict)


def _fail(where: str, msg: str) -> InputError:
    return InputError(f"study.yaml: {where} {msg}")


def load_study(path: Path = STUDY) -> tuple[dict[str, Dataset], dict[str, Any]]:
    """The datasets of the study file and its study-wide overrides, checked (one-line errors)."""
    datasets, study_set, _ = read_study(path)
    return datasets, study_set


def read_study(path: Path = STUDY) -> tuple[dict[str, Dataset], dict[str, Any], dict[str, Variant]]:
    """:func:`load_study` plus the study's method variants."""
    if not path.is_file():
        raise InputError(f"{path}: study file not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        why = getattr(e, "problem", "") or type(e).__name__
        raise InputError(f"{path}: not valid YAML{where} ({why}); fix the syntax there") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), dict) or not raw["datasets"]:
        raise _fail("datasets", "must map dataset names to their source, path and system; see the shipped study.yaml")
    unknown = set(raw) - {"datasets", "set", "variants"}
    if unknown:
        raise _fail(sorted(unknown)[0], "is not a known key; use datasets, set and variants")
    variants = {}
    for name, entry in (raw.get("variants") or {}).items():
        where = f"variants.{name}"
        if not isinstance(name, str) or not VARIANT.match(name):
            raise _fail(where, "is not a variant id; name it <method>-<variant>, e.g. moment-tsbad")
        if not isinstance(entry, dict) or set(entry) - {"set", "max_kpis"} or not isinstance(entry.get("set"), dict):
            raise _fail(where, "must be {set: {<key of the method's section>: value}, max_kpis: N (optional)}")
        cap = entry.get("max_kpis")
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            raise _fail(f"{where}.max_kpis", f"={cap!r}; use a whole number >= 1, or leave it out")
        variants[name] = Variant(name, dict(entry["set"]), cap)
    study_set = raw.get("set") or {}
    if not isinstance(study_set, dict):
        raise _fail("set", "must map params.yaml keys (dotted, e.g. budget.draws) to values")
    out = {}
    for name, entry in raw["datasets"].items():
        where = f"datasets.{name}"
        if not isinstance(name, str) or not NAME.match(name):
            raise _fail(where, "is not a usable name; use lower-case letters, digits, '.', '_' and '-'")
        if not isinstance(entry, dict):
            raise _fail(where, "must be a mapping with source, path and system")
        extra = set(entry) - {"source", "path", "system", "set"}
        if extra:
            raise _fail(f"{where}.{sorted(extra)[0]}", "is not a known key; use source, path, system and set")
        for key in ("source", "path", "system"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise _fail(f"{where}.{key}", "is missing; every dataset names its source, path and system")
        if not Path(entry["path"]).exists():
            raise _fail(f"{where}.path", f"={entry['path']!r} does not exist; point it at the dataset's file or folder")
        overrides = entry.get("set") or {}
        if not isinstance(overrides, dict):
            raise _fail(f"{where}.set", "must map params.yaml keys (dotted) to values")
        out[name] = Dataset(name, entry["source"], entry["path"], entry["system"], dict(overrides))
    return out, dict(study_set), variants


def override(raw: dict[str, Any], dotted: dict[str, Any], where: str) -> dict[str, Any]:
    """A copy of the params mapping with ``dotted`` keys set (``budget.draws: 2``)."""
    out = copy.deepcopy(raw)
    for key, value in dotted.items():
        node = out
        *parents, leaf = str(key).split(".")
        for k in parents:
            if not isinstance(node.get(k), dict):
                raise _fail(where, f"sets {key!r}, but params.yaml has no section {k!r} there")
            node = node[k]
        node[leaf] = value
    return out
