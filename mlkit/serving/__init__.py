"""Serving: one FastAPI app speaking the MLflow, SageMaker, Vertex AI, Azure ML and Open
Inference V2 contracts over one verified model (``mlkit serve``), and :func:`running` to
start and stop it from a notebook or a test. A second model can ride along as a shadow or a
canary (:mod:`mlkit.serving.rollout`)::

    with running("models:/fraud@champion", extra_args=("--canary", "models:/fraud@challenger",
                                                       "--canary-percent", "20")) as url:
        httpx.get(f"{url}/canary").json()["state"]   # "running", or "rolled_back" and why
"""

from __future__ import annotations

from mlkit.serving.lifecycle import ServerError, free_port, running
from mlkit.serving.schema import InputError, Schema

__all__ = ["running", "free_port", "ServerError", "InputError", "Schema", "create_app", "load_model", "serve"]


def create_app(*args, **kwargs):
    """See :func:`mlkit.serving.app.create_app` (imported on first use: FastAPI is a heavier import)."""
    from mlkit.serving.app import create_app as _create_app

    return _create_app(*args, **kwargs)


def load_model(*args, **kwargs):
    """See :func:`mlkit.serving.model.load_model`."""
    from mlkit.serving.model import load_model as _load_model

    return _load_model(*args, **kwargs)


def serve(model: str, *, host: str = "127.0.0.1", port: int = 8080, runtime: str = "sklearn",
          name: str | None = None, workers: int = 1, trust: tuple[str, ...] = (), allow_pickle: bool = False,
          micro_batch: bool = True, max_batch_rows: int = 256, log: bool = False, log_db: str | None = None,
          shadow: str | None = None, canary: str | None = None, canary_percent: float | None = None,
          guardrails: dict | None = None) -> None:
    """Load ``model`` and serve it with uvicorn until interrupted (what ``mlkit serve`` runs).

    ``micro_batch`` scores requests that arrive together in one model call of at most
    ``max_batch_rows`` rows (see :mod:`mlkit.serving.batching`). With ``log``, every
    prediction is written to the prediction log at ``log_db`` (a SQLAlchemy URL or a
    SQLite file; default ``$MLKIT_LOG_DB``, else ``.mlkit/predictions.db``) before it is
    answered, with its score (see :mod:`mlkit.serving.model`); see :mod:`mlkit.monitoring.store`.

    ``shadow`` (a second model, as ``model``) scores every request in the background and logs
    its predictions; ``canary`` answers ``canary_percent`` % of the requests (default 10) until
    one of its ``guardrails`` breaks (keyword arguments of
    :class:`mlkit.serving.rollout.Guardrails`). Either turns the log on. A canary's
    guardrails live in one process, so it needs ``workers=1``.

    Raises
    ------
    MlkitError
        For contradictory options, or a model (the served one, the shadow or the canary)
        that does not load or whose columns do not fit the served model's.
    """
    import json
    import os

    import uvicorn

    from mlkit.errors import ParameterError
    from mlkit.serving import rollout

    if shadow and canary:
        raise ParameterError("--shadow and --canary are two ways of trying a second model; give one of them.")
    if not canary and (canary_percent is not None or guardrails):
        raise ParameterError("--canary-percent and the --canary-* guardrails need --canary MODEL2.")
    if canary:
        canary_percent = rollout.check_percent(rollout.DEFAULT_PERCENT if canary_percent is None else canary_percent)
        rollout.Guardrails(**(guardrails or {}))  # checked now, before any model loads
        if workers > 1:
            raise ParameterError("A canary's guardrails and rollback live in one process; serve it with --workers 1.")
    log = bool(log or shadow or canary)  # the second model's predictions go to the log

    port = int(os.environ.get("AIP_HTTP_PORT", port))  # Vertex AI tells the container its port
    _stop_with_parent()
    # One-row predictions: an OpenMP team per call (gradient boosting) costs more than it saves, and on
    # a busy machine its threads wait for each other for hundreds of milliseconds.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from mlkit.serving import protocol

    config = {"model": str(model), "runtime": runtime, "name": name, "trust": list(trust), "allow_pickle": allow_pickle,
              "micro_batch": micro_batch, "max_batch_rows": max_batch_rows, "log": log, "log_db": log_db,
              "shadow": None if shadow is None else str(shadow), "canary": None if canary is None else str(canary),
              "canary_percent": canary_percent, "guardrails": dict(guardrails or {})}
    options = {"host": host, "port": port, "http": protocol.best(), "loop": "auto", "log_level": "warning", "access_log": False}
    if workers > 1:
        os.environ["MLKIT_SERVE_CONFIG"] = json.dumps(config)
        uvicorn.run("mlkit.serving:app_from_env", factory=True, workers=workers, **options)
        return
    uvicorn.run(_app(config), **options)


def _app(config: dict):
    """Load the model, build the app, and take what was loaded out of the garbage collector's sight."""
    import gc

    served = load_model(config["model"], runtime=config["runtime"], name=config["name"],
                        trust=tuple(config["trust"]), allow_pickle=config["allow_pickle"])
    second = {role: _load_second(role, config[role], config) for role in ("shadow", "canary") if config.get(role)}
    rollout_options = {}
    if "canary" in second:
        from mlkit.serving.rollout import Guardrails

        rollout_options = {"canary_percent": config["canary_percent"], "guardrails": Guardrails(**config["guardrails"])}
    logger = None
    if config.get("log", False):
        from mlkit.monitoring.store import PredictionLogger

        # durable: a request is answered only once its prediction is committed (group commit),
        # so a killed server leaves every answered prediction in the log. A bad URL fails here.
        # power_safe=False: no disk flush per commit; a killed server keeps what was committed (WAL).
        logger = PredictionLogger(config.get("log_db"), durable=True, power_safe=False)
    app = create_app(served, micro_batch=config["micro_batch"], max_batch_rows=config["max_batch_rows"], logger=logger,
                     **second, **rollout_options)
    # The model, pandas and scikit-learn are hundreds of thousands of long-lived objects; a full
    # collection that walks them all stalls a request for tens of milliseconds. Freeze them.
    gc.collect()
    gc.freeze()
    return app


def _load_second(role: str, model: str, config: dict):
    """The shadow or canary model, loaded like the served one; a failure names the role."""
    from mlkit.errors import MlkitError

    try:
        return load_model(model, runtime=config["runtime"], trust=tuple(config["trust"]),
                          allow_pickle=config["allow_pickle"])
    except MlkitError as exc:
        raise MlkitError(f"The {role} model {model} could not be loaded: {exc}") from None


def _stop_with_parent() -> None:
    """Under :func:`running`, end the whole server (workers too) if the process that started it dies.

    A notebook's kernel can be killed or restarted without leaving its ``with`` block; the
    server must not outlive it. ``MLKIT_PARENT_PID`` names the process to watch.
    """
    import os
    import signal
    import threading
    import time

    parent = os.environ.get("MLKIT_PARENT_PID")
    if not parent or not parent.isdigit():
        return

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(int(parent), 0)
            except ProcessLookupError:
                os.killpg(os.getpgid(0), signal.SIGTERM)
                return
            except PermissionError:
                return

    threading.Thread(target=watch, name="mlkit-parent-watch", daemon=True).start()


def app_from_env():
    """The app for a uvicorn worker process, from ``MLKIT_SERVE_CONFIG`` (set by :func:`serve`)."""
    import json
    import os

    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # see serve()
    return _app(json.loads(os.environ["MLKIT_SERVE_CONFIG"]))
