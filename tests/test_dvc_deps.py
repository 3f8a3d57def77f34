"""dvc.yaml: every stage's deps cover every project module its command imports (transitively),
so a code change can never leave results that `dvc repro` calls up to date."""

import copy

import yaml

from tests.conftest import ROOT
from tests.deps import closure, methods


def stage_module(cmd: str) -> str:
    """`python -m stages.detect ${item}` -> stages.detect"""
    parts = cmd.split()
    return parts[parts.index("-m") + 1]


def test_a_dataset_of_the_study_depends_on_its_data_and_the_loaders():
    run = yaml.safe_load((ROOT / "study/dvc.yaml").read_text())["stages"]["run"]["do"]
    assert run["deps"][:2] == ["${item.path}", "src/momentad/loaders"]  # loaders are imported by name


def missing_deps(dvc_yaml: dict) -> dict[str, list[str]]:
    """Per stage, the imported project files that no dep (file or folder) covers. A foreach stage
    over params.yaml's methods is checked for each method with ``${item}`` filled in: the method
    registry reaches that method's package only."""
    out = {}
    for name, stage in dvc_yaml["stages"].items():
        body = stage.get("do", stage)
        per_method = stage.get("foreach") == "${methods}"
        for method in methods() if per_method else [None]:
            deps = [d.rstrip("/").replace("${item}", method or "") for d in body.get("deps", [])]
            needed = closure(stage_module(body["cmd"]), [method] if per_method else None)
            gaps = sorted(str(f) for f in needed if not any(str(f) == d or str(f).startswith(d + "/") for d in deps))
            if gaps:
                out[f"{name}@{method}" if method else name] = gaps
    return out


def test_a_method_stage_depends_on_its_own_package_not_the_others():
    detect = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["detect"]["do"]["deps"]
    own = [d for d in detect if "${item}" in d]
    assert own == ["src/momentad/detectors/${item}"]
    assert "src/momentad/detectors" not in detect  # not the whole folder: knn's edit re-runs knn only
    for method in methods():
        files = {str(f) for f in closure("stages.detect", [method])}
        others = {f for f in files if f.startswith("src/momentad/detectors/") and f.count("/") > 3
                  and not f.startswith(f"src/momentad/detectors/{method}/")}  # fmt: skip
        assert others == set(), (method, others)


def test_every_stage_depends_on_every_module_it_imports():
    assert missing_deps(yaml.safe_load((ROOT / "dvc.yaml").read_text())) == {}
    assert missing_deps(yaml.safe_load((ROOT / "study/dvc.yaml").read_text())) == {}  # wdir: the repository


def test_the_check_catches_a_removed_dep():
    real = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    broken = copy.deepcopy(real)
    broken["stages"]["window"]["deps"].remove("src/momentad/windows.py")
    broken["stages"]["detect"]["do"]["deps"] = [d for d in broken["stages"]["detect"]["do"]["deps"]
                                                if d != "src/momentad/device.py"]  # fmt: skip
    gaps = missing_deps(broken)
    assert gaps["window"] == ["src/momentad/windows.py"]
    assert "src/momentad/device.py" in gaps["detect@moment"]


def test_the_closure_follows_imports_transitively():
    files = {str(f) for f in closure("stages.detect", ["moment"])}
    # runner -> registry imports moment's detector -> its recipes (imported by name) -> windows
    assert {"src/momentad/runner.py", "src/momentad/detectors/moment/detector.py",
            "src/momentad/detectors/moment/recipes/momentad.py", "src/momentad/detectors/moment/recipes/tsbad.py",
            "src/momentad/windows.py", "src/momentad/training.py"} <= files  # fmt: skip
    assert "src/momentad/detectors/pca/__init__.py" not in files
    assert "src/momentad/plots.py" not in files and "src/momentad/loaders/smd.py" not in files
    # the simulator is read by preprocess only: editing it re-runs no model stage
    assert "src/momentad/synthetic.py" not in files


def test_no_import_circle_among_src_modules():
    """A module never imports (at module level or inside a function) something that imports it
    back: each module's dependencies form a tree, so a change has a clear set of dependants."""
    from tests.deps import SRC, imports, module_file

    modules = {".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
               for p in SRC.rglob("*.py")}  # fmt: skip
    graph = {m: {i for i in imports(module_file(m)) if i != m and i in modules} for m in modules}
    seen, cycles = {}, []

    def visit(m, path):
        seen[m] = "open"
        for n in sorted(graph[m]):
            if seen.get(n) == "open":
                cycles.append(path[path.index(n) :] + [n] if n in path else [m, n])
            elif n not in seen:
                visit(n, path + [n])
        seen[m] = "done"

    for m in sorted(modules):
        if m not in seen:
            visit(m, [m])
    assert cycles == [], cycles
