"""study.yaml: the datasets of the study (name, source, path, system, overrides), checked."""

from __future__ import annotations

import copy
import difflib
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
    """:func:`load_study` plus the study's method variants. Every entry is checked before any
    dataset runs: an unknown source or system, a name given twice, a path that does not exist are
    one line naming the line of study.yaml."""
    if not path.is_file():
        raise InputError(f"{path}: study file not found; run from the repository root")
    try:
        raw, lines = _load_with_lines(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        why = getattr(e, "problem", "") or type(e).__name__
        raise InputError(f"{path}: not valid YAML{where} ({why}); fix the syntax there") from None

    def fail(where: str, msg: str) -> InputError:
        line = lines.get(where) or lines.get(where.rsplit(".", 1)[0])
        return InputError(f"{path}{f' line {line}' if line else ''}: {where} {msg}")

    if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), dict) or not raw["datasets"]:
        raise fail("datasets", "must map dataset names to their source, path and system; see the shipped study.yaml")
    unknown = set(raw) - {"datasets", "set", "variants", "systems"}
    if unknown:
        raise fail(sorted(unknown)[0], "is not a known key; use datasets, systems, set and variants")
    systems = raw.get("systems")
    if systems is not None and not isinstance(systems, dict):
        raise fail("systems", "must map each system's name to a line saying what it is")
    variants = {}
    for name, entry in (raw.get("variants") or {}).items():
        where = f"variants.{name}"
        if not isinstance(name, str) or not VARIANT.match(name):
            raise fail(where, "is not a variant id; name it <method>-<variant>, e.g. moment-tsbad")
        if not isinstance(entry, dict) or set(entry) - {"set", "max_kpis"} or not isinstance(entry.get("set"), dict):
            raise fail(where, "must be {set: {<key of the method's section>: value}, max_kpis: N (optional)}")
        cap = entry.get("max_kpis")
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            raise fail(f"{where}.max_kpis", f"={cap!r}; use a whole number >= 1, or leave it out")
        variants[name] = Variant(name, dict(entry["set"]), cap)
    study_set = raw.get("set") or {}
    if not isinstance(study_set, dict):
        raise fail("set", "must map params.yaml keys (dotted, e.g. budget.draws) to values")
    from momentad.loaders import names as formats

    known = formats()
    out = {}
    for name, entry in raw["datasets"].items():
        where = f"datasets.{name}"
        if not isinstance(name, str) or not NAME.match(name):
            raise fail(where, "is not a usable name; use lower-case letters, digits, '.', '_' and '-'")
        if not isinstance(entry, dict):
            raise fail(where, "must be a mapping with source, path and system")
        extra = set(entry) - {"source", "path", "system", "set"}
        if extra:
            raise fail(f"{where}.{sorted(extra)[0]}", "is not a known key; use source, path, system and set")
        for key in ("source", "path", "system"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise fail(f"{where}.{key}", "is missing; every dataset names its source, path and system")
        if entry["source"] not in known:
            close = difflib.get_close_matches(entry["source"], known, n=1)
            raise fail(
                f"{where}.source",
                f"={entry['source']!r} is not a data format ("
                + (f"did you mean {close[0]}? " if close else "")
                + f"known: {', '.join(known)})",
            )
        if systems is not None and entry["system"] not in systems:
            close = difflib.get_close_matches(entry["system"], list(systems), n=1)
            raise fail(f"{where}.system", f"={entry['system']!r} is not in systems ("
                       + (f"did you mean {close[0]}? " if close else "") + "add it under systems: with a line "
                       "saying what it is)")  # fmt: skip
        if not Path(entry["path"]).exists():
            raise fail(f"{where}.path", f"={entry['path']!r} does not exist; point it at the dataset's file or folder")
        overrides = entry.get("set") or {}
        if not isinstance(overrides, dict):
            raise fail(f"{where}.set", "must map params.yaml keys (dotted) to values")
        out[name] = Dataset(name, entry["source"], entry["path"], entry["system"], dict(overrides))
    return out, dict(study_set), variants


def _load_with_lines(text: str) -> tuple[Any, dict[str, int]]:
    """YAML with the line of every key (dotted path -> 1-based line); a key given twice in one
    mapping is an error naming both lines (PyYAML would keep the last silently)."""
    lines: dict[str, int] = {}

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, prefix=""):
        out, seen = {}, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            path = f"{prefix}{key}"
            if key in seen:
                raise InputError(f"study.yaml line {key_node.start_mark.line + 1}: {path} is given twice (first at "
                                 f"line {seen[key]}); give every dataset its own name")  # fmt: skip
            seen[key] = key_node.start_mark.line + 1
            lines[path] = seen[key]
            if isinstance(value_node, yaml.MappingNode):
                out[key] = mapping(loader, value_node, f"{path}.")
            else:
                out[key] = loader.construct_object(value_node, deep=True)
        return out

    loader = Loader(text)
    try:
        node = loader.get_single_node()
        return (mapping(loader, node) if isinstance(node, yaml.MappingNode) else
                loader.construct_document(node) if node is not None else {}), lines  # fmt: skip
    finally:
        loader.dispose()


def override(raw: dict[str, Any], dotted: dict[str, Any], where: str) -> dict[str, Any]:
    """A copy of the params mapping with ``dotted`` keys set (``budget.draws: 2``)."""
    out = copy.deepcopy(raw)
    for key, value in dotted.items():
        node = out
        *parents, leaf = str(key).split(".")
        for depth, k in enumerate(parents):
            if depth and node.get(k) is None:  # an optional sub-section (a data format's) may be absent
                node[k] = {}
            if not isinstance(node.get(k), dict):
                raise _fail(where, f"sets {key!r}, but params.yaml has no section {k!r} there")
            node = node[k]
        node[leaf] = value
    return out
