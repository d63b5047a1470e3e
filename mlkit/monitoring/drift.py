"""Drift statistics, dataset drift, and thresholds calibrated to the window size.

Has the data a model now sees moved away from the data it was trained on? Each column of a
*current* window is compared with the same column of a *reference* (the training rows, as a
table or as the fingerprint packaged with the model, see :mod:`mlkit.fingerprint`):

================  ===============  ===============================================  ==========
statistic         columns          what it measures                                 decides on
================  ===============  ===============================================  ==========
``psi``           both             population stability index over reference bins   value
``ks``            numeric          largest gap between the two CDFs (Kolmogorov-    p-value
                                   Smirnov)
``wasserstein``   numeric          area between the two CDFs, in reference stds     value
``jensenshannon`` both             Jensen-Shannon distance of the binned shares     value
``chi2``          categorical      Pearson's chi-square test of the level counts    p-value
================  ===============  ===============================================  ==========

:func:`drift_report` gives one row per column (statistic, value, p-value where one exists,
threshold, drifted or not, missing shares) and the dataset verdict: drift when at least
``drift_share`` of the feature columns drifted. A column of predictions and one of labels
are compared the same way and reported apart (prediction drift, label drift).

A fixed threshold means different things at different window sizes. On 50 rows, PSI is
above 0.2 by chance alone nearly half the time; on 100,000 rows a KS test finds a
shift of 0.05 standard deviations "significant" every time. :func:`calibrate_thresholds`
draws windows of the production size from the reference (a bootstrap) and sets each
threshold so that an unchanged window crosses it with a stated probability (1 % by
default); :func:`smallest_detectable_shift` says what such a threshold can then see, and
:func:`threshold_study` / :func:`plot_threshold_study` set fixed and calibrated thresholds
side by side.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> reference = pd.DataFrame({"amount": rng.normal(100, 15, 2000),
...                           "channel": rng.choice(["web", "shop", "app"], 2000)})
>>> current = pd.DataFrame({"amount": rng.normal(110, 15, 500),
...                         "channel": rng.choice(["web", "shop", "app"], 500)})
>>> report = drift_report(reference, current)
>>> report.table[["column", "statistic", "value", "threshold", "drifted"]].round(3)
    column statistic  value  threshold  drifted
0   amount       psi  0.480        0.2     True
1  channel       psi  0.003        0.2    False
>>> report.drift_share, report.dataset_drift
(0.5, True)
"""

from __future__ import annotations

import difflib
import math
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special, stats

from mlkit import fingerprint as fpm
from mlkit.errors import DataError, ParameterError

__all__ = [
    "STATISTICS",
    "json_records",
    "json_value",
    "NUMERIC_STATISTICS",
    "CATEGORICAL_STATISTICS",
    "P_VALUE_STATISTICS",
    "DEFAULT_THRESHOLDS",
    "CORRECTIONS",
    "MIN_ROWS",
    "psi",
    "ks",
    "wasserstein",
    "jensen_shannon",
    "chi_square",
    "adjust_p_values",
    "DriftReport",
    "drift_report",
    "Calibration",
    "calibrate_thresholds",
    "smallest_detectable_shift",
    "threshold_study",
    "plot_report",
    "plot_threshold_study",
    "plot_smallest_shift",
]

STATISTICS = ("psi", "ks", "wasserstein", "jensenshannon", "chi2")
"""Every statistic's name, as :func:`drift_report` accepts it."""
NUMERIC_STATISTICS = ("psi", "ks", "wasserstein", "jensenshannon")
"""The statistics that compare numeric columns."""
CATEGORICAL_STATISTICS = ("psi", "jensenshannon", "chi2")
"""The statistics that compare categorical columns (levels compared by equality)."""
P_VALUE_STATISTICS = ("ks", "chi2")
"""The tests: they give a p-value, and a fixed threshold applies to it (drift if p < threshold)."""
DEFAULT_THRESHOLDS = {"psi": 0.2, "ks": 0.05, "wasserstein": 0.1, "jensenshannon": 0.1, "chi2": 0.05}
"""The usual fixed thresholds: on the value for psi, wasserstein and jensenshannon (drift if
above), on the p-value for ks and chi2 (drift if below)."""
CORRECTIONS = ("bonferroni", "bh")
"""Multiple-testing corrections of p-values: Bonferroni, and Benjamini-Hochberg."""
MIN_ROWS = 10
"""Fewest rows a reference or current window may have (``min_rows=`` lowers it)."""

EPSILON = 1e-4  # floor of a bin's share in PSI, as mlkit.fingerprint.psi (one row in ten thousand)
_CHUNK = 1_000_000  # bootstrap values held in memory at once (windows x rows)
_COLUMNS = [
    "column", "role", "kind", "statistic", "value", "p_value", "p_value_adjusted", "threshold",
    "threshold_on", "drifted", "reference_missing_share", "current_missing_share", "missing_share_change",
    "unseen_share", "reference_count", "current_count", "note",
]  # fmt: skip


# =========================================================================== the statistics
# Each works on many windows at once: a row of `rows` (or of `counts`) is one window. The
# public functions below call them with a single window; the bootstrap with thousands.


def _psi_counts(expected: np.ndarray, actual: np.ndarray, epsilon: float = EPSILON) -> np.ndarray:
    """PSI of each row of ``actual`` counts against ``expected`` counts over the same bins."""
    e = np.maximum(expected / expected.sum(), epsilon)  # an empty bin would make log infinite
    a = np.maximum(actual / actual.sum(axis=-1, keepdims=True), epsilon)
    return np.sum((a - e) * np.log(a / e), axis=-1)


def _js_counts(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (natural log) between the shares of two sets of counts."""
    p = expected / expected.sum()
    q = actual / actual.sum(axis=-1, keepdims=True)
    m = (p + q) / 2  # the mixture both are compared with; rel_entr takes 0 * log 0 as 0
    return np.sqrt((special.rel_entr(p, m).sum(axis=-1) + special.rel_entr(q, m).sum(axis=-1)) / 2)


def _chi2_counts(expected: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson's chi-square of each 2 x levels table (reference row, current row), and its p-value.

    Levels empty on both sides are left out; no continuity correction.
    """
    observed = np.stack(np.broadcast_arrays(expected.astype(float), actual.astype(float)), axis=-2)
    level_totals = observed.sum(axis=-2, keepdims=True)
    side_totals = observed.sum(axis=-1, keepdims=True)
    fitted = side_totals * level_totals / side_totals.sum(axis=-2, keepdims=True)  # counts if nothing changed
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(fitted > 0, (observed - fitted) ** 2 / fitted, 0.0)
    statistic = terms.sum(axis=(-2, -1))
    dof = (level_totals > 0).sum(axis=(-2, -1)) - 1
    p_value = np.where(dof > 0, stats.chi2.sf(statistic, np.maximum(dof, 1)), 1.0)
    return statistic, p_value


def _row_ranks(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted rows: how many values of the row are <= and < each value (ties counted)."""
    w = rows.shape[-1]
    position = np.arange(w)
    last = np.ones(rows.shape, dtype=bool)  # last of a run of equal values
    last[..., :-1] = rows[..., 1:] != rows[..., :-1]
    first = np.ones(rows.shape, dtype=bool)
    first[..., 1:] = last[..., :-1]
    at_or_below = np.minimum.accumulate(np.where(last, position, w)[..., ::-1], axis=-1)[..., ::-1] + 1
    below = np.maximum.accumulate(np.where(first, position, 0), axis=-1)
    return at_or_below, below


def _ks_rows(reference_sorted: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Two-sample KS statistic of each sorted row against the sorted reference.

    Both empirical CDFs are steps, so the largest gap is found at a value of the row, either
    just at it (``<=``) or just before it (``<``, where the reference values between two
    window values reach their highest).
    """
    n, w = reference_sorted.size, rows.shape[-1]
    ref_at = np.searchsorted(reference_sorted, rows, side="right") / n  # F_reference(x)
    ref_before = np.searchsorted(reference_sorted, rows, side="left") / n  # F_reference(x-)
    at, before = _row_ranks(rows)
    return np.maximum(np.abs(ref_at - at / w), np.abs(ref_before - before / w)).max(axis=-1)


def _merged_gap(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All values of both samples in order, and ``F_ref - F_cur`` just after each.

    Merging two sorted arrays is one stable argsort (linear for two sorted runs); the CDFs are
    running counts of where each merged value came from. Inside a run of equal values the
    counts are partial: KS reads the last value of each run only, Wasserstein weighs each
    gap by the distance to the next value (0 inside a run).
    """
    n, m = reference_sorted.size, current_sorted.size
    merged = np.concatenate([reference_sorted, current_sorted])
    order = np.argsort(merged, kind="stable")
    count = np.int32 if n + m < 2**31 else np.int64  # int32 running counts are several times faster
    from_reference = np.cumsum(order < n, dtype=count)  # reference values up to each merged position
    from_current = np.arange(1, n + m + 1, dtype=count) - from_reference
    return merged[order], from_reference / n - from_current / m


def _ks_p_value(statistic, n: int, m: int):
    """Smirnov's asymptotic p-value, exactly as ``scipy.stats.ks_2samp(..., method="asymp")``."""
    big, small = max(n, m), min(n, m)
    effective = np.round(big * small / (big + small))
    if effective < 1:  # one value on each side: no p-value (scipy's is NaN too)
        return np.full(np.shape(statistic), np.nan)[()]
    return stats.kstwo.sf(statistic, effective)


def _wasserstein_rows(reference_sorted: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Wasserstein-1 distance of each sorted row to the sorted reference, in data units.

    ``W = integral over u in [0, 1] of |Q_ref(u) - Q_row(u)|``, with Q the quantile functions.
    On ``[j/w, (j+1)/w)`` the row's quantile is its j-th value ``x``; the reference quantile is
    below ``x`` up to ``u = F_ref(x)`` and above it after, so each piece is two exact integrals
    of Q_ref, read off its running integral ``K`` (piecewise linear, so ``np.interp`` is exact).
    """
    n, w = reference_sorted.size, rows.shape[-1]
    u = np.arange(n + 1) / n
    integral = np.concatenate([[0.0], np.cumsum(reference_sorted) / n])  # K(i/n)

    def K(v):
        return np.interp(v, u, integral)

    lo, hi = np.arange(w) / w, np.arange(1, w + 1) / w
    cross = np.clip(np.searchsorted(reference_sorted, rows, side="right") / n, lo, hi)
    below = rows * (cross - lo) - (K(cross) - K(lo))  # Q_ref <= x on [lo, cross]
    above = (K(hi) - K(cross)) - rows * (hi - cross)  # Q_ref > x on [cross, hi]
    return np.sum(below + above, axis=-1)


def _scaled(distance, std: float):
    """A Wasserstein distance in reference standard deviations (a constant reference: 0 or inf)."""
    distance = np.asarray(distance, dtype=float)
    if np.isfinite(std) and std > 0:
        return distance / std
    return np.where(distance == 0, 0.0, np.inf)


def _binned_ks_counts(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Largest gap between the two CDFs read at the bin edges only (from counts)."""
    ref_cdf = np.cumsum(expected)[:-1] / expected.sum()
    cur_cdf = np.cumsum(actual, axis=-1)[..., :-1] / actual.sum(axis=-1, keepdims=True)
    if ref_cdf.size == 0:
        return np.zeros(actual.shape[:-1])
    return np.abs(ref_cdf - cur_cdf).max(axis=-1)


# --------------------------------------------------------------------------- inputs


def _family(values: pd.Series) -> str:
    """What a column holds: 'number', 'boolean', 'text', 'time', or 'empty' (nothing present)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "time"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    present = values.dropna()
    if present.empty:
        return "empty"
    inferred = pd.api.types.infer_dtype(present.iloc[:1000], skipna=True)
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "number"
    if inferred == "boolean":
        return "boolean"
    if inferred in ("datetime64", "datetime", "date", "timedelta64", "timedelta", "time", "period"):
        return "time"
    return "text"


def _numbers(values: pd.Series, what: str) -> np.ndarray:
    """A column as float64, NaN for missing; bools become 0/1."""
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    if values.isna().all():
        return np.full(len(values), np.nan)
    try:
        return values.astype("float64").to_numpy()
    except (TypeError, ValueError):
        raise DataError(
            f"{what} should hold numbers but holds {values.dtype} values (text?): convert it with "
            "pandas.to_numeric, or list the column under categorical=."
        ) from None


def _as_array(values: Any, what: str) -> pd.Series:
    series = values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(np.asarray(values))
    if series.ndim != 1:
        raise ParameterError(f"{what} must be one-dimensional values (a list, array or Series).")
    return series


def _statistic_name(name: Any, kind: str, column: str | None = None) -> str:
    allowed = NUMERIC_STATISTICS if kind == "numeric" else CATEGORICAL_STATISTICS
    if name not in STATISTICS:
        close = difflib.get_close_matches(str(name), STATISTICS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(f"Unknown statistic {name!r}{hint}; use one of {', '.join(map(repr, STATISTICS))}.")
    if name not in allowed:
        where = f"column {column!r} is {kind}" if column else f"the values are {kind}"
        raise ParameterError(
            f"{name!r} cannot compare {kind} columns ({where}); for {kind} columns use one of "
            f"{', '.join(map(repr, allowed))}."
        )
    return name


# --------------------------------------------------------------------------- one column, prepared


@dataclass
class _Reference:
    """One reference column, prepared once: sorted numbers or level codes, bins, counts."""

    name: str
    role: str  # feature, prediction or label
    kind: str  # numeric or categorical
    rows: int  # including missing
    missing: int
    counts: np.ndarray  # per bin (numeric) or per level (categorical)
    values: np.ndarray | None = None  # table: sorted finite numbers, or a level code per present row
    edges: np.ndarray | None = None  # numeric bins (-inf, e1], (e1, e2], ..., (ek, inf)
    levels: pd.Index | None = None  # table categorical: the reference's levels
    entry: dict | None = None  # fingerprint entry, when the reference is a fingerprint
    mean: float = float("nan")
    std: float = float("nan")
    family: str = "number"

    @property
    def present(self) -> int:
        return self.rows - self.missing

    @property
    def from_fingerprint(self) -> bool:
        return self.entry is not None


def _edges(sorted_values: np.ndarray, bins: int) -> np.ndarray:
    """Reference-quantile cut points, as :func:`mlkit.fingerprint.fingerprint` makes them.

    Each cut is an observed value: the i-th is the smallest with at least i/bins of the values at
    or below it (``np.quantile(values, i / bins, method="inverted_cdf")``), read straight from
    the sorted array at index ``ceil(n * i / bins) - 1`` computed in integers, so that 10 values
    in 10 bins give one value per bin (floating-point ``i / bins`` would skip some). Repeated cut
    points are merged.

    >>> _edges(np.arange(10.0), 10)
    array([0., 1., 2., 3., 4., 5., 6., 7., 8.])
    """
    n = sorted_values.size
    if n == 0:
        return np.empty(0)
    index = (n * np.arange(1, bins, dtype=np.int64) + bins - 1) // bins - 1
    return np.unique(sorted_values[np.clip(index, 0, n - 1)])


def _sorted_counts(sorted_values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Values in each bin (-inf, e1], (e1, e2], ..., (ek, inf) of a sorted array."""
    cum = np.searchsorted(sorted_values, edges, side="right")
    return np.diff(np.concatenate([[0], cum, [sorted_values.size]]))


def _table_reference(name: str, role: str, kind: str, series: pd.Series, bins: int) -> _Reference:
    if kind == "numeric":
        x = _numbers(series, f"Reference column {name!r}")
        finite = np.sort(x[np.isfinite(x)])
        edges = _edges(finite, bins)
        return _Reference(
            name, role, kind, len(x), len(x) - finite.size, _sorted_counts(finite, edges), values=finite,
            edges=edges, mean=float(finite.mean()) if finite.size else float("nan"),
            std=float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
        )  # fmt: skip
    series = _plain_levels(series)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    present = codes[codes >= 0]
    levels = pd.Index(uniques)
    return _Reference(
        name, role, kind, len(codes), int((codes < 0).sum()), np.bincount(present, minlength=len(levels)),
        values=present, levels=levels, family=_family(series),
    )  # fmt: skip


def _plain_levels(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.astype(series.dtype.categories.dtype)
    return series


def _fingerprint_reference(name: str, role: str, kind: str, entry: dict) -> _Reference:
    missing = int(entry["missing"])
    if kind == "numeric":
        counts = np.asarray(entry["counts"], dtype=np.int64)
        mean, std = entry.get("mean"), entry.get("std")
        return _Reference(
            name, role, kind, int(counts.sum()) + missing, missing, counts,
            edges=np.asarray(entry["edges"], dtype=float), entry=entry,
            mean=float("nan") if mean is None else float(mean), std=float("nan") if std is None else float(std),
        )  # fmt: skip
    frequencies = entry["frequencies"]
    counts = np.array([int(frequencies[level]) for level in sorted(frequencies)] + [int(entry["other"])])
    return _Reference(name, role, kind, int(counts.sum()) + missing, missing, counts, entry=entry)


@dataclass
class _Current:
    """One current column, counted in the reference's bins (and sorted, for KS/Wasserstein)."""

    rows: int
    missing: int
    counts: np.ndarray  # aligned with the reference counts (categorical: unseen levels appended)
    ref_counts: np.ndarray  # the reference counts, padded with zeros for unseen levels
    sorted_values: np.ndarray | None = None
    mean: float = float("nan")
    unseen: int = 0


def _current(ref: _Reference, series: pd.Series) -> _Current:
    rows = len(series)
    if ref.kind == "numeric":
        x = _numbers(series, f"Current column {ref.name!r}")
        finite = x[np.isfinite(x)]
        if ref.from_fingerprint:
            counts = np.bincount(np.searchsorted(ref.edges, finite, side="left"), minlength=ref.edges.size + 1)
            mean = float(finite.mean()) if finite.size else float("nan")
            return _Current(rows, rows - finite.size, counts, ref.counts, mean=mean)
        finite = np.sort(finite)
        return _Current(rows, rows - finite.size, _sorted_counts(finite, ref.edges), ref.counts, sorted_values=finite)
    if ref.from_fingerprint:
        counts = np.asarray(fpm.bin_counts(ref.entry, series), dtype=np.int64)
        present = int(counts.sum())
        return _Current(rows, rows - present, counts, ref.counts, unseen=int(counts[-1]))
    codes, uniques = pd.factorize(_plain_levels(series), use_na_sentinel=True)  # -1: missing
    k = len(ref.levels)
    to_reference = ref.levels.get_indexer(uniques)  # the reference code of each current level, -1 if new
    new = to_reference < 0
    to_reference[new] = k + np.arange(new.sum())  # a level the reference never had gets a bin of its own
    counts = np.bincount(to_reference[codes[codes >= 0]], minlength=k)
    ref_counts = np.concatenate([ref.counts, np.zeros(counts.size - k, dtype=ref.counts.dtype)])
    return _Current(rows, int((codes < 0).sum()), counts, ref_counts, unseen=int(counts[k:].sum()))


def _compare(ref: _Reference, cur: _Current, statistic: str) -> tuple[float, float, str]:
    """(value, p-value or NaN, note) of one statistic between a reference and a current column."""
    nan = float("nan")
    if ref.present == 0:
        return nan, nan, "no reference values: nothing to compare with"
    if cur.counts.sum() == 0:
        return nan, nan, "no current values: see missing_share_change"
    note = "reference is constant" if ref.kind == "numeric" and ref.edges.size == 1 and ref.std == 0 else ""
    expected, actual = cur.ref_counts, cur.counts
    if statistic == "psi":
        return float(_psi_counts(expected, actual)), nan, note
    if statistic == "jensenshannon":
        return float(_js_counts(expected, actual)), nan, note
    if statistic == "chi2":
        value, p = _chi2_counts(expected, actual)
        return float(value), float(p), note
    m = int(actual.sum())
    if statistic == "ks":
        if ref.from_fingerprint:
            value = float(_binned_ks_counts(expected, actual))
            note = _join(note, "approximated from the fingerprint's bins")
        else:
            merged, gap = _merged_gap(ref.values, cur.sorted_values)
            last_of_run = np.append(merged[1:] != merged[:-1], True)
            value = float(np.abs(gap[last_of_run]).max())
        return value, float(_ks_p_value(value, ref.present, m)), note
    # wasserstein
    if ref.from_fingerprint:
        value = float(_scaled(_binned_wasserstein(ref, cur), ref.std))
        return value, nan, _join(note, "approximated from the fingerprint's bins and mean")
    merged, gap = _merged_gap(ref.values, cur.sorted_values)
    distance = np.sum(np.abs(gap[:-1]) * np.diff(merged))  # area between the CDFs
    return float(_scaled(distance, ref.std)), nan, note


def _binned_wasserstein(ref: _Reference, cur: _Current) -> float:
    """W from a fingerprint: the larger of the mean gap and the area between the CDFs as steps at the edges."""
    ref_cdf = np.cumsum(ref.counts)[:-1] / ref.counts.sum()
    cur_cdf = np.cumsum(cur.counts)[:-1] / cur.counts.sum()
    inner = float(np.sum(np.abs(ref_cdf - cur_cdf)[:-1] * np.diff(ref.edges))) if ref.edges.size > 1 else 0.0
    return max(abs(cur.mean - ref.mean), inner)


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


# =========================================================================== public statistics


def _pair(reference, current, kind: str | None, bins: int, what: str) -> tuple[_Reference, _Current]:
    """Prepare two one-dimensional samples, as one column of a drift report."""
    ref_s, cur_s = _as_array(reference, "reference"), _as_array(current, "current")
    if kind is None:
        kind = "numeric" if _family(ref_s) in ("number", "empty") else "categorical"
    if kind not in ("numeric", "categorical"):
        raise ParameterError(f"kind must be 'numeric' or 'categorical', not {kind!r}.")
    _check_bins(bins)
    ref = _table_reference(what, "feature", kind, ref_s, bins)
    cur = _current(ref, cur_s)
    if ref.present == 0 or cur.counts.sum() == 0:
        raise DataError("Both samples need at least one non-missing value: drop the missing ones first.")
    return ref, cur


def psi(reference, current, *, bins: int = 10, kind: str | None = None, epsilon: float = EPSILON) -> float:
    """Population stability index of ``current`` against ``reference``.

    ``PSI = sum over bins of (a - e) * ln(a / e)``, where ``e`` and ``a`` are the shares of
    the reference and the current values in each bin. Numeric values are cut at the
    reference's quantiles (``bins`` of them: deciles by default; repeated cut points are
    merged), categorical ones binned by level (a level the reference never had gets its own
    bin). An empty bin would make the logarithm infinite, so every share is first raised to
    at least ``epsilon``. Below 0.1 is usually read as stable, above 0.2 or 0.25 as a shift.

    Parameters
    ----------
    reference, current : array-like
        The two samples; missing values (NaN, None) are left out.
    bins : int, default 10
        Numeric bins (reference quantiles).
    kind : {"numeric", "categorical"}, optional
        How to compare; by default numbers are numeric and anything else categorical.
    epsilon : float, default 1e-4
        Smallest share a bin may have.

    Returns
    -------
    float

    Examples
    --------
    >>> round(psi(["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20), 6)  # 0.3*ln(0.8/0.5) - 0.3*ln(0.2/0.5)
    0.415888
    >>> psi(np.arange(100), np.arange(100))
    0.0
    """
    if not 0 < epsilon < 1:
        raise ParameterError(f"epsilon must lie between 0 and 1 (e.g. 1e-4), not {epsilon!r}.")
    _, cur = _pair(reference, current, kind, bins, "reference")
    return float(_psi_counts(cur.ref_counts, cur.counts, epsilon))


def ks(reference, current) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test: the largest gap between the two empirical CDFs.

    Both samples are sorted once; ``np.searchsorted`` reads the reference CDF at every
    current value (``F_ref(x)`` and just before it), the current CDF is each value's rank.
    The p-value is Smirnov's asymptotic one, ``scipy.stats.kstwo.sf(D, round(n*m/(n+m)))``,
    the same as ``scipy.stats.ks_2samp(reference, current, method="asymp")`` (for fewer than
    10,000 values scipy's default uses the exact distribution, whose p-value differs a little).

    Returns
    -------
    (statistic, p_value) : tuple of float

    Examples
    --------
    >>> statistic, p = ks(np.arange(100), np.arange(100) + 30)  # 30 of 100 values beyond the reference
    >>> round(statistic, 2), round(p, 6)
    (0.3, 0.000174)
    """
    ref, cur = _pair(reference, current, "numeric", 10, "reference")
    value, p, _ = _compare(ref, cur, "ks")
    return value, p


def wasserstein(reference, current) -> float:
    """Wasserstein-1 distance (earth mover's) between the samples, in reference standard deviations.

    The area between the two CDFs, ``scipy.stats.wasserstein_distance(reference, current)``,
    divided by the reference's standard deviation (``ddof=1``) so that 0.1 means "a tenth of
    a standard deviation" whatever the column's unit. A constant reference gives 0 for an
    identical current sample and ``inf`` for any other.

    Examples
    --------
    >>> round(wasserstein([0, 1, 2, 3, 4], [1, 2, 3, 4, 5]), 4)  # moved by 1, std 1.58
    0.6325
    """
    ref, cur = _pair(reference, current, "numeric", 10, "reference")
    return _compare(ref, cur, "wasserstein")[0]


def jensen_shannon(reference, current, *, bins: int = 10, kind: str | None = None) -> float:
    """Jensen-Shannon distance between the shares of the two samples (natural logarithm).

    Categorical samples are binned by level; numeric ones in the reference's quantile bins
    (as :func:`psi`). Equals ``scipy.spatial.distance.jensenshannon(p, q)`` of the two sets
    of shares: 0 for the same shares, at most ``sqrt(ln 2) = 0.83`` for disjoint ones.

    Examples
    --------
    >>> jensen_shannon(["a", "a", "b", "b"], ["a", "a", "b", "b"])
    0.0
    >>> round(jensen_shannon(["a", "a"], ["b", "b"]), 4)
    0.8326
    """
    _, cur = _pair(reference, current, kind, bins, "reference")
    return float(_js_counts(cur.ref_counts, cur.counts))


def chi_square(reference, current) -> tuple[float, float]:
    """Pearson's chi-square test that two categorical samples share the same level frequencies.

    The 2 x levels table of counts is compared with the counts expected if both samples had
    the same shares: ``sum((observed - expected)**2 / expected)``, with ``levels - 1``
    degrees of freedom. Equals ``scipy.stats.chi2_contingency(table, correction=False)``
    (no Yates correction) on the levels present in either sample.

    Returns
    -------
    (statistic, p_value) : tuple of float

    Examples
    --------
    >>> statistic, p = chi_square(["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20)
    >>> round(statistic, 2), round(p, 6)
    (19.78, 9e-06)
    """
    _, cur = _pair(reference, current, "categorical", 10, "reference")
    value, p = _chi2_counts(cur.ref_counts, cur.counts)
    return float(value), float(p)


def adjust_p_values(p_values, method: str | None) -> np.ndarray:
    """Correct p-values for testing many columns at once.

    With 20 columns and no drift, a 5 % test flags at least one column 64 % of the time.

    * ``"bonferroni"``: ``min(1, p * k)`` for ``k`` tests; keeps the chance of any false
      alarm below the threshold.
    * ``"bh"`` (Benjamini-Hochberg): sort the p-values, multiply the i-th smallest by
      ``k / i``, then make them non-decreasing from the largest down; keeps the expected
      share of false alarms among the flagged columns below the threshold. Equals
      ``scipy.stats.false_discovery_control(p, method="bh")``.
    * ``None``: unchanged.

    NaN p-values (a column that could not be tested) stay NaN and do not count in ``k``.

    Examples
    --------
    >>> adjust_p_values([0.01, 0.04, 0.03, 0.20], "bonferroni").round(2).tolist()
    [0.04, 0.16, 0.12, 0.8]
    >>> adjust_p_values([0.01, 0.04, 0.03, 0.20], "bh").round(3).tolist()
    [0.04, 0.053, 0.053, 0.2]
    """
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ParameterError("p_values must be one-dimensional.")
    if np.any((p < 0) | (p > 1)):
        raise ParameterError("p-values must lie between 0 and 1.")
    if method is None:
        return p.copy()
    if method not in CORRECTIONS:
        raise ParameterError(f"Unknown correction {method!r}; use None, 'bonferroni' or 'bh' (Benjamini-Hochberg).")
    out = p.copy()
    tested = ~np.isnan(p)
    k = int(tested.sum())
    if k == 0:
        return out
    q = p[tested]
    if method == "bonferroni":
        out[tested] = np.minimum(q * k, 1.0)
        return out
    order = np.argsort(q, kind="stable")
    scaled = q[order] * k / np.arange(1, k + 1)  # the i-th smallest times k / i
    scaled = np.minimum.accumulate(scaled[::-1])[::-1]  # non-decreasing, from the largest down
    adjusted = np.empty(k)
    adjusted[order] = np.minimum(scaled, 1.0)
    out[tested] = adjusted
    return out


# =========================================================================== drift report


@dataclass(frozen=True)
class DriftReport:
    """What :func:`drift_report` found.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per compared column: ``column``, ``role`` (feature, prediction, label),
        ``kind`` (numeric, categorical), ``statistic``, ``value``, ``p_value`` (NaN for
        statistics without one), ``p_value_adjusted`` (after ``correction``), ``threshold``,
        ``threshold_on`` ("value": drift if value > threshold; "p_value": drift if the
        adjusted p-value < threshold), ``drifted``, ``reference_missing_share``,
        ``current_missing_share``, ``missing_share_change`` (current - reference),
        ``unseen_share`` (categorical: share of current values at levels the reference does
        not list), ``reference_count`` and ``current_count`` (non-missing values compared),
        and ``note`` (why a value is NaN, or what was approximated).
    drift_share : float
        Share of the feature columns that drifted.
    drift_share_threshold : float
        Dataset drift when ``drift_share`` reaches it.
    dataset_drift : bool
    correction : str or None
    reference_source : str
        ``"table"`` or ``"fingerprint"``.
    reference_rows, current_rows : int
    """

    table: pd.DataFrame
    drift_share: float
    drift_share_threshold: float
    dataset_drift: bool
    correction: str | None
    reference_source: str
    reference_rows: int
    current_rows: int

    def ratios(self) -> np.ndarray:
        """Each row's distance to its threshold, 1 on it and above 1 when drifted.

        ``value / threshold`` where the decision is on the value, ``threshold / p`` where it
        is on the (adjusted) p-value; NaN where there is no value, inf for a p-value of 0.

        >>> reference = pd.DataFrame({"x": np.arange(200.0)})
        >>> drift_report(reference, reference.assign(x=reference["x"] + 50), thresholds=0.5).ratios().round(2)
        array([3.46])
        """
        table = self.table
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(table["threshold_on"] == "p_value", table["threshold"] / table["p_value_adjusted"],
                            table["value"] / table["threshold"]).astype(float)  # fmt: skip

    def _role(self, role: str) -> pd.DataFrame:
        return self.table[self.table["role"] == role].reset_index(drop=True)

    @property
    def features(self) -> pd.DataFrame:
        """The feature rows of :attr:`table`."""
        return self._role("feature")

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted feature columns, in table order."""
        features = self.features
        return features.loc[features["drifted"], "column"].tolist()

    @property
    def prediction_drift(self) -> bool | None:
        """Whether the prediction column drifted (None when none was compared)."""
        rows = self._role("prediction")
        return None if rows.empty else bool(rows["drifted"].iloc[0])

    @property
    def label_drift(self) -> bool | None:
        """Whether the label column drifted (None when none was compared)."""
        rows = self._role("label")
        return None if rows.empty else bool(rows["drifted"].iloc[0])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (non-finite numbers become None), e.g. for ``mlkit drift --json``."""

        return {
            "dataset_drift": bool(self.dataset_drift),
            "drift_share": float(self.drift_share),
            "drift_share_threshold": float(self.drift_share_threshold),
            "drifted_columns": self.drifted_columns,
            "prediction_drift": self.prediction_drift,
            "label_drift": self.label_drift,
            "correction": self.correction,
            "reference_source": self.reference_source,
            "reference_rows": int(self.reference_rows),
            "current_rows": int(self.current_rows),
            "columns": json_records(self.table),
        }


def json_value(value: Any) -> Any:
    """One table cell as plain JSON data: numpy numbers as Python ones, NaN, inf and NaT as None, times as ISO text."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return pd.Timestamp(value).isoformat()
    return value


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as a list of plain-JSON row dicts (see :func:`json_value`)."""
    return [{str(k): json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _check_frame(frame: Any, name: str, min_rows: int) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ParameterError(f"{name} must be a pandas DataFrame, not {type(frame).__name__}.")
    if len(frame) == 0:
        raise DataError(f"{name} has no rows: drift needs rows to compare (is the window empty?).")
    if len(frame) < min_rows:
        raise DataError(
            f"{name} has {len(frame)} rows, fewer than min_rows={min_rows}: use a longer window (a small "
            "window can only see large shifts, see smallest_detectable_shift), or lower min_rows."
        )


def _check_bins(bins: Any) -> None:
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ParameterError(f"bins must be a whole number of at least 2 (10 = deciles), not {bins!r}.")


def _names(value: Any, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple, pd.Index)):
        raise ParameterError(f"{what}= must be a list of column names, not {value!r}.")
    names = list(value)
    if len(set(names)) != len(names):
        raise ParameterError(f"{what}= lists a column twice.")
    return names


def _missing_columns(frame_columns, wanted: list[str], frame: str, fix: str) -> None:
    have = [str(c) for c in frame_columns]
    absent = [c for c in wanted if c not in set(frame_columns)]
    if absent:
        described = []
        for col in absent:
            close = difflib.get_close_matches(str(col), have, n=1)
            described.append(f"{col!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise DataError(f"{frame} has no column {', '.join(described)}: {fix}")


def _is_fingerprint(reference: Any) -> bool:
    return isinstance(reference, dict)


@dataclass(frozen=True)
class _Spec:
    """A column to compare, before any work: its name, role and kind, and where its reference is."""

    name: str
    role: str
    kind: str
    series: pd.Series | None = None  # the reference column (table)
    entry: dict | None = None  # its fingerprint entry
    family: str = "empty"  # what the reference column holds (table), for the type check

    def build(self, bins: int) -> _Reference:
        if self.entry is not None:
            return _fingerprint_reference(self.name, self.role, self.kind, self.entry)
        return _table_reference(self.name, self.role, self.kind, self.series, bins)


def _plan(
    reference: Any,
    *,
    columns: Any,
    numeric: Any,
    categorical: Any,
    prediction: str | None,
    target: str | None,
    bins: int,
    min_rows: int,
) -> list[_Spec]:
    """Check the arguments and list the compared columns (features, then prediction, then label)."""
    _check_bins(bins)
    chosen, numeric = _names(columns, "columns"), _names(numeric, "numeric")
    categorical = _names(categorical, "categorical")
    for name, value in (("prediction", prediction), ("target", target)):
        if value is not None and not isinstance(value, str):
            raise ParameterError(f"{name}= must be one column name, not {value!r}.")
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise ParameterError(f"Columns {both} are listed as both numeric and categorical: pick one role for each.")
    if _is_fingerprint(reference):
        return _plan_fingerprint(reference, chosen, numeric, categorical, prediction, target)
    _check_frame(reference, "The reference", min_rows)
    special_columns = [c for c in (prediction, target) if c is not None]
    features = chosen or [c for c in reference.columns if c not in special_columns]
    _missing_columns(
        reference.columns, [*features, *special_columns, *numeric, *categorical], "The reference",
        "pass column names that the reference table has (columns=, numeric=, categorical=, prediction=, target=).",
    )  # fmt: skip
    plan = []
    for name, role in [*((c, "feature") for c in features), (prediction, "prediction"), (target, "label")]:
        if name is None:
            continue
        series = reference[name]
        family = _family(series)
        if family == "time":
            raise DataError(
                f"Column {name!r} holds dates or times: their drift is the passing of time, not a change "
                "in the data. Leave it out with columns=[...]."
            )
        kind = "numeric" if name in numeric else "categorical" if name in categorical else None
        kind = kind or ("numeric" if family in ("number", "empty") else "categorical")
        plan.append(_Spec(name, role, kind, series=series, family=family))
    return plan


def _plan_fingerprint(fp, chosen, numeric, categorical, prediction, target) -> list[_Spec]:
    fp = fpm._check_fingerprint(fp, "The reference fingerprint")
    if numeric or categorical:
        raise ParameterError("A fingerprint fixes each column's role: leave numeric= and categorical= out.")
    if target is not None:
        raise ParameterError(
            "A fingerprint keeps no labels, so label drift needs the reference table: pass the training rows "
            "(with their labels) as reference, or leave target= out."
        )
    roles = {**{c: "numeric" for c in fp["numeric"]}, **{c: "categorical" for c in fp["categorical"]}}
    features = chosen or list(roles)
    _missing_columns(
        list(roles), features, "The reference fingerprint",
        "list only the columns the model was fingerprinted on in columns=.",
    )  # fmt: skip
    plan = [_Spec(c, "feature", roles[c], entry=fp[roles[c]][c]) for c in features]
    if prediction is not None:
        if fp["scores"] is None:
            raise ParameterError(
                "This fingerprint kept no scores: leave prediction= out, or re-fingerprint with scores."
            )
        kind = "categorical" if fp["scores"]["kind"] == "class" else "numeric"
        plan.append(_Spec(prediction, "prediction", kind, entry=fp["scores"]))
    return plan


def _check_current_column(spec: _Spec, series: pd.Series) -> None:
    family = _family(series)
    if family == "empty":
        return
    if spec.kind == "numeric" and family in ("text", "time"):
        raise DataError(
            f"Column {spec.name!r} is numeric in the reference but holds {series.dtype} values in current "
            "(mismatched types): convert it with pandas.to_numeric, or check that the files have the same columns."
        )
    if spec.kind == "categorical" and spec.entry is None and spec.family not in ("empty", family):
        raise DataError(
            f"Column {spec.name!r} holds {spec.family} levels in the reference but {family} levels in current "
            "(mismatched types), so no level could match: convert one side (e.g. .astype(str)) so both agree."
        )


def _choose_statistics(numeric_statistic, categorical_statistic, calibration) -> dict[str, str]:
    chosen = {}
    for kind, given in (("numeric", numeric_statistic), ("categorical", categorical_statistic)):
        calibrated = calibration.statistics.get(kind) if calibration is not None else None
        if given is not None and calibrated is not None and given != calibrated:
            raise ParameterError(
                f"The thresholds were calibrated for {calibrated!r} on {kind} columns, not {given!r}: "
                f"pass {kind}_statistic={calibrated!r}, or recalibrate with {kind}_statistic={given!r}."
            )
        chosen[kind] = _statistic_name(given or calibrated or "psi", kind)
    return chosen


def _threshold(ref: _Reference, statistic: str, thresholds: Any, calibration) -> tuple[float, str]:
    if calibration is not None:
        if ref.name not in calibration.thresholds:
            raise ParameterError(
                f"The calibration has no threshold for column {ref.name!r}: calibrate it too "
                "(calibrate_thresholds(..., columns=[...]) or prediction=/target=)."
            )
        return calibration.thresholds[ref.name], "value"
    on = "p_value" if statistic in P_VALUE_STATISTICS else "value"
    value = thresholds.get(ref.name, DEFAULT_THRESHOLDS[statistic]) if isinstance(thresholds, Mapping) else thresholds
    value = DEFAULT_THRESHOLDS[statistic] if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ParameterError(f"The threshold of column {ref.name!r} must be a positive number, not {value!r}.")
    if on == "p_value" and not value < 1:
        raise ParameterError(
            f"{statistic!r} decides on a p-value, so the threshold of {ref.name!r} must lie between 0 and 1 "
            f"(0.05 is usual), not {value!r}."
        )
    return float(value), on


def drift_report(
    reference: pd.DataFrame | dict,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    prediction: str | None = None,
    target: str | None = None,
    numeric_statistic: str | None = None,
    categorical_statistic: str | None = None,
    thresholds: float | Mapping[str, float] | Calibration | None = None,
    correction: str | None = None,
    drift_share: float = 0.5,
    bins: int = 10,
    min_rows: int = MIN_ROWS,
    threads: int | None = None,
) -> DriftReport:
    """Compare every column of ``current`` with the reference, and decide dataset drift.

    Parameters
    ----------
    reference : pandas.DataFrame or dict
        The reference rows (usually the training rows), or the reference fingerprint packaged
        with the model (:func:`mlkit.fingerprint.load`). From a fingerprint the current values
        are counted in the fingerprint's bins, and psi, jensenshannon and chi2 come out as from
        the table it summarises. Two statistics are approximated: **ks** reads both CDFs at
        the bin edges only (exact there: it never exceeds the full statistic and equals it
        when a column has no more distinct values than bins, but a gap that lies between two
        edges is missed, so its p-value is conservative); **wasserstein** is the larger of
        the gap between the two means (never above the full distance, equal to it for a pure
        location shift) and the area between the two CDFs taken as steps at the edges, from
        the first edge to the last (exact there when the values lie on the edges; the tails
        in the two outer bins are left out). Categorical levels the fingerprint lumped into
        ``other`` (rare or new) share one bin; a fingerprint keeps no labels.
    current : pandas.DataFrame
        The production window, with the reference's columns (extra columns are ignored).
    columns : list of str, optional
        Feature columns to compare; default every reference column (or fingerprinted
        feature) but ``prediction`` and ``target``.
    numeric, categorical : list of str, optional
        Roles for table columns; others follow their dtype (numbers are numeric; text,
        categories and bools are categorical).
    prediction, target : str, optional
        A column of model outputs / of true labels, present in both (with a fingerprint:
        ``prediction`` names the current column compared with the fingerprint's scores).
        Compared like the features and reported apart: prediction drift, label drift.
    numeric_statistic, categorical_statistic : str, optional
        See :data:`NUMERIC_STATISTICS` and :data:`CATEGORICAL_STATISTICS`; default ``"psi"``
        for both, or the calibration's statistics.
    thresholds : float, dict or Calibration, optional
        Default :data:`DEFAULT_THRESHOLDS`, on the p-value for ``ks``/``chi2`` and on the
        value otherwise; a number for every column or a dict by column (in the same units);
        or a :class:`Calibration` from :func:`calibrate_thresholds`, whose thresholds are on
        the value of every statistic (tests too) and fit windows of its size.
    correction : {None, "bonferroni", "bh"}
        Multiple-testing correction of the p-values of every compared column (see
        :func:`adjust_p_values`); it changes decisions made on p-values only.
    drift_share : float, default 0.5
        Dataset drift when at least this share of the feature columns drifted.
    bins : int, default 10
        Reference-quantile bins of numeric columns for psi and jensenshannon (with a
        fingerprint, its own bins).
    min_rows : int, default 10
        Fewest rows of each table.
    threads : int, optional
        Columns compared at the same time; default one per core, at most 4. The result
        does not depend on it.

    Returns
    -------
    DriftReport

    Raises
    ------
    ParameterError
        Unknown statistic or correction, a statistic that does not fit a column's kind, bad
        thresholds, or a calibration for another window size or statistic.
    DataError
        Empty or too short windows, missing columns, date columns, or a column whose types
        differ between reference and current.

    Notes
    -----
    Missing values (NaN, None; and +-inf in numeric columns) are left out of every statistic:
    a change in how often a value is missing shows in ``missing_share_change``. A column
    with no value on one side gets NaN and is not counted as drifted. A numeric column is
    sorted once; KS and Wasserstein then need one merge of two sorted arrays and cumulative sums,
    PSI and Jensen-Shannon bin counts, and categorical columns pandas codes and
    ``np.bincount``, so a million rows take a fraction of a second per column.
    """
    calibration = thresholds if isinstance(thresholds, Calibration) else None
    if not (thresholds is None or calibration is not None or isinstance(thresholds, Mapping)):
        _threshold_number_check(thresholds)
    if isinstance(min_rows, bool) or not isinstance(min_rows, (int, np.integer)) or min_rows < 1:
        raise ParameterError(f"min_rows must be a whole number of at least 1, not {min_rows!r}.")
    if isinstance(drift_share, bool) or not isinstance(drift_share, (int, float)) or not 0 < drift_share <= 1:
        raise ParameterError(f"drift_share must lie in (0, 1] (0.5: half the columns), not {drift_share!r}.")
    if correction is not None and correction not in CORRECTIONS:
        raise ParameterError(f"Unknown correction {correction!r}; use None, 'bonferroni' or 'bh' (Benjamini-Hochberg).")
    chosen = _choose_statistics(numeric_statistic, categorical_statistic, calibration)
    _check_frame(current, "The current window", min_rows)
    plan = _plan(
        reference, columns=columns, numeric=numeric, categorical=categorical, prediction=prediction,
        target=target, bins=bins, min_rows=min_rows,
    )  # fmt: skip
    if calibration is not None:
        calibration._check_window(len(current))
    _missing_columns(
        current.columns, [ref.name for ref in plan], "The current window",
        "it must have the reference's columns (rename or add them, or choose columns= to compare fewer).",
    )  # fmt: skip
    for spec in plan:
        _check_current_column(spec, current[spec.name])
    limits = [_threshold(spec, chosen[spec.kind], thresholds, calibration) for spec in plan]

    def compare(spec: _Spec) -> tuple[_Reference, _Current, tuple[float, float, str]]:
        ref = spec.build(bins)  # sorts the reference column once
        cur = _current(ref, current[spec.name])
        return ref, cur, _compare(ref, cur, chosen[spec.kind])

    workers = _workers(threads, len(plan))
    if workers > 1:  # numpy's sorts and searches release the GIL, so columns run side by side
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(compare, plan))
    else:
        results = [compare(spec) for spec in plan]
    rows = [
        _row(ref, cur, chosen[ref.kind], value, p_value, threshold, on, note)
        for (ref, cur, (value, p_value, note)), (threshold, on) in zip(results, limits)
    ]
    table = pd.DataFrame(rows, columns=[c for c in _COLUMNS if c != "p_value_adjusted"])
    table.insert(6, "p_value_adjusted", adjust_p_values(table["p_value"].to_numpy(dtype=float), correction))
    decided = np.where(table["threshold_on"] == "p_value", table["p_value_adjusted"], table["value"])
    with np.errstate(invalid="ignore"):
        drifted = np.where(
            table["threshold_on"] == "p_value", decided < table["threshold"], decided > table["threshold"]
        )
    table["drifted"] = drifted & ~np.isnan(decided.astype(float))
    features = table[table["role"] == "feature"]
    share = float(features["drifted"].mean()) if len(features) else 0.0
    return DriftReport(
        table=table,
        drift_share=share,
        drift_share_threshold=float(drift_share),
        dataset_drift=bool(len(features) and share >= drift_share),
        correction=correction,
        reference_source="fingerprint" if _is_fingerprint(reference) else "table",
        reference_rows=int(reference["rows"]) if _is_fingerprint(reference) else len(reference),
        current_rows=len(current),
    )


def _workers(threads: Any, columns: int) -> int:
    if threads is None:
        threads = min(os.cpu_count() or 1, 4)
    elif isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ParameterError(f"threads must be a whole number of at least 1 (or None: one per core), not {threads!r}.")
    return max(1, min(int(threads), columns))


def _threshold_number_check(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not value > 0:
        raise ParameterError(
            f"thresholds must be a positive number, a dict of them by column, or a Calibration, not {value!r}."
        )


def _row(ref, cur, statistic, value, p_value, threshold, on, note) -> dict[str, Any]:
    ref_missing = ref.missing / ref.rows if ref.rows else float("nan")
    cur_missing = cur.missing / cur.rows if cur.rows else float("nan")
    present = int(cur.counts.sum())
    unseen = cur.unseen / present if ref.kind == "categorical" and present else float("nan")
    return {
        "column": ref.name, "role": ref.role, "kind": ref.kind, "statistic": statistic, "value": value,
        "p_value": p_value, "threshold": threshold, "threshold_on": on, "drifted": False,
        "reference_missing_share": ref_missing, "current_missing_share": cur_missing,
        "missing_share_change": cur_missing - ref_missing, "unseen_share": unseen,
        "reference_count": ref.present, "current_count": present, "note": note,
    }  # fmt: skip


# =========================================================================== calibration


def _column_rng(seed: int, name: str) -> np.random.Generator:
    """A generator per column, so a column's threshold does not depend on which others are calibrated."""
    return np.random.default_rng([int(seed), zlib.crc32(str(name).encode())])


def _noise_factor(statistic: str, window: int, reference: int) -> float:
    """Widen a bootstrap threshold for the reference's own sampling noise.

    A window drawn *from* the reference differs from it by the window's noise only; a new
    window also differs by the reference's noise. For large samples these statistics' null
    spread grows with ``1/window + 1/reference``: PSI and chi-square in proportion to it, KS,
    Wasserstein and Jensen-Shannon distance with its square root.
    """
    ratio = 1 + window / reference
    return ratio if statistic in ("psi", "chi2") else math.sqrt(ratio)


def _row_counts(codes: np.ndarray, k: int) -> np.ndarray:
    """Counts of codes 0..k-1 in each row: one bincount, each row shifted into its own range."""
    b = codes.shape[0]
    offsets = (np.arange(b) * k)[:, None]
    return np.bincount((codes + offsets).ravel(), minlength=b * k).reshape(b, k)


class _Windows:
    """Bootstrap windows: drawn once, then compared with the reference at any shift.

    Each of ``n_boot`` windows holds ``window`` values drawn with replacement from
    ``source`` (the reference itself, or other rows for a fresh-sample study), all at once
    as index arrays, a chunk of windows at a time. The draws are kept when they are small
    enough (else drawn again, identically, from a saved generator state), so every shift is
    measured on the same windows and the detection rate grows smoothly with the shift.
    From a fingerprint, a window is its counts per bin (multinomial).
    """

    def __init__(self, ref: _Reference, window: int, n_boot: int, rng: np.random.Generator, source=None):
        self.ref, self.window, self.n_boot = ref, window, n_boot
        self.source = source if source is not None else ref
        self._state = rng.bit_generator.state
        self._kept = list(self._draw(rng)) if n_boot * window <= 10 * _CHUNK else None

    def _draw(self, rng: np.random.Generator):
        ref, source, w = self.ref, self.source, self.window
        chunk = max(1, _CHUNK // w)
        for start in range(0, self.n_boot, chunk):
            b = min(chunk, self.n_boot - start)
            if ref.from_fingerprint:
                yield rng.multinomial(w, ref.counts / ref.counts.sum(), size=b), None
            elif ref.kind == "numeric":  # sorted positions in the sorted values give sorted windows
                yield source.values[np.sort(rng.integers(0, source.present, size=(b, w)), axis=1)], None
            else:
                codes = source.values[rng.integers(0, source.present, size=(b, w))]
                if source is not ref:  # in the reference's codes; levels it lacks go to one extra bin
                    codes = ref.levels.get_indexer(source.levels[codes.ravel()]).reshape(b, w)
                    codes = np.where(codes < 0, ref.counts.size, codes)
                yield codes, rng.random((b, w))  # which rows a categorical shift moves

    def _chunks(self):
        if self._kept is not None:
            return iter(self._kept)
        rng = np.random.default_rng()
        rng.bit_generator.state = self._state
        return self._draw(rng)

    def statistics(self, statistic: str, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Each window's statistic and, for chi2, p-value (else NaN), with the windows shifted.

        Numeric windows move by ``shift`` reference standard deviations; categorical ones
        have a share ``shift`` of their rows moved to the reference's rarest level.
        """
        ref = self.ref
        values, p_values = np.empty(self.n_boot), np.full(self.n_boot, np.nan)
        start = 0
        for draws, extra in self._chunks():
            part = slice(start, start + len(draws))
            start += len(draws)
            expected = ref.counts
            if ref.from_fingerprint:
                counts = draws
            elif ref.kind == "numeric":
                rows = draws + shift * ref.std if shift else draws
                if statistic == "ks":
                    values[part] = _ks_rows(ref.values, rows)
                    continue
                if statistic == "wasserstein":
                    values[part] = _scaled(_wasserstein_rows(ref.values, rows), ref.std)
                    continue
                counts = _row_counts(np.searchsorted(ref.edges, rows, side="left"), ref.edges.size + 1)
            else:
                codes = np.where(extra < shift, int(np.argmin(ref.counts)), draws) if shift else draws
                expected = np.append(ref.counts, 0)  # an empty extra bin changes no statistic
                counts = _row_counts(codes, expected.size)
            if statistic == "psi":
                values[part] = _psi_counts(expected, counts)
            elif statistic == "jensenshannon":
                values[part] = _js_counts(expected, counts)
            elif statistic == "chi2":
                values[part], p_values[part] = _chi2_counts(expected, counts)
            else:  # ks from a fingerprint
                values[part] = _binned_ks_counts(expected, counts)
        return values, p_values


def _calibrated(
    windows: _Windows, statistic: str, false_alarm_rate: float, min_shift: float
) -> tuple[float, float, float]:
    """(threshold, widened null quantile, shift floor or NaN) from a set of bootstrap windows."""
    null_values = windows.statistics(statistic)[0]
    null = float(np.quantile(null_values, 1 - false_alarm_rate))
    null *= _noise_factor(statistic, windows.window, windows.ref.present)
    floor = float(np.median(windows.statistics(statistic, min_shift)[0])) if min_shift else float("nan")
    return (max(null, floor) if min_shift else null), null, floor


@dataclass(frozen=True)
class Calibration:
    """Per-column thresholds for windows of one size, from :func:`calibrate_thresholds`.

    Attributes
    ----------
    window : int
        The window size they fit; :func:`drift_report` accepts windows of half to twice it.
    false_alarm_rate : float
        Chance that an unchanged window crosses a threshold.
    min_shift : float
        Shift below which a change is not worth an alert (0: none set).
    table : pandas.DataFrame
        One row per column: ``column``, ``role``, ``kind``, ``statistic``, ``threshold``
        (on the statistic's value: drift if above), ``null_quantile`` (the bootstrap
        quantile, widened for the reference's own noise), ``shift_floor`` (the statistic's
        median at ``min_shift``, NaN if none), ``reference_count``, ``note``.
    """

    window: int
    false_alarm_rate: float
    min_shift: float
    table: pd.DataFrame

    @property
    def thresholds(self) -> dict[str, float]:
        """Threshold by column name."""
        return dict(zip(self.table["column"], self.table["threshold"].astype(float)))

    @property
    def statistics(self) -> dict[str, str]:
        """The statistic calibrated for each kind of column."""
        return dict(zip(self.table["kind"], self.table["statistic"]))

    def _check_window(self, rows: int) -> None:
        if not self.window / 2 <= rows <= self.window * 2:
            raise ParameterError(
                f"These thresholds were calibrated for windows of {self.window} rows, but the current window "
                f"has {rows}: recalibrate with calibrate_thresholds(reference, window={rows})."
            )


def _check_rate(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ParameterError(f"{name} must lie strictly between 0 and 1 (e.g. 0.01), not {value!r}.")
    return float(value)


def _window_sizes(window_sizes: Any) -> list[int]:
    if not isinstance(window_sizes, (list, tuple, np.ndarray, range)) or len(window_sizes) == 0:
        raise ParameterError(f"window_sizes must be a list of whole numbers, e.g. [50, 500], not {window_sizes!r}.")
    return [_check_count(w, "each window size", 2, "e.g. [50, 500, 5000]") for w in window_sizes]


def _check_count(value: Any, name: str, least: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ParameterError(f"{name} must be a whole number of at least {least} ({example}), not {value!r}.")
    return int(value)


def calibrate_thresholds(
    reference: pd.DataFrame | dict,
    window: int,
    *,
    columns: Sequence[str] | None = None,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    prediction: str | None = None,
    target: str | None = None,
    numeric_statistic: str = "psi",
    categorical_statistic: str = "psi",
    false_alarm_rate: float = 0.01,
    min_shift: float = 0.0,
    n_boot: int = 1000,
    bins: int = 10,
    seed: int = 0,
) -> Calibration:
    """Thresholds that an unchanged window of ``window`` rows crosses with chance ``false_alarm_rate``.

    For each column, ``n_boot`` windows of ``window`` values are drawn from the reference
    with replacement (all at once, as index arrays), each is compared with the reference,
    and the threshold is the ``1 - false_alarm_rate`` quantile of the statistic, widened for
    the reference's own sampling noise (a factor ``1 + window/reference`` for psi and chi2,
    its square root for the others; about 1 when the reference is much larger than the
    window). With a fingerprint, the windows are multinomial counts over its bins.

    A threshold that only controls false alarms shrinks as windows grow, until it flags
    shifts too small to matter. ``min_shift`` states the smallest change worth an alert:
    numeric windows moved by ``min_shift`` reference standard deviations, categorical
    windows with a share ``min_shift`` of their rows moved to the rarest level; the
    threshold is then at least the statistic's median at that shift (so such a shift is
    flagged about half the time, smaller ones less).

    Parameters
    ----------
    reference : pandas.DataFrame or dict
        The reference rows, or a fingerprint (not with ``wasserstein`` or ``min_shift``,
        which need the rows).
    window : int
        Rows of the production windows the thresholds are for.
    columns, numeric, categorical, prediction, target, bins
        As :func:`drift_report`.
    numeric_statistic, categorical_statistic : str, default "psi"
        The statistic to calibrate per kind; tests (``ks``, ``chi2``) are calibrated on
        their statistic, not their p-value.
    false_alarm_rate : float, default 0.01
        Per column. For the chance of any false alarm among k columns, divide it by k.
    min_shift : float, default 0
        The smallest shift worth an alert (see above).
    n_boot : int, default 1000
        Bootstrap windows per column; at least ``5 / false_alarm_rate``.
    seed : int, default 0

    Returns
    -------
    Calibration
        Pass it to :func:`drift_report` as ``thresholds=``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> reference = pd.DataFrame({"x": rng.normal(size=5000)})
    >>> small = calibrate_thresholds(reference, 50, false_alarm_rate=0.05, n_boot=200)
    >>> large = calibrate_thresholds(reference, 2000, false_alarm_rate=0.05, n_boot=200)
    >>> round(small.thresholds["x"], 2), round(large.thresholds["x"], 3)  # PSI: fixed 0.2 fits neither
    (0.78, 0.012)
    """
    window = _check_count(window, "window", 2, "the rows of one production window")
    false_alarm_rate = _check_rate(false_alarm_rate, "false_alarm_rate")
    n_boot = _check_count(n_boot, "n_boot", 1, "1000 is usual")
    if n_boot * false_alarm_rate < 5:
        raise ParameterError(
            f"n_boot={n_boot} windows cannot estimate a {false_alarm_rate:g} false-alarm rate: use at least "
            f"{math.ceil(5 / false_alarm_rate)} (5 / false_alarm_rate)."
        )
    if isinstance(min_shift, bool) or not isinstance(min_shift, (int, float)) or min_shift < 0:
        raise ParameterError(f"min_shift must be a number >= 0 (0: no minimum), not {min_shift!r}.")
    chosen = {"numeric": _statistic_name(numeric_statistic, "numeric"),
              "categorical": _statistic_name(categorical_statistic, "categorical")}  # fmt: skip
    plan = _plan(
        reference, columns=columns, numeric=numeric, categorical=categorical, prediction=prediction,
        target=target, bins=bins, min_rows=1,
    )  # fmt: skip
    if _is_fingerprint(reference) and (min_shift or "wasserstein" in chosen.values()):
        raise ParameterError(
            "A fingerprint keeps only bin counts: calibrating min_shift or 'wasserstein' needs the reference "
            "rows. Pass the reference table, or use min_shift=0 with psi, ks, jensenshannon or chi2."
        )
    rows = []
    for ref in (spec.build(bins) for spec in plan):
        statistic = chosen[ref.kind]
        entry = {"column": ref.name, "role": ref.role, "kind": ref.kind, "statistic": statistic,
                 "reference_count": ref.present}  # fmt: skip
        if ref.present == 0:
            rows.append({**entry, "threshold": np.nan, "null_quantile": np.nan, "shift_floor": np.nan,
                         "note": "no reference values"})  # fmt: skip
            continue
        windows = _Windows(ref, window, n_boot, _column_rng(seed, ref.name))
        threshold, null, floor = _calibrated(windows, statistic, false_alarm_rate, float(min_shift))
        rows.append({**entry, "threshold": threshold, "null_quantile": null, "shift_floor": floor, "note": ""})
    order = ["column", "role", "kind", "statistic", "threshold", "null_quantile", "shift_floor",
             "reference_count", "note"]  # fmt: skip
    return Calibration(window, false_alarm_rate, float(min_shift), pd.DataFrame(rows, columns=order))


# =========================================================================== what a window can see

_DEFAULT_SHIFTS = {
    "numeric": np.round(np.geomspace(0.01, 4.0, 24), 4),  # reference standard deviations
    "categorical": np.round(np.geomspace(0.002, 0.8, 24), 4),  # share of rows moved to the rarest level
}
_SHIFT_UNITS = {"numeric": "reference std", "categorical": "share of rows moved to the rarest level"}


def _first_reaching(shifts: np.ndarray, rates: np.ndarray, power: float) -> float:
    """The shift at which the detection rate first reaches ``power``, linear between grid points."""
    reached = np.flatnonzero(rates >= power)
    if reached.size == 0:
        return float("nan")
    i = int(reached[0])
    if i == 0:
        return float(shifts[0])
    x0, x1, y0, y1 = shifts[i - 1], shifts[i], rates[i - 1], rates[i]
    return float(x0 + (power - y0) * (x1 - x0) / (y1 - y0))


def smallest_detectable_shift(
    reference: pd.DataFrame,
    window_sizes: Sequence[int],
    *,
    columns: Sequence[str] | None = None,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    numeric_statistic: str = "psi",
    categorical_statistic: str = "psi",
    power: float = 0.8,
    false_alarm_rate: float = 0.01,
    shifts: Sequence[float] | None = None,
    n_boot: int = 500,
    bins: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """The smallest shift each window size detects ``power`` of the time, with calibrated thresholds.

    For each column and window size: ``n_boot`` bootstrap windows set the threshold at
    ``false_alarm_rate`` (as :func:`calibrate_thresholds`), then the same windows are
    shifted by each value of ``shifts`` and the share crossing the threshold is the
    detection rate; the answer is the shift where that rate first reaches ``power``
    (linear between grid points), NaN if no shift in the grid gets there. Numeric shifts
    move the mean by that many reference standard deviations; categorical shifts move that
    share of the rows to the reference's rarest level.

    Returns
    -------
    pandas.DataFrame
        ``column``, ``kind``, ``statistic``, ``window``, ``threshold``, ``smallest_shift``,
        ``unit``, ``power``, ``false_alarm_rate``: one row per column and window size.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> reference = pd.DataFrame({"x": rng.normal(size=4000)})
    >>> table = smallest_detectable_shift(reference, [50, 500], false_alarm_rate=0.05, n_boot=100)
    >>> table[["window", "smallest_shift"]].round(2)
       window  smallest_shift
    0      50            0.66
    1     500            0.21
    """
    if _is_fingerprint(reference):
        raise ParameterError("Shifting windows needs the reference rows: pass the reference table, not a fingerprint.")
    sizes = _window_sizes(window_sizes)
    power = _check_rate(power, "power")
    false_alarm_rate = _check_rate(false_alarm_rate, "false_alarm_rate")
    n_boot = _check_count(n_boot, "n_boot", 1, "500 is usual")
    if n_boot * false_alarm_rate < 5:
        raise ParameterError(f"n_boot={n_boot} is too few for a {false_alarm_rate:g} false-alarm rate: use at least "
                             f"{math.ceil(5 / false_alarm_rate)}.")  # fmt: skip
    chosen = {"numeric": _statistic_name(numeric_statistic, "numeric"),
              "categorical": _statistic_name(categorical_statistic, "categorical")}  # fmt: skip
    grid = None if shifts is None else np.asarray(sorted(float(s) for s in shifts))
    if grid is not None and (grid.size == 0 or grid[0] <= 0):
        raise ParameterError("shifts must be positive numbers, e.g. [0.05, 0.1, 0.2, 0.5, 1].")
    plan = _plan(reference, columns=columns, numeric=numeric, categorical=categorical, prediction=None,
                 target=None, bins=bins, min_rows=1)  # fmt: skip
    rows = []
    for ref in (spec.build(bins) for spec in plan):
        statistic = chosen[ref.kind]
        kind_grid = _DEFAULT_SHIFTS[ref.kind] if grid is None else grid
        for w in sizes:
            row = {"column": ref.name, "kind": ref.kind, "statistic": statistic, "window": w}
            if ref.present == 0:
                rows.append({**row, "threshold": np.nan, "smallest_shift": np.nan})
                continue
            windows = _Windows(ref, w, n_boot, _column_rng(seed + w, ref.name))
            threshold = _calibrated(windows, statistic, false_alarm_rate, 0.0)[0]
            rates = []
            for shift in kind_grid:  # up the grid until the detection rate reaches `power`
                rates.append(float(np.mean(windows.statistics(statistic, shift)[0] > threshold)))
                if rates[-1] >= power:
                    break
            found = _first_reaching(kind_grid[: len(rates)], np.array(rates), power)
            rows.append({**row, "threshold": threshold, "smallest_shift": found})
    table = pd.DataFrame(rows, columns=["column", "kind", "statistic", "window", "threshold", "smallest_shift"])
    table["unit"] = table["kind"].map(_SHIFT_UNITS)
    table["power"] = power
    table["false_alarm_rate"] = false_alarm_rate
    return table


_LABELS = {"psi": "PSI", "ks": "KS", "wasserstein": "Wasserstein", "jensenshannon": "JS", "chi2": "chi-square"}


def _fixed_flags(ref: _Reference, statistic: str, values, p_values, window: int, threshold: float) -> np.ndarray:
    """Which windows a fixed threshold flags (a test's p-value below it, or a value above it)."""
    if statistic == "ks":  # p < threshold exactly when D is beyond the critical value (p falls as D grows)
        big, small = max(ref.present, window), min(ref.present, window)
        return values > stats.kstwo.isf(threshold, np.round(big * small / (big + small)))
    if statistic == "chi2":
        return p_values < threshold
    return values > threshold


def threshold_study(
    reference: pd.DataFrame,
    column: str,
    *,
    window_sizes: Sequence[int] = (50, 200, 1000, 5000),
    shifts: Sequence[float] = (0.0, 0.05, 0.5),
    statistics: Sequence[str] | None = None,
    fixed_thresholds: Mapping[str, float] | None = None,
    false_alarm_rate: float = 0.01,
    min_shift: float = 0.1,
    fresh: pd.DataFrame | None = None,
    n_boot: int = 500,
    bins: int = 10,
    seed: int = 0,
) -> pd.DataFrame:
    """How often fixed and calibrated thresholds flag windows of each size, shifted or not.

    The windows are *fresh*: drawn from ``fresh`` (rows from the same source that are not in
    the reference, e.g. a later stretch of the stream before any drift) or, by default,
    from a random half of the reference held out, while the other half is the reference the
    windows are compared with and calibrated on. Each window is moved by each of ``shifts``
    (reference standard deviations for a numeric column; for a categorical one, a share of
    its rows moved to the rarest level) and each rule decides whether it drifted:

    * fixed: ``DEFAULT_THRESHOLDS`` or ``fixed_thresholds`` (PSI > 0.2, KS p < 0.05, ...);
    * calibrated: :func:`calibrate_thresholds` for the window size at ``false_alarm_rate``,
      with ``min_shift`` as the smallest shift worth an alert.

    At shift 0 the flag rate is the false-alarm rate; at a shift below ``min_shift`` it is
    the rate of alerts about a change too small to matter; above, the detection rate.
    Windows drawn from one pool of rows share that pool's own sampling noise: keep the
    largest window well below the pool's size (a tenth or less), or the rates at shift 0
    move away from what a truly new window would see.

    Returns
    -------
    pandas.DataFrame
        Tidy: ``window``, ``statistic``, ``thresholds`` ("fixed" or "calibrated"), ``rule``
        (e.g. "PSI > 0.2"), ``threshold``, ``shift``, ``flag_rate``, one row per
        combination, plus ``false_alarm_rate`` and ``min_shift`` as columns.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> reference = pd.DataFrame({"x": rng.normal(size=8000)})
    >>> study = threshold_study(reference, "x", window_sizes=[50, 2000], shifts=[0.0], statistics=["psi"],
    ...                         false_alarm_rate=0.05, n_boot=200)
    >>> study[["window", "rule", "flag_rate"]]  # an unchanged window: how often each rule cries drift
       window            rule  flag_rate
    0      50       PSI > 0.2       0.52
    1      50  PSI calibrated       0.04
    2    2000       PSI > 0.2       0.00
    3    2000  PSI calibrated       0.07
    """
    if _is_fingerprint(reference) or not isinstance(reference, pd.DataFrame):
        raise ParameterError("threshold_study needs the reference rows as a DataFrame (not a fingerprint).")
    _missing_columns(reference.columns, [column], "The reference", "pass one of its columns as column=.")
    sizes = _window_sizes(window_sizes)
    false_alarm_rate = _check_rate(false_alarm_rate, "false_alarm_rate")
    n_boot = _check_count(n_boot, "n_boot", 1, "500 is usual")
    if n_boot * false_alarm_rate < 5:
        raise ParameterError(f"n_boot={n_boot} is too few for a {false_alarm_rate:g} false-alarm rate: use at least "
                             f"{math.ceil(5 / false_alarm_rate)}.")  # fmt: skip
    shift_values = [float(s) for s in shifts]
    if not shift_values or min(shift_values) < 0:
        raise ParameterError("shifts must be numbers >= 0, e.g. [0.0, 0.05, 0.5] (0 measures false alarms).")
    if isinstance(min_shift, bool) or not isinstance(min_shift, (int, float)) or min_shift < 0:
        raise ParameterError(f"min_shift must be a number >= 0, not {min_shift!r}.")
    rng = np.random.default_rng(seed)
    if fresh is None:
        held_out = rng.permutation(len(reference)) < len(reference) // 2
        base, pool = reference[~held_out], reference[held_out]
    else:
        if not isinstance(fresh, pd.DataFrame):
            raise ParameterError(
                f"fresh must be a DataFrame of rows from the reference's source, not {type(fresh).__name__}."
            )
        _missing_columns(fresh.columns, [column], "fresh", "it needs the studied column.")
        base, pool = reference, fresh
    ref = _plan(base, columns=[column], numeric=None, categorical=None, prediction=None, target=None,
                bins=bins, min_rows=2)[0].build(bins)  # fmt: skip
    source = _table_reference(column, "feature", ref.kind, pool[column], bins)
    if ref.present < 2 or source.present < 2:
        raise DataError(f"Column {column!r} has fewer than 2 values in the reference or the fresh rows.")
    names = list(statistics) if statistics is not None else (
        ["psi", "ks"] if ref.kind == "numeric" else ["psi", "chi2"])  # fmt: skip
    fixed = {**DEFAULT_THRESHOLDS, **(fixed_thresholds or {})}
    rows = []
    for statistic in names:
        statistic = _statistic_name(statistic, ref.kind, column)
        for w in sizes:
            own = _Windows(ref, w, n_boot, _column_rng(seed + w, statistic))
            calibrated = _calibrated(own, statistic, false_alarm_rate, float(min_shift))[0]
            fresh_windows = _Windows(ref, w, n_boot, _column_rng(seed + w + 1, statistic), source=source)
            label = _LABELS[statistic]
            limit = fixed[statistic]
            fixed_rule = f"{label} p < {limit:g}" if statistic in P_VALUE_STATISTICS else f"{label} > {limit:g}"
            for shift in shift_values:
                values, p_values = fresh_windows.statistics(statistic, shift)
                for kind, rule, threshold, flags in (
                    ("fixed", fixed_rule, limit, _fixed_flags(ref, statistic, values, p_values, w, limit)),
                    ("calibrated", f"{label} calibrated", calibrated, values > calibrated),
                ):
                    rows.append({"window": w, "statistic": statistic, "thresholds": kind, "rule": rule,
                                 "threshold": threshold, "shift": shift,
                                 "flag_rate": float(np.mean(flags))})  # fmt: skip
    table = pd.DataFrame(rows)
    table["false_alarm_rate"] = false_alarm_rate
    table["min_shift"] = float(min_shift)
    return table


# =========================================================================== plots


def _axes(ax, figsize=(7, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_report(report: DriftReport, ax=None):
    """Bar chart of each column's distance to its threshold (1 = on the threshold; drifted bars in red).

    The bar is ``value / threshold`` for decisions on the value and ``threshold / p`` for
    decisions on a p-value, on a log scale, so "beyond 1" means drifted for every statistic.
    Returns the :class:`~matplotlib.axes.Axes`.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> reference = pd.DataFrame({"x": np.arange(200.0), "y": np.tile(["a", "b"], 100)})
    >>> ax = plot_report(drift_report(reference, reference.assign(x=reference["x"] + 50)))
    >>> ax.get_title()
    'Drift per column (beyond 1 = drifted)'
    >>> plt.close(ax.figure)
    """
    table = report.table.iloc[::-1]
    ratio = np.clip(np.nan_to_num(report.ratios()[::-1], nan=1e-3, posinf=1e6), 1e-3, 1e6)
    labels = [
        f"{c} ({s})" if r == "feature" else f"{c} ({s}, {r})"
        for c, s, r in zip(table["column"], table["statistic"], table["role"])
    ]
    ax = _axes(ax, figsize=(7, 0.4 * len(table) + 1.5))
    ax.barh(labels, ratio, color=np.where(table["drifted"], "tab:red", "tab:blue"))
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="threshold")
    ax.set_xscale("log")
    ax.set_xlabel("value / threshold  (threshold / p-value for tests), log scale")
    ax.set_ylabel("column (statistic)")
    ax.set_title("Drift per column (beyond 1 = drifted)")
    ax.legend(loc="lower right")
    return ax


def plot_threshold_study(study: pd.DataFrame):
    """One panel per shift: how often each rule flags windows of each size (from :func:`threshold_study`).

    Fixed rules are dashed, calibrated ones solid; the panel at shift 0 shows false alarms,
    with the target rate dotted. Returns the :class:`~matplotlib.figure.Figure`.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> study = pd.DataFrame({"window": [50, 500] * 2, "rule": ["PSI > 0.2"] * 2 + ["PSI calibrated"] * 2,
    ...                       "thresholds": ["fixed"] * 2 + ["calibrated"] * 2, "shift": 0.0,
    ...                       "flag_rate": [0.6, 0.0, 0.01, 0.01], "false_alarm_rate": 0.01, "min_shift": 0.1})
    >>> fig = plot_threshold_study(study)
    >>> fig.axes[0].get_title()
    'No shift: false alarms'
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    shifts = sorted(study["shift"].unique())
    fig, axes = plt.subplots(1, len(shifts), figsize=(4.2 * len(shifts), 3.8), sharey=True, squeeze=False)
    min_shift = float(study["min_shift"].iloc[0]) if "min_shift" in study else 0.0
    for ax, shift in zip(axes[0], shifts):
        part = study[study["shift"] == shift]
        for rule, lines in part.groupby("rule", sort=False):
            lines = lines.sort_values("window")
            style = "--" if lines["thresholds"].iloc[0] == "fixed" else "-"
            ax.plot(lines["window"], lines["flag_rate"], style, marker="o", label=rule)
        if shift == 0:
            ax.axhline(float(study["false_alarm_rate"].iloc[0]), color="grey", linestyle=":", label="target rate")
            ax.set_title("No shift: false alarms")
        elif shift < min_shift:
            ax.set_title(f"Shift {shift:g}: too small to matter")
        else:
            ax.set_title(f"Shift {shift:g}: should be caught")
        ax.set_xscale("log")
        ax.set_xlabel("window size (rows)")
        ax.set_ylim(-0.03, 1.03)
    axes[0][0].set_ylabel("share of windows flagged")
    axes[0][-1].legend(loc="best", fontsize="small")
    fig.suptitle("Fixed vs calibrated drift thresholds by window size")
    fig.tight_layout()
    return fig


def plot_smallest_shift(table: pd.DataFrame, ax=None):
    """The smallest detectable shift against window size, one line per column (from :func:`smallest_detectable_shift`).

    Returns the :class:`~matplotlib.axes.Axes`.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> table = pd.DataFrame({"column": ["x", "x"], "statistic": ["psi", "psi"], "window": [50, 500],
    ...                       "smallest_shift": [0.9, 0.25], "unit": "reference std", "power": 0.8,
    ...                       "false_alarm_rate": 0.01})
    >>> ax = plot_smallest_shift(table)
    >>> ax.get_xlabel()
    'window size (rows)'
    >>> plt.close(ax.figure)
    """
    ax = _axes(ax)
    for (column, statistic), lines in table.groupby(["column", "statistic"], sort=False):
        lines = lines.sort_values("window")
        ax.plot(lines["window"], lines["smallest_shift"], marker="o", label=f"{column} ({statistic})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("window size (rows)")
    units = sorted(table["unit"].dropna().unique()) if "unit" in table else []
    ax.set_ylabel("smallest detectable shift" + (f" ({' / '.join(units)})" if units else ""))
    power, rate = float(table["power"].iloc[0]), float(table["false_alarm_rate"].iloc[0])
    ax.set_title(f"Shift caught {power:.0%} of the time, {rate:.0%} false alarms")
    ax.legend(loc="best", fontsize="small")
    return ax
