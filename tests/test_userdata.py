"""Bring your own CSV: messy files are handled and explained, unusable ones stop clearly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlkit.errors import DataError
from mlkit.userdata import read_csv


def _churn_frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = rng.poisson(5, n)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "visits": visits,
            "spend": np.round(rng.gamma(2, 30, n), 2),
            "city": [f"town_{i}" for i in rng.integers(0, 250, n)],
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "churned": np.where(visits + rng.normal(0, 2, n) < 4, "yes", "no"),
        }
    )


@pytest.fixture
def messy_churn_csv(tmp_path):
    """A BOM, mixed line endings, blank strings in a numeric column, an id and a 250-level column."""
    df = _churn_frame()
    lines = df.astype(str).agg(",".join, axis=1).tolist()
    lines = [ln.replace(ln.split(",")[2], " ", 1) if i % 17 == 0 else ln for i, ln in enumerate(lines)]
    body = "".join(ln + ("\r\n" if i % 2 else "\n") for i, ln in enumerate(lines))
    path = tmp_path / "messy_churn.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (",".join(df.columns) + "\r\n" + body).encode("utf-8"))
    return path


def test_messy_csv_is_read_and_every_fix_is_noted(messy_churn_csv):
    data = read_csv(messy_churn_csv, target="churned", task="classification")
    df, notes = data.frame, " | ".join(data.notes)
    assert list(df.columns)[0] == "customer_id"  # BOM not glued to the first name
    assert "byte-order mark" in notes and "line endings" in notes
    assert pd.api.types.is_float_dtype(df["spend"]) and df["spend"].isna().sum() == 18
    assert "'spend' is numeric; 18 blank strings read as missing" in notes
    assert data.use_case.id_columns == ("customer_id",)
    assert "'city' has 250 categories" in notes or "'city' has" in notes
    assert set(df["churned"]) == {0, 1} and "coded 'yes' as 1" in notes
    assert len(df) == 300


def test_task_is_inferred_and_said(tmp_path):
    path = tmp_path / "prices.csv"
    rng = np.random.default_rng(1)
    pd.DataFrame({"size": rng.normal(100, 20, 80), "price": rng.normal(300, 50, 80)}).to_csv(path, index=False)
    data = read_csv(path, target="price")
    assert data.use_case.task == "regression" and data.use_case.primary_metric == "mae"
    assert any("inferred 'regression'" in n for n in data.notes)


def test_multiclass_targets_keep_labels_and_use_balanced_accuracy(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    df = iris.frame.assign(species=iris.target_names[iris.target])
    path = tmp_path / "iris.csv"
    df.drop(columns="target").to_csv(path, index=False)
    data = read_csv(path, target="species", task="classification")
    assert data.use_case.primary_metric == "balanced_accuracy" and data.use_case.positive_label is None
    assert set(data.frame["species"]) == {"setosa", "versicolor", "virginica"}


def test_time_column_sorts_rows_and_marks_a_series(tmp_path):
    path = tmp_path / "sales.csv"
    dates = pd.date_range("2024-01-01", periods=90, freq="D")[::-1]
    pd.DataFrame({"day": dates.strftime("%Y-%m-%d"), "units": np.arange(90) % 13 + 0.5}).to_csv(path, index=False)
    data = read_csv(path, target="units", task="regression", time_column="day")
    assert data.frame["day"].is_monotonic_increasing and data.use_case.series


def test_rows_with_missing_target_are_dropped_and_counted(tmp_path):
    df = _churn_frame(100)
    df.loc[:4, "churned"] = ""
    path = tmp_path / "gaps.csv"
    df.to_csv(path, index=False)
    data = read_csv(path, target="churned", task="classification")
    assert len(data.frame) == 95 and any("dropped 5 row(s)" in n for n in data.notes)


@pytest.mark.parametrize(
    "scenario, kwargs, message",
    [
        ("missing_file", {"target": "y"}, "Data file not found"),
        ("missing_target", {"target": "churnd"}, "Target column 'churnd' is not in .*Did you mean 'churned'"),
        ("constant_target", {"target": "churned"}, "single value"),
        ("empty_target", {"target": "churned"}, "empty in every row"),
        ("text_regression", {"target": "churned", "task": "regression"}, "needs a numeric target"),
        ("continuous_classification", {"target": "spend", "task": "classification"}, "looks continuous"),
        ("too_few_rows", {"target": "churned"}, "usable rows; at least 50"),
        ("empty_file", {"target": "churned"}, "is empty"),
        ("missing_time_column", {"target": "churned", "time_column": "when"}, "time_column 'when' is not in"),
        ("rare_class", {"target": "churned", "task": "classification"}, "fewer than 5 rows"),
    ],
)
def test_unusable_csvs_stop_with_a_clear_error(tmp_path, scenario, kwargs, message):
    df = _churn_frame(200)
    path = tmp_path / f"{scenario}.csv"
    if scenario == "constant_target":
        df["churned"] = "no"
    elif scenario == "empty_target":
        df["churned"] = ""
    elif scenario == "too_few_rows":
        df = df.head(20)
    elif scenario == "rare_class":
        df.loc[:2, "churned"] = "maybe"
    if scenario == "empty_file":
        path.write_text("")
    elif scenario != "missing_file":
        df.to_csv(path, index=False)
    with pytest.raises(DataError, match=message):
        read_csv(path, **kwargs)


def test_smoke_sample_is_deterministic(tmp_path):
    path = tmp_path / "churn.csv"
    _churn_frame(300).to_csv(path, index=False)
    a = read_csv(path, target="churned", n=120, seed=3).frame
    b = read_csv(path, target="churned", n=120, seed=3).frame
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 120
