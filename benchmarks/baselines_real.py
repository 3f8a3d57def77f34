"""The six baselines on the real labelled series aeon ships (read as data files, aeon is not
imported), through the real `ucr` / `trainticket` loaders and the preprocess and window steps.

    python benchmarks/baselines_real.py            # from the repository root, .venv active

KDD-TSAD_135 (UCR InternalBleeding16): train = the first 1,200 steps (from the UCR name), the
rest split val:test 5:80 so that the single anomaly lies in test; threshold rule percentile
(validation holds no anomaly). Daphnet S06R02E0: aeon's excerpt holds no labelled anomaly,
which the script reports instead of a meaningless score. Prints one JSON line.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from momentad import config, loaders
from momentad.data import Split
from momentad.detectors.registry import baseline_names, configure, detector_class
from momentad.evaluate import evaluate
from momentad.metrics import compute_metrics, find_period
from momentad.preprocess import preprocess
from momentad.windows import build_index


def aeon_data() -> Path:
    spec = importlib.util.find_spec("aeon")
    if spec is None:
        raise SystemExit("aeon is not installed: run `make setup` (it is in requirements.lock)")
    return Path(spec.submodule_search_locations[0]) / "datasets" / "data"


def splits_for(cfg: config.Params) -> dict[str, Split]:
    raw = loaders.load(cfg.data, seed=42)
    processed = preprocess(raw, cfg.data)
    index = build_index(processed.splits, cfg.window)
    feats = processed.schema["features"]
    return {k: Split(k, processed.splits[k], feats, index[k]) for k in processed.splits}


def main() -> None:
    p = yaml.safe_load(Path("params.yaml").read_text())
    root = aeon_data()
    full = pd.read_csv(root / "KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv")
    a = np.flatnonzero(full["is_anomaly"])
    out: dict = {"KDD-TSAD_135": {}, "Daphnet_S06R02E0": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"135_UCR_Anomaly_InternalBleeding16_1200_{a[0]}_{a[-1] + 1}.txt"
        path.write_text("\n".join(f"{v:.5f}" for v in full["value"]))
        split = {"train": 0.15, "val": 0.05, "test": 0.8}
        p["data"].update(source="ucr", path=str(path), split=split)
        p["window"].update(length=256, train_stride=32, eval_stride=256)
        p["evaluate"]["threshold"] = "percentile"
        cfg = configure(config.parse(p))
        s = splits_for(cfg)
        window = find_period(s["train"].values[:, 0])
        rnd = [compute_metrics(s["test"].labels, np.random.default_rng(k).random(len(s["test"])), window)["vus_pr"]
               for k in range(5)]  # fmt: skip
        out["KDD-TSAD_135"]["random_score_vus_pr"] = round(float(np.mean(rnd)), 4)
        out["KDD-TSAD_135"]["sliding_window"] = window
        for m in baseline_names():
            if m == "random_forest":
                out["KDD-TSAD_135"][m] = "not applicable: UCR training parts hold no labels (supervised method)"
                continue
            t0 = time.perf_counter()
            det = detector_class(m).from_config(cfg).fit(s["train"], X_val=s["val"])
            res = evaluate(s["val"], det.score(s["val"]), s["test"], det.score(s["test"]), cfg.evaluate, window)
            out["KDD-TSAD_135"][m] = {"vus_pr": res["test"]["vus_pr"], "auc_pr": res["test"]["auc_pr"],
                                      "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    d = pd.read_csv(root / "Daphnet_S06R02E0/S06R02E0.csv")
    out["Daphnet_S06R02E0"] = {"rows": len(d), "labelled_anomalies": int(d["is_anomaly"].sum()),
                               "result": "not evaluable: the excerpt aeon ships has no labelled anomaly"}  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
