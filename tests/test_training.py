"""The default pipeline recipe: feature roles, splits chosen by the data, one-call training."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlkit import datasets, evaluation, training, usecases
from mlkit.errors import ParameterError


@pytest.fixture(scope="module")
def readmission():
    uc = usecases.get("healthcare-readmission")
    return uc, datasets.load(uc, n=1500)


def test_feature_roles_keep_personal_data_and_ids_out(readmission):
    uc, df = readmission
    cols = training.feature_columns(df, uc)
    for col in ("patient_id", "name", "date_of_birth", "postcode"):
        assert col not in cols.features and col in cols.dropped
    assert cols.dropped[uc.target] == "target" and cols.dropped["admission_date"] in ("datetime", "personal data")
    assert "hba1c" in cols.numeric and "discharge_to" in cols.categorical


@pytest.mark.parametrize("uc", usecases.supervised(), ids=lambda u: u.id)
def test_split_strategy_follows_the_data(uc):
    df = datasets.load(uc, n=600 if uc.id != "healthcare-diagnosis" else 400)
    parts = training.split(df, uc, seed=0)
    sizes = parts.sizes()
    assert sum(sizes.values()) == len(df)
    assert abs(sizes["test"] - 0.2 * len(df)) <= 2 and abs(sizes["validation"] - 0.2 * len(df)) <= 2
    if uc.series:
        assert parts.strategy == "time-ordered"
        assert parts.train[uc.time_column].max() <= parts.validation[uc.time_column].min()
        assert parts.validation[uc.time_column].max() <= parts.test[uc.time_column].min()
    else:
        assert parts.strategy == "stratified"
        rates = [p[uc.target].mean() for p in (parts.train, parts.validation, parts.test)]
        assert max(rates) - min(rates) < 0.02


def test_unknown_family_and_strategy_are_refused(readmission):
    uc, df = readmission
    with pytest.raises(ParameterError, match="Unknown model family 'forest'"):
        training.build_pipeline(uc, df, family="forest")
    with pytest.raises(ParameterError, match="Unknown split strategy"):
        training.split(df, uc, strategy="alphabetical")


def test_trained_model_beats_the_baseline_and_handles_unseen_categories(readmission):
    uc, df = readmission
    model, parts = training.train(uc, df, seed=0)
    baseline, _ = training.train(uc, df, family="baseline", seed=0)
    X, y = training.xy(parts.test, uc)
    auc = evaluation.score("roc_auc", y, y_score=model.predict_proba(X)[:, 1])
    base = evaluation.score("roc_auc", y, y_score=baseline.predict_proba(X)[:, 1])
    assert auc > base + 0.05
    odd = X.copy()
    odd["discharge_to"] = "a category never seen in training"
    assert np.isfinite(model.predict_proba(odd)).all()


def test_training_is_deterministic_by_seed(readmission):
    uc, df = readmission
    a, parts = training.train(uc, df, seed=3)
    b, _ = training.train(uc, df, seed=3)
    X, _ = training.xy(parts.test, uc)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


def test_regression_series_pipeline_predicts_in_target_units():
    uc = usecases.get("retail-demand")
    df = datasets.load(uc, n=2400)
    model, parts = training.train(uc, df, seed=0)
    X, y = training.xy(parts.test, uc)
    pred = model.predict(X)
    assert evaluation.score("wape", y, y_pred=pred) < evaluation.score("wape", y, y_pred=np.full(len(y), y.mean()))
    assert isinstance(parts.test, pd.DataFrame)
