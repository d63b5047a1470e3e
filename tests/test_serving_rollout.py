"""Shadow and canary rollout in the server (mlkit.serving.rollout): a shadow never changes an answer,
the canary gets its share of traffic by request id, and a canary that breaks a guardrail is rolled
back while a good one keeps running.

Most tests run the app in-process (httpx over ASGI, with the app's lifespan) on stand-in models:
a rule on one column, so what each model answers is known exactly. One test starts a real server
with the command-line flags."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

import httpx
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from mlkit.errors import MlkitError, ParameterError
from mlkit.monitoring.store import PredictionLogger, read_log
from mlkit.serving import running
from mlkit.serving.app import create_app
from mlkit.serving.model import ServedModel
from mlkit.serving.rollout import Guardrails, route_share
from mlkit.serving.schema import Schema

SCHEMA = [{"name": "x", "type": "double"}, {"name": "group", "type": "string"}]


def stand_in(predict, *, name="fraud", version="1", task="classification", schema=SCHEMA) -> ServedModel:
    """A served model whose predictions are ``predict(batch)``: no training, answers known in advance."""
    return ServedModel(name, version, Schema.from_signature(schema), task, "sklearn", "stand-in",
                       lambda batch: np.asarray(predict(batch)), {}, "long" if task == "classification" else "double")


def above(threshold: float):
    return lambda batch: (batch.columns["x"] > threshold).astype(int)


def records(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"x": float(x), "group": "ab"[i % 2]} for i, x in enumerate(rng.random(n))]


def one_row(record: dict, rid: str) -> dict:
    return {"method": "POST", "url": "/invocations", "json": {"dataframe_records": [record]},
            "headers": {"X-Request-ID": rid}}


@contextlib.asynccontextmanager
async def serving(app):
    """The app with its lifespan (so shutdown finishes the background scoring and closes the log)."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client


async def send_all(client: httpx.AsyncClient, requests: list[dict]) -> list[httpx.Response]:
    return await asyncio.gather(*(client.request(**r) for r in requests))


async def drain(app) -> None:
    """Wait for the background scorer (the champion's paired predictions) to catch up."""
    assert await asyncio.to_thread(app.state.background.drain, 30)


def logger(tmp_path, name="log.db") -> PredictionLogger:
    return PredictionLogger(f"sqlite:///{tmp_path / name}", durable=True, power_safe=False)


# --------------------------------------------------------------------------- shadow


def _contract_requests(rows: list[dict]) -> list[dict]:
    """The same rows through every contract, one row and several, plus bad requests; each with its own id."""
    first = rows[0]
    requests = [one_row(r, f"s{i}") for i, r in enumerate(rows)]
    requests += [
        {"method": "POST", "url": "/invocations", "json": {"dataframe_records": rows[:3]}, "headers": {"X-Request-ID": "many"}},
        {"method": "POST", "url": "/invocations", "content": "x,group\n0.9,a\n0.2,b\n",
         "headers": {"X-Request-ID": "csv", "Content-Type": "text/csv"}},
        {"method": "POST", "url": "/vertex/predict", "json": {"instances": rows[:2]}, "headers": {"X-Request-ID": "vertex"}},
        {"method": "POST", "url": "/score", "json": {"data": rows[:2]}, "headers": {"X-Request-ID": "azure"}},
        {"method": "POST", "url": "/v2/models/fraud/infer", "headers": {"X-Request-ID": "v2"},
         "json": {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [first["x"]]},
                             {"name": "group", "shape": [1], "datatype": "BYTES", "data": [first["group"]]}]}},
        {"method": "POST", "url": "/invocations", "json": {"dataframe_records": [{"x": 0.5}]},  # no group: 400
         "headers": {"X-Request-ID": "bad"}},
        {"method": "POST", "url": "/invocations", "json": {"dataframe_records": [{"x": "secret", "group": "a"}]},
         "headers": {"X-Request-ID": "bad2"}},
    ]
    return requests


ANSWERED_IDS = {*(f"s{i}" for i in range(12)), "many-0", "many-1", "many-2", "csv-0", "csv-1", "vertex-0", "vertex-1",
                "azure-0", "azure-1", "v2"}


def _run_shadow(app, requests, release: threading.Event | None = None):
    async def scenario():
        async with serving(app) as client:
            try:
                answers = [await client.request(**r) for r in requests]  # one at a time: the same order in both runs
            finally:
                if release is not None:
                    release.set()
            if app.state.background is not None:
                await drain(app)
            return answers, (await client.get("/shadow")).json(), (await client.get("/metrics")).text

    return asyncio.run(scenario())


def _blocked_until(release: threading.Event):
    def predict(batch):
        assert release.wait(30), "the shadow was never released"
        return (batch.columns["x"] > 0.3).astype(int)
    return predict


def _raises(batch):
    raise RuntimeError("the shadow broke")


SHADOWS = {
    # kind: (predict, its schema, its rows reach the log)
    "different": (above(0.3), SCHEMA, True),
    "slow": (None, SCHEMA, True),  # blocked until every answer is back
    "raises": (_raises, SCHEMA, False),
    "returns_nan": (lambda batch: np.full(batch.n, np.nan), SCHEMA, False),
    "wrong_length": (lambda batch: np.zeros(batch.n + 1), SCHEMA, False),
    "cannot_read": (above(0.3), [{"name": "x", "type": "long"}, {"name": "group", "type": "string"}], False),
}


@pytest.mark.parametrize("kind", list(SHADOWS))
def test_a_shadow_never_changes_a_response_and_logs_its_predictions_under_the_same_ids(tmp_path, kind):
    rows = records(12, seed=1)
    requests = _contract_requests(rows)
    champion = stand_in(above(0.5))
    plain_answers, _, _ = _run_shadow(create_app(champion, logger=logger(tmp_path, "plain.db")), requests)

    predict, schema, logged = SHADOWS[kind]
    release = threading.Event() if kind == "slow" else None
    if release is not None:
        predict = _blocked_until(release)
    shadow = stand_in(predict, name="fraud-shadow", version="7", schema=schema)
    url = f"sqlite:///{tmp_path / 'shadow.db'}"
    app = create_app(champion, logger=PredictionLogger(url, durable=True, power_safe=False), shadow=shadow)
    answers, status, metrics = _run_shadow(app, requests, release)

    for plain, answer in zip(plain_answers, answers, strict=True):
        assert (answer.status_code, dict(answer.headers), answer.content) == (
            plain.status_code, dict(plain.headers), plain.content)
    assert [a.status_code for a in answers].count(200) == len(requests) - 2  # the bad ones are 400 in both
    assert "secret" not in answers[-1].text

    log = read_log(url)
    answered = log[log["served_by"] != "shadow"]  # what clients received
    assert set(answered["served_by"]) == {"mlkit-sklearn"} and set(answered["request_id"]) == ANSWERED_IDS
    shadow_rows = log[log["served_by"] == "shadow"].set_index("request_id")
    if logged:
        assert set(shadow_rows.index) == ANSWERED_IDS  # every answered row, joined by its id
        assert set(shadow_rows["model"]) == {"fraud-shadow"} and set(shadow_rows["model_version"]) == {"7"}
        x = answered.set_index("request_id")["x"]
        assert shadow_rows["prediction"].tolist() == (x.loc[shadow_rows.index] > 0.3).astype(int).tolist()
        assert status["rows"] == len(ANSWERED_IDS) and status["errors"] == 0
    else:
        assert shadow_rows.empty
        assert status["errors"] == len(ANSWERED_IDS) and status["rows"] == 0
        assert f"mlkit_shadow_errors_total {float(len(ANSWERED_IDS))}" in metrics
    assert status["shadow"] == "fraud-shadow" and status["pending"] == 0 and status["dropped"] == 0


def test_a_slow_shadow_does_not_hold_up_the_answers(tmp_path):
    """Every answer comes back while the shadow is still stuck on the first request."""
    release = threading.Event()
    app = create_app(stand_in(above(0.5)), logger=logger(tmp_path),
                     shadow=stand_in(_blocked_until(release), name="slow-shadow"))

    async def scenario():
        async with serving(app) as client:
            try:
                answers = await send_all(client, [one_row(r, f"r{i}") for i, r in enumerate(records(30))])
                stuck = (await client.get("/shadow")).json()
            finally:
                release.set()
            return answers, stuck

    answers, stuck = asyncio.run(scenario())
    assert [a.status_code for a in answers] == [200] * 30
    assert stuck["rows"] == 0 and stuck["pending"] > 0  # nothing scored yet, and the answers were all sent
    log = read_log(app.state.logger.url)
    assert (log["served_by"] == "shadow").sum() == 30  # shutdown scored and logged what was waiting


# --------------------------------------------------------------------------- canary: the split


def test_the_canary_split_is_within_tolerance_and_the_same_id_always_goes_the_same_way():
    app = create_app(stand_in(above(0.5)), canary=stand_in(above(0.5), version="2"), canary_percent=20)
    rows = records(2000, seed=2)

    async def scenario():
        async with serving(app) as client:
            first = await send_all(client, [one_row(r, f"req-{i}") for i, r in enumerate(rows)])
            again = await send_all(client, [one_row(rows[i], f"req-{i}") for i in range(0, 2000, 10)])
            v2 = await client.post("/v2/models/fraud/infer", headers={"X-Request-ID": "req-0"}, json={"inputs": [
                {"name": "x", "shape": [1], "datatype": "FP64", "data": [0.7]},
                {"name": "group", "shape": [1], "datatype": "BYTES", "data": ["a"]}]})
            return first, again, v2, (await client.get("/canary")).json()

    first, again, v2, status = asyncio.run(scenario())
    assert all(a.status_code == 200 for a in first + again)
    who = [a.headers["x-served-by"] for a in first]
    assert set(who) == {"champion", "canary"}
    assert abs(who.count("canary") / len(who) - 0.20) <= 0.03
    assert [a.headers["x-served-by"] for a in again] == who[::10]  # a retry with the same id: same model
    assert who == ["canary" if route_share(f"req-{i}") < 0.2 else "champion" for i in range(2000)]
    assert [a.json()["predictions"] for a in first] == [[int(r["x"] > 0.5)] for r in rows]
    assert v2.json()["model_version"] == ("2" if who[0] == "canary" else "1")  # who answered, in the V2 body
    routed = who.count("canary") + who[::10].count("canary") + (who[0] == "canary")
    assert status["state"] == "running" and status["percent"] == 20 and status["rows"] == routed


# --------------------------------------------------------------------------- canary: rollback


def _broken_canaries():
    return {
        "raises": stand_in(_raises, version="2"),
        "returns_nan": stand_in(lambda batch: np.full(batch.n, np.nan), version="2"),
        "wrong_length": stand_in(lambda batch: np.zeros(batch.n + 1, dtype=int), version="2"),
        "cannot_read": stand_in(above(0.5), version="2",
                                schema=[{"name": "x", "type": "long"}, {"name": "group", "type": "string"}]),
    }


@pytest.mark.parametrize("kind", ["raises", "returns_nan", "wrong_length", "cannot_read"])
def test_a_failing_canary_never_causes_a_5xx_and_is_rolled_back_on_its_error_rate(kind):
    app = create_app(stand_in(above(0.5)), canary=_broken_canaries()[kind], canary_percent=50,
                     guardrails=Guardrails(min_rows=20))
    before, after = records(200, seed=3), records(200, seed=4)

    async def scenario():
        async with serving(app) as client:
            first = [await client.request(**one_row(r, f"a{i}")) for i, r in enumerate(before)]
            second = await send_all(client, [one_row(r, f"b{i}") for i, r in enumerate(after)])
            return first, second, (await client.get("/canary")).json(), (await client.get("/metrics")).text

    first, second, status, metrics = asyncio.run(scenario())
    assert [a.status_code for a in first + second] == [200] * 400
    assert [a.json()["predictions"] for a in first] == [[int(r["x"] > 0.5)] for r in before]  # the champion's
    assert {a.headers["x-served-by"] for a in first + second} == {"champion"}
    assert status["state"] == "rolled_back" and status["percent"] == 0 and status["requested_percent"] == 50
    assert status["reason"]["guardrail"] == "error_rate"
    assert (status["reason"]["value"], status["reason"]["threshold"], status["reason"]["rows"]) == (1.0, 0.02, 20)
    assert status["rows"] == status["errors"] == 20  # nothing more was sent its way
    assert sum(route_share(f"b{i}") < 0.5 for i in range(200)) > 50  # ids that would have gone to the canary
    assert "mlkit_canary_rolled_back 1.0" in metrics and "mlkit_canary_percent 0.0" in metrics


def test_a_canary_that_disagrees_with_the_champion_is_rolled_back(caplog):
    app = create_app(stand_in(above(0.5)), canary=stand_in(lambda b: 1 - above(0.5)(b), version="2"),
                     canary_percent=50, guardrails=Guardrails(min_rows=30))

    async def scenario():
        async with serving(app) as client:
            first = await send_all(client, [one_row(r, f"a{i}") for i, r in enumerate(records(200))])
            await drain(app)
            status = (await client.get("/canary")).json()
            second = await send_all(client, [one_row(r, f"b{i}") for i, r in enumerate(records(100, seed=5))])
            return first, status, second

    with caplog.at_level("WARNING", logger="mlkit.serving"):
        first, status, second = asyncio.run(scenario())
    canary_answers = [a for a in first if a.headers["x-served-by"] == "canary"]
    assert canary_answers and all(a.status_code == 200 for a in first)
    assert status["state"] == "rolled_back" and status["reason"]["guardrail"] == "agreement"
    assert status["reason"]["value"] == 0.0 and status["reason"]["threshold"] == 0.8
    assert status["reason"]["rows"] >= 30 and status["agreement"] == 0.0
    assert {a.headers["x-served-by"] for a in second} == {"champion"}
    assert any("rolled back" in r.message and r.levelname == "WARNING" for r in caplog.records)


def _rare_positives(n: int, seed: int) -> list[dict]:
    """About 5 % positives (x > 0.95): a model that always says 0 agrees with the champion 95 % of the time."""
    return records(n, seed)


def test_an_always_zero_canary_passes_agreement_but_the_rate_ratio_catches_it_without_labels():
    app = create_app(stand_in(above(0.95)), canary=stand_in(lambda b: np.zeros(b.n, dtype=int), version="2"),
                     canary_percent=50, guardrails=Guardrails(min_rows=50))

    async def scenario():
        async with serving(app) as client:
            await send_all(client, [one_row(r, f"a{i}") for i, r in enumerate(_rare_positives(800, seed=6))])
            await drain(app)
            return (await client.get("/canary")).json()

    status = asyncio.run(scenario())
    assert status["agreement"] > 0.9  # the agreement guardrail (0.8) sees nothing wrong
    assert status["state"] == "rolled_back" and status["reason"]["guardrail"] == "rate_ratio"
    assert status["reason"]["value"] == 0.0 and status["rate_ratio_class"] == 1
    assert "class 1" in status["reason"]["message"]


def test_an_always_zero_canary_is_rolled_back_once_outcomes_arrive(tmp_path):
    """Agreement and the rate ratio off or blind: the labelled guardrail (balanced accuracy) catches it."""
    rows = _rare_positives(800, seed=7)
    app = create_app(stand_in(above(0.95)), canary=stand_in(lambda b: np.zeros(b.n, dtype=int), version="2"),
                     canary_percent=50, logger=logger(tmp_path),
                     guardrails=Guardrails(min_rows=50, min_rate_ratio=0))
    labels = {f"a{i}": int(r["x"] > 0.95) for i, r in enumerate(rows)}  # the champion is always right

    async def scenario():
        async with serving(app) as client:
            await send_all(client, [one_row(r, f"a{i}") for i, r in enumerate(rows)])
            await drain(app)
            before = (await client.get("/canary")).json()
            feedback = await client.post("/feedback", json={"labels": labels})
            after = (await client.get("/canary")).json()
            later = await send_all(client, [one_row(r, f"b{i}") for i, r in enumerate(records(100, seed=8))])
            return before, feedback, after, later

    before, feedback, after, later = asyncio.run(scenario())
    assert before["state"] == "running" and before["agreement"] > 0.9 and before["labelled_rows"] == 0
    assert feedback.status_code == 200 and feedback.json()["matched"] == len(rows)
    assert after["state"] == "rolled_back" and after["reason"]["guardrail"] == "labelled"
    assert after["labelled_rows"] == before["rows"] >= 50
    assert after["champion_metric"] == 1.0 and after["canary_metric"] == 0.5  # recall 1 on class 0, 0 on class 1
    assert after["reason"]["value"] == 0.5 and after["reason"]["threshold"] == 0.05
    assert {a.headers["x-served-by"] for a in later} == {"champion"}


def test_a_good_canary_keeps_running_and_both_models_rows_are_logged(tmp_path):
    rows = records(400, seed=9)
    url = f"sqlite:///{tmp_path / 'log.db'}"
    app = create_app(stand_in(above(0.5)), canary=stand_in(above(0.5), name="fraud-next", version="2"),
                     canary_percent=30, logger=PredictionLogger(url, durable=True, power_safe=False))
    rng = np.random.default_rng(0)
    labels = {f"a{i}": int((r["x"] > 0.5) != (rng.random() < 0.1)) for i, r in enumerate(rows)}  # 10 % noise

    async def scenario():
        async with serving(app) as client:
            answers = await send_all(client, [one_row(r, f"a{i}") for i, r in enumerate(rows)])
            await drain(app)
            await client.post("/feedback", json={"labels": labels})
            return answers, (await client.get("/canary")).json()

    answers, status = asyncio.run(scenario())
    canary_ids = {f"a{i}" for i, a in enumerate(answers) if a.headers["x-served-by"] == "canary"}
    assert status["state"] == "running" and status["reason"] is None
    assert status["rows"] == len(canary_ids) >= 50 and status["errors"] == 0 and status["agreement"] == 1.0
    assert status["labelled_rows"] == len(canary_ids) and status["champion_metric"] == status["canary_metric"] > 0.8
    log = read_log(url)
    by = {who: set(part["request_id"]) for who, part in log.groupby("served_by")}
    assert by["canary"] == canary_ids and by["shadow"] == canary_ids  # the champion's paired rows, same ids
    assert by["mlkit-sklearn"] == {f"a{i}" for i in range(400)} - canary_ids
    assert set(log.loc[log["served_by"] == "canary", "model"]) == {"fraud-next"}
    assert set(log.loc[log["served_by"] == "canary", "model_version"]) == {"2"}
    assert (log["served_by"] != "shadow").sum() == 400  # without the shadow rows: one row per answered request


def test_a_regression_canary_agrees_within_ten_percent_and_is_judged_on_mae(tmp_path):
    rows = records(300, seed=10)
    noise = np.random.default_rng(1).normal(0, 10, len(rows))
    labels = {f"a{i}": r["x"] * 100 + e for i, (r, e) in enumerate(zip(rows, noise))}
    results = {}
    for kind, canary in (("close", lambda b: b.columns["x"] * 101), ("far", lambda b: b.columns["x"] * 130)):
        app = create_app(stand_in(lambda b: b.columns["x"] * 100, task="regression"), logger=logger(tmp_path, f"{kind}.db"),
                         canary=stand_in(canary, task="regression", version="2"), canary_percent=50,
                         guardrails=Guardrails(min_rows=30, min_agreement=0))

        async def scenario(app=app):
            async with serving(app) as client:
                await send_all(client, [one_row(r, f"a{i}") for i, r in enumerate(rows)])
                await drain(app)
                await client.post("/feedback", json={"labels": labels})
                return (await client.get("/canary")).json()

        results[kind] = asyncio.run(scenario())
    close, far = results["close"], results["far"]
    assert close["agreement"] == 1.0 and far["agreement"] == 0.0  # 1 % off agrees, 30 % off does not
    assert close["metric"] == "mae" and close["labelled_rows"] == close["rows"] >= 30
    assert close["state"] == "running" and close["canary_metric"] < close["champion_metric"] * 1.05
    assert far["state"] == "rolled_back" and far["reason"]["guardrail"] == "labelled"
    assert far["reason"]["value"] == pytest.approx(far["canary_metric"] / far["champion_metric"] - 1)
    assert far["reason"]["value"] > 0.05


# --------------------------------------------------------------------------- options and errors


def test_get_canary_and_shadow_say_clearly_when_there_is_none():
    app = create_app(stand_in(above(0.5)))

    async def scenario():
        async with serving(app) as client:
            return await client.get("/canary"), await client.get("/shadow")

    canary, shadow = asyncio.run(scenario())
    assert canary.status_code == 404 and "--canary MODEL2" in canary.json()["message"]
    assert shadow.status_code == 404 and "--shadow MODEL2" in shadow.json()["message"]


@pytest.mark.parametrize("args, message", [
    (["--canary", "m2", "--canary-percent", "0"], "more than 0 and less than 100"),
    (["--canary", "m2", "--canary-percent", "100"], "promote it instead"),
    (["--canary", "m2", "--canary-percent", "150"], "more than 0 and less than 100"),
    (["--canary", "m2", "--canary-percent", "nan"], "more than 0 and less than 100"),
    (["--shadow", "m2", "--canary", "m3"], "two ways of trying a second model"),
    (["--shadow", "m2", "--no-log"], "needs the prediction log"),
    (["--canary", "m2", "--no-log"], "needs the prediction log"),
    (["--canary-percent", "20"], "need --canary MODEL2"),
    (["--canary-min-rows", "20"], "need --canary MODEL2"),
    (["--canary", "m2", "--workers", "2"], "--workers 1"),
    (["--canary", "m2", "--canary-min-agreement", "1.5"], "--canary-min-agreement"),
    (["--canary", "m2", "--canary-min-rows", "0"], "--canary-min-rows"),
])
def test_bad_rollout_options_are_clear_errors_before_any_model_loads(args, message, capsys):
    from mlkit.cli import main

    assert main(["serve", "--model", "no/such/model", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "no/such/model is neither" not in err


def test_the_rollout_flags_reach_serve(monkeypatch):
    from mlkit import serving
    from mlkit.cli import main

    calls = []
    monkeypatch.setattr(serving, "serve", lambda model, **kwargs: calls.append((model, kwargs)))
    main(["serve", "--model", "m1", "--canary", "m2", "--canary-percent", "20", "--canary-min-rows", "10",
          "--canary-max-drop", "0.1"])
    main(["serve", "--model", "m1", "--shadow", "m2", "--log-db", "x.db"])
    (_, canary), (_, shadow) = calls
    assert (canary["canary"], canary["canary_percent"], canary["shadow"]) == ("m2", 20.0, None)
    assert canary["guardrails"] == {"min_rows": 10, "max_drop": 0.1}
    assert (shadow["shadow"], shadow["canary"], shadow["log_db"]) == ("m2", None, "x.db")


def test_create_app_refuses_a_second_model_that_cannot_work(tmp_path):
    champion = stand_in(above(0.5))
    with pytest.raises(ParameterError, match="more than 0 and less than 100"):
        create_app(champion, canary=stand_in(above(0.5)), canary_percent=0)
    with pytest.raises(ParameterError, match="two ways"):
        create_app(champion, logger=logger(tmp_path), shadow=champion, canary=champion)
    with pytest.raises(ParameterError, match="prediction log"):
        create_app(champion, shadow=stand_in(above(0.5)))
    missing = stand_in(above(0.5), schema=[*SCHEMA, {"name": "age", "type": "double"}])
    with pytest.raises(MlkitError, match="needs column\\(s\\) 'age'.*could score no request"):
        create_app(champion, canary=missing)
    as_text = stand_in(above(0.5), schema=[{"name": "x", "type": "string"}, {"name": "group", "type": "string"}])
    with pytest.raises(MlkitError, match="'x' \\(double here, string in the shadow\\)"):
        create_app(champion, logger=logger(tmp_path, "b.db"), shadow=as_text)
    with pytest.raises(MlkitError, match="does regression.*cannot be compared"):
        create_app(champion, canary=stand_in(above(0.5), task="regression"))
    fewer = stand_in(above(0.5), schema=SCHEMA[:1])  # a model reading fewer columns is fine
    assert create_app(champion, canary=fewer).state.canary.status()["state"] == "running"


# --------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def plain_models(tmp_path_factory):
    """A logistic regression (about half positives) and a challenger that always predicts 0, as MLflow folders."""
    folder = tmp_path_factory.mktemp("rollout")
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.integers(20, 80, 300).astype(float), "dose": rng.normal(5, 1, 300)})
    y = (X["age"] / 50 + X["dose"] / 5 + rng.normal(0, 0.2, 300) > 2.0).astype(int)
    for name, model in (("champion", LogisticRegression().fit(X, y)),
                        ("always-zero", DummyClassifier(strategy="constant", constant=0).fit(X, y))):
        mlflow.sklearn.save_model(model, folder / name, signature=infer_signature(X, model.predict(X)),
                                  serialization_format="skops", pip_requirements=["scikit-learn"])  # no inference run
    return {"champion": folder / "champion", "zero": folder / "always-zero", "X": X}


def test_a_real_server_rolls_back_a_bad_canary_given_on_the_command_line(plain_models, tmp_path, capsys):
    from mlkit.cli import main

    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    # a shadow that does not load stops the server at start, with a clear message
    assert main(["serve", "--model", str(plain_models["champion"]), "--shadow", str(tmp_path / "nowhere"),
                 "--log-db", log_url]) == 2
    err = capsys.readouterr().err
    assert "The shadow model" in err and "could not be loaded" in err and "Traceback" not in err

    rows = plain_models["X"].to_dict(orient="records")
    args = ("--canary", str(plain_models["zero"]), "--canary-percent", "50", "--canary-min-rows", "20",
            "--log-db", log_url)
    with running(plain_models["champion"], name="dose", extra_args=args) as url:
        with httpx.Client(base_url=url) as client:
            first = [client.post("/invocations", json={"dataframe_records": [r]}, headers={"X-Request-ID": f"a{i}"})
                     for i, r in enumerate(rows[:120])]
            deadline = time.monotonic() + 20
            while (status := client.get("/canary").json())["state"] == "running" and time.monotonic() < deadline:
                time.sleep(0.1)
            later = [client.post("/invocations", json={"dataframe_records": [r]}) for r in rows[120:170]]
    assert all(a.status_code == 200 for a in first + later)
    canary_ids = {f"a{i}" for i, a in enumerate(first) if a.headers["x-served-by"] == "canary"}
    assert canary_ids and all(first[int(i[1:])].json() == {"predictions": [0]} for i in canary_ids)
    assert status["state"] == "rolled_back" and status["reason"]["guardrail"] == "agreement"
    assert status["canary"] == "always-zero" and status["percent"] == 0
    assert {a.headers["x-served-by"] for a in later} == {"champion"}
    log = read_log(log_url)
    assert set(log.loc[log["served_by"] == "canary", "request_id"]) == canary_ids
    assert set(log.loc[log["served_by"] == "canary", "model"]) == {"always-zero"}
    assert set(log.loc[log["served_by"] == "shadow", "request_id"]) == canary_ids  # flushed at shutdown
    assert set(log.loc[log["served_by"] == "shadow", "model"]) == {"dose"}
