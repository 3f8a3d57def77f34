"""Gathering every method's results into one comparison (the `compare` stage).

Rows are (method, budget) pairs, ``<method>_<budget>``. A budget is ``0`` (no training), a
``budget.sizes`` entry, or ``full``. The question is asked per budget b, "at most b training
windows": the foundation model's row usable at b (a method whose weights come from a checkpoint)
against the classic detectors' row usable at b. A method's rows usable at b are its rows up to b
(budget 0 included, so a method that needs no training competes at every budget) and its full
split where the train split holds fewer than b windows. Both rows are picked on validation,
never on test; where validation holds no labelled anomaly the foundation model is compared with
every detector at once, Holm-corrected.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import precision_recall_curve

from momentad.budgets import FULL, at_most, order
from momentad.errors import InputError
from momentad.layout import Layout, read_details
from momentad.rca import baro_event_scores, fault_events, localise
from momentad.results import BudgetResult, weights_label

SCORE_COLUMNS = ("timestamp", "score", "label", "fault_type")
FOUNDATION, CLASSIC = "foundation model", "classic"


def read_rows(layout: Layout, methods: list[str]) -> tuple[list[BudgetResult], list[BudgetResult]]:
    """(ran, not run): one row per (method, budget) of the methods params.yaml names; files left
    over from other settings are ignored, a missing one is an error naming the stage to run."""
    ran, not_run = [], []
    for method in methods:
        for row in read_details(layout, method).rows():
            (ran if row.ok else not_run).append(row)
    if not ran:
        raise InputError("no method ran on this data (every budget says `not run`); see reports/methods/*.json")
    return ran, not_run


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
    score_cols = ["score", *draw_columns(df).values()]
    if not np.isfinite(df[score_cols].to_numpy(dtype=float)).all():
        raise InputError(f"{path}: a score column holds NaN or infinite values; re-run its stage")
    if reference is not None and (
        len(df) != len(reference) or (df["timestamp"].values != reference["timestamp"].values).any()
    ):
        raise InputError(f"{path}: rows differ from the other methods' test rows; re-run every stage on the same data")
    return df


def draw_columns(frame: pd.DataFrame) -> dict[int, str]:
    """{draw: its ``score_<draw>`` column}, in draw order."""
    draws = {int(c[6:]): c for c in frame.columns if c.startswith("score_") and c[6:].isdigit()}
    return dict(sorted(draws.items()))


def read_all_scores(layout: Layout, rows: list[BudgetResult]) -> dict[str, pd.DataFrame]:
    frames: dict[str, pd.DataFrame] = {}
    reference = None
    for r in rows:
        frames[r.id] = read_scores(layout.scores(r.method, r.budget), reference)
        reference = frames[r.id] if reference is None else reference
    return frames


def table(rows: list[BudgetResult]) -> pd.DataFrame:
    """One row per (method, budget), sorted by mean test VUS-PR."""
    out = []
    for r in rows:
        t = r.test
        per = r.get("per_draw", [])
        out.append({
            "id": r.id, "method": r.method, "side": FOUNDATION if r.foundation else CLASSIC, "origin": r.origin,
            "weights": weights_label(r.model, r.trains), "budget": r.budget, "draws": r.draws,
            "train_windows": int(np.mean([p["train_windows"] for p in per])) if per else 0,
            "vus_pr": t.get("vus_pr", np.nan), "vus_pr_std": r.get("test_std", {}).get("vus_pr", 0.0),
            "val_vus_pr": r.get("val_vus_pr"), "vus_roc": t.get("vus_roc", np.nan), "auc_pr": t.get("auc_pr", np.nan),
            "f1": t.get("f1_at_val_threshold", np.nan), "precision": t.get("precision_at_val_threshold", np.nan),
            "recall": t.get("recall_at_val_threshold", np.nan), "false_alarm_rate": t.get("false_alarm_rate", np.nan),
            "uses_labels": r.uses_labels,
        })  # fmt: skip
    tab = pd.DataFrame(out)
    if tab["vus_pr"].notna().any():
        return tab.sort_values("vus_pr", ascending=False, kind="stable").reset_index(drop=True)
    # no labelled anomaly in test: the fewest false alarms first
    return tab.sort_values("false_alarm_rate", kind="stable").reset_index(drop=True)


def labelled(tab: pd.DataFrame) -> bool:
    """Whether the test split held labelled anomalies (VUS-PR exists), else false-alarm rates."""
    return bool(tab["vus_pr"].notna().any())


def best_per_method(tab: pd.DataFrame) -> list[str]:
    """Each method's best row (by mean test VUS-PR), best first: for descriptive tables only."""
    return list(tab.drop_duplicates("method")["id"])


def fault_recall_table(rows: list[BudgetResult], order: list[str]) -> pd.DataFrame:
    """Rows x fault types: share of test events detected at the validation threshold."""
    by = {r.id: r.get("fault_type_recall", {}) for r in rows}
    types = sorted({k for v in by.values() for k in v})
    return pd.DataFrame([[by[m].get(t, np.nan) for t in types] for m in order], index=order, columns=types)


def learning_curve(tab: pd.DataFrame, budgets: list[int]) -> pd.DataFrame:
    """Long form, one row per (method, budget): x = training windows (``full`` = every train
    window, at the right); a method that needs no training is drawn at every budget."""
    full_windows = tab.loc[tab["budget"] == FULL, "train_windows"]
    x_full = int(full_windows.max()) if len(full_windows) else None
    trains = set(tab.loc[tab["budget"] != "0", "method"])
    out = []
    for r in tab.itertuples():
        series = f"{r.method} ({r.weights})" if r.side == FOUNDATION else r.method
        if r.budget == "0":  # no training: a flat line over every budget (its own series if the method trains)
            xs = [(str(b), b) for b in budgets] + ([(FULL, x_full)] if x_full else [])
            if r.method in trains:
                series = f"{r.method} (zero-shot, {r.weights})" if r.side == FOUNDATION else f"{r.method} (zero-shot)"
        elif r.budget == FULL:
            xs = [(FULL, x_full)]
        else:
            xs = [(r.budget, int(r.budget))]
        for label, x in xs:
            out.append({"method": series, "side": r.side, "weights": r.weights, "budget": label, "train_windows": x,
                        "vus_pr": r.vus_pr, "vus_pr_std": r.vus_pr_std or 0.0, "draws": r.draws})  # fmt: skip
    return pd.DataFrame(out).sort_values(["method", "train_windows"], kind="stable").reset_index(drop=True)


def _draw_scores(frame: pd.DataFrame) -> dict[int, np.ndarray]:
    """{draw: test scores} (draw 0 only for single-draw rows)."""
    cols = draw_columns(frame) or {0: "score"}
    return {k: frame[c].to_numpy(dtype=np.float64) for k, c in cols.items()}


def _paired(a: dict[int, Any], b: dict[int, Any]) -> tuple[dict[int, Any], dict[int, Any]]:
    """The draws both sides ran (draw k of two methods trained on the same rows); a single-draw
    side (budget 0, no training) pairs with every draw of the other."""
    if len(a) == 1 and len(b) > 1:
        a = {k: next(iter(a.values())) for k in b}
    if len(b) == 1 and len(a) > 1:
        b = {k: next(iter(b.values())) for k in a}
    common = sorted(set(a) & set(b))
    return {k: a[k] for k in common}, {k: b[k] for k in common}


def _contest(frames, window, a: str, b: str, replicates: int, seed: int, resamplers: dict) -> dict[str, Any]:
    """Paired bootstrap of row ``a`` against row ``b`` on the test series; rows compared on the
    same series with the same number of draws share one resampling (their replicate values are
    computed once)."""
    from momentad.stats import Resampler

    sa, sb = _paired(_draw_scores(frames[a]), _draw_scores(frames[b]))
    k = len(sa)
    if k not in resamplers:
        resamplers[k] = Resampler(frames[a]["label"].to_numpy(), window, replicates, seed, k)
    return resamplers[k].compare(np.stack(list(sa.values())), np.stack(list(sb.values())))


def verdicts(tab: pd.DataFrame, rows: list[dict[str, Any]], frames: dict[str, pd.DataFrame], budgets: list[int],
             seed: int = 0, replicates: int = 2000,
             not_run: list[dict[str, Any]] = ()) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Per budget b (0, each ``budget.sizes`` entry and ``full``): the foundation model's row usable
    with at most b training windows minus the classic detectors' row usable with them, in mean
    test VUS-PR over draws, with a 95% interval from a paired bootstrap over test events and
    draws, and a verdict word. A method's rows usable at b are those of :func:`budgets.at_most`
    (its rows up to b, and its full split where the train split is shorter than b), as in the
    study's aggregate. At 0 (zero-shot) only rows without training stand: MOMENT zero-shot
    against the one-liners; a budget no classic row stands at has no verdict.

    Both rows are chosen by validation VUS-PR (no verdict picks its opponent on test). Where
    validation holds no labelled anomaly the foundation row trained on the most windows (of
    several MOMENT recipes, the first in params.yaml's ``methods``: nothing test-free ranks them)
    is compared with every classic row at the budget, and the verdict uses Holm-adjusted bootstrap
    p-values: worse if it is significantly worse than any of them, better if significantly
    better than all. ``not_run``: compare's not-run rows (their reasons say which budgets the
    train split is too short for)."""
    from momentad.stats import holm, verdict, verdict_against_all

    by = {r.id: r for r in rows}
    out: dict[str, dict[str, Any]] = {}
    resamplers: dict = {}
    if not labelled(tab):
        return out  # nothing to bootstrap: the report gives false-alarm rates
    ran = tab.groupby("method", sort=False)["budget"].agg(list).to_dict()
    listed = {r.id: i for i, r in enumerate(rows)}  # read_rows keeps params.yaml's order of methods
    status: dict[str, dict[str, str]] = {}
    for r in not_run:
        status.setdefault(r.method, {})[r.budget] = r.status
    for b in ["0", *map(str, budgets), FULL]:
        usable = {m: at_most(b, ran[m], status.get(m, {})) for m in ran}
        at_b = tab[[bud in usable[m] for m, bud in zip(tab["method"], tab["budget"], strict=True)]]
        fm = at_b[at_b["side"] == FOUNDATION]
        base = at_b[at_b["side"] == CLASSIC]
        if base.empty or fm.empty:
            continue
        window = int(by[fm.iloc[0]["id"]].get("sliding_window"))
        if fm["val_vus_pr"].notna().all() and base["val_vus_pr"].notna().all():
            m = fm.sort_values("val_vus_pr", ascending=False, kind="stable").iloc[0]["id"]
            best = base.sort_values("val_vus_pr", ascending=False, kind="stable").iloc[0]["id"]
            boot = _contest(frames, window, m, best, replicates, seed, resamplers)
            out[b] = {"moment": m, "best_baseline": best, "chosen_by": "validation VUS-PR",
                      "moment_minus_best_baseline": round(boot["diff"], 6), "ci_low": round(boot["ci_low"], 6),
                      "ci_high": round(boot["ci_high"], 6), "p_value": round(boot["p_value"], 6),
                      "verdict": verdict(boot["ci_low"], boot["ci_high"]), "interval": boot["method"]}  # fmt: skip
            continue
        # no labelled validation anomaly: the row trained at this budget (else budget 0), against every detector
        pool = fm[fm["budget"] != "0"] if (fm["budget"] != "0").any() else fm
        most = pool["budget"].map(order).max()
        m = min(pool.loc[pool["budget"].map(order) == most, "id"], key=listed.__getitem__)
        contests = {o: _contest(frames, window, m, o, replicates, seed, resamplers) for o in base["id"]}
        adjusted = dict(zip(contests, holm([c["p_value"] for c in contests.values()]), strict=True))
        names = list(contests)
        word, w_i, b_i = verdict_against_all([c["diff"] for c in contests.values()], [adjusted[o] for o in names])
        worse, better = [names[i] for i in w_i], [names[i] for i in b_i]
        top = base.iloc[0]["id"]  # the strongest on test, for the reported difference only
        c = contests[top]
        out[b] = {"moment": m, "best_baseline": top, "chosen_by": "every detector, Holm-corrected",
                  "moment_minus_best_baseline": round(c["diff"], 6), "ci_low": round(c["ci_low"], 6),
                  "ci_high": round(c["ci_high"], 6), "p_value": round(adjusted[top], 6), "verdict": word,
                  "worse_than": worse, "better_than": better, "compared_with": len(contests),
                  "interval": c["method"]}  # fmt: skip
    return out


def summary(tab: pd.DataFrame, verdict: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two metrics files of `dvc metrics show` / `dvc exp show`: ``metrics/compare.json``, the
    headline (the answer per budget, the best row and its VUS-PR, whether the foundation model's
    weights' origin), and ``metrics/scores.json`` (MOMENT's difference per budget, each
    method's best test VUS-PR, or its lowest false-alarm rate on a series without anomalies)."""
    fm = tab[tab["side"] == FOUNDATION]
    head: dict[str, Any] = {"answer": {b: v["verdict"] for b, v in verdict.items()}, "best": tab.iloc[0]["id"]}
    scores: dict[str, Any] = {"difference": {b: v["moment_minus_best_baseline"] for b, v in verdict.items()}}
    if labelled(tab):
        head["best_vus_pr"] = round(float(tab.iloc[0]["vus_pr"]), 4)
        scores["vus_pr"] = {m: round(float(g["vus_pr"].max()), 4) for m, g in tab.groupby("method", sort=False)}
    else:
        scores["false_alarm_rate"] = {m: round(float(g["false_alarm_rate"].min()), 4)
                                      for m, g in tab.groupby("method", sort=False)}  # fmt: skip
    if len(fm):
        head["weights"] = foundation_weights(tab)
        # its own key: dvc exp show flattens every metrics file into one namespace
        scores["moment_weights"] = head["weights"]
    return head, scores


def foundation_weights(tab: pd.DataFrame) -> str:
    """The foundation model's weights in words (:func:`momentad.results.weights_label`), as every
    headline, table and legend says them."""
    fm = tab.loc[tab["side"] == FOUNDATION, "weights"]
    return " / ".join(dict.fromkeys(fm)) if len(fm) else "no foundation model"


def details(tab: pd.DataFrame, verdict: dict[str, dict[str, Any]], root_cause: list[dict[str, Any]]) -> dict:
    """reports/compare.json: every row's VUS-PR by budget, every verdict with its interval and
    root-cause accuracy (outside `dvc exp show`, in git)."""
    key = "vus_pr" if labelled(tab) else "false_alarm_rate"
    vp: dict[str, dict[str, float]] = {}
    for r in tab.itertuples():
        vp.setdefault(r.method, {})[r.budget] = round(float(getattr(r, key)), 6)
    return {key: vp, "verdict": verdict,
            "root_cause": {r["method"]: {"ac1": r["ac1"], "ac3": r["ac3"]} for r in root_cause}}  # fmt: skip


def _label(r) -> str:
    """A row's legend name: the method, and for the foundation model whether its weights were
    pretrained (RANDOM-INIT in capitals otherwise)."""
    return f"{r['method']} ({r['weights']})" if r["side"] == FOUNDATION else r["method"]


def pr_curves(tab: pd.DataFrame, frames: dict[str, pd.DataFrame], ids: list[str],
              points: int = 400) -> dict[str, tuple]:  # fmt: skip
    """Test precision-recall curves of the rows ``ids`` (each method's best row), thinned to
    about ``points`` points, named by method (the foundation model with its weights) and budget;
    none where the test split holds no labelled anomaly."""
    curves = {}
    rows = tab.set_index("id")
    for i in ids:
        r, f = rows.loc[i], frames[i]
        if not f["label"].any():
            continue
        p, rec, _ = precision_recall_curve(f["label"], f["score"])
        step = max(1, len(p) // points)
        b = r["budget"]
        said = "zero-shot" if b == "0" else "full split" if b == FULL else f"{b} windows"
        curves[f"{_label(r)}, {said}"] = (p[::step], rec[::step])
    return curves


def timeline_rows(tab: pd.DataFrame) -> list[str]:
    """The best row, the foundation model's best row and its budget-0 row: the rows worth a
    timeline."""
    shown = [tab.iloc[0]["id"]]
    fm = tab[tab["side"] == FOUNDATION]
    shown += [r for r in fm["id"] if r not in shown][:1]
    shown += [r for r in fm.loc[fm["budget"] == "0", "id"] if r not in shown][:1]
    return shown


def baro_reference(processed: Path) -> dict[str, Any] | None:
    """BARO's ranking of the test fault events (:mod:`momentad.rca`), or None without root causes."""
    schema_path, test_path = processed / "schema.json", processed / "test.parquet"
    if not schema_path.is_file() or not test_path.is_file():
        raise InputError(f"{processed}: schema.json / test.parquet not found; run `dvc repro preprocess`")
    features = json.loads(schema_path.read_text())["features"]
    frame = pd.read_parquet(test_path)
    events = fault_events(frame)
    if not events:
        return None
    scores = baro_event_scores(frame[features].to_numpy(dtype=np.float64), frame["label"].to_numpy(), events)
    return {"status": "ok", **localise(events, scores, features)}


def root_cause_rows(rows: list[dict[str, Any]], order: list[str], baro: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per id in ``order`` (each method's best row) whose ranking ran, then BARO."""
    by = {r.id: r for r in rows}
    out = []
    for m in order:
        rc = by[m].get("root_cause") or {}
        if rc.get("status") != "ok":
            continue
        out.append({"method": m, "weights": weights_label(by[m].model, by[m].trains), **rc})
    if baro:
        out.append({"method": "baro (reference)", "weights": "statistics, no training", **baro})
    return out


def run_compare(cfg: Any, layout: Layout, plots: bool = True, answer: bool = True) -> dict[str, Any]:
    """The whole `compare` stage on one project folder: report, headline and details JSON, and
    (``plots``) the PNGs and plot data. Returns the headline summary with the verdicts. Without
    ``answer`` no per-dataset verdict is bootstrapped (the study answers across datasets)."""
    from momentad.io import atomic_file, write_json
    from momentad.report import render_report

    rows, not_run = read_rows(layout, cfg.methods)
    frames = read_all_scores(layout, rows)
    tab = table(rows)
    best = best_per_method(tab)
    recall = fault_recall_table(rows, best)
    verdict = verdicts(tab, rows, frames, cfg.budget.sizes, seed=cfg.seed, replicates=cfg.compare.bootstrap,
                       not_run=not_run) if answer else {}  # fmt: skip
    rca = root_cause_rows(rows, best, baro_reference(layout.processed))
    if plots:
        draw_plots(
            layout, tab, rows, frames, recall, rca, learning_curve(tab, cfg.budget.sizes), verdict, cfg.budget.sizes
        )
    summ, scores = summary(tab, verdict)
    with atomic_file(layout.compare_metrics) as tmp:
        write_json(tmp, summ)
    with atomic_file(layout.scores_metrics) as tmp:
        write_json(tmp, scores)
    with atomic_file(layout.compare_details) as tmp:
        write_json(tmp, details(tab, verdict, rca))
    with atomic_file(layout.report) as tmp:
        tmp.write_text(render_report(tab, recall, rows, verdict, not_run, rca))
    return {**summ, "rows": len(tab), "not_run": len(not_run), "verdict": verdict, "weights": foundation_weights(tab)}


def draw_plots(layout: Layout, tab, rows, frames, recall, rca, curve, verdict, budgets) -> None:
    """plots/compare/: the learning curve (CSV + PNG), PR curves per budget, the verdict per
    budget, recall heatmap, timeline and root-cause ranks."""
    from momentad.io import atomic_file
    from momentad.plots import (
        heatmap_png,
        learning_curve_png,
        pr_curves_png,
        root_cause_rank_png,
        timeline_png,
        verdict_png,
    )

    out = layout.compare_plots
    with atomic_file(out / "learning_curve.csv") as tmp:
        curve.round(6).to_csv(tmp, index=False)
    learning_curve_png(curve, out / "learning_curve.png")
    labels = {r.id: _label(tab.loc[i]) for i, r in zip(tab.index, tab.itertuples(), strict=True)}
    counts = next((r.get("fault_type_events") for r in rows if r.get("fault_type_events")), {}) or {}
    # recall per fault type rewards a method that flags everything: its alarms' precision beside it
    precision = tab.set_index("id")["precision"].reindex(recall.index).to_numpy(dtype=float)
    shown = recall.rename(columns=lambda t: f"{t} (n={counts[t]})" if t in counts else t)
    shown["precision of the alarms"] = precision
    heatmap_png(shown.rename(index=labels), out / "fault_type_recall.png",
                "Share of test fault events detected at the validation threshold, and the precision of those "
                "alarms (each method's best row)", split_last=True)  # fmt: skip
    pr_curves_png(pr_curves(tab, frames, best_per_method(tab)),
                  {_label(r) for _, r in tab.iterrows() if r["side"] == FOUNDATION}, out / "pr_curves.png")  # fmt: skip
    verdict_png(verdict, foundation_weights(tab), out / "verdict.png")
    by = {r.id: r for r in rows}
    series = {f"{labels[m]}\n{m.rsplit('_', 1)[-1]}": (frames[m]["score"].to_numpy(), by[m].get("threshold")["value"])
              for m in timeline_rows(tab)}  # fmt: skip
    timeline_png(frames[tab.iloc[0]["id"]], series, out / "timeline.png",
                 "Test period: best row and MOMENT, first draw")  # fmt: skip
    if rca:
        ranks = {r["method"]: [e["rank"] for e in r["events_ranked"]] for r in rca}
        types = [e["fault_type"] for e in rca[0]["events_ranked"]]
        root_cause_rank_png(
            ranks,
            types,
            out / "root_cause_rank.png",
            "Rank of the true root-cause service per "
            "test fault event (first draw of each method's best row; BARO = statistical reference)",
        )
    else:  # the stage declares the plot: say why it is empty
        root_cause_rank_png({}, [], out / "root_cause_rank.png", "No test fault event names its root cause")
