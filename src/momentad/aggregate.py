"""The answer across datasets (the study's ``aggregate`` stage).

Per budget (every ``budget.sizes`` entry and ``full``), from each dataset's ``result.json``:

- **Which row stands for a method.** Budget b means "at most b training windows of history": a
  method's candidates at b are its rows at every budget up to b (0 included: a method that needs
  no training is its budget-0 row at every b), and its full-split row where the series is too
  short for b (its b row did not run because the train split holds fewer than b windows, so the
  full split is all that history offers). With several candidates it takes the one with the
  highest validation VUS-PR where every candidate has one, else the one trained on the most
  data. At ``full`` a method without a full-split row takes its largest budget the same way.
  Nothing here reads test results to pick a row.
- **Ranks**: every method's test VUS-PR per dataset (datasets with labelled test anomalies whose
  every method has a row), mean rank, Friedman test with Nemenyi post-hoc and a
  critical-difference diagram (autorank, non-parametric mode).
- **MOMENT against the classic detectors**: per dataset its opponent is the classic detector with
  the highest validation VUS-PR there (where validation holds labelled events), else the one with
  the best mean test rank on the *other* datasets; the paired differences over datasets get a
  Wilcoxon signed-rank test (scipy), its matched-pairs rank-biserial effect size, a bootstrap 95%
  interval of the mean difference (``compare.bootstrap`` replicates) and win / tie / loss counts
  (tie: |difference| < 0.01). The verdict is the test's: better / worse when Wilcoxon's p < 0.05
  (in the direction of the median difference), else not distinguishable.
- **Per source (system)**: each method's mean VUS-PR on that system's datasets and its regret to
  the system's best, so a pooled mean never hides a loss on one system.
- Series without labelled test anomalies are judged by their false-alarm rate at the validation
  threshold, in a table of their own, never by VUS-PR.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from momentad.budgets import FULL, at_most, order
from momentad.errors import InputError

TIE = 0.01


def load_results(names: list[str], runs: Path) -> dict[str, dict[str, Any]]:
    """Every dataset's result; a missing or unreadable one is recorded as failed, not dropped."""
    out = {}
    for name in names:
        path = runs / name / "result.json"
        try:
            out[name] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            out[name] = {"dataset": name, "status": f"failed: {path} unreadable ({type(e).__name__}); run `dvc repro "
                                                    f"study/dvc.yaml:run@{name}`"}  # fmt: skip
    return out


def pick(rows: dict[str, dict[str, Any]], budget: str) -> tuple[str, dict[str, Any]] | None:
    """(budget, row) standing for one method at ``budget`` (module docstring), or None."""
    ok = {b: r for b, r in rows.items() if r.get("status") == "ok"}
    status = {b: r.get("status", "") for b, r in rows.items()}
    cands = {b: ok[b] for b in at_most(budget, list(ok), status)}
    if not cands:
        return None
    if len(cands) > 1 and all(r.get("val_vus_pr") is not None for r in cands.values()):
        b = max(cands, key=lambda k: (cands[k]["val_vus_pr"], order(k)))
    else:
        b = max(cands, key=order)
    return b, cands[b]


def foundation(results: dict[str, dict[str, Any]]) -> list[str]:
    """Methods whose weights come from a checkpoint (the foundation-model side)."""
    out = []
    for r in results.values():
        for m, rows in r.get("results", {}).items():
            if any(x.get("checkpoint") for x in rows.values() if x.get("status") == "ok") and m not in out:
                out.append(m)
    return out


def table(results: dict[str, dict[str, Any]], methods: list[str], budget: str, key: str = "vus_pr",
          labelled: bool = True) -> pd.DataFrame:  # fmt: skip
    """Datasets x methods: ``key`` of each method's row at ``budget`` (NaN where none)."""
    data = {}
    for name, r in results.items():
        if r.get("status") != "ok" or r.get("labelled") != labelled:
            continue
        row = {}
        for m in methods:
            got = pick(r["results"].get(m, {}), budget)
            row[m] = np.nan if got is None or got[1].get(key) is None else got[1][key]
        data[name] = row
    return pd.DataFrame.from_dict(data, orient="index", columns=methods)


MIN_RANKED = 5  # autorank's minimum of datasets for the Friedman / Nemenyi tests


def rank_stats(df: pd.DataFrame) -> dict[str, Any] | None:
    """Mean ranks (1 = best); with at least ``MIN_RANKED`` datasets also the Friedman p-value and
    the Nemenyi critical difference (autorank, non-parametric)."""
    if df.shape[0] < 1 or df.shape[1] < 2:
        return None
    meanrank = df.rank(axis=1, ascending=False).mean()
    out: dict[str, Any] = {"meanrank": {m: float(v) for m, v in meanrank.items()}, "datasets": int(df.shape[0]),
                           "result": None, "friedman_p": None, "cd": None, "test": None, "posthoc": None}  # fmt: skip
    if df.shape[0] < MIN_RANKED:
        return out
    from autorank import autorank

    with contextlib.redirect_stdout(io.StringIO()):  # autorank narrates its choice of tests
        res = autorank(df, alpha=0.05, verbose=False, order="descending", force_mode="nonparametric")
    out.update(result=res, friedman_p=float(res.pvalue), cd=None if res.cd is None else float(res.cd),
               test=res.omnibus, posthoc=res.posthoc)  # fmt: skip
    return out


def opponents(results: dict[str, dict[str, Any]], scores: pd.DataFrame, classics: list[str],
              budget: str) -> dict[str, tuple[str, str]]:  # fmt: skip
    """Per dataset: (opponent, how chosen) — best validation VUS-PR there, else best mean test
    rank on the other datasets."""
    ranks = scores[classics].rank(axis=1, ascending=False)
    out = {}
    for name in scores.index:
        vals = {}
        for m in classics:
            got = pick(results[name]["results"].get(m, {}), budget)
            vals[m] = None if got is None else got[1].get("val_vus_pr")
        if results[name].get("validation_labelled") and all(v is not None for v in vals.values()):
            out[name] = (max(classics, key=lambda m: (vals[m], -classics.index(m))), "validation VUS-PR")
        else:
            others = ranks.drop(index=name)
            mean = others.mean() if len(others) else ranks.loc[name] * 0
            out[name] = (min(classics, key=lambda m: (mean[m], classics.index(m))), "mean rank on the other datasets")
    return out


def head_to_head(diff: pd.Series, replicates: int, seed: int) -> dict[str, Any]:
    """Wilcoxon signed-rank over datasets, rank-biserial effect size, bootstrap interval of the
    mean difference, win / tie / loss."""
    d = diff.to_numpy(dtype=float)
    out: dict[str, Any] = {"datasets": int(d.size), "mean_difference": round(float(d.mean()), 6),
                           "median_difference": round(float(np.median(d)), 6),
                           "wins": int((d > TIE).sum()), "ties": int((np.abs(d) <= TIE).sum()),
                           "losses": int((d < -TIE).sum())}  # fmt: skip
    nonzero = d[d != 0]
    if nonzero.size >= 1:
        w = stats.wilcoxon(nonzero) if nonzero.size else None
        r = stats.rankdata(np.abs(nonzero))
        plus, minus = r[nonzero > 0].sum(), r[nonzero < 0].sum()
        out.update(wilcoxon_p=round(float(w.pvalue), 6), effect_size=round(float((plus - minus) / (plus + minus)), 4))
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (replicates, d.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    out.update(ci_low=round(float(lo), 6), ci_high=round(float(hi), 6), replicates=replicates)
    # the test decides; the interval says how large the difference is
    p = out.get("wilcoxon_p")
    sign = np.sign(np.median(d)) if d.size else 0
    out["verdict"] = (
        ("better" if sign > 0 else "worse") if p is not None and p < 0.05 and sign else "not distinguishable"
    )
    return out


def per_source(scores: pd.DataFrame, systems: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per system: each method's mean VUS-PR over its datasets, and its regret (the system's best
    mean minus its own)."""
    frame = scores.copy()
    frame.insert(0, "system", [systems[n] for n in frame.index])
    means = frame.groupby("system").mean(numeric_only=True)
    return means, means.rsub(means.max(axis=1), axis=0)


def answer(results: dict[str, dict[str, Any]], methods: list[str], budgets: list[int], seed: int,
           replicates: int, variants: list[str] = ()) -> dict[str, Any]:  # fmt: skip
    """Every statistic of the study, per budget. Ranks cover ``methods``; each foundation method
    (``variants`` included: MOMENT's recipes) meets the classic detectors head to head on the
    datasets where it ran."""
    fm = [m for m in foundation(results) if m in [*methods, *variants]]
    classics = [m for m in methods if m not in fm]
    out: dict[str, Any] = {"foundation": fm, "classic": classics, "budgets": {}}
    # budget 0: the methods that score without training (MOMENT zero-shot, the one-liners)
    for b in ["0", *map(str, budgets), FULL]:
        scores = table(results, [*methods, *[v for v in variants if v not in methods]], b)
        # a method missing on most datasets at this budget (could not run there) is left out of
        # the ranks rather than shrinking the datasets to the few where it ran
        keep = [m for m in methods if scores[m].notna().mean() >= 0.5] if len(scores) else []
        complete = scores[keep].dropna() if keep else scores.iloc[:0]
        entry: dict[str, Any] = {"methods": keep, "left_out": [m for m in methods if m not in keep],
                                 "datasets": list(complete.index), "scores": complete, "all_scores": scores,
                                 "foundation": {}}  # fmt: skip
        entry["ranks"] = rank_stats(complete)
        cl = [c for c in classics if c in keep]
        for m in fm:
            rows = scores[[m, *cl]].dropna() if cl else scores.iloc[:0]
            if len(rows) < 2:
                continue
            opp = opponents(results, rows, cl, b)
            diff = pd.Series({n: rows.loc[n, m] - rows.loc[n, o] for n, (o, _) in opp.items()})
            entry["foundation"][m] = {"method": m, "opponents": opp, "differences": diff,
                                      **head_to_head(diff, replicates, seed)}  # fmt: skip
        if fm and fm[0] in entry["foundation"]:
            entry["moment"] = entry["foundation"][fm[0]]
        out["budgets"][b] = entry
    return out


def false_alarms(results: dict[str, dict[str, Any]], methods: list[str], budgets: list[int]) -> pd.DataFrame:
    """Datasets without labelled test anomalies x methods: false-alarm rate at the largest budget
    each method ran (``full`` where it exists)."""
    return table(results, methods, FULL, key="false_alarm_rate", labelled=False)


def not_run(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """(dataset, method, budget, reason) of every budget that could not run, and failed datasets."""
    out = []
    for name, r in results.items():
        if r.get("status") != "ok":
            out.append((name, "(all)", "", r.get("status", "failed")))
            continue
        for m, s in (r.get("methods_status") or {}).items():
            if s.startswith(("failed", "skipped")):
                out.append((name, m, "(all)", s))
        for m, rows in r["results"].items():
            out += [(name, m, b, x["status"]) for b, x in rows.items() if x.get("status") != "ok"]
    return out


def require_results(results: dict[str, dict[str, Any]]) -> None:
    if not any(r.get("status") == "ok" and r.get("labelled") for r in results.values()):
        raise InputError("no dataset of the study has results with labelled test anomalies; see study/runs/*/"
                         "result.json")  # fmt: skip
