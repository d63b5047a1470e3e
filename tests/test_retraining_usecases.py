"""Notebook 10's offline claims, for every supervised use case, at the notebook's sizes.

``notebooks/10_retraining.ipynb`` injects a concept drift halfway through a stream and
claims, for whichever use case it runs: (1) the triggered policy ends the drift with a
better metric than never retraining, and (2) a challenger trained on the changed world's
first labelled rows beats the champion on the next ones, by the paired test, the minimum
effect and the deployment gate, so ``compare`` says promote. These tests replay exactly
those steps (same stream, same splits, same models) without starting any server, so a
drift regime that becomes too weak to carry the story fails here, in seconds, rather than
in the notebook grid.
"""

from __future__ import annotations

import pytest

from mlkit import datasets, retraining, training, usecases

SUPERVISED = usecases.ids(supervised_only=True)


@pytest.fixture(scope="module", params=SUPERVISED)
def replayed(request):
    """The notebook's stream (seed 0) and its simulation of no retraining and the triggered policy."""
    uc = usecases.get(request.param)
    rows = min(uc.default_rows, retraining.DEFAULT_ROWS)  # as notebook 10: the data, at most the simulator's default
    stream = datasets.stream(uc, seed=0, n=rows, drift="concept", drift_start=0.5)
    policies = [retraining.NoRetraining(), retraining.Triggered(on="either", cooldown=2)]
    return uc, stream, retraining.simulate(uc, policies, stream=stream, seed=0)


def test_the_triggered_policy_beats_no_retraining_after_the_drift(replayed):
    uc, _, result = replayed
    after = result.summary.set_index("policy")["mean_metric_after_drift"]
    none, triggered = after["none"], after["triggered (either)"]
    sign = 1 if result.greater_is_better else -1
    assert sign * (triggered - none) > 0, f"{uc.id}: {result.metric} after the drift, triggered {triggered:.3f} vs none {none:.3f}"


def test_a_challenger_trained_after_the_drift_is_promoted(replayed):
    uc, stream, result = replayed
    family, seed = result.settings["family"], 0
    history = stream.iloc[: result.settings["history_rows"]].drop(columns="drifted")
    changed = stream[stream["drifted"]].drop(columns="drifted")
    cut_1, cut_2 = int(0.5 * len(changed)), int(0.7 * len(changed))
    fresh, recent = changed.iloc[:cut_1], changed.iloc[cut_1:cut_2]

    champion = training.build_pipeline(uc, history, family=family, seed=seed).fit(*training.xy(history, uc))
    challenger = training.build_pipeline(uc, fresh, family=family, seed=seed).fit(*training.xy(fresh, uc))
    decision = retraining.compare(champion, challenger, *training.xy(recent, uc), use_case=uc, seed=seed,
                                  n_resamples=1000)
    assert decision.promote, f"{uc.id} ({family}): {decision.reason}"
