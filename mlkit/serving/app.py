"""The FastAPI app: one router per serving contract, all over one loaded model.

| contract | routes |
|---|---|
| MLflow scoring (and SageMaker, which uses the same routes) | ``GET /ping``, ``GET /health``, ``GET /version``, ``POST /invocations`` |
| Vertex AI | ``GET $AIP_HEALTH_ROUTE``, ``POST $AIP_PREDICT_ROUTE`` (defaults ``/vertex/health``, ``/vertex/predict``) |
| Azure ML | ``GET /``, ``POST /score`` |
| Open Inference Protocol V2 | ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{m}``, ``/v2/models/{m}/ready``, ``POST /v2/models/{m}/infer`` |
| operations | ``/docs`` (OpenAPI), ``/metrics`` (Prometheus), ``POST /feedback`` (with a log) |
| rollout | ``GET /shadow``, ``GET /canary`` (with a shadow or canary model: :mod:`mlkit.serving.rollout`) |

Every error answer is a 4xx in the contract's own error shape for bad input. No answer
repeats a value from the request or carries a traceback; an unexpected failure is a 500
with a generic message, and the details go to the server's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import time
import uuid
from typing import Any, Callable

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from mlkit.errors import ParameterError
from mlkit.serving import rollout
from mlkit.serving.batching import MicroBatcher
from mlkit.serving.model import ServedModel
from mlkit.serving.rollout import BackgroundScorer, CanaryMonitor, Guardrails
from mlkit.serving.schema import Batch, InputError, finite_json

__all__ = ["create_app", "LIMITS", "MLFLOW_KEYS"]

log = logging.getLogger("mlkit.serving")

MB = 1024 * 1024
LIMITS = {
    "invocations": 6 * MB,  # SageMaker real-time endpoints: 6 MB per request
    "vertex": int(1.5 * MB),  # Vertex AI online prediction: 1.5 MB per request
    "score": 6 * MB,
    "v2": 6 * MB,
}
"""Largest request body per contract, in bytes; larger bodies get 413."""

MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_JSON = "application/json"
_CSV = "text/csv"
_PARQUET = "application/vnd.apache.parquet"


# --------------------------------------------------------------------------- metrics


class _Metrics:
    """Prometheus metrics on a private registry (several apps can live in one process, as in tests)."""

    def __init__(self, served: ServedModel) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("mlkit_requests_total", "Requests answered, by contract and status.",
                                ["contract", "status"], registry=self.registry)
        self.errors = Counter("mlkit_request_errors_total", "Error answers, by contract and status.",
                              ["contract", "status"], registry=self.registry)
        self.latency = Histogram("mlkit_request_latency_seconds", "Time to answer a scoring request.", ["contract"],
                                 buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
                                 registry=self.registry)
        self.rows = Counter("mlkit_predicted_rows_total", "Rows scored.", ["contract"], registry=self.registry)
        self.logged = Counter("mlkit_logged_rows_total", "Rows written to the prediction log.", registry=self.registry)
        self.log_errors = Counter("mlkit_log_errors_total", "Requests refused (503) because the prediction log "
                                  "could not record them.", registry=self.registry)
        self.merged = Histogram("mlkit_requests_per_model_call", "Requests scored together in one model call "
                                "(micro-batching).", buckets=(1, 2, 4, 8, 16, 32, 64), registry=self.registry)
        info = Gauge("mlkit_model_info", "The model being served (value 1).", ["name", "version", "runtime"],
                     registry=self.registry)
        info.labels(served.name, served.version, served.runtime).set(1)

    def observe(self, contract: str, status: int, seconds: float, rows: int) -> None:
        self.requests.labels(contract, str(status)).inc()
        if status >= 400:
            self.errors.labels(contract, str(status)).inc()
        self.latency.labels(contract).observe(seconds)
        if rows:
            self.rows.labels(contract).inc(rows)


# --------------------------------------------------------------------------- request helpers


async def _body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it is larger than ``limit`` (without reading it all)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise InputError(_too_large(limit), status=413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InputError(_too_large(limit), status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> str:
    return f"The request body is larger than this endpoint's limit of {limit / MB:g} MB; send fewer rows per request."


def _json(raw: bytes) -> Any:
    if not raw.strip():
        raise InputError("The request body is empty; send a JSON object.")
    try:
        value = json.loads(raw)  # bytes: a UTF-8 BOM, UTF-16 and UTF-32 are recognised, as MLflow does
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InputError("The request body is not valid JSON (or is nested too deeply); check quotes, commas and brackets.") from None
    if not finite_json(value):
        raise InputError("The request holds NaN or Infinity, which are not JSON numbers; send null or a finite number.")
    return value


_SCHEMA = "INVALID_PARAMETER_VALUE"
_LLM_KEYS = ("input", "prompt", "messages")


def _content_type(request: Request) -> str:
    """The media type as MLflow's scoring server reads it: exact, with at most ``charset=utf-8``."""
    header = request.headers.get("content-type")
    if not header:
        raise InputError("The request has no Content-Type; send application/json, text/csv or "
                         "application/vnd.apache.parquet.", status=415)
    media, *options = [part.strip() for part in header.split(";")]
    for option in options:
        key, _, value = option.partition("=")
        if key.strip().lower() != "charset" or value.strip().lower() != "utf-8":
            raise InputError("Only charset=utf-8 may follow the content type; send application/json, text/csv or "
                             "application/vnd.apache.parquet.", status=415)
    if media not in (_JSON, _CSV, _PARQUET):
        raise InputError("This content type is not supported; send application/json, text/csv or "
                         "application/vnd.apache.parquet.", status=415)
    return media


def _records_or_columns(served: ServedModel, key: str, data: Any) -> Batch:
    """``instances`` and ``inputs``: a list of row objects, or an object of columns."""
    schema = served.schema
    if isinstance(data, dict):
        if not data:
            return schema.from_columns({})
        if all(isinstance(v, list) for v in data.values()):
            return schema.from_columns(data)
        return schema.from_records([data])  # one row given as {column: value}
    if isinstance(data, list):
        if not data:
            return schema.from_records([])
        if all(isinstance(r, dict) for r in data):
            if key == "instances" and len({frozenset(r) for r in data}) > 1:
                raise InputError("Every instance must name the same columns; one row lacks a column the others have.")
            return schema.from_records(data)
        raise InputError(f"{key} must be a list of objects ({{column: value}}) or an object of columns ({{column: [values]}}); "
                         "rows given as lists need dataframe_split, which names the columns.")
    raise InputError(f"{key} must be a list of objects or an object of columns.", code=_SCHEMA)


def _mlflow_batch(served: ServedModel, payload: Any) -> Batch:
    """MLflow's JSON formats: exactly one of the four keys (``params`` is accepted and ignored)."""
    if not isinstance(payload, dict):
        raise InputError(
            f"The request must be a JSON object with exactly one of the keys {', '.join(MLFLOW_KEYS)} (and optionally params)."
        )
    if any(k in payload for k in _LLM_KEYS):
        raise InputError(f"{', '.join(k for k in _LLM_KEYS if k in payload)}: MLflow's fields for language models; "
                         f"this model takes table rows in one of {', '.join(MLFLOW_KEYS)}.", code=_SCHEMA)
    keys = [k for k in MLFLOW_KEYS if k in payload]
    if len(keys) != 1:
        raise InputError(
            f"The request must hold exactly one of the keys {', '.join(MLFLOW_KEYS)}; "
            f"it holds {len(keys) or 'none'}{': ' + ', '.join(keys) if keys else ''}."
        )
    key, data = keys[0], payload[keys[0]]
    schema = served.schema
    if key == "dataframe_split":
        if not isinstance(data, dict) or "data" not in data:
            raise InputError("dataframe_split must be an object with 'columns' and 'data' (and optionally 'index').")
        unknown = set(data) - {"columns", "data", "index"}
        if unknown:
            raise InputError("dataframe_split takes only 'columns', 'data' and 'index'.")
        rows = data["data"]
        if not isinstance(rows, list) or any(not isinstance(r, list) for r in rows):
            raise InputError("dataframe_split's data must be a list of rows, each a list of values.")
        index = data.get("index")
        if index is not None and (not isinstance(index, list) or len(index) != len(rows)):
            raise InputError("dataframe_split's index must give one label per row of data.")
        if "columns" not in data:
            raise InputError(f"dataframe_split must name its columns; the model needs: {schema.describe()}.", code=_SCHEMA)
        return schema.from_rows(rows, data["columns"])
    if key == "dataframe_records":
        if not isinstance(data, list):
            raise InputError("dataframe_records must be a list of objects, one per row.")
        return schema.from_records(data)
    return _records_or_columns(served, key, data)


def _params(value: Any) -> dict | None:
    """Request parameters: a JSON object, or absent."""
    if value is None or isinstance(value, dict):
        return value
    raise InputError("parameters must be a JSON object of names and values.")


def _parquet_batch(served: ServedModel, raw: bytes) -> Batch:
    import pandas as pd

    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except Exception:  # pyarrow raises several types for a broken file
        raise InputError("The Parquet body could not be read; send a complete Parquet file.") from None
    return served.schema.from_frame(frame, strict=True)


def _csv_batch(served: ServedModel, raw: bytes) -> Batch:
    import pandas as pd

    if not raw.strip():
        raise InputError("The CSV body is empty; send a header line and at least one row.")
    try:
        frame = pd.read_csv(io.BytesIO(raw))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        raise InputError("The CSV body could not be parsed; send a header line, then one comma-separated line per row.") from None
    return served.schema.from_frame(frame)


# --------------------------------------------------------------------------- the prediction log

_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")


def _request_id(request: Request) -> str:
    """The client's ``X-Request-ID`` when it is a plain id (at most 100 of ``A-Z a-z 0-9 . _ : -``), else a new one."""
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 100 and set(given) <= _ID_CHARS:
        return given
    return uuid.uuid4().hex


def _log_records(batch: Batch, predictions: list, scores: list | None, ids: list[str], served: ServedModel,
                 served_by: str) -> list[dict]:
    """One prediction-log record per row (for a logger without ``log_served``): features (NaN as null), prediction, score."""
    names = list(batch.columns)
    columns = []
    for name in names:
        values = batch.columns[name]
        if values.dtype.kind == "f":
            values = np.where(np.isnan(values), None, values.astype(object))
        else:
            values = np.where(values == values, values, None)  # NaN in a text column -> null
        columns.append(values.tolist())
    scores = [None] * len(ids) if scores is None else scores
    return [
        {"request_id": rid, "model": served.name, "model_version": served.version, "served_by": served_by,
         "features": dict(zip(names, row)), "prediction": prediction, "score": score}
        for rid, row, prediction, score in zip(ids, zip(*columns), predictions, scores)
    ]


class _LogSink:
    """Hands the rows of the requests answered in one turn of the event loop to the logger together.

    The micro-batcher answers all the requests of one model call in the same turn of the loop;
    their rows go to :meth:`~mlkit.monitoring.store.PredictionLogger.log_served` as one group
    (one queue operation, one wake-up of the writer, one wake-up of the loop once they are
    committed) instead of one of each per request, and the writer builds the rows (JSON and
    all) off the request path. Each request is still committed or refused on its own, and
    :meth:`write` returns only once its rows are committed. A logger without ``log_served``
    (a stand-in in a test) gets each request's records through ``alog``.
    """

    def __init__(self, logger: Any, served: ServedModel, served_by: str) -> None:
        self.logger = logger
        self.served, self.served_by = served, served_by
        self.fast = callable(getattr(logger, "log_served", None))
        self.timeout = float(getattr(logger, "timeout", 10.0))
        self._pending: list | None = None

    async def write(self, batch: Batch, predictions: list, scores: list | None, ids: list[str]) -> None:
        """Return once the rows are committed; raise if they were not."""
        if not self.fast:
            await self.logger.alog(_log_records(batch, predictions, scores, ids, self.served, self.served_by))
            return
        from mlkit.monitoring.store import ServedRows

        part = ServedRows(ids, batch.columns, predictions, scores, self.served.name, self.served.version,
                          self.served_by)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._pending is None:
            self._pending = []
            loop.call_soon(self._submit, loop)  # after the other requests answered in this turn
        self._pending.append((part, future))
        await future

    def _submit(self, loop: asyncio.AbstractEventLoop) -> None:
        pending, self._pending = self._pending or [], None
        try:
            done = self.logger.log_served([part for part, _ in pending])
        except Exception as exc:  # full or closed: every request of the group is refused
            for _, future in pending:
                if not future.done():
                    future.set_exception(exc)
            return

        def settle() -> None:
            timer.cancel()
            try:
                errors = done.result()
            except Exception as exc:  # noqa: BLE001
                errors = [exc] * len(pending)
            for (_, future), error in zip(pending, errors):
                if future.done():  # the client went away
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)

        def expire() -> None:
            for _, future in pending:
                if not future.done():
                    future.set_exception(TimeoutError(f"the prediction log did not commit within {self.timeout:g} s"))

        def wake(_: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                loop.call_soon_threadsafe(settle)

        timer = loop.call_later(self.timeout, expire)
        done.add_done_callback(wake)


def _feedback_labels(payload: Any) -> dict[str, Any]:
    """``{"labels": {id: label, ...}}`` or ``{"labels": [{"request_id": id, "label": label}, ...]}``."""
    labels = payload.get("labels") if isinstance(payload, dict) else None
    if isinstance(labels, list) and all(isinstance(r, dict) and isinstance(r.get("request_id"), str) and "label" in r
                                        for r in labels):
        labels = {r["request_id"]: r["label"] for r in labels}
    if not isinstance(labels, dict) or not labels:
        raise InputError('Send {"labels": {"<request id>": <label>, ...}} or {"labels": [{"request_id": "...", '
                         '"label": ...}, ...]}, with at least one label.')
    if any(v is None or isinstance(v, (dict, list)) for v in labels.values()):
        raise InputError("Each label must be a single value (a number, a string or a boolean), not null, a list or an object.")
    return labels


# --------------------------------------------------------------------------- the app


def create_app(served: ServedModel, *, vertex_health: str | None = None, vertex_predict: str | None = None,
               micro_batch: bool = True, max_batch_rows: int = 256, logger: Any = None,
               shadow: ServedModel | None = None, canary: ServedModel | None = None,
               canary_percent: float = rollout.DEFAULT_PERCENT, guardrails: Guardrails | None = None) -> FastAPI:
    """The server for one model, with every contract's routes (see the module docstring).

    With ``micro_batch`` (the default), requests that arrive together are scored in one
    model call of at most ``max_batch_rows`` rows (:mod:`mlkit.serving.batching`).

    With ``logger`` (a :class:`mlkit.monitoring.store.PredictionLogger`), every scored row
    is written to the prediction log before its answer is sent, and ``POST /feedback``
    attaches true outcomes to logged predictions by request id. The answer carries the id
    in its ``X-Request-ID`` header (the client's own, if it sent a valid one); row ``i`` of
    a request of several rows is logged as ``<id>-<i>``. Each row is logged with its score
    (a classifier's positive-class or top-class probability, from the same model call as the
    answer: :meth:`~mlkit.serving.model.ServedModel.predict_with_scores`; null for a
    regressor); answers are unchanged. The server closes the logger (flushing it) when it stops.

    With ``shadow`` (a second :class:`~mlkit.serving.model.ServedModel`; needs ``logger``),
    every answered request is scored again by the shadow in a background thread and its
    predictions are logged with ``served_by="shadow"`` and the same request ids; answers never
    depend on it. With ``canary``, ``canary_percent`` % of the requests (by request id) are
    answered by the canary (header ``X-Served-By: canary``, logged with ``served_by="canary"``),
    the champion scores them too in the background, and the canary is rolled back when one of
    the ``guardrails`` breaks; ``GET /canary`` reports it. See :mod:`mlkit.serving.rollout`.
    A second model whose columns cannot work with the served model's raises
    :class:`~mlkit.errors.MlkitError` here. When the server stops, the background scoring is
    finished before the logger is closed.
    """
    from mlkit import __version__

    if shadow is not None and canary is not None:
        raise ParameterError("A shadow and a canary are two ways of trying a second model; give one of them "
                             "(--shadow or --canary).")
    monitor: CanaryMonitor | None = None
    if shadow is not None:
        if logger is None:
            raise ParameterError("A shadow model's predictions go only to the prediction log, so a shadow needs one: "
                                 "pass logger=PredictionLogger(...) (mlkit serve --shadow turns the log on).")
        rollout.check_compatible(served, shadow, "shadow")
    if canary is not None:
        rollout.check_compatible(served, canary, "canary")
        monitor = CanaryMonitor(served, canary, canary_percent, guardrails)
    background: BackgroundScorer | None = None  # scores requests after their answer is final

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if background is not None:  # score (and log) what is still queued before the log closes
            await asyncio.get_running_loop().run_in_executor(None, background.close)
        if logger is not None:
            logger.close()

    app = FastAPI(
        title=f"mlkit serve: {served.name}",
        version=__version__,
        description=f"Model {served.name!r} version {served.version} ({served.task}, runtime {served.runtime}). "
        f"Input columns: {served.schema.describe()}."
        + (" Predictions are logged; POST /feedback attaches outcomes." if logger is not None else "")
        + (f" Shadow model {shadow.name!r} version {shadow.version} scores every request (GET /shadow)."
           if shadow is not None else "")
        + (f" Canary {canary.name!r} version {canary.version} answers {monitor.percent:g}% of requests "
           f"until a guardrail breaks (GET /canary)." if monitor is not None else ""),
        lifespan=lifespan,
    )
    metrics = _Metrics(served)
    app.state.served, app.state.metrics, app.state.logger = served, metrics, logger
    # Scores (class probabilities) only for the log, from the same model call; without a log, predict() only.
    with_scores = logger is not None

    def scorer(model: ServedModel) -> Callable[[Batch], Any]:
        """The request path's model call: micro-batched, or one call per request."""
        if micro_batch:
            return MicroBatcher(model.predict_with_scores if with_scores else model.predict_batch, max_batch_rows,
                                on_batch=metrics.merged.observe, with_scores=with_scores).predict

        async def score_rows(batch: Batch) -> Any:
            metrics.merged.observe(1)
            if with_scores:
                predictions, scores = model.predict_with_scores(batch)
                return np.asarray(predictions).tolist(), None if scores is None else np.asarray(scores).tolist()
            return model.predict(batch)

        return score_rows

    score_rows = scorer(served)
    served_by = f"mlkit-{served.runtime}"
    sink = _LogSink(logger, served, served_by) if logger is not None else None

    canary_rows = scorer(canary) if canary is not None else None
    canary_sink = _LogSink(logger, canary, "canary") if logger is not None and canary is not None else None
    if shadow is not None:
        background = BackgroundScorer(shadow, served.schema, logger=logger, served_by="shadow",
                                      max_rows=max_batch_rows)
        metrics.registry.register(rollout.ShadowCollector(background, "shadow", "the shadow model"))
    if monitor is not None:  # the champion on the canary's requests: paired predictions for the guardrails
        background = BackgroundScorer(served, served.schema, logger=logger, served_by="shadow",
                                      on_scored=monitor.record_champion, max_rows=max_batch_rows)
        metrics.registry.register(rollout.ShadowCollector(background, "canary_champion",
                                                          "the champion on the canary's requests"))
        metrics.registry.register(rollout.CanaryCollector(monitor))
    app.state.canary, app.state.background = monitor, background
    needs_id = logger is not None or monitor is not None

    async def ask_canary(batch: Batch) -> tuple[Batch, Any] | None:
        """The canary's batch and answer, or None when it failed (counted; the champion answers instead)."""
        try:
            own = rollout.adapt(batch, served.schema, canary.schema)
            result = await canary_rows(own)
            predictions = result[0] if with_scores else result
            if len(predictions) != batch.n or not finite_json(predictions):
                raise ValueError("the canary returned NaN, infinity or the wrong number of predictions")
        except Exception as exc:  # noqa: BLE001  (whatever the canary does, the champion answers)
            monitor.record_failed(batch.n)
            (log.warning if monitor.errors == batch.n else log.debug)(
                "the canary %r failed on a request (%s); the champion answered it", canary.name, type(exc).__name__)
            return None
        return own, result

    async def predict(batch: Batch, request: Request) -> list:
        """Score a batch (by the canary, for its share of requests) and, with a logger, log its rows before answering.

        A shadow, and the champion on a canary's request, score the batch afterwards, in the
        background: nothing they do changes this answer.
        """
        if not needs_id:
            return await score_rows(batch)
        rid = _request_id(request)
        request.state.request_id = rid
        ids = [rid] if batch.n == 1 else [f"{rid}-{i}" for i in range(batch.n)]
        model, write, rows, result = served, sink, batch, None
        if monitor is not None:
            if monitor.routes(rid):
                answer = await ask_canary(batch)
                if answer is not None:
                    model, write = canary, canary_sink
                    rows, result = answer
            request.state.served_by = "canary" if model is canary else "champion"
        if result is None:
            result = await score_rows(batch)
        request.state.answered = model
        if write is None:
            predictions = result
        else:
            predictions, scores = result
            try:
                await write.write(rows, predictions, scores, ids)
            except Exception:  # the database is down or full: no answer goes out unlogged
                log.exception("the prediction log could not record a request")
                metrics.log_errors.inc()
                raise InputError("The prediction log could not record this request, so it was not answered; "
                                 "try again shortly.", status=503, code="TEMPORARILY_UNAVAILABLE") from None
            metrics.logged.inc(batch.n)
        if background is not None and (shadow is not None or model is canary):
            try:  # the answer is final: from here on nothing may change it
                if model is canary:
                    monitor.record_answered(ids, predictions)
                background.submit(batch, ids)
            except Exception:  # noqa: BLE001
                log.exception("handing a request to the background scorer failed")
        return predictions

    def scored(contract: str, error: Callable[[InputError], Response], run: Callable[[], Any]):
        async def handler(request: Request) -> Response:
            start, rows, status = time.perf_counter(), 0, 200
            try:
                body, rows = await run(request)
                response = JSONResponse(body)
                rid = getattr(request.state, "request_id", None)
                if rid is not None:
                    response.headers["X-Request-ID"] = rid
                who = getattr(request.state, "served_by", None)  # with a canary: champion or canary
                if who is not None:
                    response.headers["X-Served-By"] = who
            except InputError as exc:
                status, response = exc.status, error(exc)
            except Exception:  # a bug or a model failure: log it, answer without details
                log.exception("%s request failed", contract)
                status = 500
                response = error(InputError("The model could not score this request; the server's log has the details.",
                                            status=500, code="INTERNAL_ERROR"))
            metrics.observe(contract, status if response.status_code == status else response.status_code,
                            time.perf_counter() - start, rows)
            return response

        return handler

    # ------------------------------------------------------------------ MLflow scoring + SageMaker
    mlflow = APIRouter(tags=["MLflow scoring / SageMaker"])

    def mlflow_error(exc: InputError) -> Response:
        return JSONResponse({"error_code": exc.code, "message": str(exc)}, status_code=exc.status)

    async def invocations(request: Request):
        media = _content_type(request)
        raw = await _body(request, LIMITS["invocations"])
        if media == _CSV:
            batch = _csv_batch(served, raw)
        elif media == _PARQUET:
            batch = _parquet_batch(served, raw)
        else:
            batch = _mlflow_batch(served, _json(raw))
        return {"predictions": await predict(batch, request)}, batch.n

    mlflow.add_api_route("/invocations", scored("mlflow", mlflow_error, invocations), methods=["POST"],
                         summary="Score rows (MLflow's JSON formats or CSV); SageMaker's /invocations")
    for path in ("/ping", "/health"):
        mlflow.add_api_route(path, lambda: Response("\n", media_type=_JSON), methods=["GET"],
                             summary="Liveness (MLflow, SageMaker)")

    def version() -> PlainTextResponse:
        import mlflow as _mlflow

        return Response(_mlflow.__version__, media_type=_JSON)  # MLflow's own: raw text, labelled JSON

    mlflow.add_api_route("/version", version, methods=["GET"], summary="The MLflow version the contract follows")

    # ------------------------------------------------------------------ Vertex AI
    vertex = APIRouter(tags=["Vertex AI"])
    health_route = vertex_health or os.environ.get("AIP_HEALTH_ROUTE") or "/vertex/health"
    predict_route = vertex_predict or os.environ.get("AIP_PREDICT_ROUTE") or "/vertex/predict"

    def vertex_error(exc: InputError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def vertex_predict_(request: Request):
        raw = await _body(request, LIMITS["vertex"])
        payload = _json(raw)
        if not isinstance(payload, dict) or "instances" not in payload:
            raise InputError('The request must be a JSON object {"instances": [...], "parameters": {...}}.')
        instances = payload["instances"]
        if not isinstance(instances, list) or not instances:
            raise InputError("instances must be a non-empty list: one object (or list of values) per row.")
        if all(isinstance(r, dict) for r in instances):
            batch = served.schema.from_records(instances, _params(payload.get("parameters")))
        else:
            batch = served.schema.from_rows(instances, None, _params(payload.get("parameters")))
        return {"predictions": await predict(batch, request)}, batch.n

    vertex.add_api_route(health_route, lambda: JSONResponse({}), methods=["GET"], summary="Vertex AI health check")
    vertex.add_api_route(predict_route, scored("vertex", vertex_error, vertex_predict_), methods=["POST"],
                         summary="Vertex AI prediction: {instances, parameters} -> {predictions}")

    # ------------------------------------------------------------------ Azure ML
    azure = APIRouter(tags=["Azure ML"])

    def azure_error(exc: InputError) -> Response:
        return JSONResponse({"message": str(exc)}, status_code=exc.status)

    async def score(request: Request):
        raw = await _body(request, LIMITS["score"])
        payload = _json(raw)
        if isinstance(payload, dict) and "input_data" in payload:  # MLflow models on Azure ML
            data = payload["input_data"]
            if isinstance(data, dict) and "data" in data:
                batch = served.schema.from_rows(data["data"], data.get("columns"), _params(payload.get("params")))
            else:
                batch = _mlflow_batch(served, {"inputs": data})
        elif isinstance(payload, dict) and "data" in payload:
            data = payload["data"]
            records = isinstance(data, list) and data and all(isinstance(r, dict) for r in data)
            batch = served.schema.from_records(data) if records else served.schema.from_rows(data)
        else:
            raise InputError('The request must be {"input_data": {"columns": [...], "data": [[...]]}} or {"data": [{...}]}.')
        return await predict(batch, request), batch.n

    azure.add_api_route("/", lambda: PlainTextResponse("Healthy"), methods=["GET"], summary="Azure ML liveness")
    azure.add_api_route("/score", scored("azure", azure_error, score), methods=["POST"],
                        summary="Azure ML online endpoint scoring (run()-style)")

    # ------------------------------------------------------------------ Open Inference Protocol V2
    v2 = APIRouter(prefix="/v2", tags=["Open Inference Protocol V2"])
    datatypes = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "string": "BYTES", "boolean": "BOOL"}

    def v2_error(exc: InputError) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    def known(model: str) -> None:
        if model != served.name:
            raise InputError(f"Unknown model {model!r}; this server serves {served.name!r}.", status=404)

    def metadata(model: str) -> Response:
        if model != served.name:
            return v2_error(InputError(f"Unknown model {model!r}; this server serves {served.name!r}.", status=404))
        return JSONResponse({
            "name": served.name, "versions": [served.version], "platform": f"mlkit-{served.runtime}",
            "inputs": [{"name": c.name, "datatype": datatypes[c.type], "shape": [-1]} for c in served.schema.columns],
            "outputs": [{"name": "predictions", "datatype": datatypes.get(served.output_type, "BYTES"), "shape": [-1]}],
        })

    def ready(model: str) -> Response:
        if model != served.name:
            return v2_error(InputError(f"Unknown model {model!r}; this server serves {served.name!r}.", status=404))
        return JSONResponse({"name": served.name, "ready": True})

    async def infer(request: Request):
        known(request.path_params["model"])
        payload = _json(await _body(request, LIMITS["v2"]))
        if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
            raise InputError('The request must be {"inputs": [{"name", "shape", "datatype", "data"}, ...]}, one tensor per column.')
        columns: dict[str, list] = {}
        for tensor in payload["inputs"]:
            if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) or not isinstance(tensor.get("data"), list):
                raise InputError("Each input tensor needs a name, a shape, a datatype and its data (a flat list).")
            shape = tensor.get("shape")
            if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise InputError(f"Input {tensor['name']!r} needs a shape: a list of sizes, e.g. [rows] or [rows, 1].")
            if int(np.prod(shape)) != len(tensor["data"]):
                raise InputError(f"Input {tensor['name']!r}: its shape does not match the number of values in data.")
            columns[tensor["name"]] = tensor["data"]
        batch = served.schema.from_columns(columns, _params(payload.get("parameters")))
        predictions = await predict(batch, request)
        answered = getattr(request.state, "answered", served)  # a canary's answer carries its version
        output = {"name": "predictions", "shape": [len(predictions)],
                  "datatype": datatypes.get(answered.output_type, "BYTES"), "data": predictions}
        body = {"model_name": served.name, "model_version": answered.version, "outputs": [output]}
        if isinstance(payload.get("id"), str):
            body["id"] = payload["id"]
        return body, batch.n

    v2.add_api_route("/health/live", lambda: JSONResponse({"live": True}), methods=["GET"])
    v2.add_api_route("/health/ready", lambda: JSONResponse({"ready": True}), methods=["GET"])
    v2.add_api_route("/models/{model}", metadata, methods=["GET"])
    v2.add_api_route("/models/{model}/ready", ready, methods=["GET"])
    v2.add_api_route("/models/{model}/infer", scored("v2", v2_error, infer), methods=["POST"])

    # ------------------------------------------------------------------ operations
    def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", prometheus, methods=["GET"], tags=["operations"], summary="Prometheus metrics")

    async def feedback(request: Request) -> Response:
        def error(exc: InputError) -> Response:
            return JSONResponse({"error_code": exc.code, "message": str(exc)}, status_code=exc.status)

        if logger is None:
            return error(InputError("This server does not log predictions, so there is nothing to attach outcomes to; "
                                    "start it with --log (or --log-db URL).", status=404, code="RESOURCE_DOES_NOT_EXIST"))
        try:
            labels = _feedback_labels(_json(await _body(request, LIMITS["invocations"])))
        except InputError as exc:
            return error(exc)
        from mlkit.monitoring.store import attach_labels

        try:
            result = await asyncio.get_running_loop().run_in_executor(None, attach_labels, logger.url, labels)
        except ParameterError as exc:  # labels in a shape the log does not take
            return error(InputError(str(exc)))
        except Exception:
            log.exception("attaching labels failed")
            return error(InputError("The prediction log could not record these labels; try again shortly.",
                                    status=503, code="TEMPORARILY_UNAVAILABLE"))
        if monitor is not None:  # the canary's labelled guardrail
            monitor.record_labels(labels)
        return JSONResponse({"matched": result.matched, "unknown": list(result.unknown), "stale": list(result.stale)})

    app.add_api_route("/feedback", feedback, methods=["POST"], tags=["operations"],
                      summary="Attach true outcomes to logged predictions by request id")

    # ------------------------------------------------------------------ rollout
    def not_running(what: str, flag: str) -> Response:
        return JSONResponse({"error_code": "RESOURCE_DOES_NOT_EXIST",
                             "message": f"This server runs no {what}; start it with mlkit serve --model MODEL {flag}."},
                            status_code=404)

    def shadow_status() -> Response:
        if shadow is None:
            return not_running("shadow model", "--shadow MODEL2")
        return JSONResponse({"shadow": shadow.name, "version": shadow.version, "rows": background.scored,
                             "errors": background.errors, "dropped": background.dropped, "pending": background.pending})

    def canary_status() -> Response:
        if monitor is None:
            return not_running("canary", "--canary MODEL2 --canary-percent P")
        return JSONResponse(monitor.status())

    app.add_api_route("/shadow", shadow_status, methods=["GET"], tags=["rollout"],
                      summary="The shadow model: rows scored, errors, rows dropped, requests waiting")
    app.add_api_route("/canary", canary_status, methods=["GET"], tags=["rollout"],
                      summary="The canary: share of traffic, state (running or rolled_back), guardrail measurements")
    for router in (mlflow, vertex, azure, v2):
        app.include_router(router)
    return app
