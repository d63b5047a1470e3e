"""Alerts: rules over a per-window metrics table, alert records, and an optional loopback webhook.

A :class:`Rule` watches one column of a table with one row per window (the output of
:func:`mlkit.monitoring.performance.performance_over_time`, or a drift table with a drift
share per window). A window **breaches** when its value is above (or below) the
threshold; a missing value (labels not known yet) is no breach and breaks a run. The rule
fires once ``consecutive`` windows in a row have breached, then stays quiet for the next
``cooldown`` windows; a breach that still holds after the cooldown fires again (a
reminder). :func:`evaluate` is pure: the same rules and table give the same alerts.

:func:`send_webhook` posts each alert as JSON to a receiver on this machine (mlkit runs
offline, so other hosts are refused) and reports what each delivery got, without raising
when the receiver fails.

Examples
--------
>>> table = pd.DataFrame({"window": [0, 1, 2, 3, 4], "realised": [0.90, 0.70, 0.72, 0.71, 0.90]})
>>> rule = Rule("accuracy-drop", "realised", 0.8, direction="below", consecutive=2, cooldown=3)
>>> [(alert.window, alert.value) for alert in evaluate([rule], table)]
[(2, 0.72)]
>>> evaluate([rule], table)[0].message
'accuracy-drop: realised = 0.72 below 0.8 for 2 windows in a row (window 2)'
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from mlkit.errors import DataError, ParameterError

__all__ = ["DIRECTIONS", "Rule", "Alert", "Delivery", "evaluate", "alerts_frame", "send_webhook"]

DIRECTIONS = ("above", "below")
"""A rule breaches when the value is strictly above, or strictly below, its threshold."""


@dataclass(frozen=True)
class Rule:
    """One alerting rule over a column of a per-window table.

    Parameters
    ----------
    name : str
        Shown in alerts.
    metric : str
        The table's column to watch (``"realised"``, ``"estimated"``, ``"drift_share"``...).
    threshold : float
        The limit.
    direction : {"above", "below"}, default "above"
        Breach when the value is strictly above the threshold, or strictly below.
    consecutive : int, default 1
        Breaching windows in a row needed to fire.
    cooldown : int, default 0
        Windows after an alert during which the rule does not fire again.

    Raises
    ------
    ParameterError
        For an empty name or metric, a threshold that is not a finite number, an unknown
        direction, ``consecutive`` < 1 or ``cooldown`` < 0.

    Examples
    --------
    >>> Rule("drift", "drift_share", 0.5)
    Rule(name='drift', metric='drift_share', threshold=0.5, direction='above', consecutive=1, cooldown=0)
    """

    name: str
    metric: str
    threshold: float
    direction: str = "above"
    consecutive: int = 1
    cooldown: int = 0

    def __post_init__(self) -> None:
        for field in ("name", "metric"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field):
                raise ParameterError(f"Rule {field} must be a non-empty string, not {getattr(self, field)!r}.")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float, np.number)) \
                or not math.isfinite(self.threshold):
            raise ParameterError(f"Rule {self.name!r}: threshold must be a finite number, not {self.threshold!r}.")
        if self.direction not in DIRECTIONS:
            raise ParameterError(f"Rule {self.name!r}: direction must be 'above' or 'below', not {self.direction!r}.")
        for field, least in (("consecutive", 1), ("cooldown", 0)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ParameterError(f"Rule {self.name!r}: {field} must be a whole number of at least {least} "
                                     f"windows, not {value!r}.")

    def breaches(self, value: float) -> bool:
        """Whether one window's value breaches the rule (a missing value never does)."""
        if value is None or pd.isna(value):
            return False
        return bool(value > self.threshold) if self.direction == "above" else bool(value < self.threshold)


@dataclass(frozen=True)
class Alert:
    """One fired alert.

    Attributes
    ----------
    rule : str
        The rule's name.
    window : int or str
        The window that fired it (the table's ``window`` column, else its index).
    value : float
        The window's value.
    threshold : float
        The rule's threshold.
    message : str
        One line for a person.
    time : pandas.Timestamp or None
        When the window ended (the table's ``end`` column), if the table says.
    """

    rule: str
    window: Any
    value: float
    threshold: float
    message: str
    time: pd.Timestamp | None = None

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON-ready values (time as ISO 8601 text).

        Examples
        --------
        >>> Alert("r", 3, 0.7, 0.8, "r: ...", pd.Timestamp("2024-01-01", tz="UTC")).to_dict()["time"]
        '2024-01-01T00:00:00+00:00'
        """
        data = asdict(self)
        data["time"] = None if self.time is None else pd.Timestamp(self.time).isoformat()
        return data


def evaluate(rules: Rule | Sequence[Rule], table: pd.DataFrame, *, time_column: str = "end") -> list[Alert]:
    """Run rules over a per-window table, in row order; return the alerts, window by window.

    For each rule: a run counts breaching windows in a row (a window that does not breach,
    or has no value, resets it). The rule fires at a window whose run has reached
    ``consecutive``, unless it fired within the previous ``cooldown`` windows.

    Parameters
    ----------
    rules : Rule or sequence of Rule
        The rules (names must be distinct).
    table : pandas.DataFrame
        One row per window, in time order, with each rule's ``metric`` column; its
        ``window`` column (else its index) names the windows.
    time_column : str, default "end"
        The column giving each alert's ``time``, if the table has it.

    Returns
    -------
    list of Alert
        Ordered by window, then by the rules' order.

    Raises
    ------
    ParameterError
        For something that is not a rule, or two rules with one name.
    DataError
        For a table without a rule's column, or with a non-numeric one.

    Examples
    --------
    Always breaching: ``consecutive=2`` fires at the second window, then ``cooldown=2``
    keeps windows 2 and 3 quiet, and window 4 (still breaching) fires again:

    >>> table = pd.DataFrame({"drift_share": [0.6, 0.7, 0.8, 0.9, 0.9, 0.9]})
    >>> [alert.window for alert in evaluate(Rule("drift", "drift_share", 0.5, consecutive=2, cooldown=2), table)]
    [1, 4]
    """
    rules = [rules] if isinstance(rules, Rule) else list(rules)
    for rule in rules:
        if not isinstance(rule, Rule):
            raise ParameterError(f"evaluate takes Rule objects, not {type(rule).__name__}; build them with "
                                 f"Rule(name, metric, threshold, ...).")
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise ParameterError(f"Rule names must be distinct; {sorted({n for n in names if names.count(n) > 1})} "
                             f"appear more than once.")
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"table must be a DataFrame with one row per window, not {type(table).__name__}.")
    missing = sorted({rule.metric for rule in rules} - set(table.columns))
    if missing:
        raise DataError(f"The table has no column(s) {missing} that the rules watch; its columns are "
                        f"{list(table.columns)}. Fix the rules' metric names or compute those columns.")
    values: dict[str, np.ndarray] = {}
    for metric in {rule.metric for rule in rules}:
        try:
            values[metric] = pd.to_numeric(table[metric], errors="raise").to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise DataError(f"Column {metric!r} must hold numbers (one per window) for a rule to compare.") from None
    window_ids = table["window"].tolist() if "window" in table.columns else table.index.tolist()
    times = table[time_column].tolist() if time_column in table.columns else [None] * len(table)

    fired: list[tuple[int, int, Alert]] = []
    for order, rule in enumerate(rules):
        run, last_fired = 0, None
        for position, value in enumerate(values[rule.metric]):
            run = run + 1 if rule.breaches(value) else 0
            quiet = last_fired is not None and position - last_fired <= rule.cooldown
            if run >= rule.consecutive and not quiet:
                last_fired = position
                fired.append((position, order, _alert(rule, window_ids[position], float(value), run, times[position])))
    return [alert for _, _, alert in sorted(fired, key=lambda item: item[:2])]


def _alert(rule: Rule, window: Any, value: float, run: int, time: Any) -> Alert:
    window = window.item() if isinstance(window, np.generic) else window
    stamp = None if time is None or pd.isna(time) else pd.Timestamp(time)
    windows = "window" if run == 1 else f"{run} windows in a row"
    message = (f"{rule.name}: {rule.metric} = {value:.4g} {rule.direction} {rule.threshold:g} "
               f"for {windows} (window {window})")
    return Alert(rule.name, window, value, float(rule.threshold), message, stamp)


def alerts_frame(alerts: Iterable[Alert]) -> pd.DataFrame:
    """The alerts as a table, one row each (for reports and notebooks).

    Examples
    --------
    >>> alerts_frame([Alert("r", 3, 0.7, 0.8, "r: low")])
      rule  window  value  threshold message  time
    0    r       3    0.7        0.8  r: low  None
    """
    return pd.DataFrame([asdict(alert) for alert in alerts], columns=list(Alert.__dataclass_fields__))


# =========================================================================== the webhook


@dataclass(frozen=True)
class Delivery:
    """What posting one alert got: the HTTP status, or the error that stopped it.

    Attributes
    ----------
    alert : Alert
        The alert posted.
    ok : bool
        True when the receiver answered 2xx.
    status : int or None
        The HTTP status, None when no answer came.
    error : str or None
        Why it failed (a status line or a connection error), None when ``ok``.
    """

    alert: Alert
    ok: bool
    status: int | None
    error: str | None


def send_webhook(url: str, alerts: Iterable[Alert], timeout: float = 2.0) -> list[Delivery]:
    """POST each alert as JSON (:meth:`Alert.to_dict`) to a receiver on this machine.

    Parameters
    ----------
    url : str
        ``http://127.0.0.1:PORT/PATH`` (or ``localhost``, ``[::1]``): loopback only.
    alerts : iterable of Alert
        What to send, one request each.
    timeout : float, default 2.0
        Seconds to wait for each answer.

    Returns
    -------
    list of Delivery
        One per alert, in order. A receiver that is down, slow or answers an error is
        reported here, never raised.

    Raises
    ------
    ParameterError
        For a URL that is not http(s) on a loopback host (mlkit runs offline), or a
        timeout that is not positive.

    Examples
    --------
    With a receiver listening on port 8765 of this machine::

        deliveries = send_webhook("http://127.0.0.1:8765/alerts", evaluate(rules, table))
        [delivery.status for delivery in deliveries]   # [200, 200], or None with .error when it was down
    """
    import httpx

    _check_loopback(url)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ParameterError(f"timeout must be a positive number of seconds, not {timeout!r}.")
    deliveries = []
    with httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False) as client:
        for alert in alerts:
            try:
                response = client.post(url, json=alert.to_dict())
            except httpx.HTTPError as exc:
                deliveries.append(Delivery(alert, False, None, f"{type(exc).__name__}: {exc}"))
                continue
            ok = 200 <= response.status_code < 300
            error = None if ok else f"the receiver answered {response.status_code} {response.reason_phrase}"
            deliveries.append(Delivery(alert, ok, response.status_code, error))
    return deliveries


def _check_loopback(url: str) -> None:
    """Refuse anything but http(s) to this machine."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise ParameterError(f"{url!r} is not a URL; use e.g. http://127.0.0.1:8000/alerts.") from None
    host = parsed.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parsed.scheme not in ("http", "https") or not loopback:
        raise ParameterError(f"The webhook URL must be http(s) on a loopback host (127.0.0.1, localhost or [::1]), "
                             f"not {url!r}: mlkit runs offline. Run the receiver on this machine.")
