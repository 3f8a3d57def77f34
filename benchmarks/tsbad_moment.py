"""TSB-AD 1.5's own MOMENT on two real series the repository ships, from a committed random-init
checkpoint: the reference the ``tsbad`` recipe is checked against (tests/test_tsbad_moment.py).

Run in a throwaway environment (never the project's lock):

    python -m venv /tmp/tsbad && /tmp/tsbad/bin/pip install torch==2.13.0 momentfm==0.1.4 pandas \\
        "scikit-learn<1.6" pyarrow==20.0.0 statsmodels tqdm torchinfo && \\
        /tmp/tsbad/bin/pip install --no-deps tsb-ad==1.5
    /tmp/tsbad/bin/python benchmarks/tsbad_moment.py tests/data/tsbad_moment/reference.parquet

TSB-AD's ``TSB_AD.models.MOMENT.MOMENT`` runs unchanged except for what this machine and the
installed momentfm require: ``from_pretrained("AutonLab/MOMENT-1-base")`` loads the committed
checkpoint instead (no network), ``.to("cuda")`` goes to the CPU, and the model's positional call
``model(batch_x, ...)`` (a TypeError with momentfm 0.1.4, whose forward takes keywords only) is
passed on as ``x_enc=batch_x``. Per series it records the zero-shot scores (``zero_shot``) and
the fine-tuned ones (``fit`` on the ``_tr_N_`` part, then ``decision_function`` on the whole
series), torch seeded with ``SEED`` before ``zero_shot``, before ``fit`` and again before
``decision_function``: the pipeline's seed, which its ``tsbad`` recipe uses the same way. The
seeding matters because TSB-AD scores with dropout on: momentfm's ``from_pretrained`` returns the
model in training mode and TSB-AD never calls ``eval()``, zero-shot included.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "data" / "raw"
CHECKPOINT = ROOT / "tests" / "data" / "tsbad_moment" / "checkpoint"
SEED = 42  # params.yaml's seed = the model seed of draw 0
WINDOW = 64  # TSB-AD's tuned MOMENT window (HP_list.Optimal_Uni_algo_HP_dict)
THREADS = 2  # params.yaml's threads


def series_files(out: Path) -> dict[str, Path]:
    """Two real univariate series in TSB-AD's layout: 4,000 rows of the AIOps KPI (its first
    2,000 train) and rows 2,000-6,000 of Microsoft's ingress-01 (1,500 train; its first
    anomaly falls in the rest)."""
    out.mkdir(parents=True, exist_ok=True)
    iops = pd.read_csv(RAW / "iops" / "KPI_301c70d8-1630-35ac-8f96-bc1b6f4359ea.csv.gz").iloc[:4000]
    ms = pd.read_csv(RAW / "ms-cloud-monitoring" / "data-ingress-rate" / "ingress-01.csv.gz").iloc[2000:6000]
    files = {}
    for name, values, label, train in (("iops-301c70d8", iops["value"], iops["label"], 2000),
                                       ("ingress-01", ms["Value"], ms["Label"], 1500)):  # fmt: skip
        first = int(np.flatnonzero(label.to_numpy())[0])
        path = out / f"{name}_tr_{train}_1st_{first}.csv"
        pd.DataFrame({"value": values.astype(float).to_numpy(), "Label": label.astype(int).to_numpy()}).to_csv(
            path, index=False
        )
        files[name] = path
    return files


def _shim() -> None:
    """Redirect the hub id, CUDA and the positional call; nothing of TSB-AD's code changes."""
    import momentfm
    import torch
    from TSB_AD.models import MOMENT as tsbad_moment

    load = momentfm.MOMENTPipeline.from_pretrained

    class Pipeline(momentfm.MOMENTPipeline):
        @classmethod
        def from_pretrained(cls, _hub_id, **kwargs):
            return load(str(CHECKPOINT), **kwargs)

    call = momentfm.MOMENTPipeline.__call__

    def keyword_call(self, *args, **kwargs):
        if args:
            kwargs["x_enc"], args = args[0], args[1:]
        return call(self, *args, **kwargs)

    momentfm.MOMENTPipeline.__call__ = keyword_call
    tsbad_moment.MOMENTPipeline = Pipeline
    for cls in (torch.Tensor, torch.nn.Module):
        to = cls.to

        def cpu_to(self, *args, _to=to, **kwargs):
            return _to(self, *("cpu" if a == "cuda" else a for a in args), **kwargs)

        cls.to = cpu_to


def main(out: Path) -> None:
    import torch

    _shim()
    from TSB_AD.models.MOMENT import MOMENT

    torch.set_num_threads(THREADS)
    rows = []
    for name, path in series_files(Path("/tmp/tsbad-moment-series")).items():
        df = pd.read_csv(path).dropna()  # as TSB-AD's benchmark scripts read a file
        data = df.iloc[:, 0:-1].values.astype(float)
        train = int(path.stem.split("_")[-3])
        zs = MOMENT(win_size=WINDOW, input_c=data.shape[1])
        torch.manual_seed(SEED)  # from_pretrained leaves the model in training mode: dropout is on
        zs.zero_shot(data)
        ft = MOMENT(win_size=WINDOW, input_c=data.shape[1])
        torch.manual_seed(SEED)
        ft.fit(data[:train])
        torch.manual_seed(SEED)
        ft_scores = ft.decision_function(data)
        rows.append(pd.DataFrame({"series": name, "row": np.arange(len(data)),
                                  "zero_shot": zs.decision_scores_, "fine_tuned": ft_scores}))  # fmt: skip
        print(f"{name}: {len(data)} rows, zero-shot range {np.ptp(zs.decision_scores_):.6g}, "
              f"fine-tuned range {np.ptp(ft_scores):.6g}")  # fmt: skip
    pd.concat(rows, ignore_index=True).to_parquet(out, index=False)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
