"""The answer across datasets (the study's ``aggregate`` stage).

Per budget (0, every ``budget.sizes`` entry and ``full``), from each dataset's ``result.json``:

- **Which row stands for a method** (:func:`pick`): budget b is "at most b training windows of
  history", for every method alike: its rows up to b (0 included), plus its full-split row where
  the series is too short for b; at ``full`` every row it has. Of several, the one with the
  highest validation VUS-PR where each has one, else the one trained on the most data. Nothing
  here reads test results to pick a row.
- **Contests** (:func:`contests`): each foundation-model variant against the label-free classic
  detectors (the primary contest: methods that read no training labels), against the methods
  that do (a separate, named contest), and pretrained against random-init weights and adapted
  against not (paired over the datasets where both ran). A variant's opponent on a dataset is the
  classic detector with the best validation VUS-PR there (where validation holds labelled
  events), else the one with the best mean rank on the *other* datasets.
- **Statistics**: per contest the mean difference over datasets with a 95 % interval from a
  hierarchical bootstrap (systems, then datasets within them), the Wilcoxon signed-rank p,
  rank-biserial effect, wins / ties / losses (tie: |difference| < 0.01) and n; Holm's correction
  runs over every test the report makes; the verdict follows the corrected Wilcoxon test.
- **Ranks**: every method's mean rank over the datasets where it ran (n per cell); Friedman and
  Nemenyi on the datasets where every ranked method ran (the complete blocks), naming what that
  subset leaves out.
- **Per system**: each contest's mean difference per system, beside the pooled one.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentad.budgets import FULL, at_most, order
from momentad.errors import InputError
from momentad.layout import Layout
from momentad.stats import cluster_bootstrap, holm, verdict_over_datasets, wilcoxon

TIE = 0.01
MIN_RANKED = 5  # autorank's minimum of datasets for the Friedman / Nemenyi tests


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


@dataclass
class Roles:
    """Which methods play which part: the foundation-model variants (weights from a checkpoint),
    the label-free classic detectors and the classic detectors that read training labels."""

    foundation: list[str]
    label_free: list[str]
    supervised: list[str]

    @property
    def classic(self) -> list[str]:
        return [*self.label_free, *self.supervised]


def roles(results: dict[str, dict[str, Any]], methods: list[str]) -> Roles:
    """Roles from what the datasets' results record (a checkpoint; uses_labels)."""
    fm, sup = set(), set()
    for r in results.values():
        for m, rows in r.get("results", {}).items():
            if any(x.get("checkpoint") for x in rows.values() if x.get("status") == "ok"):
                fm.add(m)
        sup |= {m for m, used in (r.get("uses_labels") or {}).items() if used}
    return Roles([m for m in methods if m in fm], [m for m in methods if m not in fm and m not in sup],
                 [m for m in methods if m not in fm and m in sup])  # fmt: skip


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


def rank_stats(scores: pd.DataFrame) -> dict[str, Any]:
    """Mean ranks over every dataset where a method ran (ranked among the methods that ran there;
    n per method), then Friedman + Nemenyi on the complete blocks (autorank, non-parametric)."""
    ranks = scores.rank(axis=1, ascending=False)
    out: dict[str, Any] = {"meanrank": {m: float(v) for m, v in ranks.mean().items() if np.isfinite(v)},
                           "n": {m: int(v) for m, v in ranks.notna().sum().items()}, "complete": [],
                           "left_out": {}, "result": None, "friedman_p": None, "cd": None}  # fmt: skip
    complete = scores.dropna()
    out["complete"] = list(complete.index)
    out["left_out"] = {n: [m for m in scores.columns if pd.isna(scores.loc[n, m])] for n in scores.index
                       if n not in complete.index}  # fmt: skip
    if len(complete) >= MIN_RANKED and complete.shape[1] >= 2:
        from autorank import autorank

        with contextlib.redirect_stdout(io.StringIO()):  # autorank narrates its choice of tests
            res = autorank(complete, alpha=0.05, verbose=False, order="descending", force_mode="nonparametric")
        out.update(
            result=res,
            friedman_p=float(res.pvalue),
            cd=None if res.cd is None else float(res.cd),
            complete_meanrank={m: float(v) for m, v in complete.rank(axis=1, ascending=False).mean().items()},
        )
    return out


def opponents(results: dict[str, dict[str, Any]], scores: pd.DataFrame, pool: list[str],
              budget: str) -> dict[str, tuple[str, str]]:  # fmt: skip
    """Per dataset: (opponent, how chosen) among ``pool`` — the best validation VUS-PR there, else
    the best mean test rank on the other datasets (never this dataset's test)."""
    ranks = scores[pool].rank(axis=1, ascending=False)
    out = {}
    for name in scores.index:
        present = [m for m in pool if pd.notna(scores.loc[name, m])]
        if not present:
            continue
        vals = {}
        for m in present:
            got = pick(results[name]["results"].get(m, {}), budget)
            vals[m] = None if got is None else got[1].get("val_vus_pr")
        if results[name].get("validation_labelled") and all(v is not None for v in vals.values()):
            out[name] = (max(present, key=lambda m: (vals[m], -pool.index(m))), "validation VUS-PR")
        else:
            mean = ranks.drop(index=name).mean()
            out[name] = (min(present, key=lambda m: (mean.get(m, np.inf) if pd.notna(mean.get(m)) else np.inf,
                                                      pool.index(m))), "mean rank on the other datasets")  # fmt: skip
    return out


@dataclass
class Contest:
    """One paired comparison over datasets at one budget."""

    name: str  # e.g. "moment vs label-free classics"
    budget: str
    method: str
    against: str  # a method, or the pool the opponent is picked from
    differences: pd.Series  # per dataset
    systems: list[str]
    opponents: dict[str, tuple[str, str]] = field(default_factory=dict)
    p: float | None = None
    effect: float | None = None
    p_holm: float | None = None
    ci: tuple[float, float] = (np.nan, np.nan)

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def mean(self) -> float:
        return float(self.differences.mean()) if self.n else np.nan

    @property
    def wtl(self) -> tuple[int, int, int]:
        d = self.differences.to_numpy()
        return int((d > TIE).sum()), int((np.abs(d) <= TIE).sum()), int((d < -TIE).sum())

    @property
    def verdict(self) -> str:
        return verdict_over_datasets(self.p_holm, float(np.median(self.differences))) if self.n else "no data"

    def summary(self) -> dict[str, Any]:
        w, t, lo = self.wtl
        return {"contest": self.name, "budget": self.budget, "method": self.method, "against": self.against,
                "n": self.n, "mean_difference": _r(self.mean), "ci_low": _r(self.ci[0]), "ci_high": _r(self.ci[1]),
                "wilcoxon_p": _r(self.p), "holm_p": _r(self.p_holm), "effect_size": _r(self.effect, 4),
                "wins": w, "ties": t, "losses": lo, "verdict": self.verdict,
                "per_dataset": {k: _r(v) for k, v in self.differences.items()},
                "opponents": {k: v[0] for k, v in self.opponents.items()}}  # fmt: skip


def _r(v: Any, d: int = 6) -> Any:
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else round(float(v), d)


def contests(results: dict[str, dict[str, Any]], ro: Roles, budgets: list[str], systems: dict[str, str],
             replicates: int, seed: int) -> list[Contest]:  # fmt: skip
    """Every contest the report makes, each with its statistics; Holm over all of them."""
    out: list[Contest] = []
    everyone = [*ro.foundation, *ro.classic]
    for b in budgets:
        scores = table(results, everyone, b)
        for v in ro.foundation:
            for name, pool in (("vs label-free classics", ro.label_free), ("vs supervised classics", ro.supervised)):
                if not pool:
                    continue
                have = scores[scores[v].notna()]
                opp = opponents(results, have, pool, b)
                diff = pd.Series({n: have.loc[n, v] - have.loc[n, o] for n, (o, _) in opp.items()}, dtype=float)
                label = "label-free classic detectors" if pool is ro.label_free else "supervised classic detectors"
                out.append(Contest(f"{v} {name}", b, v, label, diff, [systems[n] for n in diff.index], opp))
        pairs = [(m, f"{m}-random-init", "pretrained vs random-init") for m in ro.foundation
                 if f"{m}-random-init" in ro.foundation]  # fmt: skip
        pairs += [(f"{m}-adapted", m, "adapted vs not") for m in ro.foundation if f"{m}-adapted" in ro.foundation]
        for a, c, name in pairs:
            both = scores[[a, c]].dropna()
            diff = both[a] - both[c]
            out.append(Contest(f"{a} {name}", b, a, c, diff, [systems[n] for n in diff.index]))
    for k, c in enumerate(out):
        if c.n:
            c.p, c.effect = wilcoxon(c.differences.to_numpy())
            c.ci = cluster_bootstrap(c.differences.to_numpy(), c.systems, replicates, seed + k)
    tested = [c for c in out if c.p is not None]
    for c, p in zip(tested, holm([c.p for c in tested]), strict=True):
        c.p_holm = p
    return out


def per_system(contest: Contest) -> pd.DataFrame:
    """A contest's mean difference and W/T/L per system (the pooled row is the contest itself)."""
    frame = pd.DataFrame({"system": contest.systems, "d": contest.differences.to_numpy()})
    g = frame.groupby("system")["d"]
    return pd.DataFrame({"datasets": g.size(), "mean_difference": g.mean(), "wins": g.apply(lambda d: (d > TIE).sum()),
                         "losses": g.apply(lambda d: (d < -TIE).sum())})  # fmt: skip


def answer(results: dict[str, dict[str, Any]], methods: list[str], budgets: list[int], systems: dict[str, str],
           seed: int, replicates: int) -> dict[str, Any]:  # fmt: skip
    """Every statistic of the study: roles, contests (Holm over all), ranks per budget."""
    ro = roles(results, methods)
    bs = ["0", *map(str, budgets), FULL]
    every = contests(results, ro, bs, systems, replicates, seed)
    out: dict[str, Any] = {"roles": ro, "budgets": bs, "contests": every, "ranks": {}, "scores": {}}
    for b in bs:
        scores = table(results, [*ro.foundation, *ro.classic], b)
        # budget 0: only what scores without training (zero-shot variants, the one-liners)
        ran = [m for m in scores.columns if scores[m].notna().any()]
        out["scores"][b] = scores[ran]
        out["ranks"][b] = rank_stats(scores[ran]) if len(scores) and len(ran) >= 2 else None
    return out


def reconstruction_errors(runs: Path, results: dict[str, dict[str, Any]], pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """Datasets x methods: each MOMENT variant's zero-shot reconstruction error on the test
    split's normal steps (label 0): the mean of its budget-0 scores, which are MOMENT's per-step
    squared reconstruction error where ``zero_shot.score: reconstruction``. Every readable
    dataset counts, labelled or not (no label is needed to ask which weights reconstruct better).
    ``pairs``: (pretrained, random-init) variants; NaN where a variant has no budget-0 scores."""
    data = {}
    for name, r in results.items():
        if r.get("status") != "ok":
            continue
        row = {}
        for m in dict.fromkeys(x for pair in pairs for x in pair):
            path = Layout(runs / name).scores(m, "0")
            ok = (r.get("results", {}).get(m, {}).get("0") or {}).get("status") == "ok"
            if not ok or not path.is_file():
                row[m] = np.nan
                continue
            f = pd.read_parquet(path, columns=["score", "label"])
            row[m] = float(f.loc[f["label"] == 0, "score"].mean())
        data[name] = row
    return pd.DataFrame.from_dict(data, orient="index")


def reconstruction_pairs(ro: Roles, options: dict[str, Any], variants: dict[str, Any]) -> list[tuple[str, str]]:
    """(pretrained, random-init) variant pairs whose budget-0 scores are MOMENT's plain
    reconstruction error (``zero_shot.score: reconstruction``, which neither variant overrides)."""
    out = []
    for m in ro.foundation:
        r = f"{m}-random-init"
        # the parsed config holds a method's options as a plain dict
        zs = (options.get(m) or {}).get("zero_shot") or {}
        touched = any(k.startswith("zero_shot") for v in (m, r) if v in variants for k in variants[v].set)
        if r in ro.foundation and zs.get("score") == "reconstruction" and not touched:
            out.append((m, r))
    return out


def false_alarms(results: dict[str, dict[str, Any]], methods: list[str]) -> pd.DataFrame:
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


def reason_counts(gaps: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Counts per (method, reason), the reason's dataset-specific numbers folded away."""
    import re

    rows = [(m, re.sub(r"\d+(\.\d+)?", "N", why.split(";")[0])[:140]) for _, m, _, why in gaps]
    if not rows:
        return pd.DataFrame(columns=["method", "reason", "count"])
    frame = pd.DataFrame(rows, columns=["method", "reason"])
    return frame.value_counts().rename("count").reset_index().sort_values(["method", "count"], ascending=[True, False])


def require_results(results: dict[str, dict[str, Any]]) -> None:
    if not any(r.get("status") == "ok" and r.get("labelled") for r in results.values()):
        raise InputError("no dataset of the study has results with labelled test anomalies; see study/runs/*/"
                         "result.json")  # fmt: skip
