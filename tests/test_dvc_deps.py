"""dvc.yaml: every stage's deps cover every project module its command imports (transitively),
so a code change can never leave results that `dvc repro` calls up to date."""

import copy

import yaml
from tests.conftest import ROOT
from tests.deps import closure


def stage_module(cmd: str) -> str:
    """`python -m stages.detect moment_lora_${item}` -> stages.detect"""
    parts = cmd.split()
    return parts[parts.index("-m") + 1]


def missing_deps(dvc_yaml: dict) -> dict[str, list[str]]:
    """Per stage, the imported project files that no dep (file or folder) covers."""
    out = {}
    for name, stage in dvc_yaml["stages"].items():
        body = stage.get("do", stage)
        deps = [d.rstrip("/") for d in body.get("deps", [])]
        needed = closure(stage_module(body["cmd"]))
        gaps = sorted(str(f) for f in needed if not any(str(f) == d or str(f).startswith(d + "/") for d in deps))
        if gaps:
            out[name] = gaps
    return out


def test_every_stage_depends_on_every_module_it_imports():
    assert missing_deps(yaml.safe_load((ROOT / "dvc.yaml").read_text())) == {}


def test_the_check_catches_a_removed_dep():
    real = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    broken = copy.deepcopy(real)
    broken["stages"]["moment_zero_shot"]["deps"].remove("src/momentad/windows.py")
    broken["stages"]["baseline"]["deps"] = [d for d in broken["stages"]["baseline"]["deps"]
                                            if d != "src/momentad/models"]  # fmt: skip
    gaps = missing_deps(broken)
    assert gaps["moment_zero_shot"] == ["src/momentad/windows.py"]
    assert "src/momentad/models/device.py" in gaps["baseline"]


def test_the_closure_follows_imports_transitively():
    files = {str(f) for f in closure("stages.detect")}
    # runner -> registry discovers every detector -> moment_lora -> finetune -> windows
    assert {"src/momentad/runner.py", "src/momentad/detectors/moment_lora.py", "src/momentad/finetune.py",
            "src/momentad/windows.py", "src/momentad/training.py"} <= files  # fmt: skip
    assert "src/momentad/plots.py" not in files and "src/momentad/loaders/smd.py" not in files
