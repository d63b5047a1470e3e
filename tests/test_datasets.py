"""Behaviour of mlkit.datasets: deterministic data, streams with drift, committed files."""

from __future__ import annotations

import hashlib

import numpy as np

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.tree import DecisionTreeClassifier

from mlkit import datasets, paths, usecases
from mlkit.errors import ParameterError

ALL = usecases.ids()

COLUMNS = {
    "healthcare-diagnosis": None,  # 32 columns, checked on their own below
    "healthcare-readmission": [
        "patient_id", "name", "date_of_birth", "postcode", "admission_date", "age", "sex",
        "admission_type", "diagnosis_group", "length_of_stay_days", "num_prior_admissions",
        "num_medications", "num_lab_procedures", "hba1c", "discharge_to", "readmitted_30d",
    ],
    "finance-fraud": [
        "transaction_id", "timestamp", "customer_id", "amount", "merchant_category", "hour",
        "channel", "distance_from_home_km", "account_age_days", "is_fraud",
    ],
    "retail-demand": [
        "date", "store_id", "product", "price", "promotion", "is_holiday", "day_of_week",
        "temperature_c", "units_sold",
    ],
    "manufacturing-maintenance": [
        "reading_id", "timestamp", "machine_id", "machine_type", "air_temperature_k",
        "process_temperature_k", "rotational_speed_rpm", "torque_nm", "tool_wear_min", "failure",
    ],
    "transport-traffic": [
        "timestamp", "hour", "day_of_week", "is_holiday", "temperature_c", "rain_mm", "snow_mm",
        "weather", "incident", "traffic_volume",
    ],
    "marketing-segments": [
        "customer_id", "signup_date", "recency_days", "frequency", "monetary_value", "channel", "age_band",
    ],
}
DATETIME = {
    "healthcare-readmission": ["date_of_birth", "admission_date"],
    "finance-fraud": ["timestamp"],
    "retail-demand": ["date"],
    "manufacturing-maintenance": ["timestamp"],
    "transport-traffic": ["timestamp"],
    "marketing-segments": ["signup_date"],
}
TEXT = {
    "healthcare-diagnosis": ["patient_id"],
    "healthcare-readmission": ["patient_id", "name", "postcode", "sex", "admission_type", "diagnosis_group", "discharge_to"],
    "finance-fraud": ["transaction_id", "customer_id", "merchant_category", "channel"],
    "retail-demand": ["store_id", "product"],
    "manufacturing-maintenance": ["reading_id", "machine_id", "machine_type"],
    "transport-traffic": ["weather"],
    "marketing-segments": ["customer_id", "channel", "age_band"],
}
# share of positives at seed 0 and default size: (low, high)
POSITIVE_RATE = {
    "healthcare-diagnosis": (0.37, 0.38),
    "healthcare-readmission": (0.10, 0.14),
    "finance-fraud": (0.007, 0.014),
    "manufacturing-maintenance": (0.02, 0.045),
}
# column: (low, high) share of missing values at seed 0 and default size
MISSING = {
    "healthcare-readmission": {"hba1c": (0.35, 0.45)},
    "finance-fraud": {"distance_from_home_km": (0.035, 0.065)},
    "retail-demand": {"price": (0.005, 0.02)},
    "manufacturing-maintenance": {
        c: (0.005, 0.02)
        for c in ["air_temperature_k", "process_temperature_k", "rotational_speed_rpm", "torque_nm"]
    },
    "transport-traffic": {"temperature_c": (0.003, 0.02)},
}


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """Every use case at seed 0 and its default size (what the committed CSVs hold)."""
    return {uid: datasets.load(uid) for uid in ALL}


@pytest.fixture(scope="module")
def drifted() -> dict[tuple[str, str], pd.DataFrame]:
    """Every use case's stream under each of its drift scenarios, at the default size."""
    return {
        (uc.id, scenario): datasets.stream(uc, drift=scenario)
        for uc in usecases.all_use_cases()
        for scenario in uc.drift_scenarios
    }


def _halves(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return frame[~frame["drifted"]], frame[frame["drifted"]]


# --------------------------------------------------------------------------- load


def test_public_names():
    assert set(datasets.__all__) == {"load", "stream", "stream_frame", "sha256", "write_committed", "verify_manifest",
                                    "MIN_ROWS"}
    for name in datasets.__all__:
        assert hasattr(datasets, name)


def test_sha256_of_default_data_is_its_manifest_entry(repo_root):
    """A model card's data sha256 names the committed file the model was trained on."""
    entries = dict(line.split("  ")[::-1] for line in (repo_root / "datasets" / "MANIFEST").read_text().splitlines())
    assert datasets.sha256(datasets.load("healthcare-diagnosis")) == entries["healthcare-diagnosis/data.csv"]
    assert datasets.sha256(datasets.load("healthcare-diagnosis", n=100)) != entries["healthcare-diagnosis/data.csv"]
    with pytest.raises(ParameterError, match="needs a pandas DataFrame"):
        datasets.sha256([1, 2])


@pytest.mark.parametrize("uid", ALL)
def test_same_seed_same_rows_other_seed_other_rows(uid):
    first = datasets.load(uid, seed=3, n=300)
    pd.testing.assert_frame_equal(first, datasets.load(uid, seed=3, n=300))
    assert not first.equals(datasets.load(uid, seed=4, n=300))


@pytest.mark.parametrize("uid", ALL)
@pytest.mark.parametrize("n", [50, 301])
def test_n_is_honoured(uid, n):
    assert len(datasets.load(uid, n=n)) == n


@pytest.mark.parametrize("uid", ALL)
def test_default_size_is_the_use_cases_default_rows(frames, uid):
    assert len(frames[uid]) == usecases.get(uid).default_rows


def test_a_use_case_object_works_like_its_id():
    uc = usecases.get("marketing-segments")
    pd.testing.assert_frame_equal(datasets.load(uc, n=100), datasets.load("marketing-segments", n=100))


@pytest.mark.parametrize("uid", ALL)
def test_columns_and_dtypes(frames, uid):
    df = frames[uid]
    if COLUMNS[uid] is not None:
        assert list(df.columns) == COLUMNS[uid]
    for col in DATETIME.get(uid, []):
        assert pd.api.types.is_datetime64_any_dtype(df[col]), col
    for col in TEXT[uid]:
        assert pd.api.types.is_string_dtype(df[col]) or df[col].dtype == object, col
    numeric = [c for c in df.columns if c not in DATETIME.get(uid, []) + TEXT[uid]]
    for col in numeric:
        assert pd.api.types.is_numeric_dtype(df[col]), col


def test_diagnosis_is_the_real_data_with_readable_names(frames):
    df = frames["healthcare-diagnosis"]
    assert df.shape == (569, 32)
    assert list(df.columns[:3]) == ["patient_id", "mean_radius", "mean_texture"]
    assert df.columns[-1] == "malignant" and "worst_fractal_dimension" in df.columns
    assert int(df["malignant"].sum()) == 212  # sklearn's 212 malignant, coded 1 here
    first = df.set_index("patient_id").loc["BC-0001"]  # the first row of the source
    assert first["mean_radius"] == pytest.approx(17.99) and first["malignant"] == 1
    assert not df["patient_id"].duplicated().any()


def test_diagnosis_subsample_keeps_the_class_balance():
    sub = datasets.load("healthcare-diagnosis", n=200, seed=5)
    assert abs(sub["malignant"].sum() - 200 * 212 / 569) <= 1
    assert not sub["patient_id"].duplicated().any()


@pytest.mark.parametrize("uid", POSITIVE_RATE)
def test_positive_rate_is_in_the_stated_range(frames, uid):
    low, high = POSITIVE_RATE[uid]
    y = frames[uid][usecases.get(uid).target]
    assert set(y.unique()) == {0, 1}
    assert low <= y.mean() <= high


@pytest.mark.parametrize("uid", ["retail-demand", "transport-traffic"])
def test_regression_targets_are_non_negative_counts(frames, uid):
    y = frames[uid][usecases.get(uid).target]
    assert pd.api.types.is_integer_dtype(y) and y.min() >= 0 and y.mean() > 10


def test_clustering_data_has_no_target_and_no_segment_label(frames):
    df = frames["marketing-segments"]
    assert usecases.get("marketing-segments").target is None
    assert not {"segment", "cluster", "label"} & set(df.columns)


@pytest.mark.parametrize("uid", ALL)
def test_missing_values_only_where_stated(frames, uid):
    df = frames[uid]
    stated = MISSING.get(uid, {})
    for col, (low, high) in stated.items():
        assert low <= df[col].isna().mean() <= high, col
    assert not df.drop(columns=list(stated)).isna().any().any()


@pytest.mark.parametrize("uid", [u.id for u in usecases.all_use_cases() if u.time_column])
def test_rows_are_sorted_by_time_in_2024_2025(frames, uid):
    t = frames[uid][usecases.get(uid).time_column]
    assert t.is_monotonic_increasing
    assert t.min() >= pd.Timestamp("2024-01-01") and t.max() < pd.Timestamp("2026-01-01")


@pytest.mark.parametrize("uid", ALL)
def test_identifiers_are_unique(frames, uid):
    shared = {"customer_id", "machine_id"}  # many transactions per customer, readings per machine
    for col in usecases.get(uid).id_columns:
        if not (col in shared and uid != "marketing-segments"):
            assert frames[uid][col].is_unique, col


def test_readmission_personal_data_is_consistent(frames):
    df = frames["healthcare-readmission"]
    born, at = df["date_of_birth"], df["admission_date"]
    had_birthday = (at.dt.month > born.dt.month) | ((at.dt.month == born.dt.month) & (at.dt.day >= born.dt.day))
    assert (df["age"] == at.dt.year - born.dt.year - (~had_birthday).astype(int)).all()
    assert df["age"].between(18, 99).all()
    assert df["postcode"].str.fullmatch(r"[A-Z]{1,2}\d{1,2} \d[A-Z]{2}").all()
    assert set(df["discharge_to"]) == {"home", "home_health", "skilled_nursing", "rehab"}


def test_fraud_hour_matches_timestamp_and_accounts_exist(frames):
    df = frames["finance-fraud"]
    assert (df["hour"] == df["timestamp"].dt.hour).all()
    assert (df["account_age_days"] >= 0).all()
    assert 1500 <= df["customer_id"].nunique() <= 2000
    assert set(df["channel"]) == {"chip", "swipe", "contactless", "online"}
    assert not ((df["channel"] == "online") & (df["merchant_category"] == "fuel")).any()


def test_retail_is_a_full_daily_grid(frames):
    df = frames["retail-demand"]
    per_day = df.groupby("date").size()
    assert (per_day == 24).all() and df["date"].diff().max() == pd.Timedelta(days=1)
    assert (df["day_of_week"] == df["date"].dt.day_of_week).all()
    small = datasets.load("retail-demand", n=100)
    assert small["date"].nunique() == 5 and small["date"].is_monotonic_increasing


def test_traffic_is_hourly_with_matching_calendar_columns(frames):
    df = frames["transport-traffic"]
    assert (df["timestamp"].diff().dropna() == pd.Timedelta(hours=1)).all()
    assert (df["hour"] == df["timestamp"].dt.hour).all()
    assert (df["day_of_week"] == df["timestamp"].dt.day_of_week).all()
    christmas = df[df["timestamp"].dt.strftime("%m-%d") == "12-25"]
    assert (christmas["is_holiday"] == 1).all()
    assert (df.loc[df["weather"] == "snow", "snow_mm"] > 0).mean() > 0.5


def test_maintenance_types_belong_to_machines(frames):
    df = frames["manufacturing-maintenance"]
    assert (df.groupby("machine_id")["machine_type"].nunique() == 1).all()
    shares = df["machine_type"].value_counts(normalize=True)
    assert shares["L"] == pytest.approx(0.6, abs=0.03) and shares["H"] == pytest.approx(0.1, abs=0.03)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("n", [0, 49, -5])
def test_too_few_rows_is_refused(n):
    with pytest.raises(ParameterError, match="at least 50"):
        datasets.load("finance-fraud", n=n)


@pytest.mark.parametrize("n", [2.5, "100", True])
def test_a_non_integer_n_is_refused(n):
    with pytest.raises(ParameterError, match="whole number of rows"):
        datasets.stream("retail-demand", n=n)


def test_more_rows_than_the_real_data_is_refused():
    with pytest.raises(ParameterError, match="569"):
        datasets.load("healthcare-diagnosis", n=570)


def test_unknown_use_case_and_bad_seed_are_refused():
    with pytest.raises(ParameterError, match="finance-fraud"):
        datasets.load("finance-frud")
    with pytest.raises(ParameterError, match="seed"):
        datasets.load("finance-fraud", seed=-1)


def test_a_csv_use_case_has_no_generator():
    uc = usecases.custom(name="churn.csv", target="churned", task="classification")
    with pytest.raises(ParameterError, match="read_csv"):
        datasets.load(uc)


def test_unknown_scenario_names_the_valid_ones():
    with pytest.raises(ParameterError, match="'covariate', 'concept'"):
        datasets.stream("marketing-segments", drift="label")
    with pytest.raises(ParameterError, match="'covariate', 'label', 'concept'"):
        datasets.stream("finance-fraud", drift="sudden")


@pytest.mark.parametrize("start", [0, 1, 1.5, -0.1, 0.0])
def test_drift_start_outside_zero_one_is_refused(start):
    with pytest.raises(ParameterError, match=r"outside \(0, 1\)"):
        datasets.stream("finance-fraud", n=500, drift="label", drift_start=start)


@pytest.mark.parametrize("start", ["2023-06-01", "2030-01-01"])
def test_drift_start_time_outside_the_stream_is_refused(start):
    with pytest.raises(ParameterError, match="outside the stream"):
        datasets.stream("retail-demand", n=500, drift="label", drift_start=start)


def test_drift_start_that_is_not_a_time_is_refused():
    with pytest.raises(ParameterError, match="timestamp"):
        datasets.stream("retail-demand", n=500, drift="label", drift_start="next tuesday")


# --------------------------------------------------------------------------- streams


@pytest.mark.parametrize("uid", [u.id for u in usecases.all_use_cases() if u.time_column])
def test_undrifted_stream_is_load_in_time_order(frames, uid):
    s = datasets.stream(uid)
    assert not s["drifted"].any() and s["drifted"].dtype == bool
    pd.testing.assert_frame_equal(s.drop(columns="drifted"), frames[uid])


def test_diagnosis_stream_gets_an_arrival_time(frames):
    s = datasets.stream("healthcare-diagnosis")
    assert pd.api.types.is_datetime64_any_dtype(s["arrival_time"]) and s["arrival_time"].is_monotonic_increasing
    hours = s["arrival_time"].diff().dropna().dt.total_seconds().mean() / 3600
    assert 0.8 < hours < 1.2
    pd.testing.assert_frame_equal(s.drop(columns=["arrival_time", "drifted"]), frames["healthcare-diagnosis"])
    assert "arrival_time" not in frames["healthcare-diagnosis"]


@pytest.mark.parametrize("key", [(u.id, s) for u in usecases.all_use_cases() for s in u.drift_scenarios])
def test_drifted_stream_keeps_the_past_and_continues_the_clock(drifted, key):
    uid, scenario = key
    uc = usecases.get(uid)
    s = drifted[key]
    time = uc.time_column or "arrival_time"
    undrifted = datasets.stream(uid)
    flag = s["drifted"].to_numpy()
    n_before = int((~flag).sum())
    assert len(s) == uc.default_rows and not flag[:n_before].any() and flag[n_before:].all()
    assert abs(n_before - 0.5 * len(s)) <= 24  # moved to the start of a day at most
    pd.testing.assert_frame_equal(s.iloc[:n_before], undrifted.iloc[:n_before])
    assert s[time].is_monotonic_increasing
    assert s.loc[flag, time].min() > s.loc[~flag, time].max()
    assert list(s.columns) == list(undrifted.columns)
    for col in uc.id_columns:
        if col not in ("customer_id", "machine_id") or uid == "marketing-segments":
            assert s[col].is_unique, col


def test_drift_start_as_a_time_splits_there():
    s = datasets.stream("finance-fraud", n=5000, drift="label", drift_start="2024-01-20")
    cut = pd.Timestamp("2024-01-20")
    assert (s["drifted"] == (s["timestamp"] >= cut)).all()
    assert 0 < s["drifted"].sum() < len(s)


def test_drift_start_fraction_is_honoured():
    s = datasets.stream("transport-traffic", n=1000, drift="covariate", drift_start=0.8)
    assert int(s["drifted"].sum()) == 200


def test_drifted_streams_are_deterministic():
    a = datasets.stream("manufacturing-maintenance", n=2000, seed=7, drift="concept", drift_start=0.3)
    b = datasets.stream("manufacturing-maintenance", n=2000, seed=7, drift="concept", drift_start=0.3)
    pd.testing.assert_frame_equal(a, b)


# --------------------------------------------------------------------------- what each drift changes


def _rate(frame: pd.DataFrame, uid: str) -> float:
    return float(frame[usecases.get(uid).target].mean())


def _auc_before_and_after(frame: pd.DataFrame, uid: str) -> tuple[float, float]:
    """Fit on the first 70% of the undrifted rows; ROC AUC on the other 30% and on the drifted rows."""
    uc = usecases.get(uid)
    before, after = _halves(frame)
    drop = [uc.target, "drifted", *uc.id_columns, *uc.sensitive_columns]

    columns = pd.get_dummies(before.drop(columns=[c for c in drop if c in before]).select_dtypes(exclude="datetime")).columns

    def features(df):
        x = pd.get_dummies(df.drop(columns=[c for c in drop if c in df]).select_dtypes(exclude="datetime"))
        return x.reindex(columns=columns, fill_value=0).fillna(-1)

    cut = int(len(before) * 0.7)
    model = DecisionTreeClassifier(max_depth=6, min_samples_leaf=20, random_state=0)
    model.fit(features(before.iloc[:cut]), before[uc.target].iloc[:cut])
    held_out = before.iloc[cut:]
    auc_before = roc_auc_score(held_out[uc.target], model.predict_proba(features(held_out))[:, 1])
    auc_after = roc_auc_score(after[uc.target], model.predict_proba(features(after))[:, 1])
    return auc_before, auc_after


def test_readmission_drifts(drifted):
    before, after = _halves(drifted[("healthcare-readmission", "covariate")])
    assert after["age"].mean() > before["age"].mean() + 7
    assert after["num_prior_admissions"].mean() > 1.4 * before["num_prior_admissions"].mean()

    before, after = _halves(drifted[("healthcare-readmission", "label")])
    assert _rate(before, "healthcare-readmission") < 0.15 and _rate(after, "healthcare-readmission") > 0.18
    # label shift: the features of readmitted patients look as before
    pos_b, pos_a = before[before["readmitted_30d"] == 1], after[after["readmitted_30d"] == 1]
    assert abs(pos_a["age"].mean() - pos_b["age"].mean()) < 3

    before, after = _halves(drifted[("healthcare-readmission", "concept")])

    def home_vs_rest(df):
        home = df["discharge_to"] == "home"
        return df.loc[home, "readmitted_30d"].mean() / df.loc[~home, "readmitted_30d"].mean()

    assert home_vs_rest(after) > 1.4 * home_vs_rest(before)
    assert abs(_rate(after, "healthcare-readmission") - _rate(before, "healthcare-readmission")) < 0.03


def test_fraud_drifts(drifted):
    before, after = _halves(drifted[("finance-fraud", "covariate")])
    assert (after["channel"] == "online").mean() > (before["channel"] == "online").mean() + 0.15
    assert after["amount"].median() > 1.25 * before["amount"].median()

    before, after = _halves(drifted[("finance-fraud", "label")])
    assert _rate(before, "finance-fraud") < 0.015 and 0.022 < _rate(after, "finance-fraud") < 0.04

    concept = drifted[("finance-fraud", "concept")]
    auc_before, auc_after = _auc_before_and_after(concept, "finance-fraud")
    assert auc_before > 0.8 and auc_after < 0.6
    # the new pattern is as learnable as the old one was, at about the same fraud rate
    before, after = _halves(concept)
    assert 0.007 < _rate(after, "finance-fraud") < 0.013
    new_world = after.assign(drifted=np.arange(len(after)) >= int(0.6 * len(after)))
    assert min(_auc_before_and_after(new_world, "finance-fraud")) > 0.9
    # covariate and label drift leave P(fraud | features) alone: the model still ranks well
    for scenario in ("covariate", "label"):
        auc_before, auc_after = _auc_before_and_after(drifted[("finance-fraud", scenario)], "finance-fraud")
        assert auc_after > auc_before - 0.05, scenario


def test_maintenance_drifts(drifted):
    before, after = _halves(drifted[("manufacturing-maintenance", "covariate")])
    shift = after["air_temperature_k"].mean() - before["air_temperature_k"].mean()
    assert 4 < shift < 6
    assert after["process_temperature_k"].mean() > before["process_temperature_k"].mean() + 4
    # same physics: the failure rate hardly moves although the temperatures do
    assert abs(_rate(after, "manufacturing-maintenance") - _rate(before, "manufacturing-maintenance")) < 0.015

    before, after = _halves(drifted[("manufacturing-maintenance", "label")])
    assert 0.045 < _rate(after, "manufacturing-maintenance") < 0.08

    s = drifted[("manufacturing-maintenance", "concept")]
    before, after = _halves(s)
    worn_b = before[before["tool_wear_min"].between(170, 215)]
    worn_a = after[after["tool_wear_min"].between(170, 215)]
    assert worn_a["failure"].mean() > worn_b["failure"].mean() + 0.1
    fresh_b, fresh_a = before[before["tool_wear_min"] < 100], after[after["tool_wear_min"] < 100]
    assert abs(fresh_a["failure"].mean() - fresh_b["failure"].mean()) < 0.02


def test_diagnosis_drifts(drifted):
    before, after = _halves(drifted[("healthcare-diagnosis", "covariate")])
    assert after["mean_radius"].mean() > before["mean_radius"].mean() + 1

    before, after = _halves(drifted[("healthcare-diagnosis", "label")])
    assert _rate(before, "healthcare-diagnosis") < 0.45 and _rate(after, "healthcare-diagnosis") > 0.65

    s = drifted[("healthcare-diagnosis", "concept")]
    before, after = _halves(s)
    coarse_b, coarse_a = before[before["mean_texture"] >= 17], after[after["mean_texture"] >= 17]
    assert coarse_a["malignant"].mean() == 1.0 and coarse_b["malignant"].mean() < 0.6
    fine_b, fine_a = before[before["mean_texture"] < 17], after[after["mean_texture"] < 17]
    assert abs(fine_a["malignant"].mean() - fine_b["malignant"].mean()) < 0.15
    assert after["patient_id"].str.startswith("BC-1").all()
    # every record at most once: a repeated one could train a challenger and then be its evidence
    measurements = [c for c in s.columns if c.startswith(("mean_", "worst_"))]
    assert not s.duplicated(subset=measurements).any()


def test_retail_drifts(drifted):
    # the default drift_start splits two years into 2024 and 2025, so the seasons cancel
    before, after = _halves(drifted[("retail-demand", "covariate")])
    before, after = before[before["promotion"] == 0], after[after["promotion"] == 0]
    ratio = after.groupby("product")["price"].mean() / before.groupby("product")["price"].mean()
    assert ratio.between(1.18, 1.26).all()  # +20%, and 1.5% a year of inflation

    before, after = _halves(drifted[("retail-demand", "label")])
    assert 1.22 < after["units_sold"].mean() / before["units_sold"].mean() < 1.38

    before, after = _halves(drifted[("retail-demand", "concept")])

    def promo_lift(df):
        """Mean of promoted sales over the same store-product-month's unpromoted mean."""
        key = [df["store_id"], df["product"], df["date"].dt.to_period("M")]
        usual = df["units_sold"].where(df["promotion"] == 0).groupby(key).transform("mean")
        promoted = df["promotion"] == 1
        return float((df.loc[promoted, "units_sold"] / usual[promoted]).mean())

    # before, a promoted week sells about twice a normal one; after, about the same
    assert promo_lift(before) > 1.6 and 0.8 < promo_lift(after) < 1.15


def test_traffic_drifts(drifted):
    before, after = _halves(drifted[("transport-traffic", "covariate")])
    rainy = ["rain", "snow"]
    assert after["weather"].isin(rainy).mean() > before["weather"].isin(rainy).mean() + 0.15
    assert after["temperature_c"].mean() < before["temperature_c"].mean() - 3

    before, after = _halves(drifted[("transport-traffic", "label")])
    assert 1.2 < after["traffic_volume"].mean() / before["traffic_volume"].mean() < 1.3

    before, after = _halves(drifted[("transport-traffic", "concept")])

    def mean_volume(df, hours, workday):
        is_workday = (df["day_of_week"] < 5) & (df["is_holiday"] == 0)
        return df.loc[df["hour"].isin(hours) & (is_workday == workday), "traffic_volume"].mean()

    assert mean_volume(after, [7, 8], True) < 0.7 * mean_volume(before, [7, 8], True)
    weekend = mean_volume(after, [12, 13], False) / mean_volume(before, [12, 13], False)
    assert 0.9 < weekend < 1.1


def test_marketing_drifts(drifted):
    before, after = _halves(drifted[("marketing-segments", "covariate")])
    assert (after["channel"] == "app").mean() > (before["channel"] == "app").mean() + 0.15
    young = ["18-24", "25-34"]
    assert after["age_band"].isin(young).mean() > before["age_band"].isin(young).mean() + 0.1

    before, after = _halves(drifted[("marketing-segments", "concept")])

    def spend_per_order_of_frequent_buyers(df):
        frequent = df[df["frequency"] >= 10]
        return (frequent["monetary_value"] / frequent["frequency"]).mean()

    assert spend_per_order_of_frequent_buyers(after) < 0.8 * spend_per_order_of_frequent_buyers(before)


# --------------------------------------------------------------------------- committed files


def test_committed_csvs_match_the_generators():
    assert datasets.verify_manifest() == []


def test_committed_files_are_small_and_listed():
    folder = paths.repo_root() / "datasets"
    entries = [line.split("  ") for line in (folder / "MANIFEST").read_text(encoding="utf-8").splitlines()]
    names = [name for _, name in entries]
    assert names == sorted(f"{uid}/data.csv" for uid in ALL)  # `sha256sum -c MANIFEST` format
    for sha, name in entries:
        path = folder / name
        assert path.stat().st_size <= 2.2e6, name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha


@pytest.mark.parametrize("uid", ALL)
def test_committed_csv_reads_back_as_load(frames, uid):
    folder = paths.repo_root() / "datasets" / uid
    back = pd.read_csv(folder / "data.csv", parse_dates=DATETIME.get(uid, []))
    expected = frames[uid]
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)


@pytest.mark.parametrize("uid", ALL)
def test_every_column_has_a_datasheet_entry(frames, uid):
    sheet = (paths.repo_root() / "datasets" / uid / "datasheet.md").read_text(encoding="utf-8")
    for col in frames[uid].columns:
        assert f"`{col}`" in sheet, col


def test_write_then_verify_and_detect_tampering(tmp_path):
    digests = datasets.write_committed(tmp_path)
    assert sorted(digests) == sorted(f"{uid}/data.csv" for uid in ALL)
    assert datasets.verify_manifest(tmp_path) == []
    csv = tmp_path / "datasets" / "retail-demand" / "data.csv"
    csv.write_bytes(csv.read_bytes().replace(b"\n", b"\r\n"))
    problems = datasets.verify_manifest(tmp_path)
    assert problems == [
        "retail-demand/data.csv: the file on disk differs from MANIFEST; regenerate with "
        "mlkit.datasets.write_committed() (make datasets) if the change is intended."
    ]


def test_missing_manifest_is_reported(tmp_path):
    assert datasets.verify_manifest(tmp_path) == [
        "datasets/MANIFEST is missing: run mlkit.datasets.write_committed() (make datasets)."
    ]


# --------------------------------------------------------------------------- stream_frame: any table as a stream


def _table(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"x": x, "z": rng.normal(size=n), "colour": rng.choice(["red", "blue"], n),
                         "y": (x + rng.normal(scale=0.5, size=n) > 0).astype(int)})


def test_stream_frame_orders_rows_and_keeps_the_rows_before_the_drift():
    table = _table()
    uc = usecases.custom(name="t.csv", target="y", task="classification")
    plain = datasets.stream_frame(table, uc, seed=3)
    assert not plain["drifted"].any() and len(plain) == len(table)
    assert sorted(plain["x"]) == sorted(table["x"])  # a permutation of the rows
    assert not plain["x"].equals(table["x"])  # in a random order: a file sorted by its target must not look like drift
    assert plain.equals(datasets.stream_frame(table, uc, seed=3))  # the same seed, the same order
    drifted = datasets.stream_frame(table, uc, seed=3, drift="covariate", drift_start=0.6)
    assert int(drifted["drifted"].sum()) == 800
    pd.testing.assert_frame_equal(drifted.iloc[:1200].drop(columns="drifted"), plain.iloc[:1200].drop(columns="drifted"))
    timed = table.assign(when=pd.date_range("2024-01-01", periods=len(table), freq="h")[::-1])
    by_time = datasets.stream_frame(timed, usecases.custom(name="t.csv", target="y", task="classification",
                                                           time_column="when"))
    assert by_time["when"].is_monotonic_increasing


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_stream_frame_scenarios_change_what_they_say(task):
    table = _table()
    if task == "regression":
        table["y"] = 2 * table["x"] + np.random.default_rng(1).normal(size=len(table))
    uc = usecases.custom(name="t.csv", target="y", task=task)
    base = datasets.stream_frame(table, uc, seed=0, drift=None)
    after = {d: datasets.stream_frame(table, uc, seed=0, drift=d).query("drifted") for d in ("covariate", "label", "concept")}
    before = base.iloc[: len(base) // 2]
    assert after["covariate"]["x"].mean() > before["x"].mean() + 0.5  # the first numeric feature moved up
    assert abs(after["covariate"]["z"].mean() - before["z"].mean()) < 0.15  # the others did not
    assert after["label"]["y"].mean() > before["y"].mean() + (0.1 if task == "classification" else 0.5)
    high = after["concept"]["x"] > table["x"].median()
    assert abs(after["concept"]["x"].mean() - before["x"].mean()) < 0.15  # inputs look the same
    if task == "classification":  # above the median, the label moved to the other class
        assert after["concept"].loc[high, "y"].mean() < 0.3 < before.loc[before["x"] > table["x"].median(), "y"].mean()
    else:
        assert after["concept"].loc[high, "y"].mean() > before.loc[before["x"] > table["x"].median(), "y"].mean() + 1


def test_stream_frame_bad_input_says_what_to_do():
    table = _table(200)
    uc = usecases.custom(name="t.csv", target="y", task="classification")
    with pytest.raises(ParameterError, match="Unknown drift scenario 'sudden'"):
        datasets.stream_frame(table, uc, drift="sudden")
    with pytest.raises(ParameterError, match="outside"):
        datasets.stream_frame(table, uc, drift="label", drift_start=1.5)
    with pytest.raises(ParameterError, match="no target column 'y'"):
        datasets.stream_frame(table.drop(columns="y"), uc)
    with pytest.raises(ParameterError, match="has none; use drift='label'"):
        datasets.stream_frame(table[["colour", "y"]], uc, drift="covariate")
