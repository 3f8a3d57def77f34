"""Causal rolling-statistics features per KPI (the seed study's Phase-1 features).

Every feature at timestep t uses only rows <= t (trailing windows), so no future value can
leak into a per-timestep prediction; a test shifts the future and checks this.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STATS = ("mean", "std", "min", "max", "slope")


def rolling_features(values: np.ndarray, windows: list[int], stats: tuple[str, ...] = STATS,
                     names: list[str] | None = None) -> pd.DataFrame:  # fmt: skip
    """(timesteps, channels) -> (timesteps, channels x windows x stats) trailing statistics."""
    df = pd.DataFrame(values, columns=names if names is not None else range(values.shape[1]))
    t = pd.Series(np.arange(len(df), dtype=np.float64))
    cols = {}
    for w in windows:
        roll = df.rolling(w, min_periods=1)
        parts = {}
        if "mean" in stats or "slope" in stats:
            parts["mean"] = roll.mean()
        if "std" in stats:
            parts["std"] = roll.std(ddof=0)
        if "min" in stats:
            parts["min"] = roll.min()
        if "max" in stats:
            parts["max"] = roll.max()
        if "slope" in stats:
            # least-squares slope over the trailing window: cov(t, x) / var(t)
            tm = t.rolling(w, min_periods=1).mean()
            cov = df.mul(t, axis=0).rolling(w, min_periods=1).mean().sub(parts["mean"].mul(tm, axis=0))
            var = t.pow(2).rolling(w, min_periods=1).mean() - tm**2
            parts["slope"] = cov.div(var.where(var > 0), axis=0)
        for stat in stats:
            for c in df.columns:
                cols[f"{c}|{stat}{w}"] = parts[stat][c].to_numpy()
    out = pd.DataFrame(cols)
    return out.fillna(0.0).astype(np.float32)


def split_features(split, windows: list[int], stats: tuple[str, ...] = STATS) -> pd.DataFrame:
    """:func:`rolling_features` of a Split, computed per segment so no trailing window reaches
    back across a time gap."""
    parts = [rolling_features(split.values[a:b], windows, stats, names=split.features) for a, b in split.segments]
    return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


def kpi_importance(feature_names: list[str], importances: np.ndarray, kpis: list[str]) -> np.ndarray:
    """Sum feature importances back onto their KPI ("<kpi>|<stat><window>")."""
    by_kpi = dict.fromkeys(kpis, 0.0)
    for name, imp in zip(feature_names, importances, strict=True):
        by_kpi[name.rsplit("|", 1)[0]] += float(imp)
    return np.array([by_kpi[k] for k in kpis])
