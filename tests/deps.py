"""Static import closure of a stage module within the project (for the dvc.yaml deps test)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    """The project file of a dotted module name (stages.* or momentad.*), else None."""
    base = ROOT if name.split(".")[0] == "stages" else SRC
    path = base.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def imports(path: Path) -> set[str]:
    """Every project module imported anywhere in ``path`` (function-level imports included,
    since a lazy import is still a dependency); packages also pull in their __init__."""
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    out = set()
    for n in names:
        if n.split(".")[0] in ("momentad", "stages"):
            parts = n.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
                if module_file(".".join(parts[:i])):
                    out.add(".".join(parts[:i]))
    return out


# packages that import their modules by name (importlib): reaching one reaches every module there
BY_NAME = {"momentad.loaders": SRC / "momentad" / "loaders",
           "momentad.detectors.moment.recipes": SRC / "momentad" / "detectors" / "moment" / "recipes"}  # fmt: skip


def method_module(method: str) -> str:
    """The module the registry imports for a method (its package, or the package's detector.py)."""
    package = SRC / "momentad" / "detectors" / method
    return f"momentad.detectors.{method}" + (".detector" if (package / "detector.py").is_file() else "")


def methods() -> list[str]:
    return sorted(p.parent.name for p in (SRC / "momentad" / "detectors").glob("*/__init__.py"))


def closure(module: str, reaches: list[str] | None = None) -> set[Path]:
    """Files of every project module ``module`` reaches, itself included. The method registry
    imports methods by name: ``reaches`` says which (None: every one, as ``configure`` does)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        f = module_file(m)
        if f is None:
            continue
        todo.extend(imports(f) - seen)
        if m == "momentad.detectors.registry":
            todo.extend(method_module(x) for x in (methods() if reaches is None else reaches))
        if m in BY_NAME:
            todo.extend(f"{m}.{p.stem}" for p in BY_NAME[m].glob("*.py") if not p.stem.startswith("_"))
    return {module_file(m).relative_to(ROOT) for m in seen if module_file(m)}
