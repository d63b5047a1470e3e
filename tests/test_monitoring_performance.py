"""Performance over time: delayed labels per window, the label-free estimate, and where it fails."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mlkit.errors import DataError, ParameterError
from mlkit.monitoring import performance
from mlkit.monitoring.performance import (
    fit_confidence_calibrator,
    performance_over_time,
    plot_performance,
    synthetic_stream,
)


@pytest.fixture
def late_labels() -> pd.DataFrame:
    """Six predictions at 9:00..9:50; labels arrive at different times, one never."""
    stamps = pd.date_range("2024-01-01 09:00", periods=6, freq="10min", tz="UTC")
    return pd.DataFrame({
        "timestamp": stamps,
        "prediction": [1, 0, 1, 1, 0, 0],
        "score": [0.9, 0.2, 0.7, 0.8, 0.4, 0.1],
        "label": [1, 1, 1, 0, 0, None],
        "label_timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:00", "2024-01-01 12:00",
                                           "2024-01-01 10:30", "2024-01-01 11:00", None], utc=True),
    })


def test_public_names():
    assert set(performance.__all__) == {"ESTIMABLE", "ConfidenceCalibrator", "fit_confidence_calibrator",
                                        "performance_over_time", "plot_performance", "synthetic_stream"}


def test_only_labels_known_at_as_of_count(late_labels):
    table = performance_over_time(late_labels, "accuracy", 2, as_of="2024-01-01 10:30", min_labels=1)
    assert table["rows"].tolist() == [2, 2, 2]
    assert table["labelled"].tolist() == [2, 1, 0]  # 9:20's label arrives at 12:00; 9:30's at 10:30 (counts)
    assert table["pending"].tolist() == [0, 1, 2]
    assert table["realised"].iloc[0] == 0.5 and table["realised"].iloc[1] == 0.0
    assert np.isnan(table["realised"].iloc[2])
    assert table["start"].iloc[1] == pd.Timestamp("2024-01-01 09:20", tz="UTC")
    assert table["end"].iloc[1] == pd.Timestamp("2024-01-01 09:30", tz="UTC")
    assert table.attrs["as_of"] == pd.Timestamp("2024-01-01 10:30", tz="UTC")


def test_default_as_of_is_the_last_recorded_moment(late_labels):
    table = performance_over_time(late_labels, "accuracy", 2, min_labels=1)  # as of 12:00: all labels in
    assert table["labelled"].tolist() == [2, 2, 1]
    assert table["realised"].tolist() == [0.5, 0.5, 1.0]


def test_label_delay_simulates_arrival_and_ignores_label_timestamp(late_labels):
    table = performance_over_time(late_labels, "accuracy", 3, label_delay="30min", as_of="2024-01-01 09:49",
                                  min_labels=1)
    assert table["labelled"].tolist() == [2, 0]  # 9:00 and 9:10 arrived by 9:40; 9:20's arrives at 9:50
    table = performance_over_time(late_labels, "accuracy", 3, label_delay="30min", as_of="2024-01-01 09:50",
                                  min_labels=1)
    assert table["labelled"].tolist() == [3, 0]  # arriving exactly at as_of counts
    assert table["realised"].iloc[0] == pytest.approx(2 / 3)


def test_time_windows_and_min_labels(late_labels):
    table = performance_over_time(late_labels, "accuracy", "30min", min_labels=3)
    assert table["window"].tolist() == [0, 1]
    assert table["start"].tolist() == [pd.Timestamp("2024-01-01 09:00", tz="UTC"),
                                       pd.Timestamp("2024-01-01 09:30", tz="UTC")]
    assert table["end"].iloc[0] == pd.Timestamp("2024-01-01 09:30", tz="UTC")
    assert table["labelled"].tolist() == [3, 2]
    assert table["realised"].iloc[0] == pytest.approx(2 / 3) and np.isnan(table["realised"].iloc[1])


def test_score_metric_uses_scores_and_needs_both_classes(late_labels):
    table = performance_over_time(late_labels, "roc_auc", 3, min_labels=1)
    assert np.isnan(table["realised"].iloc[0])  # labels 1, 1, 1: one class only
    frame = late_labels.assign(label=[1, 0, 1, 0, 0, None])
    table = performance_over_time(frame, "roc_auc", 3, min_labels=1)
    assert table["realised"].iloc[0] == pytest.approx(1.0)
    assert np.isnan(table["realised"].iloc[1])  # labels 0, 0: a ranking metric is undefined


def test_estimate_tracks_realised_accuracy_under_covariate_shift():
    reference, stream = synthetic_stream("covariate", seed=3)
    calibrator = fit_confidence_calibrator(reference["score"], reference["label"])
    table = performance_over_time(stream, "accuracy", 500, calibrator=calibrator)
    gap = (table["estimated"] - table["realised"]).abs()
    assert gap.max() < 0.06 and gap.mean() < 0.03
    before, after = table["realised"].iloc[:5].mean(), table["realised"].iloc[5:].mean()
    assert before - after > 0.12  # the shift really hurt, and the estimate saw it
    assert table["estimated"].iloc[:5].mean() - table["estimated"].iloc[5:].mean() > 0.12


def test_estimate_fails_under_concept_drift():
    reference, stream = synthetic_stream("concept", seed=3)
    calibrator = fit_confidence_calibrator(reference["score"], reference["label"])
    table = performance_over_time(stream, "accuracy", 500, calibrator=calibrator)
    before, after = table.iloc[:5], table.iloc[5:]
    assert before["realised"].mean() - after["realised"].mean() > 0.12  # the realised metric drops
    assert abs(before["estimated"].mean() - after["estimated"].mean()) < 0.03  # the estimate stays flat
    assert (after["estimated"] - after["realised"]).min() > 0.08  # and is wrong in every drifted window


def test_binary_estimates_of_precision_recall_and_positive_rate():
    reference, stream = synthetic_stream("none", windows=2, window_size=2000, seed=5)
    calibrator = fit_confidence_calibrator(reference["score"], reference["label"])
    for name in ("precision", "recall"):
        table = performance_over_time(stream, name, 2000, calibrator=calibrator)
        assert (table["estimated"] - table["realised"]).abs().max() < 0.05
    rates = stream.groupby(np.arange(len(stream)) // 2000)["label"].mean().to_numpy()
    assert np.abs(table["estimated_positive_rate"].to_numpy() - rates).max() < 0.05


def test_correct_target_estimates_accuracy_only():
    reference, stream = synthetic_stream("none", windows=2, window_size=1000, seed=6)
    confidence = np.maximum(reference["score"], 1 - reference["score"])
    calibrator = fit_confidence_calibrator(confidence, reference["label"], target="correct",
                                           reference_predictions=reference["prediction"])
    realised = (stream["prediction"] == stream["label"]).mean()
    estimate = calibrator.estimate(np.maximum(stream["score"], 1 - stream["score"]))
    assert set(estimate) == {"accuracy"} and abs(estimate["accuracy"] - realised) < 0.04
    table = performance_over_time(stream, "recall", 1000, calibrator=calibrator)
    assert table["estimated"].isna().all()  # recall cannot be estimated from P(correct)


def test_plot_has_title_axes_legend_and_shading():
    reference, stream = synthetic_stream("concept", windows=4, window_size=200, seed=1)
    table = performance_over_time(stream, "accuracy", 200, as_of=stream["timestamp"].max(),
                                  calibrator=fit_confidence_calibrator(reference["score"], reference["label"]))
    ax = plot_performance(table)
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["labels not all known yet", "realised accuracy (known labels)",
                      "estimated accuracy (scores only, no labels)"]
    assert ax.get_title() and ax.get_xlabel() == "window" and ax.get_ylabel() == "accuracy"
    plt.close(ax.figure)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"metric": "accurcy"}, ParameterError, "Unknown metric 'accurcy'"),
        ({"window": 0}, ParameterError, "at least 1 row"),
        ({"window": -5}, ParameterError, "at least 1 row"),
        ({"window": "-1h"}, ParameterError, "positive span"),
        ({"label_delay": "-1h"}, ParameterError, "label_delay"),
        ({"min_labels": 0}, ParameterError, "min_labels"),
        ({"as_of": "soon"}, ParameterError, "as_of"),
    ],
)
def test_bad_parameters_say_what_to_fix(late_labels, kwargs, error, words):
    arguments = {"metric": "accuracy", "window": 2} | kwargs
    with pytest.raises(error, match=words):
        performance_over_time(late_labels, arguments.pop("metric"), arguments.pop("window"), **arguments)


def test_missing_columns_are_named(late_labels):
    with pytest.raises(DataError, match=r"lacks the column\(s\) \['label'\]"):
        performance_over_time(late_labels.drop(columns="label"), "accuracy", 2)
    with pytest.raises(DataError, match=r"\['score'\]"):
        performance_over_time(late_labels.drop(columns="score"), "roc_auc", 2)
    calibrator = fit_confidence_calibrator([0.1, 0.9], [0, 1])
    with pytest.raises(DataError, match=r"\['score'\]"):
        performance_over_time(late_labels.drop(columns="score"), "accuracy", 2, calibrator=calibrator)


def test_empty_frame_is_a_clear_error(late_labels):
    with pytest.raises(DataError, match="no rows"):
        performance_over_time(late_labels.iloc[:0], "accuracy", 2)


def test_calibrator_rejects_bad_reference():
    with pytest.raises(DataError, match="one label per score"):
        fit_confidence_calibrator([0.1, 0.9], [0, 1, 1])
    with pytest.raises(DataError, match="labels 0/1"):
        fit_confidence_calibrator([0.1, 0.9], ["no", "yes"])
    with pytest.raises(DataError, match="one outcome only"):
        fit_confidence_calibrator([0.1, 0.9], [1, 1])
    with pytest.raises(DataError, match="missing values"):
        fit_confidence_calibrator([0.1, np.nan], [0, 1])
    with pytest.raises(ParameterError, match="needs reference_predictions"):
        fit_confidence_calibrator([0.1, 0.9], [0, 1], target="correct")
    with pytest.raises(ParameterError, match="Unknown target"):
        fit_confidence_calibrator([0.1, 0.9], [0, 1], target="auc")


def test_synthetic_stream_is_deterministic_and_checks_its_scenario():
    first, second = synthetic_stream("concept", windows=2, window_size=50, seed=9), \
        synthetic_stream("concept", windows=2, window_size=50, seed=9)
    pd.testing.assert_frame_equal(first[1], second[1])
    with pytest.raises(ParameterError, match="Unknown scenario"):
        synthetic_stream("label-shift")


def test_windows_without_scores_get_nan_estimates():
    """A window whose rows have no score (a regression log, or a server that did not log one) estimates NaN."""
    calibrator = fit_confidence_calibrator([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    assert all(np.isnan(v) for v in calibrator.estimate([]).values())
    frame = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=40, freq="h", tz="UTC"),
                          "prediction": [1] * 40, "label": [1] * 40, "score": [np.nan] * 20 + [0.9] * 20})
    table = performance_over_time(frame, "accuracy", 20, min_labels=5, calibrator=calibrator)
    assert np.isnan(table.loc[0, "estimated"]) and table.loc[1, "estimated"] == pytest.approx(1.0)
