"""Retraining: policies, a simulator that replays a drifting stream, and champion/challenger decisions.

A deployed model ages. *When* to retrain it is a policy:

* :class:`NoRetraining` keeps the first model for ever (the baseline of every comparison);
* :class:`Scheduled` retrains every ``every`` windows, whatever happens;
* :class:`Triggered` retrains when an alert fires -- input drift measured by
  :func:`mlkit.monitoring.drift.drift_report`, or the realised metric falling, watched by
  :class:`mlkit.monitoring.alerts.Rule` -- and then waits ``cooldown`` windows, so that one
  problem does not cause a storm of retrains.

Each retrains on the labelled rows it can see: a **sliding** window (the latest
``window_size`` rows) or an **expanding** one (every labelled row so far).

:func:`simulate` replays a use case's time-ordered stream (:func:`mlkit.datasets.stream`,
with a drift injected at a known moment) window by window. Every policy's current model
scores each window; the window's labels arrive ``label_delay`` windows later, and only then
may a policy train on them. The result holds the metric of every policy in every window,
when each retrained, how many rows it trained on (the compute it spent), and a summary.

Whether a new model replaces the old one is decided on evidence: :func:`compare` scores the
champion and the challenger on the **same** recent labelled rows, with a paired test
(:func:`mcnemar` for accuracy and recall, :func:`paired_bootstrap` for every other metric
and for cost), asks for a minimum effect, and runs the challenger through the deployment
gate of ``03_testing``. :func:`record_decision` logs the evidence to MLflow and, on
promotion, moves the registry's aliases; :func:`roll_back` moves them back;
:func:`decisions` lists what was decided.

Examples
--------
>>> result = simulate("healthcare-diagnosis", [NoRetraining(), Scheduled(every=4), Triggered()],
...                   smoke=True, family="linear")
>>> result.summary[["policy", "mean_metric_after_drift", "retrains", "rows_trained"]].round(2)
               policy  mean_metric_after_drift  retrains  rows_trained
0                none                     0.52         0             0
1   scheduled every 4                     0.64         2           342
2  triggered (either)                     0.67         2           342
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence, Union

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.dummy import DummyClassifier, DummyRegressor

from mlkit import datasets, evaluation, training, usecases
from mlkit.errors import DataError, ParameterError
from mlkit.evaluation import _defined, _resample_values
from mlkit.monitoring import alerts
from mlkit.monitoring import drift as drift_stats

__all__ = [
    "WINDOWS",
    "TRIGGERS",
    "BOOSTING_ROUNDS",
    "DEFAULT_ROWS",
    "MCNEMAR_EXACT_BELOW",
    "NoRetraining",
    "Scheduled",
    "Triggered",
    "Policy",
    "SimulationResult",
    "simulate",
    "plot_simulation",
    "McNemar",
    "PairedBootstrap",
    "mcnemar",
    "paired_bootstrap",
    "Decision",
    "compare",
    "Recorded",
    "record_decision",
    "roll_back",
    "decisions",
]

WINDOWS = ("sliding", "expanding")
"""Training windows: the latest ``window_size`` labelled rows, or every labelled row so far."""
TRIGGERS = ("drift", "performance", "either")
"""What a :class:`Triggered` policy reacts to."""

BOOSTING_ROUNDS = 50
"""Boosting rounds of the simulator's models (training uses 200): dozens of refits take seconds."""
DEFAULT_ROWS = 10_000
"""Rows of the simulated stream at most, by default (the use case's ``default_rows`` if fewer)."""
MCNEMAR_EXACT_BELOW = 25
"""McNemar uses the exact binomial test when fewer rows than this disagree, else chi-square."""


# =========================================================================== policies


def _whole(value: Any, name: str, least: int, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ParameterError(f"{name} must be a whole number of at least {least} (e.g. {example}), not {value!r}.")
    return int(value)


def _number(value: Any, name: str, low: float, high: float, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not low <= value <= high \
            or not math.isfinite(value):
        raise ParameterError(f"{name} must be a number from {low:g} to {high:g} (e.g. {example}), not {value!r}.")
    return float(value)


def _check_window(policy: str, window: Any, window_size: Any) -> None:
    if window not in WINDOWS:
        raise ParameterError(f"{policy}: window must be 'sliding' (the latest window_size labelled rows) or "
                             f"'expanding' (every labelled row so far), not {window!r}.")
    if window_size is not None:
        _whole(window_size, f"{policy}: window_size", 10, "2000 rows, or None for the first model's size")
        if window == "expanding":
            raise ParameterError(f"{policy}: an expanding window trains on every labelled row, so it takes no "
                                 f"window_size; drop window_size or use window='sliding'.")


def _window_label(policy: Any) -> str:
    if policy.window == "expanding":
        return ", expanding"
    return f", last {policy.window_size} rows" if policy.window_size else ""


@dataclass(frozen=True)
class NoRetraining:
    """Keep the first model for ever: the baseline every other policy must beat.

    Examples
    --------
    >>> NoRetraining().name
    'none'
    """

    name: str = "none"


@dataclass(frozen=True)
class Scheduled:
    """Retrain every ``every`` windows, whatever happens (before windows every, 2 every, ...).

    Parameters
    ----------
    every : int, default 5
        Windows between retrains.
    window : {"sliding", "expanding"}, default "sliding"
        Train on the latest ``window_size`` labelled rows, or on every labelled row so far.
    window_size : int, optional
        Rows of a sliding window; default as many as the first model was trained on.
    name : str, optional
        Shown in tables and plots; default ``"scheduled every <every>"`` (and ``", expanding"``
        or ``", last <window_size> rows"``).

    Raises
    ------
    ParameterError
        For ``every`` < 1, an unknown window, or a ``window_size`` below 10 or with an
        expanding window.

    Examples
    --------
    >>> Scheduled(every=4).name
    'scheduled every 4'
    >>> Scheduled(every=4, window="expanding").name
    'scheduled every 4, expanding'
    """

    every: int = 5
    window: str = "sliding"
    window_size: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        _whole(self.every, "Scheduled: every", 1, "every=5 windows")
        _check_window("Scheduled", self.window, self.window_size)
        if not self.name:
            object.__setattr__(self, "name", f"scheduled every {self.every}{_window_label(self)}")


@dataclass(frozen=True)
class Triggered:
    """Retrain when a monitoring alert fires, then wait ``cooldown`` windows.

    Two alerts are watched, each an :class:`mlkit.monitoring.alerts.Rule` evaluated by
    :func:`mlkit.monitoring.alerts.evaluate` over the windows the current model has served:

    * **drift**: a window's ``drift_share`` (the share of feature columns that drifted
      from the rows the current model was trained on, by
      :func:`mlkit.monitoring.drift.drift_report` with Kolmogorov-Smirnov / chi-square tests,
      Bonferroni-corrected at ``drift_alpha``) is above ``drift_share``. Known as soon as
      the window has been scored.
    * **performance**: a window's realised metric is worse than the first model's level on
      held-out rows by more than ``tolerance`` (relative), or than ``threshold`` if given
      (or, when the held-out rows cannot tell the level, e.g. no positive among them, than
      the use case's deployment gate). Known only when the window's labels have arrived.

    A new model serves at least ``cooldown`` + 1 windows (the first model too) before an
    alert may replace it, so an alert every window retrains at most once every
    ``cooldown`` + 1 windows.

    Parameters
    ----------
    on : {"drift", "performance", "either"}, default "either"
        Which alerts trigger a retrain.
    cooldown : int, default 2
        Windows after a retrain in which no alert retrains again.
    consecutive : int, default 1
        Breaching windows in a row before an alert fires.
    tolerance : float, default 0.05
        Performance alert when the metric is 5% worse than the reference level.
    threshold : float, optional
        An absolute limit instead (e.g. ``0.8`` for recall, ``250`` for an MAE).
    drift_share : float, default 0.25
        Drift alert when more than this share of the feature columns drifted.
    drift_alpha : float, default 0.01
        Significance level of the per-column drift tests (after Bonferroni correction).
    window : {"sliding", "expanding"}, default "sliding"
    window_size : int, optional
        Rows of a sliding window; default as many as the first model was trained on.
    name : str, optional
        Default ``"triggered (<on>)"`` (and the window, as for :class:`Scheduled`).

    Raises
    ------
    ParameterError
        For an unknown ``on`` or window, a negative ``cooldown``, ``consecutive`` < 1, or a
        tolerance, share or alpha outside its range.

    Examples
    --------
    >>> Triggered(on="drift", cooldown=3).name
    'triggered (drift)'
    """

    on: str = "either"
    cooldown: int = 2
    consecutive: int = 1
    tolerance: float = 0.05
    threshold: float | None = None
    drift_share: float = 0.25
    drift_alpha: float = 0.01
    window: str = "sliding"
    window_size: int | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if self.on not in TRIGGERS:
            raise ParameterError(f"Triggered: on must be 'drift', 'performance' or 'either', not {self.on!r}.")
        _whole(self.cooldown, "Triggered: cooldown", 0, "cooldown=2 windows")
        _whole(self.consecutive, "Triggered: consecutive", 1, "consecutive=2 windows")
        _number(self.tolerance, "Triggered: tolerance", 0, 1, "0.05 for 5% worse than the reference")
        if self.threshold is not None and (isinstance(self.threshold, bool) or not isinstance(
                self.threshold, (int, float, np.number)) or not math.isfinite(self.threshold)):
            raise ParameterError(f"Triggered: threshold must be a finite number in the metric's units "
                                 f"(or None for the tolerance), not {self.threshold!r}.")
        _number(self.drift_share, "Triggered: drift_share", 0, 1, "0.25 for a quarter of the columns")
        _number(self.drift_alpha, "Triggered: drift_alpha", 1e-12, 0.5, "0.01")
        _check_window("Triggered", self.window, self.window_size)
        if not self.name:
            object.__setattr__(self, "name", f"triggered ({self.on}){_window_label(self)}")


Policy = Union[NoRetraining, Scheduled, Triggered]
"""Any retraining policy."""


def _check_policies(policies: Any) -> list[Policy]:
    if policies is None:
        return [NoRetraining(), Scheduled(), Triggered()]
    if isinstance(policies, (NoRetraining, Scheduled, Triggered)):
        policies = [policies]
    policies = list(policies)
    for p in policies:
        if not isinstance(p, (NoRetraining, Scheduled, Triggered)):
            raise ParameterError(f"policies must be NoRetraining(), Scheduled(...) or Triggered(...) objects, "
                                 f"not {type(p).__name__}.")
    if not policies:
        raise ParameterError("Give at least one policy, e.g. [NoRetraining(), Scheduled(every=5), Triggered()].")
    names = [p.name for p in policies]
    if len(set(names)) != len(names):
        raise ParameterError(f"Policy names must be distinct; give each a name= ({names}).")
    return policies


# =========================================================================== the simulator


@dataclass
class SimulationResult:
    """What :func:`simulate` found.

    Attributes
    ----------
    use_case : str
    metric : str
        The use case's primary metric, computed on every window.
    greater_is_better : bool
        Direction of the metric.
    per_window : pandas.DataFrame
        One row per policy and window: ``policy``, ``window``, ``first_row`` (stream index of
        the window's first row), ``rows``, ``drifted_share``, ``metric`` (the window's value,
        NaN where undefined, e.g. recall without a positive), ``model`` (0 for the first
        model, k after the k-th retrain), ``retrained`` (a new model was trained before this
        window and scored it), ``trigger`` (why: ``"schedule"``, ``"drift"``,
        ``"performance"``, or empty), ``train_rows`` (rows of that training, else 0) and
        ``last_label_row`` (the latest stream row whose label it used, else -1).
    summary : pandas.DataFrame
        One row per policy: ``policy``, ``metric``, ``better`` ("higher" or "lower"),
        ``mean_metric`` (over windows), ``mean_metric_after_drift`` (over windows from
        ``drift_window`` on), ``retrains`` and ``rows_trained`` (rows of every retraining
        added up: the compute spent; the first model, the same for all, is not counted).
    drift_window : int or None
        The first window whose rows are mostly drifted (None without a drift).
    reference : float
        The first model's metric on held-out rows of the training period: the level a
        performance alert compares with.
    settings : dict
        ``rows``, ``history_rows`` (the first model's training rows), ``window_rows``,
        ``windows``, ``label_delay``, ``family``, ``seed``.
    """

    use_case: str
    metric: str
    greater_is_better: bool
    per_window: pd.DataFrame
    summary: pd.DataFrame
    drift_window: int | None
    reference: float
    settings: dict[str, Any] = field(default_factory=dict)

    def plot(self, ax: Any = None) -> Any:
        """Draw the metric per window for every policy (see :func:`plot_simulation`)."""
        return plot_simulation(self, ax=ax)


class _Models:
    """Fitted models, their predictions and drift reports, shared by the policies of one run.

    Two policies that train on the same rows get the same (deterministic) model, fitted
    once; a model's predictions on a window are computed once.
    """

    def __init__(self, uc: usecases.UseCase, frame: pd.DataFrame, windows: list[slice], family: str, seed: int):
        self.uc, self.frame, self.windows, self.family, self.seed = uc, frame, windows, family, seed
        self.metric = evaluation.metric(uc.primary_metric)
        self.parts = [frame.iloc[w] for w in windows]
        self._fitted: dict[tuple[int, int], Any] = {}
        self._references: dict[tuple[int, int], tuple[pd.DataFrame, training.FeatureColumns]] = {}
        self._values: dict[tuple[tuple[int, int], int], float] = {}
        self._outputs: dict[tuple[int, int], tuple[int, np.ndarray]] = {}
        self._drift: dict[tuple[tuple[int, int], int, float], float] = {}

    def fit(self, rows: tuple[int, int]) -> Any:
        if rows not in self._fitted:
            self._fitted[rows] = _fit(self.uc, self.frame.iloc[rows[0]:rows[1]], self.family, self.seed)
        return self._fitted[rows]

    def value(self, rows: tuple[int, int], t: int) -> float:
        """The primary metric of the model trained on ``rows`` on window ``t`` (NaN if undefined)."""
        if (rows, t) not in self._values:
            if rows not in self._outputs:  # one call for every window from here on: much less overhead
                ahead = self.frame.iloc[self.windows[t].start:self.windows[-1].stop]
                self._outputs[rows] = (t, evaluation.predictions_for(self.uc.primary_metric, self.fit(rows), ahead))
            first, outputs = self._outputs[rows]
            size = self.windows[0].stop - self.windows[0].start
            y = outputs[(t - first) * size:(t - first + 1) * size]
            self._values[rows, t] = _score(self.uc.primary_metric, self.parts[t][self.uc.target].to_numpy(), y)
        return self._values[rows, t]

    def drift_share(self, rows: tuple[int, int], t: int, alpha: float) -> float:
        """Share of feature columns of window ``t`` that drifted from the training rows ``rows``."""
        if rows not in self._references:
            reference = self.frame.iloc[rows[0]:rows[1]]
            cols = training.feature_columns(reference, self.uc)
            self._references[rows] = reference[cols.features], cols
        if (rows, t, alpha) not in self._drift:
            reference, cols = self._references[rows]
            report = drift_stats.drift_report(
                reference, self.parts[t][cols.features], numeric=cols.numeric,
                categorical=cols.categorical, numeric_statistic="ks", categorical_statistic="chi2",
                thresholds=alpha, correction="bonferroni", min_rows=2, threads=1,
            )  # fmt: skip
            self._drift[rows, t, alpha] = report.drift_share
        return self._drift[rows, t, alpha]


def _fit(uc: usecases.UseCase, rows: pd.DataFrame, family: str, seed: int) -> Any:
    """The use case's default pipeline (as :func:`mlkit.training.build_pipeline`), fitted on ``rows``."""
    model = training.build_pipeline(uc, rows, family=family, seed=seed)
    if family == "boosting":
        model.set_params(model__max_iter=BOOSTING_ROUNDS)
    return model.fit(*training.xy(rows, uc))


def _score(name: str, y_true: np.ndarray, y: np.ndarray) -> float:
    """Metric ``name`` on these rows, NaN where it is undefined (e.g. recall without a positive)."""
    return float(evaluation.metric(name)(y_true, y)) if _defined(name, y_true) else float("nan")


def _metric_on(uc: usecases.UseCase, model: Any, part: pd.DataFrame) -> float:
    name = uc.primary_metric
    return _score(name, part[uc.target].to_numpy(), evaluation.predictions_for(name, model, part))


def _can_train(uc: usecases.UseCase, rows: pd.DataFrame) -> bool:
    return uc.task != "classification" or rows[uc.target].nunique() >= 2


@dataclass
class _State:
    """One policy's progress through the stream."""

    policy: Policy
    rows: tuple[int, int]  # the current model's training rows [start, end) of the stream
    deployed_at: int = 0  # the window it first scored
    model: int = 0
    retrains: int = 0
    rows_trained: int = 0


def _stream(uc, stream, seed, n, drift, drift_start, smoke) -> pd.DataFrame:
    if stream is None:
        if n is None:
            from mlkit.userdata import SMOKE_ROWS

            n = min(SMOKE_ROWS if smoke else DEFAULT_ROWS, uc.default_rows)
        return datasets.stream(uc, seed=seed, n=n, drift=drift, drift_start=drift_start)
    if n is not None:
        raise ParameterError("Pass either stream= (a prepared stream) or n= (rows to generate), not both.")
    if not isinstance(stream, pd.DataFrame):
        raise DataError(f"stream must be a DataFrame from mlkit.datasets.stream or stream_frame, "
                        f"not {type(stream).__name__}.")
    missing = [c for c in (uc.target, "drifted") if c not in stream.columns]
    if missing:
        raise DataError(f"The stream lacks the column(s) {missing}; make it with mlkit.datasets.stream or "
                        f"datasets.stream_frame(frame, use_case, drift=...), which add 'drifted'.")
    if stream[uc.target].isna().any():
        raise DataError(f"The stream has rows without a label in {uc.target!r}; drop them first "
                        f"(stream.dropna(subset=[{uc.target!r}])).")
    return stream.reset_index(drop=True)


def _layout(n_rows: int, train_share: float, window_rows: int | None, smoke: bool) -> tuple[int, int, int]:
    """(history rows, rows per window, windows): the first model's rows, then equal windows."""
    history = int(round(train_share * n_rows))
    production = n_rows - history
    if window_rows is None:
        window_rows = max(production // (10 if smoke else 20), 30)
    window_rows = _whole(window_rows, "window_rows", 10, "window_rows=500")
    n_windows = production // window_rows
    if history < 30 or n_windows < 3:
        raise ParameterError(
            f"{n_rows} rows with train_share={train_share} and window_rows={window_rows} leave {history} rows to "
            f"train the first model and {n_windows} windows; ask for at least 30 rows and 3 windows "
            "(more rows n=, or smaller window_rows=)."
        )
    return history, window_rows, n_windows


def simulate(
    use_case: str | usecases.UseCase,
    policies: Sequence[Policy] | Policy | None = None,
    *,
    seed: int = 0,
    n: int | None = None,
    drift: str | None = "concept",
    drift_start: float = 0.5,
    stream: pd.DataFrame | None = None,
    train_share: float = 0.3,
    window_rows: int | None = None,
    label_delay: int = 1,
    family: str | None = None,
    smoke: bool = False,
) -> SimulationResult:
    """Replay a time-ordered stream with delayed labels under several retraining policies.

    The stream (:func:`mlkit.datasets.stream` with the drift injected at ``drift_start``) is
    cut into the first ``train_share`` of its rows, on which the first model is trained
    (before the drift), and then equal windows. For each window, in time order:

    1. each policy may retrain, on labels already known: those of the training period and
       of the windows at least ``label_delay`` + 1 windows old (window ``t - 1 - label_delay``
       and earlier, as the labels of a window arrive ``label_delay`` windows after it ends);
    2. each policy's current model scores the window, and the window's metric is recorded.

    Everything is drawn from ``seed`` (the stream, the models), so the same arguments give
    identical tables; compute is counted in rows trained on, not seconds.

    Parameters
    ----------
    use_case : str or UseCase
        A supervised use case; for your own CSV, a :func:`mlkit.usecases.custom` use case
        and ``stream=datasets.stream_frame(frame, use_case, drift=...)``.
    policies : sequence of policies, optional
        Default ``[NoRetraining(), Scheduled(), Triggered()]``.
    seed : int, default 0
    n : int, optional
        Rows of the stream; default the use case's ``default_rows``, at most
        :data:`DEFAULT_ROWS` (2000 with ``smoke``).
    drift : {"covariate", "label", "concept", None}, default "concept"
        The drift injected (one of the use case's ``drift_scenarios``).
    drift_start : float, default 0.5
        Where the drift starts, as a fraction of the stream; after ``train_share``.
    stream : pandas.DataFrame, optional
        A prepared stream (with the target and a ``drifted`` column) instead of ``n``,
        ``drift`` and ``drift_start``.
    train_share : float, default 0.3
        Share of the stream the first model is trained on.
    window_rows : int, optional
        Rows per window; default the rest of the stream cut into 20 windows (10 with
        ``smoke``), of at least 30 rows.
    label_delay : int, default 1
        Windows between the end of a window and the arrival of its labels.
    family : {"linear", "boosting", "baseline"}, optional
        The model family of every model (:data:`mlkit.training.FAMILIES`; boosting with
        :data:`BOOSTING_ROUNDS` rounds, so that many refits stay fast). Default: whichever
        of boosting and linear scores better on the second half of the training period when
        fitted on the first (boosting, the default pipeline's family, on a tie).
    smoke : bool, default False
        Small sizes, for tests and the CI grid.

    Returns
    -------
    SimulationResult
        ``per_window`` and ``summary`` tables, the drift window, and ``.plot()``.

    Raises
    ------
    ParameterError
        For an unsupervised use case, bad policies, a ``train_share`` or ``drift_start``
        outside (0, 1) or a drift that starts inside the training period, a negative
        ``label_delay``, or too few rows for 3 windows.
    DataError
        For a stream without the target or the ``drifted`` column.

    Examples
    --------
    >>> result = simulate("healthcare-diagnosis", [NoRetraining(), Scheduled(every=3)], smoke=True,
    ...                   family="linear")
    >>> result.metric, result.greater_is_better, result.drift_window
    ('recall', True, 3)
    >>> result.per_window.loc[result.per_window["retrained"], "window"].tolist()
    [3, 6, 9]
    """
    uc = usecases.get(use_case)
    if not uc.supervised or uc.target is None:
        raise ParameterError(f"{uc.id} is a {uc.task} use case without a target; retraining is simulated for "
                             f"supervised ones: {', '.join(usecases.ids(supervised_only=True))}.")
    policies = _check_policies(policies)
    if family is not None and family not in training.FAMILIES:
        raise ParameterError(f"Unknown model family {family!r}; choose one of {', '.join(training.FAMILIES)}.")
    label_delay = _whole(label_delay, "label_delay", 0, "label_delay=1 window")
    train_share = _number(train_share, "train_share", 0.05, 0.9, "0.3")
    if stream is None:
        start = _number(drift_start, "drift_start", 0, 1, "0.5")
        if drift is not None and start <= train_share:
            raise ParameterError(f"drift_start={drift_start} falls inside the training period (train_share="
                                 f"{train_share}); the first model is trained before the drift: use a "
                                 f"drift_start above {train_share}, e.g. 0.5.")
    frame = _stream(uc, stream, seed, n, drift, drift_start, smoke)
    history, size, n_windows = _layout(len(frame), train_share, window_rows, smoke)
    windows = [slice(history + t * size, history + (t + 1) * size) for t in range(n_windows)]
    drifted = np.array([frame["drifted"].iloc[w].mean() for w in windows], dtype=float)
    mostly = np.flatnonzero(drifted >= 0.5)
    drift_window = int(mostly[0]) if mostly.size else None
    first = (0, history)
    if not _can_train(uc, frame.iloc[:history]):
        raise DataError(f"The first {history} rows hold one class of {uc.target!r}; raise train_share.")
    family, reference = _choose_family(uc, frame.iloc[:history], family, seed)
    models = _Models(uc, frame, windows, family, seed)

    states = [_State(p, first) for p in policies]
    records: list[list[dict[str, Any]]] = [[] for _ in states]
    for t in range(n_windows):
        for state, mine in zip(states, records):
            trigger = _decide(state, t, models, label_delay, reference) if t > 0 else ""
            retrained, train_rows, last_label = False, 0, -1
            if trigger:
                rows = _training_rows(state.policy, t, history, size, label_delay)
                if _can_train(uc, frame.iloc[rows[0]:rows[1]]):
                    state.rows, state.deployed_at = rows, t
                    state.model += 1
                    state.retrains += 1
                    state.rows_trained += rows[1] - rows[0]
                    retrained, train_rows, last_label = True, rows[1] - rows[0], rows[1] - 1
                else:
                    trigger += " (skipped: the labelled rows hold one class)"
            mine.append({
                "policy": state.policy.name, "window": t, "first_row": windows[t].start, "rows": size,
                "drifted_share": float(drifted[t]), "metric": models.value(state.rows, t), "model": state.model,
                "retrained": retrained, "trigger": trigger, "train_rows": train_rows, "last_label_row": last_label,
            })
    per_window = pd.DataFrame([row for mine in records for row in mine])
    summary = _summary(per_window, states, uc, drift_window)
    for table in (per_window, summary):
        table.attrs.update(metric=uc.primary_metric, greater_is_better=models.metric.greater_is_better)
    settings = {"rows": len(frame), "history_rows": history, "window_rows": size, "windows": n_windows,
                "label_delay": label_delay, "family": family, "seed": seed}
    return SimulationResult(uc.id, uc.primary_metric, models.metric.greater_is_better, per_window, summary,
                            drift_window, reference, settings)


def _choose_family(uc: usecases.UseCase, history: pd.DataFrame, family: str | None, seed: int) -> tuple[str, float]:
    """The model family and its level on held-out rows: fitted on the first half of the training period,
    scored on the second. With ``family=None`` the better of boosting and linear (boosting on a tie)."""
    cut = int(0.5 * len(history))
    fit_rows, held_out = history.iloc[:cut], history.iloc[cut:]
    candidates = [family] if family is not None else ["boosting", "linear"]
    if not _can_train(uc, fit_rows):
        return candidates[0], float("nan")
    scores = {name: _metric_on(uc, _fit(uc, fit_rows, name, seed), held_out) for name in candidates}
    sign = 1.0 if evaluation.metric(uc.primary_metric).greater_is_better else -1.0
    best = max(candidates, key=lambda name: sign * scores[name] if math.isfinite(scores[name]) else -math.inf)
    return best, scores[best]


def _training_rows(policy: Policy, t: int, history: int, size: int, label_delay: int) -> tuple[int, int]:
    """Stream rows [start, end) a policy trains on before window ``t``: labels known by then only."""
    end = history + size * max(0, t - label_delay)  # windows 0 .. t - 1 - label_delay are labelled
    if policy.window == "expanding":
        return 0, end
    return max(0, end - (policy.window_size or history)), end


def _decide(state: _State, t: int, models: _Models, label_delay: int, reference: float) -> str:
    """Why the policy retrains before window ``t`` ("" when it does not)."""
    policy = state.policy
    if isinstance(policy, NoRetraining):
        return ""
    if isinstance(policy, Scheduled):
        return "schedule" if t % policy.every == 0 else ""
    if t - state.deployed_at <= policy.cooldown:
        return ""
    reasons = []
    if policy.on in ("drift", "either"):
        # scored already, so their inputs are known; a fresh alert needs the last `consecutive` to breach
        served = list(range(max(state.deployed_at, t - policy.consecutive), t))
        shares = [models.drift_share(state.rows, w, policy.drift_alpha) for w in served]
        table = pd.DataFrame({"window": served, "drift_share": shares})
        rule = alerts.Rule("drift", "drift_share", policy.drift_share, consecutive=policy.consecutive)
        if any(a.window == t - 1 for a in alerts.evaluate(rule, table)):
            reasons.append("drift")
    if policy.on in ("performance", "either"):
        served = list(range(max(state.deployed_at, t - label_delay - policy.consecutive), t - label_delay))  # labelled
        if served:
            table = pd.DataFrame({"window": served, "metric": [models.value(state.rows, w) for w in served]})
            rule = _performance_rule(policy, reference, models.uc)
            if rule is not None and any(a.window == served[-1] for a in alerts.evaluate(rule, table)):
                reasons.append("performance")
    return "+".join(reasons)


def _performance_rule(policy: Triggered, reference: float, uc: usecases.UseCase) -> alerts.Rule | None:
    """The performance alert: below (or above, for an error) the reference level by ``tolerance``.

    Without a usable reference (a held-out part without a positive, or a level of 0 that no
    relative margin can fall below) the deployment gate's threshold for the primary metric
    is the limit; without either, there is no performance alert.
    """
    greater_is_better = evaluation.metric(uc.primary_metric).greater_is_better
    gate = uc.gate.get("primary_min" if greater_is_better else "primary_max")
    if policy.threshold is not None:
        limit = float(policy.threshold)
    elif math.isfinite(reference) and reference > 0:
        limit = reference * (1 - policy.tolerance) if greater_is_better else reference * (1 + policy.tolerance)
    elif gate is not None:
        limit = float(gate)
    else:
        return None
    return alerts.Rule("performance", "metric", limit, direction="below" if greater_is_better else "above",
                       consecutive=policy.consecutive)


def _summary(per_window: pd.DataFrame, states: list[_State], uc: usecases.UseCase,
             drift_window: int | None) -> pd.DataFrame:
    rows = []
    better = "higher" if evaluation.metric(uc.primary_metric).greater_is_better else "lower"
    for state in states:
        mine = per_window[per_window["policy"] == state.policy.name]
        after = mine[mine["window"] >= drift_window] if drift_window is not None else mine.iloc[:0]
        rows.append({
            "policy": state.policy.name, "metric": uc.primary_metric, "better": better,
            "mean_metric": float(mine["metric"].mean()),
            "mean_metric_after_drift": float(after["metric"].mean()) if len(after) else float("nan"),
            "retrains": state.retrains, "rows_trained": state.rows_trained,
        })
    return pd.DataFrame(rows)


def plot_simulation(result: SimulationResult, ax: Any = None) -> Any:
    """The metric per window for every policy, with retrains marked and the drift's start.

    Parameters
    ----------
    result : SimulationResult
        From :func:`simulate`.
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
    >>> ax = simulate("healthcare-diagnosis", smoke=True, family="linear").plot()
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('window (39 rows each)', 'recall (higher is better)')
    >>> plt.close(ax.figure)
    """
    import matplotlib.pyplot as plt

    if not isinstance(result, SimulationResult):
        raise ParameterError(f"plot_simulation needs the result of simulate(), not {type(result).__name__}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    table = result.per_window
    for i, (name, part) in enumerate(table.groupby("policy", sort=False)):
        colour = f"C{i}"
        ax.plot(part["window"], part["metric"], marker=".", color=colour, label=name)
        hits = part[part["retrained"]]
        if len(hits):
            ax.scatter(hits["window"], hits["metric"], marker="^", s=70, color=colour, edgecolor="black",
                       zorder=3, label=f"{name}: retrained")
    if result.drift_window is not None:
        ax.axvline(result.drift_window - 0.5, color="black", linestyle="--", linewidth=1, label="drift starts")
    better = "higher" if result.greater_is_better else "lower"
    ax.set_xlabel(f"window ({result.settings['window_rows']} rows each)")
    ax.set_ylabel(f"{result.metric} ({better} is better)")
    ax.set_title(f"{result.use_case}: {result.metric} per window under each retraining policy")
    ax.legend(loc="best", fontsize="small")
    return ax


# =========================================================================== paired tests


@dataclass(frozen=True)
class McNemar:
    """McNemar's test of two classifiers on the same rows (see :func:`mcnemar`).

    Attributes
    ----------
    b : int
        Rows model A got right and model B wrong.
    c : int
        Rows model A got wrong and model B right.
    statistic : float
        The chi-square statistic with continuity correction, ``(|b - c| - 1)^2 / (b + c)``, or
        ``min(b, c)`` for the exact test.
    p_value : float
        Two-sided.
    method : str
        ``"exact"`` (binomial) or ``"chi-square"``.
    rows : int
    """

    b: int
    c: int
    statistic: float
    p_value: float
    method: str
    rows: int


def _labels(y: Any, name: str, n: int | None = None) -> np.ndarray:
    values = np.asarray(y)
    if values.ndim != 1:
        raise DataError(f"{name} must be one-dimensional, one value per row (for predict_proba output pass "
                        f"proba[:, 1]), not shape {values.shape}.")
    if n is not None and len(values) != n:
        raise DataError(f"{name} has {len(values)} values for {n} rows; pass the predictions for the same rows.")
    if pd.isna(values).any():
        raise DataError(f"{name} has missing values; compare on rows with a label and both predictions.")
    return values


def mcnemar(y_true: Any, pred_a: Any, pred_b: Any) -> McNemar:
    """Do two classifiers make errors equally often on the same rows? McNemar's paired test.

    Only the rows where exactly one model is right carry information: ``b`` rows where A is
    right and B wrong, ``c`` where A is wrong and B right. If the models are equally good,
    each such row is a coin toss, so ``b`` ~ Binomial(b + c, 1/2). With fewer than
    :data:`MCNEMAR_EXACT_BELOW` such rows the exact two-sided binomial p-value is used,
    ``min(1, 2 P(X <= min(b, c)))``; otherwise the chi-square statistic with continuity
    correction, ``(|b - c| - 1)^2 / (b + c)``, on one degree of freedom.

    Parameters
    ----------
    y_true, pred_a, pred_b : array-like
        True labels and the two models' hard predictions, for the same rows.

    Returns
    -------
    McNemar

    Raises
    ------
    DataError
        For lengths that differ, missing values, or no rows.

    Examples
    --------
    >>> y = [1, 1, 1, 1, 0, 0, 0, 0, 1, 0]
    >>> a = [1, 1, 1, 1, 0, 0, 0, 0, 1, 0]   # always right
    >>> b = [0, 0, 0, 1, 0, 0, 1, 0, 0, 0]   # wrong on 5 rows
    >>> result = mcnemar(y, a, b)
    >>> result.b, result.c, result.method, round(result.p_value, 4)
    (5, 0, 'exact', 0.0625)
    """
    y = _labels(y_true, "y_true")
    if len(y) == 0:
        raise DataError("mcnemar needs at least one row.")
    right_a = _labels(pred_a, "pred_a", len(y)) == y
    right_b = _labels(pred_b, "pred_b", len(y)) == y
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    if b + c == 0:
        return McNemar(b, c, 0.0, 1.0, "exact", len(y))
    if b + c < MCNEMAR_EXACT_BELOW:
        k = min(b, c)
        p = min(1.0, 2.0 * float(stats.binom.cdf(k, b + c, 0.5)))
        return McNemar(b, c, float(k), p, "exact", len(y))
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    return McNemar(b, c, float(statistic), float(stats.chi2.sf(statistic, df=1)), "chi-square", len(y))


@dataclass(frozen=True)
class PairedBootstrap:
    """A paired bootstrap comparison of two models on the same rows (see :func:`paired_bootstrap`).

    Attributes
    ----------
    metric : str
    value_a, value_b : float
        The metric of each model on all rows.
    difference : float
        ``value_b - value_a``.
    low, high : float
        The percentile interval of the difference.
    p_value : float
        Two-sided: twice the share of resamples on the other side of zero (at most 1).
    confidence : float
    n_resamples : int
    skipped : int
        Resamples where the metric was undefined for a model (left out).
    """

    metric: str
    value_a: float
    value_b: float
    difference: float
    low: float
    high: float
    p_value: float
    confidence: float
    n_resamples: int
    skipped: int


def paired_bootstrap(
    y_true: Any,
    a: Any,
    b: Any,
    *,
    metric: str | Callable[[np.ndarray, np.ndarray], float],
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedBootstrap:
    """How much better is model B than model A on these rows, and could it be chance?

    Each resample draws row indices with replacement and computes the metric of **both**
    models on the **same** rows, so what the rows have in common (easy or hard cases)
    cancels out of the difference. The interval is the middle ``confidence`` share of the
    differences; the two-sided p-value is twice the share of resamples whose difference
    falls on the other side of zero, so p < 1 - confidence exactly when the interval
    leaves zero out::

        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(n_resamples, n))       # the same rows for both models
        d = metric_on(y_true, b, idx) - metric_on(y_true, a, idx)
        p = min(1, 2 * min((d <= 0).mean(), (d >= 0).mean()))

    Parameters
    ----------
    y_true : array-like
        True values.
    a, b : array-like
        What the metric needs from each model: hard predictions, or positive-class scores
        for ``roc_auc`` / ``average_precision`` (see :func:`mlkit.evaluation.predictions_for`).
    metric : str or callable
        A name in :data:`mlkit.evaluation.METRICS`, or ``f(y_true, y) -> float`` (e.g. a total
        cost from per-row costs: ``lambda t, c: c.sum()``), called once per resample.
    n_resamples : int, default 1000
    seed : int, default 0
    confidence : float, default 0.95

    Returns
    -------
    PairedBootstrap
        The difference is ``value_b - value_a``: positive means B scores higher (better for
        a score, worse for an error).

    Raises
    ------
    ParameterError
        For an unknown metric, ``n_resamples`` < 10 or ``confidence`` outside (0, 1).
    DataError
        For lengths that differ, fewer than 2 rows, or a metric undefined on the rows.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=300)
    >>> good, bad = y + rng.normal(0, 0.5, 300), y + rng.normal(0, 1.0, 300)
    >>> result = paired_bootstrap(y, bad, good, metric="mae", n_resamples=500)
    >>> result.difference < 0, result.high < 0, result.p_value < 0.01
    (True, True, True)
    """
    name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
    if isinstance(metric, str):
        evaluation.metric(metric)
    elif not callable(metric):
        raise ParameterError(f"metric must be a metric name (e.g. 'roc_auc') or a function f(y_true, y), "
                             f"not {metric!r}.")
    n_resamples = _whole(n_resamples, "n_resamples", 10, "n_resamples=1000")
    _number(confidence, "confidence", 1e-9, 1 - 1e-9, "0.95")
    y = _labels(y_true, "y_true")
    a, b = _labels(a, "a", len(y)), _labels(b, "b", len(y))
    if len(y) < 2:
        raise DataError(f"A bootstrap needs at least 2 rows, got {len(y)}.")

    def on(values: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
        if isinstance(metric, str):
            if idx is None:
                if not _defined(metric, y):
                    raise DataError(f"{metric} is undefined on these rows (one class only, or no positive); "
                                    "compare on more rows.")
                return np.array([evaluation.metric(metric)(y, values)])
            return _resample_values(metric, y, values, idx)
        rows = [np.arange(len(y))] if idx is None else idx
        return np.array([float(metric(y[i], values[i])) for i in rows], dtype=float)

    value_a, value_b = float(on(a, None)[0]), float(on(b, None)[0])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_resamples, len(y)))
    d = on(b, idx) - on(a, idx)
    kept = d[np.isfinite(d)]
    if kept.size == 0:
        raise DataError(f"{name} was undefined on every resample; compare on more rows.")
    tail = (1 - confidence) / 2
    low, high = np.quantile(kept, [tail, 1 - tail])
    p = min(1.0, 2.0 * min(float(np.mean(kept <= 0)), float(np.mean(kept >= 0))))
    return PairedBootstrap(name, value_a, value_b, value_b - value_a, float(low), float(high), p,
                           float(confidence), n_resamples, int(d.size - kept.size))


# =========================================================================== champion / challenger


@dataclass
class Decision:
    """Whether a challenger replaces the champion, and the evidence (see :func:`compare`).

    Attributes
    ----------
    promote : bool
        True only when the challenger is significantly better, by at least the minimum
        effect, and passes the deployment gate.
    reason : str
        One line saying why.
    metric : str
        What was compared (a metric name, or ``"cost"``).
    greater_is_better : bool
    champion_value, challenger_value : float
        On the same rows.
    difference : float
        ``challenger_value - champion_value``.
    improvement : float
        The difference in the "better" direction (positive: the challenger is better).
    required : float
        The smallest improvement that counts: ``min_effect`` x the champion's value.
    p_value : float
    test : str
        ``"mcnemar (exact)"``, ``"mcnemar (chi-square)"`` or ``"paired bootstrap"``.
    alpha, min_effect : float
    gate_verdict : str
        ``"GO"`` or ``"NO-GO"``: the challenger through :func:`mlkit.evaluation.deployment_gate`.
    gate : pandas.DataFrame
        The gate's table.
    rows : int
        Rows compared.
    low, high : float
        Interval of the difference (paired bootstrap; NaN for McNemar).
    counts : dict
        McNemar's ``b`` (champion right, challenger wrong) and ``c`` (the reverse).
    """

    promote: bool
    reason: str
    metric: str
    greater_is_better: bool
    champion_value: float
    challenger_value: float
    difference: float
    improvement: float
    required: float
    p_value: float
    test: str
    alpha: float
    min_effect: float
    gate_verdict: str
    gate: pd.DataFrame
    rows: int
    low: float = float("nan")
    high: float = float("nan")
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the gate as records), e.g. for JSON or an MLflow run.

        Examples
        --------
        >>> import pandas as pd
        >>> d = Decision(False, "keep", "mae", False, 2.0, 2.0, 0.0, 0.0, 0.02, 1.0, "paired bootstrap",
        ...              0.05, 0.01, "GO", pd.DataFrame({"check": ["x"], "passed": [True]}), 100)
        >>> d.to_dict()["gate"]
        [{'check': 'x', 'passed': True}]
        """
        data = asdict(self)
        data["gate"] = self.gate.to_dict(orient="records")
        return data


def _estimator(model: Any) -> Any:
    """A fitted model, or the ``.model`` of a :class:`mlkit.registry.LoadedModel`."""
    inner = getattr(model, "model", None)
    model = inner if inner is not None and hasattr(inner, "predict") else model
    if not hasattr(model, "predict"):
        raise ParameterError(f"compare needs fitted models (with predict), or models loaded by "
                             f"mlkit.registry.load; got {type(model).__name__}.")
    return model


def _row_costs(uc: usecases.UseCase, y: np.ndarray, pred: np.ndarray, amounts: np.ndarray | None) -> np.ndarray:
    """Each row's cost under the use case's cost model (:func:`mlkit.evaluation.cost`, row by row)."""
    return np.array([
        evaluation.cost(uc, y[i:i + 1], pred[i:i + 1], amounts=None if amounts is None else amounts[i:i + 1])
        for i in range(len(y))
    ])  # fmt: skip


def compare(
    champion: Any,
    challenger: Any,
    X_recent: pd.DataFrame,
    y_recent: Any,
    *,
    use_case: str | usecases.UseCase,
    metric: str | None = None,
    min_effect: float = 0.01,
    alpha: float = 0.05,
    seed: int = 0,
    n_resamples: int = 1000,
    baseline: Any = None,
) -> Decision:
    """Champion or challenger? A paired test on the same recent rows, a minimum effect, and the gate.

    1. Both models score the same labelled recent rows.
    2. A paired test: for ``accuracy``, McNemar on every row; for ``recall``, McNemar on the
       actual positives (recall is the accuracy on them); for every other metric and for
       ``"cost"`` (the use case's cost model, per row), a paired bootstrap.
    3. The challenger must be better by at least ``min_effect`` x the champion's value (a
       relative margin: a real gain, not a rounding error), with p < ``alpha``.
    4. The challenger must pass the deployment gate of ``03_testing``
       (:func:`mlkit.evaluation.assess`: the use case's thresholds on the pessimistic end of
       bootstrap intervals, and beating a baseline) on the same rows.

    Promotion only when all hold.

    Parameters
    ----------
    champion, challenger
        Fitted pipelines, or models loaded with :func:`mlkit.registry.load`.
    X_recent : pandas.DataFrame
        Recent rows whose labels are known (the target column, if present, is ignored).
    y_recent : array-like
        Their labels.
    use_case : str or UseCase
    metric : str, optional
        Default the use case's primary metric; ``"cost"`` for the cost model.
    min_effect : float, default 0.01
        Relative margin the challenger must win by (0.01: 1% of the champion's value).
    alpha : float, default 0.05
        Significance level.
    seed, n_resamples : int
        Of the bootstraps (the paired test and the gate's intervals).
    baseline : fitted model, optional
        The gate's baseline (as in ``03_testing``, a baseline fitted on the challenger's
        training rows); default a no-skill model fitted on these rows: random guesses in
        their class shares (``DummyClassifier(strategy="stratified")``), or their mean.

    Returns
    -------
    Decision

    Raises
    ------
    ParameterError
        For an unknown metric, or ``alpha`` / ``min_effect`` out of range.
    DataError
        For rows and labels of different lengths, missing labels, or a metric undefined on
        these rows.

    Examples
    --------
    >>> from mlkit import datasets
    >>> uc = usecases.get("healthcare-diagnosis")
    >>> s = datasets.stream(uc, drift="concept", drift_start=0.5)
    >>> before, after = s.iloc[:250], s.iloc[300:450]
    >>> recent = s.iloc[450:]
    >>> old = training.build_pipeline(uc, before, family="linear").fit(*training.xy(before, uc))
    >>> new = training.build_pipeline(uc, after, family="linear").fit(*training.xy(after, uc))
    >>> decision = compare(old, new, recent, recent[uc.target], use_case=uc, n_resamples=300)
    >>> decision.promote, decision.test
    (True, 'mcnemar (chi-square)')
    >>> compare(new, old, recent, recent[uc.target], use_case=uc, n_resamples=300).promote
    False
    """
    uc = usecases.get(use_case)
    if uc.target is None:
        raise ParameterError(f"{uc.id} has no target: champion and challenger are compared on labelled rows.")
    name = metric or uc.primary_metric
    if name != "cost":
        evaluation.metric(name)
    _number(alpha, "alpha", 1e-9, 0.5, "0.05")
    _number(min_effect, "min_effect", 0, 10, "0.01 for 1%")
    if not isinstance(X_recent, pd.DataFrame):
        raise DataError(f"X_recent must be a DataFrame of recent rows, not {type(X_recent).__name__}.")
    y = _labels(y_recent, "y_recent", len(X_recent))
    if len(y) < 2:
        raise DataError(f"compare needs at least 2 labelled rows, got {len(y)}; wait for more labels.")
    X = X_recent.drop(columns=[uc.target], errors="ignore")
    champ, chall = _estimator(champion), _estimator(challenger)

    counts: dict[str, int] = {}
    low = high = float("nan")
    if name == "cost":
        greater = False
        amounts = X["amount"].to_numpy(dtype=float) if "amount" in X.columns else None
        a = _row_costs(uc, y, champ.predict(X), amounts)
        b = _row_costs(uc, y, chall.predict(X), amounts)
        test = paired_bootstrap(y, a, b, metric=_total, n_resamples=n_resamples, seed=seed)
    else:
        greater = evaluation.metric(name).greater_is_better
        a = evaluation.predictions_for(name, champ, X)
        b = evaluation.predictions_for(name, chall, X)
        test = _paired_test(name, uc, y, a, b, n_resamples=n_resamples, seed=seed)
    if isinstance(test, McNemar):
        champion_value = float(evaluation.metric(name)(y, a))
        challenger_value = float(evaluation.metric(name)(y, b))
        test_name, counts = f"mcnemar ({test.method})", {"b": test.b, "c": test.c}
    else:
        champion_value, challenger_value = test.value_a, test.value_b
        test_name, low, high = "paired bootstrap", test.low, test.high
    difference = challenger_value - champion_value
    improvement = difference if greater else -difference
    required = float(min_effect) * abs(champion_value)

    frame = X.assign(**{uc.target: y})
    if baseline is None:  # no skill: random guesses in the rows' class shares, or their mean
        baseline = DummyClassifier(strategy="stratified", random_state=seed) if uc.task == "classification" \
            else DummyRegressor(strategy="mean")
        baseline.fit(X, y)
    assessment = evaluation.assess(uc, chall, _estimator(baseline), frame, seed=seed, n_resamples=n_resamples)
    verdict = assessment.verdict

    significant = test.p_value < alpha and improvement > 0
    large = improvement >= required and improvement > 0
    promote = significant and large and verdict == "GO"
    shown = f"{name} {challenger_value:.4g} vs {champion_value:.4g} (improvement {improvement:+.4g})"
    if promote:
        reason = f"promote: {shown}, p = {test.p_value:.3g} < {alpha:g} ({test_name}), gate GO"
    elif improvement <= 0:
        reason = f"keep the champion: the challenger is not better ({shown})"
    elif not significant:
        reason = f"keep the champion: the gain could be chance ({shown}, p = {test.p_value:.3g} >= {alpha:g})"
    elif not large:
        reason = f"keep the champion: the gain is below the minimum effect ({shown} < {required:.4g} required)"
    else:
        failed = assessment.gate.loc[~assessment.gate["passed"], "check"].tolist()
        reason = f"keep the champion: the challenger fails the deployment gate ({'; '.join(failed)})"
    return Decision(promote, reason, name, greater, champion_value, challenger_value, difference, improvement,
                    required, float(test.p_value), test_name, float(alpha), float(min_effect), verdict,
                    assessment.gate, len(y), float(low), float(high), counts)


def _total(_: np.ndarray, costs: np.ndarray) -> float:
    """Total cost of a resample, from its rows' costs."""
    return float(np.sum(costs))


_total.__name__ = "cost"


def _paired_test(name: str, uc: usecases.UseCase, y: np.ndarray, a: np.ndarray, b: np.ndarray, *,
                 n_resamples: int, seed: int) -> McNemar | PairedBootstrap:
    """McNemar for accuracy (every row) and recall (the actual positives); a paired bootstrap otherwise."""
    if name == "accuracy":
        return mcnemar(y, a, b)
    if name == "recall":
        positive = y == (uc.positive_label if uc.positive_label is not None else 1)
        if not positive.any():
            raise DataError("recall needs actual positives among the recent rows, and there are none; "
                            "wait for more labels or compare on more rows.")
        return mcnemar(y[positive], a[positive], b[positive])
    return paired_bootstrap(y, a, b, metric=name, n_resamples=n_resamples, seed=seed)


# =========================================================================== registry


@dataclass(frozen=True)
class Recorded:
    """A decision written to MLflow: its run and what the ``champion`` alias names now."""

    run_id: str
    action: str
    champion: int | None


_TAG = "mlkit.decision"


def _log_decision(name: str, action: str, reason: str, tags: dict[str, Any], metrics: dict[str, float],
                  params: dict[str, Any]) -> str:
    from mlflow.entities import Metric, Param, RunTag

    from mlkit import registry

    c = registry.client()
    experiment = c.get_experiment_by_name(registry.EXPERIMENT)
    done = c.search_runs([experiment.experiment_id], filter_string=f"tags.`{_TAG}.model` = '{name}'",
                         max_results=10_000)
    step = len(done) + 1
    all_tags = {f"{_TAG}.model": name, f"{_TAG}.action": action, f"{_TAG}.reason": reason,
                f"{_TAG}.step": str(step), **{f"{_TAG}.{k}": "" if v is None else str(v) for k, v in tags.items()}}
    run = c.create_run(experiment.experiment_id, tags=all_tags, run_name=f"{action} {name} #{step}")
    finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
    c.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in finite.items()],
                params=[Param(k, str(v)) for k, v in params.items()], tags=[RunTag(k, v) for k, v in all_tags.items()])
    c.set_terminated(run.info.run_id)
    return run.info.run_id


def _champion(name: str) -> int | None:
    from mlkit import registry

    aliases = registry.client().get_registered_model(name).aliases
    return int(aliases["champion"]) if "champion" in aliases else None


def _run_of(name: str, version: int) -> str:
    from mlkit import registry

    return registry.client().get_model_version(name, str(int(version))).run_id


def record_decision(name: str, decision: Decision, *, champion_version: int, challenger_version: int) -> Recorded:
    """Write a :class:`Decision` to MLflow and, when it promotes, move the aliases.

    The evidence is an MLflow run in the ``mlkit`` experiment: tags name the model, the
    action (``promote`` or ``keep``), both versions and the runs that produced them, the
    test and the reason; metrics hold both values, the difference, the p-value and the
    rows; params the metric, ``alpha`` and ``min_effect``. On promotion the challenger
    becomes ``champion`` through :func:`mlkit.registry.promote`, which remembers the
    previous champion for :func:`roll_back`.

    Parameters
    ----------
    name : str
        The registered model's name.
    decision : Decision
        From :func:`compare`.
    champion_version, challenger_version : int
        The registry versions that were compared.

    Returns
    -------
    Recorded

    Raises
    ------
    mlkit.registry.RegistryError
        For an unknown model or version.
    ParameterError
        For something that is not a Decision.
    """
    from mlkit import registry

    if not isinstance(decision, Decision):
        raise ParameterError(f"record_decision needs the Decision compare() returns, not {type(decision).__name__}.")
    versions = {}
    for label, version in (("champion", champion_version), ("challenger", challenger_version)):
        _whole(version, f"{label}_version", 1, f"{label}_version=1")
        registry._version(name, None, int(version))  # a clear error for an unknown model or version
        versions[label] = int(version)
    action = "promote" if decision.promote else "keep"
    if decision.promote:
        registry.promote(name, versions["challenger"])
    champion = _champion(name)
    tags = {"champion_version": versions["champion"], "challenger_version": versions["challenger"],
            "champion_run": _run_of(name, versions["champion"]),
            "challenger_run": _run_of(name, versions["challenger"]),
            "test": decision.test, "metric": decision.metric, "gate": decision.gate_verdict, "champion_after": champion}
    metrics = {"champion_value": decision.champion_value, "challenger_value": decision.challenger_value,
               "difference": decision.difference, "improvement": decision.improvement,
               "required": decision.required, "p_value": decision.p_value, "rows": decision.rows,
               "low": decision.low, "high": decision.high}
    params = {"metric": decision.metric, "alpha": decision.alpha, "min_effect": decision.min_effect,
              "counts": json.dumps(decision.counts)}
    run_id = _log_decision(name, action, decision.reason, tags, metrics, params)
    return Recorded(run_id, action, champion)


def roll_back(name: str, reason: str) -> Recorded:
    """Move ``champion`` back to the version it named before the last promotion, and record why.

    Parameters
    ----------
    name : str
        The registered model's name.
    reason : str
        Why (e.g. ``"error rate doubled in the first hour"``), kept with the record.

    Returns
    -------
    Recorded
        ``champion`` is the restored version.

    Raises
    ------
    ParameterError
        For an empty reason.
    mlkit.registry.RegistryError
        When nothing was promoted over an earlier champion.
    """
    from mlkit import registry

    if not isinstance(reason, str) or not reason.strip():
        raise ParameterError("roll_back needs a reason, e.g. roll_back(name, 'recall fell after promotion').")
    before = _champion(name)
    restored = registry.rollback(name)
    tags = {"champion_version": before, "challenger_version": None, "champion_after": restored}
    run_id = _log_decision(name, "rollback", reason.strip(), tags, {}, {})
    return Recorded(run_id, "rollback", restored)


_DECISION_COLUMNS = ["step", "action", "champion_version", "challenger_version", "champion_after", "metric",
                     "champion_value", "challenger_value", "p_value", "test", "gate", "reason", "run_id"]


def decisions(name: str) -> pd.DataFrame:
    """Every decision recorded for model ``name``, oldest first.

    Returns
    -------
    pandas.DataFrame
        One row per decision: ``step``, ``action`` (promote, keep, rollback),
        ``champion_version``, ``challenger_version``, ``champion_after`` (what ``champion``
        named after it), ``metric``, ``champion_value``, ``challenger_value``, ``p_value``,
        ``test``, ``gate``, ``reason``, ``run_id``. Empty when nothing was recorded.
    """
    from mlkit import registry

    c = registry.client()
    experiment = c.get_experiment_by_name(registry.EXPERIMENT)
    runs = c.search_runs([experiment.experiment_id], filter_string=f"tags.`{_TAG}.model` = '{name}'",
                         max_results=10_000)
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics

        def version(key: str) -> Any:
            value = tags.get(f"{_TAG}.{key}", "")
            return int(value) if value.isdigit() else None

        rows.append({
            "step": int(tags[f"{_TAG}.step"]), "action": tags[f"{_TAG}.action"],
            "champion_version": version("champion_version"), "challenger_version": version("challenger_version"),
            "champion_after": version("champion_after"), "metric": tags.get(f"{_TAG}.metric", ""),
            "champion_value": metrics.get("champion_value", np.nan),
            "challenger_value": metrics.get("challenger_value", np.nan),
            "p_value": metrics.get("p_value", np.nan), "test": tags.get(f"{_TAG}.test", ""),
            "gate": tags.get(f"{_TAG}.gate", ""), "reason": tags[f"{_TAG}.reason"], "run_id": run.info.run_id,
        })
    table = pd.DataFrame(rows, columns=_DECISION_COLUMNS)
    for col in ("champion_version", "challenger_version", "champion_after"):
        table[col] = table[col].astype("Int64")
    return table.sort_values("step", kind="stable").reset_index(drop=True)
