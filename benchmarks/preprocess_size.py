"""Preprocess at real sizes: seconds and peak memory of `python -m stages.preprocess` on CSV files
of about 100 MB, 500 MB and 2 GB (one-minute rows x 40 KPIs) generated on the fly.

    python benchmarks/preprocess_size.py            # 100 MB, 500 MB, 2 GB
    python benchmarks/preprocess_size.py 100 500    # sizes in MB

Not a test: each size writes its file into a temporary folder, runs the stage in a child process
and reads the child's peak resident memory (getrusage); prints one table row per size.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pc
import yaml

ROOT = Path(__file__).resolve().parents[1]
KPIS = 40
BYTES_PER_ROW = 11 * KPIS + 22  # ~10-digit values and a time, measured on the generator's output


def write(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` one-minute rows x ``KPIS`` KPIs (daily cycles, noise, a few labelled incidents)."""
    rng = np.random.default_rng(seed)
    opts = pc.WriteOptions(include_header=True)
    start = np.datetime64("2024-01-01T00:00")
    with pc.CSVWriter(str(path), pa.schema([("timestamp", pa.string()), *[(f"kpi_{k:02d}", pa.float32())
                                                                           for k in range(KPIS)],
                                            ("label", pa.int8())]), write_options=opts) as w:  # fmt: skip
        for a in range(0, rows, 500_000):
            n = min(500_000, rows - a)
            t = np.arange(a, a + n)
            times = (start + t.astype("timedelta64[m]")).astype(str)
            day = np.sin(2 * np.pi * t / 1440)[:, None]
            values = (50 + 20 * day + rng.normal(0, 3, (n, KPIS))).astype(np.float32)
            label = ((t % 20_000) < 15).astype(np.int8)
            cols = [pa.array(times), *[pa.array(values[:, k]) for k in range(KPIS)], pa.array(label)]
            w.write_table(pa.table(cols, names=["timestamp", *[f"kpi_{k:02d}" for k in range(KPIS)], "label"]))


def run(size_mb: int) -> dict:
    rows = int(size_mb * 2**20 / BYTES_PER_ROW)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write(tmp / "big.csv", rows)
        size = (tmp / "big.csv").stat().st_size
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["data"].update(source="csv", path="big.csv")
        (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "stages.preprocess"], cwd=tmp, env=env, capture_output=True,
                             text=True)  # fmt: skip
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        if peak <= before * 1024:
            peak = float("nan")
    return {
        "file_mb": size / 2**20,
        "rows": rows,
        "kpis": KPIS,
        "seconds": seconds,
        "peak_mb": peak / 2**20,
        "ratio": peak / size,
        "exit": out.returncode,
        "line": (out.stdout + out.stderr).strip().splitlines()[-1],
    }


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [100, 500, 2048]
    print("| file size | rows x KPIs | seconds | peak RSS | peak / file | exit |")
    print("| --- | --- | --- | --- | --- | --- |")
    for mb in sizes:  # each in its own child: getrusage keeps the largest child's peak
        r = run(mb)
        print(
            f"| {r['file_mb']:,.0f} MB | {r['rows']:,} x {r['kpis']} | {r['seconds']:.0f} | {r['peak_mb']:,.0f} MB "
            f"| {r['ratio']:.2f} | {r['exit']} |",
            flush=True,
        )
        if r["exit"]:
            print(f"  {r['line']}")


if __name__ == "__main__":
    main()
