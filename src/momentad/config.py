"""params.yaml as one typed tree, loaded and validated once before any work.

Every section is a frozen dataclass; :func:`build` turns a YAML mapping into it and fails with
one line naming the key and the fix on an unknown key, a missing key, a wrong type or a value
out of range. Defaults live in ``params.yaml`` only: a key missing from it is an error, so the
file a user edits is the whole truth about a run. Every method's options are one top-level
section named after it (``moment``, ``pca``, ...), checked against that detector's ``Params`` by
:func:`momentad.detectors.registry.configure`.

YAML reads ``1e-3`` (no dot) as a string; number fields accept such strings.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from momentad.errors import InputError


def rng(ge: float | None = None, le: float | None = None, gt: float | None = None, lt: float | None = None,
        **meta: Any) -> Any:  # fmt: skip
    """A dataclass field with range checks (``ge`` <= v <= ``le``, ``gt`` < v < ``lt``)."""
    return field(metadata={"ge": ge, "le": le, "gt": gt, "lt": lt, **meta})


def optional(default: Any, **meta: Any) -> Any:
    """A key params.yaml may leave out (a data format's options); ``default`` then applies."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"optional": True, **meta})
    if dataclasses.is_dataclass(default):
        return field(default_factory=lambda: default, metadata={"optional": True, **meta})
    return field(default=default, metadata={"optional": True, **meta})


def _fail(where: str, msg: str) -> InputError:
    return InputError(f"params.yaml: {where}{'' if msg.startswith('=') else ' '}{msg}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (converting where YAML is ambiguous)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(arg, value, where)
            except InputError:
                continue
        raise _fail(where, f"must be {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise _fail(where, f"must be {_type_name(tp)}; got {value!r}")
        return value
    if tp is type(None):
        if value is not None:
            raise _fail(where, f"must be null, got {value!r}")
        return None
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(where, f"must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise _fail(where, f"must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                value = float(value)
            except ValueError:
                raise _fail(where, f"must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(where, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise _fail(where, f"must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(where, f"must be a string, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise _fail(where, f"must be {_type_name(tp)}, got {value!r}")
        (arg,) = typing.get_args(tp)
        return [_convert(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _fail(where, f"must be a mapping, got {value!r}")
        args = typing.get_args(tp)
        return {k: _convert(args[1], v, f"{where}.{k}") for k, v in value.items()} if args else dict(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    raise TypeError(f"unsupported annotation {tp!r} at {where}")


def _check_range(value: Any, meta: typing.Mapping[str, Any], where: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    ge, le, gt, lt = (meta.get(k) for k in ("ge", "le", "gt", "lt"))
    bad = (ge is not None and value < ge) or (le is not None and value > le)
    bad |= (gt is not None and value <= gt) or (lt is not None and value >= lt)
    if bad:
        lo = f"[{ge}" if ge is not None else f"({gt}" if gt is not None else "(-inf"
        hi = f"{le}]" if le is not None else f"{lt})" if lt is not None else "inf)"
        raise _fail(where, f"={value} is out of range; use a value in {lo}, {hi}")


def build(cls: type, values: Any, where: str) -> Any:
    """Instantiate dataclass ``cls`` from the mapping at ``where`` (e.g. ``lora``), strictly."""
    if not isinstance(values, dict):
        raise _fail(
            where, f"must be a mapping of keys, got {values!r}; copy the section from the repository's params.yaml"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    extra = getattr(cls, "EXTRA", None)  # the field that keeps keys the class leaves to others
    unknown = [k for k in values if k not in fields or k == extra]
    if extra:
        values = {**{k: v for k, v in values.items() if k not in unknown}, extra: {k: values[k] for k in unknown}}
        unknown = []
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(str(k), fields, n=1)
        hint = f"did you mean {where}.{close[0]}?" if close else f"known keys: {', '.join(fields)}"
        raise _fail(f"{where}.{k}", f"is not a known key; {hint}")
    # keys added after a release (``optional``) may be left out of an older params.yaml
    missing = [k for k, f in fields.items() if k not in values and not f.metadata.get("optional")]
    if missing:
        raise _fail(f"{where}.{missing[0]}", "is missing; add it (the repository's params.yaml lists every key)")
    kwargs = {}
    for name, f in fields.items():
        if name not in values:
            kwargs[name] = f.default
            continue
        sub = f"{where}.{name}" if where else name
        value = _convert(hints[name], values[name], sub)
        _check_range(value, f.metadata, sub)
        if isinstance(value, list):
            for i, v in enumerate(value):
                _check_range(v, f.metadata, f"{sub}[{i}]")
        kwargs[name] = value
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        check()
    return obj


def as_dict(obj: Any) -> dict[str, Any]:
    """A config dataclass back as plain data (for JSON echoes and run keys)."""
    return dataclasses.asdict(obj)


# ---------------------------------------------------------------------------------------------
# The sections. Each class documents its keys in params.yaml; here only types and ranges.


@dataclass(frozen=True)
class SplitParams:
    train: float = rng(gt=0, lt=1)
    val: float = rng(gt=0, lt=1)
    test: float = rng(gt=0, lt=1)
    # timestamps (or numbers, for a numeric time column) where train / val end; they win over
    # the fractions and over a format's own train part
    train_end: Any = optional(None)
    val_end: Any = optional(None)
    # one rule for every dataset, fixed before any score is seen: where the test split holds fewer
    # than min_test_events labelled events, its start moves earlier by the least amount that gives
    # it that many (the train split never below min_train of the rows); 0 = off
    min_test_events: int = optional(0, ge=0)
    min_train: float = optional(0.4, gt=0, lt=1)

    def check(self) -> None:
        total = self.train + self.val + self.test
        if abs(total - 1) > 1e-6:
            raise _fail("data.split", f"fractions sum to {total:.3f}; make them sum to 1")
        for key in ("train_end", "val_end"):
            v = getattr(self, key)
            if isinstance(v, (datetime.date, datetime.datetime)):  # YAML reads 2023-01-30 as a date
                object.__setattr__(self, key, v.isoformat(sep=" ") if isinstance(v, datetime.datetime)
                                   else v.isoformat())  # fmt: skip
            elif not (v is None or isinstance(v, (str, int, float))) or isinstance(v, bool):
                raise _fail(f"data.split.{key}", f"must be a time such as '2023-01-30 12:00' or a number, got {v!r}")
        if self.val_end is not None and self.train_end is None:
            raise _fail("data.split.val_end", "is set without data.split.train_end; set both (or neither)")


@dataclass(frozen=True)
class DataParams:
    """Where the data come from and how they are split and scaled. ``source`` names a format: a
    module of :mod:`momentad.loaders`, whose options are the section of its name
    (``data.<source>``), typed and checked by that module (:func:`momentad.loaders.configure`);
    the other formats' sections may be left out."""

    EXTRA: typing.ClassVar[str] = "formats"

    source: str
    path: str | None
    split: SplitParams
    scaler: Literal["standard", "robust", "none"]
    drop_constant: bool
    ffill_limit: int = rng(ge=0, le=10_000)
    # rows that share a time (a naive local hour written twice when daylight saving ends):
    # refuse (name them) | mean | first (merged, and counted in the log and schema.json)
    repeated_times: Literal["refuse", "mean", "first"] = optional("refuse")
    max_rows: int | None = optional(None, ge=1)  # read only the first N rows of a file (huge exports)
    formats: dict[str, Any] = field(default_factory=dict)  # data.<format> sections, as written


CONTEXT_LENGTH = 512  # MOMENT's input length; windows are at most this long


@dataclass(frozen=True)
class WindowParams:
    """``auto`` lengths follow the series (:func:`momentad.windows.resolve`): the window stage
    records the resolved values in windows.json and every later stage reads them there."""

    length: int | Literal["auto"] = rng(ge=2, le=CONTEXT_LENGTH)
    train_stride: int | Literal["auto"] = rng(ge=1)
    eval_stride: int | None = rng(ge=1)  # null: window.length (follows it when it is lowered)

    def check(self) -> None:
        if self.length == "auto":
            return  # strides are checked once the length is known
        if self.eval_stride is None:
            object.__setattr__(self, "eval_stride", self.length)  # resolved once, before any use
        for key in ("train_stride", "eval_stride"):
            value = getattr(self, key)
            if value != "auto" and value > self.length:
                raise _fail(f"window.{key}", f"={value} is out of range; use a value in [1, {self.length}]")


@dataclass(frozen=True)
class EvaluateParams:
    threshold: Literal["val_best_f1", "percentile", "mean_kstd", "iqr"]
    percentile: float = rng(ge=0, le=100)
    k: float = rng(ge=0)
    iqr_factor: float = rng(ge=0)
    sliding_window: int | Literal["auto"] = rng(ge=1, le=10_000)
    # default: fit on train, threshold on val, metrics on test. tsbad (TSB-AD / UCR files): fit on
    # the _tr_N_ part, score and measure the whole series, VUS window from the whole series
    protocol: Literal["default", "tsbad"] = optional("default")


@dataclass(frozen=True)
class BudgetParams:
    sizes: list[int] = rng(ge=1)
    draws: int = rng(ge=1, le=100)
    include_anomalous: bool

    def check(self) -> None:
        if not self.sizes:
            raise _fail("budget.sizes", "is empty; use e.g. [100, 500, 1000]")
        if len(set(self.sizes)) != len(self.sizes):
            raise _fail("budget.sizes", f"repeats a budget ({self.sizes}); list distinct sizes")


@dataclass(frozen=True)
class CompareParams:
    bootstrap: int = rng(ge=100, le=100_000)  # replicates of every bootstrap interval


CORE = ("seed", "threads", "data", "window", "evaluate", "budget", "compare", "methods")
# sections typed by the stage that reads them (pretrain: momentad.detectors.moment.pretrain)
ELSEWHERE = ("pretrain",)


@dataclass(frozen=True)
class Params:
    seed: int = rng(ge=0)
    threads: int = rng(ge=1, le=256)
    data: DataParams
    window: WindowParams
    evaluate: EvaluateParams
    budget: BudgetParams
    compare: CompareParams
    # the pool: every method's options are the top-level section of its name
    methods: list[str]
    # method name -> its options section (a mapping until registry.configure types it)
    options: dict[str, Any] = field(default_factory=dict)
    # sections another module types (ELSEWHERE), as written
    sections: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        seen = set()
        for m in self.methods:
            if m in seen:
                raise _fail("methods", f"lists {m!r} twice; list each method once")
            seen.add(m)
        if not self.methods:
            raise _fail("methods", "is empty; list at least one method (e.g. [moment, pca])")
        known = method_names()
        for m in self.methods:
            base = m.split("-", 1)[0]  # a variant <method>-<name> runs its base method's detector
            if base not in known:
                close = difflib.get_close_matches(base, known, n=1)
                raise _fail("methods", f"lists {m!r}, which is not a method; " + (f"did you mean {close[0]}? " if close
                            else "") + f"known: {', '.join(known)}")  # fmt: skip
            if m not in self.options:
                raise _fail("methods", f"lists {m!r} but params.yaml has no section '{m}' (its options); copy it "
                            "from the repository's params.yaml")  # fmt: skip


def method_names() -> list[str]:
    """Every method: the packages of momentad.detectors, listed without importing any, so every
    stage checks params.yaml's ``methods`` before it does anything."""
    import pkgutil

    import momentad.detectors as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.ispkg and not m.name.startswith("_"))


def parse(raw: Any, origin: str = "params.yaml") -> Params:
    """Validate a whole params mapping (already read from YAML). Sections that are not core
    (``CORE``) are method options, typed later by their detectors (registry.configure)."""
    if not isinstance(raw, dict):
        raise InputError(f"{origin}: expected a mapping of sections at the top level")
    hints = typing.get_type_hints(Params)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(Params):
        if f.name in ("options", "sections"):
            continue
        if f.name not in raw:
            raise InputError(f"{origin}: section '{f.name}' is missing; copy it from the repository's params.yaml")
        kwargs[f.name] = _convert(hints[f.name], raw[f.name], f.name)
        _check_range(kwargs[f.name], f.metadata, f.name)
    kwargs["options"] = {str(k): v for k, v in raw.items() if k not in CORE and k not in ELSEWHERE}
    kwargs["sections"] = {k: raw[k] for k in ELSEWHERE if k in raw}
    obj = Params(**kwargs)
    obj.check()
    return obj


def load(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; every stage calls this first, before any work."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: params file not found; run from the repository root or pass --params")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None)
        why = f" ({problem})" if problem else ""
        raise InputError(f"{path}: not valid YAML{where}{why}; fix the syntax there") from None
    return parse(raw, str(path))
