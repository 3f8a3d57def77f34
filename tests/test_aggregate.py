"""Which row stands for a method at a budget in the study's answer (aggregate.pick): "at most b
windows of history", never chosen on test."""

import numpy as np
import pandas as pd
import pytest

from momentad.aggregate import pick
from momentad.budgets import span, too_short
from momentad.errors import NotRun


def reason(windows: int, size: int, include_anomalous: bool = True) -> str:
    """The real reason budgets.span gives for a train split of ``windows`` windows."""
    index = pd.DataFrame({"start": np.arange(windows), "stop": np.arange(windows) + 8,
                          "any_anomaly": np.zeros(windows, bool)})  # fmt: skip
    with pytest.raises(NotRun) as e:
        span(index, size, size, seed=0, draw=0, include_anomalous=include_anomalous)
    return f"not run: {e.value}"


def ok(val: float | None, test: float) -> dict:
    return {"status": "ok", "val_vus_pr": val, "vus_pr": test}


@pytest.mark.parametrize("include_anomalous", [True, False])
def test_the_reason_budgets_give_is_recognised(include_anomalous):
    assert too_short(reason(686, 1000, include_anomalous))
    assert not too_short("not run: supervised, and its training rows hold no labelled anomaly")
    assert not too_short(None) and not too_short("ok")


def test_a_short_series_stands_in_with_its_full_split():
    rows = {"100": ok(0.2, 0.3), "500": ok(0.4, 0.5), "1000": {"status": reason(686, 1000)}, "full": ok(0.6, 0.1)}
    assert pick(rows, "1000") == ("full", rows["full"])  # highest validation VUS-PR, test ignored
    assert pick(rows, "500") == ("500", rows["500"])  # the full split (686) holds more than 500
    assert pick(rows, "100") == ("100", rows["100"])
    assert pick(rows, "full") == ("full", rows["full"])


def test_candidates_up_to_the_budget_chosen_on_validation_else_the_most_data():
    moment = {"0": ok(0.5, 0.2), "100": ok(0.3, 0.9), "500": ok(0.4, 0.9), "1000": {"status": reason(600, 1000)}}
    assert pick(moment, "100") == ("0", moment["0"])  # zero-shot validates better
    assert pick(moment, "1000") == ("0", moment["0"])  # no full row: the budgets it ran
    blind = {b: {**r, "val_vus_pr": None} for b, r in moment.items() if b != "1000"}
    assert pick(blind, "500")[0] == "500" and pick(blind, "1000")[0] == "500"
    # a 1000 row that ran keeps the full split out of budget 1000
    long = {"1000": ok(0.1, 0.1), "full": ok(0.9, 0.9)}
    assert pick(long, "1000") == ("1000", long["1000"])
    assert pick({"100": {"status": "failed: x"}}, "100") is None


# -- the statistics of the study's answer, on small tables with answers known by hand or scipy --
from scipy import stats as sps  # noqa: E402

from momentad.aggregate import Roles, contests, opponents, rank_stats  # noqa: E402
from momentad.stats import cluster_bootstrap, holm, verdict_over_datasets, wilcoxon  # noqa: E402


def test_at_full_every_method_may_stand_with_any_of_its_rows():
    with_full = {"0": ok(0.9, 0.1), "100": ok(0.2, 0.2), "full": ok(0.5, 0.9)}
    without = {"0": ok(0.1, 0.1), "100": ok(0.7, 0.2)}
    assert pick(with_full, "full") == ("0", with_full["0"])  # chosen on validation, as for a method with no full row
    assert pick(without, "full") == ("100", without["100"])


def test_holm_is_the_step_down_correction():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([]) == []


def test_wilcoxon_is_scipys_with_the_rank_biserial_effect():
    d = np.array([0.1, -0.02, 0.3, 0.05, 0.0, 0.2, -0.1, 0.15])
    p, effect = wilcoxon(d)
    nz = d[d != 0]
    assert p == pytest.approx(sps.wilcoxon(nz).pvalue)
    r = sps.rankdata(np.abs(nz))
    assert effect == pytest.approx((r[nz > 0].sum() - r[nz < 0].sum()) / r.sum())
    assert wilcoxon(np.zeros(4)) == (None, None)
    assert verdict_over_datasets(0.01, -0.2) == "worse" and verdict_over_datasets(0.01, 0.2) == "better"
    assert verdict_over_datasets(0.2, -0.2) == "not distinguishable" and verdict_over_datasets(None, 1) == (
        "not distinguishable"
    )


def test_the_hierarchical_bootstrap_resamples_systems_first():
    """Ten datasets of one system at +1, one of another at -1: resampling systems first, a quarter
    of the replicates hold only the second system (mean -1) and a quarter only the first (+1), so
    the interval spans both; resampling datasets alone would sit near the pooled mean 0.82."""
    values = np.array([1.0] * 10 + [-1.0])
    lo, hi = cluster_bootstrap(values, ["a"] * 10 + ["b"], 2000, seed=0)
    assert lo == pytest.approx(-1.0) and hi == pytest.approx(1.0)
    lo, hi = cluster_bootstrap(values, [str(i) for i in range(11)], 2000, seed=0)  # one dataset per system
    assert 0.4 < lo < 0.82 < hi <= 1.0
    lo, hi = cluster_bootstrap(np.full(6, 0.3), list("aabbcc"), 500, seed=1)
    assert lo == pytest.approx(0.3) and hi == pytest.approx(0.3)


def result(val: dict[str, float | None], test: dict[str, float], labelled_val: bool = True, system="s") -> dict:
    rows = {m: {"full": {"status": "ok", "vus_pr": test[m], "val_vus_pr": val.get(m),
                         "checkpoint": "x" if m.startswith("moment") else None}} for m in test}  # fmt: skip
    return {"status": "ok", "labelled": True, "validation_labelled": labelled_val, "results": rows, "system": system,
            "uses_labels": {"rf": True}}  # fmt: skip


def test_the_opponent_is_chosen_without_test_data():
    results = {
        # validation favours knn, test favours pca: knn is the opponent
        "d1": result({"moment": 0.1, "knn": 0.9, "pca": 0.2}, {"moment": 0.5, "knn": 0.3, "pca": 0.8}),
        # no labelled validation: the best mean rank on the *other* datasets (pca there: ranks 1 and 1)
        "d2": result({}, {"moment": 0.5, "knn": 0.9, "pca": 0.1}, labelled_val=False),
        "d3": result({"moment": 0.1, "knn": 0.1, "pca": 0.1}, {"moment": 0.5, "knn": 0.2, "pca": 0.6}),
    }
    from momentad.aggregate import table

    scores = table(results, ["moment", "knn", "pca"], "full")
    opp = opponents(results, scores, ["knn", "pca"], "full")
    assert opp["d1"] == ("knn", "validation VUS-PR")
    assert opp["d2"] == ("pca", "mean rank on the other datasets")
    assert opp["d3"][0] == "knn"  # a validation tie goes to the first listed, not to test's favourite


def test_ranks_use_every_dataset_a_method_ran_on_and_name_the_incomplete_blocks():
    scores = pd.DataFrame({"a": [0.9, 0.8, 0.7, 0.9, 0.6, 0.5], "b": [0.5, 0.6, 0.2, 0.4, 0.3, np.nan],
                           "c": [0.1, 0.2, 0.3, 0.1, 0.2, 0.9]}, index=[f"d{i}" for i in range(6)])  # fmt: skip
    r = rank_stats(scores)
    assert r["n"] == {"a": 6, "b": 5, "c": 6}
    # d5: a ranks 2nd of the two that ran there; c 1st
    assert r["meanrank"]["a"] == pytest.approx((1 + 1 + 1 + 1 + 1 + 2) / 6)
    assert r["meanrank"]["c"] == pytest.approx((3 + 3 + 2 + 3 + 3 + 1) / 6)
    assert r["complete"] == [f"d{i}" for i in range(5)] and r["left_out"] == {"d5": ["b"]}
    assert r["friedman_p"] == pytest.approx(sps.friedmanchisquare(*scores.dropna().T.to_numpy()).pvalue, rel=1e-6)


def test_contests_count_wins_ties_losses_and_holm_over_every_test():
    rng = np.random.default_rng(0)
    results = {}
    for i in range(12):
        base = rng.uniform(0.3, 0.7)
        test = {"moment": base - 0.1, "moment-random-init": base - 0.2, "knn": base, "rf": base + 0.005 * (i % 3)}
        results[f"d{i}"] = result({m: 0.5 for m in test}, test, system=f"s{i % 3}")
    ro = Roles(["moment", "moment-random-init"], ["knn"], ["rf"])
    systems = {n: r["system"] for n, r in results.items()}
    cs = contests(results, ro, ["full"], systems, 300, seed=0)
    names = [c.name for c in cs]
    assert names == ["moment vs label-free classics", "moment vs supervised classics",
                     "moment-random-init vs label-free classics", "moment-random-init vs supervised classics",
                     "moment pretrained vs random-init"]  # fmt: skip
    primary = cs[0]
    assert primary.n == 12 and primary.mean == pytest.approx(-0.1) and primary.wtl == (0, 0, 12)
    assert primary.differences.to_numpy() == pytest.approx(np.full(12, -0.1))
    pretrained = cs[-1]
    assert pretrained.mean == pytest.approx(0.1) and pretrained.wtl == (12, 0, 0)
    ps = [c.p for c in cs]
    assert [c.p_holm for c in cs] == pytest.approx(holm(ps))  # one correction over the whole report
    assert primary.verdict == "worse" and pretrained.verdict == "better"


def test_zero_shot_reconstruction_error_is_compared_on_normal_test_steps(tmp_path):
    """The pretrained variant's budget-0 scores (MOMENT's squared reconstruction error) against
    its random initialisation's, on the test split's normal steps only, every readable dataset."""
    from momentad.aggregate import reconstruction_errors, reconstruction_pairs
    from momentad.layout import Layout
    from momentad.study_report import reconstruction_summary

    means = {"d0": (0.1, 0.5), "d1": (0.2, 0.4), "d2": (0.9, 0.3)}  # pretrained lower on d0, d1
    results = {}
    for name, (pre, rnd) in means.items():
        variants = ("moment", "moment-random-init")
        results[name] = {"status": "ok", "results": {m: {"0": {"status": "ok"}} for m in variants}}
        for m, level in (("moment", pre), ("moment-random-init", rnd)):
            path = Layout(tmp_path / name).scores(m, "0")
            path.parent.mkdir(parents=True, exist_ok=True)
            # the anomalous steps score 100: they must not count
            pd.DataFrame({"score": [level, level, 100.0], "label": [0, 0, 1]}).to_parquet(path)
    results["d3"] = {"status": "failed: unreadable"}
    rec = reconstruction_errors(tmp_path, results, [("moment", "moment-random-init")])
    assert list(rec.index) == ["d0", "d1", "d2"]
    assert rec.loc["d1"].tolist() == pytest.approx([0.2, 0.4])
    assert reconstruction_summary(rec) == {"datasets": 3, "lower": 2, "median_ratio": pytest.approx(0.5)}

    from types import SimpleNamespace

    ro = Roles(["moment", "moment-random-init", "moment-tsbad"], ["knn"], [])
    options = {"moment": {"zero_shot": {"score": "reconstruction"}}}  # as config.parse gives it
    same = {"moment-random-init": SimpleNamespace(set={"checkpoint": "random-init:mini"})}
    assert reconstruction_pairs(ro, options, same) == [("moment", "moment-random-init")]
    # a variant scoring otherwise (e.g. with level/scale statistics) is not a reconstruction error
    other = {"moment-random-init": SimpleNamespace(set={"zero_shot.score": "reconstruction+stats"})}
    assert reconstruction_pairs(ro, options, other) == []
