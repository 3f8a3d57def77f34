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
