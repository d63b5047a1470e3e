"""Drift statistics against scipy and hand-computed values, dataset drift, fingerprints,
window-calibrated thresholds, and clear errors for bad inputs."""

from __future__ import annotations

import json
import math
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlkit import fingerprint as fpm
from mlkit.errors import DataError, ParameterError
from mlkit.monitoring import drift

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FEW = settings(max_examples=40, deadline=None)

# samples with ties (rounded) and without, of 1 to 60 values
numbers = st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False), min_size=1, max_size=60)
rounded = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=60)
samples = st.one_of(numbers, rounded)
levels = st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=80)


def _normal_frame(n: int, seed: int, *, shift: float = 0.0, mix=(0.4, 0.3, 0.2, 0.1)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.normal(100 + 15 * shift, 15, n),
            "age": rng.integers(18, 80, n),
            "channel": rng.choice(["web", "shop", "app", "phone"], n, p=list(mix)),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _normal_frame(4000, seed=0)


# --------------------------------------------------------------------------- public surface


def test_public_names_exist():
    assert set(drift.__all__) >= {"psi", "ks", "wasserstein", "jensen_shannon", "chi_square", "adjust_p_values",
                                  "drift_report", "calibrate_thresholds", "smallest_detectable_shift",
                                  "threshold_study", "plot_threshold_study"}  # fmt: skip
    assert all(hasattr(drift, name) for name in drift.__all__)


# --------------------------------------------------------------------------- statistics = scipy


@FEW
@given(samples, samples)
def test_ks_equals_scipy(a, b):
    statistic, p = drift.ks(a, b)
    with warnings.catch_warnings():  # scipy warns about its NaN p-value for one value on each side
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = stats.ks_2samp(a, b, method="asymp")
    assert statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, abs=1e-12, nan_ok=True)  # NaN for one value on each side


@FEW
@given(samples, samples)
def test_wasserstein_equals_scipy_over_reference_std(a, b):
    std = np.std(a, ddof=1) if len(a) > 1 else float("nan")
    value = drift.wasserstein(a, b)
    raw = stats.wasserstein_distance(a, b)
    if np.isfinite(std) and std > 0:
        assert value == pytest.approx(raw / std, rel=1e-9, abs=1e-9)
    else:  # a constant (or single-value) reference: 0 when nothing moved, else infinitely far
        assert value == (0.0 if raw == 0 else math.inf)


@FEW
@given(samples, st.lists(samples, min_size=1, max_size=4))
def test_batched_ks_and_wasserstein_equal_scipy(reference, windows):
    """The bootstrap compares thousands of windows at once; each must equal scipy's two-sample result."""
    width = min(len(w) for w in windows)
    rows = np.sort(np.array([w[:width] for w in windows]), axis=1)
    ref = np.sort(np.asarray(reference))
    for row, d, w in zip(rows, drift._ks_rows(ref, rows), drift._wasserstein_rows(ref, rows)):
        with warnings.catch_warnings():  # scipy's exact p-value (not compared) sometimes falls back
            warnings.simplefilter("ignore", RuntimeWarning)
            expected = stats.ks_2samp(reference, row).statistic
        assert d == pytest.approx(expected, abs=1e-12)
        assert w == pytest.approx(stats.wasserstein_distance(reference, row), rel=1e-9, abs=1e-9)


def _table(a, b) -> np.ndarray:
    names = sorted(set(a) | set(b))
    return np.array([[a.count(n) for n in names], [b.count(n) for n in names]])


@FEW
@given(levels, levels)
def test_chi_square_and_jensen_shannon_equal_scipy(a, b):
    table = _table(a, b)
    statistic, p = drift.chi_square(a, b)
    if table.shape[1] > 1:
        expected = stats.chi2_contingency(table, correction=False)
        assert statistic == pytest.approx(expected.statistic, rel=1e-9, abs=1e-12)
        assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)
    else:
        assert (statistic, p) == (0.0, 1.0)
    assert drift.jensen_shannon(a, b) == pytest.approx(jensenshannon(table[0], table[1]), abs=1e-12)


def test_binned_numeric_jensen_shannon_uses_reference_deciles():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=500), rng.normal(0.5, 1, 300)
    edges = np.unique(np.sort(a)[[math.ceil(500 * i / 10) - 1 for i in range(1, 10)]])  # the deciles, as observed values
    counts = [np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1) for x in (a, b)]
    assert drift.jensen_shannon(a, b) == pytest.approx(jensenshannon(*counts), abs=1e-12)
    assert drift.psi(a, b) == pytest.approx(fpm.psi(*counts), abs=1e-12)


# --------------------------------------------------------------------------- PSI by hand


def test_psi_hand_computed_cases():
    assert drift.psi(["a"] * 50 + ["b"] * 50, ["a"] * 80 + ["b"] * 20) == pytest.approx(
        0.3 * math.log(0.8 / 0.5) + 0.3 * math.log(0.5 / 0.2)
    )
    # quartiles of 0..99 (cuts 24, 49, 74); every current value in the top bin: three empty bins at the floor
    expected = 3 * (1e-4 - 0.25) * math.log(1e-4 / 0.25) + (1 - 0.25) * math.log(1 / 0.25)
    assert drift.psi(np.arange(100), np.full(20, 500.0), bins=4) == pytest.approx(expected, rel=1e-12)
    # a level the reference never had: its reference share is the floor, 1e-4
    expected = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert drift.psi(["a"] * 10, ["a"] * 5 + ["new"] * 5) == pytest.approx(expected)
    assert drift.psi([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.0


# --------------------------------------------------------------------------- multiple testing


def test_bonferroni_and_benjamini_hochberg_known_answers():
    p = [0.01, 0.04, 0.03, 0.005]
    assert drift.adjust_p_values(p, "bonferroni").tolist() == pytest.approx([0.04, 0.16, 0.12, 0.02])
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4/1, x4/2, x4/3, x4/4 = 0.02, 0.02, 0.04, 0.04
    assert drift.adjust_p_values(p, "bh").tolist() == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert drift.adjust_p_values([0.5, 0.9], "bonferroni").tolist() == [1.0, 1.0]
    assert drift.adjust_p_values(p, None).tolist() == p


@FEW
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_benjamini_hochberg_equals_scipy(p):
    assert drift.adjust_p_values(p, "bh") == pytest.approx(stats.false_discovery_control(p, method="bh"), abs=1e-12)


def test_untested_columns_do_not_count_in_the_correction():
    out = drift.adjust_p_values([0.01, np.nan, 0.02], "bonferroni")
    assert out[0] == pytest.approx(0.02) and np.isnan(out[1]) and out[2] == pytest.approx(0.04)


# --------------------------------------------------------------------------- drift reports


@pytest.mark.parametrize("numeric_statistic", drift.NUMERIC_STATISTICS)
def test_identical_data_shows_no_drift(reference, numeric_statistic):
    categorical = "chi2" if numeric_statistic == "ks" else "psi"
    report = drift.drift_report(reference, reference, numeric_statistic=numeric_statistic,
                                categorical_statistic=categorical)  # fmt: skip
    table = report.table
    assert not table["drifted"].any() and not report.dataset_drift
    assert table["value"].tolist() == pytest.approx([0.0] * 3, abs=1e-12)
    assert table["p_value"].fillna(1.0).tolist() == pytest.approx([1.0] * 3)


@pytest.mark.parametrize(("numeric_statistic", "categorical_statistic"),
                         [("psi", "psi"), ("ks", "chi2"), ("wasserstein", "jensenshannon")])  # fmt: skip
def test_only_the_shifted_column_drifts(reference, numeric_statistic, categorical_statistic):
    current = _normal_frame(3000, seed=1, shift=0.8)  # amount moves by 0.8 std; age and channel do not
    report = drift.drift_report(reference, current, numeric_statistic=numeric_statistic,
                                categorical_statistic=categorical_statistic, correction="bonferroni")  # fmt: skip
    assert report.drifted_columns == ["amount"]
    assert report.drift_share == pytest.approx(1 / 3) and not report.dataset_drift
    assert drift.drift_report(reference, current, drift_share=0.3).dataset_drift


def test_report_rows_carry_statistic_threshold_and_missing_shares(reference):
    current = _normal_frame(1000, seed=2)
    current.loc[:99, "amount"] = np.nan
    current.loc[:49, "channel"] = "fax"  # a level the reference never had
    row = drift.drift_report(reference, current, numeric_statistic="ks").table.set_index("column")
    assert row.loc["amount", "statistic"] == "ks" and row.loc["amount", "threshold_on"] == "p_value"
    assert row.loc["amount", "threshold"] == 0.05 and row.loc["channel", "threshold"] == 0.2
    assert row.loc["amount", "current_missing_share"] == pytest.approx(0.1)
    assert row.loc["amount", "missing_share_change"] == pytest.approx(0.1)
    assert row.loc["amount", "current_count"] == 900
    assert row.loc["channel", "unseen_share"] == pytest.approx(0.05)
    assert np.isnan(row.loc["age", "unseen_share"])


def test_prediction_and_label_drift_are_reported_apart(reference):
    rng = np.random.default_rng(3)
    ref = reference.assign(score=rng.uniform(size=len(reference)), label=rng.integers(0, 2, len(reference)))
    current = _normal_frame(2000, seed=4).assign(score=rng.uniform(0.3, 1.0, 2000), label=rng.integers(0, 2, 2000))
    report = drift.drift_report(ref, current, prediction="score", target="label", categorical=["label"])
    assert report.table["role"].tolist() == ["feature"] * 3 + ["prediction", "label"]
    assert report.prediction_drift is True and report.label_drift is False
    assert report.drift_share == 0.0 and report.drifted_columns == []
    assert drift.drift_report(reference, current).prediction_drift is None


def test_all_missing_constant_and_unknown_values_never_crash():
    reference = pd.DataFrame({"x": np.arange(50.0), "const": 7.0, "empty": np.nan, "level": ["a", "b"] * 25})
    current = pd.DataFrame({"x": np.full(20, np.nan), "const": 7.0, "empty": np.nan, "level": ["zzz"] * 20})
    for statistic in drift.NUMERIC_STATISTICS:
        table = drift.drift_report(reference, current, numeric_statistic=statistic).table.set_index("column")
        assert np.isnan(table.loc["x", "value"]) and not table.loc["x", "drifted"]
        assert "no current values" in table.loc["x", "note"]
        assert table.loc["x", "missing_share_change"] == 1.0
        assert table.loc["const", "value"] == pytest.approx(0.0) and not table.loc["const", "drifted"]
        assert "no reference values" in table.loc["empty", "note"]
    moved = drift.drift_report(reference, current.assign(const=8.0), numeric_statistic="wasserstein").table
    assert moved.set_index("column").loc["const", "value"] == math.inf and moved["drifted"].iloc[1]
    assert drift.drift_report(reference, current).table.set_index("column").loc["level", "unseen_share"] == 1.0


def test_pandas_dtypes_and_threads_give_the_same_report(reference):
    current = _normal_frame(800, seed=5, shift=0.2)
    typed = current.astype({"channel": "category", "age": "Int64"})
    base = drift.drift_report(reference, current, threads=1).table
    pd.testing.assert_frame_equal(drift.drift_report(reference, typed, threads=2).table, base)


def test_to_dict_is_plain_json(reference):
    current = pd.DataFrame({"amount": np.nan, "age": 30, "channel": "web"}, index=range(20))
    data = drift.drift_report(reference, current).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["columns"][0]["value"] is None
    assert data["reference_source"] == "table" and data["current_rows"] == 20


# --------------------------------------------------------------------------- fingerprints


@pytest.fixture(scope="module")
def fingerprinted(reference):
    return fpm.fingerprint(reference, None, numeric=["amount", "age"], categorical=["channel"], task="regression")


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_fingerprint_drift_agrees_with_table_drift(reference, fingerprinted, shift):
    """PSI, Jensen-Shannon and chi-square use the same counts: equal to 1e-12. KS from the bins reads
    the CDFs at the edges only (never above the full statistic, within 0.02 here); Wasserstein from
    the bins and the mean is within 0.01 + 10 % of the full statistic here."""
    mix = (0.4 - shift / 3, 0.3, 0.2, 0.1 + shift / 3)
    current = _normal_frame(2000, seed=6, shift=shift, mix=mix)
    for numeric, categorical in [("psi", "psi"), ("jensenshannon", "chi2"), ("ks", "jensenshannon"),
                                 ("wasserstein", "psi")]:  # fmt: skip
        options = {"numeric_statistic": numeric, "categorical_statistic": categorical}
        table = drift.drift_report(reference, current, **options).table
        binned = drift.drift_report(fingerprinted, current, **options).table
        assert binned["column"].tolist() == table["column"].tolist()
        assert (binned["drifted"] == table["drifted"]).all()
        for a, b, kind in zip(table["value"], binned["value"], table["kind"]):
            if kind == "categorical" or numeric in ("psi", "jensenshannon"):
                assert b == pytest.approx(a, abs=1e-12)
            elif numeric == "ks":
                assert b <= a + 1e-12 and a - b <= 0.02
            else:
                assert abs(a - b) <= 0.01 + 0.1 * a
    assert drift.drift_report(fingerprinted, current).reference_source == "fingerprint"


def test_fingerprint_scores_give_prediction_drift(reference):
    rng = np.random.default_rng(7)
    fp = fpm.fingerprint(reference, rng.uniform(size=len(reference)), numeric=["amount"], categorical=[],
                         task="classification")  # fmt: skip
    current = _normal_frame(500, seed=8).assign(p=rng.uniform(0.5, 1.0, 500))
    report = drift.drift_report(fp, current, prediction="p")
    assert report.table["column"].tolist() == ["amount", "p"] and report.prediction_drift


# --------------------------------------------------------------------------- calibrated thresholds


def test_calibrated_thresholds_keep_false_alarms_near_target_on_fresh_samples():
    """Calibrate at 5 % on one reference; fresh windows from the same source are flagged ~5 % of the time.

    150 windows per column: the flagged count is Binomial(150, 0.05), mean 7.5, sd 2.7."""
    reference = _normal_frame(20000, seed=10)
    calibration = drift.calibrate_thresholds(reference, 100, numeric_statistic="ks", categorical_statistic="chi2",
                                             false_alarm_rate=0.05, n_boot=400, seed=0)  # fmt: skip
    fresh = _normal_frame(150 * 100, seed=11)
    flagged = np.zeros(3, dtype=int)
    for start in range(0, len(fresh), 100):
        report = drift.drift_report(reference, fresh.iloc[start : start + 100], thresholds=calibration, threads=1)
        flagged += report.table["drifted"].to_numpy()
    assert all(1 <= f <= 16 for f in flagged), flagged
    assert report.table["threshold_on"].eq("value").all()


def test_fixed_psi_raises_false_alarms_on_small_windows_and_calibration_does_not():
    reference = _normal_frame(20000, seed=12)
    study = drift.threshold_study(reference, "amount", window_sizes=[40, 4000], shifts=[0.0, 0.05, 0.6],
                                  statistics=["psi", "ks"], false_alarm_rate=0.05, min_shift=0.1,
                                  n_boot=200, seed=0)  # fmt: skip
    rate = study.set_index(["rule", "window", "shift"])["flag_rate"]
    assert rate["PSI > 0.2", 40, 0.0] > 0.3  # fixed PSI on 40 rows: false alarms a third of the time or more
    assert rate["KS p < 0.05", 4000, 0.05] > 0.4  # fixed KS on 4000 rows: a 0.05-std shift "drifts"
    for rule in ("PSI calibrated", "KS calibrated"):
        assert rate[rule, 40, 0.0] <= 0.12 and rate[rule, 4000, 0.0] <= 0.12
        assert rate[rule, 4000, 0.05] <= 0.15  # below min_shift: rarely an alert
        assert rate[rule, 4000, 0.6] == 1.0
    fig = drift.plot_threshold_study(study)
    assert [ax.get_xlabel() for ax in fig.axes] == ["window size (rows)"] * 3
    assert fig.axes[0].get_ylabel() and fig.axes[-1].get_legend() is not None and fig._suptitle is not None
    plt.close(fig)


def test_smallest_detectable_shift_shrinks_as_the_window_grows(reference):
    table = drift.smallest_detectable_shift(reference, [30, 120, 480], columns=["amount", "channel"],
                                            numeric_statistic="ks", categorical_statistic="chi2",
                                            false_alarm_rate=0.05, n_boot=150)  # fmt: skip
    for _, rows in table.groupby("column"):
        shifts = rows.sort_values("window")["smallest_shift"].to_numpy()
        assert np.all(np.diff(shifts) < 0), shifts
        assert 1.4 < shifts[0] / shifts[1] < 3.5  # about 1/sqrt(window): 4x the rows, half the shift
    ax = drift.plot_smallest_shift(table)
    assert ax.get_title() and ax.get_ylabel() and ax.get_legend() is not None
    plt.close(ax.figure)


def test_calibration_from_a_fingerprint_matches_the_table(reference, fingerprinted):
    options = {"false_alarm_rate": 0.05, "n_boot": 300, "columns": ["age", "channel"]}
    from_table = drift.calibrate_thresholds(reference, 200, **options).thresholds
    from_fp = drift.calibrate_thresholds(fingerprinted, 200, **options).thresholds
    for column in ("age", "channel"):
        assert from_fp[column] == pytest.approx(from_table[column], rel=0.25)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda r: drift.drift_report(r, r.drop(columns="amount")), DataError, "has no column 'amount'"),
        (lambda r: drift.drift_report(r, r.rename(columns={"amount": "amonut"})), DataError, "did you mean 'amonut'"),
        (lambda r: drift.drift_report(r, r.assign(amount="x")), DataError, "mismatched types"),
        (lambda r: drift.drift_report(r, r.assign(channel=1)), DataError, "mismatched types"),
        (lambda r: drift.drift_report(r, r, numeric_statistic="kss"), ParameterError, "did you mean 'ks'"),
        (lambda r: drift.drift_report(r, r, categorical_statistic="ks"), ParameterError, "categorical columns use"),
        (lambda r: drift.drift_report(r, r, correction="holm"), ParameterError, "'bonferroni' or 'bh'"),
        (lambda r: drift.drift_report(r, r.iloc[:0]), DataError, "no rows"),
        (lambda r: drift.drift_report(r, r.iloc[:3]), DataError, "fewer than min_rows=10"),
        (lambda r: drift.drift_report(r, r, thresholds=-1), ParameterError, "positive number"),
        (lambda r: drift.drift_report(r, r, numeric_statistic="ks", thresholds=5.0), ParameterError, "between 0 and 1"),
        (lambda r: drift.drift_report(r, r, drift_share=0), ParameterError, "drift_share"),
        (lambda r: drift.drift_report(r.assign(t=pd.Timestamp(0)), r), DataError, "dates or times"),
        (lambda r: drift.drift_report(r, r, columns="amount"), ParameterError, "list of column names"),
        (lambda r: drift.drift_report(r.to_numpy(), r), ParameterError, "must be a pandas DataFrame"),
        (lambda r: drift.calibrate_thresholds(r, 50, n_boot=100), ParameterError, "at least 500"),
        (lambda r: drift.calibrate_thresholds(r, 1), ParameterError, "window must be"),
        (lambda r: drift.calibrate_thresholds(r, 50, false_alarm_rate=5), ParameterError, "between 0 and 1"),
        (lambda r: drift.smallest_detectable_shift(r, [10], shifts=[0]), ParameterError, "positive"),
        (lambda r: drift.threshold_study(r, "nope"), DataError, "has no column 'nope'"),
        (lambda r: drift.ks([], [1.0]), DataError, "at least one non-missing value"),
        (lambda r: drift.psi([1, 2], [1, 2], kind="ordinal"), ParameterError, "'numeric' or 'categorical'"),
        (lambda r: drift.adjust_p_values([0.5], "fdr"), ParameterError, "Unknown correction"),
    ],
)
def test_bad_inputs_raise_clear_errors(reference, call, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        call(reference)


def test_calibration_and_fingerprint_misuse_raise_clear_errors(reference, fingerprinted):
    calibration = drift.calibrate_thresholds(reference, 100, columns=["amount"], false_alarm_rate=0.05, n_boot=100)
    with pytest.raises(ParameterError, match="calibrated for windows of 100 rows"):
        drift.drift_report(reference, reference, columns=["amount"], thresholds=calibration)
    with pytest.raises(ParameterError, match="calibrated for 'psi'"):
        drift.drift_report(reference, reference.iloc[:100], columns=["amount"], thresholds=calibration,
                           numeric_statistic="ks")  # fmt: skip
    with pytest.raises(ParameterError, match="no calibrated threshold|no threshold for column 'age'"):
        drift.drift_report(reference, reference.iloc[:100], thresholds=calibration)
    with pytest.raises(ParameterError, match="keeps no labels"):
        drift.drift_report(fingerprinted, reference, target="amount")
    with pytest.raises(ParameterError, match="needs the reference rows"):
        drift.calibrate_thresholds(fingerprinted, 100, min_shift=0.1)
    with pytest.raises(DataError, match="has no column 'amont'"):
        drift.drift_report(fingerprinted, reference, columns=["amont"])


def test_plot_report_marks_the_threshold(reference):
    report = drift.drift_report(reference, _normal_frame(500, seed=9, shift=1.0), numeric_statistic="ks")
    ax = drift.plot_report(report)
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel() and ax.get_legend() is not None
    assert len(ax.patches) == 3
    plt.close(ax.figure)


def test_quantile_cuts_are_even_for_every_size_and_match_the_fingerprint():
    """Integer quantile indices: n distinct values in 10 bins put n // 10 or n // 10 + 1 in each."""
    for n in (10, 15, 30, 70, 1000, 2999):
        values = np.arange(n, dtype=float)
        cuts = drift._edges(values, 10)
        counts = np.diff(np.concatenate([[0], np.searchsorted(values, cuts, side="right"), [n]]))
        assert counts.max() - counts.min() <= 1, (n, counts)
        assert cuts.tolist() == fpm.fingerprint(pd.DataFrame({"x": values}), values, numeric=["x"], categorical=[],
                                                task="regression")["numeric"]["x"]["edges"]
