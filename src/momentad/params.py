"""Reading params.yaml and checking values, with errors that name the parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from momentad.errors import InputError


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Load params.yaml as a dict."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: params file not found; run from the repository root or pass --params")
    with path.open() as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise InputError(f"{path}: expected a mapping of sections at the top level")
    return params


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """Return one params section, or fail naming it."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise InputError(f"params.yaml: section '{name}' is missing; copy it from the repository's params.yaml")
    return value


def require_int(value: Any, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """Check that ``value`` is an integer within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"params.yaml: {name} must be an integer, got {value!r}")
    _check_range(value, name, lo, hi)
    return value


def require_float(value: Any, name: str, lo: float | None = None, hi: float | None = None) -> float:
    """Check that ``value`` is a number within [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"params.yaml: {name} must be a number, got {value!r}")
    _check_range(value, name, lo, hi)
    return float(value)


def require_choice(value: Any, name: str, choices: tuple[str, ...] | list[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    if value not in choices:
        raise InputError(f"params.yaml: {name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _check_range(value: float, name: str, lo: float | None, hi: float | None) -> None:
    if lo is not None and value < lo or hi is not None and value > hi:
        bounds = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise InputError(f"params.yaml: {name}={value} is out of range; use a value in {bounds}")


def build_config(cls, values: dict[str, Any] | None, name: str):
    """Instantiate the dataclass ``cls`` from the params section ``name``, rejecting unknown keys."""
    values = dict(values or {})
    unknown = set(values) - set(cls.__dataclass_fields__)
    if unknown:
        known = ", ".join(cls.__dataclass_fields__)
        raise InputError(f"params.yaml: unknown key(s) {name}.{', '.join(sorted(unknown))}; known: {known}")
    return cls(**values)
