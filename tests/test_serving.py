"""Serving contracts over real HTTP on loopback: every route, every error case, no echoed values,
no 500 for bad input, the ONNX runtime, plain MLflow models, and the server lifecycle."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

from mlkit import datasets, registry, training, usecases
from mlkit.serving import ServerError, running

SECRET = "Zx9-secret-value"  # a value that must never come back in an error body
ROUTES_JSON = ["/invocations", "/vertex/predict", "/score"]


@pytest.fixture(scope="module")
def fraud(tmp_path_factory):
    uc = usecases.get("finance-fraud")
    model, parts = training.train(uc, datasets.load(uc, n=3000), seed=0)
    fit = pd.concat([parts.train, parts.validation])
    folder = registry.package(model, tmp_path_factory.mktemp("serve") / "model", use_case=uc, fit_rows=fit,
                              test_rows=parts.test)
    features = training.feature_columns(fit, uc).features
    X = training.xy(parts.test, uc)[0][features]  # what a client sends: the features, no ids or personal data
    return {"folder": folder, "model": model, "X": X, "features": features}


@pytest.fixture(scope="module")
def server(fraud):
    with running(fraud["folder"], name="fraud") as url:
        yield url


@pytest.fixture(scope="module")
def onnx_server(fraud):
    with running(fraud["folder"], name="fraud", runtime="onnx") as url:
        yield url


def _records(X: pd.DataFrame, n: int = 5) -> list[dict]:
    rows = X.head(n).astype(object).where(X.head(n).notna(), None)
    return rows.to_dict(orient="records")


def _no_echo(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    text = response.text
    assert SECRET not in text and "Traceback" not in text and 'File "' not in text


# --------------------------------------------------------------------------- MLflow scoring / SageMaker


def test_health_routes(server):
    for path in ("/ping", "/health"):
        assert httpx.get(server + path).status_code == 200
    assert httpx.get(server + "/version").text == mlflow.__version__
    assert httpx.get(server + "/").text == "Healthy"
    assert httpx.get(server + "/v2/health/live").json() == {"live": True}
    assert httpx.get(server + "/v2/health/ready").json() == {"ready": True}
    assert httpx.get(server + "/vertex/health").status_code == 200


@pytest.mark.parametrize("fmt", ["dataframe_records", "dataframe_split", "instances", "inputs_records", "inputs_columns"])
def test_every_mlflow_json_format_gives_the_pipelines_predictions(server, fraud, fmt):
    X = fraud["X"].head(20)
    records = _records(X, 20)
    features = fraud["features"]
    body = {
        "dataframe_records": {"dataframe_records": records},
        "dataframe_split": {"dataframe_split": {"columns": list(X.columns), "data": [list(r.values()) for r in records]}},
        "instances": {"instances": records},
        "inputs_records": {"inputs": records, "params": {}},
        "inputs_columns": {"inputs": {c: [r[c] for r in records] for c in features}},
    }[fmt]
    answer = httpx.post(server + "/invocations", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": fraud["model"].predict(X).tolist()}


def test_csv_body(server, fraud):
    X = fraud["X"].head(10)
    answer = httpx.post(server + "/invocations", content=X.to_csv(index=False), headers={"content-type": "text/csv"})
    assert answer.status_code == 200 and answer.json()["predictions"] == fraud["model"].predict(X).tolist()


@pytest.mark.parametrize(
    "body, code, words",
    [
        ({"dataframe_records": [{"amount": SECRET}]}, "INVALID_PARAMETER_VALUE", "Missing column"),
        ({"foo": [1]}, "BAD_REQUEST", "exactly one of the keys"),
        ({"instances": [], "inputs": []}, "BAD_REQUEST", "exactly one of the keys"),
        ({"dataframe_records": []}, "INVALID_PARAMETER_VALUE", "holds no rows"),
        ({"dataframe_split": {"columns": ["amount"], "data": []}}, "INVALID_PARAMETER_VALUE", "holds no rows"),
        ([1, 2, 3], "BAD_REQUEST", "JSON object"),
        ({"dataframe_split": {"columns": ["amount"]}}, "BAD_REQUEST", "dataframe_split must be"),
        ({"dataframe_split": {"data": [[1]]}}, "INVALID_PARAMETER_VALUE", "must name its columns"),
        ({"dataframe_records": [1, 2]}, "INVALID_PARAMETER_VALUE", "JSON objects"),
        ({"inputs": SECRET}, "INVALID_PARAMETER_VALUE", "must be a list of objects"),
        ({"instances": [[SECRET, 1]]}, "BAD_REQUEST", "need dataframe_split"),
        ({"prompt": SECRET}, "INVALID_PARAMETER_VALUE", "language models"),
    ],
)
def test_bad_json_requests_are_400_without_echo(server, body, code, words):
    answer = httpx.post(server + "/invocations", json=body)
    assert answer.status_code == 400 and answer.json()["error_code"] == code, answer.text
    assert words in answer.json()["message"]
    _no_echo(answer)


def test_typed_column_errors_name_the_column_and_row(server, fraud):
    good = _records(fraud["X"], 3)
    for bad, words in (({**good[0], "amount": SECRET}, "'amount' must hold numbers"),
                       ({**good[0], "hour": [1, 2]}, "'hour' must hold numbers"),
                       ({**good[0], "channel": {"a": SECRET}}, "'channel' must hold text")):
        answer = httpx.post(server + "/invocations", json={"dataframe_records": [good[1], bad]})
        assert answer.status_code == 400, answer.text
        assert words in answer.json()["message"] and "in row 1" in answer.json()["message"]
        _no_echo(answer)
    # As MLflow casts by the signature: numeric text and numbers for text columns are accepted,
    # and null is a missing value the pipeline imputes, in any column.
    cast = {**good[0], "amount": str(good[0]["amount"]), "channel": 7, "hour": None, "merchant_category": None}
    assert httpx.post(server + "/invocations", json={"dataframe_records": [cast]}).status_code == 200
    extra = {**good[0], "unused_column": SECRET}  # extra columns are ignored, as MLflow does
    assert httpx.post(server + "/invocations", json={"dataframe_records": [extra]}).status_code == 200
    absent = {k: v for k, v in good[0].items() if k != "distance_from_home_km"}  # optional, but must be sent
    answer = httpx.post(server + "/invocations", json={"dataframe_records": [absent]})
    assert answer.status_code == 400 and answer.json()["error_code"] == "BAD_REQUEST"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(server, fraud, token):
    row = json.dumps(_records(fraud["X"], 1)[0]).replace('"amount": ', f'"amount": {token}, "_": ', 1)
    answer = httpx.post(server + "/invocations", content='{"dataframe_records": [' + row + "]}",
                        headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "NaN or Infinity" in answer.json()["message"]


@pytest.mark.parametrize(
    "content, ctype, status",
    [
        ("{not json", "application/json", 400),
        ("", "application/json", 400),
        (f"amount,hour\n{SECRET},2\n", "text/csv", 400),
        ("amount\n", "text/csv", 400),
        (SECRET, "text/plain", 415),
        (SECRET, "application/xml", 415),
        (SECRET, "", 415),
    ],
)
def test_malformed_bodies_and_content_types(server, content, ctype, status):
    headers = {"content-type": ctype} if ctype else {}
    answer = httpx.post(server + "/invocations", content=content.encode(), headers=headers)
    assert answer.status_code == status and set(answer.json()) == {"error_code", "message"}
    _no_echo(answer)


def test_json_with_charset_is_accepted(server, fraud):
    body = json.dumps({"dataframe_records": _records(fraud["X"], 2)})
    answer = httpx.post(server + "/invocations", content=body, headers={"content-type": "application/json; charset=utf-8"})
    assert answer.status_code == 200


def test_oversized_bodies_get_413_with_each_platforms_limit(server):
    big = b'{"instances": [' + b"1," * 3_500_000 + b"1]}"
    answer = httpx.post(server + "/invocations", content=big, headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "6 MB" in answer.json()["message"]
    answer = httpx.post(server + "/vertex/predict", content=big[: 2 * 1024 * 1024], headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "1.5 MB" in answer.json()["error"]


# --------------------------------------------------------------------------- Vertex, Azure, V2


def test_vertex_contract(server, fraud):
    X = fraud["X"].head(4)
    answer = httpx.post(server + "/vertex/predict", json={"instances": _records(X, 4), "parameters": {}})
    assert answer.status_code == 200 and answer.json() == {"predictions": fraud["model"].predict(X).tolist()}
    rows = [[r[c] for c in fraud["features"]] for r in _records(X, 4)]
    assert httpx.post(server + "/vertex/predict", json={"instances": rows}).json()["predictions"] == fraud["model"].predict(X).tolist()
    for bad in ({"rows": []}, {"instances": []}, {"instances": [{"amount": SECRET}]}):
        answer = httpx.post(server + "/vertex/predict", json=bad)
        assert answer.status_code == 400 and set(answer.json()) == {"error"}
        _no_echo(answer)


def test_vertex_routes_and_port_come_from_the_aip_variables(fraud):
    env = {"AIP_HEALTH_ROUTE": "/v1/health", "AIP_PREDICT_ROUTE": "/v1/models/fraud:predict"}
    with running(fraud["folder"], env=env) as url:
        assert httpx.get(url + "/v1/health").status_code == 200
        answer = httpx.post(url + "/v1/models/fraud:predict", json={"instances": _records(fraud["X"], 2)})
        assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2


def test_azure_contract(server, fraud):
    X = fraud["X"].head(3)
    expected = fraud["model"].predict(X).tolist()
    split = {"columns": list(X.columns), "data": [list(r.values()) for r in _records(X, 3)]}
    assert httpx.post(server + "/score", json={"input_data": split}).json() == expected
    assert httpx.post(server + "/score", json={"data": _records(X, 3)}).json() == expected
    answer = httpx.post(server + "/score", json={"rows": SECRET})
    assert answer.status_code == 400 and "input_data" in answer.json()["message"]
    _no_echo(answer)


def test_open_inference_v2_contract(server, fraud):
    meta = httpx.get(server + "/v2/models/fraud").json()
    assert meta["name"] == "fraud" and [i["name"] for i in meta["inputs"]] == fraud["features"]
    assert {i["datatype"] for i in meta["inputs"]} == {"FP64", "BYTES"}
    assert httpx.get(server + "/v2/models/fraud/ready").json() == {"name": "fraud", "ready": True}
    X = fraud["X"].head(3)
    records = _records(X, 3)
    inputs = [{"name": c, "shape": [3], "datatype": "BYTES" if isinstance(records[0][c], str) else "FP64",
               "data": [r[c] for r in records]} for c in fraud["features"]]
    answer = httpx.post(server + "/v2/models/fraud/infer", json={"id": "r1", "inputs": inputs})
    body = answer.json()
    assert answer.status_code == 200 and body["model_name"] == "fraud" and body["id"] == "r1"
    assert body["outputs"][0]["data"] == fraud["model"].predict(X).tolist() and body["outputs"][0]["shape"] == [3]
    assert httpx.get(server + "/v2/models/nope").status_code == 404
    assert httpx.post(server + "/v2/models/nope/infer", json={"inputs": inputs}).status_code == 404
    wrong_shape = [dict(t, shape=[5]) for t in inputs]
    for bad in ({"inputs": wrong_shape}, {"inputs": [{"name": "amount"}]}, {"tensors": []}, {"inputs": inputs[:2]}):
        answer = httpx.post(server + "/v2/models/fraud/infer", json=bad)
        assert answer.status_code == 400 and set(answer.json()) == {"error"}
        _no_echo(answer)


# --------------------------------------------------------------------------- operations


def test_metrics_count_requests_errors_and_model(server):
    httpx.post(server + "/invocations", json={"foo": 1})
    text = httpx.get(server + "/metrics").text
    assert 'mlkit_requests_total{contract="mlflow",status="400"}' in text
    assert 'mlkit_request_errors_total{contract="mlflow",status="400"}' in text
    assert "mlkit_request_latency_seconds_bucket" in text
    assert 'mlkit_model_info{name="fraud",runtime="sklearn",version="local"} 1.0' in text


def test_concurrent_single_row_requests_are_micro_batched_and_each_gets_its_own_answer(server, fraud):
    from concurrent.futures import ThreadPoolExecutor

    def merged_calls() -> tuple[float, float]:
        text = httpx.get(server + "/metrics").text
        count = float(re.search(r"^mlkit_requests_per_model_call_count (\S+)$", text, re.M).group(1))
        total = float(re.search(r"^mlkit_requests_per_model_call_sum (\S+)$", text, re.M).group(1))
        return count, total

    records = _records(fraud["X"], 160)
    expected = fraud["model"].predict(fraud["X"].head(160)).tolist()
    calls0, requests0 = merged_calls()
    with httpx.Client() as one, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda r: one.post(server + "/invocations", json={"dataframe_records": [r]}), records))
    assert [a.status_code for a in answers] == [200] * 160
    assert [a.json()["predictions"][0] for a in answers] == expected  # each request its own row's prediction
    calls, requests = merged_calls()
    assert requests - requests0 == 160
    assert calls - calls0 < 160  # some model calls served several requests


def test_openapi_docs_list_every_contract(server):
    spec = httpx.get(server + "/openapi.json").json()
    assert {"/invocations", "/ping", "/vertex/predict", "/score", "/v2/models/{model}/infer", "/metrics"} <= set(spec["paths"])
    assert httpx.get(server + "/docs").status_code == 200


# --------------------------------------------------------------------------- runtimes and models


def test_onnx_runtime_gives_the_same_predictions(onnx_server, server, fraud):
    records = _records(fraud["X"], 200)
    a = httpx.post(onnx_server + "/invocations", json={"dataframe_records": records}).json()
    b = httpx.post(server + "/invocations", json={"dataframe_records": records}).json()
    assert a == b
    missing = [{**records[0], "distance_from_home_km": None, "merchant_category": "never-seen"}]
    assert httpx.post(onnx_server + "/invocations", json={"dataframe_records": missing}).json() == \
        httpx.post(server + "/invocations", json={"dataframe_records": missing}).json()


def test_registered_model_by_alias(fraud, tmp_path):
    with registry.use_store(f"sqlite:///{tmp_path}/mlflow.db") as uri:
        registry.log_model(fraud["folder"], name="fraud-model", alias="champion")
        with running("models:/fraud-model@champion", env={"MLFLOW_TRACKING_URI": uri}) as url:
            meta = httpx.get(url + "/v2/models/fraud-model").json()
            assert meta["versions"] == ["1"]
            assert httpx.post(url + "/invocations", json={"dataframe_records": _records(fraud["X"], 2)}).status_code == 200


def test_a_plain_mlflow_model_built_outside_the_kit_is_served(tmp_path):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.integers(20, 80, 200).astype(float), "dose": rng.normal(5, 1, 200)})
    y = (X["age"] / 40 + X["dose"] / 5 + rng.normal(0, 0.3, 200) > 2.5).astype(int)
    model = LogisticRegression().fit(X, y)
    mlflow.sklearn.save_model(model, tmp_path / "plain", signature=infer_signature(X, model.predict(X)),
                              serialization_format="skops")
    with running(tmp_path / "plain", name="plain") as url:
        answer = httpx.post(url + "/invocations", json={"dataframe_split": {"columns": ["age", "dose"], "data": X.head(5).values.tolist()}})
        assert answer.json() == {"predictions": model.predict(X.head(5)).tolist()}
    mlflow.sklearn.save_model(model, tmp_path / "pickled", signature=infer_signature(X, model.predict(X)),
                              serialization_format="cloudpickle")
    with pytest.raises(ServerError, match="loading it runs whatever code it holds"):
        with running(tmp_path / "pickled", timeout=60):
            pass


def test_a_tampered_package_is_refused_when_served(fraud, tmp_path):
    import shutil

    copy = Path(shutil.copytree(fraud["folder"], tmp_path / "copy"))
    data = bytearray((copy / "model.skops").read_bytes())
    data[len(data) // 2] ^= 1
    (copy / "model.skops").write_bytes(bytes(data))
    with pytest.raises(ServerError, match="model.skops .*does not match its sha256"):
        with running(copy, timeout=60):
            pass


# --------------------------------------------------------------------------- lifecycle


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is dead too
        return f.read().split()[2] != "Z"


def _server_pids(url: str) -> list[int]:
    """The processes listening on the server's port, and their children (uvicorn's workers).

    Found by the socket, not the command line: a server forked from the test session's zygote
    (mlkit/zygote.py) keeps the zygote's command line.
    """
    import psutil

    port = int(url.rsplit(":", 1)[1])
    listening = {c.pid for c in psutil.net_connections(kind="tcp")
                 if c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN and c.pid}
    family = set(listening)
    for pid in listening:
        with contextlib.suppress(psutil.NoSuchProcess):
            family |= {child.pid for child in psutil.Process(pid).children(recursive=True)}
    return sorted(family)


def test_no_process_outlives_the_context_on_exit_error_or_interrupt(fraud):
    seen = []
    with running(fraud["folder"]) as url:
        seen += _server_pids(url)
    with pytest.raises(RuntimeError):
        with running(fraud["folder"]) as url:
            seen += _server_pids(url)
            raise RuntimeError("a failing cell")
    with pytest.raises(KeyboardInterrupt):
        with running(fraud["folder"], workers=2) as url:
            seen += _server_pids(url)
            os.kill(os.getpid(), signal.SIGINT)  # the kernel's interrupt button
    assert len(seen) >= 3
    assert not [pid for pid in seen if _alive(pid)]


# --------------------------------------------------------------------------- property-based bad input


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def client(fraud):
    import warnings

    with warnings.catch_warnings():  # starlette asks for httpx2 instead of httpx; the client works the same
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient

    from mlkit.serving import create_app, load_model

    return TestClient(create_app(load_model(fraud["folder"], name="fraud")), raise_server_exceptions=False)


NUMERIC = {"amount", "hour", "distance_from_home_km", "account_age_days"}


def _payloads(features: list[str]):
    """Bodies near the valid ones (every column, mostly well typed) as well as arbitrary JSON."""
    def value(col):
        good = st.floats(-1e6, 1e6) | st.integers(-10, 10_000) if col in NUMERIC else st.sampled_from(["web", "pos", "travel", ""])
        return st.one_of(good, good, _json_values)

    record = st.fixed_dictionaries({c: value(c) for c in features}, optional={"extra": _json_values}).flatmap(
        lambda r: st.lists(st.sampled_from(features), max_size=2).map(lambda drop: {k: v for k, v in r.items() if k not in drop})
    )
    records = st.lists(record, max_size=4)
    columns = st.permutations(features).flatmap(lambda cols: st.lists(st.sampled_from(cols + ["extra"]), max_size=8) | st.just(cols))
    row = st.lists(st.one_of(st.floats(-1e6, 1e6), st.text(max_size=5), _json_values), min_size=4, max_size=8)
    split = st.fixed_dictionaries({"columns": columns, "data": st.lists(row, max_size=4)}, optional={"index": _json_values})
    by_column = st.fixed_dictionaries({c: st.lists(value(c), max_size=3) for c in features})
    mlflow_body = st.one_of(
        st.fixed_dictionaries({"dataframe_records": records}, optional={"params": _json_values}),
        st.fixed_dictionaries({"dataframe_split": split | _json_values}),
        st.fixed_dictionaries({"instances": records | st.lists(row, max_size=3) | by_column}),
        st.fixed_dictionaries({"inputs": records | by_column | _json_values}, optional={"params": _json_values}),
        st.dictionaries(st.sampled_from(["dataframe_split", "dataframe_records", "instances", "inputs", "params"]),
                        _json_values, max_size=3),
    )
    tensor = st.sampled_from(features).flatmap(lambda c: st.fixed_dictionaries({
        "name": st.just(c), "shape": st.lists(st.integers(-1, 4), max_size=2) | _json_values,
        "datatype": st.sampled_from(["FP64", "BYTES", "INT64", "x"]), "data": st.lists(value(c), max_size=4) | _json_values}))
    return st.one_of(
        _json_values, mlflow_body,
        st.fixed_dictionaries({"instances": records | st.lists(row, max_size=3) | _json_values}, optional={"parameters": _json_values}),
        st.fixed_dictionaries({"inputs": st.lists(tensor, max_size=7)}, optional={"id": _json_values, "parameters": _json_values}),
        st.fixed_dictionaries({"input_data": split | records | _json_values}), st.fixed_dictionaries({"data": records | _json_values}),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_generated_body_yields_a_5xx_or_a_traceback(client, fraud, data):
    body = data.draw(_payloads(fraud["features"]))
    route = data.draw(st.sampled_from(["/invocations", "/vertex/predict", "/score", "/v2/models/fraud/infer"]))
    answer = client.post(route, json=body)
    assert answer.status_code < 500, (route, body, answer.text)
    assert "Traceback" not in answer.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=64), ctype=st.sampled_from(["application/json", "text/csv", "text/plain", ""]))
def test_no_raw_body_yields_a_5xx(client, raw, ctype):
    answer = client.post("/invocations", content=raw, headers={"content-type": ctype} if ctype else {})
    assert answer.status_code < 500, (raw, ctype, answer.text)



def test_the_server_stops_when_the_process_that_started_it_dies(fraud, tmp_path):
    """A killed kernel leaves no server behind: the server watches the process that started it."""
    import sys
    import time

    script = tmp_path / "kernel.py"
    script.write_text(
        "import sys, time\n"
        "from mlkit.serving import running\n"
        f"with running({str(fraud['folder'])!r}) as url:\n"
        "    print(url, flush=True)\n"
        "    time.sleep(600)\n"
    )
    kernel = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    url = kernel.stdout.readline().strip()
    pids = _server_pids(url)
    assert pids and httpx.get(url + "/ping").status_code == 200
    kernel.kill()  # no finally block runs: like a kernel killed from the outside
    kernel.wait()
    deadline = time.monotonic() + 15
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not [p for p in pids if _alive(p)]
