"""TSB-AD 1.5's own PCA, KNN and CNN on real series the repository ships: the reference our
``pca``, ``knn`` and ``cnn`` are checked against (tests/test_tsbad_reference.py).

Run in a throwaway environment (never the project's lock):

    python -m venv /tmp/tsbad && /tmp/tsbad/bin/pip install torch==2.13.0 momentfm==0.1.4 pandas \\
        "scikit-learn<1.6" pyarrow==20.0.0 statsmodels tqdm torchinfo && \\
        /tmp/tsbad/bin/pip install --no-deps tsb-ad==1.5
    /tmp/tsbad/bin/python benchmarks/tsbad_detectors.py tests/data/tsbad_detectors_reference.json

Each series is written in TSB-AD's file layout (one value column, ``Label``, the train length in
the name) by :func:`series_files`, which the test uses too. Per series and detector it records
TSB-AD's VUS-PR under its published protocol (``run_Sub_PCA`` / ``run_Sub_KNN`` fit on the whole
series, ``run_CNN`` fit on the train part) and, for PCA and KNN, fitted on the train part and
scoring the whole series (the protocol ``evaluate.protocol: tsbad`` uses; for KNN also with the
scored windows z-normalised as the fitted ones are, which its decision_function skips), plus the
windows TSB-AD chose. Hyper-parameters: TSB-AD-U's tuned ones (HP_list.Optimal_Uni_algo_HP_dict).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"
SEED = 2024  # TSB-AD's scripts seed torch / numpy / random with 2024


def series_files(out: Path) -> dict[str, Path]:
    """Two real univariate series in TSB-AD's layout: the AIOps KPI (its challenge train part,
    8,784 rows, trains) and Microsoft's ingress-01 (its first 60% trains)."""
    out.mkdir(parents=True, exist_ok=True)
    iops = pd.read_csv(RAW / "iops" / "KPI_301c70d8-1630-35ac-8f96-bc1b6f4359ea.csv.gz")
    ms = pd.read_csv(RAW / "ms-cloud-monitoring" / "data-ingress-rate" / "ingress-01.csv.gz")
    files = {}
    for name, values, label, train in (("iops-301c70d8", iops["value"], iops["label"], 8784),
                                       ("ingress-01", ms["Value"], ms["Label"], int(0.6 * len(ms)))):  # fmt: skip
        first = int(np.flatnonzero(label.to_numpy())[0])
        path = out / f"{name}_tr_{train}_1st_{first}.csv"
        pd.DataFrame({"value": values.astype(float), "Label": label.astype(int)}).to_csv(path, index=False)
        files[name] = path
    return files


def cnn_scaled(out_json: Path) -> None:
    """Add TSB-AD's CNN on the series scaled as our preprocess scales it (the train part's mean
    and standard deviation): its published run reads raw values (ingress-01 is ~1.7e6)."""
    import random

    import torch
    from TSB_AD.evaluation.metrics import get_metrics
    from TSB_AD.model_wrapper import run_CNN

    result = json.loads(out_json.read_text())
    for name, path in series_files(Path("/tmp/tsbad-series")).items():
        df = pd.read_csv(path)
        data, label = df[["value"]].to_numpy(dtype=float), df["Label"].to_numpy()
        row = result["series"][name]
        train = data[: row["train_rows"]]
        scaled = (data - train.mean(axis=0)) / train.std(axis=0)
        random.seed(SEED)
        np.random.seed(SEED)
        torch.manual_seed(SEED)
        score = run_CNN(scaled[: row["train_rows"]], scaled, window_size=50, num_channel=[32, 32, 40], lr=0.0008)
        row["cnn_scaled_input"] = float(get_metrics(score, label, slidingWindow=row["vus_window"])["VUS-PR"])
        print(name, row["cnn_scaled_input"])
    out_json.write_text(json.dumps(result, indent=2) + "\n")


def reference(out_json: Path) -> None:
    import random

    import torch
    from TSB_AD.evaluation.metrics import get_metrics
    from TSB_AD.model_wrapper import run_CNN, run_Sub_KNN, run_Sub_PCA
    from TSB_AD.models.feature import Window
    from TSB_AD.models.KNN import KNN
    from TSB_AD.models.PCA import PCA
    from TSB_AD.utils.slidingWindows import find_length_rank
    from TSB_AD.utils.utility import zscore

    def vus(score, label, window):
        return float(get_metrics(np.asarray(score).ravel(), label, slidingWindow=window)["VUS-PR"])

    result = {"source": "TSB-AD 1.5 (pip install tsb-ad==1.5), TSB-AD-U tuned hyper-parameters", "series": {}}
    for name, path in series_files(Path("/tmp/tsbad-series")).items():
        df = pd.read_csv(path)
        data, label = df[["value"]].to_numpy(dtype=float), df["Label"].to_numpy()
        train = data[: int(path.stem.split("_tr_")[1].split("_")[0])]
        window = find_length_rank(data, rank=1)
        w1, w2 = find_length_rank(data, rank=1), find_length_rank(data, rank=2)
        row = {"file": path.name, "rows": len(data), "train_rows": len(train), "vus_window": int(window),
               "pca_window": int(w1), "knn_window": int(w2)}  # fmt: skip
        row["pca_published"] = vus(run_Sub_PCA(data, periodicity=1, n_components=None), label, window)
        semi = PCA(slidingWindow=w1, n_components=None).fit(train)
        row["pca_train_part"] = vus(semi.decision_function(data), label, window)
        row["knn_published"] = vus(run_Sub_KNN(data, n_neighbors=50, periodicity=2), label, window)
        knn = KNN(slidingWindow=w2, n_neighbors=50).fit(train)
        row["knn_train_part"] = vus(knn.decision_function(data), label, window)
        # its decision_function skips the per-window z-normalisation fit applies: the same
        # fitted tree queried with normalised windows is Sub-KNN fitted on the train part
        windows = zscore(Window(window=w2).convert(data), axis=1, ddof=1)
        dist = knn.tree_.query(windows, k=50)[0][:, -1]
        padded = np.concatenate([[dist[0]] * int(np.ceil((w2 - 1) / 2)), dist, [dist[-1]] * ((w2 - 1) // 2)])
        row["knn_train_part_normalized"] = vus(padded, label, window)
        random.seed(SEED)
        np.random.seed(SEED)
        torch.manual_seed(SEED)
        row["cnn_published"] = vus(run_CNN(train, data, window_size=50, num_channel=[32, 32, 40], lr=0.0008), label,
                                   window)  # fmt: skip
        result["series"][name] = row
        print(name, json.dumps(row))
    out_json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    # `... tsbad_detectors.py OUT.json` computes everything; `... OUT.json cnn_scaled` adds that row
    (cnn_scaled if sys.argv[2:] == ["cnn_scaled"] else reference)(Path(sys.argv[1]))
