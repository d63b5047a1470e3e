"""Retraining: policies, the drifting-stream simulator, paired tests, champion/challenger and the registry.

Simulations run at smoke sizes (a linear model where the family does not matter), and the
registry tests use a temporary SQLite store, never the repository's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlkit import datasets, registry, retraining, training, usecases
from mlkit.errors import DataError, MlkitError, ParameterError
from mlkit.retraining import NoRetraining, Scheduled, Triggered

DIAGNOSIS = usecases.get("healthcare-diagnosis")


def quick(policies, **kwargs):
    """A smoke-size simulation of the diagnosis stream with a linear model (a fraction of a second)."""
    return retraining.simulate(DIAGNOSIS, policies, smoke=True, **{"family": "linear", **kwargs})


# --------------------------------------------------------------------------- the simulator


def test_the_same_seed_gives_identical_tables_and_another_seed_different_ones():
    policies = [NoRetraining(), Scheduled(every=3), Triggered()]
    first, again = quick(policies, seed=0), quick(policies, seed=0)
    pd.testing.assert_frame_equal(first.per_window, again.per_window)
    pd.testing.assert_frame_equal(first.summary, again.summary)
    other = quick(policies, seed=1)
    assert not other.per_window["metric"].equals(first.per_window["metric"])


@pytest.mark.parametrize("use_case", usecases.ids(supervised_only=True))
def test_after_a_concept_drift_the_triggered_policy_beats_no_retraining(use_case):
    # Readmission's concept drift is subtle (about 0.03 of ROC AUC): on smoke-size windows of
    # 140 rows the AUC of a window varies more than that, so it runs at its default size.
    smoke = use_case != "healthcare-readmission"
    result = retraining.simulate(use_case, [NoRetraining(), Triggered()], smoke=smoke, seed=0, drift="concept")
    after = result.summary.set_index("policy")["mean_metric_after_drift"]
    none, triggered = after["none"], after["triggered (either)"]
    assert (triggered > none) if result.greater_is_better else (triggered < none), result.summary
    assert result.summary.set_index("policy").loc["triggered (either)", "retrains"] >= 1


def test_the_summary_says_which_direction_is_better():
    result = retraining.simulate("transport-traffic", [NoRetraining()], smoke=True, family="linear")
    assert result.summary[["metric", "better"]].iloc[0].tolist() == ["mae", "lower"]
    assert result.greater_is_better is False


def test_a_schedule_retrains_exactly_every_n_windows():
    result = quick([Scheduled(every=3), Scheduled(every=4, window="expanding")])
    windows = result.settings["windows"]
    for policy, every in (("scheduled every 3", 3), ("scheduled every 4, expanding", 4)):
        mine = result.per_window[result.per_window["policy"] == policy]
        assert mine.loc[mine["retrained"], "window"].tolist() == list(range(every, windows, every))
        assert set(mine.loc[mine["retrained"], "trigger"]) == {"schedule"}
        row = result.summary.set_index("policy").loc[policy]
        assert row["retrains"] == (windows - 1) // every
        assert row["rows_trained"] == mine["train_rows"].sum()
    assert quick([NoRetraining()]).summary["retrains"].tolist() == [0]


@pytest.mark.parametrize("cooldown", [0, 2, 3])
def test_a_cooldown_stops_an_alert_every_window_from_retraining_every_window(cooldown):
    # recall is always below 2, so every labelled window raises the performance alert
    storm = Triggered(on="performance", threshold=2.0, cooldown=cooldown)
    result = quick([storm], label_delay=0)
    windows = result.settings["windows"]
    retrained = result.per_window.loc[result.per_window["retrained"], "window"].tolist()
    assert retrained == list(range(cooldown + 1, windows, cooldown + 1))
    assert len(retrained) <= windows / (cooldown + 1)


@pytest.mark.parametrize("label_delay", [0, 1, 3])
def test_no_policy_ever_trains_on_labels_that_have_not_arrived(label_delay):
    policies = [Scheduled(every=2), Scheduled(every=3, window="expanding"),
                Triggered(on="performance", threshold=2.0, cooldown=0), Triggered(on="either", window_size=60)]
    result = quick(policies, label_delay=label_delay)
    size = result.settings["window_rows"]
    retrains = result.per_window[result.per_window["retrained"]]
    assert len(retrains) > 5
    # before window t, the labels of the training period and of windows t - 1 - label_delay and
    # earlier are known, nothing later
    known_until = np.maximum(retrains["first_row"] - label_delay * size, result.settings["history_rows"]) - 1
    assert (retrains["last_label_row"] <= known_until).all()
    assert (retrains["last_label_row"] == known_until).all()  # ...and every label that is known is used
    expanding = retrains[retrains["policy"] == "scheduled every 3, expanding"]
    assert (expanding["train_rows"] == expanding["last_label_row"] + 1).all()
    sliding = retrains[retrains["policy"] == "triggered (either), last 60 rows"]
    assert (sliding["train_rows"] == 60).all()


def test_a_prepared_stream_from_a_users_table_can_be_replayed():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"x": rng.normal(size=1200), "z": rng.normal(size=1200)})
    table["y"] = (table["z"] + 0.3 * rng.normal(size=1200) > 0).astype(int)
    uc = usecases.custom(name="mine.csv", target="y", task="classification")
    # the concept drift flips the label where x is above its median: y becomes (z > 0) xor (x > 0)
    stream = datasets.stream_frame(table, uc, seed=0, drift="concept", drift_start=0.5)
    result = retraining.simulate(uc, [NoRetraining(), Scheduled(every=2)], stream=stream, family="boosting")
    after = result.summary.set_index("policy")["mean_metric_after_drift"]
    assert result.metric == "roc_auc" and after["scheduled every 2"] > after["none"]


def test_the_plot_shows_every_policy_its_retrains_and_the_drift():
    import matplotlib.pyplot as plt

    result = quick([NoRetraining(), Scheduled(every=3)])
    ax = result.plot()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["none", "scheduled every 3", "scheduled every 3: retrained", "drift starts"]
    assert ax.get_title() == "healthcare-diagnosis: recall per window under each retraining policy"
    assert ax.get_ylabel() == "recall (higher is better)" and ax.get_xlabel().startswith("window (")
    plt.close(ax.figure)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Scheduled(every=0), "every must be a whole number of at least 1"),
        (lambda: Scheduled(window="rolling"), "window must be 'sliding'"),
        (lambda: Scheduled(window="expanding", window_size=500), "expanding window .* takes no window_size"),
        (lambda: Triggered(on="alerts"), "on must be 'drift', 'performance' or 'either'"),
        (lambda: Triggered(cooldown=-1), "cooldown must be a whole number of at least 0"),
        (lambda: Triggered(tolerance=1.5), "tolerance must be a number from 0 to 1"),
        (lambda: Triggered(threshold=float("nan")), "threshold must be a finite number"),
        (lambda: quick(["none"]), "policies must be NoRetraining"),
        (lambda: quick([Scheduled(), Scheduled()]), "Policy names must be distinct"),
        (lambda: quick([NoRetraining()], label_delay=-1), "label_delay must be a whole number of at least 0"),
        (lambda: quick([NoRetraining()], drift_start=0.2), "inside the training period"),
        (lambda: quick([NoRetraining()], window_rows=300), "3 windows"),
        (lambda: quick([NoRetraining()], family="forest"), "Unknown model family 'forest'"),
        (lambda: retraining.simulate("marketing-segments"), "supervised"),
        (lambda: retraining.simulate(DIAGNOSIS, stream=datasets.load(DIAGNOSIS), family="linear"), "'drifted'"),
    ],
)
def test_bad_arguments_say_how_to_fix_them(make, message):
    with pytest.raises(MlkitError, match=message):
        make()


# --------------------------------------------------------------------------- paired tests


def outcomes(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and two models' predictions with this table of right and wrong answers."""
    right_a = np.repeat([True, True, False, False], [both, only_a, only_b, neither])
    right_b = np.repeat([True, False, True, False], [both, only_a, only_b, neither])
    y = np.ones(len(right_a), dtype=int)
    return y, np.where(right_a, 1, 0), np.where(right_b, 1, 0)


def test_mcnemar_of_identical_models_finds_no_difference():
    y, a, _ = outcomes(40, 5, 0, 5)
    result = retraining.mcnemar(y, a, a)
    assert (result.b, result.c, result.p_value, result.method) == (0, 0, 1.0, "exact")


def test_mcnemar_with_few_disagreements_is_the_exact_binomial_test():
    y, a, b = outcomes(80, 1, 9, 10)
    result = retraining.mcnemar(y, a, b)
    assert (result.b, result.c, result.method, result.rows) == (1, 9, "exact", 100)
    assert result.p_value == pytest.approx(stats.binomtest(1, 10, 0.5).pvalue)
    assert result.p_value == pytest.approx(22 / 1024)  # 2 * (1 + 10) / 2**10


def test_mcnemar_with_many_disagreements_is_chi_square_with_continuity_correction():
    y, a, b = outcomes(101, 121, 59, 33)  # the textbook table: b = 121, c = 59
    result = retraining.mcnemar(y, a, b)
    assert result.method == "chi-square"
    assert result.statistic == pytest.approx(61**2 / 180)
    assert result.p_value == pytest.approx(stats.chi2.sf(61**2 / 180, df=1))
    assert result.p_value < 1e-4


def test_mcnemar_refuses_misaligned_predictions():
    with pytest.raises(DataError, match="pred_b has 2 values for 3 rows"):
        retraining.mcnemar([1, 0, 1], [1, 0, 1], [1, 0])


def test_paired_bootstrap_of_identical_models_finds_no_difference():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = rng.uniform(size=200)
    result = retraining.paired_bootstrap(y, scores, scores, metric="roc_auc", n_resamples=200)
    assert (result.difference, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_paired_bootstrap_resamples_the_same_rows_for_both_models():
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    a = y + rng.normal(size=300)
    b = y + (a - y) + np.sign(a - y)  # every error one unit larger: MAE exactly 1 worse on any resample
    result = retraining.paired_bootstrap(y, a, b, metric="mae", n_resamples=300)
    assert result.difference == pytest.approx(1.0)
    assert result.low == pytest.approx(1.0) and result.high == pytest.approx(1.0)
    assert result.p_value == 0.0


def test_paired_bootstrap_finds_a_clearly_better_model_and_is_deterministic():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 300)
    weak, strong = y + rng.normal(0, 2.0, 300), y + rng.normal(0, 0.4, 300)
    result = retraining.paired_bootstrap(y, weak, strong, metric="roc_auc", n_resamples=500, seed=3)
    assert result.difference > 0.2 and result.low > 0 and result.p_value < 0.01
    assert result == retraining.paired_bootstrap(y, weak, strong, metric="roc_auc", n_resamples=500, seed=3)
    costs = retraining.paired_bootstrap(y, np.full(300, 2.0), np.full(300, 1.0), metric=lambda t, c: c.sum(),
                                        n_resamples=50)
    assert (costs.difference, costs.p_value) == (-300.0, 0.0)


def test_paired_bootstrap_refuses_an_unknown_metric():
    with pytest.raises(ParameterError, match="Unknown metric 'auc'"):
        retraining.paired_bootstrap([0, 1], [0.1, 0.9], [0.2, 0.8], metric="auc")


# --------------------------------------------------------------------------- champion / challenger


@pytest.fixture(scope="module")
def drifted_models():
    """A champion fitted before a concept drift, a challenger fitted after it, and recent labelled rows."""
    stream = datasets.stream(DIAGNOSIS, drift="concept", drift_start=0.5)
    before, after, recent = stream.iloc[:250], stream.iloc[290:440], stream.iloc[440:]
    old = training.build_pipeline(DIAGNOSIS, before, family="linear").fit(*training.xy(before, DIAGNOSIS))
    new = training.build_pipeline(DIAGNOSIS, after, family="linear").fit(*training.xy(after, DIAGNOSIS))
    return old, new, recent, before, after


def test_a_clearly_better_challenger_is_promoted(drifted_models):
    old, new, recent, *_ = drifted_models
    decision = retraining.compare(old, new, recent, recent["malignant"], use_case=DIAGNOSIS, n_resamples=300)
    assert decision.promote and decision.gate_verdict == "GO"
    assert decision.test.startswith("mcnemar") and decision.counts["c"] > decision.counts["b"]
    assert decision.improvement > decision.required and decision.p_value < 0.05
    assert decision.reason.startswith("promote: recall")


def test_a_worse_or_equal_challenger_is_refused(drifted_models):
    old, new, recent, *_ = drifted_models
    worse = retraining.compare(new, old, recent, recent["malignant"], use_case=DIAGNOSIS, n_resamples=300)
    assert not worse.promote and "not better" in worse.reason
    same = retraining.compare(new, new, recent, recent["malignant"], use_case=DIAGNOSIS, n_resamples=300)
    assert not same.promote and same.p_value == 1.0 and same.difference == 0.0


def test_a_significant_gain_still_needs_the_deployment_gate(drifted_models):
    old, new, recent, *_ = drifted_models
    strict = dataclasses.replace(DIAGNOSIS, gate={"primary_min": 0.999})
    decision = retraining.compare(old, new, recent, recent["malignant"], use_case=strict, n_resamples=300)
    assert decision.p_value < 0.05 and decision.gate_verdict == "NO-GO" and not decision.promote
    assert "fails the deployment gate" in decision.reason


def test_a_bootstrap_metric_and_the_cost_model_can_decide(drifted_models):
    old, new, recent, *_ = drifted_models
    auc = retraining.compare(old, new, recent, recent["malignant"], use_case=DIAGNOSIS, metric="roc_auc",
                             n_resamples=300)
    assert auc.test == "paired bootstrap" and auc.low <= auc.difference <= auc.high
    cost = retraining.compare(old, new, recent, recent["malignant"], use_case=DIAGNOSIS, metric="cost",
                              n_resamples=300)
    assert cost.greater_is_better is False and cost.challenger_value < cost.champion_value
    assert cost.promote and cost.improvement == pytest.approx(cost.champion_value - cost.challenger_value)


def test_compare_refuses_labels_that_do_not_match_the_rows(drifted_models):
    old, new, recent, *_ = drifted_models
    with pytest.raises(DataError, match="y_recent has 5 values"):
        retraining.compare(old, new, recent, recent["malignant"].iloc[:5], use_case=DIAGNOSIS)
    with pytest.raises(ParameterError, match="Unknown metric"):
        retraining.compare(old, new, recent, recent["malignant"], use_case=DIAGNOSIS, metric="auc")


# --------------------------------------------------------------------------- the registry


@pytest.fixture
def store(tmp_path):
    with registry.use_store(f"sqlite:///{tmp_path}/mlflow.db") as uri:
        yield uri


def test_promotion_then_rollback_restores_the_previous_champion_and_records_both(store, tmp_path, drifted_models):
    old, new, recent, before, after = drifted_models
    name = "retraining-test"
    for i, (model, fit, alias) in enumerate(((old, before, "champion"), (new, after, "challenger"))):
        folder = registry.package(model, tmp_path / f"v{i}", use_case=DIAGNOSIS, fit_rows=fit, test_rows=recent,
                                  onnx=False)
        registry.log_model(folder, name=name, alias=alias)
    champion, challenger = registry.load(f"models:/{name}@champion"), registry.load(f"models:/{name}@challenger")
    decision = retraining.compare(champion, challenger, recent, recent["malignant"], use_case=DIAGNOSIS,
                                  n_resamples=300)
    recorded = retraining.record_decision(name, decision, champion_version=1, challenger_version=2)
    assert (recorded.action, recorded.champion) == ("promote", 2)
    assert registry.versions(name).set_index("version")["aliases"].to_dict() == {2: "champion", 1: ""}

    back = retraining.roll_back(name, "recall fell on the first day")
    assert (back.action, back.champion) == ("rollback", 1)
    assert registry.versions(name).set_index("version")["aliases"].to_dict() == {2: "", 1: "champion"}

    table = retraining.decisions(name)
    assert table["action"].tolist() == ["promote", "rollback"]
    assert table["champion_after"].tolist() == [2, 1]
    assert table.loc[0, "p_value"] == pytest.approx(decision.p_value)
    assert table.loc[0, "test"] == decision.test and table.loc[0, "gate"] == "GO"
    assert table.loc[1, "reason"] == "recall fell on the first day"
    run = registry.client().get_run(table.loc[0, "run_id"])
    assert run.data.tags["mlkit.decision.challenger_run"] == registry.client().get_model_version(name, "2").run_id
    assert run.data.metrics["challenger_value"] == pytest.approx(decision.challenger_value)

    kept = retraining.compare(champion, champion, recent, recent["malignant"], use_case=DIAGNOSIS, n_resamples=100)
    assert retraining.record_decision(name, kept, champion_version=1, challenger_version=1).champion == 1
    assert retraining.decisions(name)["action"].tolist() == ["promote", "rollback", "keep"]
    with pytest.raises(registry.RegistryError, match="no earlier champion"):
        retraining.roll_back(name, "again")
    with pytest.raises(registry.RegistryError, match="no version 7"):
        retraining.record_decision(name, kept, champion_version=1, challenger_version=7)
    with pytest.raises(ParameterError, match="needs a reason"):
        retraining.roll_back(name, " ")
    assert retraining.decisions("never-recorded").empty


def test_public_names_exist():
    for name in retraining.__all__:
        assert hasattr(retraining, name), name
