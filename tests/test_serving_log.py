"""The server and the prediction log: every answered row is logged, outcomes attach by request id,
and a killed server leaves every answered prediction in the log."""

from __future__ import annotations

import os
import signal
import sqlite3
from concurrent.futures import ThreadPoolExecutor

import httpx
import pandas as pd
import pytest

from mlkit import datasets, registry, training, usecases
from mlkit.monitoring.store import read_log
from mlkit.serving import ServerError, running


@pytest.fixture(scope="module")
def fraud(tmp_path_factory):
    uc = usecases.get("finance-fraud")
    model, parts = training.train(uc, datasets.load(uc, n=2000), seed=0)
    folder = registry.package(model, tmp_path_factory.mktemp("serve-log") / "model", use_case=uc,
                              fit_rows=parts.train, test_rows=parts.test)
    features = training.feature_columns(parts.train, uc).features
    X = parts.test[features]
    records = X.astype(object).where(X.notna(), None).to_dict(orient="records")
    return {"folder": folder, "model": model, "X": X, "records": records, "features": features}


@pytest.fixture
def log_url(tmp_path):
    return f"sqlite:///{tmp_path / 'predictions.db'}"


def test_every_answered_row_is_logged_once_with_the_id_the_client_got(fraud, log_url):
    k, m = 8, 15
    records = fraud["records"][: k * m]
    with running(fraud["folder"], name="fraud", extra_args=("--log-db", log_url)) as url:
        def client_run(start):
            with httpx.Client(base_url=url) as c:
                answers = [c.post("/invocations", json={"dataframe_records": [r]}) for r in records[start:start + m]]
            return [(a.status_code, a.headers.get("x-request-id"), a.json()["predictions"][0]) for a in answers]

        with ThreadPoolExecutor(k) as pool:
            results = [row for part in pool.map(client_run, range(0, k * m, m)) for row in part]
        many = httpx.post(url + "/invocations", json={"dataframe_records": records[:3]}, headers={"X-Request-ID": "batch-7"})
        assert many.headers["x-request-id"] == "batch-7"
        answered = {rid: prediction for _, rid, prediction in results}
    assert [status for status, _, _ in results] == [200] * (k * m)
    log = read_log(log_url)
    assert len(log) == k * m + 3 and log["request_id"].is_unique  # exactly K x M (+ the batch), no duplicates
    logged = dict(zip(log["request_id"], log["prediction"]))
    assert {rid: logged[rid] for rid in answered} == answered
    assert set(log["request_id"]) - set(answered) == {"batch-7-0", "batch-7-1", "batch-7-2"}
    assert set(log["model"]) == {"fraud"} and set(log["served_by"]) == {"mlkit-sklearn"}
    first = log.set_index("request_id").loc["batch-7-0"]
    for column in fraud["features"]:
        expected = records[0][column]
        assert (pd.isna(first[column]) and expected is None) or first[column] == expected


def test_feedback_attaches_outcomes_by_request_id(fraud, log_url):
    with running(fraud["folder"], extra_args=("--log-db", log_url)) as url:
        ids = [httpx.post(url + "/invocations", json={"dataframe_records": [r]}).headers["x-request-id"]
               for r in fraud["records"][:4]]
        answer = httpx.post(url + "/feedback", json={"labels": {ids[0]: 1, ids[1]: 0, "never-seen": 1}})
        assert answer.status_code == 200
        assert answer.json() == {"matched": 2, "unknown": ["never-seen"], "stale": []}
        as_list = httpx.post(url + "/feedback", json={"labels": [{"request_id": ids[2], "label": 1}]})
        assert as_list.json()["matched"] == 1
        for body in ({"labels": {}}, {"labels": {ids[3]: None}}, {"labels": {ids[3]: [1, 2]}}, [1], {"nope": 1}):
            bad = httpx.post(url + "/feedback", json=body)
            assert bad.status_code == 400 and "label" in bad.json()["message"].lower(), bad.text
            assert "Traceback" not in bad.text
    log = read_log(log_url).set_index("request_id")
    assert log.loc[ids[0], "label"] == 1 and log.loc[ids[1], "label"] == 0 and log.loc[ids[2], "label"] == 1
    assert pd.isna(log.loc[ids[3], "label"])


def test_a_killed_server_leaves_every_answered_prediction_in_a_consistent_log(fraud, tmp_path):
    db = tmp_path / "predictions.db"
    with running(fraud["folder"], extra_args=("--log-db", f"sqlite:///{db}")) as url:
        with httpx.Client(base_url=url) as c:
            ids = [c.post("/invocations", json={"dataframe_records": [r]}).headers["x-request-id"]
                   for r in fraud["records"][:60]]
        pids = [int(p) for p in os.popen(f"pgrep -f 'mlkit.serving .*--port {url.rsplit(':', 1)[1]}'").read().split()]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)  # no shutdown, no flush: only what was committed survives
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert set(ids) <= set(read_log(f"sqlite:///{db}")["request_id"])


def test_by_default_there_is_no_log_no_feedback_and_no_request_id(fraud):
    with running(fraud["folder"]) as url:
        answer = httpx.post(url + "/invocations", json={"dataframe_records": fraud["records"][:1]})
        assert answer.status_code == 200 and "x-request-id" not in answer.headers
        feedback = httpx.post(url + "/feedback", json={"labels": {"a": 1}})
        assert feedback.status_code == 404 and "--log" in feedback.json()["message"]


def test_log_flag_writes_to_the_store_mlkit_log_db_names(fraud, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("MLKIT_LOG_DB", url)
    with running(fraud["folder"], extra_args=("--log",)) as server:
        rid = httpx.post(server + "/invocations", json={"dataframe_records": fraud["records"][:1]}).headers["x-request-id"]
    assert read_log(url)["request_id"].tolist() == [rid]


def test_no_log_contradicts_log_db(fraud, tmp_path, capsys):
    from mlkit.cli import main

    assert main(["serve", "--model", str(fraud["folder"]), "--no-log", "--log-db", str(tmp_path / "x.db")]) == 2
    assert "contradicts" in capsys.readouterr().err


def test_a_bad_log_url_stops_the_server_at_start_with_a_clear_message(fraud, tmp_path):
    with pytest.raises(ServerError, match="(?i)log"):
        with running(fraud["folder"], extra_args=("--log-db", "mysql://nowhere/db"), timeout=60):
            pass


def test_a_log_that_cannot_record_answers_503_and_sends_no_prediction(fraud):
    from fastapi.testclient import TestClient

    from mlkit.serving import create_app, load_model

    class BrokenLog:
        url = "sqlite:///unused.db"

        async def alog(self, records, wait=None):
            raise OSError("disk full at /var/secret/path")

        def close(self):
            pass

    app = create_app(load_model(fraud["folder"]), logger=BrokenLog())
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.post("/invocations", json={"dataframe_records": fraud["records"][:1]})
    assert answer.status_code == 503 and "predictions" not in answer.json()
    assert "could not record" in answer.json()["message"] and "/var/secret" not in answer.text


# --------------------------------------------------------------------------- scores


@pytest.fixture(scope="module")
def other_models(tmp_path_factory):
    """A multiclass classifier (merchant category, 9 classes) and a regressor, packaged with ONNX."""
    fraud_uc = usecases.get("finance-fraud")
    frame = datasets.load(fraud_uc, n=1500).drop(columns=[fraud_uc.target])
    multi = usecases.custom(name="merchant.csv", target="merchant_category", task="classification", positive_label=None)
    demand = usecases.get("retail-demand")
    out = {}
    for key, uc, data in (("multiclass", multi, frame), ("regression", demand, datasets.load(demand, n=800))):
        model, parts = training.train(uc, data, seed=0)
        folder = registry.package(model, tmp_path_factory.mktemp(key) / "model", use_case=uc,
                                  fit_rows=parts.train, test_rows=parts.test)
        X = parts.test[training.feature_columns(parts.train, uc).features]
        out[key] = {"folder": folder, "model": model, "X": X,
                    "records": X.astype(object).where(X.notna(), None).to_dict(orient="records")}
    return out


def _serve_and_log(folder, runtime, records, db):
    """Send every record as its own request, all at once (so the micro-batcher merges them), plus one 3-row
    request; return the answers by request id and the log."""
    import asyncio

    from mlkit.monitoring.store import PredictionLogger
    from mlkit.serving import create_app, load_model

    logger = PredictionLogger(f"sqlite:///{db}", durable=True, power_safe=False)
    app = create_app(load_model(folder, runtime=runtime), logger=logger)

    async def send():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            singles = [client.post("/invocations", json={"dataframe_records": [r]}, headers={"X-Request-ID": f"r{i}"})
                       for i, r in enumerate(records)]
            several = client.post("/invocations", json={"dataframe_records": records[:3]},
                                  headers={"X-Request-ID": "many"})
            return await asyncio.gather(*singles, several)

    try:
        answers = asyncio.run(send())
    finally:
        logger.close()
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:1]
    merged = app.state.metrics.merged.collect()[0].samples
    predictions = {f"r{i}": a.json()["predictions"][0] for i, a in enumerate(answers[:-1])}
    predictions.update({f"many-{i}": p for i, p in enumerate(answers[-1].json()["predictions"])})
    calls = next(s.value for s in merged if s.name.endswith("_count"))
    return predictions, read_log(f"sqlite:///{db}").set_index("request_id"), calls


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
def test_a_binary_classifier_logs_the_positive_class_probability(fraud, tmp_path, runtime):
    records, X = fraud["records"][:40], fraud["X"].iloc[:40]
    answers, log, calls = _serve_and_log(fraud["folder"], runtime, records, tmp_path / "log.db")
    assert calls < len(records)  # requests were merged into shared model calls, and each got its own scores
    expected = fraud["model"].predict_proba(X)[:, 1]
    ids = [f"r{i}" for i in range(len(records))]
    assert [answers[i] for i in ids] == fraud["model"].predict(X).tolist()  # the answers did not change
    assert log.loc[ids, "prediction"].tolist() == [answers[i] for i in ids]
    assert abs(log.loc[ids, "score"].to_numpy() - expected).max() <= 1e-9
    assert abs(log.loc[[f"many-{i}" for i in range(3)], "score"].to_numpy() - expected[:3]).max() <= 1e-9


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
def test_a_multiclass_classifier_logs_the_top_class_probability(other_models, tmp_path, runtime):
    case = other_models["multiclass"]
    records, X = case["records"][:30], case["X"].iloc[:30]
    answers, log, _ = _serve_and_log(case["folder"], runtime, records, tmp_path / "log.db")
    ids = [f"r{i}" for i in range(len(records))]
    assert [answers[i] for i in ids] == case["model"].predict(X).tolist()
    assert log.loc[ids, "prediction"].tolist() == [answers[i] for i in ids]
    assert abs(log.loc[ids, "score"].to_numpy() - case["model"].predict_proba(X).max(axis=1)).max() <= 1e-9


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
def test_a_regressor_logs_no_score(other_models, tmp_path, runtime):
    case = other_models["regression"]
    answers, log, _ = _serve_and_log(case["folder"], runtime, case["records"][:20], tmp_path / "log.db")
    assert len(log) == 23 and log["score"].isna().all()
    assert log.loc["r0", "prediction"] == answers["r0"]


def test_the_score_comes_from_the_call_that_predicted_and_only_when_logging(fraud):
    """sklearn: one predict_proba call gives labels and scores (predict is not called); a model whose predict
    is not the argmax of predict_proba (a tuned threshold), or that has no predict_proba, logs no score."""
    import numpy as np
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier
    from sklearn.svm import LinearSVC

    from mlkit.serving.model import _sklearn_scored
    from mlkit.serving.schema import Batch

    X = fraud["X"].iloc[:50]
    batch = Batch({c: X[c].to_numpy() for c in X.columns}, len(X))

    class Counting:
        def __init__(self, model):
            self.model, self.calls = model, []

        def __getattr__(self, name):
            attr = getattr(self.model, name)
            if callable(attr):
                def call(*args, **kwargs):
                    self.calls.append(name)
                    return attr(*args, **kwargs)
                return call
            return attr

    model = fraud["model"]
    counting = Counting(model)
    labels, scores = _sklearn_scored(counting, "classification")(batch)
    assert counting.calls == ["predict_proba"]
    assert labels.tolist() == model.predict(X).tolist() and labels.dtype == model.predict(X).dtype
    assert np.abs(scores - model.predict_proba(X)[:, 1]).max() == 0

    y = np.arange(len(X)) % 2  # any two classes: the frozen model is not refitted
    threshold = FixedThresholdClassifier(FrozenEstimator(model), threshold=0.01).fit(X, y)
    labels, scores = _sklearn_scored(threshold, "classification")(batch)
    assert scores is None and labels.tolist() == threshold.predict(X).tolist()
    numeric = X.select_dtypes("number").fillna(0)
    svm = LinearSVC().fit(numeric, y)
    numeric_batch = Batch({c: numeric[c].to_numpy() for c in numeric.columns}, len(numeric))
    labels, scores = _sklearn_scored(svm, "classification")(numeric_batch)
    assert scores is None and labels.tolist() == svm.predict(numeric).tolist()


def test_without_a_log_the_server_never_asks_for_scores(fraud):
    from fastapi.testclient import TestClient

    from mlkit.serving import create_app, load_model

    served = load_model(fraud["folder"])

    def refuse(batch):
        raise AssertionError("scores computed without a log")

    served.predict_scored = refuse
    for micro_batch in (True, False):
        with TestClient(create_app(served, micro_batch=micro_batch)) as client:
            answer = client.post("/invocations", json={"dataframe_records": fraud["records"][:2]})
        assert answer.status_code == 200
        assert answer.json()["predictions"] == fraud["model"].predict(fraud["X"].iloc[:2]).tolist()
