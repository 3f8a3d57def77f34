"""Wall time of every DVC stage in one `dvc repro`: runs it, passes its output through, and
prints a Markdown table (stage, seconds, share) at the end — the table in docs/benchmarks.md.

    python benchmarks/stage_times.py            # = dvc repro, timed
    python benchmarks/stage_times.py -f         # extra arguments go to dvc repro
"""

from __future__ import annotations

import re
import subprocess
import sys
import time


def main(args: list[str]) -> int:
    proc = subprocess.Popen(["dvc", "repro", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    for line in proc.stdout:
        sys.stdout.write(line)
        m = re.match(r"Running stage '([^']+)'", line)
        if m:
            marks.append((m.group(1), time.perf_counter()))
    rc = proc.wait()
    end = time.perf_counter()
    total = end - start
    rows = [(name, (marks[i + 1][1] if i + 1 < len(marks) else end) - t) for i, (name, t) in enumerate(marks)]
    print("\n| stage | wall s | share |\n| --- | --- | --- |")
    for name, s in rows:
        print(f"| {name} | {s:.1f} | {100 * s / total:.1f} % |")
    groups: dict[str, float] = {}
    for name, s in rows:
        groups[name.split("@")[0]] = groups.get(name.split("@")[0], 0.0) + s
    print("\n| stage group | stages | wall s | share |\n| --- | --- | --- | --- |")
    for g, s in groups.items():
        n = sum(1 for name, _ in rows if name.split("@")[0] == g)
        print(f"| {g} | {n} | {s:.1f} | {100 * s / total:.1f} % |")
    print(f"\n`dvc repro` total: {total:.1f} s ({total / 60:.1f} min), exit {rc}")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
