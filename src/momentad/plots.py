"""Static plots (PNG) that DVC shows as image plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from momentad.io import atomic_file  # noqa: E402


def learning_curve_png(curve, path: Path) -> None:
    """Mean test VUS-PR ± std over draws against training windows (log axis, full at the right);
    methods that need no training as dashed lines; the foundation model in black, its weights
    (pretrained or RANDOM-INIT) in the legend."""
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for i, (name, g) in enumerate(curve.groupby("method", sort=True)):
        g = g.sort_values("train_windows")
        foundation = g["side"].iloc[0] == "foundation model"
        label = name  # the foundation model's series name its weights already
        style = {"ls": "--", "marker": None} if g["budget"].nunique() > 1 and len(set(g["vus_pr"])) == 1 else {
            "marker": "o"}  # fmt: skip
        ax.errorbar(g["train_windows"], g["vus_pr"], yerr=g["vus_pr_std"], capsize=3, lw=1.2,
                    color="black" if foundation else plt.cm.tab20(i % 20), label=label, **style)  # fmt: skip
    ticks = curve.drop_duplicates("train_windows").sort_values("train_windows")
    ax.set_xscale("log")
    ax.set_xticks(ticks["train_windows"], [f"{b}" if b != "full" else f"full\n({x})" for b, x in
                                           zip(ticks["budget"], ticks["train_windows"], strict=True)])  # fmt: skip
    ax.minorticks_off()
    ax.set_xlabel("training windows (log scale)")
    ax.set_ylabel("VUS-PR (test), mean ± std over draws")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, loc="best", ncol=2)
    ax.set_title("Learning curve: every method at every budget", fontsize=10)
    _save(fig, path)


def heatmap_png(table, path: Path, title: str, split_last: bool = False) -> None:
    """Methods x fault types recall heatmap (``split_last``: the last column, set apart by a
    white rule, is another measure)."""
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * table.shape[1], 1.2 + 0.4 * table.shape[0]))
    im = ax.imshow(table.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    if split_last:
        ax.axvline(table.shape[1] - 1.5, color="white", lw=3)
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=7)
    for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def _style(i: int, foundation: bool) -> dict:
    """A line style per method that stays apart from its neighbours: ten distinct colours, then
    the same colours dashed; the foundation model in thick black."""
    if foundation:
        return {"color": "black", "lw": 2.2, "ls": "-"}
    return {"color": plt.cm.tab10(i % 10), "lw": 1.2, "ls": ("-", "--", ":")[(i // 10) % 3]}


def pr_curves_png(curves: dict[str, tuple], foundation: set[str], path: Path) -> None:
    """Test precision-recall of each method's best row (``curves``: legend label -> (precision,
    recall)), the foundation model in thick black, the legend beside the chart."""
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    for i, (label, (p, r)) in enumerate(curves.items()):
        ax.plot(r, p, label=label, **_style(i, label.split(", ")[0] in foundation))
    ax.set_xlabel("recall")
    ax.set_ylabel("precision (test)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    if curves:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), title="method, its best budget",
                  title_fontsize=7)  # fmt: skip
    else:  # a series without labelled test anomalies has no precision-recall curve
        ax.text(0.02, 0.5, "No labelled test anomaly: no precision-recall curve (reports/compare.md gives "
                "false-alarm rates)", fontsize=9, transform=ax.transAxes)  # fmt: skip
    ax.set_title("Precision-recall on test: each method's best row", fontsize=10)
    _save(fig, path)


def verdict_png(verdict: dict[str, dict], weights: str, path: Path) -> None:
    """The answer per budget: the foundation model's VUS-PR minus the classic detector's (both
    chosen without test), with its 95% interval and the verdict word."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    if not verdict:
        ax.text(0.5, 0.5, "No labelled test anomaly: no verdict (reports/compare.md gives false-alarm rates)",
                ha="center", va="center", fontsize=9, transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
    else:
        xs = np.arange(len(verdict))
        diff = np.array([v["moment_minus_best_baseline"] for v in verdict.values()])
        lo = np.array([v["ci_low"] for v in verdict.values()])
        hi = np.array([v["ci_high"] for v in verdict.values()])
        colour = {"worse": "tab:red", "better": "tab:green"}
        for x, d, a, b, v in zip(xs, diff, lo, hi, verdict.values(), strict=True):
            c = colour.get(v["verdict"], "tab:gray")
            ax.errorbar([x], [d], yerr=[[d - a], [b - d]], fmt="o", color=c, capsize=5, lw=1.6)
            ax.annotate(f"{v['verdict']}\nvs {v['best_baseline']}", (x, b), textcoords="offset points",
                        xytext=(0, 6), ha="center", fontsize=7, color=c)  # fmt: skip
        ax.axhline(0, color="black", lw=0.8)
        ax.text(1.01, 1, "MOMENT better \u2191", transform=ax.transAxes, rotation=90, va="top", fontsize=8)
        ax.text(1.01, 0, "MOMENT worse \u2193", transform=ax.transAxes, rotation=90, va="bottom", fontsize=8)
        ax.set_xticks(xs, ["0\n(zero-shot)" if b == "0" else b for b in verdict])
        ax.set_xlim(-0.6, len(xs) - 0.4)
        pad = 0.15 * max(1e-3, hi.max() - lo.min())
        ax.set_ylim(min(lo.min(), 0) - pad, max(hi.max(), 0) + 2.5 * pad)
        ax.set_xlabel("training budget (at most this many windows)")
        ax.set_ylabel("VUS-PR difference (test), 95% interval")
    ax.set_title(f"MOMENT ({weights}) minus the classic "
                 "detector chosen on validation", fontsize=10)  # fmt: skip
    _save(fig, path)


def timeline_png(test_frame, series: dict, path: Path, title: str) -> None:
    """Scores of a few methods over the test period with their validation thresholds, on a log
    axis (symmetric log where a score is at or below zero): scores span decades."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    ts = test_frame["timestamp"].to_numpy()
    lab = test_frame["label"].to_numpy().astype(bool)
    fig, axes = plt.subplots(len(series), 1, figsize=(13, 2.0 * len(series) + 0.9), sharex=True, squeeze=False)
    for ax, (name, (scores, thr)) in zip(axes[:, 0], series.items(), strict=True):
        scores = np.asarray(scores, dtype=float)
        ax.plot(ts, scores, lw=0.6, color="black")
        ax.axhline(thr, color="tab:red", ls="--", lw=0.8)
        ax.fill_between(ts, 0, 1, where=lab, color="tab:red", alpha=0.2, transform=ax.get_xaxis_transform(), lw=0)
        finite = scores[np.isfinite(scores)]
        if len(finite) and finite.min() > 0:
            ax.set_yscale("log")
        elif len(finite) and np.any(finite != 0):
            ax.set_yscale("symlog", linthresh=float(np.percentile(np.abs(finite[finite != 0]), 5)))
        ax.set_ylabel(name, fontsize=7)
        ax.tick_params(labelsize=7)
    legend = [Line2D([], [], color="black", lw=0.8, label="score (log axis)"),
              Line2D([], [], color="tab:red", ls="--", lw=0.8, label="alarm threshold (chosen on validation)"),
              Patch(color="tab:red", alpha=0.2, label="labelled fault event")]  # fmt: skip
    fig.legend(handles=legend, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _write(fig, path)


def root_cause_rank_png(ranks: dict[str, list[int]], types: list[str], path: Path, title: str, cap: int = 10) -> None:
    """Rank of the true root-cause service per test fault event (1 = top), one row of markers per
    method; events ordered by fault type, ranks above ``cap`` drawn at cap + 1."""
    order = np.argsort(np.array(types), kind="stable")
    fig, ax = plt.subplots(figsize=(13, 0.45 * len(ranks) + 2.2))
    for i, r in enumerate(ranks.values()):
        y = np.minimum(np.asarray(r)[order], cap + 1)
        ax.scatter(np.arange(len(y)), np.full(len(y), i), c=y, cmap="RdYlGn_r", vmin=1, vmax=cap + 1, s=28,
                   marker="s")  # fmt: skip
        ax.text(len(y) + 0.5, i, f"AC@1 {np.mean(np.asarray(r) <= 1):.2f}", va="center", fontsize=7)
    ax.set_yticks(range(len(ranks)), list(ranks), fontsize=7)
    ts = np.array(types)[order]
    starts = [k for k in range(len(ts)) if k == 0 or ts[k] != ts[k - 1]]
    ax.set_xticks(starts, [ts[k] for k in starts], rotation=60, ha="right", fontsize=6)
    ax.set_xlim(-1, len(ts) + 6)
    ax.invert_yaxis()  # the first method (best VUS-PR) on top, as in the report
    sm = plt.cm.ScalarMappable(cmap="RdYlGn_r", norm=plt.Normalize(1, cap + 1))
    fig.colorbar(sm, ax=ax, label=f"rank of the true service (1 = top; {cap + 1} = worse than {cap})")
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    _write(fig, path)


def _write(fig, path: Path) -> None:
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
