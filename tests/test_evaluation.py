"""Metrics, bootstrap intervals, slices, error costs and the deployment gate."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

import mlkit.evaluation as ev
from mlkit import usecases
from mlkit.errors import DataError, ParameterError


def _noisy_labels(n: int, accuracy: float = 0.8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Balanced 0/1 labels and predictions that are right about ``accuracy`` of the time."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, n)
    wrong = rng.random(n) > accuracy
    return y_true, np.where(wrong, 1 - y_true, y_true)


def _rare_positive_scores(n: int = 400, positives: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A test set with very few positives, so many resamples hold a single class."""
    rng = np.random.default_rng(seed)
    y_true = np.zeros(n, dtype=int)
    y_true[:positives] = 1
    scores = rng.random(n) * 0.5 + 0.4 * y_true
    return y_true, scores


# --- public surface -------------------------------------------------------------------------


def test_public_names_are_declared_and_exist():
    for name in ["bootstrap_interval", "slice_metrics", "cost", "deployment_gate", "gate_verdict"]:
        assert name in ev.__all__
    for name in ev.__all__:
        assert hasattr(ev, name), name


def test_existing_metric_helpers_are_unchanged():
    assert ev.metric("wape").greater_is_better is False
    assert round(ev.score("wape", [10, 20, 30], y_pred=[12, 18, 30]), 3) == 0.067
    assert ev.scorer("recall") == "recall"


# --- bootstrap_interval ---------------------------------------------------------------------


def test_interval_contains_the_point_and_has_the_documented_keys():
    y_true, y_pred = _noisy_labels(500)
    ci = ev.bootstrap_interval(y_true, y_pred, "accuracy", n_resamples=300)
    assert set(ci) == {"metric", "point", "low", "high", "confidence", "n_resamples", "skipped"}
    assert ci["low"] <= ci["point"] <= ci["high"]
    assert ci["point"] == pytest.approx(np.mean(y_true == y_pred))
    assert (ci["metric"], ci["n_resamples"], ci["skipped"], ci["confidence"]) == ("accuracy", 300, 0, 0.95)


def test_interval_is_narrower_with_more_data():
    small = ev.bootstrap_interval(*_noisy_labels(200), "accuracy", n_resamples=300)
    large = ev.bootstrap_interval(*_noisy_labels(5000), "accuracy", n_resamples=300)
    assert large["high"] - large["low"] < (small["high"] - small["low"]) / 2


def test_interval_is_narrower_at_lower_confidence():
    y_true, y_pred = _noisy_labels(500)
    wide = ev.bootstrap_interval(y_true, y_pred, "accuracy", n_resamples=300, confidence=0.95)
    narrow = ev.bootstrap_interval(y_true, y_pred, "accuracy", n_resamples=300, confidence=0.5)
    assert narrow["high"] - narrow["low"] < wide["high"] - wide["low"]


def test_interval_is_deterministic_by_seed():
    y_true, y_pred = _noisy_labels(300)
    a = ev.bootstrap_interval(y_true, y_pred, "f2", n_resamples=200, seed=7)
    b = ev.bootstrap_interval(y_true, y_pred, "f2", n_resamples=200, seed=7)
    c = ev.bootstrap_interval(y_true, y_pred, "f2", n_resamples=200, seed=8)
    assert a == b
    assert (a["low"], a["high"]) != (c["low"], c["high"])


def test_interval_matches_a_plain_numpy_bootstrap():
    y_true, y_pred = _noisy_labels(300)
    rng = np.random.default_rng(3)
    values = []
    for _ in range(200):
        idx = rng.integers(0, len(y_true), size=len(y_true))
        values.append(np.mean(y_true[idx] == y_pred[idx]))
    ci = ev.bootstrap_interval(y_true, y_pred, "accuracy", n_resamples=200, seed=3)
    assert (ci["low"], ci["high"]) == pytest.approx(tuple(np.quantile(values, [0.025, 0.975])))


def _loop_values(name, y_true, y, n_resamples=60, seed=5):
    """The metric on each resample, one scikit-learn call at a time (the slow, obvious way)."""
    m = ev.metric(name)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_resamples):
        idx = rng.integers(0, len(y_true), size=len(y_true))
        if m.needs == "scores" and len(np.unique(y_true[idx])) < 2:
            out.append(np.nan)  # a ranking metric needs both classes
        elif name in ("recall", "f2") and not (y_true[idx] == 1).any():
            out.append(np.nan)  # recall needs an actual positive
        else:
            out.append(m(y_true[idx], y[idx]))
    return np.array(out)


def _data_for(name, seed=0):
    rng = np.random.default_rng(seed)
    if name in ("mae", "rmse", "wape", "r2"):
        y_true = rng.gamma(2, 10, 150)
        return y_true, y_true + rng.normal(0, 4, 150)
    y_true = (rng.random(150) < 0.03).astype(int)  # rare positives: some resamples have none
    if ev.metric(name).needs == "scores":
        return y_true, np.round(rng.random(150) * 0.6 + 0.3 * y_true, 1)  # rounded: many ties
    return y_true, np.where(rng.random(150) < 0.75, y_true, 1 - y_true)


@pytest.mark.parametrize("name", sorted(ev.METRICS))
def test_fast_resampling_gives_the_same_values_as_the_loop(name):
    y_true, y = _data_for(name)
    got = ev.bootstrap_interval(y_true, y, name, n_resamples=60, seed=5, return_values=True)["values"]
    expected = _loop_values(name, y_true, y)
    np.testing.assert_allclose(got, expected[np.isfinite(expected)], rtol=1e-10, atol=1e-12)


def test_balanced_accuracy_fast_path_matches_for_multiclass_labels():
    rng = np.random.default_rng(1)
    y_true = rng.choice(np.array(["a", "b", "c"], dtype=object), 120, p=[0.7, 0.25, 0.05])
    y = np.where(rng.random(120) < 0.7, y_true, "a")
    got = ev.bootstrap_interval(y_true, y, "balanced_accuracy", n_resamples=60, seed=5, return_values=True)["values"]
    np.testing.assert_allclose(got, _loop_values("balanced_accuracy", y_true, y))


def test_labels_other_than_0_1_fall_back_to_the_metric_itself():
    y_true, scores = _data_for("roc_auc")
    shifted = ev.bootstrap_interval(y_true + 1, scores, "roc_auc", n_resamples=50, seed=2)
    plain = ev.bootstrap_interval(y_true, scores, "roc_auc", n_resamples=50, seed=2)
    assert shifted["low"] == pytest.approx(plain["low"]) and shifted["high"] == pytest.approx(plain["high"])


def test_error_metric_interval_works_for_regression():
    rng = np.random.default_rng(0)
    y_true = rng.gamma(5, 10, 400)
    y_pred = y_true + rng.normal(0, 5, 400)
    ci = ev.bootstrap_interval(y_true, y_pred, "mae", n_resamples=200)
    assert 3 < ci["low"] <= ci["point"] <= ci["high"] < 5


def test_resamples_with_a_single_class_are_skipped_and_counted():
    y_true, scores = _rare_positive_scores()
    ci = ev.bootstrap_interval(y_true, scores, "average_precision", n_resamples=300)
    assert 0 < ci["skipped"] < 300
    assert ci["low"] <= ci["point"] <= ci["high"]
    recall = ev.bootstrap_interval(y_true, (scores > 0.5).astype(int), "recall", n_resamples=300)
    assert 0 < recall["skipped"] < 300  # recall is undefined on a resample without positives
    precision = ev.bootstrap_interval(y_true, (scores > 0.5).astype(int), "precision", n_resamples=300)
    assert precision["skipped"] == 0  # precision is 0 by convention when nothing is flagged


def test_multiclass_string_labels_work():
    rng = np.random.default_rng(0)
    y_true = rng.choice(["setosa", "versicolor", "virginica"], 300)
    y_pred = np.where(rng.random(300) < 0.8, y_true, "setosa")
    ci = ev.bootstrap_interval(y_true, y_pred, "balanced_accuracy", n_resamples=100)
    assert ci["low"] <= ci["point"] <= ci["high"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_resamples": 0}, "n_resamples"),
        ({"n_resamples": 10.5}, "n_resamples"),
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 95}, "confidence"),
    ],
)
def test_bad_bootstrap_options_name_the_fix(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        ev.bootstrap_interval([0, 1, 1], [0, 1, 0], "accuracy", **kwargs)


def test_unknown_metric_lists_the_choices():
    with pytest.raises(ParameterError, match="choose one of"):
        ev.bootstrap_interval([0, 1], [0, 1], "acuracy")


def test_bad_bootstrap_data_says_what_is_wrong():
    with pytest.raises(DataError, match="3 rows but y has 2"):
        ev.bootstrap_interval([0, 1, 1], [0, 1], "accuracy")
    with pytest.raises(DataError, match="at least 2"):
        ev.bootstrap_interval([1], [1], "accuracy")
    with pytest.raises(DataError, match="both classes"):
        ev.bootstrap_interval([0, 0, 0], [0.1, 0.2, 0.3], "roc_auc")
    with pytest.raises(DataError, match="at least one positive"):
        ev.bootstrap_interval([0, 0, 0], [0, 1, 0], "recall")
    with pytest.raises(DataError, match=r"proba\[:, 1\]"):
        ev.bootstrap_interval([0, 1], np.array([[0.9, 0.1], [0.2, 0.8]]), "roc_auc")


def test_metric_undefined_on_every_resample_is_a_clear_error():
    # with seed 3 the single resample of 200 rows happens to miss the one positive row
    with pytest.raises(DataError, match="every one of"):
        ev.bootstrap_interval([0] * 199 + [1], np.linspace(0, 1, 200), "roc_auc", n_resamples=1, seed=3)


# --- slice_metrics --------------------------------------------------------------------------


def _sliced_test_set():
    frame = pd.DataFrame({"channel": ["web"] * 60 + ["shop"] * 30 + ["phone"] * 10, "amount": np.arange(100.0)})
    y_true = np.array([1, 0] * 50)
    y_pred = y_true.copy()
    y_pred[60:75] = 1 - y_pred[60:75]  # the shop slice is half wrong
    return frame, y_true, y_pred


def test_slices_report_rows_metric_and_small_flag():
    frame, y_true, y_pred = _sliced_test_set()
    out = ev.slice_metrics(frame, y_true, y_pred, "accuracy", by="channel", min_rows=20)
    assert out.columns.tolist() == ["channel", "rows", "accuracy", "small"]
    got = out.set_index("channel")
    assert got.loc["shop", "accuracy"] == 0.5 and got.loc["web", "accuracy"] == 1.0
    assert got["rows"].to_dict() == {"phone": 10, "shop": 30, "web": 60}
    assert got["small"].to_dict() == {"phone": True, "shop": False, "web": False}


def test_slices_by_binned_numeric_series_keep_bin_order():
    frame, y_true, y_pred = _sliced_test_set()
    bins = pd.cut(frame["amount"], [-1, 25, 50, 100]).rename("amount band")
    out = ev.slice_metrics(frame, y_true, y_pred, "accuracy", by=bins)
    assert out.columns[0] == "amount band"
    assert out["rows"].tolist() == [26, 25, 49]
    assert out["amount band"].astype(str).tolist() == ["(-1, 25]", "(25, 50]", "(50, 100]"]


def test_slices_with_one_class_have_undefined_ranking_metric():
    frame = pd.DataFrame({"g": ["a"] * 20 + ["b"] * 20})
    y_true = np.array([0, 1] * 10 + [0] * 20)
    out = ev.slice_metrics(frame, y_true, np.linspace(0, 1, 40), "roc_auc", by="g")
    assert out["roc_auc"].notna().tolist() == [True, False]


def test_slices_with_few_positives_are_flagged_for_rare_classes():
    frame = pd.DataFrame({"g": ["a"] * 100 + ["b"] * 100})
    y_true = np.array([1] * 20 + [0] * 80 + [1] * 3 + [0] * 97)
    out = ev.slice_metrics(frame, y_true, y_true, "recall", by="g", positive_label=1, min_positives=10)
    assert out.columns.tolist() == ["g", "rows", "positives", "recall", "small"]
    assert out["positives"].tolist() == [20, 3]
    assert out["small"].tolist() == [False, True]


@pytest.mark.parametrize("name", sorted(ev.METRICS))
def test_slice_values_equal_the_metric_on_each_slice(name):
    y_true, y = _data_for(name, seed=3)
    if name not in ("mae", "rmse", "wape", "r2"):
        y_true = np.where(np.arange(150) % 5 == 0, 1, y_true)  # positives in both slices
    groups = np.where(np.arange(150) < 100, "a", "b")
    out = ev.slice_metrics(pd.DataFrame({"g": groups}), y_true, y, name, by="g")
    m = ev.metric(name)
    expected = [m(y_true[groups == g], y[groups == g]) for g in ("a", "b")]
    np.testing.assert_allclose(out[name].to_numpy(), expected, rtol=1e-10)


def test_recall_is_undefined_on_a_slice_without_positives():
    frame = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 4})
    out = ev.slice_metrics(frame, [1, 1, 0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 1, 0, 0, 0], "recall", by="g", min_rows=1)
    assert out["recall"].tolist()[0] == 0.5 and np.isnan(out["recall"].tolist()[1])


def test_slices_score_multiclass_labels_without_warnings():
    frame = pd.DataFrame({"g": ["a"] * 3 + ["b"] * 3})
    y_true = np.array(["x", "x", "x", "y", "z", "z"], dtype=object)
    y_pred = np.array(["x", "x", "y", "y", "z", "y"], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = ev.slice_metrics(frame, y_true, y_pred, "balanced_accuracy", by="g", min_rows=1)
    assert out["balanced_accuracy"].round(3).tolist() == [0.667, 0.75]


def test_missing_slice_labels_form_their_own_slice():
    frame = pd.DataFrame({"g": ["a", None, "a", None]})
    out = ev.slice_metrics(frame, [1, 0, 1, 0], [1, 0, 0, 0], "accuracy", by="g", min_rows=1)
    assert out["rows"].tolist() == [2, 2]


def test_bad_slice_input_names_the_fix():
    frame, y_true, y_pred = _sliced_test_set()
    with pytest.raises(DataError, match="Columns: channel, amount"):
        ev.slice_metrics(frame, y_true, y_pred, "accuracy", by="chanel")
    with pytest.raises(DataError, match="same test rows"):
        ev.slice_metrics(frame.head(10), y_true, y_pred, "accuracy", by="channel")
    with pytest.raises(DataError, match="one label per row"):
        ev.slice_metrics(frame, y_true, y_pred, "accuracy", by=pd.Series(["a"] * 3))
    with pytest.raises(ParameterError, match="min_rows"):
        ev.slice_metrics(frame, y_true, y_pred, "accuracy", by="channel", min_rows=0)
    with pytest.raises(ParameterError, match="min_positives"):
        ev.slice_metrics(frame, y_true, y_pred, "accuracy", by="channel", positive_label=1, min_positives=-1)


# --- cost -----------------------------------------------------------------------------------


def test_classification_cost_counts_false_negatives_and_false_positives():
    uc = usecases.get("manufacturing-maintenance")  # FN 20000, FP 500
    y_true = [1, 1, 1, 0, 0, 0]
    y_pred = [1, 0, 0, 1, 0, 0]
    assert ev.cost(uc, y_true, y_pred) == 2 * 20_000 + 500
    assert ev.cost(uc, y_true, y_true) == 0.0


def test_amount_cost_uses_each_missed_transaction_amount():
    y_true = [1, 1, 0, 0]
    y_pred = [0, 1, 1, 0]
    amounts = pd.Series([120.0, 999.0, 50.0, 10.0])
    assert ev.cost("finance-fraud", y_true, y_pred, amounts=amounts) == 120.0 + 5
    with pytest.raises(ParameterError, match="amounts="):
        ev.cost("finance-fraud", y_true, y_pred)
    with pytest.raises(ParameterError, match="one per row"):
        ev.cost("finance-fraud", y_true, y_pred, amounts=[1.0, 2.0])


def test_regression_cost_prices_under_and_over_prediction():
    # retail: under 3 EUR/unit, over 1 EUR/unit
    assert ev.cost("retail-demand", [10, 10, 10], [7, 12, 10]) == 3 * 3.0 + 2 * 1.0


def test_cost_refuses_scores_and_missing_cost_models():
    with pytest.raises(ParameterError, match="threshold the scores"):
        ev.cost("healthcare-diagnosis", [0, 1], [0.2, 0.7])
    user = usecases.custom(name="x.csv", target="y", task="classification")
    with pytest.raises(ParameterError, match="no cost model"):
        ev.cost(user, [0, 1], [0, 1])
    multi = dataclasses.replace(
        usecases.custom(name="iris.csv", target="species", task="classification", positive_label=None),
        cost_model={"false_negative": 1, "false_positive": 1},
    )
    with pytest.raises(ParameterError, match="multiclass"):
        ev.cost(multi, ["a", "b"], ["a", "a"])


# --- deployment_gate and gate_verdict ---------------------------------------------------------


def _ci(point, low, high):
    return {"point": point, "low": low, "high": high}


def test_gate_goes_when_every_check_passes():
    table = ev.deployment_gate(
        "healthcare-diagnosis",
        intervals={"recall": _ci(0.95, 0.9, 0.99), "roc_auc": _ci(0.99, 0.97, 1.0)},
        baseline=0.0,
        behavioural={"invariance": True, "direction": True},
    )
    assert table.columns.tolist() == ["check", "value", "threshold", "passed"]
    assert table["check"].tolist() == [
        "recall >= 0.85 (low end of interval)",
        "roc_auc >= 0.95 (low end of interval)",
        "recall beats the baseline (low end of interval)",
        "behavioural test: invariance",
        "behavioural test: direction",
    ]
    assert table["threshold"].tolist()[:3] == [0.85, 0.95, 0.0]
    assert ev.gate_verdict(table) == "GO"


def test_gate_uses_the_pessimistic_end_so_a_good_point_can_still_fail():
    table = ev.deployment_gate("finance-fraud", intervals={"average_precision": _ci(0.35, 0.25, 0.45)}, baseline=0.01)
    assert table.loc[0, "value"] == 0.25 and not table.loc[0, "passed"]
    assert ev.gate_verdict(table) == "NO-GO"


def test_error_metric_gate_checks_the_high_end_against_a_maximum():
    limit = usecases.get("transport-traffic").gate["primary_max"]
    ok = ev.deployment_gate("transport-traffic", intervals={"mae": _ci(limit - 50, limit - 70, limit - 10)}, baseline=1500.0)
    bad = ev.deployment_gate("transport-traffic", intervals={"mae": _ci(limit - 50, limit - 70, limit + 10)}, baseline=1500.0)
    assert ok["check"][0] == f"mae <= {limit:g} (high end of interval)"
    assert ev.gate_verdict(ok) == "GO" and ev.gate_verdict(bad) == "NO-GO"
    worse_than_baseline = ev.deployment_gate(
        "transport-traffic", intervals={"mae": _ci(limit - 50, limit - 70, limit - 10)}, baseline=limit - 30
    )
    assert worse_than_baseline["passed"].tolist() == [True, False]


def test_a_failed_behavioural_test_blocks_deployment():
    table = ev.deployment_gate(
        "retail-demand",
        intervals={"wape": _ci(0.2, 0.18, 0.22)},
        baseline=0.5,
        behavioural={"promotion lifts demand": False},
    )
    assert table["value"].tolist()[-1] == "fail"
    assert ev.gate_verdict(table) == "NO-GO"


def test_user_csv_gate_is_the_baseline_and_behavioural_tests():
    user = usecases.custom(name="churn.csv", target="churned", task="classification")
    table = ev.deployment_gate(
        user, intervals={"roc_auc": _ci(0.8, 0.75, 0.85)}, baseline=0.5, behavioural={"invariance": True}
    )
    assert table["check"].tolist() == [
        "roc_auc beats the baseline (low end of interval)",
        "behavioural test: invariance",
    ]
    assert ev.gate_verdict(table) == "GO"


def test_gate_without_a_needed_interval_names_the_fix():
    with pytest.raises(ParameterError, match="bootstrap_interval"):
        ev.deployment_gate("healthcare-diagnosis", intervals={"recall": _ci(0.9, 0.85, 0.95)}, baseline=0.0)
    with pytest.raises(ParameterError, match="no 'low'"):
        ev.deployment_gate("finance-fraud", intervals={"average_precision": {"point": 0.4}}, baseline=0.0)


def test_verdict_refuses_an_empty_or_foreign_table():
    with pytest.raises(ParameterError, match="no checks"):
        ev.gate_verdict(pd.DataFrame({"passed": []}))
    with pytest.raises(ParameterError, match="passed"):
        ev.gate_verdict(pd.DataFrame({"ok": [True]}))


def test_slices_keep_rows_with_a_missing_label_in_their_own_slice():
    values = pd.Series([1.0, 2.0, np.nan, 4.0, np.nan, 6.0])
    bins = pd.cut(values, [0, 3, 7])
    y_true = np.array([1, 2, 3, 4, 5, 6])
    table = ev.slice_metrics(pd.DataFrame({"v": values}), y_true, y_true, "mae", by=bins, min_rows=1)
    assert table["rows"].tolist() == [2, 2, 2] and table["rows"].sum() == len(values)
    assert pd.isna(table.iloc[-1, 0])
