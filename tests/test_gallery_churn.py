"""mlkit.gallery.churn: monthly snapshots of a subscription's customers, who cancels, and the offer's answer key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mlkit import training, usecases
from mlkit.errors import ParameterError
from mlkit.gallery.churn import ANSWER_KEY, DRIFTS, FEATURES, USE_CASE, customers


@pytest.fixture(scope="module")
def base():
    return customers(2000, months=6, seed=0)


@pytest.fixture(scope="module")
def competitor():
    return customers(2000, months=6, seed=0, drift="concept", drift_month=3)


def test_same_seed_same_frame_other_seed_other_frame():
    a, b, c = customers(200, months=2, seed=3), customers(200, months=2, seed=3), customers(200, months=2, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a["monthly_spend"].equals(c["monthly_spend"])


def test_columns_types_and_ranges(base):
    assert list(base.columns) == ["customer_id", "snapshot", *FEATURES, "churned_90d", ANSWER_KEY, "drifted"]
    assert len(base) == 2000 * 6 and base["customer_id"].is_unique
    assert (base["snapshot"].dt.day == 1).all() and base["snapshot"].is_monotonic_increasing
    assert base["snapshot"].nunique() == 6 and (base.groupby("snapshot").size() == 2000).all()
    for col in ("tenure_months", "orders_90d", "days_since_last_order", "support_calls_90d", "churned_90d", ANSWER_KEY):
        assert base[col].dtype == np.int64, col
    assert base["tenure_months"].between(1, 120).all() and base["days_since_last_order"].between(0, 90).all()
    assert base["usage_trend"].between(-1, 1).all() and (base["monthly_spend"] > 0).all()
    assert set(base["plan"]) == {"basic", "standard", "premium"}
    assert set(base["payment_method"]) == {"card", "direct_debit", "paypal"}
    assert set(base["region"]) == {"north", "south", "east", "west"}
    assert not base["drifted"].any() and not base.isna().any().any()


def test_churn_rate_is_realistic(base):
    assert 0.10 < base["churned_90d"].mean() < 0.17


def test_the_signal_is_there_and_not_perfect(base):
    """Falling usage, support calls and short tenure raise churn; a linear model ranks well but not perfectly."""
    churned = base["churned_90d"]
    assert churned[base["usage_trend"] < -0.3].mean() > 2 * churned[base["usage_trend"] > 0.3].mean()
    assert churned[base["support_calls_90d"] >= 3].mean() > 2 * churned[base["support_calls_90d"] == 0].mean()
    assert churned[base["tenure_months"] <= 3].mean() > churned[base["tenure_months"] >= 36].mean()
    X = pd.get_dummies(base[list(FEATURES)], dtype=float)
    train, test = base["snapshot"] < "2023-05-01", base["snapshot"] >= "2023-05-01"
    model = LogisticRegression(max_iter=2000).fit(X[train], churned[train])
    auc = roc_auc_score(churned[test], model.predict_proba(X[test])[:, 1])
    assert 0.72 < auc < 0.9


def test_the_offer_keeps_some_would_be_leavers_and_never_makes_anyone_leave(base):
    assert (base[ANSWER_KEY] <= base["churned_90d"]).all()
    leavers = base[base["churned_90d"] == 1]
    kept = 1 - leavers[ANSWER_KEY]
    assert 0.3 < kept.mean() < 0.5
    assert kept[leavers["support_calls_90d"] >= 3].mean() < kept[leavers["support_calls_90d"] == 0].mean() - 0.1


def test_competitor_drift_changes_who_churns_not_the_customers(base, competitor):
    pd.testing.assert_frame_equal(competitor[["customer_id", "snapshot", *FEATURES]], base[["customer_id", "snapshot", *FEATURES]])
    before = competitor["snapshot"] < "2023-04-01"
    assert (competitor["drifted"] == ~before).all()
    pd.testing.assert_frame_equal(competitor[before], base[before])
    after = competitor[~before]
    hit = (after["plan"] == "basic") & after["region"].isin(["north", "east"])
    old = base[~before]
    assert after.loc[hit, "churned_90d"].mean() > old.loc[hit, "churned_90d"].mean() + 0.15
    assert abs(after.loc[~hit, "churned_90d"].mean() - old.loc[~hit, "churned_90d"].mean()) < 0.03


def test_campaign_drift_brings_new_customers_and_more_churn(base):
    drifted = customers(2000, months=6, seed=0, drift="covariate", drift_month=3)
    after = drifted[drifted["drifted"]]
    assert (after["tenure_months"] <= 3).mean() > 0.3 > (base["tenure_months"] <= 3).mean()
    assert stats.ks_2samp(after["tenure_months"], base["tenure_months"]).pvalue < 1e-6
    assert after["churned_90d"].mean() > base["churned_90d"].mean() + 0.02


def test_the_use_case_works_with_mlkit(base):
    assert usecases.get(USE_CASE) is USE_CASE and USE_CASE.target == "churned_90d"
    assert set(USE_CASE.drift) == set(DRIFTS)
    cols = training.feature_columns(base.drop(columns=[ANSWER_KEY]), USE_CASE)
    assert sorted(cols.features) == sorted(FEATURES)
    assert cols.dropped == {"customer_id": "personal data", "snapshot": "datetime", "churned_90d": "target",
                            "drifted": "simulation flag"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_per_month": 10}, "n_per_month must be a whole number of at least 50"),
        ({"n_per_month": 100.0}, "n_per_month must be a whole number"),
        ({"months": 0}, "months must be a whole number of at least 1"),
        ({"seed": -1}, "seed must be a whole number of at least 0"),
        ({"drift": "price war"}, "Unknown drift 'price war'; choose one of concept, covariate"),
        ({"drift": "concept", "drift_month": 0}, "drift_month must be a whole number from 1 to 17"),
        ({"drift": "covariate", "months": 4, "drift_month": 4}, "drift_month must be a whole number from 1 to 3"),
    ],
)
def test_bad_arguments_are_clear_value_errors(kwargs, message):
    with pytest.raises(ParameterError, match=message) as info:
        customers(**({"n_per_month": 100} | kwargs))
    assert isinstance(info.value, ValueError)
