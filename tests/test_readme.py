"""README's commands run: every ```bash and ```python block, in order, in a copy of the repository
after `dvc repro` on the tiny setup (small synthetic series, tiny random-init MOMENT). A block
that cannot run here is preceded by ``<!-- not run: <reason> -->``; the reasons are asserted
non-empty and printed (pytest -s). README and docs/ speak to users: no paths of a machine."""

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, dvc, run_bounded, small_params, write_params

BLOCK = re.compile(r"(?:<!-- not run: (?P<why>[^>]*?) -->\s*\n)?```(?P<lang>bash|python|console|sh)\n(?P<body>.*?)```",
                   re.S)  # fmt: skip
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks() -> list[tuple[str, str, str | None]]:
    """Every block of README.md, then of each docs/*.md page, in order."""
    return [(m["lang"], m["body"], m["why"]) for page in DOCS for m in BLOCK.finditer(page.read_text())]


def test_readme_blocks_are_bash_or_python_and_skips_say_why():
    found = blocks()
    assert len(found) >= 6
    for lang, body, why in found:
        assert lang in ("bash", "python"), f"a ```{lang} block cannot be run: use bash or python\n{body}"
        assert why is None or len(why.strip()) > 10, body


def test_docs_name_no_machine_paths():
    for path in DOCS:
        text = path.read_text()
        for pattern in (r"/work/", r"/tmp/[a-z]", r"\.\./shared", r"\bissue \d+\b", r"/root/"):
            assert not re.search(pattern, text), (path.name, pattern, re.search(pattern, text))


def test_every_readme_block_runs(repo_copy):
    write_params(repo_copy, small_params(**{"methods": ["moment", "isolation_forest", "pca", "squared_difference"],
                                            "budget.draws": 1}))  # fmt: skip
    first = dvc(repo_copy, "repro")
    assert first.returncode == 0, first.stderr + first.stdout
    subprocess.run(["git", "add", "-A"], cwd=repo_copy, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"], cwd=repo_copy,
                   check=True)  # fmt: skip
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(repo_copy / "src"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    ran = 0
    for lang, body, why in blocks():
        if why is not None:
            print(f"not run: {why.strip()}")
            continue
        cmd = ["bash", "-euo", "pipefail", "-c", body] if lang == "bash" else [sys.executable, "-c", body]
        out = run_bounded(cmd, cwd=repo_copy, env=env)
        assert out.returncode == 0, f"README block failed:\n{body}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
        ran += 1
    assert ran >= 4
