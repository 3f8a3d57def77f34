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
        w = g["weights"].iloc[0]
        foundation = w in ("pretrained", "random-init")
        label = f"{name} ({'RANDOM-INIT' if w == 'random-init' else w})" if foundation else name
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


def heatmap_png(table, path: Path, title: str) -> None:
    """Methods x fault types recall heatmap."""
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * table.shape[1], 1.2 + 0.4 * table.shape[0]))
    im = ax.imshow(table.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(table.shape[0]), table.index, fontsize=7)
    for (i, j), v in np.ndenumerate(table.to_numpy(dtype=float)):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=ax, fraction=0.03)
    ax.set_title(title, fontsize=9)
    _save(fig, path)


def pr_curves_png(curves: dict, path: Path) -> None:
    """Precision-recall curves of every method on one axis."""
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, (name, (p, r)) in enumerate(curves.items()):
        ax.plot(r, p, lw=1, color=plt.cm.tab20(i % 20), label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.legend(fontsize=6)
    ax.set_title("Precision-recall on test, all methods", fontsize=10)
    _save(fig, path)


def timeline_png(test_frame, series: dict, path: Path, title: str) -> None:
    """Scores of a few methods over the test period with their validation thresholds."""
    ts = test_frame["timestamp"].to_numpy()
    lab = test_frame["label"].to_numpy().astype(bool)
    fig, axes = plt.subplots(len(series), 1, figsize=(13, 2.0 * len(series) + 0.5), sharex=True, squeeze=False)
    for ax, (name, (scores, thr)) in zip(axes[:, 0], series.items(), strict=True):
        ax.plot(ts, scores, lw=0.6, color="black")
        ax.axhline(thr, color="tab:red", ls="--", lw=0.8)
        ax.fill_between(ts, 0, 1, where=lab, color="tab:red", alpha=0.2, transform=ax.get_xaxis_transform(), lw=0)
        ax.set_ylabel(name, fontsize=7)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


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
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
