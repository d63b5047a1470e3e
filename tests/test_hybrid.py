"""The hybrid gateway (mlkit.hybrid, `mlkit gateway`): what crosses the boundary, fallback, breaker.

An independent recording server (the standard library's HTTP server, not mlkit's) stands in
for the cloud: it keeps every request it receives, answers in the contract's shape, and can be
made slow, failing or stopped. The gateway runs in-process (Starlette's TestClient) and calls it
over real HTTP on loopback.
"""

from __future__ import annotations

import datetime
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from mlkit import datasets, hybrid, registry, training, usecases
from mlkit.cli import main
from mlkit.errors import ParameterError
from mlkit.serving import load_model, running

UC = usecases.get("healthcare-readmission")
RULES = "name,patient_id=pseudonym,date_of_birth=age_band,postcode=area"
PERSONAL = ("patient_id", "name", "date_of_birth", "postcode")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A packaged readmission model, its test records (personal data included) and a key file."""
    tmp = tmp_path_factory.mktemp("hybrid")
    df = datasets.load(UC, n=400, seed=3)
    model, parts = training.train(UC, df, seed=0)
    folder = registry.package(model, tmp / "package", use_case=UC, fit_rows=pd.concat([parts.train, parts.validation]),
                              test_rows=parts.test)
    records = json.loads(parts.test.head(40).to_json(orient="records", date_format="iso"))
    return {"folder": folder, "model": model, "rows": parts.test.head(40), "records": records,
            "key": hybrid.new_key(tmp / "gateway.key"), "tmp": tmp, "served": load_model(str(folder))}


class Recorder:
    """A stand-in cloud endpoint: records every request; answers n predictions in the contract's shape."""

    def __init__(self, mode: str = "ok", delay: float = 0.0) -> None:
        self.requests: list[dict] = []
        self.mode, self.delay = mode, delay
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                recorder.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if recorder.delay:
                    time.sleep(recorder.delay)
                if recorder.mode == "500":
                    self._answer(500, {"error": "internal"})
                    return
                n = _rows(self.path, self.headers.get("content-type", ""), body)
                if self.path.startswith("/v2/"):
                    self._answer(200, {"model_name": "m", "outputs": [{"name": "predictions", "data": [1] * n}]})
                else:
                    self._answer(200, {"predictions": [1] * n})

            def _answer(self, status, obj):
                data = json.dumps(obj).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the gateway gave up waiting
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def seen(self) -> str:
        """Everything that reached the server, as one text: paths, headers and bodies."""
        return "\n".join(f"{r['path']}\n{json.dumps(r['headers'])}\n{r['body'].decode()}" for r in self.requests)


def _columns_sent(request: dict) -> list[str]:
    """The column names in a recorded request, whatever its contract."""
    if request["headers"].get("content-type", "").startswith("text/csv"):
        return request["body"].decode().splitlines()[0].split(",")
    payload = json.loads(request["body"])
    if "instances" in payload:
        names = {tuple(sorted(i)) for i in payload["instances"]}
        assert len(names) == 1
        return list(names.pop())
    if "dataframe_split" in payload:
        return payload["dataframe_split"]["columns"]
    return [t["name"] for t in payload["inputs"]]


def _rows(path: str, content_type: str, body: bytes) -> int:
    if content_type.startswith("text/csv"):
        return len(body.decode().strip().splitlines()) - 1
    payload = json.loads(body)
    if "instances" in payload:
        return len(payload["instances"])
    if "dataframe_split" in payload:
        return len(payload["dataframe_split"]["data"])
    return payload["inputs"][0]["shape"][0]


@pytest.fixture
def recorder():
    rec = Recorder()
    yield rec
    rec.stop()


def _config(world, url, contract="vertex", **kw):
    kw.setdefault("mapping_db", str(world["tmp"] / f"map-{time.monotonic_ns()}.db"))
    return hybrid.GatewayConfig(url, contract, str(world["folder"]), hybrid.parse_pii_columns(RULES), str(world["key"]),
                                as_of=datetime.date(2025, 1, 1), **kw)


def _gateway(world, url, contract="vertex", **kw) -> TestClient:
    return TestClient(hybrid.create_gateway_app(_config(world, url, contract, **kw), world["served"]))


def _dead_url() -> str:
    from mlkit.serving import free_port

    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


# --------------------------------------------------------------------------- what crosses the boundary


@pytest.mark.parametrize("contract", hybrid.CONTRACTS)
def test_no_personal_data_reaches_the_cloud_in_any_contract(world, recorder, contract):
    with _gateway(world, recorder.url, contract) as gw:
        answer = gw.post("/predict", json={"records": world["records"]})
    assert answer.status_code == 200, answer.text
    assert [p["served_by"] for p in answer.json()["predictions"]] == ["cloud"] * len(world["records"])
    seen = recorder.seen()
    assert len(recorder.requests) == 1
    sent = _columns_sent(recorder.requests[0])
    assert sorted(sent) == sorted(world["served"].schema.names), "only the model's columns cross"
    for column in PERSONAL:
        # "name" is also a field of V2's tensors, so the column check is structural; the others are distinctive
        assert column not in sent and (column == "name" or column not in seen), f"{column!r} reached the cloud"
        for record in world["records"]:
            value = str(record[column])
            assert value not in seen, f"a value of {column!r} reached the cloud"
            assert value[:10] not in seen  # not even the date part of a timestamp
    if contract != "sagemaker":  # CSV has no slot for them
        body = json.loads(recorder.requests[0]["body"])
        pseudonyms = body["params" if contract == "mlflow" else "parameters"]["pseudonyms"]
        assert len(set(pseudonyms)) == len(world["records"]) and all(len(p) == 32 for p in pseudonyms)


def test_pseudonyms_are_keyed_join_back_on_premise_and_the_key_is_never_stored(world, recorder):
    db = world["tmp"] / "mapping-join.db"
    with _gateway(world, recorder.url, "mlflow", mapping_db=str(db)) as gw:
        gw.post("/predict", json={"records": world["records"][:3]}).raise_for_status()
        gw.post("/predict", json={"records": world["records"][:3]}).raise_for_status()  # the same patients again
    sent = [json.loads(r["body"])["params"]["pseudonyms"] for r in recorder.requests]
    assert sent[0] == sent[1], "the same patient gets the same pseudonym, so records still join"
    store = hybrid.MappingStore(db)
    assert [store.lookup(p) for p in sent[0]] == [("patient_id", r["patient_id"]) for r in world["records"][:3]]
    assert store.counts() == {"cloud": 6}
    store.close()
    other = hybrid.Pseudonymiser(b"another-key-of-32-bytes-at-least", hybrid.parse_pii_columns(RULES))
    assert other.pseudonym("patient_id", world["records"][0]["patient_id"]) != sent[0][0], "the key matters"
    key = Path(world["key"]).read_bytes().strip()
    assert key not in db.read_bytes() and key.decode() not in recorder.seen()


def test_generalisation_and_rules():
    p = hybrid.Pseudonymiser(b"k" * 32, hybrid.parse_pii_columns(RULES), as_of=datetime.date(2025, 6, 30))
    out = p.apply({"patient_id": "PT-1", "name": "Ann Lee", "date_of_birth": "1955-07-01T00:00:00.000",
                   "postcode": "ls2 7ee", "age": 69, "missing_rule_is_fine": 1})
    assert out.record == {"patient_id": p.pseudonym("patient_id", "PT-1"), "date_of_birth": "60-69", "postcode": "LS",
                          "age": 69, "missing_rule_is_fine": 1}
    assert hybrid.age_band("1955-06-30", datetime.date(2025, 6, 30)) == "70-79"  # birthday today
    assert hybrid.age_band("not a date", datetime.date(2025, 1, 1)) is None
    assert "k" * 32 not in repr(p)
    assert [(r.column, r.action) for r in hybrid.default_rules(UC, list(datasets.load(UC, n=60).columns))] == [
        ("patient_id", "pseudonym"), ("name", "drop"), ("date_of_birth", "age_band"), ("postcode", "area")]
    with pytest.raises(ParameterError, match="twice"):
        hybrid.parse_pii_columns("name,name=pseudonym")


def test_the_routing_policy_keeps_flagged_records_on_premise(world, recorder):
    records = [dict(r, consent_cloud=(i % 2 == 0)) for i, r in enumerate(world["records"][:6])]
    with _gateway(world, recorder.url, on_premise_when={"consent_cloud": {"false"}}) as gw:
        answer = gw.post("/predict", json={"records": records}).json()["predictions"]
    assert [p["served_by"] for p in answer] == ["cloud", "on-premise"] * 3
    assert [p["id"] for p in answer] == [r["patient_id"] for r in records], "answers keep the request's order"
    assert len(json.loads(recorder.requests[0]["body"])["instances"]) == 3


# --------------------------------------------------------------------------- same answers, fallback, breaker


def test_predictions_are_the_same_on_either_path(world):
    expected = world["model"].predict(world["rows"]).tolist()
    proba = world["model"].predict_proba(world["rows"])[:, 1]
    with running(world["folder"]) as cloud:
        for contract in hybrid.CONTRACTS:
            with _gateway(world, cloud, contract) as gw:
                answer = gw.post("/predict", json={"records": world["records"]}).json()["predictions"]
            assert [p["served_by"] for p in answer] == ["cloud"] * len(expected), contract
            assert [p["prediction"] for p in answer] == expected, contract
    with _gateway(world, _dead_url()) as gw:
        answer = gw.post("/predict", json={"records": world["records"]}).json()["predictions"]
    assert [p["served_by"] for p in answer] == ["on-premise"] * len(expected)
    assert [p["prediction"] for p in answer] == expected
    np.testing.assert_allclose([p["score"] for p in answer], proba, atol=1e-6)


def test_with_the_cloud_down_every_request_is_answered_on_premise_within_the_budget(world):
    budget_s = 0.3
    with _gateway(world, _dead_url(), timeout_ms=budget_s * 1000, breaker_failures=3) as gw:
        for i in range(8):
            start = time.perf_counter()
            answer = gw.post("/predict", json={"records": world["records"][i:i + 3]})
            elapsed = time.perf_counter() - start
            assert answer.status_code == 200
            assert {p["served_by"] for p in answer.json()["predictions"]} == {"on-premise"}
            assert elapsed < budget_s + 0.5, f"request {i} took {elapsed:.2f} s"
        health = gw.get("/health").json()
    assert health["breaker"] == "open"
    assert health["served"] == {"on-premise/connection-error": 9, "on-premise/breaker-open": 15}


def test_a_slow_cloud_trips_the_timeout_and_the_breaker_which_closes_once_it_recovers(world):
    slow = Recorder(delay=1.0)
    try:
        with _gateway(world, slow.url, timeout_ms=200, breaker_failures=2, breaker_cooldown_s=0.5) as gw:
            def ask():
                start = time.perf_counter()
                body = gw.post("/predict", json={"records": world["records"][:2]}).json()["predictions"]
                return {p["served_by"] for p in body}, time.perf_counter() - start

            for _ in range(2):  # two timeouts open the breaker
                served, elapsed = ask()
                assert served == {"on-premise"} and elapsed < 0.2 + 0.5
            assert gw.get("/health").json()["breaker"] == "open"
            calls = len(slow.requests)
            assert ask()[0] == {"on-premise"} and len(slow.requests) == calls, "an open breaker sends nothing"
            slow.delay = 0.0  # the cloud recovers
            time.sleep(0.6)  # the cool-down passes
            assert gw.get("/health").json()["breaker"] == "half-open"
            assert ask()[0] == {"cloud"}, "the trial call succeeds"
            health = gw.get("/health").json()
            assert health["breaker"] == "closed" and health["breaker_opened"] == 1
            assert ask()[0] == {"cloud"}
    finally:
        slow.stop()


@pytest.mark.parametrize("mode", ["500", "bad-answer"])
def test_a_failing_or_garbled_cloud_falls_back(world, mode):
    rec = Recorder(mode="500" if mode == "500" else "ok")
    try:
        url = rec.url if mode == "500" else rec.url + "/v2/models/other/infer"  # a v2 answer to a vertex request
        with _gateway(world, url, "vertex" if mode == "500" else "mlflow") as gw:
            body = gw.post("/predict", json={"records": world["records"][:2]}).json()["predictions"]
            served = gw.get("/health").json()["served"]
    finally:
        rec.stop()
    assert {p["served_by"] for p in body} == {"on-premise"}
    assert served == {("on-premise/cloud-5xx" if mode == "500" else "on-premise/bad-answer"): 2}


def test_breaker_states_without_a_server():
    now = [0.0]
    b = hybrid.CircuitBreaker(failures=3, cooldown_s=10, clock=lambda: now[0])
    b.failure(); b.failure(); b.success(); b.failure(); b.failure()  # noqa: E702 (a success resets the count)
    assert b.state == "closed"
    b.failure()
    assert b.state == "open" and not b.allow()
    now[0] = 10.0
    assert b.allow() and not b.allow(), "half-open lets one trial through"
    b.failure()
    assert b.state == "open" and b.opened == 2, "a failed trial opens it again at once"
    with pytest.raises(ParameterError, match="failures >= 1"):
        hybrid.CircuitBreaker(failures=0)


# --------------------------------------------------------------------------- bad input, bad configuration


@pytest.mark.parametrize("body, status, message", [
    (b"not json", 400, "not valid JSON"),
    (b'{"rows": []}', 400, '{"records"'),
    (b'{"records": []}', 400, "at least one record"),
    (b'{"records": [1, 2]}', 400, "must be a JSON object"),
    (b'{"records": [{"name": "Zed Secret", "age": 40}]}', 400, "Missing column"),
])
def test_bad_requests_get_a_clear_400_that_echoes_nothing(world, recorder, body, status, message):
    with _gateway(world, recorder.url) as gw:
        answer = gw.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status and message in answer.json()["error"]
    assert "Zed Secret" not in answer.text and "Traceback" not in answer.text
    assert recorder.requests == [], "a bad request never reaches the cloud"


def test_a_model_that_takes_a_personal_data_column_is_refused(world, recorder):
    config = _config(world, recorder.url)
    config.pii_columns = hybrid.parse_pii_columns("age")
    with pytest.raises(hybrid.GatewayError, match="'age'.*personal data"):
        hybrid.create_gateway_app(config, world["served"])


def _cli(world, capsys, **override):
    args = {"--cloud-url": "http://127.0.0.1:9", "--cloud-contract": "vertex", "--fallback-model": str(world["folder"]),
            "--pii-columns": RULES, "--key-file": str(world["key"]),
            "--mapping-db": str(world["tmp"] / "cli.db"), **override}
    status = main(["gateway", *[x for kv in args.items() for x in kv]])
    return status, capsys.readouterr().err


@pytest.mark.parametrize("override, message", [
    ({"--key-file": "/nonexistent/gateway.key"}, "does not exist"),
    ({"--key-file": "/"}, "is a folder"),
    ({"--fallback-model": "/nonexistent/model"}, "fallback model /nonexistent/model cannot be loaded"),
    ({"--cloud-url": "ftp://example"}, "http(s) URL"),
    ({"--pii-columns": "name=hash"}, "unknown action 'hash'"),
    ({"--as-of": "yesterday"}, "--as-of must be a date"),
])
def test_the_gateway_stops_at_start_with_a_clear_message(world, capsys, override, message):
    status, err = _cli(world, capsys, **override)
    assert status == 2 and message in err


def test_a_short_key_is_refused_and_its_content_never_shown(world, capsys, tmp_path):
    short = tmp_path / "short.key"
    short.write_text("hunter2")
    status, err = _cli(world, capsys, **{"--key-file": str(short)})
    assert status == 2 and "at least 16" in err and "hunter2" not in err


def test_mlkit_gateway_runs_as_a_process(world, recorder, tmp_path):
    """The CLI end to end: `mlkit gateway` in a subprocess, in front of the recording server."""
    shutil.copy(world["key"], tmp_path / "k")
    with hybrid.running_gateway(cloud_url=recorder.url, cloud_contract="v2", fallback_model=world["folder"],
                                pii_columns=RULES, key_file=tmp_path / "k", mapping_db=tmp_path / "m.db",
                                as_of="2025-01-01") as url:
        import httpx

        answer = httpx.post(f"{url}/predict", json={"records": world["records"][:4]}, timeout=30)
        docs = httpx.get(f"{url}/docs", timeout=30)
    assert answer.status_code == 200 and [p["served_by"] for p in answer.json()["predictions"]] == ["cloud"] * 4
    assert docs.status_code == 200
    assert recorder.requests[0]["path"].startswith("/v2/models/") and "patient_id" not in recorder.seen()
