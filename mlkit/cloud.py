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


# ====================================================================================
# Deployable bundles
# ====================================================================================
#
# A bundle is a folder a learner can hand to a cloud platform: the verified model, the
# platform's entry point (a container's start command, Azure ML's score.py, a Lambda
# handler), pinned requirements, and a README with the commands to build and deploy it
# (text only: mlkit never runs them). Every entry point can be run locally, without a
# container engine, with the platform's environment variables; tests/test_cloud_bundles.py
# does exactly that.
#
#   target     entry point                          the model is read from
#   sagemaker  Dockerfile, ENTRYPOINT ["serve"]     /opt/ml/model, else the copy in the image ($SM_MODEL_DIR wins)
#   vertex     Dockerfile, CMD python -m mlkit.serving  the copy in the image; port and routes from $AIP_*
#   azure      src/score.py: init() and run()       $AZUREML_MODEL_DIR/model
#   lambda     handler.py: handler(event, context)  model/ next to the handler, loaded at import (cold start)
#
# The containers and score.py run mlkit's own server code, so mlkit's source is copied into
# the bundle (mlkit is not on PyPI). The Lambda handler does not import mlkit: it needs only
# numpy and its runtime's library, because a .zip function must fit in 250 MB unzipped.

import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import stat  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from mlkit.errors import DataError, MlkitError  # noqa: E402

__all__ += [
    # Deployable bundles
    "TARGETS",
    "BUNDLE_RUNTIMES",
    "LAMBDA_UNZIPPED_LIMIT",
    "BundleReport",
    "bundle",
    "dependency_sizes",
    "add_arguments",
    "run_from_args",
]

TARGETS: tuple[str, ...] = ("sagemaker", "vertex", "azure", "lambda")
"""The platforms :func:`bundle` writes a bundle for."""

BUNDLE_RUNTIMES: tuple[str, ...] = ("sklearn", "onnx")
"""How a bundle runs the model: the scikit-learn pipeline (skops file) or its ONNX export."""

LAMBDA_UNZIPPED_LIMIT = 262_144_000
"""AWS Lambda's limit on a .zip function's unzipped size, layers included: 250 MB of 2**20 bytes."""

_MB = 2**20
_MODEL_DIR = "model"
_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

# What each entry point imports, found by serving a model and listing the distributions of the
# imported modules. mlflow-skinny (not mlflow) is enough: a packaged model is read from a folder.
_MODEL_LIBS = ("numpy", "pandas", "scikit-learn", "scipy", "skops", "pyyaml", "mlflow-skinny")
_SERVER_LIBS = _MODEL_LIBS + ("fastapi", "uvicorn", "prometheus-client")
_LAMBDA_LIBS = {"sklearn": ("numpy", "pandas", "scikit-learn", "skops"), "onnx": ("numpy", "onnxruntime")}


@dataclass(frozen=True)
class BundleReport:
    """What :func:`bundle` wrote, and how big it is once installed.

    Attributes
    ----------
    target : str
        One of :data:`TARGETS`.
    path : pathlib.Path
        The bundle's folder.
    runtime : str
        ``"sklearn"`` or ``"onnx"``.
    files : list of str
        Every file of the bundle, relative to ``path``.
    size_bytes : int
        Total size of those files (model, entry point, mlkit's source where copied).
    dependency_bytes : int
        Installed size of the requirements and everything they require, measured on this
        machine's installed distributions (see :func:`dependency_sizes`).
    requirements : list of str
        The pinned requirements, as written into the bundle.
    fits : bool or None
        Lambda only: whether ``size_bytes + dependency_bytes`` fits in
        :data:`LAMBDA_UNZIPPED_LIMIT`. None for the other targets.
    notes : list of str
        What to know before deploying: size verdicts, recommendations, assumptions.

    Examples
    --------
    >>> r = BundleReport("lambda", Path("out"), "onnx", ["handler.py"], 2 * 2**20, 148 * 2**20,
    ...                  ["onnxruntime==1.32.0"], True, ["fits"])
    >>> r.total_bytes == 150 * 2**20
    True
    >>> print(str(r).splitlines()[3])
      unzipped total: 150.0 MB of Lambda's 250 MB limit -> fits
    """

    target: str
    path: Path
    runtime: str
    files: list[str]
    size_bytes: int
    dependency_bytes: int
    requirements: list[str]
    fits: bool | None
    notes: list[str]

    @property
    def total_bytes(self) -> int:
        """Bundle files plus installed dependencies."""
        return self.size_bytes + self.dependency_bytes

    def __str__(self) -> str:
        lines = [
            f"{self.target} bundle (runtime {self.runtime}) in {self.path}",
            f"  files: {len(self.files)}, {self.size_bytes / _MB:.1f} MB",
            f"  dependencies: {len(self.requirements)} pinned, {self.dependency_bytes / _MB:.1f} MB installed",
        ]
        if self.fits is not None:
            verdict = "fits" if self.fits else "DOES NOT FIT"
            lines.append(f"  unzipped total: {self.total_bytes / _MB:.1f} MB of Lambda's "
                         f"{LAMBDA_UNZIPPED_LIMIT / _MB:.0f} MB limit -> {verdict}")
        lines += [f"  - {note}" for note in self.notes]
        return "\n".join(lines)


# ----------------------------------------------------------------------- dependency sizes


def _normal(name: str) -> str:
    """A distribution name in PEP 503 form: ``PyYAML`` -> ``pyyaml``, ``scikit_learn`` -> ``scikit-learn``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(text: str) -> tuple[str, bool]:
    """(name, needed) of one ``Requires-Dist`` line: extras' requirements and other platforms' are not needed."""
    try:
        from packaging.requirements import Requirement

        req = Requirement(text)
        return req.name, req.marker is None or bool(req.marker.evaluate({"extra": ""}))
    except ImportError:  # pragma: no cover - packaging is installed wherever pip is
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", text)
        return (name.group(1) if name else text), "extra" not in text.partition(";")[2]


def _closure(requirements: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The installed distributions ``requirements`` need, recursively, and the names not installed here."""
    from importlib import metadata

    found: dict[str, Any] = {}
    missing: list[str] = []
    todo = [_normal(re.split(r"[\s\[<>=!~;]", r.strip(), maxsplit=1)[0]) for r in requirements]
    while todo:
        name = todo.pop()
        if name in found or name in missing:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        found[name] = dist
        for line in dist.requires or []:
            required, needed = _requirement(line)
            if needed:
                todo.append(_normal(required))
    return found, sorted(missing)


def _installed_bytes(dist: Any, *, trimmed: bool = False) -> int:
    """Sum of the sizes of the files a distribution's RECORD lists, as installed.

    ``trimmed`` leaves out compiled ``.pyc`` files and the libraries' own test suites, which a
    deployment can strip by hand (a common, fragile trick for Lambda). Measured once per
    installed distribution and version, then remembered (several bundles share libraries).
    """
    key = (str(dist.locate_file("")), dist.metadata["Name"], dist.version, trimmed)
    if key not in _SIZES:
        _SIZES[key] = _sum_record(dist, trimmed)
    return _SIZES[key]


_SIZES: dict[tuple[str, str, str, bool], int] = {}


def _sum_record(dist: Any, trimmed: bool) -> int:
    total = 0
    for file in dist.files or []:
        if trimmed and (file.suffix == ".pyc" or {"tests", "testing"} & set(file.parts)):
            continue
        try:
            total += os.path.getsize(file.locate())
        except OSError:
            total += int(file.size or 0)
    return total


def dependency_sizes(requirements: Sequence[str]) -> dict[str, int]:
    """Installed size in bytes of every distribution ``requirements`` need, largest first.

    The closure is followed through each distribution's ``Requires-Dist`` metadata (extras
    and other platforms' requirements left out), and a size is the sum of the files its
    ``RECORD`` lists, as installed in *this* environment. That is what ``pip install`` of the
    same versions puts on the same platform (Linux wheels here); another platform's wheels
    differ by a few percent. Distributions not installed here are left out (see the notes
    of :func:`bundle`).

    Parameters
    ----------
    requirements : sequence of str
        Requirement lines, e.g. ``["numpy==2.1.0", "onnxruntime"]`` (versions are ignored:
        the installed version is measured).

    Examples
    --------
    >>> sizes = dependency_sizes(["numpy"])
    >>> list(sizes) == ["numpy"] and sizes["numpy"] > 1_000_000
    True
    """
    return _measure(requirements)[0]


def _measure(requirements: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """(installed bytes of each distribution of the closure, largest first; names not installed here)."""
    found, missing = _closure(requirements)
    sizes = {name: _installed_bytes(dist) for name, dist in found.items()}
    return dict(sorted(sizes.items(), key=lambda item: (-item[1], item[0]))), missing


def _pinned(names: Sequence[str]) -> list[str]:
    """``name==version`` of each distribution as installed here."""
    from importlib import metadata

    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            raise MlkitError(
                f"{name} is not installed here, so its version cannot be pinned; "
                "install the kit's extras: pip install -e '.[registry,serving]'."
            ) from None
    return pins


# ----------------------------------------------------------------------- checks and the model


def _check_choice(name: str, value: Any, choices: tuple[str, ...], example: str) -> str:
    if value not in choices:
        raise ParameterError(f"Unknown {name} {value!r}; choose one of {', '.join(choices)} (e.g. {name}={example!r}).")
    return value


def _fresh(out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ParameterError(f"{out} is a file; pass the path of a new folder for the bundle.")
    if out.is_dir() and any(out.iterdir()):
        raise ParameterError(
            f"{out} already exists and is not empty; bundle never overwrites files. "
            "Pass a new folder, or delete this one first."
        )
    return out


@dataclass(frozen=True)
class _Model:
    """What a bundle needs to know about its (verified, copied) model."""

    folder: Path
    name: str
    family: str
    model_file: str
    columns: list[dict]
    has_onnx: bool
    parity_passed: bool | None
    example: dict | None


def _copy_model(model: str | os.PathLike, dst: Path) -> None:
    """Verify ``model`` against its manifest (and the registry's record) and copy it to ``dst``."""
    from mlkit import packaging, registry

    text = str(model)
    if not text.startswith("models:/"):
        folder = Path(text)
        if not folder.is_dir():
            raise ParameterError(
                f"{text} is neither a models:/ URI nor a model folder. Pass models:/<name>@<alias>, "
                "models:/<name>/<version>, or a folder written by mlkit.registry.package."
            )
        if not (folder / packaging.MANIFEST_NAME).is_file():
            raise DataError(
                f"{folder} has no {packaging.MANIFEST_NAME}, so its files cannot be verified and it is not bundled. "
                "Package the model with mlkit.registry.package(model, folder, use_case=..., fit_rows=..., test_rows=...)."
            )
    with tempfile.TemporaryDirectory(prefix="mlkit-bundle-") as tmp:
        source, _ = registry.download(text, tmp)  # verifies every file against the manifest
        shutil.copytree(source, dst)
    packaging.verify_manifest(dst)  # the copy, too


def _describe_model(folder: Path, runtime: str) -> _Model:
    import yaml

    meta = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
    card = json.loads((folder / "model_card.json").read_text(encoding="utf-8"))
    signature = (meta.get("signature") or {}).get("inputs")
    if not signature:
        raise DataError(f"{folder} has no input signature; package the model with mlkit.registry.package.")
    columns = [{"name": c["name"], "type": c.get("type", "string"), "required": bool(c.get("required", True))}
               for c in json.loads(signature)]
    has_onnx = (folder / "model.onnx").is_file()
    if runtime == "onnx" and not has_onnx:
        raise MlkitError(
            f"The model in {folder} has no model.onnx, so it cannot run with runtime='onnx'. Package it with "
            "mlkit.registry.package(..., onnx=True), or bundle it with runtime='sklearn'."
        )
    example = None
    if (folder / "input_example.json").is_file():
        example = json.loads((folder / "input_example.json").read_text(encoding="utf-8"))
        if not (isinstance(example, dict) and "columns" in example and "data" in example):
            example = None
    parity = card.get("onnx_parity") or {}
    return _Model(
        folder=folder,
        name=str(card.get("name") or folder.parent.name),
        family=str((meta.get("metadata") or {}).get("mlkit_family", "")),
        model_file=meta["flavors"]["sklearn"]["pickled_model"],
        columns=columns,
        has_onnx=has_onnx,
        parity_passed=parity.get("passed") if parity else None,
        example=example,
    )


def _records(model: _Model) -> list[dict]:
    if model.example is None:
        return []
    return [dict(zip(model.example["columns"], row)) for row in model.example["data"]]


def _slug(name: str, limit: int) -> str:
    """A resource name: lower-case letters, digits and hyphens, starting with a letter."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "mlkit-model"
    if not slug[0].isalpha():
        slug = f"m-{slug}"
    return slug[:limit].rstrip("-")


# ----------------------------------------------------------------------- writing files


def _write(path: Path, text: str, *, executable: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if executable:
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _fill(template: str, **values: str) -> str:
    """Replace ``@@KEY@@`` markers (templates hold code with braces, so no str.format)."""
    for key, value in values.items():
        template = template.replace(f"@@{key.upper()}@@", value)
    left = re.findall(r"@@[A-Z_]+@@", template)
    assert not left, f"unfilled template markers {left}"
    return template


def _copy_mlkit(dst: Path) -> None:
    """mlkit's own source (it is not on PyPI): the entry points of the containers and of Azure import it."""
    shutil.copytree(Path(__file__).resolve().parent, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def _requirements_txt(pins: list[str], why: str) -> str:
    return "\n".join([f"# {why}", "# Pinned to the versions the model was bundled with (mlkit.cloud.bundle).", *pins, ""])


def _json_text(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


_SERVE = '''#!/usr/bin/env python3
"""SageMaker's entry point: start mlkit's server for the model in this image.

SageMaker runs the container as `docker run <image> serve` and sends GET /ping and
POST /invocations (JSON or text/csv with a header line) to port 8080.

Environment (all optional):
  SM_MODEL_DIR                    the model folder; default /opt/ml/model when SageMaker put a
                                  model there (ModelDataUrl), else the model/ copied into the image
  SAGEMAKER_BIND_TO_PORT          the port; default 8080 (SageMaker sets it in inference pipelines;
                                  set it for a local run on a free port)
  SAGEMAKER_MODEL_SERVER_WORKERS  server worker processes; default 1
  MLKIT_HOST                      the address to bind; default 0.0.0.0, which SageMaker needs
                                  (use 127.0.0.1 for a local run)
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # the copy of mlkit next to this script
RUNTIME = "@@RUNTIME@@"


def model_dir() -> str:
    if os.environ.get("SM_MODEL_DIR"):
        return os.environ["SM_MODEL_DIR"]
    if os.path.isfile("/opt/ml/model/manifest.json"):
        return "/opt/ml/model"
    return os.path.join(HERE, "model")


def main(argv: list) -> int:
    if argv and argv[0] != "serve":
        print("This image serves a model: SageMaker starts it with the argument 'serve' "
              "(training is not supported).", file=sys.stderr)
        return 2
    from mlkit.cli import main as mlkit

    return mlkit([
        "serve", "--model", model_dir(),
        "--host", os.environ.get("MLKIT_HOST", "0.0.0.0"),
        "--port", os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"),
        "--workers", os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", "1"),
        "--runtime", RUNTIME,
        "--no-log",  # in the cloud, the platform captures requests (SageMaker Data Capture); see README.md
    ])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
'''

_SAGEMAKER_DOCKERFILE = '''# Amazon SageMaker real-time inference image for @@NAME@@ (written by mlkit.cloud.bundle).
# SageMaker starts it as `docker run <image> serve`; the server answers GET /ping and
# POST /invocations on port 8080. See README.md.
FROM python:@@PYTHON@@-slim

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PYTHONPATH=/opt/program \\
    PATH="/opt/program:${PATH}"
WORKDIR /opt/program

COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY mlkit/ ./mlkit/
COPY serve ./serve
RUN chmod +x ./serve
# The verified model. SageMaker mounts /opt/ml/model when the model is created with a
# ModelDataUrl; `serve` uses that folder then, and this copy otherwise.
COPY model/ ./model/

EXPOSE 8080
ENTRYPOINT ["serve"]
'''

_VERTEX_DOCKERFILE = '''# Vertex AI custom prediction container for @@NAME@@ (written by mlkit.cloud.bundle).
# Vertex AI sets AIP_HTTP_PORT, AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE; `mlkit serve` listens on
# $AIP_HTTP_PORT and answers GET $AIP_HEALTH_ROUTE and POST $AIP_PREDICT_ROUTE
# ({"instances": [...]} -> {"predictions": [...]}). See README.md.
FROM python:@@PYTHON@@-slim

ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1 \\
    PYTHONPATH=/opt/program \\
    AIP_HTTP_PORT=8080
WORKDIR /opt/program

COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY mlkit/ ./mlkit/
# The verified model, inside the image (AIP_STORAGE_URI is not read: see README.md).
COPY model/ ./model/

EXPOSE 8080
# `python -m mlkit.serving` is `mlkit serve`; AIP_HTTP_PORT wins over --port.
CMD ["python", "-m", "mlkit.serving", "--model", "/opt/program/model", "--host", "0.0.0.0", "--port", "8080", "--runtime", "@@RUNTIME@@", "--no-log"]
'''

_SCORE = '''"""Azure ML online endpoint scoring script for @@NAME@@ (written by mlkit.cloud.bundle).

Azure ML's inference server (the azureml-inference-server-http package) imports this file,
calls init() once, then run(raw_data) with the body of every POST /score as a string.

Requests: {"input_data": {"columns": [...], "data": [[...], ...]}} (the format Azure ML uses for
MLflow models) or {"data": [{column: value, ...}, ...]}. Answer: the list of predictions.

Errors. The inference server answers 200 with whatever run() returns, and 500 when run()
raises. So bad input neither raises (that would be a 500) nor comes back as a plain value
(that would be a 200): run() returns AMLResponse({"error": message}, 400), the inference
server's way to choose the status. Where that package is not installed (a local test), run()
returns the dict {"error": message, "status": 400} instead, so the status is not lost. A
failure of the model itself is logged and answered 500 with a generic message. A message names
the column and the row, never a value from the request (requests may carry personal data).
"""

import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the copy of mlkit next to this file

MODEL_FOLDER = "model"  # the registered model folder, inside $AZUREML_MODEL_DIR
RUNTIME = "@@RUNTIME@@"

log = logging.getLogger("mlkit.azure")
served = None


def init():
    """Load and verify the model once, when the deployment starts."""
    global served
    from mlkit.serving.model import load_model

    root = os.environ.get("AZUREML_MODEL_DIR")
    if not root:
        raise RuntimeError("AZUREML_MODEL_DIR is not set: Azure ML sets it; for a local run set it to the "
                           "folder that holds model/.")
    served = load_model(os.path.join(root, MODEL_FOLDER), runtime=RUNTIME)


def _response_class():
    """AMLResponse from the inference server's package (new, then old module path), or None."""
    for module in ("azureml_inference_server_http.api.aml_response", "azureml.contrib.services.aml_response"):
        try:
            return __import__(module, fromlist=["AMLResponse"]).AMLResponse
        except ImportError:
            continue
    return None


def _error(message, status):
    response = _response_class()
    if response is not None:
        return response({"error": message}, status, json_str=True)
    return {"error": message, "status": status}


def _batch(payload):
    from mlkit.serving.schema import InputError

    schema = served.schema
    if isinstance(payload, dict) and "input_data" in payload:
        data = payload["input_data"]
        if isinstance(data, dict) and "data" in data:
            return schema.from_rows(data["data"], data.get("columns"))
        if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
            return schema.from_records(data)
        raise InputError('input_data must be {"columns": [...], "data": [[...], ...]} or a list of records.')
    if isinstance(payload, dict) and "data" in payload:
        data = payload["data"]
        if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
            return schema.from_records(data)
        if isinstance(data, list) and data and all(isinstance(r, list) for r in data):
            return schema.from_rows(data)
        raise InputError("data must be a non-empty list of records ({column: value}) or of rows in the model's column order.")
    raise InputError('The request must be {"input_data": {"columns": [...], "data": [[...], ...]}} '
                     'or {"data": [{"column": value, ...}, ...]}.')


def run(raw_data):
    """Score one request body; return the predictions, or an error response (see the module docstring)."""
    from mlkit.serving.schema import InputError, finite_json

    try:
        if isinstance(raw_data, (bytes, bytearray)):
            raw_data = raw_data.decode("utf-8")
        if not isinstance(raw_data, str) or not raw_data.strip():
            raise InputError("The request body is empty; send a JSON object.")
        try:
            payload = json.loads(raw_data)
        except ValueError:
            raise InputError("The request body is not valid JSON; check quotes, commas and brackets.") from None
        if not finite_json(payload):
            raise InputError("The request holds NaN or Infinity, which are not JSON numbers; send null or a finite number.")
        return served.predict(_batch(payload))
    except UnicodeDecodeError:
        return _error("The request body is not UTF-8 text; send JSON.", 400)
    except InputError as exc:
        return _error(str(exc), exc.status)
    except Exception:  # a bug or a model failure: log it, answer without details
        log.exception("scoring failed")
        return _error("The model could not score this request; the deployment's log has the details.", 500)
'''

_HANDLER = '''"""AWS Lambda function for an mlkit model behind Amazon API Gateway (written by mlkit.cloud.bundle).

It imports only the standard library, numpy and its runtime's library (bundle.json says which):
onnxruntime for runtime "onnx", or scikit-learn, skops and pandas for runtime "sklearn". mlkit
itself is not needed, so the function stays small.

The model is loaded once per execution environment, when Lambda imports this file (the cold
start), from the model/ folder next to it, after every file is checked against its manifest.

Events: API Gateway proxy events from a REST API (payload 1.0) or an HTTP API (payload 2.0).
POST a JSON body holding exactly one of dataframe_split, dataframe_records, instances or inputs
(MLflow's request formats); the body may be base64-encoded (isBase64Encoded). GET is a health check.

Answers: {"statusCode", "headers", "body", "isBase64Encoded"}, the body {"predictions": [...]}
(200), or {"message": ...}: 400 bad input, 405 another method, 413 too large, 415 not JSON, 500
a failure of the function itself (details in its log). A message names the column and the row,
never a value from the request (requests may carry personal data).
"""

import base64
import binascii
import hashlib
import json
import logging
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "model")
with open(os.path.join(HERE, "bundle.json"), encoding="utf-8") as _file:
    CONFIG = json.load(_file)
COLUMNS = CONFIG["columns"]  # [{"name", "type", "required"}], the model's signature
KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
NUMERIC = {"double", "float", "long", "integer"}
MAX_BODY = 6 * 1024 * 1024  # Lambda's limit on a synchronous request

log = logging.getLogger("mlkit.lambda")


class BadRequest(Exception):
    """A request the model cannot take; status is the HTTP status to answer with."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------------------- the model


def _verify(folder):
    """Every file must match its sha256 in manifest.json, and no other file may sit beside them."""
    with open(os.path.join(folder, "manifest.json"), "rb") as handle:
        listed = json.load(handle)["files"]
    for name, digest in sorted(listed.items()):
        sha = hashlib.sha256()
        with open(os.path.join(folder, name), "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        if sha.hexdigest() != digest:
            raise RuntimeError(f"model/{name} does not match its sha256 in model/manifest.json; "
                               "rebuild the bundle from a trusted model.")
    present = {os.path.relpath(os.path.join(root, f), folder).replace(os.sep, "/")
               for root, _, files in os.walk(folder) for f in files}
    extra = sorted(present - set(listed) - {"manifest.json", "registered_model_meta"})
    if extra:
        raise RuntimeError(f"model/ holds files its manifest does not list ({', '.join(extra)}); rebuild the bundle.")


def _onnx_predictor():
    """Predict with onnxruntime: one [n, 1] input per column, float64 or text, as mlkit exported it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(os.path.join(MODEL_DIR, "model.onnx"), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    numeric = json.loads(meta["mlkit.numeric_columns"])
    text = json.loads(meta["mlkit.categorical_columns"])
    inputs = session.get_inputs()
    # ONNX input names are sanitised; the metadata keeps the column names, in input order.
    by_input = dict(zip([i.name for i in inputs if i.type == "tensor(double)"], numeric))
    by_input.update(zip([i.name for i in inputs if i.type == "tensor(string)"], text))
    fills = json.loads(meta.get("mlkit.fill_values", "{}"))  # what the imputer writes for a missing category
    outputs = [o.name for o in session.get_outputs()]
    label = "label" if "probabilities" in outputs else outputs[0]
    dtype = meta.get("mlkit.classes_dtype") if label == "label" else "float64"
    numeric = set(numeric)

    def predict(columns):
        feed = {}
        for name, column in by_input.items():
            values = columns[column]
            if column in numeric:
                feed[name] = values.astype(np.float64).reshape(-1, 1)
            else:
                fill = fills.get(column, "missing")
                feed[name] = np.array([fill if v is None else v for v in values], dtype=object).reshape(-1, 1)
        out = session.run([label], feed)[0].ravel()
        return out.astype(dtype) if dtype else out

    return predict


def _sklearn_predictor():
    """Predict with the scikit-learn pipeline, loaded with skops trusting only the types mlkit checked."""
    import pandas as pd
    import skops.io as sio

    path = os.path.join(MODEL_DIR, CONFIG["model_file"])
    trusted = CONFIG["trusted_types"]
    untrusted = sorted(set(sio.get_untrusted_types(file=path)) - set(trusted))
    if untrusted:
        raise RuntimeError(f"{CONFIG['model_file']} holds types mlkit did not check: {', '.join(untrusted)}.")
    model = sio.load(path, trusted=trusted)
    numeric = {c["name"] for c in COLUMNS if c["type"] in NUMERIC or c["type"] == "boolean"}

    def predict(columns):
        frame = {}
        for name, values in columns.items():
            if name in numeric:
                frame[name] = values
            else:
                text = np.empty(len(values), dtype=object)
                text[:] = [np.nan if v is None else v for v in values]
                frame[name] = text
        return np.asarray(model.predict(pd.DataFrame(frame)))

    return predict


def _load():
    _verify(MODEL_DIR)
    return _onnx_predictor() if CONFIG["runtime"] == "onnx" else _sklearn_predictor()


PREDICT = _load()  # once per execution environment: the cold start


# ----------------------------------------------------------------------------- requests


def _in_rows(rows):
    shown = ", ".join(str(r) for r in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return f"in row {shown}" if len(rows) == 1 else f"in rows {shown}{more}"


def _describe():
    return ", ".join(f"{c['name']} ({c['type']}{'' if c['required'] else ', optional'})" for c in COLUMNS)


def _missing_value(v):
    return v is None or (isinstance(v, float) and v != v)


def _convert(column, values):
    """One column's JSON values as an array, checked as mlkit's server checks them (and MLflow casts them).

    null is a missing value in any column (the pipeline imputes it); numbers accept numeric
    text and booleans; text accepts other scalars as their text.
    """
    name, kind = column["name"], column["type"]
    if kind in NUMERIC:
        out = np.empty(len(values), dtype=np.float64)
        bad = []
        for i, v in enumerate(values):
            if _missing_value(v):
                out[i] = np.nan
                continue
            try:
                if isinstance(v, (list, dict)) or (isinstance(v, str) and not v.strip()):
                    raise ValueError
                out[i] = float(v)
            except (TypeError, ValueError, OverflowError):
                bad.append(i)
                continue
            if isinstance(v, str) and not np.isfinite(out[i]):
                bad.append(i)  # "nan" or "inf" written as text
        if bad:
            raise BadRequest(f"Column {name!r} must hold numbers ({kind}); it holds something else {_in_rows(bad)}. "
                             "Send a JSON number (or null for a missing value).")
        infinite = [i for i, v in enumerate(out) if v in (np.inf, -np.inf)]
        if infinite:
            raise BadRequest(f"Column {name!r} holds an infinite number {_in_rows(infinite)}; send a finite number.")
        if kind in ("long", "integer"):
            fractional = [i for i, v in enumerate(out) if v == v and v != round(v)]
            if fractional:
                raise BadRequest(f"Column {name!r} must hold whole numbers ({kind}); it holds a fraction {_in_rows(fractional)}.")
        return out
    if kind == "boolean":
        bad = [i for i, v in enumerate(values) if not (isinstance(v, bool) or _missing_value(v))]
        if bad:
            raise BadRequest(f"Column {name!r} must hold true or false; it holds another value {_in_rows(bad)}.")
        return np.array([np.nan if _missing_value(v) else float(v) for v in values], dtype=np.float64)
    bad = [i for i, v in enumerate(values) if isinstance(v, (list, dict))]
    if bad:
        raise BadRequest(f"Column {name!r} must hold text (string); it holds a list or object {_in_rows(bad)}. "
                         "Send a JSON string.")
    broken = [i for i, v in enumerate(values) if isinstance(v, str) and not _encodes(v)]
    if broken:
        raise BadRequest(f"Column {name!r} holds text that is not valid Unicode {_in_rows(broken)} "
                         "(a lone surrogate escape); send UTF-8 text.")
    out = np.empty(len(values), dtype=object)
    out[:] = [None if _missing_value(v) else (v if isinstance(v, str) else str(v)) for v in values]
    return out


def _encodes(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _columns(data, n):
    """{column: values} (all of length n) -> {column: array}, in signature order, every column checked."""
    absent = [c["name"] for c in COLUMNS if c["name"] not in data]
    if absent:
        raise BadRequest(f"Missing column(s) {', '.join(map(repr, absent))}. The model needs: {_describe()}. "
                         "An optional column may hold null values, but it must be sent.")
    if n == 0:
        raise BadRequest("The request holds no rows; send at least one.")
    return {c["name"]: _convert(c, data[c["name"]]) for c in COLUMNS}


def _from_records(records):
    bad = [i for i, r in enumerate(records) if not isinstance(r, dict)]
    if bad:
        raise BadRequest(f"Records must be JSON objects ({{column: value}}); another value is given {_in_rows(bad)}.")
    present = set().union(*(r.keys() for r in records))
    data = {c["name"]: [r.get(c["name"]) for r in records] for c in COLUMNS if c["name"] in present}
    return _columns(data, len(records))


def _from_rows(rows, names=None):
    if not isinstance(rows, list) or any(not isinstance(r, list) for r in rows):
        raise BadRequest("data must be a JSON list of rows, each a list of values.")
    if names is None:
        names = [c["name"] for c in COLUMNS]
    elif not isinstance(names, list) or not all(isinstance(c, str) for c in names) or len(set(names)) != len(names):
        raise BadRequest("columns must be a list of distinct column names.")
    bad = [i for i, r in enumerate(rows) if len(r) != len(names)]
    if bad:
        raise BadRequest(f"Each row must hold {len(names)} values, one per column ({', '.join(names)}); "
                         f"a row has another length {_in_rows(bad)}.")
    return _columns({name: [r[i] for r in rows] for i, name in enumerate(names)}, len(rows))


def _from_columns(columns):
    lengths = {len(v) for k, v in columns.items() if k in {c["name"] for c in COLUMNS}}
    if len(lengths) > 1:
        raise BadRequest("Columns have different lengths; send one value per row in every column.")
    return _columns(columns, lengths.pop() if lengths else 0)


def _batch(payload):
    """MLflow's request formats: exactly one of the four keys."""
    if not isinstance(payload, dict):
        raise BadRequest(f"The body must be a JSON object with exactly one of the keys {', '.join(KEYS)}.")
    keys = [k for k in KEYS if k in payload]
    if len(keys) != 1:
        raise BadRequest(f"The body must hold exactly one of the keys {', '.join(KEYS)}; "
                         f"it holds {len(keys) or 'none'}{': ' + ', '.join(keys) if keys else ''}.")
    key, data = keys[0], payload[keys[0]]
    if key == "dataframe_split":
        if not isinstance(data, dict) or "data" not in data:
            raise BadRequest("dataframe_split must be an object with 'columns' and 'data'.")
        return _from_rows(data["data"], data.get("columns"))
    if isinstance(data, dict):  # {column: [values]}, or one record
        if data and all(isinstance(v, list) for v in data.values()):
            return _from_columns(data)
        return _from_records([data])
    if isinstance(data, list) and data and all(isinstance(r, dict) for r in data):
        return _from_records(data)
    if isinstance(data, list) and data and all(isinstance(r, list) for r in data):
        return _from_rows(data)
    if isinstance(data, list) and not data:
        raise BadRequest("The request holds no rows; send at least one.")
    raise BadRequest(f"{key} must be a list of records ({{column: value}}), a list of rows, or an object of columns.")


def _not_a_number(token):
    raise BadRequest("The request holds NaN or Infinity, which are not JSON numbers; send null or a finite number.")


def _body(event):
    """The event's body as parsed JSON, after the API Gateway checks (method, encoding, size, type)."""
    body = event.get("body")
    if body is None or body == "":
        raise BadRequest("The request body is empty; send a JSON object such as {\\"dataframe_records\\": [...]}.")
    if not isinstance(body, str):
        raise BadRequest("The event's body must be a string, as API Gateway sends it.")
    raw = body.encode("utf-8")
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest("The body is marked base64-encoded (isBase64Encoded) but is not valid base64.") from None
    if len(raw) > MAX_BODY:
        raise BadRequest("The request body is larger than 6 MB, Lambda's limit; send fewer rows per request.", 413)
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise BadRequest(f"Content type {media!r} is not supported; send application/json.", 415)
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_not_a_number)
    except UnicodeDecodeError:
        raise BadRequest("The request body is not UTF-8 text; send JSON.") from None
    except ValueError:
        raise BadRequest("The request body is not valid JSON; check quotes, commas and brackets.") from None


def _method(event):
    """POST, GET, ... from a REST API (httpMethod) or HTTP API (requestContext.http.method) event."""
    method = event.get("httpMethod") or ((event.get("requestContext") or {}).get("http") or {}).get("method")
    return str(method).upper() if method else "POST"


def _answer(status, body):
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body), "isBase64Encoded": False}


def handler(event, context):
    """Lambda's entry point (handler.handler): score the rows of one API Gateway request."""
    try:
        if not isinstance(event, dict):
            raise BadRequest("The event must be an API Gateway proxy event (a JSON object with a body).")
        method = _method(event)
        if method == "GET":
            return _answer(200, {"status": "ready", "model": CONFIG["model_name"], "runtime": CONFIG["runtime"]})
        if method != "POST":
            raise BadRequest(f"Method {method} is not allowed; send the rows with POST.", 405)
        columns = _batch(_body(event))
        return _answer(200, {"predictions": PREDICT(columns).tolist()})
    except BadRequest as exc:
        return _answer(exc.status, {"message": str(exc)})
    except Exception:  # a bug or a model failure: log it, answer without details
        log.exception("scoring failed")
        return _answer(500, {"message": "The model could not score this request; the function's log has the details."})
'''


# ----------------------------------------------------------------------- the four targets


def _write_sagemaker(out: Path, model: _Model, runtime: str, pins: list[str]) -> str:
    _copy_mlkit(out / "mlkit")
    _write(out / "requirements.txt", _requirements_txt(pins, "What `mlkit serve` needs inside the SageMaker image."))
    _write(out / "serve", _fill(_SERVE, runtime=runtime), executable=True)
    _write(out / "Dockerfile", _fill(_SAGEMAKER_DOCKERFILE, name=model.name, python=_PYTHON))
    if model.example is not None:
        _write(out / "example_request.json", _json_text({"dataframe_split": model.example}))
    repo = _slug(model.name, 63)
    return f"""# {model.name} on Amazon SageMaker (real-time inference)

Written by `mlkit.cloud.bundle(..., target="sagemaker", runtime="{runtime}")`. The commands below
are text for you to run with your own AWS account; mlkit never runs them.

| file | what it is |
|---|---|
| `Dockerfile` | the image: Python {_PYTHON} slim, the pinned requirements, mlkit, the model; `ENTRYPOINT ["serve"]`, port 8080 |
| `serve` | what SageMaker runs (`docker run <image> serve`): `mlkit serve --model /opt/ml/model --host 0.0.0.0 --port 8080` |
| `requirements.txt` | the server's libraries, pinned to the versions the model was bundled with |
| `mlkit/` | mlkit's source (it is not on PyPI) |
| `model/` | the verified model (every file checked against `model/manifest.json` again when the server starts) |
| `example_request.json` | a request in MLflow's `dataframe_split` format |

The contract: `GET /ping` answers 200 once the model is loaded; `POST /invocations` takes JSON
(`dataframe_split`, `dataframe_records`, `instances` or `inputs`) or `text/csv` with a header line
and answers `{{"predictions": [...]}}`; bad input gets a 4xx with a message. SageMaker allows
6 MB per request and 60 s per invocation. The server keeps no prediction log in the container
(`--no-log`: a container's disk does not outlive it); turn on SageMaker's Data Capture on the
endpoint to record requests and answers to S3.

## Run it here first (no Docker)

```bash
SM_MODEL_DIR=model MLKIT_HOST=127.0.0.1 SAGEMAKER_BIND_TO_PORT=8080 ./serve
curl -s localhost:8080/ping
curl -s -X POST localhost:8080/invocations -H 'Content-Type: application/json' -d @example_request.json
```

`SM_MODEL_DIR` (the model folder), `SAGEMAKER_BIND_TO_PORT` (the port, default 8080),
`SAGEMAKER_MODEL_SERVER_WORKERS` (worker processes, default 1) and `MLKIT_HOST` (default
`0.0.0.0`) are read by `serve`; in SageMaker none needs setting.

## Build and push the image (Amazon ECR)

```bash
docker build -t {repo}:1 .
docker run --rm -p 8080:8080 {repo}:1 serve      # the same contract, in the container
aws ecr create-repository --repository-name {repo}
aws ecr get-login-password --region REGION | docker login --username AWS --password-stdin ACCOUNT.dkr.ecr.REGION.amazonaws.com
docker tag {repo}:1 ACCOUNT.dkr.ecr.REGION.amazonaws.com/{repo}:1
docker push ACCOUNT.dkr.ecr.REGION.amazonaws.com/{repo}:1
```

## Deploy an endpoint

```bash
aws sagemaker create-model --model-name {repo} \\
    --primary-container Image=ACCOUNT.dkr.ecr.REGION.amazonaws.com/{repo}:1 \\
    --execution-role-arn arn:aws:iam::ACCOUNT:role/SAGEMAKER_ROLE
aws sagemaker create-endpoint-config --endpoint-config-name {repo}-config \\
    --production-variants VariantName=AllTraffic,ModelName={repo},InstanceType=ml.m5.large,InitialInstanceCount=1
aws sagemaker create-endpoint --endpoint-name {repo} --endpoint-config-name {repo}-config
aws sagemaker-runtime invoke-endpoint --endpoint-name {repo} \\
    --content-type application/json --body fileb://example_request.json predictions.json
```

The model is inside the image. To ship it separately instead, `tar -czf model.tar.gz -C model .`,
upload it to S3 and add `ModelDataUrl=s3://BUCKET/model.tar.gz` to `--primary-container`:
SageMaker unpacks it into `/opt/ml/model`, which `serve` then prefers. Delete the endpoint when
you are done (`aws sagemaker delete-endpoint --endpoint-name {repo}`): it is billed by the hour.

"""


def _write_vertex(out: Path, model: _Model, runtime: str, pins: list[str]) -> str:
    _copy_mlkit(out / "mlkit")
    _write(out / "requirements.txt", _requirements_txt(pins, "What `mlkit serve` needs inside the Vertex AI image."))
    _write(out / "Dockerfile", _fill(_VERTEX_DOCKERFILE, name=model.name, python=_PYTHON, runtime=runtime))
    if model.example is not None:
        _write(out / "example_request.json", _json_text({"instances": _records(model)}))
    repo = _slug(model.name, 63)
    return f"""# {model.name} on Vertex AI (custom container, online prediction)

Written by `mlkit.cloud.bundle(..., target="vertex", runtime="{runtime}")`. The commands below
are text for you to run with your own Google Cloud project; mlkit never runs them.

| file | what it is |
|---|---|
| `Dockerfile` | the image: Python {_PYTHON} slim, the pinned requirements, mlkit, the model; `CMD` runs `mlkit serve` |
| `requirements.txt` | the server's libraries, pinned to the versions the model was bundled with |
| `mlkit/` | mlkit's source (it is not on PyPI) |
| `model/` | the verified model (checked against `model/manifest.json` again when the server starts) |
| `example_request.json` | a request: `{{"instances": [...]}}` |

The contract: Vertex AI tells the container where to listen and what to answer with environment
variables, and `mlkit serve` reads them:

| variable | meaning | without it |
|---|---|---|
| `AIP_HTTP_PORT` | the port to listen on | 8080 (set in the Dockerfile) |
| `AIP_HEALTH_ROUTE` | answer `GET` here with 200 once the model is loaded | `/vertex/health` |
| `AIP_PREDICT_ROUTE` | `POST {{"instances": [...], "parameters": {{...}}}}` -> `{{"predictions": [...]}}` | `/vertex/predict` |
| `AIP_STORAGE_URI` | a `gs://` copy of the model's `--artifact-uri`, if you give one | not read: the model is in the image |

Vertex AI's default routes are `/v1/endpoints/ENDPOINT_ID/deployedModels/DEPLOYED_MODEL_ID` and
the same with `:predict`. A request may be at most 1.5 MB: a larger one gets 413 with a message.
To keep the model out of the image, upload `model/` to Cloud Storage, pass `--artifact-uri`, and
download `$AIP_STORAGE_URI` into `/opt/program/model` before the server starts (that needs
`google-cloud-storage`, which this image does not install). The server keeps no prediction log in
the container (`--no-log`: a container's disk does not outlive it); turn on the endpoint's
request-response logging to record requests and answers in BigQuery.

## Run it here first (no Docker)

```bash
AIP_HTTP_PORT=8080 AIP_HEALTH_ROUTE=/health AIP_PREDICT_ROUTE=/predict \\
    python -m mlkit.serving --model model --host 127.0.0.1 --runtime {runtime} --no-log
curl -s localhost:8080/health
curl -s -X POST localhost:8080/predict -H 'Content-Type: application/json' -d @example_request.json
```

## Build and push the image (Artifact Registry)

```bash
gcloud artifacts repositories create mlkit --repository-format=docker --location=REGION
gcloud auth configure-docker REGION-docker.pkg.dev
docker build -t REGION-docker.pkg.dev/PROJECT/mlkit/{repo}:1 .
docker push REGION-docker.pkg.dev/PROJECT/mlkit/{repo}:1
```

## Upload the model and deploy it to an endpoint

```bash
gcloud ai models upload --region=REGION --display-name={repo} \\
    --container-image-uri=REGION-docker.pkg.dev/PROJECT/mlkit/{repo}:1 --container-ports=8080
gcloud ai endpoints create --region=REGION --display-name={repo}
gcloud ai endpoints deploy-model ENDPOINT_ID --region=REGION --model=MODEL_ID \\
    --display-name={repo} --machine-type=n1-standard-2 --min-replica-count=1 --max-replica-count=2
gcloud ai endpoints predict ENDPOINT_ID --region=REGION --json-request=example_request.json
```

Undeploy the model when you are done (`gcloud ai endpoints undeploy-model`): a deployed model is
billed by the node-hour even when idle.

"""


def _write_azure(out: Path, model: _Model, runtime: str, pins: list[str]) -> str:
    _copy_mlkit(out / "src" / "mlkit")
    _write(out / "src" / "score.py", _fill(_SCORE, name=model.name, runtime=runtime))
    pip = "\n".join(f"      - {p}" for p in pins)
    _write(out / "environment.yml", f"""# Conda environment of the Azure ML deployment (written by mlkit.cloud.bundle).
# azureml-inference-server-http is Azure ML's HTTP server: it calls init() and run() in src/score.py.
# It is not installed where the bundle was written, so it is not pinned: pin it once tested.
name: {_slug(model.name, 60)}
channels:
  - conda-forge
dependencies:
  - python={_PYTHON}
  - pip
  - pip:
      - azureml-inference-server-http
{pip}
""")
    endpoint = _slug(model.name, 32)
    _write(out / "deployment.yml", f"""# A sketch of an Azure ML managed online deployment (written by mlkit.cloud.bundle).
# Create the endpoint first: az ml online-endpoint create --name {endpoint}
$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: blue
endpoint_name: {endpoint}
model:
  path: ./model               # registered as a folder: $AZUREML_MODEL_DIR/model in the container
code_configuration:
  code: ./src                 # score.py and the copy of mlkit it imports
  scoring_script: score.py
environment:
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
  conda_file: ./environment.yml
instance_type: Standard_DS3_v2
instance_count: 1
""")
    if model.example is not None:
        _write(out / "example_request.json", _json_text({"input_data": model.example}))
    return f"""# {model.name} on an Azure ML managed online endpoint

Written by `mlkit.cloud.bundle(..., target="azure", runtime="{runtime}")`. The commands below
are text for you to run with your own Azure subscription; mlkit never runs them.

| file | what it is |
|---|---|
| `src/score.py` | the scoring script: `init()` loads and verifies the model from `$AZUREML_MODEL_DIR/model`, `run(raw_data)` scores one request |
| `src/mlkit/` | mlkit's source (it is not on PyPI), imported by `score.py` |
| `model/` | the verified model, registered as a folder |
| `environment.yml` | the conda environment: Python {_PYTHON}, Azure ML's inference server, the pinned libraries |
| `deployment.yml` | a sketch of the managed online deployment (instance type and count are examples) |
| `example_request.json` | a request: `{{"input_data": {{"columns": [...], "data": [[...]]}}}}` |

The contract: `POST /score` with `{{"input_data": {{"columns": [...], "data": [[...], ...]}}}}` or
`{{"data": [{{"column": value}}, ...]}}` answers the list of predictions. Azure ML's inference
server answers 200 with whatever `run()` returns and 500 when it raises, so `run()` never raises
for bad input: it returns `AMLResponse({{"error": message}}, 400)` (without that package, as in a
local test, the dict `{{"error": message, "status": 400}}`). Messages never repeat request values.

## Try the scoring script here first

```bash
pip install azureml-inference-server-http
AZUREML_MODEL_DIR=$PWD azmlinfsrv --entry_script src/score.py --port 5001
curl -s -X POST localhost:5001/score -H 'Content-Type: application/json' -d @example_request.json
```

## Deploy

```bash
az ml online-endpoint create --name {endpoint} --auth-mode key
az ml online-deployment create --file deployment.yml --all-traffic
az ml online-endpoint invoke --name {endpoint} --request-file example_request.json
az ml online-endpoint delete --name {endpoint}      # when you are done: it is billed by the hour
```

"""


def _write_lambda(out: Path, model: _Model, runtime: str, pins: list[str]) -> str:
    from mlkit import packaging

    config: dict[str, Any] = {
        "model_name": model.name,
        "runtime": runtime,
        "model_file": model.model_file,
        "columns": model.columns,
        "trusted_types": [],
    }
    if runtime == "sklearn":
        found = packaging.types_in(model.folder / model.model_file)
        untrusted = sorted(found - set(packaging.trusted_types(model.family)))
        if untrusted:
            raise packaging.UntrustedTypeError(
                f"{model.model_file} holds {', '.join(untrusted)}, outside mlkit's allowlist for the "
                f"{model.family!r} family, so the handler would not load it. Bundle a model made by mlkit.training."
            )
        config["trusted_types"] = sorted(found)
    _write(out / "bundle.json", _json_text(config))
    _write(out / "handler.py", _HANDLER)
    why = ("The function's libraries: onnxruntime and numpy only." if runtime == "onnx"
           else "The function's libraries: scikit-learn (with scipy), skops, pandas, numpy.")
    _write(out / "requirements.txt", _requirements_txt(pins, why))
    if model.example is not None:
        body = json.dumps({"dataframe_split": model.example})
        _write(out / "example_event.json", _json_text({
            "version": "2.0", "routeKey": "POST /predict", "rawPath": "/predict",
            "headers": {"content-type": "application/json"},
            "requestContext": {"http": {"method": "POST", "path": "/predict"}},
            "body": body, "isBase64Encoded": False,
        }))
    function = _slug(model.name, 64)
    return f"""# {model.name} as an AWS Lambda function behind API Gateway

Written by `mlkit.cloud.bundle(..., target="lambda", runtime="{runtime}")`. The commands below
are text for you to run with your own AWS account; mlkit never runs them.

| file | what it is |
|---|---|
| `handler.py` | `handler(event, context)`; the model is loaded once, at import (the cold start), and verified against its manifest |
| `bundle.json` | what the handler needs: runtime, signature columns, the skops types mlkit checked |
| `model/` | the verified model |
| `requirements.txt` | the function's libraries ({"onnxruntime and numpy" if runtime == "onnx" else "scikit-learn, skops, pandas, numpy"}), pinned |
| `example_event.json` | an HTTP API (payload 2.0) event, for a test invocation |

The contract: an API Gateway proxy event (REST API payload 1.0 or HTTP API payload 2.0) whose
JSON body holds one of `dataframe_split`, `dataframe_records`, `instances`, `inputs` (base64
bodies, `isBase64Encoded`, are decoded) -> `{{"statusCode": 200, "body": "{{\\"predictions\\": [...]}}"}}`;
bad input -> 400 (405, 413, 415) with a message that never repeats request values.

## Try the handler here first

```bash
python -c "import json, handler; print(handler.handler(json.load(open('example_event.json')), None))"
```

## Build the .zip (Linux wheels for Lambda's Python {_PYTHON}, x86_64)

```bash
pip install -r requirements.txt --target package --platform manylinux2014_x86_64 \\
    --implementation cp --python-version {_PYTHON} --only-binary=:all:
cp -r handler.py bundle.json model package/
(cd package && zip -qr ../function.zip .)
```

## Deploy

```bash
aws s3 cp function.zip s3://BUCKET/{function}.zip     # a .zip above 50 MB must go through S3
aws lambda create-function --function-name {function} --runtime python{_PYTHON} \\
    --handler handler.handler --code S3Bucket=BUCKET,S3Key={function}.zip \\
    --role arn:aws:iam::ACCOUNT:role/LAMBDA_ROLE --memory-size 1024 --timeout 30
aws apigatewayv2 create-api --name {function} --protocol-type HTTP \\
    --target arn:aws:lambda:REGION:ACCOUNT:function:{function}
aws lambda add-permission --function-name {function} --statement-id apigateway \\
    --action lambda:InvokeFunction --principal apigateway.amazonaws.com
curl -s -X POST https://API_ID.execute-api.REGION.amazonaws.com/ -H 'Content-Type: application/json' \\
    -d '{{"dataframe_split": {{"columns": [...], "data": [[...]]}}}}'
```

"""


def _size_section(size_bytes: int, dependency_bytes: int, fits: bool | None, notes: list[str]) -> str:
    """The README's closing section: the figures of the bundle report."""
    lines = [
        "## Size",
        "",
        f"- bundle files (before this README): {size_bytes / _MB:.1f} MB",
        f"- installed dependencies: {dependency_bytes / _MB:.1f} MB, measured on the machine that wrote the "
        "bundle (the files each installed distribution lists in its RECORD)",
    ]
    if fits is not None:
        lines.append(f"- unzipped total: {(size_bytes + dependency_bytes) / _MB:.1f} MB of Lambda's "
                     f"{LAMBDA_UNZIPPED_LIMIT / _MB:.0f} MB limit: {'fits' if fits else 'does NOT fit'}")
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


_WRITERS = {"sagemaker": _write_sagemaker, "vertex": _write_vertex, "azure": _write_azure, "lambda": _write_lambda}


def _libraries(target: str, runtime: str) -> tuple[str, ...]:
    if target == "lambda":
        return _LAMBDA_LIBS[runtime]
    libs = _SERVER_LIBS if target in ("sagemaker", "vertex") else _MODEL_LIBS
    return libs + (("onnxruntime",) if runtime == "onnx" else ())


def _lambda_verdict(runtime: str, model: _Model, size_bytes: int, sizes: dict[str, int]) -> list[str]:
    """Whether the unzipped function fits Lambda's limit and, when it does not, what to do instead."""
    dependency_bytes = sum(sizes.values())
    total, limit = size_bytes + dependency_bytes, LAMBDA_UNZIPPED_LIMIT / _MB
    if total <= LAMBDA_UNZIPPED_LIMIT:
        return [f"{total / _MB:.0f} MB unzipped is within Lambda's {limit:.0f} MB limit for a .zip function; "
                "a .zip above 50 MB must be uploaded through S3."]
    if runtime == "onnx":
        return [f"Does not fit: {total / _MB:.0f} MB unzipped is over Lambda's {limit:.0f} MB limit for a .zip "
                "function; deploy a container image (up to 10 GB)."]
    onnx = sum(dependency_sizes(_LAMBDA_LIBS["onnx"]).values())
    fix = ("Rebuild it with runtime='onnx'" if model.has_onnx else
           "Package the model with ONNX (registry.package(..., onnx=True)) and rebuild it with runtime='onnx'")
    found, _ = _closure(list(sizes))
    trimmed = size_bytes + sum(_installed_bytes(dist, trimmed=True) for dist in found.values())
    return [
        f"Does not fit: the scikit-learn runtime's dependencies (scikit-learn, scipy, pandas, numpy, skops) are "
        f"{dependency_bytes / _MB:.0f} MB installed, {total / _MB:.0f} MB unzipped with the bundle, over Lambda's "
        f"{limit:.0f} MB limit for a .zip function. {fix} (onnxruntime + numpy: {onnx / _MB:.0f} MB installed), "
        "or deploy a container image (up to 10 GB).",
        f"Deleting every .pyc file and the libraries' test suites from the .zip would leave {trimmed / _MB:.0f} MB: "
        "that trick works until a new version grows, and every cold start then compiles the modules again.",
    ]


def _notes(target: str, runtime: str, model: _Model, size_bytes: int, sizes: dict[str, int],
           missing: list[str]) -> list[str]:
    """What the report says besides its figures: verdicts, the fix, and how the figures were measured."""
    biggest = ", ".join(f"{name} {size / _MB:.0f} MB" for name, size in list(sizes.items())[:4])
    notes = [f"Largest installed dependencies: {biggest}."]
    if missing:
        notes.append(f"Not installed here, so not measured: {', '.join(missing)}.")
    if target == "lambda":
        notes = _lambda_verdict(runtime, model, size_bytes, sizes) + notes
        notes.append("The handler imports numpy and onnxruntime only: no pandas, no scikit-learn, no mlkit."
                     if runtime == "onnx" else "The handler imports scikit-learn, skops, pandas and numpy; not mlkit.")
    else:
        notes.append("mlkit's source is copied into the bundle, because mlkit is not on PyPI.")
    if runtime == "onnx" and model.parity_passed is False:
        notes.append("The model card says ONNX parity FAILED: the ONNX predictions differ from scikit-learn's; "
                     "check model/onnx_parity.json before deploying.")
    notes.append(f"Dependency sizes are measured from this environment's installed distributions (Python {_PYTHON}, "
                 f"{sys.platform}); the platform's wheels may differ by a few percent.")
    return notes


def _files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _empty(folder: Path, *, remove: bool) -> None:
    """Undo a failed bundle: remove the folder it created, or empty the one it was given."""
    if remove:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for child in folder.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def bundle(model: str | os.PathLike, target: str, out_dir: str | os.PathLike, *,
           runtime: str | None = None) -> BundleReport:
    """Write a folder that deploys ``model`` on a cloud platform, and report its size.

    Steps: check the arguments; copy the model into ``out_dir/model`` after verifying every
    file against its manifest (and, for a registered version, the manifest against the
    registry's record); write the platform's entry point and pinned requirements; measure the
    bundle and the installed size of its requirements; write a README with the commands to
    build and deploy it (text only: nothing is run) and those figures.

    ============  =========================================================================
    target        what the bundle holds
    ============  =========================================================================
    sagemaker     ``Dockerfile`` (``ENTRYPOINT ["serve"]``, port 8080), ``serve`` (runs
                  ``mlkit serve --model /opt/ml/model --host 0.0.0.0 --port 8080``),
                  ``requirements.txt``, ``mlkit/``, ``model/``, ``README.md``
    vertex        ``Dockerfile`` (``CMD`` runs ``mlkit serve``, which reads ``AIP_HTTP_PORT``,
                  ``AIP_HEALTH_ROUTE``, ``AIP_PREDICT_ROUTE``), ``requirements.txt``,
                  ``mlkit/``, ``model/``, ``README.md``
    azure         ``src/score.py`` (``init()``, ``run(raw_data)``), ``src/mlkit/``,
                  ``environment.yml`` (conda), ``deployment.yml``, ``model/``, ``README.md``
    lambda        ``handler.py`` (``handler(event, context)``), ``bundle.json``,
                  ``requirements.txt``, ``model/``, ``README.md``
    ============  =========================================================================

    When the model carries an input example, the bundle also holds a request in the platform's
    format: ``example_request.json`` (Lambda: an API Gateway ``example_event.json``).

    Parameters
    ----------
    model : str or path
        ``models:/<name>@<alias>``, ``models:/<name>/<version>``, or a folder written by
        :func:`mlkit.registry.package`.
    target : str
        One of :data:`TARGETS`.
    out_dir : str or path
        A new (or empty) folder for the bundle.
    runtime : {"sklearn", "onnx"}, optional
        How the model runs; default ``"sklearn"``. ``"onnx"`` needs the packaged
        ``model.onnx``, and makes a Lambda function much smaller (onnxruntime + numpy).

    Returns
    -------
    BundleReport
        The files, their size, the installed size of the requirements, and for Lambda
        whether the unzipped total fits in :data:`LAMBDA_UNZIPPED_LIMIT`.

    Raises
    ------
    ParameterError
        An unknown target or runtime, an ``out_dir`` that is a file or a non-empty folder,
        or a ``model`` that is neither a ``models:/`` URI nor a folder.
    DataError
        A model folder without ``manifest.json`` (not packaged by mlkit).
    mlkit.packaging.IntegrityError
        A model file that does not match its manifest.
    MlkitError
        ``runtime="onnx"`` for a model packaged without ONNX.

    Examples
    --------
    A bundle needs a packaged model (:func:`mlkit.registry.package`, some seconds)::

        report = bundle("models:/mlkit-finance-fraud@champion", "lambda", "build/lambda", runtime="onnx")
        print(report)          # the files, their sizes, and whether they fit in Lambda's 250 MB
        report.fits            # True

    Arguments are checked before anything is read or written:

    >>> bundle("models:/fraud@champion", "heroku", "build/x")
    Traceback (most recent call last):
    ...
    mlkit.errors.ParameterError: Unknown target 'heroku'; choose one of sagemaker, vertex, azure, lambda (e.g. target='sagemaker').
    """
    target = _check_choice("target", target, TARGETS, "sagemaker")
    runtime = _check_choice("runtime", "sklearn" if runtime is None else runtime, BUNDLE_RUNTIMES, "onnx")
    out = _fresh(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        _copy_model(model, out / _MODEL_DIR)
        facts = _describe_model(out / _MODEL_DIR, runtime)
        pins = _pinned(_libraries(target, runtime))
        readme = _WRITERS[target](out, facts, runtime, pins)
        size_bytes = _folder_bytes(out)
        sizes, missing = _measure(pins)
        dependency_bytes = sum(sizes.values())
        fits = size_bytes + dependency_bytes <= LAMBDA_UNZIPPED_LIMIT if target == "lambda" else None
        notes = _notes(target, runtime, facts, size_bytes, sizes, missing)
        _write(out / "README.md", readme.rstrip("\n") + "\n\n" + _size_section(size_bytes, dependency_bytes, fits, notes))
    except BaseException:
        _empty(out, remove=created)
        raise
    size_bytes = _folder_bytes(out)
    if fits is not None:
        fits = size_bytes + dependency_bytes <= LAMBDA_UNZIPPED_LIMIT
    return BundleReport(target=target, path=out, runtime=runtime, files=_files(out), size_bytes=size_bytes,
                        dependency_bytes=dependency_bytes, requirements=pins, fits=fits, notes=notes)


# ----------------------------------------------------------------------- command line


def add_arguments(parser: Any) -> None:
    """Add ``mlkit bundle``'s options to an argparse parser (the CLI wires the subcommand).

    Examples
    --------
    >>> import argparse
    >>> p = argparse.ArgumentParser(prog="mlkit bundle")
    >>> add_arguments(p)
    >>> args = p.parse_args(["--model", "models:/m@champion", "--target", "lambda", "--out", "b", "--runtime", "onnx"])
    >>> args.target, args.runtime
    ('lambda', 'onnx')
    """
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="models:/NAME@ALIAS, models:/NAME/VERSION, or a folder packaged by mlkit")
    parser.add_argument("--target", required=True, choices=TARGETS, help="the platform to bundle for")
    parser.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder for the bundle")
    parser.add_argument("--runtime", choices=BUNDLE_RUNTIMES, default=None,
                        help="run the model with scikit-learn (default) or onnxruntime (smaller, for Lambda)")


def run_from_args(args: Any) -> int:
    """Write the bundle ``args`` describe (see :func:`add_arguments`), print its report, return 0.

    A bundle that does not fit Lambda's limit is still written (the report says so and what to
    do); library errors (:class:`~mlkit.errors.MlkitError`) propagate to the CLI's error boundary.
    """
    print(bundle(args.model, args.target, args.out, runtime=args.runtime))
    return 0
