"""Deploying to the cloud: what it costs and how many machines it needs.

This module backs notebook ``06_deploy_cloud``. It has one section so far:

* **Cost and scaling model** -- a month of traffic, three ways to serve it (your own
  servers, an autoscaled group of cloud instances, serverless functions), what each
  costs at *example* prices, where the cheapest option changes (break-even), and how long
  requests wait in a queue of ``c`` servers (the M/M/c model).

Deployable bundles per cloud platform go in their own section. Only numpy, pandas and the
standard library are imported at module level; matplotlib and scipy are imported by the
functions that need them, so ``import mlkit.cloud`` stays light.

Examples
--------
>>> prices = ExamplePrices()
>>> profile = traffic_profile(5.0, peak_to_mean=2.0)
>>> costs = monthly_costs(profile, 0.020, prices)
>>> list(costs["option"])
['on_premise', 'autoscaled', 'serverless']
>>> str(costs.loc[costs["monthly_cost"].idxmin(), "option"])
'serverless'
>>> round(mmc(arrival_rate=1.0, service_rate=1.0, servers=2)["p_wait"], 4)
0.3333
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from mlkit.errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover - only for type checkers
    from matplotlib.axes import Axes

__all__ = [
    # Cost and scaling model
    "HOURS_PER_MONTH",
    "OPTIONS",
    "OPTION_LABELS",
    "ExamplePrices",
    "OptionCost",
    "traffic_profile",
    "on_premise_cost",
    "autoscaled_cost",
    "serverless_cost",
    "monthly_costs",
    "cost_curve",
    "break_even",
    "plot_costs",
    "mmc",
    "mmc_table",
    "plot_mmc",
]


# ====================================================================================
# Cost and scaling model
# ====================================================================================
#
# The whole model in a few lines (every figure is per month):
#
#   capacity of one machine      = workers / latency_s                  (requests/s at 100 % busy)
#   on-premise servers           = max(min_servers, ceil(peak_rps / (server capacity * u)))
#   on-premise cost              = servers * (hardware / amortisation months + power + operations)
#   cloud instances in hour h    = clip(ceil(rps[h] / (instance capacity * u)), min, max)
#   cloud cost                   = instance-hours * price per instance-hour
#   serverless cost              = requests / 1e6 * price per million
#                                  + requests * billed duration * memory GB * price per GB-second
#
# where u is the target utilisation (0.6: machines are sized to be 60 % busy, leaving
# headroom for bursts within the hour and for a machine that fails).

HOURS_PER_MONTH = 730.0
"""Hours in an average month (365 * 24 / 12). A profile of another length is scaled to it."""

OPTIONS: tuple[str, ...] = ("on_premise", "autoscaled", "serverless")
"""The deployment options, as the ``option`` values and the :func:`cost_curve` column names."""

OPTION_LABELS: dict[str, str] = {
    "on_premise": "on-premise servers",
    "autoscaled": "autoscaled cloud instances",
    "serverless": "serverless functions",
}
"""A readable name of each option, for legends and notes."""

_COLOURS = {"on_premise": "#1f77b4", "autoscaled": "#ff7f0e", "serverless": "#2ca02c"}


# ----------------------------------------------------------------------- checks


def _number(name: str, value: Any, *, low: float = 0.0, low_open: bool = False, high: float | None = None,
            example: str = "") -> float:
    """Return ``value`` as a float, or raise ParameterError saying what to pass."""
    hint = f" (e.g. {name}={example})" if example else ""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"{name} must be a number{hint}, got {value!r}.")
    v = float(value)
    bound = f"greater than {low:g}" if low_open else f"at least {low:g}"
    if high is not None:
        bound += f" and at most {high:g}"
    if not math.isfinite(v) or v < low or (low_open and v == low) or (high is not None and v > high):
        raise ParameterError(f"{name} must be a finite number {bound}{hint}, got {value!r}.")
    return v


def _whole(name: str, value: Any, *, low: int = 0, example: str = "") -> int:
    """Return ``value`` as an int, or raise ParameterError saying what to pass."""
    hint = f" (e.g. {name}={example})" if example else ""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < low:
        raise ParameterError(f"{name} must be a whole number of at least {low}{hint}, got {value!r}.")
    return int(value)


def _ceil(x: Any) -> np.ndarray:
    """Ceil that ignores float dust: 120 / (100 * 0.6) is 2 machines, not 3."""
    return np.ceil(np.round(np.asarray(x, dtype=float), 9))


def _profile(profile_rps: Any) -> np.ndarray:
    """Check a profile of hourly requests per second and return it as a float array."""
    try:
        rps = np.asarray(profile_rps, dtype=float)
    except (TypeError, ValueError):
        raise ParameterError(
            "profile_rps must be numbers: the mean requests per second of each hour "
            "(e.g. traffic_profile(5.0)), got something that is not numeric."
        ) from None
    if rps.ndim != 1 or rps.size == 0:
        raise ParameterError(
            f"profile_rps must be a non-empty 1-D array of hourly requests per second "
            f"(e.g. traffic_profile(5.0)), got shape {rps.shape}."
        )
    if not np.all(np.isfinite(rps)) or np.any(rps < 0):
        raise ParameterError(
            "profile_rps must hold finite, non-negative requests per second; "
            "replace missing hours (NaN) with 0 or an estimate first."
        )
    return rps


# ----------------------------------------------------------------------- example prices


@dataclass(frozen=True)
class ExamplePrices:
    """EXAMPLE prices for the cost model: illustrative round numbers, NOT quotes.

    They are of the order of magnitude of public list prices seen in recent years, chosen
    so the three options cross at traffic levels worth discussing. Real prices differ by
    provider, region, instance type, contract, discount and date, and they change: replace
    every field with your own figures before deciding anything.

    Parameters
    ----------
    currency : str
        Label of the currency, used in text and axis labels only.
    server_hardware : float
        Purchase price of one on-premise server (one-off).
    server_amortisation_months : float
        Months over which the purchase is spread (its useful life).
    server_power_kw : float
        Average power drawn by one server, cooling share included, in kW.
    power_price_per_kwh : float
        Price of one kWh of electricity.
    server_ops_per_month : float
        Operations cost of one server per month: rack space, network, support contract,
        a share of an administrator's time.
    instance_hour : float
        Price of one cloud instance (2 vCPU) for one hour, on demand.
    serverless_per_million_requests : float
        Serverless price per million requests.
    serverless_per_gb_second : float
        Serverless price per GB-second (memory configured x billed duration).
    serverless_billing_increment_s : float
        The billed duration of a request is rounded up to a multiple of this (1 ms).
    serverless_free_requests, serverless_free_gb_seconds : float
        A monthly free tier, subtracted before charging. 0 by default (no free tier).

    Examples
    --------
    >>> p = ExamplePrices()
    >>> round(p.server_monthly_cost, 2)
    409.43
    >>> ExamplePrices(instance_hour=0.08).instance_hour
    0.08
    """

    currency: str = "USD"
    server_hardware: float = 10_000.0
    server_amortisation_months: float = 48.0
    server_power_kw: float = 0.35
    power_price_per_kwh: float = 0.20
    server_ops_per_month: float = 150.0
    instance_hour: float = 0.10
    serverless_per_million_requests: float = 0.20
    serverless_per_gb_second: float = 0.0000167
    serverless_billing_increment_s: float = 0.001
    serverless_free_requests: float = 0.0
    serverless_free_gb_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.currency, str) or not self.currency:
            raise ParameterError(f"currency must be a non-empty label such as 'USD', got {self.currency!r}.")
        for f in fields(self):
            if f.name == "currency":
                continue
            positive = f.name in ("server_amortisation_months", "serverless_billing_increment_s")
            _number(f"ExamplePrices.{f.name}", getattr(self, f.name), low_open=positive, example=repr(f.default))

    @property
    def server_power_per_month(self) -> float:
        """Electricity for one server for one month: kW x 730 h x price per kWh."""
        return self.server_power_kw * HOURS_PER_MONTH * self.power_price_per_kwh

    @property
    def server_monthly_cost(self) -> float:
        """Fixed cost of one on-premise server per month: amortised hardware + power + operations."""
        return self.server_hardware / self.server_amortisation_months + self.server_power_per_month + self.server_ops_per_month

    def describe(self) -> str:
        """Return the prices as a text block that says they are examples.

        Examples
        --------
        >>> print(ExamplePrices().describe().splitlines()[0])
        EXAMPLE prices in USD -- illustrative, not quotes; replace them with your own.
        """
        c = self.currency
        hw = self.server_hardware / self.server_amortisation_months
        return "\n".join([
            f"EXAMPLE prices in {c} -- illustrative, not quotes; replace them with your own.",
            f"on-premise server : hardware {self.server_hardware:,.0f} over {self.server_amortisation_months:g} months"
            f" = {hw:,.2f} {c}/month",
            f"                    power {self.server_power_kw:g} kW x {HOURS_PER_MONTH:g} h x {self.power_price_per_kwh:g}"
            f" {c}/kWh = {self.server_power_per_month:,.2f} {c}/month",
            f"                    operations {self.server_ops_per_month:,.2f} {c}/month",
            f"                    total {self.server_monthly_cost:,.2f} {c} per server per month",
            f"cloud instance    : {self.instance_hour:g} {c} per instance-hour"
            f" ({self.instance_hour * HOURS_PER_MONTH:,.2f} {c} for a whole month)",
            f"serverless        : {self.serverless_per_million_requests:g} {c} per million requests"
            f" + {self.serverless_per_gb_second:g} {c} per GB-second"
            f" (billed in steps of {self.serverless_billing_increment_s * 1000:g} ms)",
            f"                    free tier: {self.serverless_free_requests:,.0f} requests"
            f" and {self.serverless_free_gb_seconds:,.0f} GB-seconds a month",
        ])


@dataclass(frozen=True)
class OptionCost:
    """What one deployment option costs for one month of traffic.

    Attributes
    ----------
    option : str
        One of :data:`OPTIONS`.
    monthly_cost : float
        Cost per month, in the prices' currency.
    units : int
        Machines it needs at the peak: servers, instances, or concurrent serverless executions.
    unit_label : str
        What ``units`` counts.
    machine_hours : float
        Server-hours or instance-hours per month (NaN for serverless).
    unmet_hours : int
        Hours of the profile in which ``max_instances`` could not keep the group at its
        target utilisation (autoscaled only).
    excess_requests : float
        Requests per month above the full (100 %) capacity of the group at its maximum:
        they are dropped or queue without bound (autoscaled only).
    notes : str
        One sentence on how the figure was reached.
    """

    option: str
    monthly_cost: float
    units: int
    unit_label: str
    machine_hours: float
    unmet_hours: int = 0
    excess_requests: float = 0.0
    notes: str = ""


# ----------------------------------------------------------------------- traffic


def traffic_profile(
    mean_rps: float,
    *,
    peak_to_mean: float = 2.0,
    days: int = 30,
    weekend_factor: float = 0.6,
    peak_hour: float = 14.0,
    start_weekday: int = 0,
) -> np.ndarray:
    """Return a deterministic month of traffic: mean requests per second of every hour.

    The shape is a daily bump times a day-of-week factor::

        rps[d, h] = A * day[d] * exp(kappa * cos(2 * pi * (h - peak_hour) / 24))

    ``day[d]`` is 1 on weekdays and ``weekend_factor`` on Saturdays and Sundays. The
    ``exp(kappa * cos)`` bump is quiet at night and busiest at ``peak_hour``; ``kappa`` is
    solved for so that max / mean equals ``peak_to_mean`` exactly, and ``A`` so that the
    mean equals ``mean_rps`` exactly.

    Parameters
    ----------
    mean_rps : float
        Mean requests per second over the whole profile.
    peak_to_mean : float, default 2.0
        Busiest hour divided by the mean. 1 is flat traffic; business apps are often 2-4.
    days : int, default 30
        Length of the profile in days (``24 * days`` hours).
    weekend_factor : float, default 0.6
        Weekend traffic relative to weekdays (above 1 for a leisure app).
    peak_hour : float, default 14.0
        Hour of the day (0-24) with the most traffic.
    start_weekday : int, default 0
        Weekday of the first day, 0 = Monday ... 6 = Sunday.

    Returns
    -------
    numpy.ndarray
        ``24 * days`` hourly values in requests per second.

    Examples
    --------
    >>> rps = traffic_profile(10.0, peak_to_mean=3.0)
    >>> rps.shape
    (720,)
    >>> round(float(rps.mean()), 6), round(float(rps.max() / rps.mean()), 6)
    (10.0, 3.0)
    """
    mean_rps = _number("mean_rps", mean_rps, example="5.0")
    days = _whole("days", days, low=1, example="30")
    weekend_factor = _number("weekend_factor", weekend_factor, low=0.0, low_open=True, example="0.6")
    peak_hour = _number("peak_hour", peak_hour, low=0.0, high=24.0, example="14")
    start_weekday = _whole("start_weekday", start_weekday, low=0, example="0 (Monday)")
    if start_weekday > 6:
        raise ParameterError(f"start_weekday must be 0 (Monday) to 6 (Sunday), got {start_weekday}.")

    weekday = (start_weekday + np.arange(days)) % 7
    day = np.where(weekday >= 5, weekend_factor, 1.0)          # (days,)
    cos = np.cos(2 * np.pi * (np.arange(24) - peak_hour) / 24)  # (24,)

    # The profile is separable (day x hour), so max / mean = (max day / mean day) * (max bump / mean bump).
    day_ratio = day.max() / day.mean()
    n_top = int(np.sum(cos >= cos.max() - 1e-12))       # hours tied for the daily peak
    low, high = day_ratio, day_ratio * 24 / n_top         # kappa = 0 (flat day) .. kappa -> infinity
    peak_to_mean = _number("peak_to_mean", peak_to_mean, low=1.0, example="2.0")
    if not (low - 1e-12 <= peak_to_mean < high * (1 - 1e-6)):
        raise ParameterError(
            f"peak_to_mean={peak_to_mean:g} cannot be reached with weekend_factor={weekend_factor:g}: "
            f"pass a value from {low:.3f} to below {high:.1f} (or weekend_factor=1 for a flat week)."
        )

    def hour_ratio(kappa: float) -> float:  # max / mean of the daily bump; rises with kappa
        bump = np.exp(kappa * (cos - cos.max()))  # shifted by the max to avoid overflow
        return float(bump.max() / bump.mean())

    target = peak_to_mean / day_ratio
    if target <= 1.0 + 1e-12:
        kappa = 0.0
    else:
        from scipy.optimize import brentq

        hi = 1.0
        while hour_ratio(hi) < target:
            hi *= 2.0
        kappa = brentq(lambda k: hour_ratio(k) - target, 0.0, hi, xtol=1e-13, rtol=1e-15)
    shape = day[:, None] * np.exp(kappa * (cos - cos.max()))[None, :]
    return (mean_rps * shape / shape.mean()).ravel()


# ----------------------------------------------------------------------- three options


def _machine_capacity(latency_s: float, workers: int) -> float:
    """Requests per second one machine serves when every worker is busy all the time."""
    return workers / latency_s


def on_premise_cost(
    profile_rps: Any,
    latency_s: float,
    prices: ExamplePrices,
    *,
    target_utilisation: float = 0.6,
    min_servers: int = 2,
    server_workers: int = 32,
) -> OptionCost:
    """Cost of serving the profile on your own servers, sized for its busiest hour.

    ``servers = max(min_servers, ceil(peak_rps / (server_workers / latency_s * target_utilisation)))``;
    each costs :attr:`ExamplePrices.server_monthly_cost` whether it is busy or idle.

    Examples
    --------
    >>> on_premise_cost([100.0] * 24, 0.02, ExamplePrices()).units
    2
    >>> on_premise_cost([1000.0] * 24, 0.02, ExamplePrices()).units  # 1000 / (1600 * 0.6) -> 2
    2
    >>> on_premise_cost([1000.0] * 24, 0.02, ExamplePrices(), server_workers=16).units  # 1000 / (800 * 0.6)
    3
    """
    rps = _profile(profile_rps)
    latency_s = _number("latency_s", latency_s, low_open=True, example="0.02 for 20 ms")
    u = _number("target_utilisation", target_utilisation, low_open=True, high=1.0, example="0.6")
    min_servers = _whole("min_servers", min_servers, low=1, example="2")
    server_workers = _whole("server_workers", server_workers, low=1, example="32")

    capacity = _machine_capacity(latency_s, server_workers)
    servers = max(min_servers, int(_ceil(rps.max() / (capacity * u))))
    mean_busy = rps.mean() / (servers * capacity)
    return OptionCost(
        option="on_premise",
        monthly_cost=servers * prices.server_monthly_cost,
        units=servers,
        unit_label="servers",
        machine_hours=servers * HOURS_PER_MONTH,
        notes=(
            f"{servers} servers of {capacity:,.0f} req/s each, sized for the peak of {rps.max():,.1f} req/s "
            f"at {u:.0%} utilisation (at least {min_servers}); they run all month, on average {mean_busy:.0%} busy."
        ),
    )


def autoscaled_cost(
    profile_rps: Any,
    latency_s: float,
    prices: ExamplePrices,
    *,
    target_utilisation: float = 0.6,
    min_instances: int = 1,
    max_instances: int = 20,
    instance_workers: int = 2,
) -> OptionCost:
    """Cost of an autoscaled group of cloud instances that follows the traffic hour by hour.

    In hour ``h`` the group runs
    ``clip(ceil(rps[h] / (instance_workers / latency_s * target_utilisation)), min_instances, max_instances)``
    instances and pays each instance-hour. Hours that would need more than
    ``max_instances`` are counted in ``unmet_hours``; requests beyond the group's full
    capacity in those hours are counted in ``excess_requests``.

    Examples
    --------
    >>> r = autoscaled_cost([10.0] * 12 + [500.0] * 12, 0.02, ExamplePrices(), max_instances=5)
    >>> r.units, r.unmet_hours
    (5, 12)
    """
    rps = _profile(profile_rps)
    latency_s = _number("latency_s", latency_s, low_open=True, example="0.02 for 20 ms")
    u = _number("target_utilisation", target_utilisation, low_open=True, high=1.0, example="0.6")
    min_instances = _whole("min_instances", min_instances, low=0, example="1")
    max_instances = _whole("max_instances", max_instances, low=1, example="20")
    instance_workers = _whole("instance_workers", instance_workers, low=1, example="2")
    if min_instances > max_instances:
        raise ParameterError(
            f"min_instances ({min_instances}) must not exceed max_instances ({max_instances}); "
            "raise max_instances or lower min_instances."
        )

    capacity = _machine_capacity(latency_s, instance_workers)
    needed = _ceil(rps / (capacity * u))                      # instances each hour would need
    running = np.clip(needed, min_instances, max_instances)   # what the group is allowed to run
    scale = HOURS_PER_MONTH / rps.size                        # profile hours -> one month
    unmet = int(np.sum(needed > max_instances))
    excess = float(np.sum(np.maximum(rps - max_instances * capacity, 0.0)) * 3600 * scale)
    instance_hours = float(running.sum() * scale)
    notes = (
        f"{min_instances}-{max_instances} instances of {capacity:,.0f} req/s each at {u:.0%} target utilisation; "
        f"{running.mean():.2f} on average, {int(running.max())} at the peak."
    )
    if unmet:
        notes += (
            f" In {unmet} of {rps.size} hours max_instances could not keep up"
            f" ({excess:,.0f} requests a month beyond full capacity are dropped or queued)."
        )
    return OptionCost(
        option="autoscaled",
        monthly_cost=instance_hours * prices.instance_hour,
        units=int(running.max()),
        unit_label="instances at the peak",
        machine_hours=instance_hours,
        unmet_hours=unmet,
        excess_requests=excess,
        notes=notes,
    )


def serverless_cost(
    profile_rps: Any,
    latency_s: float,
    prices: ExamplePrices,
    *,
    serverless_memory_gb: float = 2.0,
) -> OptionCost:
    """Cost of serving every request as a serverless function call, billed per request and GB-second.

    ``requests * price_per_million / 1e6 + requests * billed_duration * memory_gb * price_per_gb_second``,
    after the free tier. Cold starts and concurrency limits are not modelled; ``units`` is
    the peak number of concurrent executions (Little's law: peak rps x duration).

    Examples
    --------
    >>> r = serverless_cost([1.0] * 730, 0.02, ExamplePrices(), serverless_memory_gb=1.0)
    >>> round(r.monthly_cost, 4)  # 2.628 M requests x (0.20 / 1e6 + 0.02 s x 1 GB x 0.0000167)
    1.4034
    """
    rps = _profile(profile_rps)
    latency_s = _number("latency_s", latency_s, low_open=True, example="0.02 for 20 ms")
    memory_gb = _number("serverless_memory_gb", serverless_memory_gb, low_open=True, example="2.0")

    step = prices.serverless_billing_increment_s
    billed_s = float(_ceil(latency_s / step)) * step
    requests = float(rps.sum() * 3600 * HOURS_PER_MONTH / rps.size)
    gb_seconds = requests * billed_s * memory_gb
    cost = (
        max(requests - prices.serverless_free_requests, 0.0) / 1e6 * prices.serverless_per_million_requests
        + max(gb_seconds - prices.serverless_free_gb_seconds, 0.0) * prices.serverless_per_gb_second
    )
    concurrency = int(_ceil(rps.max() * billed_s))
    return OptionCost(
        option="serverless",
        monthly_cost=cost,
        units=concurrency,
        unit_label="concurrent executions at the peak",
        machine_hours=float("nan"),
        notes=(
            f"{requests / 1e6:,.2f} M requests x {billed_s * 1000:g} ms billed x {memory_gb:g} GB"
            f" = {gb_seconds:,.0f} GB-s; cold starts and concurrency limits not modelled."
        ),
    )


_SIZING = {
    "on_premise": ("target_utilisation", "min_servers", "server_workers"),
    "autoscaled": ("target_utilisation", "min_instances", "max_instances", "instance_workers"),
    "serverless": ("serverless_memory_gb",),
}
_SIZING_NAMES = sorted({n for names in _SIZING.values() for n in names})


def monthly_costs(
    profile_rps: Any,
    latency_s: float,
    prices: ExamplePrices,
    *,
    target_utilisation: float = 0.6,
    min_instances: int = 1,
    max_instances: int = 20,
    min_servers: int = 2,
    server_workers: int = 32,
    instance_workers: int = 2,
    serverless_memory_gb: float = 2.0,
) -> pd.DataFrame:
    """Monthly cost of serving a traffic profile on-premise, autoscaled in the cloud, and serverless.

    Parameters
    ----------
    profile_rps : array-like
        Mean requests per second of each hour (e.g. :func:`traffic_profile`). A profile
        that is not 730 hours long is scaled to a month of 730 hours.
    latency_s : float
        Service time of one request on one worker, in seconds (20 ms -> 0.02).
    prices : ExamplePrices
        The example prices to use.
    target_utilisation : float, default 0.6
        How busy servers and instances are allowed to get when sizing (0-1].
    min_instances, max_instances : int, default 1 and 20
        Bounds of the autoscaled group.
    min_servers : int, default 2
        Fewest on-premise servers (two, so one can fail or be patched).
    server_workers, instance_workers : int, default 32 and 2
        Requests one server / one instance works on at the same time (its cores).
    serverless_memory_gb : float, default 2.0
        Memory configured for the function (a model and its libraries need room).

    Returns
    -------
    pandas.DataFrame
        One row per option (the fields of :class:`OptionCost`).

    Examples
    --------
    >>> df = monthly_costs(traffic_profile(5.0), 0.02, ExamplePrices())
    >>> df[["option", "units"]].values.tolist()
    [['on_premise', 2], ['autoscaled', 1], ['serverless', 1]]
    """
    if not isinstance(prices, ExamplePrices):
        raise ParameterError(
            f"prices must be an ExamplePrices (e.g. ExamplePrices() or ExamplePrices(instance_hour=0.08)), "
            f"got {type(prices).__name__}."
        )
    rps = _profile(profile_rps)
    rows = [
        on_premise_cost(rps, latency_s, prices, target_utilisation=target_utilisation,
                        min_servers=min_servers, server_workers=server_workers),
        autoscaled_cost(rps, latency_s, prices, target_utilisation=target_utilisation,
                        min_instances=min_instances, max_instances=max_instances, instance_workers=instance_workers),
        serverless_cost(rps, latency_s, prices, serverless_memory_gb=serverless_memory_gb),
    ]
    df = pd.DataFrame([asdict(r) for r in rows])
    df.attrs["currency"] = prices.currency
    return df


# ----------------------------------------------------------------------- cost curve and break-even


def cost_curve(
    mean_rps_values: Sequence[float],
    latency_s: float,
    prices: ExamplePrices,
    *,
    peak_to_mean: float = 2.0,
    weekend_factor: float = 0.6,
    days: int = 30,
    **sizing: Any,
) -> pd.DataFrame:
    """Monthly cost of each option for a range of mean traffic levels (same daily/weekly shape).

    Parameters
    ----------
    mean_rps_values : sequence of float
        Mean requests per second to evaluate, increasing (``np.geomspace(1, 1000, 60)``).
    latency_s, prices
        As in :func:`monthly_costs`.
    peak_to_mean, weekend_factor, days
        Shape of the profile, as in :func:`traffic_profile`.
    **sizing
        Any keyword option of :func:`monthly_costs` (``max_instances=50``, ...).

    Returns
    -------
    pandas.DataFrame
        Columns ``mean_rps``, one cost column per option (:data:`OPTIONS`), ``cheapest``,
        ``on_premise_servers``, ``autoscaled_instances`` (at the peak) and
        ``autoscaled_unmet_hours``. Where the autoscaled group cannot keep up
        (``max_instances`` reached) its cost is NaN: it does not serve that traffic.

    Examples
    --------
    >>> curve = cost_curve([1, 10, 100, 1000], 0.02, ExamplePrices(), max_instances=100)
    >>> curve["cheapest"].tolist()
    ['serverless', 'serverless', 'autoscaled', 'on_premise']
    """
    unknown = sorted(set(sizing) - set(_SIZING_NAMES))
    if unknown:
        raise ParameterError(f"Unknown option(s) {', '.join(unknown)} for cost_curve; use {', '.join(_SIZING_NAMES)}.")
    x = np.asarray(mean_rps_values, dtype=float)
    if x.ndim != 1 or x.size < 2 or not np.all(np.isfinite(x)) or np.any(x < 0) or np.any(np.diff(x) <= 0):
        raise ParameterError(
            "mean_rps_values must be at least two increasing, non-negative traffic levels "
            "(e.g. np.geomspace(1, 1000, 60))."
        )
    shape = traffic_profile(1.0, peak_to_mean=peak_to_mean, weekend_factor=weekend_factor, days=days)
    rows = []
    for m in x:
        df = monthly_costs(shape * m, latency_s, prices, **sizing).set_index("option")
        row: dict[str, Any] = {"mean_rps": float(m)}
        row.update(df["monthly_cost"].to_dict())
        if df.loc["autoscaled", "unmet_hours"] > 0:
            row["autoscaled"] = float("nan")
        row["on_premise_servers"] = int(df.loc["on_premise", "units"])
        row["autoscaled_instances"] = int(df.loc["autoscaled", "units"])
        row["autoscaled_unmet_hours"] = int(df.loc["autoscaled", "unmet_hours"])
        rows.append(row)
    curve = pd.DataFrame(rows)
    curve["cheapest"] = curve[list(OPTIONS)].idxmin(axis=1, skipna=True)
    curve = curve[["mean_rps", *OPTIONS, "cheapest", "on_premise_servers", "autoscaled_instances",
                   "autoscaled_unmet_hours"]]
    curve.attrs.update(currency=prices.currency, latency_s=float(latency_s), peak_to_mean=float(peak_to_mean))
    return curve


def break_even(curve: pd.DataFrame) -> list[dict[str, Any]]:
    """Traffic levels where the cheapest option changes, by linear interpolation between grid points.

    Between two neighbouring rows where the cheapest option changes from ``a`` to ``b``,
    the difference ``d = cost_a - cost_b`` goes from negative to positive; the break-even
    traffic is where the straight line between the two differences crosses zero:
    ``x = x0 + (x1 - x0) * d0 / (d0 - d1)``. On-premise cost rises in steps (one more
    server), so the answer is as sharp as the grid: use a finer grid near a crossing for
    a sharper figure.

    Parameters
    ----------
    curve : pandas.DataFrame
        What :func:`cost_curve` returns.

    Returns
    -------
    list of dict
        One per change, in order of traffic: ``mean_rps``, ``monthly_cost`` (of both
        options there), ``from`` (cheapest below) and ``to`` (cheapest above).

    Examples
    --------
    >>> curve = cost_curve(np.geomspace(1, 1000, 40), 0.02, ExamplePrices(), max_instances=100)
    >>> [(b["from"], b["to"]) for b in break_even(curve)]
    [('serverless', 'autoscaled'), ('autoscaled', 'on_premise')]
    """
    missing = [c for c in ("mean_rps", *OPTIONS) if c not in getattr(curve, "columns", [])]
    if missing:
        raise ParameterError(f"break_even needs the table cost_curve returns; missing column(s) {', '.join(missing)}.")
    x = curve["mean_rps"].to_numpy(float)
    costs = curve[list(OPTIONS)].to_numpy(float)
    found = []
    for i in range(len(x) - 1):
        row0, row1 = costs[i], costs[i + 1]
        if np.all(np.isnan(row0)) or np.all(np.isnan(row1)):
            continue
        a, b = OPTIONS[int(np.nanargmin(row0))], OPTIONS[int(np.nanargmin(row1))]
        if a == b:
            continue
        ia, ib = OPTIONS.index(a), OPTIONS.index(b)
        d0, d1 = row0[ia] - row0[ib], row1[ia] - row1[ib]
        if np.isnan(d0) or np.isnan(d1) or d0 == d1:  # one option appears or vanishes here: no crossing
            continue
        t = min(max(d0 / (d0 - d1), 0.0), 1.0)
        found.append({
            "mean_rps": float(x[i] + (x[i + 1] - x[i]) * t),
            "monthly_cost": float(row0[ia] + (row1[ia] - row0[ia]) * t),
            "from": a,
            "to": b,
        })
    return found


def plot_costs(curve: pd.DataFrame, break_evens: list[dict[str, Any]] | None = None, ax: Axes | None = None) -> Axes:
    """Plot monthly cost against mean traffic, one line per option, break-even points marked.

    Each axis is logarithmic when its values span more than a factor of 20 (traffic) or
    100 (cost), so cheap and expensive options can be read on one figure; on log-log axes a
    cost proportional to traffic (serverless) is a straight line of slope 1.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> curve = cost_curve(np.geomspace(1, 1000, 30), 0.02, ExamplePrices(), max_instances=100)
    >>> ax = plot_costs(curve, break_even(curve))
    >>> ax.get_xlabel()
    'mean traffic (requests/s)'
    >>> plt.close(ax.figure)
    """
    import matplotlib.pyplot as plt

    if break_evens is None:
        break_evens = break_even(curve)
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    currency = curve.attrs.get("currency", "currency")
    x = curve["mean_rps"].to_numpy(float)
    for option in OPTIONS:
        ax.plot(x, curve[option], color=_COLOURS[option], label=OPTION_LABELS[option], linewidth=1.8)
    if "autoscaled_unmet_hours" in curve and (curve["autoscaled_unmet_hours"] > 0).any():
        first = x[int(np.argmax(curve["autoscaled_unmet_hours"].to_numpy() > 0))]
        ax.axvline(first, color=_COLOURS["autoscaled"], linestyle=":", linewidth=1)
        ax.annotate("max_instances reached", (first, 0.03), xycoords=("data", "axes fraction"),
                    ha="right", va="bottom", rotation=90, fontsize=7, color=_COLOURS["autoscaled"])
    if break_evens:
        bx = [b["mean_rps"] for b in break_evens]
        by = [b["monthly_cost"] for b in break_evens]
        ax.plot(bx, by, "o", color="black", markersize=6, zorder=5, label="break-even")
        for i, b in enumerate(break_evens):
            ax.annotate(
                f"{b['mean_rps']:,.0f} req/s\n{b['from'].replace('_', '-')} → {b['to'].replace('_', '-')}",
                (b["mean_rps"], b["monthly_cost"]), xytext=(8, -26 if i % 2 == 0 else 12),
                textcoords="offset points", fontsize=7, arrowprops={"arrowstyle": "-", "linewidth": 0.6},
            )
    if x.min() > 0 and x.max() / x.min() > 20:
        ax.set_xscale("log")
    positive = curve[list(OPTIONS)].to_numpy(float)
    positive = positive[np.isfinite(positive) & (positive > 0)]
    if positive.size and positive.max() / positive.min() > 100:
        ax.set_yscale("log")
    ax.set_title("Monthly cost of each deployment option (EXAMPLE prices)")
    ax.set_xlabel("mean traffic (requests/s)")
    ax.set_ylabel(f"cost ({currency} per month)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return ax


# ----------------------------------------------------------------------- M/M/c queue


def _erlang_c(offered_load: float, servers: int) -> float:
    """Probability that an arrival waits (Erlang C), via the stable Erlang B recursion.

    ``B(0) = 1``, ``B(k) = a B(k-1) / (k + a B(k-1))`` never overflows (no factorials or
    powers), then ``C = B / (1 - rho (1 - B))`` with ``rho = a / c``.
    """
    a, b = offered_load, 1.0
    for k in range(1, servers + 1):
        b = a * b / (k + a * b)
    rho = a / servers
    return b / (1.0 - rho * (1.0 - b))


def _response_survival(t: float, mu: float, theta: float, c_wait: float) -> float:
    """P(T > t) for T = Wq + S: S ~ Exp(mu); Wq = 0 with prob. 1 - C, else Exp(theta).

    ``P(T > t) = exp(-mu t) + C mu (exp(-mu t) - exp(-theta t)) / (theta - mu)``. The second term
    is computed as ``C mu exp(-m t) (1 - exp(-|d| t)) / |d|`` with ``m = min(mu, theta)`` and
    ``d = theta - mu`` (``expm1``; ``t`` when d = 0), so it neither overflows nor cancels.
    """
    d = abs(theta - mu)
    h = t if d * t < 1e-12 else -math.expm1(-d * t) / d
    return math.exp(-mu * t) + c_wait * mu * math.exp(-min(mu, theta) * t) * h


def mmc(arrival_rate: float, service_rate: float, servers: int) -> dict[str, Any]:
    """Waiting and response times of an M/M/c queue: Poisson arrivals, exponential service, c servers.

    Times come in the unit of the rates (rates per second -> seconds).

    * ``rho = lambda / (c mu)``, the utilisation of each server.
    * ``p_wait`` = Erlang C, the probability an arrival finds every server busy,
      computed from the Erlang B recursion (stable for c in the hundreds).
    * ``wq = C / (c mu - lambda)``, the mean wait; ``w = wq + 1 / mu``, the mean response time.
    * ``wq_p95``: the wait is 0 with probability 1 - C, else exponential with rate
      ``c mu - lambda``, so ``P(Wq > t) = C exp(-(c mu - lambda) t)`` and
      ``wq_p = max(0, ln(C / (1 - p)) / (c mu - lambda))``.
    * ``w_p50``, ``w_p95``, ``w_p99``: EXACT percentiles of the response time ``T = Wq + S``,
      found by numeric root finding on its survival function (the mixture of
      ``Exp(mu)`` and ``Exp(c mu - lambda) + Exp(mu)``), not an approximation.

    An unstable queue (``rho >= 1``) grows without bound: the result says ``stable: False``
    with infinite waits instead of raising.

    Parameters
    ----------
    arrival_rate : float
        Requests arriving per unit time (lambda), at least 0.
    service_rate : float
        Requests one server completes per unit time (mu = 1 / service time), above 0.
    servers : int
        Number of servers (c), at least 1.

    Returns
    -------
    dict
        ``arrival_rate``, ``service_rate``, ``servers``, ``offered_load`` (lambda / mu),
        ``rho``, ``stable``, ``p_wait``, ``wq``, ``wq_p95``, ``w``, ``w_p50``, ``w_p95``, ``w_p99``.

    Examples
    --------
    >>> r = mmc(arrival_rate=0.5, service_rate=1.0, servers=1)
    >>> r["rho"], r["p_wait"], r["w"]  # M/M/1: P(wait) = rho, W = 1 / (mu - lambda)
    (0.5, 0.5, 2.0)
    >>> round(r["w_p95"], 4)  # M/M/1 response time is Exp(mu - lambda): ln(20) / 0.5
    5.9915
    >>> mmc(arrival_rate=3.0, service_rate=1.0, servers=2)["stable"]
    False
    """
    lam = _number("arrival_rate", arrival_rate, example="50 (requests/s)")
    mu = _number("service_rate", service_rate, low_open=True, example="1 / 0.02 for a 20 ms service time")
    c = _whole("servers", servers, low=1, example="4")
    a = lam / mu
    rho = a / c
    result: dict[str, Any] = {
        "arrival_rate": lam, "service_rate": mu, "servers": c, "offered_load": a, "rho": rho,
    }
    if rho >= 1.0:
        inf = float("inf")
        result.update(stable=False, p_wait=1.0, wq=inf, wq_p95=inf, w=inf, w_p50=inf, w_p95=inf, w_p99=inf)
        return result

    from scipy.optimize import brentq

    p_wait = _erlang_c(a, c)
    theta = c * mu - lam  # rate at which the queue drains while everyone is busy
    wq = p_wait / theta
    result.update(stable=True, p_wait=p_wait, wq=wq,
                  wq_p95=max(0.0, math.log(p_wait / 0.05) / theta) if p_wait > 0 else 0.0,
                  w=wq + 1.0 / mu)
    for p in (0.50, 0.95, 0.99):
        hi = 1.0 / mu + 1.0 / theta
        while _response_survival(hi, mu, theta, p_wait) > 1.0 - p:
            hi *= 2.0
        t = brentq(lambda s: _response_survival(s, mu, theta, p_wait) - (1.0 - p), 0.0, hi, xtol=1e-14 * hi, rtol=1e-12)
        result[f"w_p{round(p * 100)}"] = t
    return result


def mmc_table(arrival_rates: Sequence[float], service_time_s: float, servers: int | Sequence[int]) -> pd.DataFrame:
    """:func:`mmc` for a range of arrival rates (and server counts), one row each, times in seconds.

    Parameters
    ----------
    arrival_rates : sequence of float
        Requests per second to evaluate.
    service_time_s : float
        Mean service time of one request, in seconds (mu = 1 / service_time_s).
    servers : int or sequence of int
        Number of servers; several give one block of rows each.

    Examples
    --------
    >>> t = mmc_table([10, 40, 49, 60], 0.02, 1)
    >>> t["stable"].tolist()
    [True, True, True, False]
    >>> round(float(t.loc[0, "w"]) * 1000, 2)  # 20 ms / (1 - 0.2)
    25.0
    """
    st = _number("service_time_s", service_time_s, low_open=True, example="0.02 for 20 ms")
    counts = [servers] if isinstance(servers, (int, np.integer)) and not isinstance(servers, bool) else list(servers)
    if not counts:
        raise ParameterError("servers must be a whole number or a list of them (e.g. servers=[1, 2, 4]).")
    rates = np.atleast_1d(np.asarray(arrival_rates, dtype=float))
    rows = [mmc(lam, 1.0 / st, c) for c in counts for lam in rates]
    table = pd.DataFrame(rows)
    table.insert(2, "service_time_s", st)
    return table


def plot_mmc(table: pd.DataFrame, ax: Axes | None = None, *, percentile: str = "w_p95") -> Axes:
    """Plot mean and percentile response time (ms) against traffic, one colour per server count.

    A dotted vertical line marks each capacity ``c / service_time``, where the queue
    becomes unstable and waits grow without bound.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> ax = plot_mmc(mmc_table(np.linspace(1, 95, 30), 0.02, [1, 2]))
    >>> ax.get_ylabel()
    'response time (ms)'
    >>> plt.close(ax.figure)
    """
    import matplotlib.pyplot as plt

    if percentile not in ("w_p50", "w_p95", "w_p99"):
        raise ParameterError(f"percentile must be 'w_p50', 'w_p95' or 'w_p99', got {percentile!r}.")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    st = float(table["service_time_s"].iloc[0])
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (c, part) in enumerate(table.groupby("servers", sort=True)):
        colour = colours[i % len(colours)]
        ok = part[part["stable"]]
        ax.plot(ok["arrival_rate"], ok["w"] * 1000, color=colour, label=f"c={c}: mean")
        ax.plot(ok["arrival_rate"], ok[percentile] * 1000, color=colour, linestyle="--",
                label=f"c={c}: p{percentile[3:]}")
        ax.axvline(c / st, color=colour, linestyle=":", linewidth=1, label=f"c={c}: capacity")
    finite = table.loc[table["stable"], percentile] * 1000
    if len(finite):
        ax.set_ylim(0, min(float(finite.max()) * 1.05, 20 * st * 1000))
    ax.set_title(f"M/M/c response time vs load (service time {st * 1000:g} ms)")
    ax.set_xlabel("arrival rate (requests/s)")
    ax.set_ylabel("response time (ms)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return ax
