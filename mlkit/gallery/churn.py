"""Customers of a grocery-delivery subscription, and who cancels within 90 days: the churn story.

No use case of :mod:`mlkit.usecases` has churn, so the gallery's retail churn notebook
(``notebooks/usecases/retail_customer_churn.ipynb``) gets its customers here. :func:`customers`
returns monthly snapshots of a subscription retailer's active customers: what the retailer
knows about each one on the first day of the month, whether the customer cancels within the
next 90 days, and, as an answer key, whether they would still cancel if they got a retention
offer that month. :data:`USE_CASE` describes the data the way :mod:`mlkit.usecases` describes
its own, so :mod:`mlkit.evaluation`, :mod:`mlkit.registry` and :mod:`mlkit.retraining` take it.

Assumptions (what the generator does, and where it simplifies):

- **Snapshots are independent samples.** Each month draws ``n_per_month`` customers afresh from
  the customer base; a customer appears in one snapshot only (``customer_id`` is unique), so
  rows are independent and a month is a batch-scoring run.
- **Features** (as of the snapshot): ``tenure_months`` (Gamma, median about 14 months),
  ``plan`` (basic 50%, standard 35%, premium 15%), ``monthly_spend`` (LogNormal around 40 /
  65 / 110 EUR by plan), ``orders_90d`` (Poisson, about one order per 25 EUR a month, times 3),
  ``usage_trend`` (the change in orders between the last three months and the three before, as
  a share: Normal(0, 0.3), clipped to [-1, 1]), ``days_since_last_order`` (Exponential with
  a mean of 10 days, longer when usage falls, at most 90), ``support_calls_90d`` (Poisson 0.4,
  or 2.5 for the 15% of customers with a hidden **service problem**), ``payment_method`` (card
  55%, direct debit 30%, paypal 15%) and ``region`` (north, south, east, west, equally often).
- **Churn.** ``churned_90d`` ~ Bernoulli(logistic(z)) with z = -1.75 - 0.45 ln(1 + tenure)
  - 2.2 usage_trend + 0.03 days_since_last_order + 0.3 min(support_calls, 6) + 0.9 service
  problem + 0.35 basic - 0.45 premium - 0.5 direct debit: about 13% churn within 90 days.
  The hidden service problem is seen only through the support calls, so no model ranks
  perfectly (a ROC AUC of about 0.8 is the ceiling).
- **The retention offer** (a month free, say) keeps a customer who would cancel with
  probability ``logistic(-0.3 - 2.0 service problem + 0.5 basic + 0.25 ln(1 + tenure / 12))``:
  about 0.4 on average over the customers who would cancel, 0.1 to 0.2 for those with a service
  problem (a discount does not fix late deliveries). It never makes a customer cancel, and changes nothing for one who would stay.
  ``churned_if_offered`` is the outcome with the offer, drawn once with the rest: the **answer
  key**, which a real retailer observes only for the customers it targets. Never a feature.
- **Drift** from month ``drift_month`` on (column ``drifted``):
  ``"concept"`` (a competitor) -- a rival launches a cheaper basic plan in the north and the east: basic
  customers there churn far more (+1.8 on the logit) and the offer works less for them (-1.0),
  while every feature keeps its distribution (a concept drift; churn rises to about 19%).
  ``"covariate"`` (a sign-up campaign) -- 40% of the base are new customers who came for a
  discount (tenure 1-3 months, basic plan, usage falling by 0.2 on average, twice the usual
  time between orders), so the features move and churn rises with them (to about 23%), by the
  same mechanism: a covariate drift, which a model's propensities show at once.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same arguments give the same
frame. Snapshot dates are the first of each month from January 2023; they label rows and carry
no information.

Examples
--------
>>> base = customers(500, months=2, seed=0)
>>> base.shape
(1000, 14)
>>> sorted(base["snapshot"].dt.strftime("%Y-%m").unique())
['2023-01', '2023-02']
>>> bool((base["churned_if_offered"] <= base["churned_90d"]).all())  # an offer never makes a customer leave
True
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import pandas as pd

from mlkit.errors import ParameterError
from mlkit.usecases import UseCase

__all__ = ["USE_CASE", "DRIFTS", "FEATURES", "ANSWER_KEY", "customers", "offer_success"]

DRIFTS = ("concept", "covariate")
"""The drift scenarios :func:`customers` can inject: a competitor (concept), a sign-up campaign (covariate)."""

FEATURES = ("tenure_months", "plan", "monthly_spend", "orders_90d", "usage_trend", "days_since_last_order",
            "support_calls_90d", "payment_method", "region")
"""What the retailer knows about a customer at a snapshot: the model's inputs."""

ANSWER_KEY = "churned_if_offered"
"""The column a real retailer never sees for a customer it did not target (see :func:`customers`)."""

USE_CASE = UseCase(
    id="retail-churn",
    industry="retail",
    title="Subscription churn",
    description=("Synthetic monthly snapshots of a grocery-delivery subscription's customers (about 13% cancel "
                 "within 90 days): tenure, plan, spend, orders, usage trend, recency, support calls, payment, region."),
    task="classification",
    target="churned_90d",
    time_column="snapshot",
    id_columns=("customer_id",),
    sensitive_columns=("customer_id",),
    primary_metric="roc_auc",
    positive_label=1,
    cost_model={"note": "a retention offer costs its price whether or not it was needed; it saves a customer's "
                        "margin only if they would have cancelled and the offer changes their mind"},
    gate={"primary_min": 0.70},
    drift={"concept": "a competitor: a rival's cheaper basic plan in the north and east changes who cancels, "
                      "not what the customers look like",
           "covariate": "a sign-up campaign floods the base with new basic customers: the customers change, "
                        "the reasons to cancel do not"},
    source="synthetic",
    default_rows=2000 * 18,
)
"""The churn data described as a use case (not registered in :mod:`mlkit.usecases`; pass it as ``use_case=``)."""

_START = np.datetime64("2023-01-01", "M")
_PLANS = np.array(["basic", "standard", "premium"])
_SPEND = {"basic": 40.0, "standard": 65.0, "premium": 110.0}
_PAYMENTS = np.array(["card", "direct_debit", "paypal"])
_REGIONS = np.array(["north", "south", "east", "west"])


def _whole(value, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < least:
        raise ParameterError(f"{name} must be a whole number of at least {least}, got {value!r}.")
    return int(value)


def _logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def offer_success(rows: pd.DataFrame, service_problem: np.ndarray, competitor: np.ndarray) -> np.ndarray:
    """The probability that the retention offer keeps each customer who would otherwise cancel.

    ``logistic(-0.3 - 2.0 service_problem + 0.5 basic + 0.25 ln(1 + tenure / 12) - 1.0 competitor)``,
    where ``competitor`` marks the customers a rival's cheaper plan tempts (the ``"concept"``
    drift). The service problem is hidden (:func:`customers` draws it); this function is the
    generator's mechanism, exposed so that tests and curious readers can check it.

    Examples
    --------
    >>> rows = pd.DataFrame({"plan": ["basic", "premium"], "tenure_months": [12, 12]})
    >>> offer_success(rows, np.array([False, True]), np.array([False, False])).round(2).tolist()
    [0.59, 0.11]
    """
    basic = (rows["plan"].to_numpy() == "basic").astype(float)
    tenure = rows["tenure_months"].to_numpy(dtype=float)
    z = -0.3 - 2.0 * service_problem + 0.5 * basic + 0.25 * np.log1p(tenure / 12) - 1.0 * competitor
    return _logistic(z)


def _month(rng: np.random.Generator, n: int, scenario: str | None) -> pd.DataFrame:
    """One snapshot of ``n`` customers, in the regime ``scenario`` (None: before any drift)."""
    tenure = np.clip(np.round(rng.gamma(1.2, 16.0, n)) + 1, 1, 120)
    plan = _PLANS[rng.choice(3, size=n, p=[0.5, 0.35, 0.15])]
    trend = np.clip(rng.normal(0.0, 0.3, n), -1, 1)
    newcomer = np.zeros(n, dtype=bool)
    if scenario == "covariate":  # sign-ups for the campaign's discount: new, basic plan, ordering less and less
        newcomer = rng.uniform(size=n) < 0.4
        tenure = np.where(newcomer, rng.integers(1, 4, n), tenure)
        plan = np.where(newcomer, "basic", plan)
        trend = np.where(newcomer, np.clip(rng.normal(-0.2, 0.3, n), -1, 1), trend)
    spend = np.round(np.array([_SPEND[p] for p in plan]) * np.exp(rng.normal(0.0, 0.35, n)), 2)
    orders = rng.poisson(spend / 25.0 * 3.0)
    recency = np.minimum(np.round(rng.exponential(np.where(newcomer, 20.0, 10.0) * np.exp(-1.2 * trend))), 90)
    service_problem = rng.uniform(size=n) < 0.15
    calls = rng.poisson(np.where(service_problem, 2.5, 0.4))
    payment = _PAYMENTS[rng.choice(3, size=n, p=[0.55, 0.30, 0.15])]
    region = _REGIONS[rng.integers(0, 4, n)]
    competitor = (scenario == "concept") & (plan == "basic") & np.isin(region, ["north", "east"])

    z = (-1.75 - 0.45 * np.log1p(tenure) - 2.2 * trend + 0.03 * recency + 0.3 * np.minimum(calls, 6)
         + 0.9 * service_problem + 0.35 * (plan == "basic") - 0.45 * (plan == "premium")
         - 0.5 * (payment == "direct_debit") + 1.8 * competitor)
    churned = rng.uniform(size=n) < _logistic(z)
    frame = pd.DataFrame({
        "tenure_months": tenure.astype(np.int64), "plan": plan, "monthly_spend": spend,
        "orders_90d": orders.astype(np.int64), "usage_trend": np.round(trend, 3),
        "days_since_last_order": recency.astype(np.int64), "support_calls_90d": calls.astype(np.int64),
        "payment_method": payment, "region": region,
    })
    kept = rng.uniform(size=n) < offer_success(frame, service_problem, competitor)
    frame["churned_90d"] = churned.astype(np.int64)
    frame[ANSWER_KEY] = (churned & ~kept).astype(np.int64)
    return frame


def customers(
    n_per_month: int = 2000,
    months: int = 18,
    *,
    seed: int = 0,
    drift: str | None = None,
    drift_month: int = 10,
) -> pd.DataFrame:
    """Monthly snapshots of a subscription's customers, with who cancels within 90 days.

    Parameters
    ----------
    n_per_month : int, default 2000
        Customers in each monthly snapshot (at least 50).
    months : int, default 18
        Snapshots, one a month from January 2023 (at least 1).
    seed : int, default 0
        Every random draw starts here.
    drift : {None, "concept", "covariate"}, default None
        What changes from ``drift_month`` on (see the module docstring); None: nothing.
    drift_month : int, default 10
        The first drifted snapshot, counted from 0 (January 2023), between 1 and ``months - 1``
        when ``drift`` is set.

    Returns
    -------
    pandas.DataFrame
        One row per customer and snapshot, in time order: ``customer_id`` (unique),
        ``snapshot`` (the first of the month), the :data:`FEATURES`,
        ``churned_90d`` (the target: cancels within 90 days, with no offer), the answer key
        ``churned_if_offered`` (the same customer's outcome had they got the retention offer
        that month) and ``drifted``.

    Raises
    ------
    ParameterError
        For sizes that are not whole numbers large enough, an unknown drift, or a
        ``drift_month`` outside the snapshots.

    Examples
    --------
    >>> rows = customers(2000, months=4, seed=1, drift="concept", drift_month=2)
    >>> before, after = rows[~rows["drifted"]], rows[rows["drifted"]]
    >>> bool(after["churned_90d"].mean() > before["churned_90d"].mean())
    True
    >>> customers(100, drift="price war")
    Traceback (most recent call last):
    ...
    mlkit.errors.ParameterError: Unknown drift 'price war'; choose one of concept, covariate (or None for no drift).
    """
    n_per_month = _whole(n_per_month, "n_per_month", 50)
    months = _whole(months, "months", 1)
    seed = _whole(seed, "seed", 0)
    if drift is not None and drift not in DRIFTS:
        raise ParameterError(f"Unknown drift {drift!r}; choose one of {', '.join(DRIFTS)} (or None for no drift).")
    if drift is not None:
        if isinstance(drift_month, bool) or not isinstance(drift_month, Integral) or not 1 <= drift_month < months:
            raise ParameterError(f"drift_month must be a whole number from 1 to {months - 1} (a snapshot after the "
                                 f"first), got {drift_month!r}.")
    rng = np.random.default_rng([seed, 23])
    frames = []
    for month in range(months):
        drifted = drift is not None and month >= drift_month
        frame = _month(rng, n_per_month, drift if drifted else None)
        frame.insert(0, "snapshot", pd.Timestamp(_START + month))
        frame["drifted"] = drifted
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "customer_id", [f"CU-{i:06d}" for i in range(1, len(out) + 1)])
    return out
