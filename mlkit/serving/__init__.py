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
          name: str | None = None, workers: int = 1, trust: tuple[str, ...] = (), allow_pickle: bool = False) -> None:
    """Load ``model`` and serve it with uvicorn until interrupted (what ``mlkit serve`` runs)."""
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
    config = {"model": str(model), "runtime": runtime, "name": name, "trust": list(trust), "allow_pickle": allow_pickle}
    if workers > 1:
        os.environ["MLKIT_SERVE_CONFIG"] = json.dumps(config)
        uvicorn.run("mlkit.serving:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False)
        return
    served = load_model(model, runtime=runtime, name=name, trust=tuple(trust), allow_pickle=allow_pickle)
    uvicorn.run(create_app(served), host=host, port=port, log_level="warning", access_log=False)


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
    config = json.loads(os.environ["MLKIT_SERVE_CONFIG"])
    served = load_model(config["model"], runtime=config["runtime"], name=config["name"],
                        trust=tuple(config["trust"]), allow_pickle=config["allow_pickle"])
    return create_app(served)
