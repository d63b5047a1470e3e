"""Synthetic markets for the finance gallery: one stock's daily prices, and a universe of assets.

Two seeded generators, each documenting what in its data is signal and what is noise, so that
a notebook can say how much a model *should* find:

* :func:`price_series` -- one stock's daily closing prices: a geometric random walk whose
  volatility switches between a calm and a turbulent regime and wanders within each, with
  fat-tailed shocks and a deliberately **tiny** predictable part (a lag-1 momentum of a few
  hundredths). Optionally, from a point on, every volatility rises (a regime change).
  Used by ``notebooks/usecases/finance_stock_prices.ipynb``.
* :func:`asset_universe` -- daily returns of a universe of stocks from a factor model (a market
  factor, one factor per sector, each stock's own noise), returned with the **true** expected returns
  and covariance, so a notebook can measure how far estimates and optimised portfolios are from the
  truth. Optionally, from a point on, the market's volatility rises and correlations with it (a
  crisis). Used by ``notebooks/usecases/finance_portfolio_optimisation.ipynb``.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same arguments give the same
frame. Dates are business days from 2012-01-02; they label rows and carry no information.

Examples
--------
>>> prices = price_series(500, seed=1)
>>> prices.shape
(500, 6)
>>> float(prices["close"].iloc[0])
100.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from mlkit.errors import ParameterError

__all__ = ["price_series", "asset_universe", "AssetUniverse", "SECTORS", "TRADING_DAYS"]

TRADING_DAYS = 252
"""Trading days in a year: annual figures are daily ones times 252 (means) or sqrt(252) (volatilities)."""

_START = "2012-01-02"


def _whole(value, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < least:
        raise ParameterError(f"{name} must be a whole number of at least {least}, got {value!r}.")
    return int(value)


def _real(value, name: str, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        left, right = "(" if low_open else "[", ")" if high_open else "]"
        raise ParameterError(f"{name} must be a number in {left}{low:g}, {high:g}{right}, got {value!r}.")
    return float(value)


def _unit_t(rng: np.random.Generator, df: float, n: int) -> np.ndarray:
    """Student-t draws scaled to unit variance (fat tails, as daily returns have)."""
    return rng.standard_t(df, n) * math.sqrt((df - 2) / df)


def price_series(
    n_days: int = 3000,
    *,
    seed: int = 0,
    start_price: float = 100.0,
    annual_drift: float = 0.06,
    momentum: float = 0.03,
    calm_vol: float = 0.16,
    turbulent_vol: float = 0.35,
    stay_calm: float = 0.99,
    stay_turbulent: float = 0.97,
    tail_df: float = 5.0,
    shift_start: float | None = None,
    vol_shift: float = 2.0,
) -> pd.DataFrame:
    """One stock's daily closing prices, with a documented and deliberately tiny predictable part.

    The daily log return is

    ``r[t] = mu + momentum * (r[t-1] - mu) + sigma[t] * e[t]``

    * ``mu = annual_drift / 252``: the slow upward drift of a stock market;
    * ``momentum``: the **only** predictable part, a lag-1 autocorrelation of a few hundredths (the
      default 0.03 means yesterday's return explains about 0.1% of today's variance, before the
      cost of estimating it);
    * ``sigma[t] = regime volatility * exp(h[t])``: the regime is a two-state Markov chain
      (``"calm"`` at ``calm_vol``, ``"turbulent"`` at ``turbulent_vol``, both annualised; each day
      the regime stays with probability ``stay_calm`` / ``stay_turbulent``, so turbulent spells
      last about ``1 / (1 - stay_turbulent)`` days); ``h`` is a slow AR(1) wander of the log
      volatility (coefficient 0.98, shock 0.05, mean-corrected), so volatility clusters as in real
      markets;
    * ``e[t]``: Student-t shocks with ``tail_df`` degrees of freedom, scaled to unit variance (crashes
      and rallies of several sigma happen, as they do).

    From ``shift_start`` (a share of the series) on, every volatility is multiplied by ``vol_shift``:
    a regime change that a model trained before it has never seen (the momentum does not change).

    Parameters
    ----------
    n_days : int, default 3000
        Trading days (about 12 years); at least 30.
    seed : int, default 0
    start_price : float, default 100.0
        The first close.
    annual_drift : float, default 0.06
        Expected log return per year.
    momentum : float, default 0.03
        Lag-1 autocorrelation of the returns, in (-1, 1).
    calm_vol, turbulent_vol : float, default 0.16 and 0.35
        Annualised volatility of each regime.
    stay_calm, stay_turbulent : float, default 0.99 and 0.97
        Daily probability that the regime continues.
    tail_df : float, default 5.0
        Degrees of freedom of the shocks (above 2; larger is closer to normal).
    shift_start : float, optional
        Share of the series after which volatility changes (in (0, 1)); None for no change.
    vol_shift : float, default 2.0
        The factor applied to every volatility from ``shift_start`` on.

    Returns
    -------
    pandas.DataFrame
        One row per trading day: ``date`` (business days from 2012-01-02), ``close`` (the price),
        ``log_return`` (``log(close[t] / close[t-1])``, NaN on the first day), ``volatility`` (the
        true daily sigma, which no trader observes), ``regime`` (``"calm"`` or ``"turbulent"``) and
        ``shifted`` (True from ``shift_start`` on).

    Raises
    ------
    ParameterError
        (a ``ValueError``) for a bad argument, with what is allowed.

    Examples
    --------
    >>> p = price_series(1000, seed=0, shift_start=0.5, vol_shift=2.0)
    >>> list(p.columns)
    ['date', 'close', 'log_return', 'volatility', 'regime', 'shifted']
    >>> int(p["shifted"].sum())
    500
    >>> bool(p.loc[p["shifted"], "volatility"].mean() > 1.5 * p.loc[~p["shifted"], "volatility"].mean())
    True
    """
    n = _whole(n_days, "n_days", 30)
    _whole(seed, "seed", 0)
    start_price = _real(start_price, "start_price", 0, math.inf, low_open=True, high_open=True)
    annual_drift = _real(annual_drift, "annual_drift", -1, 1)
    momentum = _real(momentum, "momentum", -1, 1, low_open=True, high_open=True)
    calm_vol = _real(calm_vol, "calm_vol", 0, 5, low_open=True)
    turbulent_vol = _real(turbulent_vol, "turbulent_vol", 0, 5, low_open=True)
    stay_calm = _real(stay_calm, "stay_calm", 0, 1, low_open=True, high_open=True)
    stay_turbulent = _real(stay_turbulent, "stay_turbulent", 0, 1, low_open=True, high_open=True)
    tail_df = _real(tail_df, "tail_df", 2, math.inf, low_open=True, high_open=True)
    vol_shift = _real(vol_shift, "vol_shift", 0, 20, low_open=True)
    if shift_start is not None:
        shift_start = _real(shift_start, "shift_start (a share of the series, or None)", 0, 1,
                            low_open=True, high_open=True)

    rng = np.random.default_rng(seed)
    # The regime: a two-state Markov chain, started in its long-run distribution.
    switch = rng.random(n)
    p_turbulent = (1 - stay_calm) / ((1 - stay_calm) + (1 - stay_turbulent))
    turbulent = np.empty(n, dtype=bool)
    turbulent[0] = switch[0] < p_turbulent
    for t in range(1, n):
        stay = stay_turbulent if turbulent[t - 1] else stay_calm
        turbulent[t] = turbulent[t - 1] if switch[t] < stay else not turbulent[t - 1]
    # A slow wander of the log volatility within the regime (AR(1), stationary, mean-corrected).
    eta = rng.normal(0.0, 0.05, n)
    h0 = eta[0] / math.sqrt(1 - 0.98**2)
    h = np.concatenate([[h0], lfilter([1.0], [1.0, -0.98], eta[1:], zi=[0.98 * h0])[0]])  # h[t] = 0.98 h[t-1] + eta[t]
    h_var = 0.05**2 / (1 - 0.98**2)
    sigma = np.where(turbulent, turbulent_vol, calm_vol) / math.sqrt(TRADING_DAYS) * np.exp(h - h_var)
    shifted = np.zeros(n, dtype=bool)
    if shift_start is not None:
        shifted[int(round(shift_start * n)):] = True
        sigma = np.where(shifted, sigma * vol_shift, sigma)
    # Returns: drift, the tiny momentum, and fat-tailed shocks.
    shocks = sigma * _unit_t(rng, tail_df, n)
    mu = annual_drift / TRADING_DAYS
    excess = lfilter([1.0], [1.0, -momentum], shocks[1:])  # r[t] - mu = momentum * (r[t-1] - mu) + shock[t]
    r = np.concatenate([[np.nan], mu + excess])
    close = start_price * np.exp(np.concatenate([[0.0], np.cumsum(r[1:])]))
    return pd.DataFrame({
        "date": pd.bdate_range(_START, periods=n),
        "close": close,
        "log_return": r,
        "volatility": sigma,
        "regime": np.where(turbulent, "turbulent", "calm"),
        "shifted": shifted,
    })


# --------------------------------------------------------------------------- a universe of assets

SECTORS = ("technology", "energy", "healthcare", "utilities")
"""The sectors of :func:`asset_universe`, in the order assets are dealt to them."""
_SECTOR_BETA = {"technology": 1.25, "energy": 1.05, "healthcare": 0.85, "utilities": 0.65}


@dataclass(frozen=True)
class AssetUniverse:
    """Daily returns of a universe of assets and the true moments they were drawn from.

    Attributes
    ----------
    returns : pandas.DataFrame
        Daily simple returns, one column per asset, indexed by date (business days).
    expected : pandas.Series
        The true expected daily return of each asset (the same before and during the crisis).
    covariance : pandas.DataFrame
        The true daily covariance before the crisis.
    crisis_covariance : pandas.DataFrame
        The true daily covariance from the crisis on (equal to ``covariance`` without a crisis).
    betas : pandas.Series
        Each asset's loading on the market factor.
    sectors : pandas.Series
        Each asset's sector.
    crisis : pandas.Series
        True on the days of the crisis, indexed like ``returns``.
    """

    returns: pd.DataFrame
    expected: pd.Series
    covariance: pd.DataFrame
    crisis_covariance: pd.DataFrame
    betas: pd.Series
    sectors: pd.Series
    crisis: pd.Series


def asset_universe(
    n_days: int = 2520,
    *,
    n_assets: int = 12,
    seed: int = 0,
    market_premium: float = 0.05,
    market_vol: float = 0.16,
    sector_vol: float = 0.10,
    idiosyncratic_vol: tuple[float, float] = (0.15, 0.30),
    alpha_sd: float = 0.02,
    tail_df: float = 5.0,
    crisis_start: float | None = None,
    crisis_vol: float = 2.0,
) -> AssetUniverse:
    """Daily returns of ``n_assets`` stocks from a factor model whose true moments are returned too.

    Each asset's daily return is

    ``r[t] = mu + beta * m[t] + gamma * s_sector[t] + e[t]``

    * ``m`` is the market factor (annualised volatility ``market_vol``, Student-t shocks with ``tail_df``
      degrees of freedom); ``beta`` is drawn uniformly within 0.15 of its sector's typical beta
      (technology 1.25, energy 1.05, healthcare 0.85, utilities 0.65);
    * ``s_sector`` is the factor of the asset's sector (assets are dealt to :data:`SECTORS` in turn;
      volatility ``sector_vol``), with a loading ``gamma`` in [0.5, 1.0];
    * ``e`` is the asset's own noise, volatility drawn uniformly in ``idiosyncratic_vol`` (annualised);
    * the expected return ``mu = beta * market_premium + alpha`` (annual figures divided by 252): the
      market rewards beta (a CAPM world) and each asset has a small true ``alpha`` (standard deviation
      ``alpha_sd`` a year). The differences between expected returns are a few percent a year, far
      below what a few years of daily returns can measure (an annual mean's standard error is the
      annual volatility over the square root of the years): this is the estimation error that
      mean-variance optimisation magnifies.

    From ``crisis_start`` (a share of the series) on, the market factor's volatility is multiplied by
    ``crisis_vol``: every asset moves with the market more, so correlations rise and diversification
    shrinks just when it is needed (a correlation regime change). Expected returns do not change.

    Parameters
    ----------
    n_days : int, default 2520
        Trading days (about 10 years); at least 60.
    n_assets : int, default 12
        Between 2 and 100.
    seed : int, default 0
    market_premium : float, default 0.05
        Annual expected return of the market factor (the reward for a beta of 1).
    market_vol, sector_vol : float, default 0.16 and 0.10
        Annualised factor volatilities.
    idiosyncratic_vol : (low, high), default (0.15, 0.30)
        Range of the assets' own annualised volatilities.
    alpha_sd : float, default 0.02
        Standard deviation of the true annual alphas.
    tail_df : float, default 5.0
        Degrees of freedom of the market shocks (above 2).
    crisis_start : float, optional
        Share of the series after which the crisis starts (in (0, 1)); None for no crisis.
    crisis_vol : float, default 2.0
        The factor applied to the market's volatility during the crisis.

    Returns
    -------
    AssetUniverse

    Raises
    ------
    ParameterError
        (a ``ValueError``) for a bad argument, with what is allowed.

    Examples
    --------
    >>> u = asset_universe(500, n_assets=8, seed=0, crisis_start=0.5)
    >>> u.returns.shape
    (500, 8)
    >>> list(u.returns.columns[:3])
    ['technology_1', 'energy_1', 'healthcare_1']
    >>> int(u.crisis.sum())
    250
    >>> bool(np.allclose(u.covariance.to_numpy(), u.covariance.to_numpy().T))
    True
    """
    n = _whole(n_days, "n_days", 60)
    k = _whole(n_assets, "n_assets", 2)
    if k > 100:
        raise ParameterError(f"n_assets must be at most 100, got {k}.")
    _whole(seed, "seed", 0)
    market_premium = _real(market_premium, "market_premium", -0.5, 0.5)
    market_vol = _real(market_vol, "market_vol", 0, 2, low_open=True)
    sector_vol = _real(sector_vol, "sector_vol", 0, 2)
    alpha_sd = _real(alpha_sd, "alpha_sd", 0, 0.5)
    tail_df = _real(tail_df, "tail_df", 2, math.inf, low_open=True, high_open=True)
    crisis_vol = _real(crisis_vol, "crisis_vol", 0, 20, low_open=True)
    if (not isinstance(idiosyncratic_vol, (tuple, list)) or len(idiosyncratic_vol) != 2
            or not all(isinstance(v, Real) and not isinstance(v, bool) for v in idiosyncratic_vol)
            or not 0 < idiosyncratic_vol[0] <= idiosyncratic_vol[1] <= 2):
        raise ParameterError(f"idiosyncratic_vol must be (low, high) with 0 < low <= high <= 2, "
                             f"got {idiosyncratic_vol!r}.")
    if crisis_start is not None:
        crisis_start = _real(crisis_start, "crisis_start (a share of the series, or None)", 0, 1,
                             low_open=True, high_open=True)

    rng = np.random.default_rng(seed)
    day = math.sqrt(TRADING_DAYS)
    sector_of = [SECTORS[i % len(SECTORS)] for i in range(k)]
    names = [f"{s}_{i // len(SECTORS) + 1}" for i, s in enumerate(sector_of)]
    beta = np.array([_SECTOR_BETA[s] for s in sector_of]) + rng.uniform(-0.15, 0.15, k)
    gamma = rng.uniform(0.5, 1.0, k)
    own_vol = rng.uniform(idiosyncratic_vol[0], idiosyncratic_vol[1], k) / day
    alpha = rng.normal(0.0, alpha_sd, k)
    mu = (beta * market_premium + alpha) / TRADING_DAYS
    sector_index = np.array([SECTORS.index(s) for s in sector_of])
    used = sorted(set(sector_index))
    # Loadings: the market, then one factor per sector present.
    loadings = np.zeros((k, 1 + len(used)))
    loadings[:, 0] = beta
    for i, s in enumerate(sector_index):
        loadings[i, 1 + used.index(s)] = gamma[i]

    crisis = np.zeros(n, dtype=bool)
    if crisis_start is not None:
        crisis[int(round(crisis_start * n)):] = True
    market_sd = np.where(crisis, market_vol * crisis_vol, market_vol) / day
    market = market_sd * _unit_t(rng, tail_df, n)
    sectors = rng.normal(0.0, sector_vol / day, (n, len(used)))
    own = rng.normal(0.0, 1.0, (n, k)) * own_vol
    factors = np.column_stack([market, sectors])
    returns = mu + factors @ loadings.T + own

    def covariance(market_daily_vol: float) -> pd.DataFrame:
        factor_cov = np.diag([market_daily_vol**2] + [(sector_vol / day) ** 2] * len(used))
        cov = loadings @ factor_cov @ loadings.T + np.diag(own_vol**2)
        return pd.DataFrame(cov, index=names, columns=names)

    dates = pd.bdate_range(_START, periods=n)
    calm = covariance(market_vol / day)
    return AssetUniverse(
        returns=pd.DataFrame(returns, index=dates, columns=names).rename_axis("date"),
        expected=pd.Series(mu, index=names, name="expected_return"),
        covariance=calm,
        crisis_covariance=covariance(market_vol * crisis_vol / day) if crisis_start is not None else calm,
        betas=pd.Series(beta, index=names, name="beta"),
        sectors=pd.Series(sector_of, index=names, name="sector"),
        crisis=pd.Series(crisis, index=dates, name="crisis"),
    )
