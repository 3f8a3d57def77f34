"""reports/study.md (a paper's results section), reports/study.json (every number, and every
(dataset, method, budget) that could not run), the headline metrics and plots/study/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from momentad.aggregate import false_alarms, not_run, per_system, reason_counts

BUDGET_WORDS = {"0": "no training (zero-shot; the one-liners)", "full": "the whole train split"}


def _f(v: Any, d: int = 3, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return f"{v:+.{d}f}" if sign else f"{v:.{d}f}"


def _p(p: float | None) -> str:
    """A p-value as a reader can check it: never 0.000."""
    if p is None:
        return ""
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def licence(path: str) -> str:
    """The licence of a dataset's folder (the LICENSE file nearest above its path)."""
    p = Path(path)
    for d in [p, *p.parents]:
        for f in sorted(d.glob("LICEN[CS]E*")) if d.is_dir() else []:
            text = f.read_text(errors="ignore")
            if "Permission is hereby granted" in text or "MIT License" in text:
                return "MIT"
            if "Creative Commons" in text:
                return "CC BY-ND 4.0" if "NoDerivatives" in text else "Creative Commons"
            return f.name
        if d.name == "raw":
            break
    return "generated here" if p.suffix == ".py" else "see its folder"


def weights_line(results: dict[str, dict[str, Any]], foundation: list[str]) -> dict[str, str]:
    """Each foundation variant's weights in words (from the first dataset it ran on)."""
    out = {}
    for m in foundation:
        for r in results.values():
            rows = [x for x in r.get("results", {}).get(m, {}).values() if x.get("status") == "ok"]
            if rows:
                out[m] = f"`{rows[0].get('checkpoint')}` — {rows[0].get('weights_label', rows[0].get('weights'))}"
                break
    return out


def headline(ans: dict[str, Any], results: dict[str, dict[str, Any]], systems: dict[str, str]) -> dict[str, Any]:
    """metrics/study.json (the answer per budget, with the weights named) and
    metrics/study_scores.json (the numbers behind it)."""
    ok = [n for n, r in results.items() if r.get("status") == "ok"]
    main = ans["roles"].foundation[0] if ans["roles"].foundation else None
    primary = {c.budget: c for c in ans["contests"] if c.method == main and c.against.startswith("label-free")}
    pre = {c.budget: c for c in ans["contests"] if "pretrained vs random-init" in c.name and c.method == main}
    rows = [x for r in results.values() for x in r.get("results", {}).get(main, {}).values()]
    origins = {x.get("weights") for x in rows if x.get("status") == "ok"}
    weights = " / ".join(sorted(o for o in origins if o)) or "none"
    head = {"datasets": len(results), "systems": len({systems[n] for n in results}), "failed": len(results) - len(ok),
            "weights": {"here": "pretrained-here", "hub": "hub-pretrained"}.get(weights, weights),
            "answer": {b: c.verdict for b, c in primary.items()},
            "pretraining_helps": {b: c.verdict for b, c in pre.items()}}  # fmt: skip
    scores = {"moment_weights": head["weights"], "difference": {b: _r(c.mean) for b, c in primary.items()},
              "ci": {b: [_r(c.ci[0]), _r(c.ci[1])] for b, c in primary.items()},
              "holm_p": {b: _r(c.p_holm) for b, c in primary.items()}, "n": {b: c.n for b, c in primary.items()},
              "pretrained_minus_random_init": {b: _r(c.mean) for b, c in pre.items()},
              "moment_rank": {}, "best_by_rank": {}}  # fmt: skip
    for m, rec in ans.get("reconstruction", {}).items():
        if m == main:
            scores["reconstruction_lower_pretrained"] = reconstruction_summary(rec)
    for b, r in ans["ranks"].items():
        if r and r["meanrank"]:
            scores["best_by_rank"][b] = min(r["meanrank"], key=r["meanrank"].get)
            if main in r["meanrank"]:
                scores["moment_rank"][b] = round(r["meanrank"][main], 3)
    return {"head": head, "scores": scores}


def reconstruction_summary(rec: pd.DataFrame) -> dict[str, Any]:
    """On how many datasets the pretrained variant (first column) reconstructs the test split's
    normal steps with a lower zero-shot error than its random initialisation (second column)."""
    both = rec.dropna()
    a, b = both.iloc[:, 0], both.iloc[:, 1]
    ratio = (a / b).median() if len(both) else float("nan")
    return {"datasets": len(both), "lower": int((a < b).sum()), "median_ratio": _r(ratio)}


def _r(v: Any) -> Any:
    return None if v is None or not np.isfinite(v) else round(float(v), 6)


def details(ans: dict[str, Any], results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """reports/study.json: every contest with its per-dataset differences, the ranks, and every
    (dataset, method, budget) that could not run with its reason."""
    ranks = {b: None if r is None else {k: r[k] for k in ("meanrank", "n", "complete", "left_out", "friedman_p", "cd")}
             for b, r in ans["ranks"].items()}  # fmt: skip
    return {"contests": [c.summary() for c in ans["contests"]], "ranks": ranks,
            "could_not_run": [{"dataset": d, "method": m, "budget": b, "reason": why} for d, m, b, why in
                              not_run(results)]}  # fmt: skip


def render(ans: dict[str, Any], results: dict[str, dict[str, Any]], datasets: dict[str, Any], systems: dict[str, str],
           params: Any, variants: dict[str, Any]) -> str:  # fmt: skip
    """The whole report, in a paper's order."""
    ro = ans["roles"]
    ok = [n for n, r in results.items() if r.get("status") == "ok"]
    labelled = [n for n in ok if results[n].get("labelled")]
    n_sys = len({systems[n] for n in results})
    main = ro.foundation[0] if ro.foundation else "moment"
    weights = weights_line(results, ro.foundation)
    lines = [f"# Does a time-series foundation model beat the classic detectors? {len(results)} datasets, "
             f"{n_sys} systems", ""]  # fmt: skip
    lines += ["## Question and weights", "",
              f"Does MOMENT, zero-shot and fine-tuned on 100 / 500 / 1000 windows of a series' history, find "
              f"labelled faults better than the classic detectors given the same history? Test VUS-PR (TSB-AD's "
              f"threshold-free measure) on {len(labelled)} datasets with labelled test events; "
              f"{len(ok) - len(labelled)} more without any are judged by false alarms. MOMENT's weights:",
              ""]  # fmt: skip
    lines += [f"- `{m}`: {w}" for m, w in weights.items()]
    if any("RANDOM-INIT" in w for m, w in weights.items() if m == main):
        lines += ["", "> **The main MOMENT rows use random weights**: they say nothing about a pretrained "
                  "foundation model."]  # fmt: skip
    lines += ["", "These weights are **not AutonLab's** MOMENT-1 checkpoints (unreachable here): a MOMENT-shaped "
              "model of 0.67 M parameters pretrained on a public corpus of about 1.2 M values plus synthetic "
              "series, four to five orders of magnitude less data than MOMENT's Time-series Pile.", ""]  # fmt: skip
    lines += _datasets_table(results, datasets, systems)
    lines += _protocol(ans, results, params, variants)
    lines += _answer(ans, results)
    lines += _systems_table(ans, main)
    lines += _ranks(ans)
    lines += _caveats(ans, results, ro)
    far = false_alarms(results, [*ro.foundation, *ro.classic])
    if len(far):
        lines += ["## Series without labelled test events: false-alarm rate", "",
                  "Share of test steps flagged at the threshold validation gave each method (its row at `full`); "
                  "lower is better.", "", "| dataset | " + " | ".join(far.columns) + " |",
                  "| --- |" + " --- |" * len(far.columns)]  # fmt: skip
        lines += [f"| {n} | " + " | ".join(_f(v, 4) for v in row) + " |" for n, row in far.iterrows()]
        lines.append("")
    gaps = not_run(results)
    lines += ["## What could not run", ""]
    counts = reason_counts(gaps)
    if len(counts):
        lines += [f"{len(gaps)} (dataset, method, budget) rows could not run; counts per method and reason (numbers "
                  "folded to N; the full list is in `reports/study.json`):", "",
                  "| method | reason | rows |", "| --- | --- | --- |"]  # fmt: skip
        lines += [f"| {r.method} | {r.reason} | {r.count} |" for r in counts.itertuples()]
    else:
        lines.append("Every method ran at every budget on every dataset.")
    lines += ["", "Charts: `plots/study/` (`dvc plots show study/dvc.yaml`). Per dataset: "
              "`study/runs/<dataset>/reports/compare.md` after `make study`.", ""]  # fmt: skip
    return "\n".join(lines)


def _datasets_table(results, datasets, systems) -> list[str]:
    lines = ["## Datasets", "", "| dataset | source | system | rows | KPIs | test events | test anomaly ratio | "
             "licence |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for n, r in results.items():
        ds = datasets[n]
        if r.get("status") != "ok":
            lines.append(f"| {n} | {ds.source} | {systems[n]} | failed | | | | {licence(ds.path)} |")
            continue
        rows = sum(r["rows"].values())
        moved = (r.get("split_rule") or {}).get("moved")
        lines.append(f"| {n} | {ds.source} | {systems[n]} | {rows:,} | {r['kpis']} | {r['events']['test']}"
                     f"{' (split rule)' if moved else ''} | {r.get('anomaly_ratio', float('nan')):.3f} | "
                     f"{licence(ds.path)} |")  # fmt: skip
    return lines + [""]


def _protocol(ans, results, params, variants) -> list[str]:
    ok = [r for r in results.values() if r.get("status") == "ok"]
    moved = [r for r in ok if (r.get("split_rule") or {}).get("moved")]
    by = [r["split_rule"]["test_start_moved_by_rows"] / sum(r["rows"].values()) for r in moved]
    sp = params.data.split
    lengths = sorted({r["window"]["length"] for r in ok})
    effort = []
    for m in ans["roles"].classic:
        opts = params.options.get(m) or {}
        if "epochs" in opts:
            effort.append(f"`{m}` {opts['epochs']} epochs (early stopping, patience {opts['patience']})")
    mo = params.options.get("moment") or {}
    ft = mo.get("finetune", {})
    epochs = f"{ft.get('epochs')} epoch{'s' if ft.get('epochs') != 1 else ''}"
    lines = ["## Protocol", "",
             f"- **Split**: chronological {sp.train:.0%} / {sp.val:.0%} / {sp.test:.0%} of the rows (or the "
             f"format's own train part); where test then holds fewer than {sp.min_test_events} labelled event(s) "
             f"its start moves earlier by the least amount that gives it one, train kept at ≥ {sp.min_train:.0%} of "
             f"the rows — one rule fixed before any score was seen. It moved {len(moved)} of {len(ok)} datasets"
             + (f" (test start earlier by {min(by):.0%}–{max(by):.0%} of the rows)" if by else "") + ". Scalers, "
             "thresholds and every choice of row or opponent use train and validation only.",
             f"- **Windows**: the series' own length rule (`window.length: auto`): {', '.join(map(str, lengths))} "
             "steps; non-overlapping at test.",
             f"- **Budgets**: 0 (no training), {', '.join(map(str, params.budget.sizes))} training windows and the "
             f"full train split; budget b = at most b windows of history for every method alike; {params.budget.draws} "
             f"draw{'s' if params.budget.draws > 1 else ''} (stretches of history) per budget.",
             f"- **MOMENT**: fine-tuned with `{ft.get('method')}` for {epochs} (early stopping, "
             f"patience {ft.get('patience')}), the {ft.get('objective')} objective; the classic detectors: "
             + ("; ".join(effort) if effort else "none of those in this study trains in epochs") + ".",
             "- **Variants**: " + "; ".join(f"`{k}` ({', '.join(f'{a}={b}' for a, b in v.set.items())})"
                                             for k, v in variants.items()) + ".",
             "- **Statistics**: per dataset the difference in test VUS-PR (mean over draws) to the opponent picked "
             "without test data; over datasets the mean with a 95 % interval from a hierarchical bootstrap (systems, "
             f"then datasets; {params.compare.bootstrap} replicates), Wilcoxon signed-rank p, **Holm-corrected over "
             f"all {sum(c.p is not None for c in ans['contests'])} tests of this report**; the verdict is the "
             "corrected test's (p < 0.05, in the direction of the median difference). Tie: |difference| < 0.01.",
             ""]  # fmt: skip
    return lines


def _answer(ans, results) -> list[str]:
    ro = ans["roles"]
    lines = ["## Answer", ""]
    groups = [("Primary contest: each MOMENT variant against the label-free classic detectors "
               f"({', '.join(ro.label_free)})", lambda c: c.against.startswith("label-free")),
              ("Does pretraining help? The same architecture pretrained here against its random initialisation "
               "(paired over datasets)", lambda c: "pretrained vs random-init" in c.name),
              ("Does adapting to the dataset's own history help? (moment-adapted against moment)",
               lambda c: "adapted vs not" in c.name),
              ("Separate contest: against the classic detectors that read training labels "
               f"({', '.join(ro.supervised)})",
               lambda c: c.against.startswith("supervised"))]  # fmt: skip
    for title, keep in groups:
        cs = [c for c in ans["contests"] if keep(c)]
        if not cs:
            continue
        lines += [f"### {title}", "", "| method | budget | verdict | mean difference [95 % interval] | n | Holm p | "
                  "W / T / L |", "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for c in cs:
            w, t, lo = c.wtl
            lines.append(f"| `{c.method}` | {c.budget} | **{c.verdict}** | {_f(c.mean, sign=True)} "
                         f"[{_f(c.ci[0], sign=True)}, {_f(c.ci[1], sign=True)}] | {c.n} | {_p(c.p_holm)} | "
                         f"{w} / {t} / {lo} |")  # fmt: skip
        lines.append("")
        if title.startswith("Does pretraining help?"):
            for m, rec in ans.get("reconstruction", {}).items():
                r = reconstruction_summary(rec)
                lines += [f"Zero-shot reconstruction error (mean squared error of `{m}`'s budget-0 scores on the test "
                          f"split's normal steps, every readable dataset, labelled or not): the pretrained weights "
                          f"reconstruct better on **{r['lower']} of {r['datasets']}** datasets; median ratio "
                          f"pretrained / random-init {_f(r['median_ratio'])}.", ""]  # fmt: skip
    return lines


def _systems_table(ans, main: str) -> list[str]:
    cs = [c for c in ans["contests"] if c.method == main and c.against.startswith("label-free") and c.n]
    if not cs:
        return []
    tables = {c.budget: per_system(c) for c in cs}
    systems = sorted({s for t in tables.values() for s in t.index})
    lines = [
        f"## Per system: `{main}` minus its label-free opponent",
        "",
        "Mean difference in test VUS-PR over the system's datasets (n), and wins / losses; the pooled row is "
        "the contest above. A pooled mean can hide a loss on one system.",
        "",
        "| system | " + " | ".join(f"budget {b}" for b in tables) + " |",
        "| --- |" + " --- |" * len(tables),
    ]
    for s in systems:
        cells = []
        for t in tables.values():
            if s in t.index:
                r = t.loc[s]
                cells.append(f"{r['mean_difference']:+.3f} (n={int(r['datasets'])}, {int(r['wins'])}W/"
                             f"{int(r['losses'])}L)")  # fmt: skip
            else:
                cells.append("")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("| **pooled** | " + " | ".join(f"{c.mean:+.3f} (n={c.n})" for c in cs) + " |")
    return lines + [""]


def _ranks(ans) -> list[str]:
    lines = ["## Ranks", "", "Mean rank over the datasets where each method ran (1 = best; n = datasets). Budget 0 "
             "ranks only what scores without training; the trained budgets rank every method (at most b windows).",
             ""]  # fmt: skip
    for b, r in ans["ranks"].items():
        if not r:
            continue
        order = sorted(r["meanrank"], key=r["meanrank"].get)
        lines.append(f"- **{b}**: " + ", ".join(f"`{m}` {r['meanrank'][m]:.2f} (n={r['n'][m]})" for m in order))
        left = r["left_out"]
        if r["friedman_p"] is not None:
            lines.append(f"  Friedman p = {_p(r['friedman_p'])}, Nemenyi critical difference {r['cd']:.2f} on the "
                         f"{len(r['complete'])} datasets where every method ran"
                         + (f"; left out: {', '.join(f'{n} ({len(ms)} missing)' for n, ms in left.items())}" if left
                            else "") + ".")  # fmt: skip
        else:
            lines.append(f"  No Friedman test: {len(r['complete'])} complete datasets (fewer than 5).")
    return lines + [""]


def _caveats(ans, results, ro) -> list[str]:
    ok = [r for r in results.values() if r.get("status") == "ok"]
    unlabelled_val = sum(1 for r in ok if r.get("labelled") and not r.get("validation_labelled"))
    return ["## Caveats", "",
            "- The MOMENT weights here are a 0.67 M-parameter model pretrained on a small public corpus on 2 CPU "
            "cores, not AutonLab's MOMENT-1 (40-385 M parameters, the Time-series Pile); set `moment.checkpoint` "
            "to a hub id where the hub is reachable for that answer.",
            "- Systems are unequal in size (most AWS series are EC2); the hierarchical bootstrap and the per-system "
            "table keep one system from deciding alone, the Wilcoxon test does not (it counts datasets).",
            "- Where the Wilcoxon test and the Nemenyi critical difference disagree, the verdict follows Wilcoxon: it "
            "pairs each dataset's two scores and is Holm-corrected over exactly the tests reported; Nemenyi compares "
            "every pair of methods at once on the complete blocks only, which makes it more conservative.",
            f"- {unlabelled_val} labelled datasets hold no labelled validation event: there, opponents and rows are "
            "picked by mean rank on the other datasets, thresholds by a validation percentile.",
            "- Labels differ in kind: injected faults (Nezha, the simulator), expert labels (Microsoft, AIOps, SMD) "
            "and NAB's wide windows (about 10 % of a file, centred on each event).", ""]  # fmt: skip


def plots(ans: dict[str, Any], out: Path, weights: str) -> None:
    """plots/study/: the verdict per budget (first), pretraining's effect, ranks by budget,
    critical-difference diagrams, a heatmap of every labelled dataset with values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from momentad.io import atomic_file

    out.mkdir(parents=True, exist_ok=True)
    ro = ans["roles"]
    colours = plt.cm.tab20(np.linspace(0, 1, 20))

    def save(fig, name):
        fig.tight_layout()
        with atomic_file(out / name) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
        plt.close(fig)

    # the answer: every variant against its label-free opponent, per budget
    fig, ax = plt.subplots(figsize=(9.5, 4.6))
    prim = [c for c in ans["contests"] if c.against.startswith("label-free") and c.n]
    budgets = ans["budgets"]
    width = 0.8 / max(1, len(ro.foundation))
    for k, v in enumerate(ro.foundation):
        cs = {c.budget: c for c in prim if c.method == v}
        xs = [i + (k - (len(ro.foundation) - 1) / 2) * width for i, b in enumerate(budgets) if b in cs]
        bs = [b for b in budgets if b in cs]
        means = np.array([cs[b].mean for b in bs])
        lo = means - np.array([cs[b].ci[0] for b in bs])
        hi = np.array([cs[b].ci[1] for b in bs]) - means
        ax.errorbar(xs, means, yerr=[lo, hi], fmt="o", capsize=4, color=colours[2 * k % 20], label=v, lw=1.5)
        for x, b in zip(xs, bs, strict=True):
            ax.annotate(cs[b].verdict.replace("not distinguishable", "n.d."), (x, cs[b].ci[1]), xytext=(0, 4),
                        textcoords="offset points", ha="center", fontsize=6)  # fmt: skip
    ax.axhline(0, color="black", lw=0.8)
    ax.text(1.0, 0.02, "below 0: MOMENT worse", transform=ax.transAxes, ha="right", fontsize=8, color="tab:red")
    ax.text(1.0, 0.96, "above 0: MOMENT better", transform=ax.transAxes, ha="right", fontsize=8, color="tab:green")
    ax.set_xticks(range(len(budgets)), [f"{b}\n{'zero-shot' if b == '0' else 'windows' if b != 'full' else 'all'}"
                                        for b in budgets])  # fmt: skip
    ax.set_ylabel("test VUS-PR: MOMENT minus its opponent\nmean over datasets, 95 % hierarchical bootstrap")
    ax.set_title(f"MOMENT ({weights}) against the label-free classic detectors", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="variant", title_fontsize=7)
    save(fig, "verdict.png")

    # ranks by budget: zero-shot apart, n per budget
    fig, (a0, a1) = plt.subplots(1, 2, figsize=(11, 4.8), gridspec_kw={"width_ratios": [1, 3.2]})
    trained = [b for b in budgets if b != "0" and ans["ranks"].get(b)]
    methods = sorted({m for b in trained for m in ans["ranks"][b]["meanrank"]})
    for i, m in enumerate(methods):
        ys = [ans["ranks"][b]["meanrank"].get(m, np.nan) for b in trained]
        fm = m in ro.foundation
        a1.plot(range(len(trained)), ys, marker="o", lw=2.2 if fm else 1.1, color=colours[i % 20],
                ls="-" if fm else "--" if m in ro.supervised else ":", label=m)  # fmt: skip
    a1.set_xticks(range(len(trained)), [f"{b}\n(n={max(ans['ranks'][b]['n'].values())})" for b in trained])
    a1.invert_yaxis()
    a1.set_title(f"Trained budgets: mean rank among {len(methods)} methods (1 = best)", fontsize=9)
    a1.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    r0 = ans["ranks"].get("0")
    if r0:
        ms = sorted(r0["meanrank"], key=r0["meanrank"].get)
        a0.barh(range(len(ms)), [r0["meanrank"][m] for m in ms], color=[colours[methods.index(m) % 20] if m in methods
                                                                        else "grey" for m in ms])  # fmt: skip
        a0.set_yticks(range(len(ms)), [f"{m} (n={r0['n'][m]})" for m in ms], fontsize=7)
        a0.invert_yaxis()
        a0.set_title(f"Budget 0: mean rank among {len(ms)}", fontsize=9)
    save(fig, "rank_by_budget.png")

    # heatmap: every labelled dataset, every method at full, with values
    full = ans["scores"].get("full")
    if full is not None and len(full):
        fig, ax = plt.subplots(figsize=(1.6 + 0.62 * full.shape[1], 1.2 + 0.27 * full.shape[0]))
        im = ax.imshow(full.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(full.to_numpy(dtype=float)):
            ax.text(j, i, "" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center", fontsize=5.5,
                    color="white" if v < 0.6 else "black")  # fmt: skip
        ax.set_xticks(range(full.shape[1]), full.columns, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(full.shape[0]), full.index, fontsize=6)
        fig.colorbar(im, ax=ax, fraction=0.03, label="test VUS-PR (blank: could not run)")
        ax.set_title(f"Test VUS-PR at the full train split, {full.shape[0]} labelled datasets", fontsize=9)
        save(fig, "heatmap.png")
    for b in budgets:
        r = ans["ranks"].get(b)
        fig, ax = plt.subplots(figsize=(9, 3.4))
        if r and r["result"] is not None:
            from autorank import plot_stats

            plot_stats(r["result"], allow_insignificant=True, ax=ax)
            ax.set_title(f"Critical difference, budget {b} ({len(r['complete'])} complete datasets)", fontsize=9)
        else:
            ax.text(0.5, 0.5, f"budget {b}: fewer than 5 datasets where every method ran: no rank test", ha="center")
            ax.axis("off")
        save(fig, f"cd_{b}.png")
