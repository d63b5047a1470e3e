"""ONNX export: every use case predicts exactly as in scikit-learn, and what cannot convert says so."""

from __future__ import annotations

import datetime
import hashlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_limits

from mlkit import datasets, onnx_export, training, usecases
from mlkit.errors import DataError, MlkitError, ParameterError
from mlkit.onnx_export import ConversionError, OnnxPredictor, parity, to_onnx
from mlkit.userdata import read_csv


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Boosting trains in OpenMP threads, which crawl when other jobs share the CPUs."""
    with threadpool_limits(limits=1):
        yield


def _rows(uc_id: str) -> int | None:
    return None if uc_id == "healthcare-diagnosis" else 800  # real data: all 569 rows


@pytest.fixture(scope="module")
def exported():
    """Train (once per module) and export a use case's pipeline of a family."""
    cache: dict[tuple[str, str], SimpleNamespace] = {}

    def get(uc_id: str, family: str = "boosting") -> SimpleNamespace:
        if (uc_id, family) not in cache:
            uc = usecases.get(uc_id)
            model, parts = training.train(uc, datasets.load(uc, n=_rows(uc_id)), family=family, seed=0)
            cache[uc_id, family] = SimpleNamespace(uc=uc, model=model, parts=parts, onnx=to_onnx(model, parts.train))
        return cache[uc_id, family]

    return get


def test_public_names():
    assert set(onnx_export.__all__) == {"OPSETS", "ConversionError", "to_onnx", "OnnxPredictor", "parity"}
    assert all(hasattr(onnx_export, name) for name in onnx_export.__all__)
    assert issubclass(ConversionError, MlkitError)


# --- Parity on every use case -----------------------------------------------------------------


@pytest.mark.parametrize("family", ["boosting", "linear"])
@pytest.mark.parametrize("uc", usecases.supervised(), ids=lambda u: u.id)
def test_every_use_case_exports_with_exact_parity(exported, uc, family):
    e = exported(uc.id, family)
    predictor = OnnxPredictor(e.onnx)
    report = parity(e.model, predictor, e.parts.test)
    assert report["rows"] == len(e.parts.test) > 0
    assert report["labels_identical"] and report["label_agreement"] == 1.0
    assert report["max_rel_diff"] <= 1e-5 and report["passed"]
    assert predictor.task == uc.task
    if uc.task == "classification":
        assert report["max_abs_diff"] <= 1e-5  # probabilities
        np.testing.assert_array_equal(predictor.classes_, e.model.classes_)
        assert predictor.classes_.dtype == e.model.classes_.dtype
        proba = predictor.predict_proba(e.parts.test)
        assert proba.shape == (len(e.parts.test), len(e.model.classes_)) and proba.dtype == np.float64


def test_one_row_predicts_as_sklearn(exported):
    e = exported("finance-fraud")
    row = e.parts.test.iloc[[3]]
    predictor = OnnxPredictor(e.onnx)
    np.testing.assert_allclose(predictor.predict_proba(row), e.model.predict_proba(row), rtol=0, atol=1e-12)
    assert predictor.predict(row).tolist() == e.model.predict(row).tolist()


def test_inputs_are_the_feature_columns_typed_double_or_string(exported):
    e = exported("healthcare-readmission")
    cols = training.feature_columns(pd.concat([e.parts.train, e.parts.validation]), e.uc)
    predictor = OnnxPredictor(e.onnx)
    assert predictor.input_columns == cols.features
    assert predictor.numeric_columns == cols.numeric and predictor.categorical_columns == cols.categorical
    assert not set(predictor.input_columns) & {*e.uc.sensitive_columns, *e.uc.id_columns, e.uc.target, "admission_date"}
    graph = onnx.load_from_string(e.onnx).graph
    types = {i.name: i.type.tensor_type for i in graph.input}
    assert types["age"].elem_type == onnx.TensorProto.DOUBLE  # an int64 column
    assert types["sex"].elem_type == onnx.TensorProto.STRING
    assert all(t.shape.dim[1].dim_value == 1 and not t.shape.dim[0].dim_value for t in types.values())


@pytest.mark.parametrize("uc_id", ["finance-fraud", "transport-traffic"])
def test_graph_is_float64_end_to_end(exported, uc_id):
    model = onnx.load_from_string(exported(uc_id).onnx)
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets["ai.onnx.ml"] == 5 and opsets[""] <= onnx_export.OPSETS[""]
    ops = [n.op_type for n in model.graph.node]
    assert "TreeEnsemble" in ops and "ZipMap" not in ops
    assert all(t.data_type != onnx.TensorProto.FLOAT for t in model.graph.initializer)
    trees = next(n for n in model.graph.node if n.op_type == "TreeEnsemble")
    tensors = {a.name: a.t for a in trees.attribute if a.type == onnx.AttributeProto.TENSOR}
    assert tensors["nodes_splits"].data_type == tensors["leaf_weights"].data_type == onnx.TensorProto.DOUBLE
    assert all(o.type.tensor_type.elem_type in (onnx.TensorProto.DOUBLE, onnx.TensorProto.INT64) for o in model.graph.output)


def test_export_is_deterministic(exported):
    e = exported("finance-fraud")
    assert to_onnx(e.model, e.parts.train) == e.onnx
    lin = exported("finance-fraud", "linear")
    retrained, parts = training.train(lin.uc, datasets.load(lin.uc, n=800), family="linear", seed=0)
    assert to_onnx(retrained, parts.train) == lin.onnx  # new objects, same bytes
    model = onnx.load_from_string(e.onnx)
    text = " ".join([model.doc_string, model.producer_name, model.producer_version, *(p.value for p in model.metadata_props)])
    assert str(datetime.date.today().year) not in text


# --- Your own data: multiclass, missing values, rare and unseen categories ----------------------


def _plans_csv(path, rows: int = 700, seed: int = 0):
    """A user's CSV: an id, a date, blanks and 'NA' in numbers, '?' in text, a 35-level column, a 3-class target."""
    rng = np.random.default_rng(seed)
    products = np.array([f"product-{i:02d}" for i in range(35)])
    weights = 1.0 / np.arange(1, 36)
    product = rng.choice(35, rows, p=weights / weights.sum())
    age = rng.integers(18, 80, rows)
    spend = np.round(rng.gamma(2.0, 50.0, rows), 2)
    region = rng.choice(["north", "south", "east", "west"], rows)
    score = spend / 100 + (age - 50) / 20 + (region == "north") + (product % 3) + rng.normal(0, 0.7, rows)
    plan = np.where(score < np.quantile(score, 0.35), "basic", np.where(score < np.quantile(score, 0.7), "plus", "pro"))
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(rows)],
            "signup_date": pd.date_range("2024-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"),
            "age": age.astype(str),
            "spend": spend.astype(str),
            "region": region,
            "product": products[product],
            "plan": plan,
        }
    )
    frame.loc[::23, "age"] = ""
    frame.loc[5::19, "spend"] = "NA"
    frame.loc[7::29, "region"] = "?"
    frame.loc[11::31, "product"] = ""
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    data = read_csv(_plans_csv(tmp_path_factory.mktemp("csv") / "plans.csv"), target="plan", task="classification")
    out = {}
    for family in ("boosting", "linear"):
        model, parts = training.train(data.use_case, data.frame, family=family, seed=0)
        out[family] = SimpleNamespace(model=model, parts=parts, onnx=to_onnx(model, parts.train))
    return out


_EXPORT_IN_A_SUBPROCESS = """
import hashlib, sys
sys.path.insert(0, sys.argv[2])
from test_onnx_export import _plans_csv
from mlkit import training
from mlkit.onnx_export import to_onnx
from mlkit.userdata import read_csv
data = read_csv(_plans_csv(sys.argv[1]), target="plan", task="classification")
model, parts = training.train(data.use_case, data.frame, family="linear", seed=0)
print(hashlib.sha256(to_onnx(model, parts.train)).hexdigest())
"""


def test_export_is_the_same_in_another_process(plans, tmp_path):
    """Another process hashes strings differently: sets must not decide the bytes (rare levels are a set)."""
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    args = [sys.executable, "-c", _EXPORT_IN_A_SUBPROCESS, str(tmp_path / "plans.csv"), str(Path(__file__).parent)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == hashlib.sha256(plans["linear"].onnx).hexdigest()


@pytest.mark.parametrize("family", ["boosting", "linear"])
def test_user_csv_multiclass_has_exact_parity(plans, family):
    e = plans[family]
    predictor = OnnxPredictor(e.onnx)
    assert predictor.classes_.tolist() == ["basic", "plus", "pro"]
    assert "customer_id" not in predictor.input_columns and "signup_date" not in predictor.input_columns
    assert e.parts.test[["age", "spend", "region", "product"]].isna().any().all()  # every kind of gap is tested
    report = parity(e.model, predictor, e.parts.test)
    assert report["passed"] and report["labels_identical"] and report["max_abs_diff"] <= 1e-5
    assert set(predictor.predict(e.parts.test)) <= {"basic", "plus", "pro"}


@pytest.fixture
def serving_rows(plans):
    """Test rows as a serving request might send them: unseen levels, gaps, None, a rare level."""
    test = plans["boosting"].parts.test
    rows = test.head(8).copy()
    products = ["brand-new", np.nan, "product-00", "product-34", "brand-new", None, "product-01", "also-new"]
    regions = ["atlantis", "north", np.nan, None, "south", "east", "atlantis", "west"]
    rows["product"] = pd.Series(products, index=rows.index, dtype=object)  # object keeps None as None
    rows["region"] = pd.Series(regions, index=rows.index, dtype=object)
    rows["spend"] = [np.nan, 10.0, np.nan, 250.5, 99.0, np.nan, 1e6, 0.0]
    rows["age"] = [np.nan, 30, 44, np.nan, 90, 18, 60, 120]
    return rows


@pytest.mark.parametrize("family", ["boosting", "linear"])
def test_unseen_rare_and_missing_values_match_sklearn(plans, serving_rows, family):
    e = plans[family]
    encoded = pd.DataFrame(e.model[:-1].transform(serving_rows), columns=e.model[:-1].get_feature_names_out())
    rare = set(e.model["preprocess"].named_transformers_["categorical"][-1].infrequent_categories_[1])
    assert "product-34" in rare and "product-00" not in rare
    # Unseen levels, None and rare levels share the infrequent column; a gap is the level "missing".
    assert encoded["product_infrequent_sklearn"].tolist() == [1, 0, 0, 1, 1, 1, 0, 1]
    assert encoded["product_missing"].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    # region has no infrequent column: an unseen level (or None) is all zeros, a gap is "missing".
    assert encoded.filter(like="region_").sum(axis=1).tolist() == [0, 1, 1, 0, 1, 1, 0, 1]
    assert encoded["region_missing"].tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    assert (encoded["missingindicator_spend"] > 0).tolist() == [True, False, True, False, False, True, False, False]  # scaled
    report = parity(e.model, OnnxPredictor(e.onnx), serving_rows)
    assert report["passed"], report


def test_bool_nullable_and_category_columns():
    rng = np.random.default_rng(3)
    n = 400
    visits = pd.array(rng.poisson(4, n), dtype="Int64")
    visits[::13] = pd.NA
    frame = pd.DataFrame(
        {
            "member": rng.random(n) < 0.4,
            "visits": visits,
            "tier": pd.Categorical(rng.choice(["gold", "silver", "bronze"], n)),
        }
    )
    frame.loc[::17, "tier"] = np.nan
    frame["bought"] = ((frame["member"] + frame["visits"].fillna(0).astype(float) / 4 + rng.normal(0, 0.5, n)) > 1.2).astype(int)
    uc = usecases.custom(name="frame", target="bought", task="classification")
    model, parts = training.train(uc, frame, family="linear", seed=0)
    predictor = OnnxPredictor(to_onnx(model, parts.train))
    assert predictor.numeric_columns == ["member", "visits"] and predictor.categorical_columns == ["tier"]
    feed = predictor.feed(parts.test)
    assert feed["member"].dtype == np.float64 and feed["visits"].dtype == np.float64
    assert np.isnan(feed["visits"]).any() and "missing" in feed["tier"].ravel().tolist()
    assert parity(model, predictor, parts.test)["passed"]


def test_column_names_with_spaces_and_symbols_are_fed_by_their_own_names():
    """ONNX input names are sanitised; the frame keeps its users' column names (a CSV's "mean radius")."""
    rng = np.random.default_rng(4)
    n = 300
    frame = pd.DataFrame({"mean radius": rng.normal(14, 3, n), "blood-pressure (mmHg)": rng.normal(120, 15, n),
                          "care unit": rng.choice(["a b", "c"], n)})
    frame["outcome"] = (frame["mean radius"] + rng.normal(0, 2, n) > 14).astype(int)
    uc = usecases.custom(name="spaces", target="outcome", task="classification")
    model, parts = training.train(uc, frame, family="boosting", seed=0)
    predictor = OnnxPredictor(to_onnx(model, parts.train))
    assert predictor.input_columns == ["mean radius", "blood-pressure (mmHg)", "care unit"]
    assert parity(model, predictor, parts.test)["passed"]
    with pytest.raises(DataError, match="'mean radius'"):
        predictor.predict(parts.test.drop(columns="mean radius"))


# --- What cannot convert, and bad input ---------------------------------------------------------


@pytest.mark.parametrize(("uc_id", "dummy"), [("finance-fraud", "DummyClassifier"), ("retail-demand", "DummyRegressor")])
def test_baseline_is_refused_naming_the_step(uc_id, dummy):
    uc = usecases.get(uc_id)
    model, parts = training.train(uc, datasets.load(uc, n=300), family="baseline", seed=0)
    with pytest.raises(ConversionError) as err:
        to_onnx(model, parts.train)
    message = str(err.value)
    assert f"step 'model' ({dummy})" in message and err.value.step == f"step 'model' ({dummy})"
    assert "family='boosting' or family='linear'" in message and "skops" in message


def test_unknown_transformer_is_refused_naming_the_branch():
    uc = usecases.get("finance-fraud")
    df = datasets.load(uc, n=300)
    model = training.build_pipeline(uc, df, family="linear")
    model.set_params(preprocess__numeric__standardscaler=MinMaxScaler())
    model.fit(*training.xy(df, uc))
    with pytest.raises(ConversionError, match=r"ColumnTransformer branch 'numeric'.*MinMaxScaler"):
        to_onnx(model, df)


def test_unfitted_pipeline_and_missing_export_column_are_refused():
    uc = usecases.get("finance-fraud")
    df = datasets.load(uc, n=300)
    with pytest.raises(ParameterError, match="not fitted"):
        to_onnx(training.build_pipeline(uc, df, family="linear"), df)
    model, parts = training.train(uc, df, family="linear", seed=0)
    with pytest.raises(DataError, match="'channel'"):
        to_onnx(model, parts.train.drop(columns=["channel"]))


def test_missing_column_at_prediction_is_a_data_error_naming_it(exported):
    e = exported("finance-fraud")
    with pytest.raises(DataError, match="'merchant_category'"):
        OnnxPredictor(e.onnx).predict(e.parts.test.drop(columns=["merchant_category"]))


def test_text_in_a_numeric_column_is_a_data_error(exported):
    e = exported("finance-fraud")
    rows = e.parts.test.head(3).astype({"amount": object})
    rows["amount"] = ["12.5", "lots", "3"]
    with pytest.raises(DataError, match="'amount' must hold numbers"):
        OnnxPredictor(e.onnx).predict(rows)


def test_predict_proba_of_a_regressor_is_refused(exported):
    e = exported("retail-demand")
    predictor = OnnxPredictor(e.onnx)
    assert predictor.task == "regression" and predictor.classes_ is None
    with pytest.raises(MlkitError, match="regressor"):
        predictor.predict_proba(e.parts.test)


def test_feed_sends_float64_and_text_with_missing_filled(exported):
    e = exported("finance-fraud")
    rows = e.parts.test.head(2).copy()
    rows.loc[rows.index[0], ["distance_from_home_km", "merchant_category"]] = np.nan
    feed = OnnxPredictor(e.onnx).feed(rows)
    assert set(feed) == set(OnnxPredictor(e.onnx).input_columns)
    assert feed["hour"].dtype == np.float64 and feed["hour"].shape == (2, 1)
    assert np.isnan(feed["distance_from_home_km"][0, 0])
    assert feed["merchant_category"][0, 0] == "missing" and feed["merchant_category"].dtype == object


def test_predictor_loads_from_a_file_with_its_thread_setting(exported, tmp_path):
    e = exported("transport-traffic", "linear")
    path = tmp_path / "traffic.onnx"
    path.write_bytes(e.onnx)
    predictor = OnnxPredictor(path, intra_op_num_threads=2)
    assert predictor.session.get_session_options().intra_op_num_threads == 2
    assert OnnxPredictor(str(path)).session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_allclose(predictor.predict(e.parts.test), e.model.predict(e.parts.test), rtol=1e-12)
    with pytest.raises(DataError, match="not found"):
        OnnxPredictor(tmp_path / "nothing.onnx")


# --- parity can fail ------------------------------------------------------------------------------


def test_parity_fails_for_a_different_model(exported):
    linear, boosting = exported("finance-fraud", "linear"), exported("finance-fraud")
    report = parity(linear.model, OnnxPredictor(boosting.onnx), linear.parts.test)
    assert not report["passed"] and report["max_abs_diff"] > 1e-3


class _Scaled(OnnxPredictor):
    """An export whose predictions are off by a relative factor."""

    factor = 1.0

    def predict(self, X):
        return super().predict(X) * self.factor


def test_parity_of_a_regressor_is_relative(exported):
    e = exported("transport-traffic")
    predictor = _Scaled(e.onnx)
    predictor.factor = 1 + 3e-6
    close = parity(e.model, predictor, e.parts.test)
    assert close["passed"] and close["max_abs_diff"] > close["tolerance"]  # volumes in the hundreds
    assert close["max_rel_diff"] == pytest.approx(3e-6, rel=1e-3)
    predictor.factor = 1 + 3e-5
    far = parity(e.model, predictor, e.parts.test)
    assert not far["passed"] and not far["labels_identical"] and far["label_agreement"] < 1


def test_parity_needs_rows(exported):
    e = exported("finance-fraud")
    with pytest.raises(DataError, match="at least one row"):
        parity(e.model, e.onnx, e.parts.test.head(0))
