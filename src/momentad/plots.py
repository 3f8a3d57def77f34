"""Static plots (PNG) that DVC shows as image plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from momentad.data import Split  # noqa: E402
from momentad.io import atomic_file  # noqa: E402


def weights_label(model: dict | None) -> str:
    """How a plot names the weights: never lets random-init pass as a foundation model."""
    if not model:
        return ""
    if model.get("pretrained"):
        return f"pretrained weights ({model['checkpoint']})"
    return f"RANDOM-INIT weights ({model['checkpoint']}), not foundation-model results"


def test_period(split: Split, scores: np.ndarray, threshold: float, title: str, path: Path, n_kpis: int = 4) -> None:
    """A few KPIs, the score and the validation threshold over the test period, anomalies shaded."""
    values = split.values
    lab = split.labels.astype(bool)
    # show the KPIs that move most during labelled faults (a visual aid only)
    strength = np.abs(values[lab]).mean(axis=0) if lab.any() else values.std(axis=0)
    kpis = np.argsort(strength)[::-1][:n_kpis]
    ts = split.frame["timestamp"].to_numpy()
    fig, axes = plt.subplots(len(kpis) + 1, 1, figsize=(13, 1.6 * (len(kpis) + 1) + 0.6), sharex=True)
    for ax, k in zip(axes[:-1], kpis, strict=False):
        ax.plot(ts, values[:, k], lw=0.6, color="tab:blue")
        ax.set_ylabel(split.features[k][-24:], fontsize=7, rotation=0, ha="right")
    ax = axes[-1]
    ax.plot(ts, scores, lw=0.7, color="black", label="score")
    ax.axhline(threshold, color="tab:red", ls="--", lw=0.8, label="threshold (from val)")
    ax.set_ylabel("score", fontsize=8)
    ax.legend(loc="upper right", fontsize=7)
    for a in axes:
        a.fill_between(ts, 0, 1, where=lab, color="tab:red", alpha=0.2, transform=a.get_xaxis_transform(), lw=0)
        a.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
