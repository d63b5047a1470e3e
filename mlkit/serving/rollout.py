"""Shadow and canary rollout: try a second model on live traffic without betting the answers on it.

Both are started by ``mlkit serve`` (``--shadow MODEL2`` or ``--canary MODEL2``) or by
:func:`mlkit.serving.app.create_app` (``shadow=`` or ``canary=``).

shadow
    Every request the served model answers is scored again by the shadow model, in a
    background thread (:class:`BackgroundScorer`), once the answer is final. The answer never
    depends on the shadow: not on its predictions, its errors, its speed, nor on whether it can
    read the request. The shadow's predictions go to the prediction log with
    ``served_by="shadow"``, its own model name and version, and the request's id, so they join
    the served model's rows for comparison (and an outcome sent to ``POST /feedback`` reaches
    both). Failures are counted (``mlkit_shadow_errors_total``), never raised.
canary
    A share of the requests (``percent``), chosen from the request id's sha256 (a client that
    retries with the same ``X-Request-ID`` goes the same way), is answered by the canary and
    logged with ``served_by="canary"``; the others by the champion. A canary that fails on a
    request (raises, returns NaN or the wrong number of predictions, cannot read the request)
    leaves that request to the champion. The champion also scores the canary's requests in
    the background (logged with ``served_by="shadow"``: predictions no client received), so
    the two can be compared before any outcome is known. :class:`CanaryMonitor` watches the
    guardrails and rolls the canary back (no more traffic, state ``"rolled_back"`` with the
    reason) as soon as one breaks.

The guardrails (:class:`Guardrails`). Each is judged only once it has ``min_rows`` rows;
0 turns off a minimum, 1 turns off the error rate. What each one sees, and what it cannot:

error_rate
    Rows the canary failed on / rows routed to it, above ``max_error_rate``. Sees a canary
    that crashes, returns NaN or the wrong number of predictions, or cannot read the
    requests. Blind to wrong answers.
agreement
    Share of paired rows (both models scored them) where the canary agrees with the
    champion, below ``min_agreement``. Sees a canary that answers differently. Blind to
    which model is right, and to a rare class: a model that never predicts the 1 % of
    fraud still agrees 99 % of the time.
rate_ratio (classification)
    For each class either model predicts on at least :data:`MIN_CLASS_ROWS` paired rows,
    the canary's count over the champion's, outside [``min_rate_ratio``, 1 /
    ``min_rate_ratio``]. Sees a canary that stops (or starts) predicting a class, even a
    rare one, without waiting for outcomes. Blind to whether a prediction is right.
labelled
    On the canary's rows that got an outcome (``POST /feedback``): the champion's balanced
    accuracy minus the canary's above ``max_drop`` (classification), or the canary's MAE
    above the champion's by more than ``max_drop``, relative (regression). Sees a canary that
    is worse at the task. Blind until outcomes arrive, and to a class before it has
    :data:`MIN_CLASS_ROWS` labelled rows.

Agreement: a classifier agrees when both predict the same label; a regressor when
``|canary - champion| <= 0.1 * |champion|`` (a champion prediction of 0 needs an exact 0).
The labelled guardrail compares both models on the *same* rows, so a busy or a quiet
period affects both alike; balanced accuracy (the mean of per-class recalls, over the
classes with at least 10 labelled rows) rather than accuracy, because a model that always
predicts the majority class keeps a high accuracy on rare-event data.

Examples
--------
>>> route_share("request-42") == route_share("request-42")  # the same id always goes the same way
True
>>> 0 <= route_share("request-42") < 1
True
>>> Guardrails(min_rows=20).min_agreement
0.8
"""

from __future__ import annotations

import collections
import hashlib
import logging
import math
import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from mlkit.errors import MlkitError, ParameterError
from mlkit.serving.schema import INTEGER, NUMERIC, Batch, InputError, Schema, finite_json

if TYPE_CHECKING:
    from mlkit.serving.model import ServedModel

__all__ = ["Guardrails", "CanaryMonitor", "BackgroundScorer", "route_share", "check_percent", "check_compatible",
           "adapt", "ShadowCollector", "CanaryCollector", "DEFAULT_PERCENT", "MIN_CLASS_ROWS", "REGRESSION_TOLERANCE"]

log = logging.getLogger("mlkit.serving")

DEFAULT_PERCENT = 10.0
"""Share of requests (%) a canary answers when no percent is given."""
MIN_CLASS_ROWS = 10
"""Rows a class needs before the per-class guardrails (rate_ratio, balanced accuracy) count it."""
REGRESSION_TOLERANCE = 0.10
"""Regression agreement: ``|canary - champion| <= REGRESSION_TOLERANCE * |champion|``."""
_OPEN_ROWS = 100_000  # canary rows remembered for pairing and labelling (the oldest are forgotten first)


# --------------------------------------------------------------------------- options and compatibility


@dataclass(frozen=True)
class Guardrails:
    """When a canary is rolled back (see the module docstring for what each one measures).

    Parameters
    ----------
    min_rows : int, default 50
        Rows a guardrail needs before it is judged.
    max_error_rate : float, default 0.02
        Largest share of canary rows the canary may fail on (1 turns it off).
    min_agreement : float, default 0.8
        Smallest share of paired rows where the canary must agree with the champion (0 turns it off).
    max_drop : float, default 0.05
        With outcomes: largest drop of balanced accuracy (classification, absolute) or rise of
        MAE (regression, relative to the champion's) the canary may show.
    min_rate_ratio : float, default 0.5
        Classification: how far (as a ratio) the canary's count of a class may stray from the
        champion's on the same rows, both ways (0 turns it off).

    Examples
    --------
    >>> Guardrails(max_error_rate=2)
    Traceback (most recent call last):
    ...
    mlkit.errors.ParameterError: max_error_rate (--canary-max-error-rate) must be a number from 0 to 1, not 2.
    """

    min_rows: int = 50
    max_error_rate: float = 0.02
    min_agreement: float = 0.8
    max_drop: float = 0.05
    min_rate_ratio: float = 0.5

    def __post_init__(self) -> None:
        def flag(name: str) -> str:
            return f"{name} (--canary-{name.replace('_', '-')})"

        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, (int, np.integer)) or self.min_rows < 1:
            raise ParameterError(f"{flag('min_rows')} must be a whole number of at least 1, not {self.min_rows!r}.")
        for name in ("max_error_rate", "min_agreement", "min_rate_ratio"):
            value = getattr(self, name)
            if not _number(value) or not 0 <= value <= 1:
                raise ParameterError(f"{flag(name)} must be a number from 0 to 1, not {value!r}.")
        if not _number(self.max_drop) or not 0 <= self.max_drop < math.inf:
            raise ParameterError(f"{flag('max_drop')} must be a number of at least 0, not {self.max_drop!r}.")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_percent(percent: Any) -> float:
    """The canary's share of requests, checked: more than 0 and less than 100.

    Examples
    --------
    >>> check_percent(20)
    20.0
    >>> try:
    ...     check_percent(100)
    ... except ParameterError as e:
    ...     print(str(e).partition(" (")[0], "promote it instead" in str(e))
    --canary-percent must be more than 0 and less than 100 True
    """
    if not _number(percent) or not 0 < percent < 100:
        promote = _number(percent) and percent >= 100
        hint = "; to send every request to the new model, promote it instead" if promote else ""
        raise ParameterError(f"--canary-percent must be more than 0 and less than 100 (the share of requests the "
                             f"canary answers), not {percent!r}{hint}.")
    return float(percent)


def _kind(type_: str) -> str:
    return "number" if type_ in NUMERIC | INTEGER else type_


def check_compatible(primary: ServedModel, other: ServedModel, role: str) -> None:
    """Refuse a second model that could not score the requests the served model takes.

    Every column ``other`` needs must be one the served model takes, of the same kind (numbers,
    text or booleans; a boolean column may feed a number column). A canary must also do the
    same task, or its guardrails would compare apples with pears.

    Raises
    ------
    MlkitError
        Saying which columns differ and what to do.
    """
    have = {c.name: c for c in primary.schema.columns}
    missing = [c.name for c in other.schema.columns if c.name not in have]
    if missing:
        raise MlkitError(
            f"The {role} model {other.name!r} needs column(s) {', '.join(map(repr, missing))}, which the served model "
            f"{primary.name!r} does not take ({primary.schema.describe()}), so it could score no request. "
            f"Give a {role} model trained on the served model's columns.")
    def fits(mine: str, theirs: str) -> bool:
        return _kind(mine) == _kind(theirs) or (mine == "boolean" and _kind(theirs) == "number")

    clash = [f"{c.name!r} ({have[c.name].type} here, {c.type} in the {role})" for c in other.schema.columns
             if not fits(have[c.name].type, c.type)]
    if clash:
        raise MlkitError(f"The {role} model {other.name!r} reads column(s) {', '.join(clash)} with another type "
                         f"than the served model {primary.name!r}; give a {role} model trained on the same "
                         f"column types.")
    if role == "canary" and other.task != primary.task:
        raise MlkitError(f"The canary model {other.name!r} does {other.task}, the served model {primary.name!r} does "
                         f"{primary.task}: their answers cannot be compared. Give a canary for the same task.")


def adapt(batch: Batch, source: Schema, target: Schema) -> Batch:
    """``batch`` (validated against ``source``) as ``target`` reads it; raises :class:`InputError` if it cannot.

    Columns of the same type are passed through; a number column of another numeric type
    is checked again (a fraction sent to an integer column fails here, for this model only).
    """
    if target.columns == source.columns:
        return batch
    types = {c.name: c.type for c in source.columns}
    columns = {}
    for column in target.columns:
        values = batch.columns[column.name]
        if types[column.name] != column.type:
            values = target._convert(column, values if column.numeric else values.tolist())
        columns[column.name] = values
    return Batch(columns, batch.n, dict(batch.params))


def route_share(request_id: str) -> float:
    """A number in [0, 1) drawn from the sha256 of ``request_id``: the same id always gives the same number.

    A request goes to the canary when ``route_share(id) < percent / 100``.
    """
    digest = hashlib.sha256(request_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


# --------------------------------------------------------------------------- scoring in the background


def _plain_predictions(model: ServedModel, batch: Batch, with_scores: bool) -> tuple[list, list | None]:
    """One model call: JSON-ready predictions (and scores), or an error for a model that misbehaves."""
    if with_scores:
        predictions, scores = model.predict_with_scores(batch)
    else:
        predictions, scores = model.predict_batch(batch), None
    predictions = np.asarray(predictions).tolist()
    if not isinstance(predictions, list) or len(predictions) != batch.n:
        raise ValueError(f"the model returned {len(predictions) if isinstance(predictions, list) else 1} "
                         f"prediction(s) for {batch.n} row(s)")
    if not finite_json(predictions):
        raise ValueError("the model returned NaN or an infinite prediction")
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).tolist()
        if len(scores) != batch.n:
            scores = None
    return predictions, scores


class BackgroundScorer:
    """Score requests with a second model in a thread of its own, off the request path.

    :meth:`submit` only queues (it never blocks, never raises); the thread merges what is
    waiting into one model call of at most ``max_rows`` rows (one by one if that call
    fails), writes the rows to ``logger`` with ``served_by`` and calls ``on_scored(ids,
    predictions)``. A request the model cannot read or score counts as an error. When
    ``max_pending`` requests are waiting, new ones are dropped (counted) rather than let a
    slow model eat the server's memory. :meth:`close` scores everything queued before it.

    Parameters
    ----------
    model
        The model that scores in the background.
    source
        The schema the requests were validated against (the served model's).
    logger
        A :class:`~mlkit.monitoring.store.PredictionLogger`, or None to log nothing.
    served_by
        The log's ``served_by`` for these rows.
    on_scored
        Called (in the scorer's thread) with the request's row ids and the predictions.
    max_rows, max_pending
        Rows per model call; requests waiting at most.

    Attributes
    ----------
    scored, errors, dropped : int
        Rows scored, rows the model failed on (or whose log rows were refused), rows never scored.
    """

    def __init__(self, model: ServedModel, source: Schema, *, logger: Any = None, served_by: str = "shadow",
                 on_scored: Callable[[list[str], list], None] | None = None, max_rows: int = 256,
                 max_pending: int = 10_000) -> None:
        self.model, self.source, self.logger, self.served_by = model, source, logger, served_by
        self.on_scored, self.max_rows, self.max_pending = on_scored, max_rows, max_pending
        self.scored = self.errors = self.dropped = 0
        self._queue: collections.deque[tuple[Batch, list[str]]] = collections.deque()
        self._outstanding = 0
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"mlkit-{served_by}-scorer", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Requests queued or being scored."""
        with self._cond:
            return self._outstanding

    def submit(self, batch: Batch, ids: list[str]) -> None:
        """Queue a request's rows (validated against ``source``) for scoring; never blocks or raises."""
        with self._cond:
            if self._closed or len(self._queue) >= self.max_pending:
                self.dropped += len(ids)
                dropped = self.dropped
            else:
                self._queue.append((batch, list(ids)))
                self._outstanding += 1
                self._cond.notify_all()
                return
        if dropped == len(ids) or dropped % 1000 < len(ids):
            log.warning("%s model %r is not keeping up: %d rows dropped so far (never scored)",
                        self.served_by, self.model.name, dropped)

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is scored; False if ``timeout`` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._outstanding == 0, timeout)

    def close(self, timeout: float | None = 60.0) -> None:
        """Score what is queued, then stop the thread (a warning if it took longer than ``timeout``)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("%s model %r: %d request(s) still unscored after %s s at shutdown", self.served_by,
                        self.model.name, self.pending, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                items = [self._queue.popleft()]
                rows = items[0][0].n
                while self._queue and rows + self._queue[0][0].n <= self.max_rows:
                    items.append(self._queue.popleft())
                    rows += items[-1][0].n
            try:
                self._score(items)
            except Exception:  # noqa: BLE001  (a bug here must not stop the thread)
                log.exception("%s scoring failed", self.served_by)
            finally:
                with self._cond:
                    self._outstanding -= len(items)
                    self._cond.notify_all()

    def _failed(self, rows: int, exc: BaseException) -> None:
        with self._cond:
            self.errors += rows
            first = self.errors == rows
        (log.warning if first else log.debug)("%s model %r failed on a request (%s); the answers are unaffected",
                                              self.served_by, self.model.name, type(exc).__name__,
                                              exc_info=log.isEnabledFor(logging.DEBUG))

    def _score(self, items: list[tuple[Batch, list[str]]]) -> None:
        ready = []
        for batch, ids in items:
            try:
                ready.append((adapt(batch, self.source, self.model.schema), ids))
            except Exception as exc:  # noqa: BLE001  (InputError: this model cannot read the request)
                self._failed(len(ids), exc)
        with_scores = self.logger is not None
        results: list | None = None
        if len(ready) > 1:
            try:
                first = ready[0][0]
                merged = Batch({c: np.concatenate([b.columns[c] for b, _ in ready]) for c in first.columns},
                               sum(b.n for b, _ in ready))
                predictions, scores = _plain_predictions(self.model, merged, with_scores)
                results, start = [], 0
                for batch, ids in ready:
                    end = start + batch.n
                    results.append((batch, ids, predictions[start:end], None if scores is None else scores[start:end]))
                    start = end
            except Exception:  # noqa: BLE001  (one by one, so a request the model fails on fails alone)
                results = None
        if results is None:
            results = []
            for batch, ids in ready:
                try:
                    results.append((batch, ids, *_plain_predictions(self.model, batch, with_scores)))
                except Exception as exc:  # noqa: BLE001
                    self._failed(len(ids), exc)
        if not results:
            return
        with self._cond:
            self.scored += sum(len(ids) for _, ids, _, _ in results)
        if self.logger is not None:
            self._log(results)
        if self.on_scored is not None:
            for _, ids, predictions, _ in results:
                try:
                    self.on_scored(ids, predictions)
                except Exception:  # noqa: BLE001
                    log.exception("recording %s predictions failed", self.served_by)

    def _log(self, results: list) -> None:
        from mlkit.monitoring.store import ServedRows

        model = self.model
        parts = [ServedRows(ids, batch.columns, predictions, scores, model.name, model.version, self.served_by)
                 for batch, ids, predictions, scores in results]
        try:
            done = self.logger.log_served(parts)
        except Exception as exc:  # noqa: BLE001  (the log is full or closed)
            self._failed(sum(len(p.request_ids) for p in parts), exc)
            return

        def settled(future: Any) -> None:
            try:
                errors = future.result()
            except Exception as exc:  # noqa: BLE001
                errors = [exc] * len(parts)
            for part, error in zip(parts, errors):
                if error is not None:
                    self._failed(len(part.request_ids), error)

        done.add_done_callback(settled)


# --------------------------------------------------------------------------- the canary's guardrails

_MISSING = object()


def _class_key(value: Any) -> Any:
    """A label or prediction as a comparable key: numbers (and numeric text) as floats, else text."""
    if isinstance(value, (bool, int, float)):
        return float(value)
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _number_or_none(value: Any) -> float | None:
    key = _class_key(value)
    return key if isinstance(key, float) else None


class CanaryMonitor:
    """Route requests to a canary, measure its guardrails, and roll it back when one breaks.

    Thread-safe: the server records canary answers and outcomes from its event loop and the
    champion's paired predictions from a :class:`BackgroundScorer` thread.

    Parameters
    ----------
    champion, canary
        The served model and the challenger.
    percent
        Share of requests (more than 0, less than 100) the canary answers while it runs.
    guardrails
        The thresholds; :class:`Guardrails` defaults when None.

    Examples
    --------
    >>> from mlkit.serving.model import ServedModel
    >>> schema = Schema.from_signature([{"name": "x", "type": "double"}])
    >>> def model(version):
    ...     return ServedModel("m", version, schema, "classification", "sklearn", "", lambda b: b.columns["x"] > 0)
    >>> monitor = CanaryMonitor(model("1"), model("2"), 50, Guardrails(min_rows=2))
    >>> monitor.record_failed(2)
    >>> monitor.status()["state"], monitor.status()["reason"]["guardrail"], monitor.routes("any id")
    ('rolled_back', 'error_rate', False)
    """

    def __init__(self, champion: ServedModel, canary: ServedModel, percent: float,
                 guardrails: Guardrails | None = None) -> None:
        self.champion, self.canary = champion, canary
        self.percent = check_percent(percent)
        self.guardrails = guardrails or Guardrails()
        self.classification = champion.task == "classification"
        self.state, self.reason = "running", None
        self.rows = self.errors = 0
        self.paired_rows = self.agreed = 0
        self.predicted: dict[str, collections.Counter] = {"champion": collections.Counter(),
                                                           "canary": collections.Counter()}
        self.labelled_rows = 0
        self._per_class: dict[Any, list[int]] = {}  # label -> [rows, champion right, canary right]
        self._abs_error = {"champion": 0.0, "canary": 0.0}
        self._open: collections.OrderedDict[str, list] = collections.OrderedDict()  # id -> [canary, champion, label]
        self._lock = threading.RLock()

    # ---- routing

    def routes(self, request_id: str) -> bool:
        """True when the request with this id goes to the canary (never once it is rolled back)."""
        return self.state == "running" and route_share(request_id) < self.percent / 100

    # ---- recording

    def record_failed(self, rows: int) -> None:
        """The canary failed on a request of ``rows`` rows (the champion answered it)."""
        with self._lock:
            self.rows += rows
            self.errors += rows
            self._judge()

    def record_answered(self, ids: Sequence[str], predictions: Sequence[Any]) -> None:
        """The canary answered these rows with these predictions."""
        with self._lock:
            self.rows += len(ids)
            for rid, prediction in zip(ids, predictions):
                self._open[rid] = [prediction, _MISSING, _MISSING]
                self._open.move_to_end(rid)
            while len(self._open) > _OPEN_ROWS:
                self._open.popitem(last=False)
            self._judge()

    def record_champion(self, ids: Sequence[str], predictions: Sequence[Any]) -> None:
        """The champion's predictions on rows the canary answered (scored in the background)."""
        with self._lock:
            for rid, prediction in zip(ids, predictions):
                entry = self._open.get(rid)
                if entry is None or entry[1] is not _MISSING:
                    continue
                entry[1] = prediction
                self._pair(entry[0], prediction)
                if entry[2] is not _MISSING:
                    self._label(rid, entry)
            self._judge()

    def record_labels(self, labels: Mapping[str, Any]) -> int:
        """Outcomes by request id (from ``POST /feedback``); returns how many were canary rows."""
        found = 0
        with self._lock:
            for rid, label in labels.items():
                entry = self._open.get(rid)
                if entry is None or entry[2] is not _MISSING:
                    continue
                found += 1
                entry[2] = label
                if entry[1] is not _MISSING:
                    self._label(rid, entry)
            self._judge()
        return found

    def _agree(self, canary: Any, champion: Any) -> bool:
        if self.classification:
            return _class_key(canary) == _class_key(champion)
        a, b = _number_or_none(canary), _number_or_none(champion)
        return a is not None and b is not None and abs(a - b) <= REGRESSION_TOLERANCE * abs(b)

    def _pair(self, canary: Any, champion: Any) -> None:
        self.paired_rows += 1
        self.agreed += self._agree(canary, champion)
        if self.classification:
            self.predicted["canary"][_class_key(canary)] += 1
            self.predicted["champion"][_class_key(champion)] += 1

    def _label(self, rid: str, entry: list) -> None:
        canary, champion, label = entry
        del self._open[rid]
        if self.classification:
            key = _class_key(label)
            counts = self._per_class.setdefault(key, [0, 0, 0])
            counts[0] += 1
            counts[1] += _class_key(champion) == key
            counts[2] += _class_key(canary) == key
            self.labelled_rows += 1
            return
        truth, a, b = _number_or_none(label), _number_or_none(canary), _number_or_none(champion)
        if truth is None or a is None or b is None:
            return  # an outcome that is not a number says nothing about a regressor
        self.labelled_rows += 1
        self._abs_error["canary"] += abs(a - truth)
        self._abs_error["champion"] += abs(b - truth)

    # ---- measuring

    def agreement(self) -> float | None:
        """Share of paired rows where the canary agrees with the champion (None before any)."""
        with self._lock:
            return self.agreed / self.paired_rows if self.paired_rows else None

    def labelled_metrics(self) -> tuple[float | None, float | None]:
        """(champion, canary): balanced accuracy on the classes with enough labelled rows, or MAE."""
        with self._lock:
            if self.classification:
                counted = [c for c in self._per_class.values() if c[0] >= MIN_CLASS_ROWS]
                if not counted:
                    return None, None
                return (float(np.mean([c[1] / c[0] for c in counted])), float(np.mean([c[2] / c[0] for c in counted])))
            if not self.labelled_rows:
                return None, None
            return self._abs_error["champion"] / self.labelled_rows, self._abs_error["canary"] / self.labelled_rows

    def rate_ratio(self) -> tuple[float | None, Any, int, int]:
        """The class whose predicted count differs most between the models, as ``(ratio, class, canary, champion)``.

        ``ratio`` is ``min(canary / champion, champion / canary)`` (0 when one model never
        predicts the class), over classes either model predicts at least :data:`MIN_CLASS_ROWS`
        times on the paired rows; None (regression, or no such class yet).
        """
        with self._lock:
            if not self.classification:
                return None, None, 0, 0
            worst: tuple[float | None, Any, int, int] = (None, None, 0, 0)
            canary, champion = self.predicted["canary"], self.predicted["champion"]
            for key in sorted(set(canary) | set(champion), key=str):
                a, b = canary[key], champion[key]
                if max(a, b) < MIN_CLASS_ROWS:
                    continue
                ratio = min(a, b) / max(a, b)
                if worst[0] is None or ratio < worst[0]:
                    worst = (ratio, key, a, b)
            return worst

    def _judge(self) -> None:
        """Roll back on the first guardrail that breaks (called with the lock held)."""
        if self.state != "running":
            return
        g = self.guardrails
        if self.rows >= g.min_rows and self.errors / self.rows > g.max_error_rate:
            self._roll_back("error_rate", self.errors / self.rows, g.max_error_rate, self.rows,
                            f"the canary failed on {self.errors} of {self.rows} rows")
            return
        if self.paired_rows >= g.min_rows:
            agreement = self.agreed / self.paired_rows
            if agreement < g.min_agreement:
                self._roll_back("agreement", agreement, g.min_agreement, self.paired_rows,
                                f"the canary agreed with the champion on {agreement:.1%} of {self.paired_rows} rows")
                return
            ratio, key, a, b = self.rate_ratio()
            if ratio is not None and ratio < g.min_rate_ratio:
                self._roll_back("rate_ratio", ratio, g.min_rate_ratio, self.paired_rows,
                                f"the canary predicted class {_show(key)} on {a} of {self.paired_rows} rows, the "
                                f"champion on {b}")
                return
        if self.labelled_rows >= g.min_rows:
            champion, canary = self.labelled_metrics()
            if champion is None or canary is None:
                return
            if self.classification:
                drop = champion - canary
                what = f"balanced accuracy {canary:.3f} against the champion's {champion:.3f}"
            else:
                drop = (canary - champion) / champion if champion > 0 else (math.inf if canary > champion else 0.0)
                what = f"MAE {canary:.4g} against the champion's {champion:.4g}"
            if drop > g.max_drop:
                self._roll_back("labelled", drop, g.max_drop, self.labelled_rows,
                                f"on {self.labelled_rows} labelled rows the canary's {what}")

    def _roll_back(self, guardrail: str, value: float, threshold: float, rows: int, what: str) -> None:
        self.state = "rolled_back"
        self.reason = {"guardrail": guardrail, "value": _finite(value), "threshold": threshold, "rows": rows,
                       "message": f"{what}; {guardrail} {_fmt(value)} broke the threshold {threshold:g}"}
        log.warning("canary %r version %s rolled back, every request now goes to %r version %s: %s",
                    self.canary.name, self.canary.version, self.champion.name, self.champion.version,
                    self.reason["message"])

    # ---- reporting

    def status(self) -> dict[str, Any]:
        """What ``GET /canary`` answers: the canary, its state, its measurements and why it was rolled back."""
        with self._lock:
            champion_metric, canary_metric = self.labelled_metrics()
            ratio, key, _, _ = self.rate_ratio()
            return {
                "canary": self.canary.name, "version": self.canary.version,
                "champion": self.champion.name, "champion_version": self.champion.version,
                "percent": self.percent if self.state == "running" else 0.0, "requested_percent": self.percent,
                "state": self.state,
                "rows": self.rows, "errors": self.errors,
                "error_rate": self.errors / self.rows if self.rows else None,
                "paired_rows": self.paired_rows, "agreement": self.agreement(),
                "rate_ratio": ratio, "rate_ratio_class": None if key is None else _show(key),
                "labelled_rows": self.labelled_rows,
                "metric": "balanced_accuracy" if self.classification else "mae",
                "champion_metric": champion_metric, "canary_metric": canary_metric,
                "guardrails": asdict(self.guardrails),
                "reason": None if self.reason is None else dict(self.reason),
            }


def _show(key: Any) -> Any:
    return int(key) if isinstance(key, float) and key.is_integer() else key


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _fmt(value: float) -> str:
    return f"{value:.3g}" if math.isfinite(value) else "infinite"


# --------------------------------------------------------------------------- Prometheus


class ShadowCollector:
    """Prometheus counters of a :class:`BackgroundScorer` (``mlkit_<prefix>_rows_total`` and so on)."""

    def __init__(self, scorer: BackgroundScorer, prefix: str, what: str) -> None:
        self.scorer, self.prefix, self.what = scorer, prefix, what

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s, p = self.scorer, self.prefix
        yield CounterMetricFamily(f"mlkit_{p}_rows", f"Rows {self.what} scored.", value=s.scored)
        yield CounterMetricFamily(f"mlkit_{p}_errors", f"Rows {self.what} failed on (never seen by clients).",
                                  value=s.errors)
        yield CounterMetricFamily(f"mlkit_{p}_dropped", f"Rows {self.what} never scored (too far behind).",
                                  value=s.dropped)
        yield GaugeMetricFamily(f"mlkit_{p}_pending", f"Requests waiting for {self.what}.", value=s.pending)


class CanaryCollector:
    """Prometheus gauges of a :class:`CanaryMonitor` (``mlkit_canary_*``)."""

    def __init__(self, monitor: CanaryMonitor) -> None:
        self.monitor = monitor

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        status = self.monitor.status()
        nan = float("nan")
        for name, value, text in (
            ("percent", status["percent"], "Share of requests (%) the canary answers now (0 once rolled back)."),
            ("rolled_back", float(status["state"] == "rolled_back"), "1 once a guardrail rolled the canary back."),
            ("rows", status["rows"], "Rows routed to the canary."),
            ("errors", status["errors"], "Rows the canary failed on (the champion answered them)."),
            ("agreement", status["agreement"], "Share of paired rows where the canary agrees with the champion."),
            ("labelled_rows", status["labelled_rows"], "Canary rows with an outcome."),
            ("champion_metric", status["champion_metric"], "The champion's labelled metric on the canary's rows."),
            ("canary_metric", status["canary_metric"], "The canary's labelled metric on its rows."),
        ):
            yield GaugeMetricFamily(f"mlkit_canary_{name}", text, value=nan if value is None else float(value))
