"""Build metric test vectors from real series: aeon's KDD-TSAD_135 (UCR InternalBleeding16)
scored by the project's detectors, plus the default synthetic test split scored likewise.

Step 1 (project .venv):   python benchmarks/tsbad_real_vectors.py inputs tests/data/tsb_ad_real_inputs.parquet
Step 2 (throwaway venv with `pip install --no-deps tsb-ad==1.5` + numpy, scikit-learn):
    python benchmarks/tsbad_real_vectors.py expected tests/data/tsb_ad_real_inputs.parquet \
        tests/data/tsb_ad_real_expected.json
Step 2 imports only TSB_AD.evaluation.metrics.get_metrics; tsb-ad never enters the lock.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def inputs(out: Path) -> None:
    import importlib.util

    import numpy as np
    import pandas as pd
    import yaml

    from momentad import config
    from momentad.data import Split
    from momentad.detectors.base import RunContext
    from momentad.detectors.registry import configure, detector_class
    from momentad.loaders import load
    from momentad.metrics import find_period
    from momentad.preprocess import preprocess
    from momentad.windows import build_index

    spec = importlib.util.find_spec("aeon")
    root = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    full = pd.read_csv(root / "KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv")
    a = np.flatnonzero(full["is_anomaly"])
    tmp = Path("/tmp/momentad-vectors")
    tmp.mkdir(exist_ok=True)
    path = tmp / f"135_UCR_Anomaly_InternalBleeding16_1200_{a[0]}_{a[-1] + 1}.txt"
    path.write_text("\n".join(f"{v:.5f}" for v in full["value"]))
    p = yaml.safe_load(Path("params.yaml").read_text())
    p["data"].update(source="ucr", path=str(path), split={"train": 0.15, "val": 0.05, "test": 0.8})
    p["window"].update(length=256, train_stride=32, eval_stride=256)
    cfg = configure(config.parse(p))
    raw = load(cfg.data, 42)
    pr = preprocess(raw, cfg.data)
    index = build_index(pr.splits, cfg.window)
    feats = pr.schema["features"]
    s = {k: Split(k, pr.splits[k], feats, index[k]) for k in pr.splits}
    window = find_period(s["train"].values[:, 0])
    rows = []
    for m in ("isolation_forest", "lstm_ae", "tcn_ae"):
        ctx = RunContext(seed=cfg.seed, window=cfg.window)
        det = detector_class(m).from_config(cfg, ctx).fit(s["train"], X_val=s["val"])
        sc = det.score(s["test"])
        rows.append(pd.DataFrame({"case": f"ucr135_{m}", "label": s["test"].labels, "score": sc.astype(np.float32),
                                  "sliding_window": window}))  # fmt: skip
    rng = np.random.default_rng(0)
    rows.append(
        pd.DataFrame(
            {
                "case": "ucr135_random",
                "label": s["test"].labels,
                "score": rng.random(len(s["test"])).astype(np.float32),
                "sliding_window": window,
            }
        )
    )
    # many events: the synthetic test split (14 fault events) scored by the committed runs
    for m, budget in (("isolation_forest", "full"), ("tcn_ae", "full"), ("moment", 0)):
        f = Path(f"data/scores/{m}/{budget}.parquet")
        if f.is_file():
            d = pd.read_parquet(f)
            rows.append(
                pd.DataFrame(
                    {
                        "case": f"synthetic_{m}",
                        "label": d["label"].to_numpy().astype(np.int8),
                        "score": d["score"].to_numpy().astype(np.float32),
                        "sliding_window": 60,
                    }
                )
            )
    df = pd.concat(rows, ignore_index=True)
    df["label"] = df["label"].astype(np.int8)
    df.to_parquet(out, index=False)
    print(out, len(df), sorted(df["case"].unique()))


def expected(inp: Path, out: Path) -> None:
    import numpy as np
    import pandas as pd
    from TSB_AD.evaluation.metrics import get_metrics

    df = pd.read_parquet(inp)
    cases = {}
    for case, g in df.groupby("case", sort=True):
        score = g["score"].to_numpy().astype(np.float64)
        label = g["label"].to_numpy().astype(int)
        got = get_metrics(score, label, slidingWindow=int(g["sliding_window"].iloc[0]))
        cases[case] = {k: float(v) for k, v in got.items()}
        print(case, cases[case])
    out.write_text(json.dumps({"source": "TSB-AD 1.5 get_metrics", "cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "inputs":
        inputs(Path(sys.argv[2]))
    else:
        expected(Path(sys.argv[2]), Path(sys.argv[3]))
