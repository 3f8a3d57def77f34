"""Gathering every method's metrics and scores into one comparison (the `compare` stage)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentad.errors import InputError

SCORE_COLUMNS = ("timestamp", "score", "label", "fault_type")


def read_metrics(folder: Path, budgets: list[int], methods: list[str]) -> list[dict[str, Any]]:
    """The metrics JSON of every method the params name: zero-shot, each fine-tune budget
    (``finetune.budgets``) and each baseline (``baselines.methods``). Files left over from
    other settings are ignored; a missing one is an error naming it."""
    paths = [folder / "zero_shot.json"]
    paths += [folder / "finetune" / f"{b}.json" for b in budgets]
    paths += [folder / "baselines" / f"{m}.json" for m in methods]
    docs = []
    for p in paths:
        if not p.is_file():
            raise InputError(f"{p}: metrics file not found; run `dvc repro` (or the stage that writes it) first")
        try:
            doc = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"{p}: not valid JSON ({e.msg}); re-run the stage that writes it") from None
        for key in ("method", "test", "runtime", "model"):
            if key not in doc:
                raise InputError(f"{p}: missing '{key}'; re-run the stage that writes it")
        docs.append(doc)
    return docs


def scores_path(doc: dict[str, Any], scores_dir: Path) -> Path:
    """Where a method's test scores live."""
    method = doc["method"]
    if method == "moment_zero_shot":
        return scores_dir / "zero_shot.parquet"
    if method.startswith("moment_lora_"):
        return scores_dir / f"finetune_{doc['budget']}.parquet"
    return scores_dir / f"{method}.parquet"


def read_scores(path: Path, reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """A scores table, checked against the contract (and against the other methods' rows)."""
    if not path.is_file():
        raise InputError(f"{path}: scores file not found; re-run the stage that writes it")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise InputError(f"{path}: not a readable Parquet file ({type(e).__name__}); re-run its stage") from None
    missing = [c for c in SCORE_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; re-run its stage")
    if not np.isfinite(df["score"].to_numpy(dtype=float)).all():
        raise InputError(f"{path}: column 'score' holds NaN or infinite values; re-run its stage")
    if reference is not None and (
        len(df) != len(reference) or (df["timestamp"].values != reference["timestamp"].values).any()
    ):
        raise InputError(f"{path}: rows differ from the other methods' test rows; re-run every stage on the same data")
    return df


def kind(doc: dict[str, Any]) -> str:
    m = doc["method"]
    return (
        "moment_zero_shot" if m == "moment_zero_shot" else "moment_lora" if m.startswith("moment_lora_") else "baseline"
    )


def weights(doc: dict[str, Any]) -> str:
    if kind(doc) == "baseline":
        return "trained from scratch"
    return "pretrained" if doc["model"].get("pretrained") else "random-init"


def table(docs: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per method, sorted by VUS-PR."""
    rows = []
    for d in docs:
        t, r = d["test"], d["runtime"]
        rows.append({
            "method": d["method"], "kind": kind(d), "weights": weights(d),
            "budget": d.get("budget", 0) if kind(d) != "baseline" else None,
            "vus_pr": t["vus_pr"], "vus_pr_std": d.get("test_std", {}).get("vus_pr"), "vus_roc": t["vus_roc"],
            "auc_pr": t["auc_pr"], "f1": t["f1_at_val_threshold"], "precision": t["precision_at_val_threshold"],
            "recall": t["recall_at_val_threshold"], "fit_s": r.get("fit_s"), "score_s": r.get("score_s"),
            "peak_rss_mb": r.get("peak_rss_mb"), "peak_gpu_mb": r.get("peak_gpu_mb"),
        })  # fmt: skip
    return pd.DataFrame(rows).sort_values("vus_pr", ascending=False, kind="stable").reset_index(drop=True)


def fault_recall_table(docs: list[dict[str, Any]], order: list[str]) -> pd.DataFrame:
    """Methods x fault types: share of test events detected at the validation threshold."""
    by = {d["method"]: d.get("fault_type_recall", {}) for d in docs}
    types = sorted({k for v in by.values() for k in v})
    return pd.DataFrame([[by[m].get(t, np.nan) for t in types] for m in order], index=order, columns=types)


def learning_curve(docs: list[dict[str, Any]]) -> pd.DataFrame:
    """x = budget (0 = zero-shot); MOMENT's points, and each baseline as a flat reference line."""
    moment = sorted((d for d in docs if kind(d) != "baseline"), key=lambda d: d.get("budget", 0))
    budgets = [d.get("budget", 0) for d in moment] or [0]
    rows = []
    for d in moment:
        rows.append({"budget": d.get("budget", 0), "series": "MOMENT", "vus_pr": d["test"]["vus_pr"],
                     "vus_pr_std": d.get("test_std", {}).get("vus_pr", 0.0),
                     "f1": d["test"]["f1_at_val_threshold"]})  # fmt: skip
    for d in docs:
        if kind(d) == "baseline":
            for b in budgets:
                rows.append({"budget": b, "series": d["method"], "vus_pr": d["test"]["vus_pr"], "vus_pr_std": 0.0,
                             "f1": d["test"]["f1_at_val_threshold"]})  # fmt: skip
    return pd.DataFrame(rows)


def summary(tab: pd.DataFrame) -> dict[str, Any]:
    """metrics/compare.json: flat keys that read well in `dvc metrics diff` / `dvc exp show`."""
    best = tab.iloc[0]
    moment = tab[tab["kind"] != "baseline"]
    base = tab[tab["kind"] == "baseline"]
    out: dict[str, Any] = {
        "best_method": best["method"],
        "best_vus_pr": round(float(best["vus_pr"]), 6),
        "moment_weights": moment["weights"].iloc[0] if len(moment) else None,
    }
    if len(moment):
        top = moment.iloc[0]
        out.update(best_moment=top["method"], best_moment_vus_pr=round(float(top["vus_pr"]), 6))
    if len(base):
        out.update(best_baseline=base.iloc[0]["method"], best_baseline_vus_pr=round(float(base.iloc[0]["vus_pr"]), 6))
    if len(moment) and len(base):
        out["moment_minus_best_baseline_vus_pr"] = round(float(moment.iloc[0]["vus_pr"] - base.iloc[0]["vus_pr"]), 6)
    out["vus_pr"] = {r.method: round(float(r.vus_pr), 6) for r in tab.itertuples()}
    out["f1_at_val_threshold"] = {r.method: round(float(r.f1), 6) for r in tab.itertuples()}
    return out


def learning_curve_wide(curve: pd.DataFrame) -> pd.DataFrame:
    """The DVC-plot form: one row per budget, MOMENT and the best baseline side by side."""
    m = curve[curve["series"] == "MOMENT"].set_index("budget")
    base = curve[curve["series"] != "MOMENT"]
    out = pd.DataFrame({"budget": m.index, "moment_vus_pr": m["vus_pr"].values,
                        "moment_vus_pr_std": m["vus_pr_std"].values, "moment_f1": m["f1"].values})  # fmt: skip
    if len(base):
        best = base.groupby("series")["vus_pr"].max().idxmax()
        b = base[base["series"] == best].iloc[0]
        out["best_baseline_vus_pr"] = b["vus_pr"]
        out["best_baseline_f1"] = b["f1"]
    return out
