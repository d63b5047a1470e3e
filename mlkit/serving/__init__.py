"""Serving: one FastAPI app speaking the MLflow, SageMaker, Vertex AI, Azure ML and Open
Inference V2 contracts over one verified model (``mlkit serve``), and :func:`running` to
start and stop it from a notebook or a test.
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
          micro_batch: bool = True, max_batch_rows: int = 256, log: bool = False, log_db: str | None = None) -> None:
    """Load ``model`` and serve it with uvicorn until interrupted (what ``mlkit serve`` runs).

    ``micro_batch`` scores requests that arrive together in one model call of at most
    ``max_batch_rows`` rows (see :mod:`mlkit.serving.batching`). With ``log``, every
    prediction is written to the prediction log at ``log_db`` (a SQLAlchemy URL or a
    SQLite file; default ``$MLKIT_LOG_DB``, else ``.mlkit/predictions.db``) before it is
    answered, with its score (see :mod:`mlkit.serving.model`); see :mod:`mlkit.monitoring.store`.
    """
    import json
    import os

    import uvicorn

    port = int(os.environ.get("AIP_HTTP_PORT", port))  # Vertex AI tells the container its port
    _stop_with_parent()
    # One-row predictions: an OpenMP team per call (gradient boosting) costs more than it saves, and on
    # a busy machine its threads wait for each other for hundreds of milliseconds.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from mlkit.serving import protocol

    config = {"model": str(model), "runtime": runtime, "name": name, "trust": list(trust), "allow_pickle": allow_pickle,
              "micro_batch": micro_batch, "max_batch_rows": max_batch_rows, "log": log, "log_db": log_db}
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
    logger = None
    if config.get("log", False):
        from mlkit.monitoring.store import PredictionLogger

        # durable: a request is answered only once its prediction is committed (group commit),
        # so a killed server leaves every answered prediction in the log. A bad URL fails here.
        # power_safe=False: no disk flush per commit; a killed server keeps what was committed (WAL).
        logger = PredictionLogger(config.get("log_db"), durable=True, power_safe=False)
    app = create_app(served, micro_batch=config["micro_batch"], max_batch_rows=config["max_batch_rows"], logger=logger)
    # The model, pandas and scikit-learn are hundreds of thousands of long-lived objects; a full
    # collection that walks them all stalls a request for tens of milliseconds. Freeze them.
    gc.collect()
    gc.freeze()
    return app


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
