"""Metrics, bootstrap intervals, slices and the deployment gate.

Every use case names its industry's primary metric; :data:`METRICS` says how to compute it,
whether it needs hard labels or scores, and which direction is better.

Examples
--------
>>> metric("wape").greater_is_better
False
>>> round(score("wape", [10, 20, 30], y_pred=[12, 18, 30]), 3)
0.067
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlkit.errors import DataError, ParameterError

from mlkit import usecases

__all__ = [
    "Metric",
    "METRICS",
    "metric",
    "score",
    "predictions_for",
    "scorer",
    "wape",
    "bootstrap_interval",
    "slice_metrics",
    "cost",
    "deployment_gate",
    "gate_verdict",
    "Assessment",
    "assess",
]


def wape(y_true, y_pred) -> float:
    """Weighted absolute percentage error: total absolute error over total actual volume.

    Retail's favourite: unlike MAPE it does not explode on days with zero sales.

    Examples
    --------
    >>> wape([0, 10], [1, 9])
    0.2
    """
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    total = np.abs(y_true).sum()
    return float(np.abs(y_true - y_pred).sum() / total) if total else float("nan")


def _f2(y_true, y_pred) -> float:
    return float(skm.fbeta_score(y_true, y_pred, beta=2, zero_division=0))


@dataclass(frozen=True)
class Metric:
    """How to compute one metric."""

    name: str
    func: Callable[..., float]
    needs: str  # "labels" (hard predictions) or "scores" (probability of the positive class)
    greater_is_better: bool
    sklearn_scoring: str | None
    description: str

    def __call__(self, y_true, y) -> float:
        return float(self.func(np.asarray(y_true), np.asarray(y)))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in [
        Metric("recall", lambda t, p: skm.recall_score(t, p, zero_division=0), "labels", True, "recall",
               "sensitivity: share of actual positives the model catches"),
        Metric("precision", lambda t, p: skm.precision_score(t, p, zero_division=0), "labels", True, "precision",
               "share of flagged cases that are truly positive"),
        Metric("f2", _f2, "labels", True, None, "F-beta with beta=2: recall weighted twice as much as precision"),
        Metric("accuracy", skm.accuracy_score, "labels", True, "accuracy", "share of correct predictions"),
        Metric("balanced_accuracy", skm.balanced_accuracy_score, "labels", True, "balanced_accuracy",
               "mean recall over classes; not fooled by imbalance"),
        Metric("roc_auc", skm.roc_auc_score, "scores", True, "roc_auc",
               "chance a random positive is ranked above a random negative"),
        Metric("average_precision", skm.average_precision_score, "scores", True, "average_precision",
               "area under the precision-recall curve; honest for rare positives"),
        Metric("mae", skm.mean_absolute_error, "labels", False, "neg_mean_absolute_error",
               "mean absolute error, in the target's units"),
        Metric("rmse", skm.root_mean_squared_error, "labels", False, "neg_root_mean_squared_error",
               "root mean squared error: punishes large misses"),
        Metric("wape", wape, "labels", False, None, "total absolute error / total actual volume"),
        Metric("r2", skm.r2_score, "labels", True, "r2", "share of the target's variance explained"),
    ]
}


def metric(name: str) -> Metric:
    """Look up a metric by name, with a clear error for an unknown one."""
    try:
        return METRICS[name]
    except KeyError:
        raise ParameterError(f"Unknown metric {name!r}; choose one of {', '.join(METRICS)}.") from None


def score(name: str, y_true, *, y_pred=None, y_score=None) -> float:
    """Compute metric ``name`` from hard predictions or scores, whichever it needs."""
    m = metric(name)
    y = y_score if m.needs == "scores" else y_pred
    if y is None:
        raise ParameterError(f"Metric {name!r} needs {'y_score' if m.needs == 'scores' else 'y_pred'}.")
    return m(y_true, y)


def predictions_for(name: str, model, X) -> np.ndarray:
    """What metric ``name`` needs from a fitted ``model``: labels, or positive-class scores."""
    if metric(name).needs == "scores":
        return model.predict_proba(X)[:, 1]
    return model.predict(X)


def scorer(name: str):
    """A scikit-learn scorer for ``name`` (for ``cross_validate`` and searches)."""
    m = metric(name)
    if m.sklearn_scoring:
        return m.sklearn_scoring
    return skm.make_scorer(m.func, greater_is_better=m.greater_is_better)


_BOTH_CLASSES = {name for name, m in METRICS.items() if m.needs == "scores"}
"""Metrics that are undefined when the true labels hold a single class (ranking metrics)."""


def _aligned(y_true, y, what: str = "y") -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as 1-D numpy arrays of the same length, or a DataError naming the fix."""
    y_true, y = np.asarray(y_true), np.asarray(y)
    if y_true.ndim != 1 or y.ndim != 1:
        raise DataError(
            f"y_true and {what} must be one-dimensional (one value per row); for predict_proba output "
            "pass the positive class's column, e.g. proba[:, 1]."
        )
    if len(y_true) != len(y):
        raise DataError(
            f"y_true has {len(y_true)} rows but {what} has {len(y)}; pass the predictions made for exactly these rows."
        )
    return y_true, y


_NEEDS_POSITIVES = {"recall", "f2"}
"""Metrics whose denominator is the number of actual positives (label 1): undefined without any."""


def _defined(name: str, y_true: np.ndarray) -> bool:
    """False when metric ``name`` cannot be computed on these labels.

    A ranking metric needs both classes; recall and F2 need at least one actual positive
    (scikit-learn would return 0 by convention, which reads as "missed every positive").
    """
    if name in _BOTH_CLASSES:
        return np.unique(y_true).size >= 2
    if name in _NEEDS_POSITIVES:
        return bool(np.any(y_true == 1))
    return True


def _row_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` rows appears in each resample (one resample per row of ``idx``)."""
    c = idx.shape[0]
    flat = (idx + n * np.arange(c)[:, None]).ravel()
    return np.bincount(flat, minlength=c * n).reshape(c, n)


def _labels_fast(name: str, y_true: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
    """Label metrics of many resamples at once, from one confusion matrix per resample."""
    try:
        classes, inverse = np.unique(np.concatenate([y_true, y]), return_inverse=True)
    except TypeError:  # labels of mixed types: no fast path
        return None
    binary = classes.dtype.kind in "biuf" and bool(np.isin(classes, [0, 1]).all())
    if name in ("recall", "precision", "f2") and not binary:
        return None
    k, n, c = len(classes), len(y_true), idx.shape[0]
    cell = inverse[:n] * k + inverse[n:]
    flat = (cell[idx] + k * k * np.arange(c)[:, None]).ravel()
    conf = np.bincount(flat, minlength=c * k * k).reshape(c, k, k).astype(float)
    diag = np.diagonal(conf, axis1=1, axis2=2)
    if name == "accuracy":
        return diag.sum(1) / idx.shape[1]
    if name == "balanced_accuracy":
        support = conf.sum(2)
        per_class = np.divide(diag, support, out=np.zeros_like(diag), where=support > 0)
        return per_class.sum(1) / (support > 0).sum(1)
    hits = np.flatnonzero(classes == 1)
    if hits.size == 0:  # the positive class never occurs: recall and F2 undefined, precision 0
        return np.full(c, np.nan if name in _NEEDS_POSITIVES else 0.0)
    p = hits[0]
    tp = conf[:, p, p]
    fn, fp = conf[:, p, :].sum(1) - tp, conf[:, :, p].sum(1) - tp
    num, den = {"recall": (tp, tp + fn), "precision": (tp, tp + fp), "f2": (5 * tp, 5 * tp + 4 * fn + fp)}[name]
    values = np.divide(num, den, out=np.zeros_like(num), where=den > 0)  # precision: 0 when nothing is flagged
    if name in _NEEDS_POSITIVES:
        values[tp + fn == 0] = np.nan
    return values


def _ranking_fast(name: str, y_true: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
    """ROC AUC or average precision of many resamples at once (NaN where one class is missing).

    Rows are sorted by score once; each resample is a vector of row counts, summed per
    distinct score (ties), so a resample's positives and negatives above each threshold
    are cumulative sums.
    """
    if y_true.dtype.kind not in "biuf" or not np.isin(y_true, [0, 1]).all() or y.dtype.kind not in "biuf":
        return None
    order = np.argsort(-y.astype(float), kind="stable")
    scores, positive = y[order], y_true[order] == 1
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
    counts = _row_counts(idx, len(y_true))[:, order]
    pos = np.add.reduceat(counts * positive, starts, axis=1).astype(float)
    neg = np.add.reduceat(counts * ~positive, starts, axis=1).astype(float)
    n_pos, n_neg = pos.sum(1), neg.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if name == "roc_auc":  # P(random positive ranked above random negative), ties count half
            below = n_neg[:, None] - np.cumsum(neg, 1)
            values = (pos * (below + 0.5 * neg)).sum(1) / (n_pos * n_neg)
        else:  # average precision: precision at each threshold, weighted by the recall it adds
            tp, fp = np.cumsum(pos, 1), np.cumsum(neg, 1)
            precision = tp / np.maximum(tp + fp, 1)
            values = (pos * precision).sum(1) / n_pos
    values[(n_pos == 0) | (n_neg == 0)] = np.nan
    return values


def _regression_fast(name: str, y_true: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
    """Error metrics of many resamples at once, by gathering each resample's rows."""
    if y_true.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        return None
    t = y_true.astype(float)
    error = t - y.astype(float)
    if name == "mae":
        return np.abs(error)[idx].mean(1)
    if name == "rmse":
        return np.sqrt((error**2)[idx].mean(1))
    if name == "wape":
        total = np.abs(t)[idx].sum(1)
        return np.divide(np.abs(error)[idx].sum(1), total, out=np.full(len(idx), np.nan), where=total > 0)
    ss_res = (error**2)[idx].sum(1)
    rows = t[idx]
    ss_tot = ((rows - rows.mean(1, keepdims=True)) ** 2).sum(1)
    fallback = np.where(ss_res == 0, 1.0, 0.0)  # scikit-learn's value for a constant target
    return 1 - np.divide(ss_res, ss_tot, out=1 - fallback, where=ss_tot > 0)


_FAST = {
    **dict.fromkeys(["accuracy", "balanced_accuracy", "recall", "precision", "f2"], _labels_fast),
    **dict.fromkeys(["roc_auc", "average_precision"], _ranking_fast),
    **dict.fromkeys(["mae", "rmse", "wape", "r2"], _regression_fast),
}
"""Vectorised versions of the built-in metrics over many resamples (same values as the loop)."""


def _resample_values(name: str, y_true: np.ndarray, y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The metric on each resample (one per row of ``idx``); NaN where it is undefined."""
    fast = _FAST.get(name)
    values = fast(name, y_true, y, idx) if fast else None
    if values is not None:
        return np.asarray(values, dtype=float)
    m = metric(name)  # no fast path for these labels: the metric itself, one resample at a time
    return np.array([m(y_true[i], y[i]) if _defined(name, y_true[i]) else np.nan for i in idx], dtype=float)


def bootstrap_interval(
    y_true,
    y,
    metric_name: str,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    return_values: bool = False,
) -> dict:
    """Percentile bootstrap confidence interval of a metric on one test set.

    Draw ``n_resamples`` resamples of the test rows with replacement (row indices from
    ``rng.integers``), compute the metric on each, and take the middle ``confidence`` share
    of those values. The interval says how much the score could move on another test set of
    the same size; it does not cover a change in the data (drift).

    The resamples are the ones this loop draws, so it gives the same interval::

        rng = np.random.default_rng(seed)
        for _ in range(n_resamples):
            idx = rng.integers(0, n, size=n)
            values.append(metric(y_true[idx], y[idx]))

    The built-in metrics are computed for many resamples at once (a confusion matrix per
    resample, or row counts per resample), which is the same arithmetic, much faster.

    Parameters
    ----------
    y_true
        True values of the test rows.
    y
        What the metric needs (see :func:`predictions_for`): hard predictions, or the
        positive-class score for ``roc_auc`` / ``average_precision``.
    metric_name
        A key of :data:`METRICS`.
    n_resamples
        Number of bootstrap resamples.
    seed
        Seed of the resampling; the same seed gives the same interval.
    confidence
        Coverage of the interval, strictly between 0 and 1.
    return_values
        Also return the metric of every kept resample (key ``values``), e.g. to plot them.

    Returns
    -------
    dict
        ``metric``, ``point`` (the metric on the whole test set), ``low``, ``high``,
        ``confidence``, ``n_resamples`` (requested) and ``skipped``: resamples where the
        metric is undefined (a single class for a ranking metric, no actual positive for
        recall or F2, or a non-finite value), which are left out of the interval; with
        ``return_values``, ``values`` (a list).

    Raises
    ------
    ParameterError
        Unknown metric, ``n_resamples`` below 1, ``confidence`` outside (0, 1).
    DataError
        Mismatched lengths, fewer than 2 rows, or a metric undefined on the test set itself.

    Examples
    --------
    >>> y_true = [0, 1] * 50
    >>> y_pred = [0, 1] * 45 + [1, 0] * 5
    >>> ci = bootstrap_interval(y_true, y_pred, "accuracy", n_resamples=200, seed=0)
    >>> ci["point"], ci["low"] < 0.9 < ci["high"], ci["skipped"]
    (0.9, True, 0)
    """
    m = metric(metric_name)
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ParameterError(f"n_resamples must be a whole number of at least 1 (1000 is usual), got {n_resamples!r}.")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ParameterError(
            f"confidence must be strictly between 0 and 1 (0.95 for a 95% interval), got {confidence!r}."
        )
    y_true, y = _aligned(y_true, y)
    n = len(y_true)
    if n < 2:
        raise DataError(f"A bootstrap needs at least 2 test rows, got {n}; use a larger test set.")
    if not _defined(metric_name, y_true):
        need = "both classes" if metric_name in _BOTH_CLASSES else "at least one positive (1)"
        raise DataError(
            f"{metric_name} needs {need} in y_true, but the test set has none; "
            "use a stratified split or a larger test set."
        )
    point = m(y_true, y)
    if not np.isfinite(point):
        raise DataError(f"{metric_name} is undefined on this test set (got {point}); check y_true and y.")
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // n)  # resamples per batch, so memory stays small
    parts = []
    for start in range(0, n_resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))  # each row: n rows drawn with replacement
        parts.append(_resample_values(metric_name, y_true, y, idx))
    values = np.concatenate(parts)
    kept = values[np.isfinite(values)]
    if kept.size == 0:
        raise DataError(
            f"{metric_name} was undefined on every one of {n_resamples} resamples; "
            "the test set has too few rows of one class for an interval."
        )
    tail = (1 - confidence) / 2
    low, high = np.quantile(kept, [tail, 1 - tail])
    out = {
        "metric": metric_name,
        "point": float(point),
        "low": float(low),
        "high": float(high),
        "confidence": float(confidence),
        "n_resamples": int(n_resamples),
        "skipped": int(values.size - kept.size),
    }
    if return_values:
        out["values"] = kept.tolist()
    return out


def slice_metrics(
    frame: pd.DataFrame,
    y_true,
    y,
    metric_name: str,
    *,
    by: str | pd.Series,
    min_rows: int = 30,
    positive_label=None,
    min_positives: int = 10,
) -> pd.DataFrame:
    """A metric computed separately on each slice (group of rows) of a test set.

    An overall score can hide a group the model serves badly; slicing by a column shows it.
    Scores on small slices are noisy, so they are flagged.

    Parameters
    ----------
    frame
        The test rows (features), in the same order as ``y_true`` and ``y``.
    y_true, y
        True values and what the metric needs (labels or scores), one per row of ``frame``.
    metric_name
        A key of :data:`METRICS`.
    by
        A column of ``frame``, or a Series with one slice label per row (e.g. a binned
        numeric column from ``pd.cut``); missing labels form their own slice.
    min_rows
        Slices with fewer rows are flagged ``small``.
    positive_label
        For a classifier with rare positives: count this class per slice (column
        ``positives``) and also flag slices with fewer than ``min_positives`` of them, since
        a handful of positives makes recall or average precision swing wildly.
    min_positives
        See ``positive_label``.

    Returns
    -------
    pandas.DataFrame
        One row per slice: the slice label (column named after ``by``), ``rows``,
        ``positives`` (only with ``positive_label``), the metric (column named
        ``metric_name``; NaN where undefined: a single class for a ranking metric, no actual
        positive for recall or F2) and ``small``.

    Raises
    ------
    ParameterError
        Unknown metric or ``min_rows`` below 1.
    DataError
        ``by`` is not a column of ``frame``, or lengths do not match.

    Examples
    --------
    >>> frame = pd.DataFrame({"channel": ["web"] * 40 + ["shop"] * 10})
    >>> y_true = [1, 0] * 25
    >>> y_pred = [1, 0] * 20 + [0, 0] * 5
    >>> slice_metrics(frame, y_true, y_pred, "accuracy", by="channel")
      channel  rows  accuracy  small
    0    shop    10       0.5   True
    1     web    40       1.0  False
    """
    metric(metric_name)
    for name, value in (("min_rows", min_rows), ("min_positives", min_positives)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ParameterError(f"{name} must be a whole number of at least 1, got {value!r}.")
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"frame must be a pandas DataFrame of the test rows, got {type(frame).__name__}.")
    y_true, y = _aligned(y_true, y)
    if len(frame) != len(y_true):
        raise DataError(f"frame has {len(frame)} rows but y_true has {len(y_true)}; pass the same test rows to both.")
    if isinstance(by, str):
        if by not in frame.columns:
            raise DataError(f"Slice column {by!r} is not in the frame. Columns: {', '.join(map(str, frame.columns))}.")
        keys, name = frame[by], by
    else:
        keys = pd.Series(by)
        name = keys.name if keys.name is not None else "slice"
        if len(keys) != len(frame):
            raise DataError(f"by has {len(keys)} labels but frame has {len(frame)} rows; give one label per row.")
    keys = keys.reset_index(drop=True).rename(name)
    rows = []
    codes, uniques = pd.factorize(keys, sort=True)  # code -1: a missing label, its own slice (last)
    groups = [(uniques[c], np.flatnonzero(codes == c)) for c in range(len(uniques))]
    if (codes == -1).any():
        groups.append((np.nan, np.flatnonzero(codes == -1)))
    for label, idx in groups:
        row = {name: label, "rows": len(idx)}
        small = len(idx) < min_rows
        if positive_label is not None:
            row["positives"] = int((y_true[idx] == positive_label).sum())
            small = small or row["positives"] < min_positives
        row[metric_name] = float(_resample_values(metric_name, y_true, y, idx[None, :])[0])
        row["small"] = small
        rows.append(row)
    columns = [name, "rows"] + (["positives"] if positive_label is not None else []) + [metric_name, "small"]
    out = pd.DataFrame(rows, columns=columns)
    if isinstance(keys.dtype, pd.CategoricalDtype):
        out[name] = pd.Categorical(out[name], categories=keys.cat.categories, ordered=keys.cat.ordered)
    return out


def cost(uc: usecases.UseCase | str, y_true, y_pred, *, amounts=None) -> float:
    """What a model's errors cost, from the use case's cost model, in its currency.

    Classification: each false negative costs ``cost_model["false_negative"]`` and each false
    positive ``cost_model["false_positive"]``; a cost of ``"amount"`` means the row's own
    transaction amount (pass ``amounts``). Regression: each unit under-predicted costs
    ``cost_model["under"]`` and each unit over-predicted ``cost_model["over"]``.

    Parameters
    ----------
    uc
        The use case (or its id); its ``cost_model`` prices the errors.
    y_true, y_pred
        True values and hard predictions (labels, not scores), one per row.
    amounts
        Per-row amounts, needed when a cost is ``"amount"`` (e.g. ``X_test["amount"]``).

    Returns
    -------
    float
        Total cost of the errors on these rows.

    Raises
    ------
    ParameterError
        The use case has no cost model for its errors (a user CSV, a multiclass target), the
        predictions are scores instead of labels, or ``amounts`` is missing or misaligned.

    Examples
    --------
    >>> cost("healthcare-diagnosis", [1, 1, 0, 0], [0, 1, 1, 0])
    51000.0
    >>> cost("retail-demand", [10, 10], [8, 13])
    9.0
    """
    uc = usecases.get(uc)
    cm = uc.cost_model
    y_true, y_pred = _aligned(y_true, y_pred, "y_pred")
    if uc.task == "classification":
        if "false_negative" not in cm or "false_positive" not in cm:
            raise ParameterError(
                f"Use case {uc.id!r} has no cost model for errors; set cost_model['false_negative'] and "
                "['false_positive'] in your own copy of the notebook, or compare error counts instead."
            )
        if uc.positive_label is None:
            raise ParameterError(
                f"Use case {uc.id!r} has no positive class (multiclass); false negatives and false positives "
                "need one. Compare error counts per class in a confusion matrix instead."
            )
        if np.issubdtype(y_pred.dtype, np.floating) and not np.all(np.isin(y_pred, np.unique(y_true))):
            raise ParameterError(
                "cost needs hard predictions (labels), not scores; threshold the scores first, "
                "e.g. (scores >= 0.5).astype(int)."
            )
        actual = y_true == uc.positive_label
        flagged = y_pred == uc.positive_label
        masks = {"false_negative": actual & ~flagged, "false_positive": ~actual & flagged}
        total = 0.0
        for kind, mask in masks.items():
            price = cm[kind]
            if price == "amount":
                if amounts is None:
                    raise ParameterError(
                        f"Use case {uc.id!r} prices a {kind.replace('_', ' ')} at the transaction amount; "
                        "pass amounts=, e.g. amounts=X_test['amount']."
                    )
                amt = np.asarray(amounts, dtype=float)
                if amt.shape != mask.shape:
                    raise ParameterError(
                        f"amounts has {amt.size} values but there are {mask.size} rows; pass one per row."
                    )
                total += float(amt[mask].sum())
            else:
                total += float(price) * int(mask.sum())
        return total
    if "under" not in cm or "over" not in cm:
        raise ParameterError(
            f"Use case {uc.id!r} has no cost model for errors; set cost_model['under'] and ['over'] "
            "(cost per unit) in your own copy of the notebook, or compare error metrics instead."
        )
    error = y_true.astype(float) - y_pred.astype(float)
    under = np.clip(error, 0, None).sum()
    over = np.clip(-error, 0, None).sum()
    return float(under * float(cm["under"]) + over * float(cm["over"]))


def _gate_metric(key: str, uc: usecases.UseCase) -> tuple[str, str]:
    """Split a gate key such as ``primary_min`` or ``roc_auc_min`` into (metric name, "min"/"max")."""
    base, _, bound = key.rpartition("_")
    if bound not in ("min", "max") or not base:
        raise ParameterError(
            f"Gate threshold {key!r} of use case {uc.id!r} must be named <metric>_min or <metric>_max, "
            "e.g. primary_min or roc_auc_min."
        )
    name = uc.primary_metric if base == "primary" else base
    metric(name)
    return name, bound


def _pessimistic(name: str, interval: Mapping) -> float:
    """The interval end that is worse for metric ``name``: low for a score, high for an error."""
    for key in ("low", "high"):
        if key not in interval:
            raise ParameterError(
                f"The interval for {name} has no {key!r}; pass the dict bootstrap_interval returns."
            )
    return float(interval["low"] if metric(name).greater_is_better else interval["high"])


def deployment_gate(
    uc: usecases.UseCase | str,
    *,
    intervals: Mapping[str, Mapping],
    baseline: float,
    behavioural: Mapping[str, bool] | None = None,
) -> pd.DataFrame:
    """The go/no-go table: every check a model must pass before it is deployed.

    The checks are, in order: each threshold in ``uc.gate`` (``primary_min`` or
    ``primary_max`` for the primary metric, and any ``<metric>_min``/``<metric>_max``),
    compared with the *pessimistic* end of that metric's interval (low end for a score, high
    end for an error); the primary metric's pessimistic end beating the baseline's score;
    and each behavioural test. A user CSV has no thresholds (``uc.gate`` is empty), so its
    gate is the baseline and the behavioural tests. The thresholds live in one place,
    :mod:`mlkit.usecases`.

    Parameters
    ----------
    uc
        The use case (or its id), whose ``gate`` holds the thresholds.
    intervals
        Metric name -> the dict :func:`bootstrap_interval` returned for the model; must hold
        the primary metric and every other metric named in ``uc.gate``.
    baseline
        The baseline model's primary metric on the same test set.
    behavioural
        Behavioural test name -> passed (True/False).

    Returns
    -------
    pandas.DataFrame
        One row per check: ``check`` (what is compared), ``value``, ``threshold``, ``passed``.
        Numbers are rounded to 4 decimals; behavioural rows read ``"pass"``/``"fail"``.

    Raises
    ------
    ParameterError
        A metric needed by the gate has no interval, or a gate key is malformed.

    Examples
    --------
    >>> ci = {"point": 0.93, "low": 0.88, "high": 0.97}
    >>> table = deployment_gate("healthcare-diagnosis", intervals={"recall": ci, "roc_auc": ci},
    ...                         baseline=0.0, behavioural={"invariance": True})
    >>> table["passed"].tolist()
    [True, False, True, True]
    >>> gate_verdict(table)
    'NO-GO'
    """
    uc = usecases.get(uc)
    behavioural = dict(behavioural or {})
    rows = []

    def interval_for(name: str) -> Mapping:
        if name not in intervals:
            raise ParameterError(
                f"The gate of {uc.id!r} checks {name}, but intervals has no entry for it; pass "
                f"intervals={{{name!r}: bootstrap_interval(y_test, ..., {name!r}), ...}}."
            )
        return intervals[name]

    for key, threshold in uc.gate.items():
        name, bound = _gate_metric(key, uc)
        value = _pessimistic(name, interval_for(name))
        end = "low" if metric(name).greater_is_better else "high"
        sign = ">=" if bound == "min" else "<="
        passed = value >= threshold if bound == "min" else value <= threshold
        check = f"{name} {sign} {threshold:g} ({end} end of interval)"
        rows.append((check, round(value, 4), round(float(threshold), 4), passed))
    primary = uc.primary_metric
    value = _pessimistic(primary, interval_for(primary))
    better = metric(primary).greater_is_better
    end = "low" if better else "high"
    passed = value > baseline if better else value < baseline
    check = f"{primary} beats the baseline ({end} end of interval)"
    rows.append((check, round(value, 4), round(float(baseline), 4), passed))
    for name, ok in behavioural.items():
        rows.append((f"behavioural test: {name}", "pass" if ok else "fail", "pass", bool(ok)))
    table = pd.DataFrame(rows, columns=["check", "value", "threshold", "passed"])
    table["passed"] = table["passed"].astype(bool)
    return table


def gate_verdict(table: pd.DataFrame) -> str:
    """``"GO"`` when every check of a :func:`deployment_gate` table passed, else ``"NO-GO"``.

    Raises
    ------
    ParameterError
        The table has no ``passed`` column or no rows.

    Examples
    --------
    >>> gate_verdict(pd.DataFrame({"check": ["a", "b"], "passed": [True, True]}))
    'GO'
    """
    if not isinstance(table, pd.DataFrame) or "passed" not in table.columns:
        raise ParameterError("gate_verdict needs the table deployment_gate returns (with a 'passed' column).")
    if table.empty:
        raise ParameterError("The gate table has no checks; a model with nothing checked is not ready to deploy.")
    return "GO" if bool(table["passed"].all()) else "NO-GO"


@dataclass
class Assessment:
    """What notebook 03 finds about a model on its test set, in one object (see :func:`assess`)."""

    intervals: dict[str, dict]
    baseline: float
    gate: pd.DataFrame
    slices: pd.DataFrame | None

    @property
    def verdict(self) -> str:
        """``"GO"`` or ``"NO-GO"``: the gate's verdict."""
        return gate_verdict(self.gate)


def _slice_labels(X: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.Series | None:
    """The first categorical feature with 2 to 20 levels, else quartiles of the first numeric one."""
    for col in categorical:
        if 2 <= X[col].nunique() <= 20:
            return X[col]
    if numeric:
        s = X[numeric[0]].astype(float)
        edges = np.unique(s.quantile([0, 0.25, 0.5, 0.75, 1]).to_numpy())
        if len(edges) >= 2:
            names = [f"{lo:.4g} to {hi:.4g}" for lo, hi in zip(edges[:-1], edges[1:])]
            return pd.cut(s, edges, labels=names, include_lowest=True).rename(f"{s.name} (quartile)")
    return None


def assess(
    uc: usecases.UseCase | str,
    model,
    baseline,
    test: pd.DataFrame,
    *,
    seed: int = 0,
    n_resamples: int = 1000,
    behavioural: Mapping[str, bool] | None = None,
    slice_by: str | pd.Series | None = None,
) -> Assessment:
    """Score a fitted model on its test rows the way ``03_testing.ipynb`` does, in one call.

    Bootstrap intervals for the primary metric and every metric the gate checks, the
    baseline's primary score, the deployment gate (with ``behavioural`` results if given) and
    the primary metric by slice (``slice_by``, else the first categorical feature with at most
    20 levels, else quartiles of the first numeric feature).

    Examples
    --------
    >>> from mlkit import datasets, training
    >>> uc = usecases.get("healthcare-diagnosis")
    >>> model, parts = training.train(uc, datasets.load(uc), family="linear")
    >>> fit = pd.concat([parts.train, parts.validation])
    >>> base = training.build_pipeline(uc, fit, family="baseline").fit(*training.xy(fit, uc))
    >>> result = assess(uc, model, base, parts.test, n_resamples=200)
    >>> sorted(result.intervals), result.verdict
    (['recall', 'roc_auc'], 'GO')
    """
    from mlkit import training

    uc = usecases.get(uc) if isinstance(uc, str) else uc
    X, y = training.xy(test, uc)
    y_true = y.to_numpy()
    names = [uc.primary_metric] + [
        uc.primary_metric if key.startswith("primary_") else key.rsplit("_", 1)[0] for key in uc.gate
    ]
    intervals = {
        name: bootstrap_interval(y_true, predictions_for(name, model, X), name, n_resamples=n_resamples, seed=seed)
        for name in dict.fromkeys(names)
    }
    base = float(metric(uc.primary_metric)(y_true, predictions_for(uc.primary_metric, baseline, X)))
    gate = deployment_gate(uc, intervals=intervals, baseline=base, behavioural=behavioural)
    if slice_by is None:
        cols = training.feature_columns(test, uc)
        slice_by = _slice_labels(X, cols.numeric, cols.categorical)
    slices = None
    if slice_by is not None:
        binary = uc.task == "classification" and uc.positive_label is not None and y.nunique() == 2
        slices = slice_metrics(
            X, y_true, predictions_for(uc.primary_metric, model, X), uc.primary_metric, by=slice_by,
            positive_label=uc.positive_label if binary else None,
        )
    return Assessment(intervals, base, gate, slices)
