"""The shared figures: each has a title and labelled axes, returns what it drew, and closes cleanly."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mlkit import plots  # noqa: E402


@pytest.fixture(autouse=True)
def no_figure_leaks():
    """Every test starts and ends with no open figure."""
    plt.close("all")
    yield
    plt.close("all")
    assert plt.get_fignums() == []


def _texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.texts]


def _assert_labelled(ax: Axes) -> None:
    assert ax.get_title()
    assert ax.get_xlabel()
    assert ax.get_ylabel()


def test_public_names_are_declared():
    assert sorted(plots.__all__) == sorted(
        ["LIFECYCLE", "lifecycle_map", "missing_values", "class_balance", "target_distribution",
         "target_over_time", "model_comparison"]
    )
    for name in plots.__all__:
        assert hasattr(plots, name)


def test_lifecycle_map_has_every_stage_with_its_notebook_number():
    fig = plots.lifecycle_map()
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() == "The model lifecycle, one notebook per stage"
    texts = _texts(ax)
    for number, label in plots.LIFECYCLE:
        assert label in texts
        assert f"notebook {number}" in texts
    assert [n for n, _ in plots.LIFECYCLE] == [f"{i:02d}" for i in range(11)]
    assert "loop back" in texts
    plt.close(fig)
    assert plt.get_fignums() == []


def test_lifecycle_map_draws_arrows_between_stages():
    fig = plots.lifecycle_map()
    arrows = [p for p in fig.axes[0].patches if type(p).__name__ == "FancyArrowPatch"]
    # 4 along the top, 3 into the deployments, 1 into monitoring, 2 along the bottom, 1 loop back.
    assert len(arrows) == 11
    plt.close(fig)


def test_missing_values_shows_only_columns_with_gaps_as_percentages():
    df = pd.DataFrame({"a": [1.0, None, None, 4.0], "b": [1, 2, 3, 4], "c": ["x", None, "y", "z"]})
    ax = plots.missing_values(df)
    _assert_labelled(ax)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["c", "a"]
    assert " 50.0%" in _texts(ax) and " 25.0%" in _texts(ax)
    assert "%" in ax.get_xlabel()


def test_missing_values_says_when_nothing_is_missing():
    ax = plots.missing_values(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    _assert_labelled(ax)
    assert _texts(ax) == ["no missing values in any of the 2 columns"]


def test_class_balance_counts_and_shares_even_rare_classes():
    y = pd.Series([0] * 99 + [1], name="is_fraud")
    ax = plots.class_balance(y)
    _assert_labelled(ax)
    assert ax.get_ylabel() == "is_fraud"
    assert " 99 (99.0%)" in _texts(ax) and " 1 (1.0%)" in _texts(ax)


def test_class_balance_accepts_string_labels_and_an_existing_axes():
    fig, ax = plt.subplots()
    out = plots.class_balance(pd.Series(["setosa", "virginica", "setosa"], name="species"), ax=ax, title="Iris")
    assert out is ax
    assert ax.get_title() == "Iris"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["setosa", "virginica"]
    plt.close(fig)


def test_target_distribution_marks_mean_and_median_in_a_legend():
    y = pd.Series(np.arange(100, dtype=float), name="units_sold")
    ax = plots.target_distribution(y, unit="units")
    _assert_labelled(ax)
    assert ax.get_xlabel() == "units_sold (units)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["mean 49.5", "median 49.5"]


def test_target_over_time_averages_rows_that_share_a_time():
    t = pd.date_range("2024-01-01", periods=10, freq="D")
    df = pd.DataFrame({"date": np.repeat(t, 2), "units": np.tile([1.0, 3.0], 10)})
    ax = plots.target_over_time(df, "date", "units")
    _assert_labelled(ax)
    line = ax.get_lines()[0]
    assert len(line.get_ydata()) == 10
    assert np.allclose(line.get_ydata(), 2.0)
    assert ax.get_ylabel() == "mean units per day"


def test_target_over_time_resamples_long_hourly_series_to_days():
    t = pd.date_range("2024-01-01", periods=24 * 60, freq="h")
    df = pd.DataFrame({"timestamp": t, "volume": np.arange(len(t), dtype=float)})
    ax = plots.target_over_time(df, "timestamp", "volume")
    assert len(ax.get_lines()[0].get_ydata()) == 60
    assert ax.get_ylabel() == "mean volume per day"
    cut_off = plots.target_over_time(df.head(24 * 60 - 20), "timestamp", "volume")
    assert len(cut_off.get_lines()[0].get_ydata()) == 59, "a day with 4 of 24 hours is left out"
    short = plots.target_over_time(df.head(48), "timestamp", "volume")
    assert short.get_ylabel() == "mean volume per hour"


def test_target_over_time_accepts_a_numeric_order_column():
    df = pd.DataFrame({"step": [3, 1, 2], "y": [30.0, 10.0, 20.0]})
    ax = plots.target_over_time(df, "step", "y")
    assert list(ax.get_lines()[0].get_ydata()) == [10.0, 20.0, 30.0]
    assert ax.get_xlabel() == "step (order)"


@pytest.mark.parametrize("greater, best", [(True, "boosting"), (False, "baseline")])
def test_model_comparison_highlights_the_best_in_the_right_direction(greater, best):
    scores = {"baseline": 0.1, "linear": 0.5, "boosting": 0.7}
    ax = plots.model_comparison(scores, metric="wape", greater_is_better=greater)
    _assert_labelled(ax)
    assert ax.get_xlabel() == f"wape ({'higher' if greater else 'lower'} is better)"
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names == ["boosting", "linear", "baseline"]  # drawn top to bottom in the given order
    colours = {n: p.get_facecolor() for n, p in zip(names, ax.patches)}
    assert len({c for n, c in colours.items() if n != best}) == 1
    assert colours[best] != colours[next(n for n in names if n != best)]


def test_model_comparison_refuses_no_scores():
    with pytest.raises(ValueError, match="at least one"):
        plots.model_comparison({}, metric="mae")
    assert plt.get_fignums() == []


def test_nothing_calls_show(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("plots must not call plt.show()")

    monkeypatch.setattr(plt, "show", fail)
    plots.lifecycle_map()
    plots.class_balance(pd.Series([0, 1]))
    plots.model_comparison({"a": 1.0}, metric="mae", greater_is_better=False)
