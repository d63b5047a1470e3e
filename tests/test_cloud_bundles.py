"""Deployable bundles (mlkit.cloud, section "Deployable bundles").

No container engine runs here, so each bundle's entry point is run the way its platform runs it,
on loopback, with the platform's environment variables and request format: SageMaker's ``serve``
script, the Vertex AI Dockerfile's ``CMD``, Azure ML's ``score.py`` (``init``/``run``), and the
Lambda ``handler`` with API Gateway events. The servers and the Lambda subprocess run with only
the distributions their bundle's requirements need on ``sys.path`` (plus the standard library),
as in a fresh image, so a requirement missing from ``requirements.txt`` fails here.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from mlkit import cloud, datasets, packaging, registry, training, usecases
from mlkit.errors import DataError, MlkitError, ParameterError
from mlkit.serving import free_port
from mlkit.serving.lifecycle import stop_process_group

SECRET = "SECRET-4711"  # a value that must never come back in an error message
VERTEX_HEALTH = "/v1/endpoints/1/deployedModels/2"
VERTEX_PREDICT = "/v1/endpoints/1/deployedModels/2:predict"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fraud(tmp_path_factory):
    """A packaged finance-fraud model and rows to score: both predicted classes, and missing optional values."""
    uc = usecases.get("finance-fraud")
    model, parts = training.train(uc, datasets.load(uc, n=2000), seed=0)
    folder = registry.package(model, tmp_path_factory.mktemp("fraud") / "m", use_case=uc,
                              fit_rows=parts.train, test_rows=parts.test)
    columns = json.loads((folder / "input_example.json").read_text())["columns"]
    test = parts.test
    predicted = model.predict(test)
    chosen = set(test.index[predicted == 1]) | set(test.index[test["distance_from_home_km"].isna()][:4]) | set(test.index[:22])
    rows = test.loc[test.index.isin(chosen)]
    records = json.loads(rows[columns].to_json(orient="records"))  # NaN -> null
    fraud = SimpleNamespace(
        model=model,
        folder=folder,
        columns=columns,
        rows=rows[columns],
        records=records,
        data=[[r[c] for c in columns] for r in records],
        expected=model.predict(rows).tolist(),
    )
    assert {0, 1} <= set(fraud.expected), "the rows should hold both predicted classes"
    return fraud


@pytest.fixture(scope="module")
def bundles(fraud, tmp_path_factory):
    """``bundles(target, runtime)``: each bundle written once for the module."""
    made: dict[tuple[str, str], cloud.BundleReport] = {}
    root = tmp_path_factory.mktemp("bundles")

    def get(target: str, runtime: str = "sklearn") -> cloud.BundleReport:
        if (target, runtime) not in made:
            made[target, runtime] = cloud.bundle(fraud.folder, target, root / f"{target}-{runtime}", runtime=runtime)
        return made[target, runtime]

    return get


def requirements_of(report: cloud.BundleReport) -> list[str]:
    if report.target == "azure":
        return report.requirements
    text = (report.path / "requirements.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def only_requirements(report: cloud.BundleReport, tmp: Path) -> dict[str, str]:
    """An environment whose Python sees the standard library and the bundle's requirement closure only.

    A ``sitecustomize`` replaces the virtualenv's site-packages on ``sys.path`` by a folder of
    links to the top-level entries of those distributions, and drops the editable install of
    mlkit, so the bundle's own copy of mlkit (or none, for Lambda) is what gets imported.
    """
    site = tmp / "site"
    site.mkdir(exist_ok=True)
    for name in cloud.dependency_sizes(requirements_of(report)):
        dist = metadata.distribution(name)
        for file in dist.files or []:
            top = file.parts[0]
            if top == ".." or top.startswith("__editable__") or top.endswith(".pth"):
                continue
            source, link = Path(dist.locate_file(top)), site / top
            if source.exists() and not link.exists():
                link.symlink_to(source)
    guard = tmp / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(
        "import sys\n"
        f"sys.path[:] = [p for p in sys.path if 'site-packages' not in p] + [{str(site)!r}]\n"
        "sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, '__module__', '').startswith('__editable__')]\n"
        "sys.path_hooks[:] = [h for h in sys.path_hooks if not getattr(h, '__module__', '').startswith('__editable__')]\n"
        "sys.path_importer_cache.clear()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AIP_", "SM_", "SAGEMAKER_", "AZUREML_"))}
    return {**env, "PYTHONPATH": str(guard), "PYTHONDONTWRITEBYTECODE": "1", "MLKIT_PARENT_PID": str(os.getpid()),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@contextlib.contextmanager
def server(cmd: list[str], *, cwd: Path, env: dict[str, str], port: int, health: str, timeout: float = 60.0):
    """Run a server in its own process group until its health route answers; always stop the whole group."""
    log = tempfile.NamedTemporaryFile(prefix="mlkit-bundle-", suffix=".log", delete=False)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the server exited ({proc.returncode}):\n{Path(log.name).read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + health, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer on {health} in {timeout} s:\n{Path(log.name).read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process_group(proc)
        log.close()
        os.unlink(log.name)
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):  # nothing of the group is left behind
        os.killpg(proc.pid, 0)


def no_secret(response_text: str) -> None:
    assert SECRET not in response_text and "Traceback" not in response_text


# --------------------------------------------------------------------------- the API


def test_public_names_are_declared():
    names = ["TARGETS", "BUNDLE_RUNTIMES", "LAMBDA_UNZIPPED_LIMIT", "BundleReport", "bundle", "dependency_sizes",
             "add_arguments", "run_from_args"]
    assert set(names) <= set(cloud.__all__)
    assert all(hasattr(cloud, name) for name in names)
    assert cloud.TARGETS == ("sagemaker", "vertex", "azure", "lambda")
    assert cloud.LAMBDA_UNZIPPED_LIMIT == 250 * 2**20


@pytest.mark.parametrize("target, expected", [
    ("sagemaker", {"Dockerfile", "serve", "requirements.txt", "README.md", "example_request.json",
                   "mlkit/cli.py", "model/manifest.json", "model/model.skops"}),
    ("vertex", {"Dockerfile", "requirements.txt", "README.md", "example_request.json", "mlkit/serving/app.py",
                "model/manifest.json"}),
    ("azure", {"src/score.py", "src/mlkit/serving/model.py", "environment.yml", "deployment.yml", "README.md",
               "example_request.json", "model/manifest.json"}),
    ("lambda", {"handler.py", "bundle.json", "requirements.txt", "README.md", "example_event.json",
                "model/manifest.json", "model/model.onnx"}),
])
def test_each_bundle_holds_its_entry_point_model_and_readme(bundles, target, expected):
    report = bundles(target)
    assert expected <= set(report.files)
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in report.files)
    assert report.size_bytes == sum((report.path / f).stat().st_size for f in report.files)
    packaging.verify_manifest(report.path / "model")  # the copy is the verified model, byte for byte
    readme = (report.path / "README.md").read_text()
    assert readme.startswith("# ") and "## Size" in readme and "@@" not in readme and "mlkit never runs them" in readme
    assert report.requirements and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[^=\s]+", r) for r in report.requirements)
    assert str(report).startswith(f"{target} bundle (runtime sklearn) in {report.path}")


def test_readmes_give_each_platforms_build_and_deploy_commands(bundles):
    commands = {"sagemaker": ["docker build", "aws ecr", "aws sagemaker create-endpoint"],
                "vertex": ["docker push", "gcloud ai models upload", "gcloud ai endpoints deploy-model"],
                "azure": ["az ml online-endpoint create", "az ml online-deployment create --file deployment.yml"],
                "lambda": ["pip install -r requirements.txt --target package", "aws lambda create-function",
                           "--handler handler.handler"]}
    for target, expected in commands.items():
        readme = (bundles(target).path / "README.md").read_text()
        assert all(command in readme for command in expected), target


def test_sagemaker_dockerfile_runs_serve_on_8080(bundles):
    report = bundles("sagemaker")
    text = (report.path / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+-slim$", text, re.M)
    assert "RUN pip install --no-cache-dir -r requirements.txt" in text
    assert re.search(r"^COPY model/ ", text, re.M) and re.search(r"^COPY mlkit/ ", text, re.M)
    assert re.findall(r"^EXPOSE (\d+)$", text, re.M) == ["8080"]
    assert json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1)) == ["serve"]
    serve = report.path / "serve"
    assert os.access(serve, os.X_OK) and serve.read_text().startswith("#!/usr/bin/env python3\n")
    script = serve.read_text()
    assert all(name in script for name in ("SM_MODEL_DIR", "/opt/ml/model", "SAGEMAKER_BIND_TO_PORT", '"8080"', "0.0.0.0"))


def test_vertex_dockerfile_cmd_runs_mlkit_serve_on_aip_http_port(bundles):
    text = (bundles("vertex").path / "Dockerfile").read_text()
    assert re.findall(r"^EXPOSE (\d+)$", text, re.M) == ["8080"]
    assert "AIP_HTTP_PORT=8080" in text and "AIP_HEALTH_ROUTE" in text and "AIP_PREDICT_ROUTE" in text
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    assert cmd[:3] == ["python", "-m", "mlkit.serving"]
    assert cmd[cmd.index("--model") + 1] == "/opt/program/model" and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    readme = (bundles("vertex").path / "README.md").read_text()
    assert "AIP_STORAGE_URI" in readme and "1.5 MB" in readme


def test_azure_deployment_points_at_the_model_folder_and_score_py(bundles):
    report = bundles("azure")
    deployment = (report.path / "deployment.yml").read_text()
    assert "path: ./model" in deployment and "code: ./src" in deployment and "scoring_script: score.py" in deployment
    assert "conda_file: ./environment.yml" in deployment
    environment = (report.path / "environment.yml").read_text()
    assert "azureml-inference-server-http" in environment
    assert all(f"- {pin}" in environment for pin in report.requirements)


# --------------------------------------------------------------------------- entry points, run locally


def test_sagemaker_serve_script_answers_ping_and_invocations(fraud, bundles, tmp_path):
    report = bundles("sagemaker")
    port = free_port()
    env = {**only_requirements(report, tmp_path), "SM_MODEL_DIR": str(report.path / "model"),
           "SAGEMAKER_BIND_TO_PORT": str(port), "MLKIT_HOST": "127.0.0.1"}
    # SageMaker runs `docker run <image> serve`: the ENTRYPOINT `serve` with the argument `serve`.
    with server([str(report.path / "serve"), "serve"], cwd=tmp_path, env=env, port=port, health="/ping") as url:
        start = time.monotonic()
        assert httpx.get(f"{url}/ping").status_code == 200
        assert time.monotonic() - start < 2.0
        csv = httpx.post(f"{url}/invocations", content=fraud.rows.to_csv(index=False),
                         headers={"Content-Type": "text/csv"})
        assert csv.status_code == 200 and csv.json() == {"predictions": fraud.expected}
        split = httpx.post(f"{url}/invocations", json={"dataframe_split": {"columns": fraud.columns, "data": fraud.data}})
        assert split.json() == {"predictions": fraud.expected}
        example = json.loads((report.path / "example_request.json").read_text())
        assert httpx.post(f"{url}/invocations", json=example).status_code == 200
        bad = httpx.post(f"{url}/invocations", json={"dataframe_records": [{**fraud.records[0], "amount": SECRET}]})
        assert bad.status_code == 400 and "'amount'" in bad.json()["message"]
        no_secret(bad.text)


def test_vertex_cmd_answers_aip_routes_and_refuses_large_bodies(fraud, bundles, tmp_path):
    report = bundles("vertex", "onnx")
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", (report.path / "Dockerfile").read_text(), re.M).group(1))
    local = {"python": sys.executable, "/opt/program/model": str(report.path / "model"), "0.0.0.0": "127.0.0.1"}
    port = free_port()
    env = {**only_requirements(report, tmp_path), "AIP_HTTP_PORT": str(port),
           "AIP_HEALTH_ROUTE": VERTEX_HEALTH, "AIP_PREDICT_ROUTE": VERTEX_PREDICT}
    # The image's WORKDIR is the bundle's root: `python -m mlkit.serving` finds its copy of mlkit there.
    with server([local.get(a, a) for a in cmd], cwd=report.path, env=env, port=port, health=VERTEX_HEALTH) as url:
        answer = httpx.post(f"{url}{VERTEX_PREDICT}", json={"instances": fraud.records, "parameters": {}})
        assert answer.status_code == 200 and answer.json() == {"predictions": fraud.expected}
        rows = httpx.post(f"{url}{VERTEX_PREDICT}", json={"instances": fraud.data})
        assert rows.json() == {"predictions": fraud.expected}
        big = json.dumps({"instances": [fraud.records[0]] * 12_000}).encode()
        assert len(big) > 1.5 * 2**20
        refused = httpx.post(f"{url}{VERTEX_PREDICT}", content=big, headers={"Content-Type": "application/json"})
        assert refused.status_code == 413 and "1.5 MB" in refused.json()["error"]
        bad = httpx.post(f"{url}{VERTEX_PREDICT}", json={"instances": [fraud.records[0], {**fraud.records[1], "amount": SECRET}]})
        assert bad.status_code == 400 and "'amount'" in bad.json()["error"] and "row 1" in bad.json()["error"]
        no_secret(bad.text)


@pytest.fixture
def score(bundles, monkeypatch):
    """The Azure bundle's score.py, imported as Azure ML's inference server does, after init()."""
    report = bundles("azure")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(report.path))
    monkeypatch.setattr(sys, "path", list(sys.path))  # score.py puts its folder first; undone afterwards
    spec = importlib.util.spec_from_file_location("mlkit_bundle_score", report.path / "src" / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.init()
    return module


def test_azure_score_run_takes_both_input_shapes(fraud, score):
    assert score.run(json.dumps({"input_data": {"columns": fraud.columns, "data": fraud.data}})) == fraud.expected
    assert score.run(json.dumps({"data": fraud.records})) == fraud.expected
    assert score.run(json.dumps({"data": fraud.data}).encode()) == fraud.expected  # rows in signature order, bytes


@pytest.mark.parametrize("body, status, says", [
    ("{not json", 400, "not valid JSON"),
    ("", 400, "empty"),
    (json.dumps({"rows": [1]}), 400, "input_data"),
    (json.dumps({"data": [{"amount": SECRET}]}), 400, "Missing column"),
    (json.dumps({"input_data": {"columns": ["amount"], "data": [[SECRET]]}}), 400, "Missing column"),
    ("{\"data\": [{\"amount\": NaN}]}", 400, "NaN"),
])
def test_azure_score_run_answers_bad_input_with_a_status_and_no_values(fraud, score, body, status, says):
    answer = score.run(body)
    assert answer == {"error": answer["error"], "status": status}
    assert says in answer["error"]
    no_secret(json.dumps(answer))


def test_azure_score_run_names_the_column_of_a_wrong_value(fraud, score):
    answer = score.run(json.dumps({"data": [fraud.records[0], {**fraud.records[1], "amount": SECRET}]}))
    assert answer["status"] == 400 and "'amount'" in answer["error"] and "row 1" in answer["error"]
    no_secret(json.dumps(answer))


def test_azure_init_says_what_to_set(bundles, monkeypatch):
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("mlkit_bundle_score_unset", bundles("azure").path / "src" / "score.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(RuntimeError, match="AZUREML_MODEL_DIR"):
        module.init()


# --------------------------------------------------------------------------- Lambda


@pytest.fixture(scope="module")
def handlers(bundles):
    """The Lambda bundles' handler modules, one per runtime, imported as Lambda does (loading the model)."""
    loaded = {}
    for runtime in cloud.BUNDLE_RUNTIMES:
        spec = importlib.util.spec_from_file_location(f"mlkit_bundle_handler_{runtime}",
                                                      bundles("lambda", runtime).path / "handler.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        loaded[runtime] = module
    return loaded


def rest_v1(body: str, *, b64: bool = False, method: str = "POST", headers: dict | None = None) -> dict:
    """An API Gateway REST API proxy event (payload format 1.0)."""
    return {
        "resource": "/predict", "path": "/predict", "httpMethod": method,
        "headers": {"Content-Type": "application/json"} if headers is None else headers,
        "multiValueHeaders": {}, "queryStringParameters": None, "pathParameters": None,
        "requestContext": {"resourcePath": "/predict", "httpMethod": method, "stage": "prod"},
        "body": base64.b64encode(body.encode()).decode() if b64 else body, "isBase64Encoded": b64,
    }


def http_v2(body: str, *, b64: bool = False, method: str = "POST", headers: dict | None = None) -> dict:
    """An API Gateway HTTP API proxy event (payload format 2.0)."""
    return {
        "version": "2.0", "routeKey": f"{method} /predict", "rawPath": "/predict", "rawQueryString": "",
        "headers": {"content-type": "application/json"} if headers is None else headers,
        "requestContext": {"http": {"method": method, "path": "/predict"}, "stage": "$default"},
        "body": base64.b64encode(body.encode()).decode() if b64 else body, "isBase64Encoded": b64,
    }


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
@pytest.mark.parametrize("event", [rest_v1, http_v2])
@pytest.mark.parametrize("b64", [False, True])
def test_lambda_handler_scores_api_gateway_events(fraud, handlers, runtime, event, b64):
    body = json.dumps({"dataframe_split": {"columns": fraud.columns, "data": fraud.data}})
    answer = handlers[runtime].handler(event(body, b64=b64), None)
    assert answer["statusCode"] == 200 and answer["headers"]["Content-Type"] == "application/json"
    assert json.loads(answer["body"]) == {"predictions": fraud.expected}


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
def test_lambda_handler_takes_mlflows_other_formats(fraud, handlers, runtime):
    handler = handlers[runtime].handler
    columns = {c: [r[c] for r in fraud.records] for c in fraud.columns}
    for payload in ({"dataframe_records": fraud.records}, {"instances": fraud.records}, {"inputs": columns},
                    {"instances": fraud.data}):
        answer = handler(http_v2(json.dumps(payload)), None)
        assert json.loads(answer["body"]) == {"predictions": fraud.expected}, list(payload)


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
@pytest.mark.parametrize("event, status, says", [
    (http_v2("{\"dataframe_records\": [ {"), 400, "not valid JSON"),
    (rest_v1("{\"dataframe_records\": [{\"amount\": \"" + SECRET + "\"}]}"), 400, "Missing column(s) 'hour'"),
    (http_v2("{\"instances\": [{\"amount\": 1, \"hour\": NaN}]}"), 400, "NaN"),
    (http_v2(json.dumps({"records": [SECRET]})), 400, "exactly one of the keys"),
    (http_v2(""), 400, "empty"),
    (dict(http_v2("{}"), body="%%%" + SECRET, isBase64Encoded=True), 400, "base64"),
    (http_v2("{}", headers={"content-type": "text/csv"}), 415, "application/json"),
    (http_v2("{}", method="PUT"), 405, "POST"),
    ("not an event", 400, "API Gateway"),
])
def test_lambda_handler_answers_bad_input_with_4xx_and_no_values(handlers, runtime, event, status, says):
    answer = handlers[runtime].handler(event, None)
    assert answer["statusCode"] == status
    assert says in json.loads(answer["body"])["message"]
    no_secret(answer["body"])


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
def test_lambda_handler_names_the_column_and_row_of_a_wrong_value(fraud, handlers, runtime):
    records = [fraud.records[0], {**fraud.records[1], "amount": SECRET}]
    answer = handlers[runtime].handler(rest_v1(json.dumps({"dataframe_records": records})), None)
    message = json.loads(answer["body"])["message"]
    assert answer["statusCode"] == 400 and "'amount'" in message and "row 1" in message
    no_secret(answer["body"])
    without = {k: v for k, v in fraud.records[2].items() if k != "distance_from_home_km"}
    missing = handlers[runtime].handler(rest_v1(json.dumps({"dataframe_records": [without]})), None)
    assert missing["statusCode"] == 400
    assert "Missing column(s) 'distance_from_home_km'" in json.loads(missing["body"])["message"]


PROBES = {  # values that a JSON request may put in a column, sane and not
    "amount": [12, 12.5, "12", " 12 ", "", "twelve", "nan", "inf", True, None, [], {}, 10**400],
    "channel": ["online", "", 7, 7.5, True, None, [], {}, "\ud800"],
}


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
@pytest.mark.parametrize("column, value", [(c, v) for c, values in PROBES.items() for v in values],
                         ids=lambda v: repr(v)[:12])
def test_lambda_handler_checks_values_as_the_server_does(fraud, bundles, handlers, runtime, column, value):
    """handler.py re-implements mlkit's request checks without pandas: it must accept and refuse the same values."""
    from mlkit.serving.schema import InputError, Schema

    schema = Schema.from_signature(json.loads((bundles("lambda").path / "bundle.json").read_text())["columns"])
    record = {**fraud.records[0], column: value}
    answer = handlers[runtime].handler(http_v2(json.dumps({"dataframe_records": [record]})), None)
    try:
        batch = schema.from_records([record])
    except InputError:
        assert answer["statusCode"] == 400, answer["body"]
        return
    assert answer["statusCode"] == 200, answer["body"]
    assert json.loads(answer["body"]) == {"predictions": fraud.model.predict(batch.frame()).tolist()}


def test_lambda_handler_answers_a_health_check(handlers):
    answer = handlers["onnx"].handler(http_v2("", method="GET"), None)
    assert answer["statusCode"] == 200 and json.loads(answer["body"])["status"] == "ready"


@pytest.mark.parametrize("runtime", ["sklearn", "onnx"])
def test_lambda_handler_needs_only_its_requirements(fraud, bundles, runtime, tmp_path):
    """Cold start and one request in a fresh interpreter that sees only requirements.txt's closure."""
    report = bundles("lambda", runtime)
    event = http_v2(json.dumps({"dataframe_records": fraud.records}))
    code = (
        "import json, sys\n"
        "import handler\n"
        f"answer = handler.handler({event!r}, None)\n"
        "heavy = sorted(m for m in ('pandas', 'sklearn', 'scipy', 'mlkit', 'mlflow') if m in sys.modules)\n"
        "print(json.dumps({'answer': answer, 'heavy': heavy}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=report.path, env=only_requirements(report, tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert json.loads(out["answer"]["body"]) == {"predictions": fraud.expected}
    if runtime == "onnx":
        assert out["heavy"] == []  # onnxruntime + numpy only: no pandas, scikit-learn or mlkit
    else:
        assert "mlkit" not in out["heavy"] and "mlflow" not in out["heavy"]


def test_lambda_size_check_measures_and_compares_runtimes(bundles):
    sklearn, onnx = bundles("lambda", "sklearn"), bundles("lambda", "onnx")
    for report in (sklearn, onnx):
        assert report.size_bytes > 0 and report.dependency_bytes > 0 and isinstance(report.fits, bool)
        assert report.dependency_bytes == sum(cloud.dependency_sizes(report.requirements).values())
        assert report.fits == (report.total_bytes <= cloud.LAMBDA_UNZIPPED_LIMIT)
        assert "unzipped total" in str(report)
    assert onnx.dependency_bytes < sklearn.dependency_bytes
    assert {r.split("==")[0] for r in onnx.requirements} == {"numpy", "onnxruntime"}
    if not sklearn.fits:
        assert "Does not fit" in sklearn.notes[0] and "runtime='onnx'" in sklearn.notes[0]
        assert "does NOT fit" in (sklearn.path / "README.md").read_text()
    for report in (bundles("sagemaker"), bundles("azure")):
        assert report.fits is None and "unzipped total" not in str(report)


def test_dependency_sizes_are_the_installed_record_files():
    sizes = cloud.dependency_sizes(["onnxruntime==0.0.1"])  # the version is ignored: what is installed is measured
    assert {"onnxruntime", "numpy"} <= set(sizes) and "sympy" not in sizes  # extras are left out
    dist = metadata.distribution("numpy")
    assert sizes["numpy"] == sum(os.path.getsize(f.locate()) for f in dist.files if os.path.exists(f.locate()))
    assert list(sizes.values()) == sorted(sizes.values(), reverse=True)
    assert cloud.dependency_sizes(["surely-not-installed-dist"]) == {}


# --------------------------------------------------------------------------- sources and bad input


def test_a_registered_model_is_bundled_from_its_uri(fraud, tmp_path):
    registered = registry.log_model(fraud.folder, name="bundle-fraud", alias="champion")
    report = cloud.bundle("models:/bundle-fraud@champion", "lambda", tmp_path / "b", runtime="onnx")
    assert (report.path / "model" / "manifest.json").read_bytes() == (fraud.folder / "manifest.json").read_bytes()
    by_version = cloud.bundle(f"models:/bundle-fraud/{registered.version}", "azure", tmp_path / "v")
    assert "src/score.py" in by_version.files


@pytest.mark.parametrize("call, error, says", [
    (lambda m, out: cloud.bundle(m, "heroku", out), ParameterError, "choose one of sagemaker, vertex, azure, lambda"),
    (lambda m, out: cloud.bundle(m, "lambda", out, runtime="tensorflow"), ParameterError, "choose one of sklearn, onnx"),
    (lambda m, out: cloud.bundle(m.parent / "nowhere", "lambda", out), ParameterError, "neither a models:/ URI"),
])
def test_bad_arguments_say_what_to_pass(fraud, tmp_path, call, error, says):
    with pytest.raises(error, match=re.escape(says)):
        call(fraud.folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_existing_non_empty_folder_is_never_overwritten(fraud, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ParameterError, match="already exists and is not empty"):
        cloud.bundle(fraud.folder, "lambda", out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ParameterError, match="is a file"):
        cloud.bundle(fraud.folder, "lambda", tmp_path / "file")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cloud.bundle(fraud.folder, "lambda", empty, runtime="onnx").path == empty


def test_a_folder_without_manifest_is_refused(fraud, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(DataError, match="no manifest.json.*mlkit.registry.package"):
        cloud.bundle(plain, "sagemaker", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_tampered_model_is_refused_and_nothing_is_left(fraud, tmp_path):
    import shutil

    tampered = tmp_path / "tampered"
    shutil.copytree(fraud.folder, tampered)
    with (tampered / "model_card.json").open("a") as handle:
        handle.write(" ")
    with pytest.raises(packaging.IntegrityError, match="model_card.json"):
        cloud.bundle(tampered, "vertex", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_runtime_onnx_needs_the_onnx_model(fraud, tmp_path):
    import shutil

    no_onnx = tmp_path / "no-onnx"
    shutil.copytree(fraud.folder, no_onnx)
    for name in ("model.onnx", "onnx_parity.json"):
        (no_onnx / name).unlink()
    packaging.write_manifest(no_onnx)
    with pytest.raises(MlkitError, match=r"onnx=True"):
        cloud.bundle(no_onnx, "lambda", tmp_path / "out", runtime="onnx")
    assert not (tmp_path / "out").exists()
    report = cloud.bundle(no_onnx, "lambda", tmp_path / "sk")  # the scikit-learn runtime still works
    if not report.fits:
        assert "registry.package(..., onnx=True)" in report.notes[0]


def test_command_line_options_map_to_bundle(fraud, tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser(prog="mlkit bundle")
    cloud.add_arguments(parser)
    args = parser.parse_args(["--model", str(fraud.folder), "--target", "lambda", "--out", str(tmp_path / "b"),
                              "--runtime", "onnx"])
    assert cloud.run_from_args(args) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("lambda bundle (runtime onnx)") and "unzipped total" in printed
    assert parser.parse_args(["--model", "m", "--target", "azure", "--out", "o"]).runtime is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--model", "m", "--target", "heroku", "--out", "o"])


def test_mlkit_bundle_is_wired_into_the_command_line(fraud, tmp_path, capsys):
    from mlkit import cli

    assert cli.main(["bundle", "--model", str(fraud.folder if hasattr(fraud, "folder") else fraud["folder"]),
                     "--target", "azure", "--out", str(tmp_path / "azure")]) == 0
    assert (tmp_path / "azure" / "src" / "score.py").is_file()
    assert cli.main(["bundle", "--model", str(tmp_path / "nowhere"), "--target", "azure",
                     "--out", str(tmp_path / "b")]) == 2
    assert "error:" in capsys.readouterr().err
