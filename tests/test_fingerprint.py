"""Reference fingerprints: contents, JSON round trip, and drift measured from the fingerprint alone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from mlkit import datasets, training, usecases
from mlkit import fingerprint as fpm
from mlkit.errors import DataError, ParameterError

PLAIN = (str, int, float, bool, type(None))


def _fit_rows(uc, n=1500):
    """Train the use case's default model; return it, the fit rows' features and their roles."""
    model, parts = training.train(uc, datasets.load(uc, n=n), seed=0)
    fit = pd.concat([parts.train, parts.validation])
    cols = training.feature_columns(fit, uc)
    return model, fit.drop(columns=[uc.target]), cols


def _after_drift(uc, *, seed, drift, n=3000):
    """The second half of a stream: drifted rows, or the same time window without drift."""
    s = datasets.stream(uc, seed=seed, n=n, drift=drift, drift_start=0.5)
    late = s[s["drifted"]] if drift else s.iloc[n // 2 :]
    assert len(late) > 1000
    return late


def _psi(table: pd.DataFrame) -> dict[str, float]:
    return dict(zip(table["feature"], table["psi"]))


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread():
    """On a busy machine the boosted trees' OpenMP threads can wait on each other for minutes;
    one thread trains and scores these 1200 rows in a fraction of a second."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def fraud():
    uc = usecases.get("finance-fraud")
    model, X, cols = _fit_rows(uc)
    fp = fpm.fingerprint(
        X, model.predict_proba(X)[:, 1], numeric=cols.numeric, categorical=cols.categorical, task=uc.task
    )
    return uc, model, X, cols, fp


@pytest.fixture
def small_frame():
    return pd.DataFrame(
        {
            "age": [23, 35, 41, 52, 67, 30, 45, 58],
            "plan": ["basic", "pro", "basic", None, "pro", "basic", "basic", "pro"],
        }
    )


def _walk(obj):
    yield obj
    if isinstance(obj, dict):
        for key, value in obj.items():
            assert isinstance(key, str), key
            yield from _walk(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _walk(value)


# --------------------------------------------------------------------------- contents


def test_fingerprint_summarises_the_training_rows(fraud):
    uc, _, X, cols, fp = fraud
    assert fp["format"] == fpm.FORMAT == "mlkit-fingerprint/1"
    assert fp["rows"] == len(X) == 1200 and fp["task"] == "classification"
    assert fp["params"] == {"bins": 10, "max_categories": 30}
    assert list(fp["numeric"]) == cols.numeric and list(fp["categorical"]) == cols.categorical
    for col, entry in fp["numeric"].items():
        edges, counts = entry["edges"], entry["counts"]
        assert edges == sorted(set(edges)) and 1 <= len(edges) <= 9, col
        assert len(counts) == len(edges) + 1
        assert entry["missing"] == int(X[col].isna().sum())
        assert sum(counts) == fp["rows"] - entry["missing"], col
        # the bins are (-inf, e1], (e1, e2], ..., (ek, inf): pandas' right-closed cut agrees
        expected = pd.cut(X[col], [-np.inf, *edges, np.inf], right=True).value_counts(sort=False)
        assert counts == expected.tolist(), col
        assert entry["min"] == X[col].min() and entry["max"] == X[col].max()
        assert entry["mean"] == pytest.approx(X[col].mean()) and entry["std"] == pytest.approx(X[col].std())
    assert fp["numeric"]["distance_from_home_km"]["missing"] > 0  # 5% have no location
    # a continuous column gets ten bins of about a tenth of the rows each
    assert len(fp["numeric"]["amount"]["counts"]) == 10
    assert max(fp["numeric"]["amount"]["counts"]) - min(fp["numeric"]["amount"]["counts"]) <= 0.02 * len(X)
    for col, entry in fp["categorical"].items():
        assert entry["frequencies"] == {k: int(v) for k, v in X[col].value_counts().items()}
        assert entry["other"] == 0 and entry["missing"] == 0 and entry["distinct"] == X[col].nunique()
        assert list(entry["frequencies"]) == sorted(entry["frequencies"])  # the order the JSON file has
    assert fp["scores"]["kind"] == "probability"
    assert sum(fp["scores"]["counts"]) == len(X) and 0 <= fp["scores"]["min"] <= fp["scores"]["max"] <= 1


def test_fingerprint_is_plain_json_data(fraud):
    fp = fraud[-1]
    for node in _walk(fp):
        assert isinstance(node, (dict, list, *PLAIN)) and not isinstance(node, np.generic), type(node)
        assert not (isinstance(node, float) and not np.isfinite(node))
    json.dumps(fp, allow_nan=False)


def test_save_load_round_trip_and_same_input_same_bytes(fraud, tmp_path):
    uc, model, X, cols, fp = fraud
    path = fpm.save(fp, tmp_path / "registry" / "fraud.fingerprint.json")
    assert fpm.load(path) == fp
    text = path.read_text(encoding="utf-8")
    assert text.startswith('{\n  "categorical": {') and text.endswith("}\n")  # sorted keys, indented
    again = fpm.fingerprint(
        X.copy(), model.predict_proba(X)[:, 1], numeric=cols.numeric, categorical=cols.categorical, task=uc.task
    )
    assert fpm.save(again, tmp_path / "again.json").read_bytes() == path.read_bytes()
    assert fpm.save(fpm.load(path), tmp_path / "resaved.json").read_bytes() == path.read_bytes()


# --------------------------------------------------------------------------- drift


def test_covariate_drift_is_found_from_the_fingerprint_only(fraud, tmp_path):
    uc, model, _, _, fp = fraud
    # monitoring has the stored file, not the training rows
    stored = fpm.load(fpm.save(fp, tmp_path / "fp.json"))
    drifted = _after_drift(uc, seed=0, drift="covariate")
    calm = _after_drift(uc, seed=1, drift=None)
    table = fpm.drift_table(stored, drifted, model.predict_proba(drifted)[:, 1])
    baseline = fpm.drift_table(stored, calm, model.predict_proba(calm)[:, 1])
    assert list(table.columns) == ["feature", "kind", "psi", "reference_missing_share", "new_missing_share"]
    assert len(table) == 7 and table["psi"].is_monotonic_decreasing
    drift, noise = _psi(table), _psi(baseline)
    # a shopping season: online 25% -> 45% of payments and amounts x1.4
    assert set(table["feature"][:2]) == {"channel", "amount"}
    assert drift["channel"] > 0.2 and drift["channel"] > 5 * noise["channel"]
    assert drift["amount"] > 0.09 and drift["amount"] > 3 * noise["amount"]
    assert drift["score"] > 3 * noise["score"]  # the same mechanism scores the new mix higher
    assert max(noise.values()) < 0.1
    assert drift["hour"] < 0.1 and drift["account_age_days"] < 0.1  # untouched by this drift
    row = table.set_index("feature").loc["distance_from_home_km"]
    assert row["reference_missing_share"] == pytest.approx(fp["numeric"]["distance_from_home_km"]["missing"] / 1200)
    assert 0.02 < row["new_missing_share"] < 0.08


def test_regression_fingerprint_and_price_drift():
    uc = usecases.get("retail-demand")
    model, X, cols = _fit_rows(uc)
    fp = fpm.fingerprint(X, model.predict(X), numeric=cols.numeric, categorical=cols.categorical, task=uc.task)
    assert fp["scores"]["kind"] == "prediction" and len(fp["scores"]["edges"]) == 9
    # discrete columns: repeated deciles are merged, and the cut points are observed values
    assert fp["numeric"]["promotion"]["edges"] == [0.0, 1.0]
    assert fp["numeric"]["is_holiday"]["edges"] == [0.0]
    assert fp["numeric"]["day_of_week"]["edges"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert fp["numeric"]["day_of_week"]["counts"][-1] == 0  # nothing above Sunday
    assert fp["numeric"]["price"]["missing"] == int(X["price"].isna().sum()) > 0
    assert fp["categorical"]["product"]["frequencies"] == {k: int(v) for k, v in X["product"].value_counts().items()}
    # an inflation shock: every price x1.2. The calm sample is the same seed and window without
    # drift (another seed draws other store prices, so it is not a fair "no drift" here)
    drift = _psi(fpm.drift_table(fp, _after_drift(uc, seed=0, drift="covariate")))
    noise = _psi(fpm.drift_table(fp, _after_drift(uc, seed=0, drift=None)))
    assert drift["price"] > 0.25 and noise["price"] < 0.1
    assert drift["product"] == noise["product"] == 0.0


def test_multiclass_labels_are_binned_as_frequencies(small_frame):
    labels = np.array(["gold", "silver", "gold", "bronze", "silver", "gold", "gold", "bronze"])
    fp = fpm.fingerprint(small_frame, labels, numeric=["age"], categorical=["plan"], task="classification")
    assert fp["scores"] == {
        "kind": "class", "frequencies": {"bronze": 2, "gold": 4, "silver": 2}, "other": 0, "missing": 0, "distinct": 3
    }
    same = fpm.drift_table(fp, small_frame, labels)
    shifted = fpm.drift_table(fp, small_frame, ["bronze"] * 6 + ["platinum"] * 2)
    assert _psi(same)["score"] == 0.0 and _psi(shifted)["score"] > 1.0
    assert shifted.iloc[0].to_dict() | {"psi": None} == {
        "feature": "score", "kind": "score", "psi": None, "reference_missing_share": 0.0, "new_missing_share": 0.0
    }


# --------------------------------------------------------------------------- awkward columns


def test_bool_string_nullable_and_empty_columns():
    X = pd.DataFrame(
        {
            "flag": [True, False, True, True, True, False],
            "count": pd.Series([1, None, 3, 3, 2, 3], dtype="Int64"),
            "blank": [np.nan] * 6,
            "city": pd.Series(["Oslo", None, "Lyon", "Oslo", "Rome", "Oslo"], dtype="str"),
            "tier": pd.Series(["a", "b", "a", None, "a", "c"], dtype="category"),
        }
    )
    fp = fpm.fingerprint(X, None, numeric=["flag", "count", "blank"], categorical=["city", "tier"], task="clustering")
    flag = fp["numeric"]["flag"]
    assert flag["edges"] == [0.0, 1.0] and flag["counts"] == [2, 4, 0] and flag["mean"] == pytest.approx(4 / 6)
    assert fp["numeric"]["count"]["missing"] == 1 and fp["numeric"]["count"]["edges"] == [1.0, 2.0, 3.0]
    assert fp["numeric"]["blank"] == {
        "edges": [], "counts": [0], "missing": 6, "min": None, "max": None, "mean": None, "std": None
    }
    assert fp["categorical"]["city"] == {
        "frequencies": {"Lyon": 1, "Oslo": 3, "Rome": 1}, "other": 0, "missing": 1, "distinct": 3
    }
    assert fp["categorical"]["tier"]["missing"] == 1 and fp["scores"] is None
    table = fpm.drift_table(fp, X).set_index("feature")
    assert np.isnan(table.loc["blank", "psi"]) and table.index[-1] == "blank"  # no values: PSI undefined, listed last
    assert table.loc["blank", "new_missing_share"] == 1.0
    assert (table["psi"].drop("blank") == 0).all()


def test_rare_levels_are_counted_as_other():
    X = pd.DataFrame({"shop": ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d", "e"]})
    entry = fpm.fingerprint(X, None, numeric=[], categorical=["shop"], task="clustering", max_categories=2)[
        "categorical"
    ]["shop"]
    assert entry == {"frequencies": {"a": 5, "b": 3}, "other": 4, "missing": 0, "distinct": 5}
    # sorted reference levels, then other; missing values fall in no bin
    assert fpm.bin_counts(entry, ["b", "z", None, "a", "a"]) == [2, 1, 1]


def test_bin_counts_use_the_reference_edges():
    entry = {"edges": [1.0, 5.0], "counts": [3, 4, 3], "missing": 0}
    assert fpm.bin_counts(entry, pd.Series([1.0, 1.0001, 5.0, 5.5, -np.inf, np.inf, np.nan])) == [2, 2, 2]
    with pytest.raises(ParameterError, match="one entry of a fingerprint"):
        fpm.bin_counts({"counts": [1]}, [1, 2])


def test_psi_statistic():
    assert fpm.psi([10, 20, 30], [10, 20, 30]) == 0.0
    assert fpm.psi([10, 20, 30], [20, 40, 60]) == 0.0  # shares, not counts
    e, a = np.array([0.5, 0.5]), np.array([0.8, 0.2])
    assert fpm.psi([50, 50], [80, 20]) == pytest.approx(np.sum((a - e) * np.log(a / e)))
    # an empty reference bin is floored at epsilon instead of dividing by zero
    assert fpm.psi([100, 0], [90, 10]) == pytest.approx(
        (0.9 - 1.0) * np.log(0.9) + (0.1 - 1e-4) * np.log(0.1 / 1e-4)
    )
    assert fpm.psi([100, 0], [90, 10], epsilon=1e-2) < fpm.psi([100, 0], [90, 10])
    with pytest.raises(ParameterError, match="same bins"):
        fpm.psi([1, 2, 3], [1, 2])
    with pytest.raises(ParameterError, match="at least one value"):
        fpm.psi([0, 0], [1, 2])


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "change, error, message",
    [
        ({"task": "ranking"}, ParameterError, r"Unknown task 'ranking'; use one of 'classification'"),
        ({"bins": 1}, ParameterError, r"bins must be a whole number of at least 2"),
        ({"bins": 2.5}, ParameterError, r"bins must be a whole number"),
        ({"scores": [0.1, 0.2]}, DataError, r"scores has 2 values for 8 rows"),
        ({"scores": np.zeros((8, 2))}, DataError, r"predict_proba\(X\)\[:, 1\]"),
        ({"numeric": ["agee"]}, DataError, r"X has no column 'agee' \(did you mean 'age'\?\)"),
        ({"numeric": ["plan"], "categorical": []}, DataError, r"'plan' holds .* not numbers: list it under categorical="),
        ({"categorical": ["plan", "age"]}, ParameterError, r"\['age'\] are listed as both numeric and categorical"),
        ({"numeric": "age"}, ParameterError, r"numeric= must be a list of column names"),
        ({"score_kind": "prediction"}, ParameterError, r"does not fit a classification model; use 'probability' or"),
        ({"score_kind": "probability", "scores": [2.0] * 8}, DataError, r"between 0 and 1"),
    ],
)
def test_bad_input_names_the_problem(small_frame, change, error, message):
    args = {"scores": [0.1] * 8, "numeric": ["age"], "categorical": ["plan"], "task": "classification"} | change
    with pytest.raises(error, match=message):
        fpm.fingerprint(small_frame, args.pop("scores"), **args)


def test_empty_frame_is_refused(small_frame):
    with pytest.raises(DataError, match="X has no rows"):
        fpm.fingerprint(small_frame.iloc[:0], [], numeric=["age"], categorical=[], task="regression")


def test_drift_table_names_missing_columns(small_frame):
    fp = fpm.fingerprint(small_frame, [0.1] * 8, numeric=["age"], categorical=["plan"], task="classification")
    with pytest.raises(DataError, match=r"X_new has no column 'plan'.*same feature columns"):
        fpm.drift_table(fp, small_frame[["age"]])
    with pytest.raises(DataError, match=r"X_new has no column 'age' \(did you mean 'Age'\?\)"):
        fpm.drift_table(fp, small_frame.rename(columns={"age": "Age"}))
    with pytest.raises(DataError, match="scores_new has 3 values for 8 rows"):
        fpm.drift_table(fp, small_frame, [0.1, 0.2, 0.3])
    no_scores = fpm.fingerprint(small_frame, None, numeric=["age"], categorical=[], task="regression")
    with pytest.raises(ParameterError, match="kept no scores"):
        fpm.drift_table(no_scores, small_frame, [0.1] * 8)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "is not valid JSON"),
        ('["a", "list"]', "is not an mlkit fingerprint"),
        ('{"format": "evidently-report/2"}', "has format 'evidently-report/2', not 'mlkit-fingerprint/1'"),
        ('{"format": "mlkit-fingerprint/1", "rows": 3}', r"lacks the key\(s\) task, params, numeric, categorical"),
        (
            '{"format": "mlkit-fingerprint/1", "rows": 3, "task": "regression", "params": {}, "categorical": {},'
            ' "scores": null, "numeric": {"x": {"edges": [1.0], "counts": [3], "missing": 0}}}',
            r"counts of entry numeric\['x'\] do not match its bins",
        ),
        (
            '{"format": "mlkit-fingerprint/1", "rows": 3, "task": "regression", "params": {}, "numeric": {},'
            ' "categorical": {"c": {"other": 0, "missing": 0}}, "scores": null}',
            r"entry categorical\['c'\] has no 'frequencies'",
        ),
    ],
)
def test_a_broken_file_is_a_data_error(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        fpm.load(path)


def test_a_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="No fingerprint at .*save one with"):
        fpm.load(tmp_path / "nowhere.json")


def test_public_names_are_declared():
    public = {"FORMAT", "SCORE_KINDS", "fingerprint", "bin_counts", "psi", "drift_table", "save", "load"}
    assert set(fpm.__all__) == public
    for name in fpm.__all__:
        assert hasattr(fpm, name)
