"""Behaviour of mlkit.gallery.markets: seeded synthetic markets whose signal is documented and really there."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlkit.errors import ParameterError
from mlkit.gallery import markets


# --------------------------------------------------------------------------- price_series


def test_price_series_is_deterministic_by_seed():
    a, b = markets.price_series(400, seed=3), markets.price_series(400, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"], markets.price_series(400, seed=4)["close"])


def test_price_series_columns_types_and_consistency():
    p = markets.price_series(300, seed=0, start_price=50.0)
    assert list(p.columns) == ["date", "close", "log_return", "volatility", "regime", "shifted"]
    assert len(p) == 300 and p["date"].is_monotonic_increasing and (p["date"].dt.day_of_week < 5).all()
    assert p["date"].iloc[0] == pd.Timestamp("2012-01-02")
    assert p["close"].dtype == np.float64 and (p["close"] > 0).all() and p["close"].iloc[0] == 50.0
    assert np.isnan(p["log_return"].iloc[0])
    np.testing.assert_allclose(p["log_return"].iloc[1:], np.diff(np.log(p["close"])), atol=1e-12)
    assert set(p["regime"]) <= {"calm", "turbulent"} and not p["shifted"].any()


def test_the_only_predictable_part_is_the_documented_lag1_momentum():
    """Over a long series the lag-1 autocorrelation is the momentum; lags 2-5 are about zero."""
    r = markets.price_series(100_000, seed=1, momentum=0.05)["log_return"].dropna()
    assert r.autocorr(1) == pytest.approx(0.05, abs=0.015)
    assert all(abs(r.autocorr(k)) < 0.015 for k in range(2, 6))
    r0 = markets.price_series(100_000, seed=1, momentum=0.0)["log_return"].dropna()
    assert abs(r0.autocorr(1)) < 0.015


def test_the_default_momentum_is_tiny_on_a_realistic_history():
    """At the defaults, yesterday's return explains about 0.1% of today's variance: almost nothing."""
    r = markets.price_series(100_000, seed=2)["log_return"].dropna()
    assert r.autocorr(1) ** 2 < 0.003


def test_regimes_cluster_volatility_and_shocks_have_fat_tails():
    p = markets.price_series(50_000, seed=5)
    turbulent = p["regime"] == "turbulent"
    assert turbulent.mean() == pytest.approx(0.01 / (0.01 + 0.03), abs=0.05)  # the chain's long-run share
    assert p.loc[turbulent, "log_return"].std() > 1.8 * p.loc[~turbulent, "log_return"].std()
    spells = (turbulent != turbulent.shift()).cumsum()[turbulent]
    assert spells.value_counts().mean() == pytest.approx(1 / 0.03, rel=0.25)  # about 33 days a spell
    standardised = (p["log_return"] / p["volatility"]).dropna()
    assert stats.kurtosis(standardised) > 1  # Student-t shocks: heavier tails than a normal's 0
    annual = p["log_return"].std() * np.sqrt(markets.TRADING_DAYS)
    assert 0.15 < annual < 0.35


def test_the_volatility_shift_multiplies_every_volatility_from_its_start():
    base = markets.price_series(2000, seed=7)
    p = markets.price_series(2000, seed=7, shift_start=0.75, vol_shift=2.5)
    assert p["shifted"].sum() == 500 and p["shifted"].iloc[1500:].all()
    np.testing.assert_allclose(p["volatility"].iloc[1500:], 2.5 * base["volatility"].iloc[1500:])
    np.testing.assert_allclose(p["volatility"].iloc[:1500], base["volatility"].iloc[:1500])
    pd.testing.assert_series_equal(p["regime"], base["regime"])
    after, before = p["log_return"].iloc[1500:].std(), p["log_return"].iloc[1:1500].std()
    assert after > 1.8 * before


@pytest.mark.parametrize("kwargs, message", [
    ({"n_days": 10}, "n_days must be a whole number of at least 30"),
    ({"n_days": 100.0}, "n_days must be a whole number"),
    ({"seed": -1}, "seed must be a whole number of at least 0"),
    ({"momentum": 1.0}, r"momentum must be a number in \(-1, 1\)"),
    ({"calm_vol": 0}, "calm_vol must be a number in"),
    ({"stay_calm": 1.0}, "stay_calm must be a number in"),
    ({"tail_df": 2}, "tail_df must be a number in"),
    ({"shift_start": 1.5}, "shift_start"),
    ({"vol_shift": -1}, "vol_shift must be a number in"),
    ({"start_price": float("nan")}, "start_price must be a number"),
])
def test_price_series_refuses_bad_arguments_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message) as caught:
        markets.price_series(**{"n_days": 100, **kwargs})
    assert isinstance(caught.value, ParameterError)


# --------------------------------------------------------------------------- asset_universe


def test_asset_universe_is_deterministic_by_seed():
    a, b = markets.asset_universe(300, seed=2), markets.asset_universe(300, seed=2)
    pd.testing.assert_frame_equal(a.returns, b.returns)
    pd.testing.assert_series_equal(a.expected, b.expected)
    assert not np.allclose(a.returns, markets.asset_universe(300, seed=3).returns)


def test_asset_universe_shapes_names_and_truth():
    u = markets.asset_universe(400, n_assets=10, seed=0, crisis_start=0.5, crisis_vol=2.0)
    assert u.returns.shape == (400, 10) and u.returns.index.name == "date"
    assert (u.returns.dtypes == np.float64).all() and np.isfinite(u.returns.to_numpy()).all()
    assert list(u.returns.columns[:5]) == ["technology_1", "energy_1", "healthcare_1", "utilities_1", "technology_2"]
    assert list(u.sectors) == [markets.SECTORS[i % 4] for i in range(10)]
    for cov in (u.covariance, u.crisis_covariance):
        assert list(cov.index) == list(cov.columns) == list(u.returns.columns)
        assert np.allclose(cov, cov.T) and np.linalg.eigvalsh(cov.to_numpy()).min() > 0
    assert u.crisis.sum() == 200 and u.crisis.iloc[200:].all() and u.crisis.index.equals(u.returns.index)
    assert (u.betas.groupby(u.sectors).mean().sort_values().index == ["utilities", "healthcare", "energy", "technology"]).all()


def test_asset_universe_returns_match_their_true_moments():
    """Over a long history the sample covariance and the beta-driven means converge to the truth returned."""
    u = markets.asset_universe(100_000, n_assets=8, seed=1, alpha_sd=0.0)
    sample = u.returns.cov().to_numpy()
    assert np.allclose(sample, u.covariance.to_numpy(), rtol=0.05, atol=2e-6)
    np.testing.assert_allclose(u.expected * markets.TRADING_DAYS, u.betas * 0.05)  # CAPM: beta times the premium
    assert np.abs(u.returns.mean() - u.expected).max() < 4 * u.returns.std().max() / np.sqrt(100_000)


def test_estimated_means_are_mostly_noise_over_a_few_years():
    """The signal the portfolio story relies on: mean estimates from a year are far noisier than the true spread."""
    u = markets.asset_universe(252, n_assets=20, seed=4)
    error = (u.returns.mean() - u.expected) * markets.TRADING_DAYS
    assert error.std() > 4 * (u.expected * markets.TRADING_DAYS).std()


def test_the_crisis_raises_correlations_and_volatility():
    u = markets.asset_universe(4000, n_assets=12, seed=6, crisis_start=0.5, crisis_vol=2.0)

    def mean_corr(frame):
        c = np.corrcoef(frame.to_numpy(), rowvar=False)
        return c[np.triu_indices_from(c, k=1)].mean()

    calm, crisis = u.returns[~u.crisis], u.returns[u.crisis]
    assert mean_corr(crisis) > mean_corr(calm) + 0.2
    assert crisis.mean(axis=1).std() > 1.6 * calm.mean(axis=1).std()
    assert np.all(np.diag(u.crisis_covariance) > np.diag(u.covariance))
    no_crisis = markets.asset_universe(400, seed=6)
    assert not no_crisis.crisis.any() and no_crisis.crisis_covariance.equals(no_crisis.covariance)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_days": 10}, "n_days must be a whole number of at least 60"),
    ({"n_assets": 1}, "n_assets must be a whole number of at least 2"),
    ({"n_assets": 101}, "n_assets must be at most 100"),
    ({"market_vol": 0.0}, "market_vol must be a number in"),
    ({"idiosyncratic_vol": (0.3, 0.1)}, r"idiosyncratic_vol must be \(low, high\)"),
    ({"idiosyncratic_vol": 0.2}, "idiosyncratic_vol must be"),
    ({"crisis_start": 0.0}, "crisis_start"),
    ({"crisis_vol": 0}, "crisis_vol must be a number in"),
    ({"tail_df": 1.5}, "tail_df must be a number in"),
])
def test_asset_universe_refuses_bad_arguments_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message) as caught:
        markets.asset_universe(**{"n_days": 100, **kwargs})
    assert isinstance(caught.value, ParameterError)
