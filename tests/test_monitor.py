"""``mlkit monitor``: drift per window, performance over time and alerts from a real prediction log."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from mlkit import fingerprint
from mlkit.cli import main
from mlkit.errors import DataError, ParameterError
from mlkit.monitoring import monitor as monitor_module
from mlkit.monitoring.alerts import Rule
from mlkit.monitoring.monitor import monitor, plot_drift_heatmap
from mlkit.monitoring.performance import synthetic_stream
from mlkit.monitoring.store import PredictionLogger

WINDOWS, SIZE, DRIFT_AT = 8, 300, 4


def _records(stream: pd.DataFrame, model: str, *, labels: bool = True) -> list[dict]:
    records = []
    for i, row in enumerate(stream.itertuples(index=False)):
        record = {"request_id": f"{model}-{i}", "timestamp": row.timestamp, "model": model, "model_version": "1",
                  "features": {"x": float(row.x)}, "prediction": int(row.prediction), "score": float(row.score)}
        if labels:
            record.update(label=int(row.label), label_timestamp=row.label_timestamp)
        records.append(record)
    return records


@pytest.fixture(scope="module")
def drifted_log(tmp_path_factory):
    """One SQLite log, four models: covariate drift, concept drift, no drift, and no labels yet."""
    folder = tmp_path_factory.mktemp("monitor")
    url = f"sqlite:///{folder / 'predictions.db'}"
    streams = {}
    with PredictionLogger(url, durable=True) as logger:
        for model, scenario in (("fraud", "covariate"), ("churn", "concept"), ("steady", "none")):
            reference, stream = synthetic_stream(scenario, windows=WINDOWS, window_size=SIZE, drift_at=DRIFT_AT,
                                                 seed=1)
            streams[model] = (reference, stream)
            logger.log(_records(stream, model))
        logger.log(_records(streams["steady"][1].iloc[:600], "unlabelled", labels=False))
    return {"url": url, "folder": folder, "streams": streams}


@pytest.fixture(scope="module")
def covariate(drifted_log):
    return monitor(drifted_log["url"], model="fraud", window=SIZE)


@pytest.fixture(scope="module")
def concept(drifted_log):
    return monitor(drifted_log["url"], model="churn", window=SIZE)


def test_public_names():
    assert set(monitor_module.__all__) == {"MonitorResult", "monitor", "default_rules", "plot_drift_heatmap",
                                           "format_summary"}
    assert all(hasattr(monitor_module, name) for name in monitor_module.__all__)


def test_the_first_window_is_the_reference_and_says_so(covariate):
    assert covariate.reference_is_log
    assert covariate.reference == f"the first window of the log (window 0, {SIZE} rows)"
    assert covariate.windows["status"].tolist() == ["reference"] + ["checked"] * (WINDOWS - 1)
    assert any("No reference was given" in note for note in covariate.notes)
    assert covariate.metric == "accuracy" and covariate.model == "fraud"


def test_x_is_flagged_exactly_from_the_drift_window_on(covariate):
    x = covariate.drift[(covariate.drift["column"] == "x") & (covariate.drift["status"] == "checked")]
    assert x.loc[x["drifted"], "window"].tolist() == list(range(DRIFT_AT, WINDOWS))
    assert (x.loc[x["window"] < DRIFT_AT, "ratio"] < 1).all() and (x.loc[x["window"] >= DRIFT_AT, "ratio"] > 3).all()
    assert covariate.windows["drift_share"].tolist()[1:] == [0.0] * (DRIFT_AT - 1) + [1.0] * (WINDOWS - DRIFT_AT)
    prediction = covariate.drift[covariate.drift["role"] == "prediction"]
    assert len(prediction) == WINDOWS and not prediction["drifted"].any()  # the scores crowd at 0.5, still 50/50


def test_performance_falls_after_the_drift_and_the_estimate_follows(covariate):
    table = covariate.windows.set_index("window")
    before, after = table.loc[: DRIFT_AT - 1], table.loc[DRIFT_AT:]
    assert before["realised"].mean() - after["realised"].mean() > 0.12
    assert (after["realised"] - after["estimated"]).abs().max() < 0.05
    assert covariate.baseline == pytest.approx(table.loc[0, "realised"])


def test_alerts_fire_at_the_expected_windows(covariate):
    first = covariate.alerts.drop_duplicates("rule").set_index("rule")["window"].to_dict()
    assert first == {"performance-drop": DRIFT_AT, "estimated-performance-drop": DRIFT_AT,
                     "dataset-drift": DRIFT_AT + 1}  # two drifted windows in a row
    assert "dataset-drift" in covariate.windows.set_index("window").loc[DRIFT_AT + 1, "alerts"]
    assert covariate.verdict.startswith(f"{len(covariate.alerts)} alert(s) in {WINDOWS - 1} checked window(s)")


def test_shadow_rows_never_count_as_the_served_models(drifted_log, tmp_path):
    """A shadow's predictions (served_by="shadow") reached nobody: the report is the one without them."""
    _, stream = drifted_log["streams"]["steady"]
    answered = _records(stream, "steady")
    shadow = [dict(r, served_by="shadow", prediction=1 - r["prediction"], score=1 - r["score"]) for r in answered]
    url = f"sqlite:///{tmp_path / 'with-shadow.db'}"
    with PredictionLogger(url, durable=True) as logger:
        logger.log(answered + shadow)
    alone, beside = monitor(drifted_log["url"], model="steady", window=SIZE), monitor(url, model="steady", window=SIZE)
    assert beside.windows["rows"].tolist() == alone.windows["rows"].tolist() == [SIZE] * WINDOWS
    pd.testing.assert_series_equal(beside.windows["realised"], alone.windows["realised"])


def test_concept_drift_realised_falls_while_the_estimate_stays_flat(concept):
    table = concept.windows.set_index("window")
    before, after = table.loc[: DRIFT_AT - 1], table.loc[DRIFT_AT:]
    assert before["realised"].mean() - after["realised"].mean() > 0.12
    assert abs(before["estimated"].mean() - after["estimated"].mean()) < 0.03
    fired = set(concept.alerts["rule"])
    assert fired == {"performance-drop"}  # the inputs did not move: no drift, and the estimate saw nothing
    assert concept.alerts["window"].iloc[0] == DRIFT_AT


def test_an_explicit_reference_checks_every_window(drifted_log):
    reference = drifted_log["streams"]["fraud"][0]
    result = monitor(drifted_log["url"], model="fraud", window=SIZE, reference=reference[["x", "prediction"]])
    assert not result.reference_is_log and result.reference == "the reference table (4,000 rows)"
    x = result.drift[result.drift["column"] == "x"]
    assert x.loc[x["drifted"], "window"].tolist() == list(range(DRIFT_AT, WINDOWS))
    assert result.windows["status"].eq("checked").all()


def test_a_fingerprint_compares_the_scores(drifted_log):
    reference = drifted_log["streams"]["fraud"][0]
    fp = fingerprint.fingerprint(reference[["x"]], reference["score"], numeric=["x"], categorical=[],
                                 task="classification")
    result = monitor(drifted_log["url"], model="fraud", window=SIZE, reference=fp)
    prediction = result.drift[result.drift["role"] == "prediction"]
    assert set(prediction["column"]) == {"score"}
    assert prediction.loc[prediction["drifted"], "window"].tolist() == list(range(DRIFT_AT, WINDOWS))


def test_rules_are_configurable(drifted_log):
    rule = Rule("any-drift", "drift_share", 0.0, "above")
    result = monitor(drifted_log["url"], model="fraud", window=SIZE, rules=[rule])
    assert result.rules == (rule,) and result.alerts["window"].tolist() == list(range(DRIFT_AT, WINDOWS))


def test_no_labels_yet_is_said_not_failed(drifted_log):
    result = monitor(drifted_log["url"], model="unlabelled", window=SIZE)
    assert not result.has_labels and result.performance["realised"].isna().all()
    assert any(note.startswith("No labels yet") for note in result.notes)
    assert [rule.name for rule in result.rules] == ["dataset-drift"]
    assert "No labels yet" in result.report().html()


def test_small_windows_are_skipped_and_regression_uses_mae():
    _, stream = synthetic_stream("none", windows=3, window_size=120, seed=2)
    frame = stream.iloc[:245].assign(prediction=stream["x"].iloc[:245] * 2.5, label=stream["x"].iloc[:245] * 2.4,
                                     score=np.nan)  # a regressor: numbers, no scores; 2 h of 1/min, then 5 rows
    result = monitor(frame, window="1h")
    assert result.windows["rows"].tolist() == [60, 60, 60, 60, 5]
    assert result.windows["status"].tolist() == ["reference", "checked", "checked", "checked", "skipped"]
    assert result.metric == "mae" and not result.greater_is_better
    assert result.rules[1].direction == "above" and any("skipped" in note for note in result.notes)


def test_heatmap_has_a_title_labels_and_a_colourbar(covariate):
    import matplotlib.pyplot as plt

    ax = plot_drift_heatmap(covariate.drift)
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("Drift per window (x = drifted)", "window (hatched: not checked)", "column")
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "prediction"]
    assert len(ax.figure.axes) == 2  # the colourbar
    plt.close(ax.figure)


# --------------------------------------------------------------------------- the command line


def test_cli_writes_a_self_contained_html_report(drifted_log, capsys):
    html = drifted_log["folder"] / "report" / "fraud.html"
    assert main(["monitor", "--log-db", drifted_log["url"], "--model", "fraud", "--window", str(SIZE),
                 "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "alert: dataset-drift" in out
    assert out.rstrip().splitlines()[-1].startswith("3 alert(s) in 7 checked window(s)")
    text = html.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 2 and "<h1>Monitoring: fraud</h1>" in text
    assert text.count('alt="') == 2 and "dataset-drift" in text and "the first window of the log" in text
    assert "<script" not in text.lower() and not re.search(r"https?://", text)


def test_cli_json_and_fail_on_alert(drifted_log, capsys):
    html = str(drifted_log["folder"] / "steady.html")
    assert main(["monitor", "--log-db", drifted_log["url"], "--model", "steady", "--window", str(SIZE),
                 "--json", "--html", html, "--fail-on-alert"]) == 0
    steady = json.loads(capsys.readouterr().out)
    assert steady["alerts"] == [] and steady["alerted"] is False and len(steady["windows"]) == WINDOWS
    assert main(["monitor", "--log-db", drifted_log["url"], "--model", "churn", "--window", str(SIZE),
                 "--json", "--html", html, "--fail-on-alert"]) == 1
    churn = json.loads(capsys.readouterr().out)
    assert churn["alerts"][0]["rule"] == "performance-drop" and churn["alerts"][0]["window"] == DRIFT_AT
    assert churn["metric"] == "accuracy" and churn["windows"][0]["start"].startswith("2024-01-01T00:00")


def test_cli_with_a_fingerprint_reference(drifted_log, capsys):
    reference = drifted_log["streams"]["fraud"][0]
    path = fingerprint.save(fingerprint.fingerprint(reference[["x"]], reference["score"], numeric=["x"], categorical=[],
                                                    task="classification"), drifted_log["folder"] / "fp.json")
    assert main(["monitor", "--log-db", drifted_log["url"], "--model", "fraud", "--window", str(SIZE),
                 "--reference", str(path), "--json", "--html", str(drifted_log["folder"] / "fp.html")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reference_is_log"] is False and result["reference"].startswith("the model's fingerprint fp.json")


@pytest.mark.parametrize("args, says", [
    (["--model", "fraud", "--log-db", "{empty}"], "is empty: serve the model with logging on"),
    (["--model", "nope"], "has no predictions of model 'nope'; it has: churn, fraud, steady, unlabelled"),
    (["--model", "fraud", "--window", "5000"], f"Use --window {WINDOWS * SIZE // 2} or less"),
    (["--model", "fraud", "--window", "30D"], "Use a shorter span"),
    (["--model", "fraud", "--window", "soon"], "neither a number of rows nor a span of time"),
    (["--model", "fraud", "--reference", "{wrong}"], "has no column(s) 'x'"),
    (["--model", "fraud", "--reference", "{missing}"], "does not exist"),
    (["--model", "fraud", "--metric", "speed"], "Unknown metric 'speed'"),
])
def test_bad_input_exits_2_with_a_message_naming_the_fix(drifted_log, capsys, args, says):
    folder = drifted_log["folder"]
    pd.DataFrame({"y": range(20)}).to_csv(folder / "wrong.csv", index=False)
    names = {"{empty}": f"sqlite:///{folder / 'empty.db'}", "{wrong}": str(folder / "wrong.csv"),
             "{missing}": str(folder / "missing.csv")}
    argv = ["monitor", "--log-db", drifted_log["url"], *[names.get(a, a) for a in args],
            "--html", str(folder / "bad.html")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_library_errors_are_typed(drifted_log):
    with pytest.raises(ParameterError, match="several models"):
        monitor(drifted_log["url"], window=SIZE)
    with pytest.raises(DataError, match="has no column"):
        monitor(drifted_log["url"], model="fraud", window=SIZE, reference=pd.DataFrame({"y": range(20)}))
    with pytest.raises(ParameterError, match="calibrate=False"):
        monitor(drifted_log["url"], model="fraud", window=SIZE, thresholds=0.2)
