"""Reference fingerprints: a model's training data and scores, summarised in a small JSON.

The model registry stores one fingerprint next to each model. Monitoring compares new rows
with it and measures drift *without the training data*:

* each numeric feature keeps its quantile bins (deciles by default) and the training rows
  in each, plus its missing count and min/max/mean/std for readers;
* each categorical feature keeps the counts of its most frequent levels, an ``other``
  count for the rest and its missing count;
* the model's scores on the same rows are kept the same way (binned probabilities or
  predictions, or the frequencies of predicted classes).

The drift statistic is the population stability index (:func:`psi`): new rows are counted
in the reference's bins (:func:`bin_counts`) and the two sets of shares compared.
A common rule of thumb reads PSI below 0.1 as stable, 0.1-0.25 as a moderate shift and
above 0.25 as a major shift. Missing values are in no bin: a change in how often a value is
missing shows in the missing shares of :func:`drift_table`, not in its PSI.

Examples
--------
>>> X = pd.DataFrame({"age": [23, 35, 41, 52, 67, 30, 45, 58],
...                   "plan": ["basic", "pro", "basic", None, "pro", "basic", "basic", "pro"]})
>>> fp = fingerprint(X, [0.1, 0.4, 0.3, 0.8, 0.9, 0.2, 0.5, 0.7],
...                  numeric=["age"], categorical=["plan"], task="classification", bins=4)
>>> fp["numeric"]["age"]["edges"], fp["numeric"]["age"]["counts"]
([30.0, 41.0, 52.0], [2, 2, 2, 2])
>>> fp["categorical"]["plan"]["frequencies"], fp["categorical"]["plan"]["missing"]
({'basic': 4, 'pro': 3}, 1)
>>> fp["scores"]["kind"]
'probability'
>>> older = X.assign(age=X["age"] + 15)
>>> drift_table(fp, older)[["feature", "kind", "psi"]].round(2)
  feature         kind   psi
0     age      numeric  2.39
1    plan  categorical  0.00
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlkit.errors import DataError, ParameterError
from mlkit.usecases import TASKS

__all__ = ["FORMAT", "SCORE_KINDS", "fingerprint", "bin_counts", "psi", "drift_table", "save", "load"]

FORMAT = "mlkit-fingerprint/1"
"""The format version written into every fingerprint; :func:`load` refuses any other."""

SCORE_KINDS = ("probability", "prediction", "class")
"""What the scores are: a binary classifier's positive-class probability, a regression's
predicted values, or predicted class labels (binned as category frequencies)."""

_KINDS_FOR_TASK = {
    "classification": ("probability", "class"),
    "regression": ("prediction",),
    "forecasting": ("prediction",),
    "clustering": ("class",),
}
_REQUIRED_KEYS = ("format", "rows", "task", "params", "numeric", "categorical", "scores")


# --------------------------------------------------------------------------- summaries


def _as_float(values: pd.Series, what: str) -> np.ndarray:
    """Numbers as float64 with NaN for missing; bool columns become 0/1."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    if values.dtype == object:
        try:
            return values.astype("float64").to_numpy()
        except (TypeError, ValueError):
            pass
    raise DataError(
        f"{what} holds {values.dtype} values, not numbers: list it under categorical=, "
        "or convert it with pandas.to_numeric first."
    )


def _count_bins(edges: list[float], present: np.ndarray) -> list[int]:
    """Rows in each bin (-inf, e1], (e1, e2], ..., (ek, inf) of non-missing values."""
    index = np.searchsorted(np.asarray(edges, dtype=float), present, side="left")
    return np.bincount(index, minlength=len(edges) + 1).tolist()


def _optional(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _numeric_entry(values: np.ndarray, bins: int) -> dict[str, Any]:
    """Quantile edges (duplicates dropped, so discrete columns get fewer bins) and counts."""
    missing = np.isnan(values)
    finite = values[np.isfinite(values)]  # edges and statistics ignore +-inf; they fall in the outer bins
    edges: list[float] = []
    if finite.size:
        # observed values as cut points (no interpolated edge such as 1.7 between days 1 and 2):
        # the i-th is the smallest value with at least i/bins of the rows at or below it, at
        # sorted index ceil(n * i / bins) - 1 in integer arithmetic (as the inverted-CDF
        # quantile, without the float rounding that leaves some bins empty)
        ordered = np.sort(finite)
        index = (finite.size * np.arange(1, bins, dtype=np.int64) + bins - 1) // bins - 1
        edges = [float(e) for e in np.unique(ordered[index])]
    return {
        "edges": edges,
        "counts": _count_bins(edges, values[~missing]),
        "missing": int(missing.sum()),
        "min": _optional(finite.min()) if finite.size else None,
        "max": _optional(finite.max()) if finite.size else None,
        "mean": _optional(finite.mean()) if finite.size else None,
        "std": _optional(finite.std(ddof=1)) if finite.size > 1 else None,
    }


def _level_counts(values: pd.Series) -> tuple[pd.Series, int]:
    """Counts of each level (as a string) and the number of missing values."""
    missing = values.isna()
    return values[~missing].astype(str).value_counts(sort=False), int(missing.sum())


def _categorical_entry(values: pd.Series, max_categories: int) -> dict[str, Any]:
    """The ``max_categories`` most frequent levels (ties by name), ``other`` and ``missing``."""
    counts, missing = _level_counts(values)
    ranked = sorted(((str(k), int(v)) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0]))
    return {
        "frequencies": dict(sorted(ranked[:max_categories])),
        "other": sum(v for _, v in ranked[max_categories:]),
        "missing": missing,
        "distinct": len(ranked),
    }


# --------------------------------------------------------------------------- checks


def _check_columns(X: pd.DataFrame, frame: str, columns: list[str], fix: str) -> None:
    absent = [c for c in columns if c not in X.columns]
    if not absent:
        return
    names = [str(c) for c in X.columns]
    described = []
    for col in absent:
        close = difflib.get_close_matches(str(col), names, n=1)
        described.append(f"{col!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise DataError(f"{frame} has no column {', '.join(described)}: {fix}")


def _check_options(X: Any, numeric: Any, categorical: Any, task: Any, bins: Any, max_categories: Any) -> None:
    if task not in _KINDS_FOR_TASK:
        raise ParameterError(f"Unknown task {task!r}; use one of {', '.join(map(repr, TASKS))}.")
    for name, value, least in (("bins", bins, 2), ("max_categories", max_categories, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ParameterError(f"{name} must be a whole number of at least {least} (e.g. 10), not {value!r}.")
    for name, cols in (("numeric", numeric), ("categorical", categorical)):
        if isinstance(cols, str) or not isinstance(cols, (list, tuple)) or not all(isinstance(c, str) for c in cols):
            raise ParameterError(f"{name}= must be a list of column names (strings), not {cols!r}.")
        if len(set(cols)) != len(cols):
            raise ParameterError(f"{name}= lists a column twice: {sorted(c for c in cols if list(cols).count(c) > 1)}.")
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise ParameterError(f"Columns {both} are listed as both numeric and categorical: pick one role for each.")
    if not isinstance(X, pd.DataFrame):
        raise ParameterError(f"X must be a pandas DataFrame, not {type(X).__name__}.")
    if len(X) == 0:
        raise DataError("X has no rows: fingerprint the rows the model was trained on (train + validation).")


def _as_scores(scores: Any, rows: int, what: str) -> pd.Series:
    values = scores.reset_index(drop=True) if isinstance(scores, pd.Series) else None
    if values is None:
        array = np.asarray(scores)
        if array.ndim != 1:
            raise DataError(
                f"{what} must hold one value per row, not an array of shape {array.shape}: for a binary "
                "classifier pass model.predict_proba(X)[:, 1], for others model.predict(X)."
            )
        values = pd.Series(array)
    if len(values) != rows:
        raise DataError(f"{what} has {len(values)} values for {rows} rows: score exactly the rows of the data.")
    return values


def _score_kind(task: str, scores: pd.Series, score_kind: str | None) -> str:
    allowed = _KINDS_FOR_TASK[task]
    numeric = pd.api.types.is_numeric_dtype(scores) and not pd.api.types.is_bool_dtype(scores)
    if score_kind is None:
        if task != "classification":
            return allowed[0]
        in_unit = numeric and pd.api.types.is_float_dtype(scores) and bool(scores.dropna().between(0, 1).all())
        return "probability" if in_unit else "class"
    if score_kind not in SCORE_KINDS:
        raise ParameterError(f"Unknown score_kind {score_kind!r}; use one of {', '.join(map(repr, SCORE_KINDS))}.")
    if score_kind not in allowed:
        raise ParameterError(
            f"score_kind={score_kind!r} does not fit a {task} model; use {' or '.join(map(repr, allowed))}."
        )
    if score_kind == "probability" and not (numeric and scores.dropna().between(0, 1).all()):
        raise DataError("Probabilities must be numbers between 0 and 1: pass model.predict_proba(X)[:, 1].")
    return score_kind


def _check_fingerprint(fp: Any, source: str) -> dict[str, Any]:
    """Raise DataError unless ``fp`` has the format version and the shape :func:`fingerprint` makes."""
    redo = "re-create it with mlkit.fingerprint.fingerprint() and save it again."
    if not isinstance(fp, dict):
        raise DataError(f"{source} is not an mlkit fingerprint (a JSON object is expected): {redo}")
    if fp.get("format") != FORMAT:
        raise DataError(f"{source} has format {fp.get('format')!r}, not {FORMAT!r}: {redo}")
    absent = [k for k in _REQUIRED_KEYS if k not in fp]
    if absent:
        raise DataError(f"{source} lacks the key(s) {', '.join(absent)}: {redo}")
    entries = [(f"numeric[{c!r}]", e, "edges") for c, e in _items(fp["numeric"], source, redo)]
    entries += [(f"categorical[{c!r}]", e, "frequencies") for c, e in _items(fp["categorical"], source, redo)]
    if fp["scores"] is not None:
        kind = fp["scores"].get("kind") if isinstance(fp["scores"], dict) else None
        if kind not in SCORE_KINDS:
            raise DataError(f"{source} has scores of unknown kind {kind!r}: {redo}")
        entries.append(("scores", fp["scores"], "frequencies" if kind == "class" else "edges"))
    for where, entry, key in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get(key), (list, dict)) or "missing" not in entry:
            raise DataError(f"{source}: entry {where} has no {key!r} and 'missing': {redo}")
        try:
            _reference_counts(entry)
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{source}: the counts of entry {where} do not match its bins: {redo}") from None
    return fp


def _items(section: Any, source: str, redo: str):
    if not isinstance(section, dict):
        raise DataError(f"{source}: 'numeric' and 'categorical' must map column names to entries: {redo}")
    return section.items()


def _reference_counts(entry: dict[str, Any]) -> list[int]:
    """An entry's own counts, in the bin order of :func:`bin_counts`."""
    if "edges" in entry:
        counts = [int(c) for c in entry["counts"]]
        if len(counts) != len(entry["edges"]) + 1:
            raise ValueError("counts and edges do not match")
        return counts
    frequencies = entry["frequencies"]
    return [int(frequencies[level]) for level in sorted(frequencies)] + [int(entry["other"])]


# --------------------------------------------------------------------------- public API


def fingerprint(
    X: pd.DataFrame,
    scores,
    *,
    numeric: list[str],
    categorical: list[str],
    task: str,
    bins: int = 10,
    max_categories: int = 30,
    score_kind: str | None = None,
) -> dict[str, Any]:
    """Summarise the training rows and the model's scores on them, for drift monitoring.

    Parameters
    ----------
    X : pandas.DataFrame
        The rows the model was trained on (train + validation); other columns are ignored.
    scores : array-like or None
        The model's output on ``X``, one value per row: ``model.predict_proba(X)[:, 1]`` for
        a binary classifier, ``model.predict(X)`` otherwise. ``None`` keeps no scores.
    numeric, categorical : list of str
        The feature columns by role (see :func:`mlkit.training.feature_columns`). Bool
        columns are numeric 0/1; category levels are compared as strings.
    task : str
        One of :data:`mlkit.usecases.TASKS`.
    bins : int, default 10
        Quantile bins per numeric column (10 = deciles). Columns with few distinct values
        get fewer, as equal cut points are merged.
    max_categories : int, default 30
        Levels kept per categorical column; rarer ones are counted together as ``other``.
    score_kind : {"probability", "prediction", "class"}, optional
        What ``scores`` are. ``None``: ``"prediction"`` for regression and forecasting,
        ``"class"`` for clustering; for classification ``"probability"`` when the scores
        are floats between 0 and 1, else ``"class"``.

    Returns
    -------
    dict
        Plain JSON data: ``format``, ``rows``, ``task``, ``params`` (bins, max_categories),
        ``numeric`` {column: {edges, counts, missing, min, max, mean, std}},
        ``categorical`` {column: {frequencies, other, missing, distinct}} and ``scores``
        (a numeric or categorical entry plus ``kind``, or None). Numeric bins are
        (-inf, e1], (e1, e2], ..., (ek, inf), so ``counts`` has ``len(edges) + 1`` items.

    Raises
    ------
    ParameterError
        For an unknown task or score kind, ``bins`` below 2, or column lists that are not
        lists of names or that overlap.
    DataError
        For an empty X, a listed column X lacks, a numeric column that holds text, or
        scores whose length differs from the rows.
    """
    _check_options(X, numeric, categorical, task, bins, max_categories)
    _check_columns(X, "X", [*numeric, *categorical], "list only columns of X in numeric= and categorical=.")
    rows = len(X)
    score_values = None if scores is None else _as_scores(scores, rows, "scores")
    kind = None if score_values is None else _score_kind(task, score_values, score_kind)

    score_entry = None
    if kind == "class":
        score_entry = {"kind": kind, **_categorical_entry(score_values, max_categories)}
    elif kind is not None:
        score_entry = {"kind": kind, **_numeric_entry(_as_float(score_values, "scores"), bins)}
    return {
        "format": FORMAT,
        "rows": rows,
        "task": task,
        "params": {"bins": int(bins), "max_categories": int(max_categories)},
        "numeric": {c: _numeric_entry(_as_float(X[c], f"Column {c!r}"), bins) for c in numeric},
        "categorical": {c: _categorical_entry(X[c], max_categories) for c in categorical},
        "scores": score_entry,
    }


def bin_counts(reference_entry: dict[str, Any], values) -> list[int]:
    """Count new values in the bins of one fingerprint entry.

    Numeric entries: the same edges, one count per bin. Categorical entries (and class
    scores): one count per reference level in sorted order, then one for every other level.
    Missing values fall in no bin: ``len(values) - sum(counts)`` of them are missing.

    Examples
    --------
    >>> bin_counts({"edges": [1.0, 5.0], "counts": [3, 4, 3], "missing": 0}, [0, 1, 2, 9, None])
    [2, 1, 1]
    >>> bin_counts({"frequencies": {"b": 2, "a": 5}, "other": 1, "missing": 0}, ["a", "c", "b", "a"])
    [2, 1, 1]
    """
    if not isinstance(reference_entry, dict) or not ({"edges", "frequencies"} & set(reference_entry)):
        raise ParameterError("reference_entry must be one entry of a fingerprint, e.g. fp['numeric']['amount'].")
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(values)
    if "edges" in reference_entry:
        numbers = _as_float(series, "values")
        return _count_bins(reference_entry["edges"], numbers[~np.isnan(numbers)])
    counts, _ = _level_counts(series)
    levels = sorted(reference_entry["frequencies"])
    kept = [int(counts.get(level, 0)) for level in levels]
    return kept + [int(counts.sum()) - sum(kept)]


def psi(expected_counts, actual_counts, *, epsilon: float = 1e-4) -> float:
    """Population stability index between reference counts and new counts over the same bins.

    ``PSI = sum((a - e) * ln(a / e))`` over bins, where ``e`` and ``a`` are each bin's share
    of the reference and of the new rows. An empty bin would make ``ln`` infinite, so each
    share is first raised to at least ``epsilon`` (1e-4: one row in ten thousand); shares
    are not renormalised afterwards. Identical shares give 0; below 0.1 is usually read as
    stable, 0.1-0.25 as a moderate shift and above 0.25 as a major one.

    Examples
    --------
    >>> psi([50, 50], [50, 50])
    0.0
    >>> round(psi([50, 50], [80, 20]), 3)
    0.416
    """
    expected = np.asarray(expected_counts, dtype=float)
    actual = np.asarray(actual_counts, dtype=float)
    if expected.ndim != 1 or expected.shape != actual.shape:
        raise ParameterError(
            f"expected and actual counts must cover the same bins (got {expected.shape} and {actual.shape}): "
            "count the new values with bin_counts(entry, values)."
        )
    if (expected < 0).any() or (actual < 0).any() or expected.sum() == 0 or actual.sum() == 0:
        raise ParameterError("Counts must be non-negative with at least one value on each side.")
    if not 0 < epsilon < 1:
        raise ParameterError(f"epsilon must lie between 0 and 1 (e.g. 1e-4), not {epsilon!r}.")
    e = np.maximum(expected / expected.sum(), epsilon)
    a = np.maximum(actual / actual.sum(), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def _drift_row(feature: str, kind: str, entry: dict[str, Any], values) -> dict[str, Any]:
    expected = _reference_counts(entry)
    actual = bin_counts(entry, values)
    total = sum(expected) + int(entry["missing"])
    value = psi(expected, actual) if sum(expected) and sum(actual) else float("nan")
    return {
        "feature": feature,
        "kind": kind,
        "psi": value,
        "reference_missing_share": int(entry["missing"]) / total if total else float("nan"),
        "new_missing_share": (len(values) - sum(actual)) / len(values),
    }


def drift_table(fp: dict[str, Any], X_new: pd.DataFrame, scores_new=None) -> pd.DataFrame:
    """PSI of every feature (and of the scores) between a fingerprint and new rows.

    Parameters
    ----------
    fp : dict
        A fingerprint from :func:`fingerprint` or :func:`load`.
    X_new : pandas.DataFrame
        New rows with (at least) the fingerprinted feature columns.
    scores_new : array-like, optional
        The model's output on ``X_new``, of the same kind as the fingerprint's scores.

    Returns
    -------
    pandas.DataFrame
        One row per feature, plus one named ``"score"`` when ``scores_new`` is given:
        ``feature``, ``kind`` (numeric, categorical or score), ``psi``,
        ``reference_missing_share`` and ``new_missing_share``; largest PSI first. PSI is
        NaN when either side has no non-missing values.
    """
    fp = _check_fingerprint(fp, "The fingerprint")
    if not isinstance(X_new, pd.DataFrame):
        raise ParameterError(f"X_new must be a pandas DataFrame, not {type(X_new).__name__}.")
    if len(X_new) == 0:
        raise DataError("X_new has no rows: drift needs at least one new row.")
    _check_columns(
        X_new, "X_new", [*fp["numeric"], *fp["categorical"]],
        "drift compares the columns the model was fingerprinted on, so pass new rows with the same "
        "feature columns (rename or add them).",
    )
    rows = [_drift_row(c, "numeric", e, X_new[c]) for c, e in fp["numeric"].items()]
    rows += [_drift_row(c, "categorical", e, X_new[c]) for c, e in fp["categorical"].items()]
    if scores_new is not None:
        if fp["scores"] is None:
            raise ParameterError("This fingerprint kept no scores: call drift_table without scores_new.")
        rows.append(_drift_row("score", "score", fp["scores"], _as_scores(scores_new, len(X_new), "scores_new")))
    table = pd.DataFrame(rows, columns=["feature", "kind", "psi", "reference_missing_share", "new_missing_share"])
    table = table.sort_values(["psi", "feature"], ascending=[False, True], na_position="last", kind="stable")
    return table.reset_index(drop=True)


def save(fp: dict[str, Any], path: str | Path) -> Path:
    """Write a fingerprint as JSON (sorted keys, indented) and return the path.

    The same fingerprint always gives the same bytes, so a registry can hash or diff it.
    """
    fp = _check_fingerprint(fp, "The fingerprint")
    try:
        text = json.dumps(fp, sort_keys=True, indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise DataError(f"The fingerprint is not plain JSON data ({exc}): make it with fingerprint().") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def load(path: str | Path) -> dict[str, Any]:
    """Read a fingerprint written by :func:`save`, checking its format version and keys."""
    path = Path(path)
    try:
        fp = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"No fingerprint at {path}: save one with mlkit.fingerprint.save(fp, path).") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({exc}): re-create it with fingerprint() and save().") from None
    return _check_fingerprint(fp, str(path))
