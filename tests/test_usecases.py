"""The use-case registry: ids, tasks, metrics, gates and drift stories in one place."""

from __future__ import annotations

import pytest

import mlkit
from mlkit import evaluation, usecases
from mlkit.errors import ParameterError

EXPECTED = {
    "healthcare-diagnosis": ("classification", "malignant", "recall"),
    "healthcare-readmission": ("classification", "readmitted_30d", "roc_auc"),
    "finance-fraud": ("classification", "is_fraud", "average_precision"),
    "retail-demand": ("regression", "units_sold", "wape"),
    "manufacturing-maintenance": ("classification", "failure", "f2"),
    "transport-traffic": ("regression", "traffic_volume", "mae"),
    "marketing-segments": ("clustering", None, "silhouette"),
}


def test_the_seven_industry_use_cases_are_registered_in_order():
    assert usecases.ids() == list(EXPECTED)
    for uc in usecases.all_use_cases():
        assert (uc.task, uc.target, uc.primary_metric) == EXPECTED[uc.id]


def test_supervised_use_cases_exclude_clustering():
    assert [u.id for u in usecases.supervised()] == list(EXPECTED)[:6]
    assert usecases.ids(supervised_only=True) == list(EXPECTED)[:6]


@pytest.mark.parametrize("uc", usecases.supervised(), ids=lambda u: u.id)
def test_every_supervised_use_case_is_complete(uc):
    assert uc.primary_metric in evaluation.METRICS
    assert uc.gate and set(uc.gate) <= {"primary_min", "primary_max", "roc_auc_min"}
    direction = "primary_min" if evaluation.metric(uc.primary_metric).greater_is_better else "primary_max"
    assert direction in uc.gate, "the gate bounds the primary metric in its own direction"
    assert set(uc.drift) == {"covariate", "label", "concept"}
    assert uc.cost_model.get("note")
    assert uc.series == (uc.task == "regression")


def test_personal_data_is_declared_where_the_hybrid_lesson_needs_it():
    uc = usecases.get("healthcare-readmission")
    assert {"patient_id", "name", "date_of_birth", "postcode"} <= set(uc.sensitive_columns)


def test_unknown_id_lists_choices_and_suggests_the_closest():
    with pytest.raises(ParameterError, match="Did you mean 'finance-fraud'.*Valid use cases: healthcare-diagnosis"):
        usecases.get("finance-fruad")


def test_custom_use_case_describes_a_users_csv():
    uc = usecases.custom(name="loans.csv", target="default", task="classification")
    assert uc.source == "user csv" and uc.gate == {} and uc.supervised
    with pytest.raises(ParameterError, match="'classification' or 'regression'"):
        usecases.custom(name="x.csv", target="y", task="forecast")


def test_public_names_are_declared():
    for module in (mlkit, usecases, evaluation):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name} is in __all__ but missing"

