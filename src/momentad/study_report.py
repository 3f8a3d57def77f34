"""reports/study.md, metrics/study.json and plots/study/: the study's answer, first lines first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentad.aggregate import false_alarms, not_run, per_source

CAVEAT = ("> **MOMENT ran with random-init weights** (the pretrained checkpoint is out of reach here): "
          "its rows are the MOMENT architecture with seeded random weights, **not foundation-model results**. "
          "Run the study where the Hugging Face hub is reachable with `moment.checkpoint` set to "
          "`AutonLab/MOMENT-1-large` for the foundation model's answer.")  # fmt: skip


def headline(ans: dict[str, Any], results: dict[str, dict[str, Any]], pretrained: bool) -> dict[str, Any]:
    """The answer per budget and what it rests on, nothing else (metrics/study.json: datasets,
    failed, pretrained, answer; metrics/study_scores.json: the rest)."""
    out: dict[str, Any] = {"datasets": len(results), "failed": sum(r.get("status") != "ok" for r in results.values()),
                           "pretrained": pretrained, "answer": {}, "difference": {}, "wilcoxon_p": {},
                           "effect_size": {}, "moment_rank": {}, "best_by_rank": {}}  # fmt: skip
    for b, e in ans["budgets"].items():
        m, r = e.get("moment"), e.get("ranks")
        if m:
            out["answer"][b] = m["verdict"]
            out["difference"][b] = m["mean_difference"]
            out["wilcoxon_p"][b] = m.get("wilcoxon_p")
            out["effect_size"][b] = m.get("effect_size")
        if r:
            out["best_by_rank"][b] = min(r["meanrank"], key=r["meanrank"].get)
            if m:
                out["moment_rank"][b] = round(r["meanrank"][m["method"]], 3)
    return out


def _f(v: Any, d: int = 3) -> str:
    return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{d}f}"


def render(ans: dict[str, Any], results: dict[str, dict[str, Any]], methods: list[str], budgets: list[int],
           systems: dict[str, str], pretrained: bool, variants: dict[str, Any] | None = None) -> str:  # fmt: skip
    ok = [n for n, r in results.items() if r.get("status") == "ok"]
    labelled = [n for n in ok if results[n].get("labelled")]
    n_sys = len({systems[n] for n in results})
    lines = [f"# Does MOMENT beat the classic detectors? {len(results)} datasets from {n_sys} systems", ""]
    if not pretrained:
        lines += [CAVEAT, ""]
    lines += ["## The answer", ""]
    for b, e in ans["budgets"].items():
        m, r = e.get("moment"), e.get("ranks")
        where = {"full": "the full train split", "0": "no training: zero-shot against the one-liners"}.get(
            b, f"{b} training windows"
        )
        if not m:
            lines.append(f"- **Budget {b}** ({where}): too few datasets hold every method's row ({len(e['datasets'])})")
            continue
        rank = ""
        if r:
            best = min(r["meanrank"], key=r["meanrank"].get)
            friedman = (f"Friedman p = {r['friedman_p']:.3g}" if r["friedman_p"] is not None
                        else f"no Friedman test under {5} datasets")  # fmt: skip
            rank = (f"; MOMENT's mean rank {r['meanrank'][m['method']]:.1f} of {len(r['meanrank'])} (best: "
                    f"`{best}`, {r['meanrank'][best]:.1f}; {friedman})")  # fmt: skip
        lines.append(
            f"- **Budget {b}** ({where}, {m['datasets']} datasets): `{m['method']}` is **{m['verdict']}** against the "
            f"classic detector picked per dataset without test data (Wilcoxon signed-rank over datasets) — mean test "
            f"VUS-PR difference "
            f"{m['mean_difference']:+.3f}, 95% interval [{m['ci_low']:+.3f}, {m['ci_high']:+.3f}] (bootstrap over "
            f"datasets), Wilcoxon p = {_f(m.get('wilcoxon_p'))}, effect size (rank-biserial) "
            f"{_f(m.get('effect_size'), 2)}, wins / ties / losses {m['wins']} / {m['ties']} / {m['losses']}{rank}."
        )  # fmt: skip
    lines += _recipes(ans, variants or {})
    failed = [n for n in results if n not in ok]
    lines += ["", f"{len(results)} datasets: {len(labelled)} with labelled test anomalies (ranked by VUS-PR), "
              f"{len(ok) - len(labelled)} without (false-alarm rates below), {len(failed)} failed"
              + (f" ({', '.join(failed)})" if failed else "") + ". How each number is made: "
              "`src/momentad/aggregate.py` (rows are picked on validation, never on test; ranks and the Friedman / "
              "Nemenyi tests from autorank; Wilcoxon from scipy; tie = |difference| < 0.01).", ""]  # fmt: skip
    lines += _rank_table(ans)
    lines += _source_tables(ans, systems)
    lines += _dataset_table(ans, results, methods)
    far = false_alarms(results, methods, budgets)
    if len(far):
        lines += ["", "## Series without labelled anomalies: false-alarm rate", "",
                  "Share of test steps flagged at the threshold validation gave each method (its full-split row, "
                  "else its largest budget); lower is better.", "",
                  "| dataset | " + " | ".join(far.columns) + " |", "| --- |" + " --- |" * len(far.columns)]  # fmt: skip
        lines += [f"| {n} | " + " | ".join(_f(v, 4) for v in row) + " |" for n, row in far.iterrows()]
    gaps = not_run(results)
    lines += ["", "## What could not run", ""]
    if gaps:
        lines += ["| dataset | method | budget | reason |", "| --- | --- | --- | --- |"]
        lines += [f"| {d} | {m} | {b} | {why} |" for d, m, b, why in gaps]
    else:
        lines.append("Every method ran at every budget on every dataset.")
    lines += ["", "Plots: `plots/study/` (critical-difference diagram per budget, mean rank by budget, method x "
              "dataset heatmap). Per dataset: `study/runs/<dataset>/reports/compare.md`.", ""]  # fmt: skip
    return "\n".join(lines)


def _recipes(ans: dict[str, Any], variants: dict[str, Any]) -> list[str]:
    """Each MOMENT recipe (a study variant) against the classic detectors per budget, and every
    dataset's VUS-PR with and without the level/scale statistics."""
    fm = ans["foundation"]
    if len(fm) < 2:
        return []
    budgets = list(ans["budgets"])
    lines = ["", "## Each MOMENT recipe against the classic detectors", "",
             "Per budget: verdict (Wilcoxon over the datasets where the recipe ran), mean VUS-PR difference to the "
             "classic detector picked per dataset without test data, 95% bootstrap interval, datasets.", "",
             "| recipe | options (study.yaml) | " + " | ".join(budgets) + " |",
             "| --- | --- |" + " --- |" * len(budgets)]  # fmt: skip
    for m in fm:
        opts = ", ".join(f"{k}={v}" for k, v in variants[m].set.items()) if m in variants else "params.yaml"
        cells = []
        for b in budgets:
            h = ans["budgets"][b]["foundation"].get(m)
            cells.append("" if h is None else f"{h['verdict']} {h['mean_difference']:+.3f} [{h['ci_low']:+.3f}, "
                         f"{h['ci_high']:+.3f}] n={h['datasets']}")  # fmt: skip
        lines.append(f"| `{m}` | {opts} | " + " | ".join(cells) + " |")
    pairs = [(m, f"{m}-stats") for m in fm if f"{m}-stats" in fm]
    if not pairs:
        return lines
    lines += ["", "## What instance normalisation hides: VUS-PR with and without level/scale statistics", "",
              "`zero_shot.score: reconstruction+stats` adds each window's deviation in level and scale from the train "
              "split (what MOMENT's RevIN removes) to its reconstruction error. Test VUS-PR per dataset, zero-shot "
              "(budget 0) and at the row validation picks on the full train split.", ""]  # fmt: skip
    cols = [(b, m, s) for b in ("0", "full") for m, s in pairs]
    lines += ["| dataset | " + " | ".join(f"{m} / +stats ({b})" for b, m, _ in cols) + " |",
              "| --- |" + " --- |" * len(cols)]  # fmt: skip
    frames = {b: ans["budgets"][b]["all_scores"] for b in ("0", "full") if b in ans["budgets"]}
    names = sorted({n for f in frames.values() for n in f.index})
    for n in names:
        cells = []
        for b, m, st in cols:
            f = frames.get(b)
            if f is None or n not in f.index:
                cells.append("")
                continue
            cells.append(f"{_f(f.loc[n, m])} / {_f(f.loc[n, st])}")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    means = []
    for b, m, st in cols:
        f = frames.get(b)
        both = f[[m, st]].dropna() if f is not None else None
        if both is not None and len(both):
            means.append(f"{m} at {b}: {both[m].mean():.3f} -> {both[st].mean():.3f} over {len(both)} datasets")
    return lines + ["", "Means: " + "; ".join(means) + ".", ""]


def _rank_table(ans: dict[str, Any]) -> list[str]:
    budgets = [b for b, e in ans["budgets"].items() if e.get("ranks")]
    if not budgets:
        return []
    methods = sorted({m for b in budgets for m in ans["budgets"][b]["ranks"]["meanrank"]},
                     key=lambda m: ans["budgets"][budgets[-1]]["ranks"]["meanrank"].get(m, 99))  # fmt: skip
    lines = ["## Mean rank by budget (1 = best)", "",
             "| method | " + " | ".join(f"{b} (n={ans['budgets'][b]['ranks']['datasets']})" for b in budgets) + " |",
             "| --- |" + " --- |" * len(budgets)]  # fmt: skip
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(_f(ans["budgets"][b]["ranks"]["meanrank"].get(m), 2) for b in budgets)
                     + " |")  # fmt: skip
    cd = "; ".join(f"{b}: {_f(ans['budgets'][b]['ranks']['cd'], 2) or 'no test (under 5 datasets)'}" for b in budgets)
    return lines + ["", f"Nemenyi critical difference of mean ranks per budget: {cd}.", ""]


def _source_tables(ans: dict[str, Any], systems: dict[str, str]) -> list[str]:
    lines = ["## Per system: the best method and every method's regret", "",
             "Mean test VUS-PR over a system's datasets; regret = the system's best mean minus the method's (0 = "
             "best there). A method that wins on average can still lose badly on one system.", ""]  # fmt: skip
    for b, e in ans["budgets"].items():
        scores = e["scores"]
        if not len(scores):
            continue
        means, regret = per_source(scores, systems)
        cols = list(regret.columns)
        lines += [f"Budget {b}:", "", "| system | datasets | best (mean VUS-PR) | " + " | ".join(cols) + " |",
                  "| --- | --- | --- |" + " --- |" * len(cols)]  # fmt: skip
        counts = pd.Series([systems[n] for n in scores.index]).value_counts()
        for sys_name, row in regret.iterrows():
            best = means.loc[sys_name].idxmax()
            lines.append(f"| {sys_name} | {counts[sys_name]} | {best} ({means.loc[sys_name, best]:.3f}) | "
                         + " | ".join(_f(v) for v in row) + " |")  # fmt: skip
        lines.append("")
    return lines


def _dataset_table(ans: dict[str, Any], results: dict[str, dict[str, Any]], methods: list[str]) -> list[str]:
    from momentad.aggregate import table

    full = table(results, methods, "full")
    if not len(full):
        return []
    m = ans["budgets"].get("full", {}).get("moment")
    lines = ["## Test VUS-PR per dataset (full train split)", "",
             "| dataset | system | window | " + " | ".join(methods) + (" | MOMENT's opponent |" if m else " |"),
             "| --- | --- | --- |" + " --- |" * (len(methods) + bool(m))]  # fmt: skip
    for n, row in full.iterrows():
        w = results[n]["window"]
        opp = (
            f" {m['opponents'][n][0]} ({m['opponents'][n][1]}) |" if m and n in m["opponents"] else (" |" if m else "")
        )
        lines.append(f"| {n} | {results[n]['system']} | {w['length']}/{w['train_stride']} | "
                     + " | ".join(_f(v) for v in row) + " |" + opp)  # fmt: skip
    return lines + [""]


def plots(ans: dict[str, Any], out: Path, pretrained: bool) -> None:
    """plots/study/: a critical-difference diagram per budget, mean rank by budget, heatmap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from autorank import plot_stats

    from momentad.io import atomic_file

    out.mkdir(parents=True, exist_ok=True)
    tag = "" if pretrained else " (MOMENT: RANDOM-INIT weights)"
    for b, e in ans["budgets"].items():
        fig, ax = plt.subplots(figsize=(9, 3.2))
        if e.get("ranks") and e["ranks"]["result"] is not None:
            plot_stats(e["ranks"]["result"], allow_insignificant=True, ax=ax)
            ax.set_title(f"Critical difference, budget {b} ({e['ranks']['datasets']} datasets){tag}", fontsize=9)
        else:
            ax.text(0.5, 0.5, f"budget {b}: fewer than 5 datasets with every method's row: no rank test", ha="center")
            ax.axis("off")
        _save(fig, out / f"cd_{b}.png", atomic_file)
    budgets = [b for b, e in ans["budgets"].items() if e.get("ranks")]
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    methods = sorted({m for b in budgets for m in ans["budgets"][b]["ranks"]["meanrank"]})
    for i, m in enumerate(methods):
        ys = [ans["budgets"][b]["ranks"]["meanrank"].get(m, np.nan) for b in budgets]
        fm = m in ans["foundation"]
        ax.plot(range(len(budgets)), ys, marker="o", lw=2.2 if fm else 1.1, color="black" if fm else plt.cm.tab20(i),
                label=f"{m}{tag if fm else ''}")  # fmt: skip
    ax.set_xticks(range(len(budgets)), budgets)
    ax.invert_yaxis()
    ax.set_xlabel("training budget (windows; full = whole train split)")
    ax.set_ylabel("mean rank over datasets (1 = best)")
    ax.set_title("Mean rank of every method by budget", fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="lower left")
    _save(fig, out / "rank_by_budget.png", atomic_file)
    full = ans["budgets"].get("full", {}).get("scores")
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * (0 if full is None else full.shape[1]),
                                    1.2 + 0.35 * (0 if full is None else full.shape[0])))  # fmt: skip
    if full is not None and len(full):
        im = ax.imshow(full.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(full.shape[1]), full.columns, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(full.shape[0]), full.index, fontsize=7)
        fig.colorbar(im, ax=ax, fraction=0.03, label="test VUS-PR")
        ax.set_title(f"Test VUS-PR, method x dataset, full train split{tag}", fontsize=9)
    _save(fig, out / "heatmap.png", atomic_file)


def _save(fig, path: Path, atomic_file) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
