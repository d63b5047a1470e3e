"""A monitoring report from the prediction log: drift per window, performance over time, alerts.

:func:`monitor` reads one model's predictions (:func:`mlkit.monitoring.store.read_log`), cuts
them into windows (500 rows, or ``"1h"`` of time) and, in a list of named steps:

1. **reference**: what "normal" is. An explicit reference (the training table, the model's
   fingerprint, or a path to either) or, when none is given, the log's **first window**:
   then drift means "moved since the model went live", not "moved away from the training
   data", and the result and the report say so.
2. **drift**: each later window compared with the reference, column by column
   (:func:`mlkit.monitoring.drift.drift_report`), with thresholds calibrated to the window's
   size (:func:`~mlkit.monitoring.drift.calibrate_thresholds`, 1 % false alarms per column)
   unless ``calibrate=False``. Windows with fewer than
   :data:`~mlkit.monitoring.drift.MIN_ROWS` rows are reported as skipped.
3. **performance**: the metric per window from the labels known so far
   (:func:`~mlkit.monitoring.performance.performance_over_time`) and, for a classifier that
   logs scores, a label-free estimate beside it: a confidence calibrator is fitted on the
   labelled rows of the **baseline** (the first ``reference_windows`` windows of the log),
   so the estimate says what accuracy the scores promise if the relation between inputs
   and outcomes still holds.
4. **alerts**: rules (:class:`~mlkit.monitoring.alerts.Rule`) over the per-window table;
   by default dataset drift (at least half the features drifted) for 2 windows in a row,
   and the metric ``margin`` (10 %) worse than on the baseline (see :func:`default_rules`).

The result holds plain tables; :meth:`MonitorResult.to_html` writes the self-contained
report and :func:`plot_drift_heatmap` draws the drift table.

Examples
--------
>>> from mlkit.monitoring.performance import synthetic_stream
>>> _, stream = synthetic_stream("covariate", windows=4, window_size=400, drift_at=2, seed=0)
>>> result = monitor(stream, window=400)
>>> result.reference
'the first window of the log (window 0, 400 rows)'
>>> result.windows[["window", "status", "drift_share", "realised", "estimated"]].round(2)
   window     status  drift_share  realised  estimated
0       0  reference          NaN      0.82       0.83
1       1    checked          0.0      0.84       0.85
2       2    checked          1.0      0.66       0.64
3       3    checked          1.0      0.65       0.64
>>> result.alerts[["rule", "window", "value"]].round(2)  # the first drifted window, and the second in a row
                         rule  window  value
0            performance-drop       2   0.66
1  estimated-performance-drop       2   0.64
2               dataset-drift       3   1.00
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from mlkit import evaluation
from mlkit.errors import DataError, ParameterError
from mlkit.monitoring import alerts as alerts_module
from mlkit.monitoring import drift as drift_module
from mlkit.monitoring import performance as perf_module
from mlkit.monitoring import store
from mlkit.monitoring.alerts import Rule

__all__ = ["MonitorResult", "monitor", "default_rules", "plot_drift_heatmap", "format_summary"]

_PREDICTION = "(prediction)"  # internal names of the model's outputs in the compared frames:
_SCORE = "(score)"  # they cannot clash with a feature called "prediction" or "score"
_DRIFT_COLUMNS = ["window", "status", "column", "role", "statistic", "value", "p_value", "threshold",
                  "threshold_on", "ratio", "drifted"]  # fmt: skip
_CLASS_LEVELS = 20  # integer predictions with at most this many distinct values look like classes


# =========================================================================== the result


@dataclass(frozen=True)
class MonitorResult:
    """What :func:`monitor` found.

    Attributes
    ----------
    model : str or None
        The monitored model (None for a DataFrame without a ``model`` column).
    window : int or str
        Rows per window, or a span of time.
    reference : str
        What the windows were compared with, in words.
    reference_is_log : bool
        True when no reference was given and the log's first window(s) served as one: drift
        then means change since the start of the log, not distance from the training data.
    metric : str
        The performance metric (a key of :data:`mlkit.evaluation.METRICS`).
    greater_is_better : bool
    baseline : float
        The metric on the baseline windows (NaN without enough labels there).
    windows : pandas.DataFrame
        One row per window: ``window``, ``start``, ``end``, ``rows``, ``status``
        ("reference", "checked" or "skipped": too few rows for drift), ``drift_share``
        (share of features drifted), ``dataset_drift`` and ``prediction_drift`` (1.0
        drifted, 0.0 not, NaN not checked), ``drifted_columns`` (comma-separated),
        ``labelled``, ``pending``, ``realised``, ``estimated`` (NaN without an estimate) and
        ``alerts`` (the rules that fired there). Alert rules watch its columns.
    drift : pandas.DataFrame
        One row per window and compared column (features, then the prediction): ``window``,
        ``status``, ``column``, ``role``, ``statistic``, ``value``, ``p_value``, ``threshold``,
        ``threshold_on``, ``ratio`` (value / threshold, or threshold / p-value for tests: above
        1 means drifted; NaN when not compared) and ``drifted``.
    performance : pandas.DataFrame
        :func:`~mlkit.monitoring.performance.performance_over_time`'s table.
    alerts : pandas.DataFrame
        :func:`~mlkit.monitoring.alerts.alerts_frame` of the alerts that fired.
    rules : tuple of Rule
        The rules evaluated.
    notes : tuple of str
        What a reader must know: the reference, skipped windows, missing labels or scores.
    """

    model: str | None
    window: int | str
    reference: str
    reference_is_log: bool
    metric: str
    greater_is_better: bool
    baseline: float
    windows: pd.DataFrame
    drift: pd.DataFrame
    performance: pd.DataFrame
    alerts: pd.DataFrame
    rules: tuple[Rule, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def has_labels(self) -> bool:
        """Whether any label is known (a realised metric still needs ``min_labels`` in a window)."""
        return bool(self.windows["labelled"].sum() > 0)

    @property
    def has_estimate(self) -> bool:
        """Whether any window has a label-free estimate."""
        return bool(self.windows["estimated"].notna().any())

    @property
    def verdict(self) -> str:
        """One line: how many alerts fired, and the first of each rule."""
        checked = int((self.windows["status"] == "checked").sum())
        total = int(self.windows["rows"].sum())
        if self.alerts.empty:
            return f"No alert: {checked} window(s) checked, {total:,} predictions."
        firsts = self.alerts.drop_duplicates("rule")
        parts = [f"{rule} from window {window}" for rule, window in zip(firsts["rule"], firsts["window"])]
        return f"{len(self.alerts)} alert(s) in {checked} checked window(s): {'; '.join(parts)}."

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (NaN becomes None, times ISO 8601 text), e.g. for ``mlkit monitor --json``."""
        return {
            "model": self.model,
            "window": self.window,
            "reference": self.reference,
            "reference_is_log": self.reference_is_log,
            "metric": self.metric,
            "greater_is_better": self.greater_is_better,
            "baseline": drift_module.json_value(self.baseline),
            "verdict": self.verdict,
            "alerted": not self.alerts.empty,
            "notes": list(self.notes),
            "rules": [{k: drift_module.json_value(v) for k, v in vars(rule).items()} for rule in self.rules],
            "alerts": drift_module.json_records(self.alerts),
            "windows": drift_module.json_records(self.windows),
            "drift": drift_module.json_records(self.drift[self.drift["status"] == "checked"]),
        }

    def report(self) -> Any:
        """The HTML report as a :class:`mlkit.monitoring.html.Report` (see :meth:`to_html`)."""
        return _report(self)

    def to_html(self, path: str | os.PathLike[str]) -> Path:
        """Write the self-contained HTML report (PNG figures inside, no JavaScript) and return its path."""
        self.report().write(path)
        return Path(path)


# =========================================================================== rules


def default_rules(
    *,
    metric: str = "accuracy",
    baseline: float = float("nan"),
    margin: float = 0.1,
    consecutive: int = 2,
    cooldown: int = 5,
    estimated: bool = False,
) -> list[Rule]:
    """The rules :func:`monitor` uses when given none.

    - ``dataset-drift``: ``dataset_drift`` (1 when at least ``drift_share`` of the features
      drifted, see :func:`monitor`) for ``consecutive`` windows in a row (one drifted window
      may be chance; two are a pattern);
    - ``performance-drop``: the realised metric ``margin`` (relative) worse than
      ``baseline``: below ``baseline - margin·|baseline|`` for a metric where greater is
      better, above ``baseline + margin·|baseline|`` for an error (mae, rmse, wape);
    - ``estimated-performance-drop`` (with ``estimated=True``): the same limit on the
      label-free estimate, which can fire before the labels arrive.

    The performance rules are left out when ``baseline`` is NaN (no labels to set it).

    Parameters
    ----------
    metric : str, default "accuracy"
        A key of :data:`mlkit.evaluation.METRICS`; says which direction is worse.
    baseline : float
        The metric on the baseline windows.
    margin : float, default 0.1
        How much worse, as a share of the baseline, before an alert.
    consecutive : int, default 2
        Drifted windows in a row before the drift alert.
    cooldown : int, default 5
        Windows after an alert during which the same rule stays quiet (then it reminds).
    estimated : bool, default False
        Also watch the ``estimated`` column.

    Returns
    -------
    list of Rule

    Examples
    --------
    >>> [(r.name, r.metric, round(r.threshold, 3), r.direction) for r in default_rules(baseline=0.8)]
    [('dataset-drift', 'dataset_drift', 0.5, 'above'), ('performance-drop', 'realised', 0.72, 'below')]
    >>> default_rules(metric="mae", baseline=10.0)[1].direction
    'above'
    """
    spec = evaluation.metric(metric)
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin < 1:
        raise ParameterError(f"margin must be a share between 0 and 1 (0.1: 10 % worse), not {margin!r}.")
    rules = [Rule("dataset-drift", "dataset_drift", 0.5, "above", consecutive=consecutive, cooldown=cooldown)]
    if baseline is None or not math.isfinite(baseline):
        return rules
    if spec.greater_is_better:
        limit, direction = baseline - margin * abs(baseline), "below"
    else:
        limit, direction = baseline + margin * abs(baseline), "above"
    rules.append(Rule("performance-drop", "realised", float(limit), direction, cooldown=cooldown))
    if estimated:
        rules.append(Rule("estimated-performance-drop", "estimated", float(limit), direction, cooldown=cooldown))
    return rules


# =========================================================================== monitor


def monitor(
    log: pd.DataFrame | str | os.PathLike[str] | None = None,
    *,
    model: str | None = None,
    window: int | str = 500,
    reference: pd.DataFrame | dict | str | os.PathLike[str] | None = None,
    reference_windows: int = 1,
    metric: str | None = None,
    columns: Sequence[str] | None = None,
    rules: Sequence[Rule] | None = None,
    margin: float = 0.1,
    drift_share: float = 0.5,
    consecutive: int = 2,
    cooldown: int = 5,
    calibrate: bool = True,
    false_alarm_rate: float = 0.01,
    thresholds: float | dict[str, float] | None = None,
    as_of: Any = None,
    label_delay: Any = None,
    min_labels: int = 30,
    seed: int = 0,
) -> MonitorResult:
    """Monitor one model from its prediction log: drift per window, performance, alerts.

    Parameters
    ----------
    log : DataFrame, str, path-like or None
        The log's URL or SQLite file (None: ``$MLKIT_LOG_DB``, else ``.mlkit/predictions.db``,
        see :func:`~mlkit.monitoring.store.resolve_url`), or a frame shaped like
        :func:`~mlkit.monitoring.store.read_log`'s (features: ``attrs["features"]``, else
        every column that is not a log column).
    model : str, optional
        The model to monitor; may be left out when the log holds one model only.
    window : int or str, default 500
        Rows per window, or a span of time (``"1h"``, ``"1D"``).
    reference : DataFrame, dict, str or path-like, optional
        The training rows, the model's fingerprint (:func:`mlkit.fingerprint.load`), or a
        path to a CSV/Parquet table, a fingerprint JSON or a packaged model folder. It
        must have every feature the log has (extra columns are ignored); a ``prediction``
        column (table) or the fingerprint's scores add prediction drift. Default: the
        first ``reference_windows`` windows of the log.
    reference_windows : int, default 1
        The baseline: the first windows of the log, whose labelled rows set the metric's
        baseline and fit the confidence calibrator (and, without ``reference``, are the
        drift reference; they are then not checked for drift).
    metric : str, optional
        A key of :data:`mlkit.evaluation.METRICS`. Default ``"accuracy"`` when the
        predictions look like classes (scores logged, text, or few whole numbers),
        else ``"mae"``.
    columns : list of str, optional
        The features to compare (default: every feature in the log).
    rules : list of Rule, optional
        Replace :func:`default_rules`; they watch the columns of
        :attr:`MonitorResult.windows`.
    drift_share : float, default 0.5
        A window's ``dataset_drift`` is 1 when at least this share of the features drifted.
    margin, consecutive, cooldown
        Options of :func:`default_rules` (ignored with ``rules``).
    calibrate : bool, default True
        Drift thresholds calibrated by bootstrap to each window's size, so that an
        unchanged window crosses one with chance ``false_alarm_rate``; False uses the fixed
        ``thresholds`` (:data:`~mlkit.monitoring.drift.DEFAULT_THRESHOLDS` by default).
    false_alarm_rate : float, default 0.01
        Per column and window, with ``calibrate``.
    thresholds : float or dict, optional
        Fixed thresholds (``calibrate=False`` only), as :func:`~mlkit.monitoring.drift.drift_report`.
    as_of, label_delay, min_labels
        As :func:`~mlkit.monitoring.performance.performance_over_time`: when the report is
        made, a simulated label delay, and the fewest known labels for a realised metric.
    seed : int, default 0
        Seed of the threshold bootstrap.

    Returns
    -------
    MonitorResult

    Raises
    ------
    ParameterError
        An unknown model (the message lists the models in the log), a window too large for
        the data, an unknown metric, or contradictory options.
    DataError
        An empty log, a reference without the log's features, a baseline window too short
        to be a reference.

    Notes
    -----
    Performance uses only the labels known at ``as_of``; a log without any label gives a
    performance table of NaN and a note, not an error. The label-free estimate assumes the
    relation between scores and outcomes is the baseline's: it follows covariate shift and
    is blind to concept drift (see :mod:`mlkit.monitoring.performance`).
    """
    frame, model = _read(log, model)
    window = _window(window)
    reference_windows = _count(reference_windows, "reference_windows")
    if thresholds is not None and calibrate:
        raise ParameterError("thresholds= are fixed thresholds: pass calibrate=False with them, or leave them out "
                             "to calibrate thresholds to the window size.")
    features = _features(frame, columns)
    ids = store.windows(frame, window)
    _check_window_count(frame, ids, window, reference is None, reference_windows)
    order = sorted(pd.unique(ids))
    baseline_ids = order[:reference_windows]
    baseline_rows = frame[ids.isin(baseline_ids)]
    classes = _looks_like_classes(frame)
    metric = _metric(metric, frame, classes)
    if rules is None:  # check the rule options now, before the work
        default_rules(metric=metric, baseline=1.0, margin=margin, consecutive=consecutive, cooldown=cooldown)
    notes: list[str] = []

    # 1. the reference
    ref, described, is_log = _reference(reference, baseline_rows, features, baseline_ids)
    notes.append(f"Reference: {described}." + (
        " No reference was given, so drift means change since the start of the log, not distance from the "
        "training data; pass the training table or the model's fingerprint to compare with those." if is_log else ""))
    pred_column, pred_note = _prediction_column(ref, frame)
    if pred_note:
        notes.append(pred_note)

    # 2. drift
    drift_table, per_window = _drift(frame, ids, order, ref, features, pred_column, classes,
                                     reference_ids=baseline_ids if is_log else [], calibrate=calibrate,
                                     false_alarm_rate=false_alarm_rate, thresholds=thresholds,
                                     drift_share=drift_share, seed=seed)
    skipped = per_window.loc[per_window["status"] == "skipped", "window"].tolist()
    if skipped:
        notes.append(f"Window(s) {', '.join(map(str, skipped))} had fewer than {drift_module.MIN_ROWS} rows: "
                     f"skipped for drift (use a longer window to check them).")
    notes.append("Drift thresholds are calibrated to each window's size (a "
                 f"{false_alarm_rate:.0%} chance of a false alarm per column and window)." if calibrate else
                 "Drift thresholds are fixed (not calibrated to the window size).")

    # 3. performance
    performance, baseline, calibrator, performance_notes = _performance_step(
        frame, baseline_rows, baseline_ids, metric, window, label_delay, as_of, min_labels)
    notes += performance_notes

    # 4. alerts
    table = _window_table(per_window, performance)
    if rules is None:
        rules = default_rules(metric=metric, baseline=baseline, margin=margin, consecutive=consecutive,
                              cooldown=cooldown, estimated=calibrator is not None)
    rules = tuple([rules] if isinstance(rules, Rule) else rules)
    fired = alerts_module.evaluate(rules, table)
    names: dict[Any, list[str]] = {}
    for alert in fired:
        names.setdefault(alert.window, []).append(alert.rule)
    table["alerts"] = [", ".join(names.get(w, [])) for w in table["window"]]
    return MonitorResult(
        model=model, window=window, reference=described, reference_is_log=is_log, metric=metric,
        greater_is_better=evaluation.metric(metric).greater_is_better, baseline=baseline, windows=table,
        drift=drift_table, performance=performance, alerts=alerts_module.alerts_frame(fired), rules=rules,
        notes=tuple(notes),
    )  # fmt: skip


# --------------------------------------------------------------------------- the steps


def _read(log: Any, model: str | None) -> tuple[pd.DataFrame, str | None]:
    """The model's answered rows in time order (not its shadow rows), or a clear error for an empty log or an unknown model."""
    if isinstance(log, pd.DataFrame):
        frame, where = log, "The frame"
        if model is not None:
            if "model" not in frame.columns:
                raise ParameterError("model= selects rows by the frame's 'model' column, which it lacks; leave "
                                     "model= out.")
            frame = frame[frame["model"] == model]
        if frame.empty:
            raise DataError("The frame has no predictions" + (f" of model {model!r}" if model else "") +
                            "; pass a prediction log with rows (mlkit.monitoring.store.read_log).")
        missing = [c for c in ("timestamp", "prediction", "label") if c not in frame.columns]
        if missing:
            raise DataError(f"The frame lacks the column(s) {missing}; pass a prediction log as "
                            f"mlkit.monitoring.store.read_log returns it.")
    else:
        url = store.resolve_url(log)
        where = f"The prediction log {store._display(url)}"
        frame = store.read_log(url, model=model)
        if frame.empty:
            everything = store.read_log(url)
            if everything.empty:
                raise DataError(f"{where} is empty: serve the model with logging on (mlkit serve --log-db URL) or "
                                f"write predictions with PredictionLogger, then monitor it.")
            present = sorted(everything["model"].dropna().astype(str).unique())
            raise ParameterError(f"{where} has no predictions of model {model!r}; it has: {', '.join(present)}. "
                                 f"Pass one of these with --model (model=).")
    if "served_by" in frame.columns:  # a shadow's predictions (and the champion's beside a canary) reached nobody
        frame = frame[frame["served_by"] != "shadow"]
    if model is None and "model" in frame.columns:
        present = sorted(frame["model"].dropna().astype(str).unique())
        if len(present) > 1:
            raise ParameterError(f"{where} holds several models ({', '.join(present)}): choose one with --model "
                                 f"(model=); their predictions do not belong in one report.")
        model = present[0] if present else None
    attrs = dict(frame.attrs)
    frame = frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True))
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    frame.attrs.update(attrs)
    return frame, model


def _window(window: Any) -> int | str:
    if isinstance(window, str) and window.strip().isdigit():
        window = int(window.strip())
    if isinstance(window, bool) or not isinstance(window, (int, np.integer, str, pd.Timedelta)):
        raise ParameterError(f"window must be a number of rows (500) or a span of time ('1h'), not {window!r}.")
    if isinstance(window, (int, np.integer)):
        if window < 2:
            raise ParameterError(f"window must be at least 2 rows (500 is usual), not {window}.")
        return int(window)
    try:
        span = pd.Timedelta(window)
    except (TypeError, ValueError):
        raise ParameterError(f"window {window!r} is neither a number of rows nor a span of time; use e.g. 500, "
                             "'1h', '15min' or '1D'.") from None
    if pd.isna(span) or span <= pd.Timedelta(0):
        raise ParameterError(f"window must be a positive span of time, not {window!r}.")
    return window if isinstance(window, str) else str(window)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ParameterError(f"{name} must be a whole number of at least 1, not {value!r}.")
    return int(value)


def _features(frame: pd.DataFrame, columns: Sequence[str] | None) -> dict[str, str]:
    """Feature name -> the frame's column."""
    mapping = frame.attrs.get("features")
    if not mapping:
        mapping = {str(c): c for c in frame.columns if c not in store.COLUMNS}
    if columns is not None:
        if isinstance(columns, str):
            raise ParameterError(f"columns= must be a list of feature names, not the string {columns!r}.")
        unknown = [c for c in columns if c not in mapping]
        if unknown:
            raise ParameterError(f"columns= names {unknown}, which the log has no feature of; its features are "
                                 f"{sorted(mapping)}.")
        mapping = {c: mapping[c] for c in columns}
    if not mapping:
        raise DataError("The log's predictions have no features to compare: log each request's input row "
                        "(PredictionLogger records need 'features').")
    return dict(mapping)


def _check_window_count(frame, ids: pd.Series, window, default_reference: bool, reference_windows: int) -> None:
    """A window larger than the data, or too few windows to compare, is a ParameterError naming a size that fits."""
    count = int(ids.nunique())
    needed = reference_windows + 1 if default_reference else 1
    why = (f" (the first {reference_windows} are the reference, at least one more is checked)"
           if default_reference else "")
    if isinstance(window, int):
        if window > len(frame) or count < needed:
            fits = len(frame) // needed
            raise ParameterError(f"--window {window} is too large for the log's {len(frame):,} rows: it gives "
                                 f"{count} window(s), and monitoring needs {needed}{why}. Use --window {fits} or "
                                 f"less, or wait for more predictions.")
        return
    if count < needed:
        first, last = frame["timestamp"].iloc[0], frame["timestamp"].iloc[-1]
        raise ParameterError(f"--window {window} is too large for the log, which spans {first:%Y-%m-%d %H:%M} to "
                             f"{last:%Y-%m-%d %H:%M}: it gives {count} window(s), and monitoring needs "
                             f"{needed}{why}. Use a shorter span or a number of rows.")


def _looks_like_classes(frame: pd.DataFrame) -> bool:
    """Scores logged, text or booleans, or a few whole numbers: a classifier's predictions."""
    if "score" in frame.columns and frame["score"].notna().any():
        return True
    predictions = frame["prediction"].dropna()
    if predictions.empty:
        return False
    try:
        values = pd.to_numeric(predictions, errors="raise")
    except (TypeError, ValueError):
        return True
    if pd.api.types.is_bool_dtype(predictions):
        return True
    values = values.to_numpy(dtype=float)
    return bool(np.all(values == np.round(values)) and np.unique(values).size <= _CLASS_LEVELS)


def _metric(metric: str | None, frame: pd.DataFrame, classes: bool) -> str:
    name = metric or ("accuracy" if classes else "mae")
    spec = evaluation.metric(name)  # ParameterError listing the metrics for an unknown name
    if spec.needs == "scores" and not ("score" in frame.columns and frame["score"].notna().any()):
        raise ParameterError(f"Metric {name!r} needs the model's scores, and this log has none (regressors and "
                             f"models without predict_proba log no score): use accuracy, recall or precision.")
    return name


def _current(rows: pd.DataFrame, features: dict[str, str]) -> pd.DataFrame:
    """The window's features under their own names, and the model's outputs under internal names."""
    current = pd.DataFrame({name: rows[column].to_numpy() for name, column in features.items()}, index=rows.index)
    current[_PREDICTION] = rows["prediction"].to_numpy()
    if "score" in rows.columns:
        current[_SCORE] = rows["score"].to_numpy(dtype=float)
    return current


def _reference(reference, baseline_rows, features, baseline_ids):
    """(the reference, how the report names it, whether it is the log's own first windows)."""
    if reference is None:
        if len(baseline_rows) < drift_module.MIN_ROWS:
            raise DataError(f"The first window has {len(baseline_rows)} rows, too few to be the reference (at "
                            f"least {drift_module.MIN_ROWS}): use a longer --window, or pass --reference (the "
                            f"training table or the model's fingerprint).")
        ids = ", ".join(map(str, baseline_ids))
        plural = "s" if len(baseline_ids) > 1 else ""
        return (_current(baseline_rows, features),
                f"the first window{plural} of the log (window{plural} {ids}, {len(baseline_rows):,} rows)", True)
    if isinstance(reference, (str, os.PathLike)):
        from mlkit.monitoring.commands import _reference as load_reference

        described = f"{Path(reference).name}"
        reference = load_reference(str(reference))
    else:
        described = None
    if isinstance(reference, dict):
        from mlkit import fingerprint

        fp = fingerprint._check_fingerprint(reference, "The reference fingerprint")
        have = set(fp["numeric"]) | set(fp["categorical"])
        _missing(features, have, "fingerprint")
        kind = "the model's fingerprint" + (f" {described}" if described else "")
        return fp, f"{kind} ({int(fp.get('rows', 0)):,} training rows)", False
    if not isinstance(reference, pd.DataFrame):
        raise ParameterError(f"reference must be a DataFrame, a fingerprint dict or a path, not "
                             f"{type(reference).__name__}.")
    _missing(features, set(map(str, reference.columns)), "table")
    table = reference[list(features)].copy()
    if "prediction" in reference.columns and "prediction" not in features:
        table[_PREDICTION] = reference["prediction"].to_numpy()
    if "score" in reference.columns and "score" not in features:
        table[_SCORE] = pd.to_numeric(reference["score"], errors="coerce").to_numpy(dtype=float)
    kind = "the reference table" + (f" {described}" if described else "")
    return table, f"{kind} ({len(table):,} rows)", False


def _missing(features: dict[str, str], have: set, what: str) -> None:
    absent = [name for name in features if name not in have]
    if absent:
        raise DataError(f"The reference {what} has no column(s) {', '.join(map(repr, absent))}, which the log's "
                        f"predictions have (features: {', '.join(features)}). Pass the reference of this model (its "
                        f"training table or fingerprint), or leave --reference out to compare with the log's first "
                        f"window.")


def _prediction_column(ref, frame: pd.DataFrame) -> tuple[str | None, str | None]:
    """Which output to compare for prediction drift (internal name), or a note saying why none."""
    has_scores = "score" in frame.columns and frame["score"].notna().any()
    if isinstance(ref, dict):
        scores = ref.get("scores")
        if scores is None:
            return None, "No prediction drift: the fingerprint kept no scores."
        if scores["kind"] == "probability":
            return (_SCORE, None) if has_scores else (None, "No prediction drift: the fingerprint kept "
                                                            "probabilities, and the log has no scores.")
        return _PREDICTION, None
    if _PREDICTION in ref.columns and ref[_PREDICTION].notna().any():
        return _PREDICTION, None
    return None, "No prediction drift: the reference table has no 'prediction' column."


def _drift(frame, ids, order, ref, features, pred_column, classes, *, reference_ids, calibrate, false_alarm_rate,
           thresholds, drift_share, seed):
    """The long drift table and one summary row per window."""
    columns = list(features)
    compared = columns + ([pred_column] if pred_column else [])
    categorical = [pred_column] if (pred_column == _PREDICTION and classes and not isinstance(ref, dict)) else None
    calibrations: list[drift_module.Calibration] = []

    def calibration_for(rows: int) -> drift_module.Calibration:
        for calibration in calibrations:  # close enough to the size it was calibrated for
            if calibration.window / 1.25 <= rows <= calibration.window * 1.25:
                return calibration
        calibration = drift_module.calibrate_thresholds(
            ref, rows, columns=columns, categorical=categorical, prediction=pred_column,
            false_alarm_rate=false_alarm_rate, n_boot=max(1000, math.ceil(5 / false_alarm_rate)), seed=seed)
        calibrations.append(calibration)
        return calibration

    long_rows, summary = [], []
    for window_id in order:
        rows = frame[ids == window_id]
        status = ("reference" if window_id in reference_ids else
                  "skipped" if len(rows) < drift_module.MIN_ROWS else "checked")
        entry = {"window": int(window_id), "status": status, "drift_share": np.nan, "dataset_drift": np.nan,
                 "drifted_columns": "", "prediction_drift": np.nan}
        if status != "checked":
            for name in compared:
                long_rows.append({"window": int(window_id), "status": status, "column": _display(name),
                                  "role": "feature" if name in features else "prediction", "drifted": False})
            summary.append(entry)
            continue
        report = drift_module.drift_report(
            ref, _current(rows, features), columns=columns, categorical=categorical, prediction=pred_column,
            thresholds=calibration_for(len(rows)) if calibrate else thresholds, drift_share=drift_share)
        table = report.table
        ratio = np.clip(report.ratios(), 0.0, 1e6)
        for position, row in enumerate(table.to_dict("records")):
            long_rows.append({"window": int(window_id), "status": status, "column": _display(row["column"]),
                              "role": row["role"], "statistic": row["statistic"], "value": row["value"],
                              "p_value": row["p_value_adjusted"], "threshold": row["threshold"],
                              "threshold_on": row["threshold_on"], "ratio": ratio[position],
                              "drifted": bool(row["drifted"])})
        entry.update(drift_share=report.drift_share, dataset_drift=float(report.dataset_drift),
                     drifted_columns=", ".join(report.drifted_columns),
                     prediction_drift=np.nan if report.prediction_drift is None else float(report.prediction_drift))
        summary.append(entry)
    drift_table = pd.DataFrame(long_rows, columns=_DRIFT_COLUMNS)
    drift_table["drifted"] = drift_table["drifted"].astype(bool)
    return drift_table, pd.DataFrame(summary)


def _display(name: str) -> str:
    return {_PREDICTION: "prediction", _SCORE: "score"}.get(name, name)


def _performance(frame, metric, window, label_delay, as_of, min_labels, calibrator) -> pd.DataFrame:
    try:
        return perf_module.performance_over_time(frame, metric, window, label_delay=label_delay, as_of=as_of,
                                                 min_labels=min_labels, calibrator=calibrator)
    except (ParameterError, DataError):
        raise
    except (TypeError, ValueError) as exc:  # sklearn refusing labels that do not fit the metric
        raise DataError(f"The metric {metric!r} cannot be computed from these predictions and labels "
                        f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); choose one that fits the task "
                        f"with --metric: accuracy for classes, mae for numbers.") from None


def _performance_step(frame, baseline_rows, baseline_ids, metric, window, label_delay, as_of, min_labels):
    """(performance table, baseline metric, calibrator or None, notes)."""
    if not frame["label"].notna().any():
        performance = _performance(frame, metric, window, label_delay, as_of, min_labels, None)
        return performance, float("nan"), None, [
            "No labels yet: realised performance appears once outcomes are attached (POST /feedback, or "
            "mlkit.monitoring.store.attach_labels)."]
    moment = _performance(frame, metric, window, label_delay, as_of, min_labels, None).attrs["as_of"]
    calibrator, calibrator_note = _calibrator(baseline_rows, metric, label_delay, moment, min_labels)
    performance = _performance(frame, metric, window, label_delay, moment, min_labels, calibrator)
    baseline = float(_performance(baseline_rows, metric, len(baseline_rows), label_delay, moment, min_labels,
                                  None)["realised"].iloc[0])
    if math.isfinite(baseline):
        notes = [f"Baseline {metric}: {baseline:.4g}, on the labelled rows of window(s) "
                 f"{', '.join(map(str, baseline_ids))}."]
    else:
        notes = [f"The baseline window(s) have fewer than {min_labels} known labels: no baseline {metric}, so no "
                 "performance alert (use a longer window, or more reference_windows)."]
    return performance, baseline, calibrator, notes + ([calibrator_note] if calibrator_note else [])


def _calibrator(baseline_rows, metric, label_delay, as_of, min_labels):
    """A confidence calibrator fitted on the baseline's labelled, scored rows, or None and why."""
    if "score" not in baseline_rows.columns or baseline_rows["score"].isna().all():
        return None, None  # a regressor, or a model that logs no scores: nothing to estimate from
    arrival = perf_module._arrival(baseline_rows, label_delay)
    known = baseline_rows["label"].notna() & (arrival.isna() | (arrival <= as_of)) & baseline_rows["score"].notna()
    rows = baseline_rows[known]
    if len(rows) < min_labels:
        return None, (f"No label-free estimate: the baseline has {len(rows)} labelled rows with scores, fewer than "
                      f"{min_labels}.")
    labels = rows["label"].infer_objects().to_numpy()
    predictions = rows["prediction"].infer_objects().to_numpy()
    scores = rows["score"].to_numpy(dtype=float)
    binary = set(pd.unique(np.concatenate([labels, predictions]).astype(object))) <= {0, 1, True, False}
    positive = binary and float(np.mean((scores >= 0.5) == (predictions.astype(float) == 1))) >= 0.99
    target = "positive" if positive else "correct"
    if metric not in perf_module.ESTIMABLE[target]:
        return None, (f"No label-free estimate of {metric}: the scores estimate "
                      f"{', '.join(perf_module.ESTIMABLE[target])} only.")
    try:
        calibrator = perf_module.fit_confidence_calibrator(
            scores, labels.astype(float) if positive else labels, target=target,
            reference_predictions=None if positive else predictions)
    except DataError as exc:
        return None, f"No label-free estimate: {exc}"
    what = "positive-class scores" if positive else "confidence of the predicted class"
    return calibrator, (f"Estimated {metric}: scores ({what}) mapped to probabilities by isotonic regression fitted "
                        f"on the {len(rows):,} labelled rows of the baseline window(s); it assumes the relation "
                        f"between scores and outcomes has not changed, so it misses concept drift.")


def _window_table(per_window: pd.DataFrame, performance: pd.DataFrame) -> pd.DataFrame:
    keep = ["window", "start", "end", "rows", "labelled", "pending", "realised"]
    perf = performance[keep].copy()
    perf["estimated"] = performance["estimated"] if "estimated" in performance.columns else np.nan
    table = per_window.merge(perf, on="window", how="left")
    order = ["window", "start", "end", "rows", "status", "drift_share", "dataset_drift", "drifted_columns",
             "prediction_drift", "labelled", "pending", "realised", "estimated"]
    table = table[order]
    for name in ("drift_share", "dataset_drift", "prediction_drift", "realised", "estimated"):
        table[name] = table[name].astype(float)
    return table


# =========================================================================== showing it


def plot_drift_heatmap(table: pd.DataFrame, ax: Any = None) -> Any:
    """Heatmap of drift: windows on x, compared columns on y, colour = statistic / threshold.

    Blue is below the threshold, red beyond it (a log scale centred on 1); an ``x`` marks a
    drifted cell. Windows not checked (the reference, or too few rows) are hatched.

    Parameters
    ----------
    table : pandas.DataFrame
        :attr:`MonitorResult.drift` (columns ``window``, ``status``, ``column``, ``role``,
        ``ratio``, ``drifted``).
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
    >>> table = pd.DataFrame({"window": [0, 1, 2], "status": ["reference", "checked", "checked"],
    ...                       "column": ["x", "x", "x"], "role": "feature", "ratio": [np.nan, 0.5, 4.0],
    ...                       "drifted": [False, False, True]})
    >>> ax = plot_drift_heatmap(table)
    >>> ax.get_title(), ax.get_xlabel(), ax.get_ylabel()
    ('Drift per window (x = drifted)', 'window (hatched: not checked)', 'column')
    >>> plt.close(ax.figure)
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    missing = [c for c in ("window", "column", "ratio", "drifted") if c not in table.columns]
    if missing:
        raise DataError(f"The table lacks the column(s) {missing}; pass MonitorResult.drift.")
    order = list(dict.fromkeys(table.sort_values("role", key=lambda s: s != "feature", kind="stable")["column"]))
    windows = sorted(table["window"].unique())
    ratio = table.pivot_table(index="column", columns="window", values="ratio", aggfunc="first", dropna=False)
    ratio = ratio.reindex(index=order, columns=windows)
    drifted = table.pivot_table(index="column", columns="window", values="drifted", aggfunc="any")
    drifted = drifted.reindex(index=order, columns=windows).fillna(False).astype(bool)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(14, max(6, 0.45 * len(windows) + 3)), max(2.5, 0.45 * len(order) + 1.8)))
    values = np.ma.masked_invalid(ratio.to_numpy(dtype=float).clip(1e-2, 1e2))
    cmap = plt.get_cmap("coolwarm").with_extremes(bad="white")
    mesh = ax.pcolormesh(np.arange(len(windows) + 1) - 0.5, np.arange(len(order) + 1) - 0.5, values, cmap=cmap,
                         norm=LogNorm(vmin=1e-1, vmax=1e1), edgecolors="white", linewidth=0.5)
    statuses = table.drop_duplicates("window").set_index("window")["status"] if "status" in table else {}
    idle = [i for i, w in enumerate(windows) if statuses.get(w, "checked") != "checked"]
    for i in idle:  # the reference, and windows with too few rows: hatched, not coloured
        ax.add_patch(Rectangle((i - 0.5, -0.5), 1, len(order), fill=False, hatch="//", edgecolor="grey",
                               linewidth=0))
    rows, cols = np.nonzero(drifted.to_numpy())
    if len(rows):
        ax.scatter(cols, rows, marker="x", color="black", s=40)
    ax.set_yticks(range(len(order)), order)
    ax.invert_yaxis()
    short = {"reference": "\nref", "skipped": "\nskip"}
    shown = range(len(windows)) if len(windows) <= 40 else np.linspace(0, len(windows) - 1, 20).round().astype(int)
    ax.set_xticks(list(shown), [f"{windows[i]}{short.get(statuses.get(windows[i], 'checked'), '')}" for i in shown])
    ax.set_xlabel("window" + (" (hatched: not checked)" if idle else ""))
    ax.set_ylabel("column")
    ax.set_title("Drift per window (x = drifted)")
    bar = ax.figure.colorbar(mesh, ax=ax)
    bar.set_label("statistic / threshold (log; > 1 = drifted)")
    return ax


def format_summary(result: MonitorResult) -> str:
    """The terminal summary: one line per window, the alerts, the verdict.

    Examples
    --------
    >>> from mlkit.monitoring.performance import synthetic_stream
    >>> _, stream = synthetic_stream("none", windows=3, window_size=300, seed=0)
    >>> print(format_summary(monitor(stream, window=300)).splitlines()[-1])
    No alert: 2 window(s) checked, 900 predictions.
    """
    shown = result.windows.copy()
    shown["start"] = shown["start"].map(lambda t: "" if pd.isna(t) else f"{pd.Timestamp(t):%Y-%m-%d %H:%M}")
    for name in ("dataset_drift", "prediction_drift"):
        shown[name] = shown[name].map(lambda v: "" if pd.isna(v) else ("yes" if v else "no"))
    columns = ["window", "start", "rows", "status", "drift_share", "dataset_drift", "prediction_drift",
               "labelled", "realised"] + (["estimated"] if result.has_estimate else []) + ["alerts"]
    shown = shown[columns].rename(columns={"realised": result.metric})
    lines = [shown.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3g}")]
    lines += [f"alert: {message}" for message in result.alerts["message"]]
    lines.append(result.verdict)
    return "\n".join(lines)


def _window_display(result: MonitorResult) -> pd.DataFrame:
    shown = result.windows.copy()
    for name in ("start", "end"):
        shown[name] = shown[name].map(lambda t: "" if pd.isna(t) else f"{pd.Timestamp(t):%Y-%m-%d %H:%M}")
    for name in ("dataset_drift", "prediction_drift"):
        shown[name] = shown[name].map(lambda v: "" if pd.isna(v) else ("yes" if v else "no"))
    if not result.has_estimate:
        shown = shown.drop(columns=["estimated"])
    return shown.rename(columns={"realised": result.metric})


def _report(result: MonitorResult) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlkit.monitoring.html import Report

    page = Report(f"Monitoring: {result.model or 'predictions'}")
    page.text(result.verdict, verdict="bad" if not result.alerts.empty else "good")
    where = "rows" if isinstance(result.window, int) else "of time"
    page.text(f"Windows of {result.window} {where}; {len(result.windows)} window(s), "
              f"{int(result.windows['rows'].sum()):,} predictions. Metric: {result.metric} "
              f"({'higher' if result.greater_is_better else 'lower'} is better).")
    for note in result.notes:
        page.text(note)

    page.heading("Drift per window")
    ax = plot_drift_heatmap(result.drift)
    page.figure(ax.figure, "Heatmap of drift: windows left to right, one row per column; colour is the statistic "
                           "divided by its threshold (red beyond 1), an x marks a drifted cell, hatched windows "
                           "were not checked. Look for the window where a row turns red and stays red.")
    page.text("Each cell compares one column of one window with the reference; red cells marked x crossed the "
              "threshold. A whole column turning red from one window on is a shift, not noise.")

    page.heading("Performance over time")
    if not result.has_labels:
        page.text(f"No labels yet: the realised {result.metric} appears here once outcomes are attached "
                  "(POST /feedback, or attach_labels).")
    else:
        fig, ax = plt.subplots(figsize=(8, 4))
        perf_module.plot_performance(result.performance, ax=ax)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if math.isfinite(result.baseline):
            ax.axhline(result.baseline, color="grey", linestyle=":", linewidth=1, label="baseline")
        for rule in result.rules:
            if rule.metric == "realised":
                ax.axhline(rule.threshold, color="tab:red", linestyle="--", linewidth=1, label=f"{rule.name} limit")
        ax.legend(loc="best")
        page.figure(fig, f"Line chart of {result.metric} per window: realised from known labels (solid) and, "
                         "where scores allow, estimated without labels (dashed); the dotted line is the baseline, "
                         "the red dashed line the alert limit. A realised line falling away from a flat estimate "
                         "means concept drift.")
        page.text("Where the two lines fall together, the inputs moved and the model is less sure; where only the "
                  "realised line falls, the relation between inputs and outcomes changed (concept drift).")

    page.heading("Alerts")
    if result.alerts.empty:
        page.text("No alert fired.")
    else:
        page.table(result.alerts.assign(time=result.alerts["time"].map(
            lambda t: "" if t is None or pd.isna(t) else f"{pd.Timestamp(t):%Y-%m-%d %H:%M}")))
    page.text("Rules: " + "; ".join(
        f"{r.name} ({r.metric} {r.direction} {r.threshold:.4g}"
        + (f", {r.consecutive} windows in a row" if r.consecutive > 1 else "") + ")" for r in result.rules) + ".")

    page.heading("Per window")
    page.table(_window_display(result))
    return page
