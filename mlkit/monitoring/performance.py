"""Performance over time: the realised metric as labels arrive, and a label-free estimate beside it.

After deployment the true outcome of a prediction is known only later (a fraud is
confirmed weeks after the payment). :func:`performance_over_time` cuts a prediction log
into windows and, for each, computes the metric on the labels **known at** ``as_of``: a
label counts once it has arrived (its ``label_timestamp``, or ``timestamp + label_delay``
when a delay is simulated). Windows with fewer than ``min_labels`` known labels get NaN,
not a number computed from three rows.

While labels are missing, a classifier's own confidence still says something. In the
style of CBPE (confidence-based performance estimation), :func:`fit_confidence_calibrator`
fits an :class:`~sklearn.isotonic.IsotonicRegression` on reference data, mapping a score
to the probability that the label is positive (or that the prediction is correct); a
window's expected accuracy is then the mean of those probabilities over its scores, no
labels needed. The estimate assumes P(y | score) stays as it was on the reference: it
follows a **covariate shift** (the inputs move, the relation holds) but is blind to
**concept drift** (the relation itself changes while the scores look the same).
:func:`synthetic_stream` builds both cases, and the tests show the estimate tracking the
first and failing the second.

Examples
--------
>>> reference, stream = synthetic_stream("covariate", windows=4, window_size=400, drift_at=2, seed=0)
>>> calibrator = fit_confidence_calibrator(reference["score"], reference["label"])
>>> now = stream["timestamp"].max()  # labels arrive 2 hours late: the last 120 are not known yet
>>> table = performance_over_time(stream, "accuracy", 400, as_of=now, calibrator=calibrator)
>>> table[["window", "rows", "labelled", "realised", "estimated"]].round(2)
   window  rows  labelled  realised  estimated
0       0   400       400      0.82       0.83
1       1   400       400      0.84       0.85
2       2   400       400      0.66       0.65
3       3   400       280      0.63       0.65
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from mlkit import evaluation
from mlkit.errors import DataError, ParameterError
from mlkit.monitoring import store

__all__ = [
    "ESTIMABLE",
    "ConfidenceCalibrator",
    "fit_confidence_calibrator",
    "performance_over_time",
    "plot_performance",
    "synthetic_stream",
]

ESTIMABLE = {"positive": ("accuracy", "positive_rate", "precision", "recall"), "correct": ("accuracy",)}
"""What a calibrator estimates without labels, by its target."""

_COLUMNS = ["window", "start", "end", "rows", "labelled", "pending", "metric", "realised"]


# =========================================================================== the calibrator


@dataclass
class ConfidenceCalibrator:
    """Scores mapped to probabilities by isotonic regression, fitted on reference data.

    Built by :func:`fit_confidence_calibrator`. With ``target="positive"`` the scores are a
    binary classifier's positive-class scores and ``isotonic_`` maps a score to
    P(label = 1); with ``target="correct"`` they are any confidence (say the top class's
    probability) and ``isotonic_`` maps a score to P(prediction is correct).

    Attributes
    ----------
    target : {"positive", "correct"}
        What the isotonic regression predicts.
    threshold : float
        Scores at or above it are predicted positive (``target="positive"`` only).
    isotonic_ : sklearn.isotonic.IsotonicRegression
        The fitted regression.
    """

    target: str
    threshold: float
    isotonic_: IsotonicRegression

    def probabilities(self, scores: Any) -> np.ndarray:
        """The calibrated probability of each score (positive label, or correct prediction)."""
        return self.isotonic_.predict(_scores(scores, "scores"))

    def estimate(self, scores: Any) -> dict[str, float]:
        """Expected metrics of a batch of predictions, from their scores alone.

        With ``p`` the calibrated probability of a positive label and ``ŷ = score ≥ threshold``:
        expected accuracy is ``mean(p where ŷ = 1, 1 - p where ŷ = 0)``, expected positive
        rate ``mean(p)``, expected precision ``sum(p where ŷ = 1) / count(ŷ = 1)``, expected
        recall ``sum(p where ŷ = 1) / sum(p)``. With ``target="correct"``, expected accuracy
        is ``mean(p)``.

        Parameters
        ----------
        scores : array-like
            One score per prediction, no NaN.

        Returns
        -------
        dict
            ``{name: value}`` for the names in ``ESTIMABLE[target]`` (NaN for an empty batch,
            or a precision with no predicted positive).

        Examples
        --------
        >>> calibrator = fit_confidence_calibrator([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
        >>> calibrator.estimate([0.1, 0.9])
        {'accuracy': 1.0, 'positive_rate': 0.5, 'precision': 1.0, 'recall': 1.0}
        """
        values = _scores(scores, "scores")
        p = self.probabilities(values) if values.size else np.empty(0)
        if self.target == "correct":
            return {"accuracy": float(p.mean()) if p.size else float("nan")}
        if p.size == 0:
            return dict.fromkeys(ESTIMABLE["positive"], float("nan"))
        flagged = values >= self.threshold
        hits = float(p[flagged].sum())
        return {
            "accuracy": float(np.where(flagged, p, 1.0 - p).mean()),
            "positive_rate": float(p.mean()),
            "precision": hits / float(flagged.sum()) if flagged.any() else float("nan"),
            "recall": hits / float(p.sum()) if p.sum() > 0 else float("nan"),
        }


def fit_confidence_calibrator(
    reference_scores: Any,
    reference_labels: Any,
    *,
    reference_predictions: Any = None,
    target: str = "positive",
    threshold: float = 0.5,
) -> ConfidenceCalibrator:
    """Fit the score → probability map on reference data (labels known), for label-free estimates.

    Parameters
    ----------
    reference_scores : array-like
        The model's scores on reference rows (held-out data, or production rows whose labels
        are all known): positive-class scores for ``target="positive"``.
    reference_labels : array-like
        The true labels of those rows: 0/1 (or booleans) for ``target="positive"``.
    reference_predictions : array-like, optional
        The model's predictions on those rows; needed for ``target="correct"``.
    target : {"positive", "correct"}, default "positive"
        Regress the label on the score (binary classifiers), or whether the prediction was
        correct on the score (any classifier; estimates accuracy only).
    threshold : float, default 0.5
        The score at or above which the model predicts positive (``target="positive"``).

    Returns
    -------
    ConfidenceCalibrator
        With ``.estimate(scores)``.

    Raises
    ------
    ParameterError
        For an unknown target, or ``target="correct"`` without predictions.
    DataError
        For lengths that differ, missing values, labels that are not 0/1, or one class only.

    Examples
    --------
    >>> calibrator = fit_confidence_calibrator([0.2, 0.4, 0.6, 0.8], [0, 1, 0, 1])
    >>> calibrator.probabilities([0.2, 0.5, 0.8]).round(2).tolist()
    [0.0, 0.5, 1.0]
    >>> fit_confidence_calibrator([0.9, 0.6, 0.7], ["a", "b", "a"], reference_predictions=["a", "a", "a"],
    ...                           target="correct").estimate([0.9, 0.7])
    {'accuracy': 1.0}
    """
    if target not in ESTIMABLE:
        raise ParameterError(f"Unknown target {target!r}; use 'positive' (the labels are 0/1 and the scores are "
                             f"positive-class scores) or 'correct' (with reference_predictions).")
    scores = _scores(reference_scores, "reference_scores")
    labels = np.asarray(reference_labels)
    if labels.ndim != 1 or len(labels) != len(scores):
        raise DataError(f"reference_labels has {labels.size} values for {len(scores)} scores; pass one label per "
                        f"score, for the same rows.")
    if pd.isna(labels).any():
        raise DataError("reference_labels has missing values; fit on rows whose labels are known only.")
    if target == "positive":
        if reference_predictions is not None:
            raise ParameterError("reference_predictions is used with target='correct' only; with target='positive' "
                                 "the predictions are the scores at or above threshold.")
        if not set(pd.unique(labels)).issubset({0, 1, True, False}):
            raise DataError("target='positive' needs labels 0/1 (or booleans); for other labels pass "
                            "reference_predictions and target='correct'.")
        outcome = labels.astype(float)
    else:
        if reference_predictions is None:
            raise ParameterError("target='correct' needs reference_predictions (the model's predictions on the "
                                 "reference rows), to know which were correct.")
        predictions = np.asarray(reference_predictions)
        if predictions.shape != labels.shape:
            raise DataError(f"reference_predictions has {predictions.size} values for {labels.size} labels; pass one "
                            f"prediction per label.")
        outcome = (predictions == labels).astype(float)
    if np.unique(outcome).size < 2:
        raise DataError("The reference has one outcome only (every label the same, or every prediction right); "
                        "a calibrator needs both: use more reference rows.")
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    isotonic.fit(scores, outcome)
    return ConfidenceCalibrator(target=target, threshold=float(threshold), isotonic_=isotonic)


def _scores(values: Any, name: str) -> np.ndarray:
    """A 1-D float array with no NaN, or a DataError."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be numbers (a classifier's scores).") from None
    if array.ndim != 1:
        raise DataError(f"{name} must be one-dimensional; for predict_proba output pass proba[:, 1].")
    if np.isnan(array).any():
        raise DataError(f"{name} has {int(np.isnan(array).sum())} missing values; drop those rows first.")
    return array


# =========================================================================== performance per window


def performance_over_time(
    frame: pd.DataFrame,
    metric: str,
    window: int | str | pd.Timedelta,
    *,
    label_delay: str | pd.Timedelta | None = None,
    as_of: Any = None,
    min_labels: int = 30,
    calibrator: ConfidenceCalibrator | None = None,
) -> pd.DataFrame:
    """The metric per window, computed from the labels known at ``as_of``, beside a label-free estimate.

    When is a label known? With ``label_delay=None``, when its ``label_timestamp`` is at or
    before ``as_of`` (a label without a ``label_timestamp``, or a frame without that column,
    counts as known). With ``label_delay`` given, every label is taken to arrive that long
    after its prediction (``timestamp + label_delay``) and ``label_timestamp`` is ignored:
    the way to replay a stream whose labels are all in the frame.

    Parameters
    ----------
    frame : pandas.DataFrame
        A prediction log (:func:`mlkit.monitoring.store.read_log`) or any frame with
        ``timestamp``, ``label`` and ``prediction`` (or ``score``, for score metrics);
        ``label_timestamp`` optional. Unlabelled rows have a missing label.
    metric : str
        A name in :data:`mlkit.evaluation.METRICS` (``"accuracy"``, ``"recall"``, ``"mae"``, ...).
    window : int, str or Timedelta
        Rows per window (``500``) or a span of time (``"1h"``), as :func:`~mlkit.monitoring.store.windows`.
    label_delay : str or Timedelta, optional
        Simulate labels arriving this long after their predictions (``"2h"``).
    as_of : datetime or str, optional
        When the report is made (UTC when naive). Default: the latest time the frame
        records (its last prediction or, without ``label_delay``, its last label).
    min_labels : int, default 30
        Fewest known labels a window needs for a realised metric; fewer give NaN.
    calibrator : ConfidenceCalibrator, optional
        From :func:`fit_confidence_calibrator`: adds the label-free estimates, from every
        row's ``score`` (labelled or not).

    Returns
    -------
    pandas.DataFrame
        One row per window: ``window``, ``start``, ``end`` (bounds of a time window; first
        and last prediction of a row-count window), ``rows``, ``labelled`` (labels known at
        ``as_of``), ``pending`` (not yet), ``metric``, ``realised``; with a calibrator,
        ``estimated`` (the same metric, NaN when the calibrator cannot estimate it) and one
        ``estimated_<name>`` column per quantity in ``ESTIMABLE[calibrator.target]``.
        ``attrs`` holds ``metric``, ``as_of`` and ``greater_is_better``.

    Raises
    ------
    ParameterError
        For an unknown metric, a bad window size, a negative delay or ``min_labels`` < 1.
    DataError
        For an empty frame or missing columns.

    Examples
    --------
    Four predictions; the first two labels are known at 10:30, the third arrives later:

    >>> frame = pd.DataFrame({
    ...     "timestamp": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 09:10", "2024-01-01 09:20",
    ...                                  "2024-01-01 09:30"]),
    ...     "prediction": [1, 0, 1, 1],
    ...     "label": [1, 1, 1, None],
    ...     "label_timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:00", "2024-01-01 11:00", None]),
    ... })
    >>> performance_over_time(frame, "accuracy", 2, as_of="2024-01-01 10:30", min_labels=1)[
    ...     ["window", "rows", "labelled", "pending", "realised"]]
       window  rows  labelled  pending  realised
    0       0     2         2        0       0.5
    1       1     2         0        2       NaN
    """
    spec = evaluation.metric(metric)
    if isinstance(min_labels, bool) or not isinstance(min_labels, (int, np.integer)) or min_labels < 1:
        raise ParameterError(f"min_labels must be a whole number of at least 1, not {min_labels!r}.")
    value_column = "score" if spec.needs == "scores" else "prediction"
    needed = ["timestamp", "label", value_column] + (["score"] if calibrator is not None else [])
    missing = [name for name in dict.fromkeys(needed) if name not in frame.columns]
    if missing:
        raise DataError(f"The frame lacks the column(s) {missing}; performance_over_time needs {sorted(set(needed))} "
                        f"(as mlkit.monitoring.store.read_log returns them).")
    if frame.empty:
        raise DataError("The frame has no rows; read a log with predictions in it (or widen since/until).")
    frame = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True))
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    ids = store.windows(frame, window)

    arrival = _arrival(frame, label_delay)
    recorded = [frame["timestamp"].max()] + ([arrival.max()] if label_delay is None else [])
    moment = _utc(as_of, "as_of") if as_of is not None else max(t for t in recorded if pd.notna(t))
    known = frame["label"].notna() & (arrival.isna() | (arrival <= moment))

    rows = []
    span = None if isinstance(window, (int, np.integer)) else pd.Timedelta(window)
    origin = frame["timestamp"].min().floor(span) if span is not None and len(frame) else None
    for window_id, part in frame.groupby(ids, sort=True):
        labelled = known.loc[part.index]
        if span is not None:
            start = origin + int(window_id) * span
            end = start + span
        else:
            start, end = part["timestamp"].iloc[0], part["timestamp"].iloc[-1]
        record = {"window": int(window_id), "start": start, "end": end, "rows": len(part),
                  "labelled": int(labelled.sum()), "pending": int((~labelled).sum()), "metric": metric,
                  "realised": _realised(spec, part.loc[labelled, "label"], part.loc[labelled, value_column],
                                        min_labels)}
        if calibrator is not None:
            scores = part["score"].dropna()
            estimates = calibrator.estimate(scores.to_numpy(dtype=float))
            record["estimated"] = estimates.get(metric, float("nan"))
            record.update({f"estimated_{name}": value for name, value in estimates.items()})
        rows.append(record)
    columns = _COLUMNS + ([] if calibrator is None else ["estimated"] +
                          [f"estimated_{name}" for name in ESTIMABLE[calibrator.target]])
    table = pd.DataFrame(rows, columns=columns)
    table.attrs.update(metric=metric, as_of=moment, greater_is_better=spec.greater_is_better)
    return table


def _utc(value: Any, name: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} {value!r} is not a time; use e.g. '2024-01-31 12:00'.") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _arrival(frame: pd.DataFrame, label_delay: Any) -> pd.Series:
    """When each row's label arrives (NaT: not recorded, so taken as known)."""
    if label_delay is not None:
        try:
            delay = pd.Timedelta(label_delay)
        except (TypeError, ValueError):
            raise ParameterError(f"label_delay {label_delay!r} is not a span of time; use e.g. '2h' or '3D'.") from None
        if pd.isna(delay) or delay < pd.Timedelta(0):
            raise ParameterError(f"label_delay must be zero or a positive span of time, not {label_delay!r}.")
        return frame["timestamp"] + delay
    if "label_timestamp" not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    return pd.to_datetime(frame["label_timestamp"], utc=True)


def _realised(spec: evaluation.Metric, labels: pd.Series, values: pd.Series, min_labels: int) -> float:
    """The metric on the known labels, or NaN when there are too few or it is undefined."""
    if len(labels) < min_labels:
        return float("nan")
    y_true, y = labels.infer_objects().to_numpy(), values.infer_objects().to_numpy()
    if spec.needs == "scores" and np.unique(y_true).size < 2:
        return float("nan")  # a ranking metric needs both classes
    return spec(y_true, y)


# =========================================================================== plotting


def plot_performance(table: pd.DataFrame, ax: Any = None) -> Any:
    """Realised metric against its label-free estimate, per window; shaded where labels are still pending.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`performance_over_time`.
    ax : matplotlib Axes, optional
        Where to draw; a new figure otherwise.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> reference, stream = synthetic_stream("concept", windows=4, window_size=200, seed=1)
    >>> table = performance_over_time(stream, "accuracy", 200,
    ...                               calibrator=fit_confidence_calibrator(reference["score"], reference["label"]))
    >>> ax = plot_performance(table)
    >>> ax.get_title(), ax.get_xlabel(), ax.get_ylabel()
    ('accuracy per window: realised vs estimated', 'window', 'accuracy')
    >>> plt.close(ax.figure)
    """
    import matplotlib.pyplot as plt

    missing = [name for name in ("window", "realised", "pending") if name not in table.columns]
    if missing:
        raise DataError(f"The table lacks the column(s) {missing}; pass the output of performance_over_time.")
    name = table.attrs.get("metric") or (str(table["metric"].iloc[0]) if "metric" in table and len(table) else "metric")
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    x = table["window"].to_numpy()
    shaded = False
    for position, pending in zip(x, table["pending"]):
        if pending > 0:
            ax.axvspan(position - 0.5, position + 0.5, color="grey", alpha=0.15,
                       label=None if shaded else "labels not all known yet")
            shaded = True
    ax.plot(x, table["realised"], marker="o", color="tab:blue", label=f"realised {name} (known labels)")
    if "estimated" in table.columns and table["estimated"].notna().any():
        ax.plot(x, table["estimated"], marker="s", linestyle="--", color="tab:orange",
                label=f"estimated {name} (scores only, no labels)")
    ax.set_xlabel("window")
    ax.set_ylabel(name)
    ax.set_title(f"{name} per window: realised vs estimated")
    ax.legend(loc="best")
    return ax


# =========================================================================== a synthetic stream


def synthetic_stream(
    scenario: str = "covariate",
    *,
    n_reference: int = 4000,
    windows: int = 10,
    window_size: int = 500,
    drift_at: int = 5,
    label_delay: str = "2h",
    steepness: float = 3.0,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A reference sample and a production stream from a known model, with a known kind of drift.

    One feature ``x``; the true relation is ``P(y = 1 | x) = sigmoid(steepness · x)`` and the
    model's score is exactly that (so it is calibrated on the reference); it predicts 1 when
    ``score ≥ 0.5``. From window ``drift_at`` on:

    - ``"covariate"``: ``x`` shrinks towards 0 (standard deviation 1 → 0.3). The relation
      holds, the scores crowd around 0.5, accuracy falls, and the **estimate follows it**.
    - ``"concept"``: ``x`` and therefore the scores keep their distribution, but the
      relation moves: ``P(y = 1 | x) = sigmoid(steepness · (x - 1))``. Accuracy falls and the
      **estimate stays flat**: it only sees the scores.
    - ``"none"``: nothing changes.

    Parameters
    ----------
    scenario : {"covariate", "concept", "none"}
        Which drift.
    n_reference : int, default 4000
        Reference rows (labels all known).
    windows, window_size : int
        The stream: ``windows × window_size`` predictions, one a minute from 2024-01-01.
    drift_at : int, default 5
        The first drifted window.
    label_delay : str, default "2h"
        Each label's ``label_timestamp`` is its prediction's time plus this.
    steepness : float, default 3.0
        How sharply the true probability rises with ``x``.
    seed : int, default 0
        Seed of every draw.

    Returns
    -------
    (reference, stream) : tuple of pandas.DataFrame
        Columns ``timestamp``, ``x``, ``score``, ``prediction``, ``label``,
        ``label_timestamp`` (the stream's labels are all present; ``as_of`` or
        ``label_delay`` in :func:`performance_over_time` decide which are known).

    Examples
    --------
    >>> reference, stream = synthetic_stream("concept", windows=2, window_size=3, seed=0)
    >>> list(stream.columns), len(reference), len(stream)
    (['timestamp', 'x', 'score', 'prediction', 'label', 'label_timestamp'], 4000, 6)
    """
    if scenario not in ("covariate", "concept", "none"):
        raise ParameterError(f"Unknown scenario {scenario!r}; use 'covariate', 'concept' or 'none'.")
    for name, value in (("n_reference", n_reference), ("windows", windows), ("window_size", window_size)):
        if value < 1:
            raise ParameterError(f"{name} must be at least 1, not {value}.")
    rng = np.random.default_rng(seed)
    total = windows * window_size
    drifted = np.arange(total) >= drift_at * window_size
    spread = np.where(drifted & (scenario == "covariate"), 0.3, 1.0)
    shift = np.where(drifted & (scenario == "concept"), 1.0, 0.0)

    def rows(x: np.ndarray, shift: np.ndarray, start: pd.Timestamp) -> pd.DataFrame:
        score = 1.0 / (1.0 + np.exp(-steepness * x))
        truth = 1.0 / (1.0 + np.exp(-steepness * (x - shift)))
        stamps = start + pd.to_timedelta(np.arange(len(x)), unit="min")
        return pd.DataFrame({"timestamp": stamps, "x": x, "score": score, "prediction": (score >= 0.5).astype(int),
                             "label": (rng.random(len(x)) < truth).astype(int),
                             "label_timestamp": stamps + pd.Timedelta(label_delay)})

    reference = rows(rng.normal(0.0, 1.0, n_reference), np.zeros(n_reference),
                     pd.Timestamp("2023-12-01", tz="UTC"))
    stream = rows(rng.normal(0.0, 1.0, total) * spread, shift, pd.Timestamp("2024-01-01", tz="UTC"))
    return reference, stream
