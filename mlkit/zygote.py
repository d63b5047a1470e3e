"""A warm process that starts Python programs by forking, with the heavy imports already done.

Every notebook kernel and every ``mlkit serve`` pays the same few seconds before its first line
of real work: the interpreter, then numpy, pandas, scikit-learn, skops, MLflow, FastAPI. A batch of
75 smoke runs, each starting a kernel and one to three servers, spends a large share of its time
importing the same modules again. A *zygote* imports them once; asked to start
``python -m <module> <args>``, it forks, and the child runs the module as ``python -m`` would, in
its own session, with the requester's environment, working directory and standard streams.

It is an accelerator, never a requirement: :func:`spawn` answers ``None`` (start the program the
usual way) when no zygote runs (``MLKIT_ZYGOTE`` unset), when the command is not
``<this python> -m <module>``, or when the environment differs from the zygote's in a variable
read at interpreter start (``PYTHONHASHSEED``, thread counts ...: :data:`STARTUP_VARIABLES`).
The test suite (tests/conftest.py) and ``mlkit batch`` start one for their runs;
``MLKIT_ZYGOTE=off`` turns it off.

Usage::

    with zygote.running():                    # sets MLKIT_ZYGOTE for this process and its children
        proc = zygote.spawn([sys.executable, "-m", "mlkit.serving", "--model", folder, ...],
                            env=os.environ, cwd=".")
        ...                                   # proc.pid, proc.poll(), proc.wait(), proc.send_signal()

The zygote is single-threaded when it forks (it checks), imports no plotting backend (a kernel
chooses its own), and reseeds nothing by hand: Python reseeds :mod:`random` after a fork, and
every notebook seeds numpy itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Mapping

__all__ = ["running", "spawn", "alive", "ForkedProcess", "PRELOAD", "STARTUP_VARIABLES", "SUPPORTED"]

ENV = "MLKIT_ZYGOTE"
SUPPORTED = sys.platform.startswith("linux")  # fork after imports is safe there; macOS frameworks are not fork-safe

# What kernels and servers import before their first line of work (about 5 s fresh). Not
# matplotlib: its backend is fixed at import, and a kernel picks the inline one itself.
PRELOAD = (
    "numpy", "pandas", "scipy.stats", "sklearn.pipeline", "sklearn.compose", "sklearn.ensemble",
    "sklearn.linear_model", "sklearn.model_selection", "sklearn.metrics", "skops.io",
    "mlflow", "mlflow.sklearn", "fastapi", "uvicorn", "httpx", "sqlalchemy",
    "mlkit", "mlkit.training", "mlkit.registry", "mlkit.serving.app",
)
# Not ipykernel either: its options read the environment when the module is imported (the parent
# to watch, JPY_PARENT_PID), and it costs a fraction of a second once the above are in memory.

# Read once when an interpreter starts: a child forked from a zygote started with other values
# would behave differently from a fresh one, so a differing request starts the usual way.
STARTUP_VARIABLES = (
    "PYTHONHASHSEED", "PYTHONPATH", "PYTHONWARNINGS", "PYTHONDONTWRITEBYTECODE", "PYTHONSAFEPATH",
    "PYTHONDEVMODE", "PYTHONFAULTHANDLER", "PYTHONTRACEMALLOC", "PYTHONIOENCODING", "PYTHONUTF8",
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LC_ALL", "LANG", "TZ",
)
# Read when matplotlib is imported, which the zygote does not do (checked when it starts).
_MATPLOTLIB_VARIABLES = ("MPLBACKEND", "MPLCONFIGDIR")

_HEADER = struct.Struct("!I")
_RESET_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def _send(sock: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode()
    payload = _HEADER.pack(len(data)) + data
    if fds:
        socket.send_fds(sock, [payload], fds)
    else:
        sock.sendall(payload)


def _recv(sock: socket.socket, *, with_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One message (None at end of stream) and the descriptors sent with it."""
    fds: list[int] = []
    if with_fds:
        head, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, with_fds)
    else:
        head = sock.recv(_HEADER.size)
    if not head:
        return None, fds
    while len(head) < _HEADER.size:
        more = sock.recv(_HEADER.size - len(head))
        if not more:
            return None, fds
        head += more
    (size,) = _HEADER.unpack(head)
    data = b""
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            return None, fds
        data += more
    return json.loads(data), fds


# --------------------------------------------------------------------------------------------
# The requester's side


class ForkedProcess:
    """A process started by the zygote, with the part of :class:`subprocess.Popen` that callers use.

    The zygote is its parent, so the exit status comes over the request's connection; the process
    leads its own session (``os.killpg(proc.pid, ...)`` reaches it and its children).
    """

    stdin = stdout = stderr = None

    def __init__(self, pid: int, conn: socket.socket, args: list[str]):
        self.pid, self.args, self._conn, self.returncode = pid, args, conn, None

    def poll(self) -> int | None:
        if self.returncode is None:
            if self._conn is None:  # the zygote went away: only whether the process lives is known
                if not alive(self.pid):
                    self.returncode = -signal.SIGKILL
                return self.returncode
            self._conn.setblocking(False)
            try:
                message, _ = _recv(self._conn)
            except BlockingIOError:
                return None
            except OSError:
                message = None
            self._finish(message)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout)
            time.sleep(0.02)
        return self.returncode

    def _finish(self, message: dict | None) -> None:
        self._conn.close()
        self._conn = None
        if message is not None:
            self.returncode = int(message["returncode"])
        elif not alive(self.pid):
            self.returncode = -signal.SIGKILL

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a parent that no longer reaps it counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _stream_fd(stream, default: int) -> int:
    if stream is None:
        return default
    if isinstance(stream, int):
        return stream
    return stream.fileno()


def spawn(cmd: list[str], *, env: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
          stdin=None, stdout=None, stderr=None) -> ForkedProcess | None:
    """Start ``cmd`` (``[sys.executable, "-m", module, *args]``) as a fork of the running zygote.

    ``stdin`` defaults to /dev/null, ``stdout`` and ``stderr`` to this process's own (a file
    object or a descriptor each). Returns ``None`` when the usual way must be used: no zygote,
    another command shape, a startup variable that differs from the zygote's, or the zygote
    refusing (a thread running in it, or it is gone).
    """
    global last_refusal
    address = os.environ.get(ENV)
    if not SUPPORTED or not address or len(cmd) < 3 or cmd[0] != sys.executable or cmd[1] != "-m":
        return None
    env = dict(os.environ if env is None else env)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(60)  # a zygote that does not answer is not waited for forever
    try:
        conn.connect(address)
        with open(os.devnull, "rb") as null:
            fds = [_stream_fd(stdin, null.fileno()), _stream_fd(stdout, 1), _stream_fd(stderr, 2)]
            _send(conn, {"module": cmd[2], "args": list(cmd[3:]), "env": env,
                         "cwd": str(Path(cwd or os.getcwd()).resolve())}, fds)
        answer, _ = _recv(conn)
    except OSError:
        conn.close()
        return None
    if not answer or "pid" not in answer:
        conn.close()
        last_refusal = (answer or {}).get("refused", "no answer")
        return None
    return ForkedProcess(int(answer["pid"]), conn, list(cmd))


last_refusal: str | None = None
"""Why the zygote last refused to fork (for a look when something starts slower than expected)."""


@contextlib.contextmanager
def running(preload: tuple[str, ...] = PRELOAD, *, timeout: float = 120.0) -> Iterator[str]:
    """Start a zygote for this process and its children (sets ``MLKIT_ZYGOTE``); stop it on exit.

    Yields the socket's path ("" without one). Nested use reuses the running zygote;
    ``MLKIT_ZYGOTE=off`` turns it off. If the zygote cannot start, the block runs without one
    (everything starts the usual way) rather than failing.
    """
    if os.environ.get(ENV) and Path(os.environ[ENV]).exists():
        yield os.environ[ENV]
        return
    if not SUPPORTED or os.environ.get(ENV) == "off":  # off: everything starts the usual way
        yield ""
        return
    folder = Path(tempfile.mkdtemp(prefix="mlkit-zygote-"))
    address = str(folder / "socket")
    log = open(folder / "log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "mlkit.zygote", address, *preload], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not Path(address).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    ready = Path(address).exists() and proc.poll() is None
    previous = os.environ.get(ENV)
    if ready:
        os.environ[ENV] = address
    try:
        yield address if ready else ""
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The zygote's side


def _startup_values(env: Mapping[str, str]) -> dict[str, str | None]:
    names = STARTUP_VARIABLES + (_MATPLOTLIB_VARIABLES if "matplotlib" in sys.modules else ())
    return {name: env.get(name) for name in names}


def _child(request: dict, fds: list[int], inherited: list[int], *, ready: int) -> None:
    """In the forked child: become ``python -m <module> <args>`` with the requester's setting; never returns."""
    code = 1
    try:
        os.setsid()
        os.write(ready, b"1")
        for fd in inherited:
            with contextlib.suppress(OSError):
                os.close(fd)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _RESET_SIGNALS)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.path[0] = request["cwd"]  # what `python -m` puts first
        sys.argv = ["-m", *request["args"]]
        import runpy
        import types

        sys.modules["__main__"] = types.ModuleType("__main__")  # an empty one, as a fresh interpreter has

        try:
            runpy._run_module_as_main(request["module"], alter_argv=True)
            code = 0
        except SystemExit as exc:
            if exc.code is None:
                code = 0
            elif isinstance(exc.code, int):
                code = exc.code
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except KeyboardInterrupt:
            code = 128 + signal.SIGINT
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        import atexit
        import threading

        with contextlib.suppress(BaseException):
            threading._shutdown()  # as at interpreter exit: wait for non-daemon threads
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve(address: str, preload: list[str]) -> None:
    import importlib
    import threading

    for name in preload:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    mine = _startup_values(os.environ)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address + ".tmp")
    os.chmod(address + ".tmp", 0o600)
    listener.listen(64)
    os.rename(address + ".tmp", address)  # appears only when ready
    children: dict[int, socket.socket] = {}
    orphans: dict[int, float] = {}  # pid -> when SIGKILL follows the SIGTERM
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while not stop:
        for key, _ in selector.select(timeout=0.05):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                try:
                    pid = _handle(conn, [listener.fileno(), selector.fileno()], children, mine, threading)
                except Exception:  # one bad request never stops the zygote; its log keeps the reason
                    import traceback

                    traceback.print_exc()
                    conn.close()
                    continue
                if pid:
                    selector.register(conn, selectors.EVENT_READ, pid)
            else:
                # A requester sends nothing after its request: its connection turns readable when
                # it closes, that is when the requester is gone. What it started goes with it, as a
                # kernel whose parent dies does (a forked kernel cannot see that parent itself).
                selector.unregister(key.fileobj)
                with contextlib.suppress(OSError):
                    os.killpg(key.data, signal.SIGTERM)
                orphans[key.data] = time.monotonic() + 5.0
        _reap(children, selector)
        for pid, deadline in list(orphans.items()):
            if pid not in children:
                del orphans[pid]
            elif time.monotonic() > deadline:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                del orphans[pid]
    _stop_children(children, selector)
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(address)


def _reap(children: dict[int, socket.socket], selector: selectors.BaseSelector) -> None:
    """Collect every child that has exited and tell its requester how it ended."""
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(conn)
            with contextlib.suppress(OSError):
                _send(conn, {"returncode": os.waitstatus_to_exitcode(status)})
            conn.close()


def _stop_children(children: dict[int, socket.socket], selector: selectors.BaseSelector, grace: float = 5.0) -> None:
    """Nothing outlives the zygote: SIGTERM what still runs (its whole session), SIGKILL after ``grace`` s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in children:
            with contextlib.suppress(OSError):
                os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while children and time.monotonic() < deadline:
            _reap(children, selector)
            time.sleep(0.02)
    for conn in children.values():
        conn.close()


def _handle(conn, own_fds, children, mine, threading) -> int | None:
    """Fork the program a request names; its pid, or None when refused."""
    conn.settimeout(10)
    request, fds = _recv(conn, with_fds=3)
    try:
        refused = None
        if request is None or len(fds) != 3:
            refused = "bad request"
        elif _startup_values(request["env"]) != mine:
            theirs = _startup_values(request["env"])
            refused = "startup variables differ: " + ", ".join(sorted(k for k in mine if mine[k] != theirs[k]))
        elif threading.active_count() != 1:
            refused = "a thread runs in the zygote"
        if refused:
            _send(conn, {"refused": refused})
            conn.close()
            return None
        inherited = [*own_fds, conn.fileno(), *(c.fileno() for c in children.values())]
        # A signal sent the instant after the fork must meet the child's own handlers, not the
        # zygote's: block them across the fork; the child unblocks once it has reset them.
        # The pid is answered once the child leads its own session, so that os.killpg(pid, ...)
        # reaches it from the first moment.
        ready_r, ready_w = os.pipe()
        signal.pthread_sigmask(signal.SIG_BLOCK, _RESET_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                os.close(ready_r)
                _child(request, fds, [*inherited, ready_w], ready=ready_w)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _RESET_SIGNALS)
        os.close(ready_w)
        try:
            os.read(ready_r, 1)  # b"" if the child died before: its status follows as usual
        finally:
            os.close(ready_r)
        children[pid] = conn
        _send(conn, {"pid": pid})
        return pid
    finally:
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2:])
