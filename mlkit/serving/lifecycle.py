"""Start a server in a subprocess, wait until it answers, and always stop it.

Usage::

    with running("models:/mlkit-finance-fraud@champion", port=0) as url:
        httpx.post(f"{url}/invocations", json={"dataframe_records": records})

The server runs in its own process group; leaving the block (normally, on an error, or on
a kernel interrupt) terminates the whole group, so no process outlives it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from mlkit import zygote
from mlkit.errors import MlkitError

__all__ = ["running", "running_command", "free_port", "stop_process_group", "ServerError"]


class ServerError(MlkitError):
    """The server did not start (its log says why) or did not answer in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM a server started with ``start_new_session=True`` and its whole group; SIGKILL after ``grace`` s.

    The group is killed once more at the end, for a uvicorn worker that outlived its parent.
    """
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def running(
    model: str | os.PathLike,
    *,
    port: int = 0,
    runtime: str = "sklearn",
    name: str | None = None,
    workers: int = 1,
    env: dict[str, str] | None = None,
    timeout: float = 90.0,
    extra_args: tuple[str, ...] = (),
) -> Iterator[str]:
    """Serve ``model`` on 127.0.0.1 in a subprocess for the duration of a ``with`` block.

    Parameters
    ----------
    model
        ``models:/<name>@<alias>``, ``models:/<name>/<version>`` or a model folder.
    port
        0 picks a free port.
    runtime, name, workers
        As for ``mlkit serve``.
    env
        Extra environment variables for the server (e.g. Vertex AI's ``AIP_*``).
    timeout
        Seconds to wait for the server to answer ``/ping``.
    extra_args
        More ``mlkit serve`` flags, e.g. ``("--log-db", url)``, ``("--shadow", "models:/fraud@challenger")`` or
        ``("--canary", "models:/fraud@challenger", "--canary-percent", "20")``.

    Yields
    ------
    str
        The base URL, e.g. ``http://127.0.0.1:54321``.
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "mlkit.serving", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
           "--runtime", runtime, "--workers", str(workers), *extra_args]
    if name:
        cmd += ["--name", name]
    with running_command(cmd, port=port, env=env, timeout=timeout) as url:
        yield url


@contextlib.contextmanager
def running_command(cmd: list[str], *, port: int, env: dict[str, str] | None = None, timeout: float = 90.0,
                    health: str = "/ping") -> Iterator[str]:
    """Run a server command (which must listen on 127.0.0.1:``port``; 0 picks a free port and
    appends ``--port N``) until ``health`` answers 200; yield its URL; always stop its process group.
    """
    if not port:
        port = free_port()
        cmd = [*cmd, "--port", str(port)]
    log = tempfile.NamedTemporaryFile(prefix="mlkit-serve-", suffix=".log", delete=False)
    full_env = {**os.environ, **(env or {}), "MLKIT_PARENT_PID": str(os.getpid())}
    # Forked from a warm zygote when one runs (tests, mlkit batch): the same program, without
    # re-importing scikit-learn and friends; otherwise a fresh interpreter in its own session.
    proc = zygote.spawn(cmd, env=full_env, stdout=log, stderr=log) or subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=full_env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.flush()
                tail = Path(log.name).read_text(errors="replace")[-2000:]
                raise ServerError(f"The server exited before answering (status {proc.returncode}):\n{tail}")
            try:
                with urllib.request.urlopen(f"{url}{health}", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ServerError(f"The server did not answer {health} within {timeout:g} s; its log: {log.name}")
            time.sleep(0.2)
        yield url
    finally:
        stop_process_group(proc)
        log.close()
        with contextlib.suppress(OSError):
            os.unlink(log.name)
