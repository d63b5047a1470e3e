"""The cost and scaling model of mlkit.cloud: queueing formulas, the three cost options, break-even, plots."""

from __future__ import annotations

import heapq
import math
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from mlkit import cloud  # noqa: E402
from mlkit.cloud import (  # noqa: E402
    HOURS_PER_MONTH,
    ExamplePrices,
    autoscaled_cost,
    break_even,
    cost_curve,
    mmc,
    mmc_table,
    monthly_costs,
    on_premise_cost,
    plot_costs,
    plot_mmc,
    serverless_cost,
    traffic_profile,
)
from mlkit.errors import ParameterError  # noqa: E402

PRICES = ExamplePrices()


@pytest.fixture(autouse=True)
def no_figure_leaks():
    """Every test starts and ends with no open figure."""
    plt.close("all")
    yield
    plt.close("all")
    assert plt.get_fignums() == []


def test_public_names_are_declared():
    costs = {
        "HOURS_PER_MONTH", "OPTIONS", "OPTION_LABELS", "ExamplePrices", "OptionCost", "traffic_profile",
        "on_premise_cost", "autoscaled_cost", "serverless_cost", "monthly_costs", "cost_curve", "break_even",
        "plot_costs", "mmc", "mmc_table", "plot_mmc",
    }
    assert costs <= set(cloud.__all__)  # the cost section's names; the bundle section adds its own
    assert all(hasattr(cloud, name) for name in cloud.__all__)


def test_import_needs_neither_matplotlib_nor_scipy():
    code = "import sys, mlkit.cloud; print(sorted(m for m in ('matplotlib', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --------------------------------------------------------------------------- example prices


def test_prices_say_they_are_examples():
    text = PRICES.describe()
    assert text.startswith("EXAMPLE prices")
    assert "not quotes" in text
    assert "not quotes" in ExamplePrices.__doc__.lower() and "illustrative" in ExamplePrices.__doc__


def test_server_monthly_cost_is_amortisation_plus_power_plus_operations():
    p = ExamplePrices(server_hardware=4800, server_amortisation_months=48, server_power_kw=1.0,
                      power_price_per_kwh=0.1, server_ops_per_month=27)
    assert p.server_monthly_cost == pytest.approx(100 + 73 + 27)
    assert "200.00" in p.describe()


# --------------------------------------------------------------------------- M/M/c


@pytest.mark.parametrize("lam, mu", [(0.5, 1.0), (9.0, 10.0), (40.0, 50.0)])
def test_mm1_closed_forms(lam, mu):
    r = mmc(lam, mu, 1)
    rho = lam / mu
    assert r["stable"] is True
    assert r["rho"] == pytest.approx(rho)
    assert r["p_wait"] == pytest.approx(rho)
    assert r["wq"] == pytest.approx(rho / (mu - lam))
    assert r["w"] == pytest.approx(1 / (mu - lam))
    # M/M/1 FCFS: the response time is exponential with rate mu - lambda.
    for p in (50, 95, 99):
        assert r[f"w_p{p}"] == pytest.approx(-math.log(1 - p / 100) / (mu - lam), rel=1e-9)
    assert r["wq_p95"] == pytest.approx(math.log(rho / 0.05) / (mu - lam))


def test_erlang_c_two_servers_is_one_third():
    r = mmc(1.0, 1.0, 2)
    assert r["p_wait"] == pytest.approx(1 / 3, rel=1e-12)
    assert r["wq"] == pytest.approx((1 / 3) / (2 - 1))


def _erlang_c_direct(a: float, c: int) -> float:
    """The textbook sum formula, in log space so it works for large c too."""
    log_terms = [k * math.log(a) - math.lgamma(k + 1) for k in range(c)] if a > 0 else [0.0]
    log_top = c * math.log(a) - math.lgamma(c + 1) + math.log(c / (c - a))
    m = max(log_terms + [log_top])
    s = sum(math.exp(t - m) for t in log_terms)
    top = math.exp(log_top - m)
    return top / (s + top)


def test_erlang_c_textbook_value_for_ten_servers():
    # Call-centre tables: 8 erlangs offered to 10 agents -> probability of waiting 0.409.
    r = mmc(8.0, 1.0, 10)
    assert r["p_wait"] == pytest.approx(0.4092, abs=1e-4)
    assert r["p_wait"] == pytest.approx(_erlang_c_direct(8.0, 10), rel=1e-12)


@pytest.mark.parametrize("a, c", [(290.0, 300), (450.0, 500), (30.0, 300)])
def test_erlang_c_is_stable_for_hundreds_of_servers(a, c):
    r = mmc(a, 1.0, c)
    assert 0.0 <= r["p_wait"] <= 1.0
    assert r["p_wait"] == pytest.approx(_erlang_c_direct(a, c), rel=1e-9, abs=1e-300)
    assert math.isfinite(r["w_p99"])


def test_no_traffic_means_no_wait():
    r = mmc(0.0, 2.0, 3)
    assert r["p_wait"] == 0.0 and r["wq"] == 0.0
    assert r["w"] == pytest.approx(0.5)
    assert r["w_p50"] == pytest.approx(math.log(2) / 2)


@pytest.mark.parametrize("lam", [2.0, 3.0, 5.0])
def test_unstable_queue_is_reported_not_raised(lam):
    r = mmc(lam, 1.0, 2)
    assert r["stable"] is False
    assert r["rho"] == pytest.approx(lam / 2)
    assert r["p_wait"] == 1.0
    for key in ("wq", "w", "w_p50", "w_p95", "w_p99"):
        assert r[key] == math.inf


def _simulate_mmc(lam: float, mu: float, c: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """First-come-first-served M/M/c: each arrival takes the server that frees up first."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / lam, n))
    service = rng.exponential(1 / mu, n)
    free_at = [0.0] * c
    waits = np.empty(n)
    for i in range(n):
        earliest = heapq.heappop(free_at)
        start = max(arrivals[i], earliest)
        waits[i] = start - arrivals[i]
        heapq.heappush(free_at, start + service[i])
    keep = slice(n // 20, None)  # drop the warm-up from an empty system
    return waits[keep], (waits + service)[keep]


@pytest.mark.parametrize("lam, c", [(2.4, 3), (1.5, 3)])  # queue drains slower / faster than one service
def test_percentiles_match_a_simulated_queue(lam, c):
    mu = 1.0
    waits, response = _simulate_mmc(lam, mu, c, n=200_000, seed=7)
    r = mmc(lam, mu, c)
    assert np.mean(waits > 0) == pytest.approx(r["p_wait"], rel=0.04)
    assert response.mean() == pytest.approx(r["w"], rel=0.03)
    for p in (50, 95, 99):
        assert np.percentile(response, p) == pytest.approx(r[f"w_p{p}"], rel=0.04)
    assert np.percentile(waits, 95) == pytest.approx(r["wq_p95"], rel=0.04)


def test_mmc_table_has_one_row_per_rate_and_server_count():
    t = mmc_table([10, 20, 60], 0.02, [1, 2])
    assert len(t) == 6
    assert t["servers"].tolist() == [1, 1, 1, 2, 2, 2]
    assert t["stable"].tolist() == [True, True, False, True, True, True]
    assert t.loc[4, "w"] == pytest.approx(mmc(20, 50, 2)["w"])
    assert (t["service_time_s"] == 0.02).all()


# --------------------------------------------------------------------------- traffic profile


@pytest.mark.parametrize("mean, ratio", [(5.0, 2.0), (120.0, 3.0), (1.0, 1.5), (0.3, 6.0)])
def test_profile_has_the_requested_mean_and_peak(mean, ratio):
    rps = traffic_profile(mean, peak_to_mean=ratio)
    assert rps.shape == (720,)
    assert rps.mean() == pytest.approx(mean, rel=1e-12)
    assert rps.max() / rps.mean() == pytest.approx(ratio, rel=1e-9)
    assert (rps > 0).all()


def test_profile_is_deterministic_daily_and_weekly():
    a = traffic_profile(10.0, peak_to_mean=2.5, days=14)
    b = traffic_profile(10.0, peak_to_mean=2.5, days=14)
    np.testing.assert_array_equal(a, b)
    by_day = a.reshape(14, 24)
    assert by_day[0].argmax() == 14 and by_day[0].argmin() == 2   # busiest at 14:00, quietest at 02:00
    assert by_day[5].sum() == pytest.approx(0.6 * by_day[0].sum())  # Saturday at the weekend factor
    np.testing.assert_allclose(by_day[7], by_day[0])                # next Monday = this Monday


def test_flat_profile_and_unreachable_peak():
    flat = traffic_profile(7.0, peak_to_mean=1.0, weekend_factor=1.0)
    np.testing.assert_allclose(flat, 7.0)
    with pytest.raises(ParameterError, match="peak_to_mean=1.05 cannot be reached with weekend_factor=0.6"):
        traffic_profile(7.0, peak_to_mean=1.05)
    with pytest.raises(ParameterError, match="below 24"):
        traffic_profile(7.0, peak_to_mean=30, weekend_factor=1.0)


# --------------------------------------------------------------------------- the three options


def test_serverless_scales_linearly_with_traffic():
    profile = traffic_profile(3.0)
    one = serverless_cost(profile, 0.02, PRICES).monthly_cost
    for k in (2, 10, 37):
        assert serverless_cost(profile * k, 0.02, PRICES).monthly_cost == pytest.approx(k * one, rel=1e-12)
    # by hand: 3 req/s over 730 h, 20 ms at 2 GB
    requests = 3.0 * 3600 * HOURS_PER_MONTH
    assert one == pytest.approx(requests * (0.20 / 1e6 + 0.020 * 2.0 * 0.0000167))


def test_serverless_free_tier_is_subtracted():
    prices = ExamplePrices(serverless_free_requests=1e6, serverless_free_gb_seconds=400_000)
    flat = [1.0] * 730  # 2.628 M requests, 105,120 GB-s at 20 ms and 2 GB
    cost = serverless_cost(flat, 0.02, prices).monthly_cost
    assert cost == pytest.approx(1.628 * 0.20)  # the GB-seconds are all inside the free tier
    assert serverless_cost([0.1] * 730, 0.02, prices).monthly_cost == 0.0


def test_serverless_bills_whole_milliseconds():
    flat = [1.0] * 730
    assert serverless_cost(flat, 0.0201, PRICES).monthly_cost == pytest.approx(
        serverless_cost(flat, 0.021, PRICES).monthly_cost)


def test_on_premise_is_flat_until_another_server_is_needed():
    # One server: 32 workers / 20 ms = 1600 req/s, 960 req/s at 60 % utilisation.
    costs = [on_premise_cost([x] * 24, 0.02, PRICES, min_servers=1).monthly_cost for x in (1, 100, 500, 959.9)]
    assert costs == [PRICES.server_monthly_cost] * 4
    two = on_premise_cost([960.1] * 24, 0.02, PRICES, min_servers=1)
    assert two.units == 2 and two.monthly_cost == pytest.approx(2 * PRICES.server_monthly_cost)
    assert on_premise_cost([960.0] * 24, 0.02, PRICES, min_servers=1).units == 1  # exactly full: no float dust
    assert on_premise_cost([1.0] * 24, 0.02, PRICES, min_servers=3).units == 3


def test_on_premise_is_sized_for_the_peak_not_the_mean():
    quiet_with_spike = [10.0] * 23 + [3000.0]
    assert on_premise_cost(quiet_with_spike, 0.02, PRICES, min_servers=1).units == 4  # 3000 / 960 -> 4


def test_autoscaling_respects_min_and_max_and_reports_unmet_hours():
    # One instance: 2 workers / 20 ms = 100 req/s, 60 req/s at the target -> needs 0, 1, 5, 50 instances.
    profile = [0.0] * 6 + [30.0] * 6 + [300.0] * 6 + [3000.0] * 6
    r = autoscaled_cost(profile, 0.02, PRICES, min_instances=2, max_instances=10)
    scale = HOURS_PER_MONTH / 24
    assert r.machine_hours == pytest.approx(6 * (2 + 2 + 5 + 10) * scale)
    assert r.monthly_cost == pytest.approx(r.machine_hours * PRICES.instance_hour)
    assert r.units == 10
    assert r.unmet_hours == 6
    assert r.excess_requests == pytest.approx(6 * (3000 - 10 * 100) * 3600 * scale)
    assert "max_instances could not keep up" in r.notes


def test_exactly_full_machines_are_not_rounded_up_by_float_dust():
    # 1 worker / 70 ms * 0.7 is 10 req/s in exact arithmetic but 9.999... in floats.
    r = autoscaled_cost([20.0] * 24, 0.07, PRICES, instance_workers=1, target_utilisation=0.7)
    assert r.units == 2
    assert on_premise_cost([20.0] * 24, 0.07, PRICES, server_workers=1, target_utilisation=0.7).units == 2


def test_autoscaling_within_limits_has_no_unmet_hours():
    r = autoscaled_cost([0.0] * 12 + [59.0] * 12, 0.02, PRICES, min_instances=0, max_instances=3)
    assert r.unmet_hours == 0 and r.excess_requests == 0.0
    assert r.machine_hours == pytest.approx(12 * HOURS_PER_MONTH / 24)  # scale to zero at night


def test_monthly_costs_table():
    df = monthly_costs(traffic_profile(5.0), 0.02, PRICES)
    assert df["option"].tolist() == ["on_premise", "autoscaled", "serverless"]
    assert list(df.columns) == ["option", "monthly_cost", "units", "unit_label", "machine_hours", "unmet_hours",
                                "excess_requests", "notes"]
    assert df["monthly_cost"].tolist() == pytest.approx([2 * PRICES.server_monthly_cost, 73.0, 11.40552])
    assert df.attrs["currency"] == "USD"
    assert df["notes"].str.len().min() > 20


# --------------------------------------------------------------------------- cost curve and break-even


def test_break_even_interpolates_a_known_crossing():
    curve = pd.DataFrame({"mean_rps": [0.0, 4.0, 8.0], "on_premise": [100.0, 100.0, 100.0],
                          "autoscaled": [np.nan] * 3, "serverless": [0.0, 80.0, 160.0]})
    (b,) = break_even(curve)
    assert b == {"mean_rps": pytest.approx(5.0), "monthly_cost": pytest.approx(100.0),
                 "from": "serverless", "to": "on_premise"}


def test_break_even_points_lie_where_the_curves_cross():
    x = np.geomspace(1, 3000, 120)
    curve = cost_curve(x, 0.02, PRICES, max_instances=200)
    points = break_even(curve)
    assert [(b["from"], b["to"]) for b in points] == [("serverless", "autoscaled"), ("autoscaled", "on_premise")]
    for b in points:
        # on the interpolated curves: both costs equal the reported cost
        for option in (b["from"], b["to"]):
            assert np.interp(b["mean_rps"], x, curve[option]) == pytest.approx(b["monthly_cost"], rel=1e-9)
        # on the model itself: the two options cost about the same there
        costs = monthly_costs(traffic_profile(b["mean_rps"]), 0.02, PRICES, max_instances=200)
        costs = costs.set_index("option")["monthly_cost"]
        assert costs[b["from"]] == pytest.approx(costs[b["to"]], rel=0.05)
        # and the cheapest option really is different on either side
        below = monthly_costs(traffic_profile(b["mean_rps"] * 0.8), 0.02, PRICES, max_instances=200)
        above = monthly_costs(traffic_profile(b["mean_rps"] * 1.2), 0.02, PRICES, max_instances=200)
        assert below.loc[below["monthly_cost"].idxmin(), "option"] == b["from"]
        assert above.loc[above["monthly_cost"].idxmin(), "option"] == b["to"]


def test_cost_curve_marks_traffic_the_group_cannot_carry():
    curve = cost_curve([10, 100, 1000], 0.02, PRICES, max_instances=5)
    assert curve["autoscaled_unmet_hours"].tolist()[0] == 0
    assert curve["autoscaled_unmet_hours"].tolist()[2] > 0
    assert np.isnan(curve["autoscaled"].iloc[2])
    assert curve["cheapest"].iloc[2] != "autoscaled"
    assert (np.diff(curve["serverless"]) > 0).all()


# --------------------------------------------------------------------------- plots


def test_cost_plot_is_labelled_and_marks_break_even():
    curve = cost_curve(np.geomspace(1, 3000, 40), 0.02, PRICES, max_instances=200)
    points = break_even(curve)
    ax = plot_costs(curve, points)
    assert "cost" in ax.get_title().lower() and "EXAMPLE" in ax.get_title()
    assert ax.get_xlabel() == "mean traffic (requests/s)"
    assert ax.get_ylabel() == "cost (USD per month)"
    assert ax.get_xscale() == "log"
    (marker,) = [line for line in ax.get_lines() if line.get_label() == "break-even"]
    np.testing.assert_allclose(marker.get_xdata(), [b["mean_rps"] for b in points])
    texts = [t.get_text() for t in ax.texts]
    assert any("serverless → autoscaled" in t for t in texts)
    assert any("autoscaled → on-premise" in t for t in texts)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "break-even" in legend and "serverless functions" in legend


def test_cost_plot_draws_on_a_given_axes():
    _, given = plt.subplots()
    curve = cost_curve([1, 2, 3], 0.02, PRICES)
    assert plot_costs(curve, [], ax=given) is given
    assert given.get_xscale() == "linear"
    assert not [line for line in given.get_lines() if line.get_label() == "break-even"]


def test_mmc_plot_is_labelled():
    ax = plot_mmc(mmc_table(np.linspace(1, 95, 20), 0.02, [1, 2]))
    assert ax.get_title().startswith("M/M/c response time")
    assert ax.get_xlabel() == "arrival rate (requests/s)"
    assert ax.get_ylabel() == "response time (ms)"
    labels = [line.get_label() for line in ax.get_lines()]
    assert {"c=1: mean", "c=1: p95", "c=2: mean", "c=2: p95", "c=2: capacity"} <= set(labels)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("call, message", [
    (lambda: mmc(-1.0, 1.0, 1), "arrival_rate must be a finite number at least 0"),
    (lambda: mmc(1.0, 0.0, 1), "service_rate must be a finite number greater than 0"),
    (lambda: mmc(1.0, -2.0, 1), "1 / 0.02 for a 20 ms service time"),
    (lambda: mmc(1.0, 1.0, 0), "servers must be a whole number of at least 1"),
    (lambda: mmc(1.0, 1.0, 2.5), "servers must be a whole number"),
    (lambda: mmc("fast", 1.0, 1), "arrival_rate must be a number"),
    (lambda: mmc_table([1.0], 0.0, 1), "service_time_s must be a finite number greater than 0"),
    (lambda: traffic_profile(-5.0), "mean_rps must be a finite number at least 0"),
    (lambda: traffic_profile(5.0, days=0), "days must be a whole number of at least 1"),
    (lambda: monthly_costs([1.0, -1.0], 0.02, PRICES), "non-negative requests per second"),
    (lambda: monthly_costs([1.0, np.nan], 0.02, PRICES), "replace missing hours"),
    (lambda: monthly_costs([[1.0]], 0.02, PRICES), "1-D array of hourly requests per second"),
    (lambda: monthly_costs([1.0], 0.0, PRICES), "latency_s must be a finite number greater than 0"),
    (lambda: monthly_costs([1.0], 0.02, PRICES, target_utilisation=1.5), "at most 1"),
    (lambda: monthly_costs([1.0], 0.02, PRICES, min_instances=5, max_instances=2), "must not exceed max_instances"),
    (lambda: monthly_costs([1.0], 0.02, {"instance_hour": 0.1}), "prices must be an ExamplePrices"),
    (lambda: ExamplePrices(instance_hour=-0.1), "ExamplePrices.instance_hour must be a finite number at least 0"),
    (lambda: ExamplePrices(server_amortisation_months=0), "server_amortisation_months must be a finite number greater"),
    (lambda: cost_curve([1, 2], 0.02, PRICES, max_instance=5), "Unknown option(s) max_instance"),
    (lambda: cost_curve([5, 1], 0.02, PRICES), "increasing"),
    (lambda: break_even(pd.DataFrame({"x": [1]})), "needs the table cost_curve returns"),
])
def test_bad_inputs_say_what_to_pass(call, message):
    with pytest.raises(ParameterError) as info:
        call()
    assert message in str(info.value)
