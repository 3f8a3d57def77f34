"""How long do Nezha's injected faults visibly last in the KPIs? (sets data.nezha.label_minutes)

    python benchmarks/nezha_fault_duration.py [data/raw/nezha-trainticket] [--threshold 4]

Per fault, the injected service's KPIs as robust z-scores: level = the median of minutes
t-6..t-4 before the injection at t, scale = the MAD of minutes t-12..t-1 (the daytime spread),
never below the MAD of that day's fault-free evening (from 60 minutes after the day's last
injection to midnight). Minute t+k is "visible" when any KPI of
the service has |z| above the threshold. Faults come every ~7-9 minutes, so an absolute
duration is confounded by the next fault; instead the script prints, per offset k, the share
of faults visible at t+k, next to the share at t-3..t-1 (before the injection: noise and
lingering earlier faults). The fault is visible while that share stays clearly above the
pre-injection level: the half-way point between the pre-injection share and the peak.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from momentad.loaders.nezha import _faults, load_day

OFFSETS = range(-3, 12)


def profile(root: str, threshold: float) -> pd.DataFrame:
    """One row per fault, one column per offset k: visible (1) or not (0); NaN past the next fault."""
    rows = []
    for day in sorted(d for d in Path(root).iterdir() if (d / "metric").is_dir()):
        frame, _, _ = load_day(day, label_minutes=1)
        ts = frame["timestamp"].reset_index(drop=True)
        faults = sorted(_faults(day), key=lambda f: f["start"])
        quiet = ts >= faults[-1]["start"] + pd.Timedelta(minutes=60)
        for i, f in enumerate(faults):
            cols = [c for c in frame.columns if c.startswith(f["service"] + "_")]
            base = frame.loc[quiet, cols]
            mad = (base - base.median()).abs().median() * 1.4826
            keep = [c for c in cols if mad[c] > 0]
            t = int(ts.searchsorted(f["start"]))
            level = frame.loc[t - 6 : t - 4, keep].median()
            # local spread: the 12 minutes before the injection, never below the quiet evening's
            local = frame.loc[t - 12 : t - 1, keep]
            spread = np.maximum((local - local.median()).abs().median() * 1.4826, mad[keep])
            nxt = int(ts.searchsorted(faults[i + 1]["start"])) if i + 1 < len(faults) else len(ts)
            row = {"day": day.name, "type": f["type"], "service": f["service"]}
            for k in OFFSETS:
                if t + k >= nxt or t - 12 < 0:
                    row[k] = np.nan
                    continue
                z = ((frame.loc[t + k, keep] - level) / spread).abs().max()
                row[k] = float(z > threshold) if np.isfinite(z) else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    argv = sys.argv[1:]
    thr = float(argv.pop(argv.index("--threshold") + 1)) if "--threshold" in argv else 4.0
    args = [a for a in argv if not a.startswith("--")]
    p = profile(args[0] if args else "data/raw/nezha-trainticket", thr)
    share = p[list(OFFSETS)].mean()
    n = p[list(OFFSETS)].notna().sum()
    before = float(share[[-3, -2, -1]].mean())
    peak = float(share[[k for k in OFFSETS if k >= 0]].max())
    half = before + (peak - before) / 2
    visible = [k for k in OFFSETS if k >= 0 and share[k] >= half]
    length = next((k for k in OFFSETS if k >= 0 and share[k] < half), max(OFFSETS) + 1)
    print(f"{len(p)} faults, threshold |z| > {thr}")
    print("minute k after injection : " + " ".join(f"{k:>5d}" for k in OFFSETS))
    print("share of faults visible  : " + " ".join(f"{share[k]:5.2f}" for k in OFFSETS))
    print("faults still before next : " + " ".join(f"{int(n[k]):5d}" for k in OFFSETS))
    print(
        f"before injection {before:.2f}, peak {peak:.2f}, half-way {half:.2f}: visible from minute 0 "
        f"for {length} minutes (offsets at or above half-way: {visible})"
    )
