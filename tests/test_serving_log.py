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
