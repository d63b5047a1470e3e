"""The prediction log (mlkit.monitoring.store): round trip, nothing lost under concurrency, flush on
close and at exit, durable commits, a kill -9 mid-stream, delayed labels, windows and clear errors.

The store-level tests run twice: on a SQLite file and on a real PostgreSQL server. The
PostgreSQL server is started on loopback for the session, in a temporary folder, from Debian's
``postgresql`` package (``make system-deps`` installs it); set ``MLKIT_TEST_POSTGRES_URL`` to use
a running server instead. When neither works the PostgreSQL tests skip with a loud message, and
under ``CI=true`` tests/conftest.py turns that skip into a failure.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import pwd
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest

from mlkit.errors import MlkitError, ParameterError
from mlkit.monitoring import store
from mlkit.monitoring.store import (
    LabelResult,
    LogFullError,
    LogStoreError,
    PredictionLogger,
    attach_labels,
    read_log,
    resolve_url,
    windows,
)

ROOT = Path(__file__).resolve().parents[1]
HOW_TO_ENABLE = (
    "POSTGRESQL TIER SKIPPED: {what}. To enable it: run `make system-deps` as root (installs Debian's "
    "postgresql), or `sudo apt-get install --no-install-recommends postgresql`; or point "
    "MLKIT_TEST_POSTGRES_URL=postgresql+psycopg://USER@HOST:PORT/DB at a running server. "
    "The driver is psycopg 3: pip install 'psycopg[binary]'."
)


def _record(i: int | str, **extra) -> dict:
    return {"request_id": str(i), "model": "fraud", "model_version": "3",
            "features": {"amount": float(i) if str(i).isdigit() else 1.0, "channel": "web"},
            "prediction": 1, "score": 0.75, **extra}


# --------------------------------------------------------------------------- a real PostgreSQL server


def _postgres_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
    for folder in [*candidates, *versions]:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Postgres:
    """initdb + pg_ctl in a temporary folder, run as an unprivileged user when we are root."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user: str | None = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            for name in ("postgres", "nobody"):
                try:
                    pwd.getpwnam(name)
                except KeyError:
                    continue
                self.user = name
                break
            if self.user is None:
                raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run initdb")
        self.folder = Path(tempfile.mkdtemp(prefix="mlkit-pg-", dir="/tmp" if self.user else None))
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self.data = self.folder / "data"
        self.port = 0

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            if shutil.which("runuser"):
                command = ["runuser", "-u", self.user, "--", *command]
            else:
                command = ["su", self.user, "-s", "/bin/sh", "-c", shlex.join(command)]
        return subprocess.run(command, cwd=self.folder, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def start(self) -> str:
        done = self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "UTF8",
                         "--no-sync")
        if done.returncode:
            raise RuntimeError(f"initdb failed: {(done.stderr or done.stdout).strip()[-400:]}")
        for _ in range(3):  # a free port can be taken between the check and the start
            self.port = _free_port()
            options = (f"-k {self.folder} -h 127.0.0.1 -p {self.port} -c fsync=off "
                       f"-c synchronous_commit=off -c full_page_writes=off")
            done = self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
                             "-w", "-t", "30", "start")
            if done.returncode == 0:
                return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        log = self.folder / "log"
        tail = log.read_text(errors="replace")[-400:] if log.exists() else done.stderr
        raise RuntimeError(f"pg_ctl could not start the server: {tail.strip()}")

    def stop(self) -> None:
        if self.data.exists():
            done = self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "20", "stop", timeout=30)
            pid_file = self.data / "postmaster.pid"
            if done.returncode and pid_file.exists():  # still up: end it by its own pid
                pid = int(pid_file.read_text().split()[0])
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server URL for the session: $MLKIT_TEST_POSTGRES_URL, or one started here."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip(HOW_TO_ENABLE.format(what="the PostgreSQL driver psycopg is not installed"))
    given = os.environ.get("MLKIT_TEST_POSTGRES_URL", "").strip()
    if given:
        yield resolve_url(given)
        return
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip(HOW_TO_ENABLE.format(what="initdb/pg_ctl were not found (PATH, /usr/lib/postgresql/*/bin)"))
    server = None
    try:
        server = _Postgres(bindir)
        url = server.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        if server is not None:
            server.stop()
        pytest.skip(HOW_TO_ENABLE.format(what=f"PostgreSQL could not start here ({exc})"))
    try:
        yield url
    finally:
        for key in [key for key in store._ENGINES if key.startswith("postgresql")]:
            store._ENGINES.pop(key).dispose()
        server.stop()


def _new_database(server_url: str) -> str:
    """A fresh, empty database on the server, so each test starts from no table at all."""
    import psycopg
    import sqlalchemy as sa

    url = sa.engine.make_url(server_url)
    name = f"mlkit_{uuid.uuid4().hex[:12]}"
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The same tests on a SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'predictions.db'}"
    return _new_database(request.getfixturevalue("postgres_url"))


def _count(url: str) -> int:
    return len(read_log(url))


# --------------------------------------------------------------------------- round trip


def test_public_names():
    assert set(store.__all__) == {"COLUMNS", "ENV_VAR", "LogStoreError", "LogFullError", "LabelResult",
                                  "resolve_url", "PredictionLogger", "ServedRows", "attach_labels", "read_log",
                                  "windows"}
    assert all(hasattr(store, name) for name in store.__all__)
    assert issubclass(LogFullError, LogStoreError) and issubclass(LogStoreError, MlkitError)


def test_round_trip_keeps_every_field(store_url):
    t0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    records = [
        {"request_id": "a", "timestamp": t0, "model": "fraud", "model_version": "3",
         "features": {"amount": 12.5, "channel": "web", "missing": float("nan")}, "prediction": 1, "score": 0.9,
         "served_by": "cloud"},
        {"request_id": "b", "timestamp": "2024-05-01T14:00:00+02:00", "model": "fraud", "model_version": 3,
         "features": {"amount": 3.0, "channel": "app"}, "prediction": 0, "score": None},
        {"request_id": "c", "timestamp": dt.datetime(2024, 5, 1, 13, 0), "model": "demand",
         "features": {"price": 2}, "prediction": 41.5, "served_by": "on-premise"},
    ]
    with PredictionLogger(store_url, durable=True) as logger:
        assert logger.log(records) == ["a", "b", "c"]
        generated = logger.log({"model": "fraud", "features": {"amount": 1.0}, "prediction": 0})
    assert len(generated) == 1 and len(generated[0]) == 32  # a fresh UUID

    frame = read_log(store_url)
    assert list(frame.columns[: len(store.COLUMNS)]) == list(store.COLUMNS)
    assert frame["request_id"].tolist()[:3] == ["a", "b", "c"]  # by time (14:00+02:00 is 12:00 UTC), then as logged
    a = frame.set_index("request_id").loc["a"]
    assert a["timestamp"] == pd.Timestamp("2024-05-01 12:00", tz="UTC")
    assert (a["model"], a["model_version"], a["served_by"], a["prediction"]) == ("fraud", "3", "cloud", 1)
    assert a["score"] == 0.9 and a["amount"] == 12.5 and a["channel"] == "web" and pd.isna(a["missing"])
    assert pd.isna(a["label"]) and pd.isna(a["label_timestamp"])
    b = frame.set_index("request_id").loc["b"]
    assert b["timestamp"] == pd.Timestamp("2024-05-01 12:00", tz="UTC") and pd.isna(b["score"])
    assert b["served_by"] == "mlkit-sklearn" and b["model_version"] == "3"
    assert str(frame["timestamp"].dt.tz) == "UTC"

    demand = read_log(store_url, model="demand")
    assert demand["request_id"].tolist() == ["c"] and demand["prediction"].tolist() == [41.5]
    assert demand["timestamp"].iloc[0] == pd.Timestamp("2024-05-01 13:00", tz="UTC")  # naive means UTC
    window = read_log(store_url, since="2024-05-01T12:30:00Z", until=dt.datetime(2024, 5, 1, 13, 0, 1))
    assert window["request_id"].tolist() == ["c"]
    assert len(read_log(store_url, with_labels=False)) == 4 and read_log(store_url, with_labels=True).empty


def test_empty_log_reads_as_empty_frame(tmp_path):
    frame = read_log(tmp_path / "empty.db")
    assert frame.empty and list(frame.columns) == list(store.COLUMNS)


# --------------------------------------------------------------------------- nothing lost


def test_threads_lose_nothing_and_duplicate_nothing(store_url):
    k, m = 8, 150
    with PredictionLogger(store_url, batch_size=64, flush_interval=0.01) as logger:
        def client(thread: int) -> None:
            i = 0
            while i < m:
                size = 1 + (i % 4)  # calls of 1 to 4 records
                logger.log([_record(f"t{thread}-{j}") for j in range(i, min(i + size, m))])
                i += size

        threads = [threading.Thread(target=client, args=(t,)) for t in range(k)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert logger.written == k * m and logger.failed == 0 and logger.pending == 0
    ids = read_log(store_url)["request_id"]
    assert len(ids) == k * m and ids.is_unique
    assert set(ids) == {f"t{t}-{j}" for t in range(k) for j in range(m)}


def test_close_flushes_the_queue_and_is_safe_twice(tmp_path):
    url = tmp_path / "log.db"
    logger = PredictionLogger(url, batch_size=100_000, flush_interval=60)  # the timer alone would wait a minute
    logger.log([_record(i) for i in range(500)])
    assert logger.pending == 500 and _count(url) == 0
    started = time.monotonic()
    logger.close()
    assert time.monotonic() - started < 10
    assert _count(url) == 500 and logger.written == 500
    logger.close()
    with pytest.raises(LogStoreError, match="closed"):
        logger.log(_record(1000))


def test_flush_and_context_manager_write_everything(tmp_path):
    url = tmp_path / "log.db"
    with PredictionLogger(url, flush_interval=60) as logger:
        logger.log([_record(i) for i in range(10)])
        logger.flush()
        assert _count(url) == 10
        logger.log(_record(10))
    assert _count(url) == 11


def test_durable_log_returns_after_the_commit(store_url):
    with PredictionLogger(store_url, durable=True, flush_interval=60) as logger:
        for i in range(5):
            started = time.monotonic()
            logger.log(_record(i))
            assert time.monotonic() - started < 10  # committed at once, not after flush_interval
            assert _count(store_url) == i + 1  # visible to another connection when log() returns
        assert logger.written == 5 and logger.pending == 0


def test_wait_per_call_on_a_non_durable_logger(tmp_path):
    url = tmp_path / "log.db"
    with PredictionLogger(url, flush_interval=60) as logger:
        logger.log(_record("queued"))
        logger.log(_record("waited"), wait=True)  # commits its batch, and what was queued before it
        assert set(read_log(url)["request_id"]) == {"queued", "waited"}


def test_durable_callers_waiting_together_share_one_commit(tmp_path):
    import sqlalchemy as sa

    url = tmp_path / "log.db"
    with PredictionLogger(url, durable=True) as logger:
        commits = []
        sa.event.listen(logger._engine, "commit", lambda conn: commits.append(1))
        blocker = sqlite3.connect(url, timeout=1)
        blocker.execute("BEGIN EXCLUSIVE")  # hold the writer back while six requests arrive
        returned: list[str] = []
        threads = [threading.Thread(target=lambda i=i: returned.extend(logger.log(_record(f"g{i}"))))
                   for i in range(6)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while logger.pending < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert returned == []  # nobody returns before the commit
        blocker.rollback()
        blocker.close()
        for thread in threads:
            thread.join(10)
        assert sorted(returned) == [f"g{i}" for i in range(6)]
        assert 1 <= len(commits) <= 2  # the batch the writer held, then everyone who queued meanwhile
        assert _count(url) == 6


def test_async_log_waits_for_the_commit_without_blocking_the_loop(tmp_path):
    url = tmp_path / "log.db"

    async def main(logger: PredictionLogger) -> list[list[str]]:
        return await asyncio.gather(*(logger.alog(_record(f"async-{i}")) for i in range(30)))

    with PredictionLogger(url, durable=True) as logger:
        ids = asyncio.run(main(logger))
        assert _count(url) == 30
    assert sorted(i for (i,) in ids) == sorted(f"async-{i}" for i in range(30))


def test_full_queue_raises_instead_of_dropping(tmp_path):
    url = tmp_path / "log.db"
    with PredictionLogger(url, batch_size=5, flush_interval=0, max_queue=10, timeout=0.3) as logger:
        blocker = sqlite3.connect(url, timeout=1)
        blocker.execute("BEGIN EXCLUSIVE")  # the writer waits for the database: the queue fills up
        accepted = []
        try:
            with pytest.raises(LogFullError, match="not keeping up.*were not logged"):
                for i in range(100):
                    accepted += logger.log(_record(i))
        finally:
            blocker.rollback()
            blocker.close()
        assert 10 <= len(accepted) < 100
    frame = read_log(url)
    assert sorted(frame["request_id"]) == sorted(accepted)  # every accepted record, nothing else


def test_refused_records_are_reported_not_lost_silently(tmp_path):
    url = tmp_path / "log.db"
    with PredictionLogger(url, durable=True) as logger:
        logger.log(_record(1))
        with pytest.raises(LogStoreError, match="refused 1 record.*request ids 1.*own id"):
            logger.log(_record(1))
        logger.log(_record(1, served_by="shadow"))  # a shadow prediction of the same request is welcome
    quiet = PredictionLogger(url)
    quiet.log([_record(2), _record(3)])
    quiet.log(_record(1))  # refused in the background...
    quiet.log(_record(4))
    with pytest.raises(LogStoreError, match="refused 1 record"):
        quiet.flush()  # ...and reported at the next flush
    quiet.close()
    assert sorted(read_log(url)["request_id"]) == ["1", "1", "2", "3", "4"]
    assert quiet.failed == 1 and quiet.written == 3


# --------------------------------------------------------------------------- processes: kill -9, first use


CHILD = textwrap.dedent(
    """
    import sys, threading
    from mlkit.monitoring.store import PredictionLogger
    url, mode = sys.argv[1], sys.argv[2]
    if mode == "durable":  # log until killed; print each id once its log() returned
        logger = PredictionLogger(url, durable=True)
        lock = threading.Lock()
        print("ready", flush=True)
        def client(t):
            i = 0
            while True:
                ids = logger.log([{"request_id": f"{t}-{i}-{j}", "model": "m", "features": {"x": i},
                                   "prediction": 0} for j in range(1 + i % 3)])
                with lock:
                    sys.stdout.write("".join(f"{rid}\\n" for rid in ids))
                    sys.stdout.flush()
                i += 1
        for t in range(4):
            threading.Thread(target=client, args=(t,), daemon=True).start()
        threading.Event().wait()
    else:  # a fresh store opened by several processes at once; no close(): atexit must flush
        logger = PredictionLogger(url, flush_interval=60)
        logger.log([{"request_id": f"{mode}-{i}", "model": "m", "features": {"x": i}, "prediction": 0}
                    for i in range(100)])
    """
)


def _child(url: str, mode: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, url, mode], env=env, cwd=ROOT, **kwargs)


def test_kill_9_leaves_a_consistent_database_with_every_durable_prediction(tmp_path):
    db = tmp_path / "log.db"
    child = _child(f"sqlite:///{db}", "durable", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed: list[str] = []
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        deadline = time.monotonic() + 20
        while len(printed) < 400 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            printed.append(line.strip())
        os.kill(child.pid, signal.SIGKILL)  # mid-stream: the writer is busy
        child.wait(10)
        rest = child.stdout.read()  # lines printed before the kill, still in the pipe
        printed += [line for line in rest.split("\n")[:-1] if line]  # a last line without "\n" is torn
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    assert len(printed) >= 400, "the child logged too little before the kill"
    with sqlite3.connect(db) as conn:  # a plain SQLite client: it recovers the WAL the killed process left
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        logged = {rid for (rid,) in conn.execute("SELECT request_id FROM predictions")}
    missing = set(printed) - logged
    assert not missing, f"{len(missing)} predictions whose durable log() returned are not in the database"
    assert read_log(db)["request_id"].is_unique


def test_processes_opening_a_new_store_at_once_and_atexit_flush(store_url):
    children = [_child(store_url, f"p{n}", stderr=subprocess.PIPE, text=True) for n in range(3)]
    errors = [child.communicate(timeout=60)[1] for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], errors
    ids = read_log(store_url)["request_id"]
    assert len(ids) == 300 and ids.is_unique


# --------------------------------------------------------------------------- delayed labels


def test_labels_attach_by_request_id_and_unknown_ids_are_reported(store_url):
    with PredictionLogger(store_url, durable=True) as logger:
        logger.log([_record(i) for i in range(4)])
        logger.log(_record(0, served_by="shadow"))
    result = attach_labels(store_url, {"0": 1, "1": 0, "nope": 1})
    assert result == LabelResult(matched=2, unknown=("nope",), stale=())
    frame = read_log(store_url)
    labelled = frame.dropna(subset=["label"])
    assert sorted(zip(labelled["request_id"], labelled["served_by"], labelled["label"])) == [
        ("0", "mlkit-sklearn", 1), ("0", "shadow", 1), ("1", "mlkit-sklearn", 0)]  # the shadow row too
    assert len(read_log(store_url, with_labels=True)) == 3 and len(read_log(store_url, with_labels=False)) == 2

    # re-labelling: a newer label replaces the old one, an older one does not
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    frame_labels = pd.DataFrame({"request_id": ["1", "2", "ghost"], "label": [1, 1, 0],
                                 "label_timestamp": [later, later, later]})
    assert attach_labels(store_url, frame_labels) == LabelResult(matched=2, unknown=("ghost",), stale=())
    older = attach_labels(store_url, pd.Series({"1": 0}), timestamp="2020-01-01T00:00:00")
    assert older == LabelResult(matched=0, unknown=(), stale=("1",))
    row = read_log(store_url).set_index(["request_id", "served_by"]).loc[("1", "mlkit-sklearn")]
    assert row["label"] == 1 and row["label_timestamp"] == pd.Timestamp(later)

    with pytest.raises(ParameterError, match="missing"):
        attach_labels(store_url, {"3": float("nan")})
    with pytest.raises(ParameterError, match="request_id"):
        attach_labels(store_url, pd.DataFrame({"id": ["3"], "label": [1]}))
    assert attach_labels(store_url, {}) == LabelResult(0, (), ())


# --------------------------------------------------------------------------- windows


def test_windows_by_rows_and_by_time():
    times = pd.to_datetime(["2024-01-01 00:10", "2024-01-01 00:20", "2024-01-01 01:05", "2024-01-01 03:59",
                            "2024-01-01 04:00"], utc=True)
    frame = pd.DataFrame({"timestamp": times, "x": range(5)}, index=[10, 11, 12, 13, 14])
    assert windows(frame, 2).tolist() == [0, 0, 1, 1, 2]
    by_hour = windows(frame, "1h")
    assert by_hour.tolist() == [0, 0, 1, 3, 4] and by_hour.index.tolist() == frame.index.tolist()
    assert windows(frame, pd.Timedelta("1D")).tolist() == [0] * 5
    assert frame.groupby(windows(frame, "2h"))["x"].sum().to_dict() == {0: 3, 1: 3, 2: 4}
    for bad in (0, -5, "soon", "-1h", True):
        with pytest.raises(ParameterError, match="size"):
            windows(frame, bad)
    with pytest.raises(ParameterError, match="on="):
        windows(frame.drop(columns="timestamp"), "1h")


# --------------------------------------------------------------------------- clear errors


def test_where_the_log_goes(tmp_path, monkeypatch):
    monkeypatch.setenv("MLKIT_ROOT", str(tmp_path))
    monkeypatch.delenv(store.ENV_VAR, raising=False)
    assert resolve_url() == f"sqlite:///{tmp_path / '.mlkit' / 'predictions.db'}"
    assert resolve_url("logs/p.db") == f"sqlite:///{tmp_path / 'logs' / 'p.db'}"  # the repository, not the cwd
    assert resolve_url("sqlite:///logs/p.db") == f"sqlite:///{tmp_path / 'logs' / 'p.db'}"
    with PredictionLogger() as logger:
        logger.log(_record(1))
    assert (tmp_path / ".mlkit" / "predictions.db").is_file()
    with sqlite3.connect(tmp_path / ".mlkit" / "predictions.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    monkeypatch.setenv(store.ENV_VAR, f"sqlite:///{tmp_path / 'env.db'}")
    assert resolve_url() == f"sqlite:///{tmp_path / 'env.db'}"
    assert resolve_url(tmp_path / "arg.db") == f"sqlite:///{tmp_path / 'arg.db'}"  # an argument wins
    assert resolve_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"


def test_bad_urls_and_paths_say_how_to_fix_them(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(LogStoreError, match=r"Cannot open the prediction log.*a-file.*MLKIT_LOG_DB"):
        PredictionLogger(tmp_path / "a-file" / "log.db")  # unwritable, even for root
    with pytest.raises(ParameterError, match="SQLite and PostgreSQL, not 'mysql'.*postgresql\\+psycopg://"):
        PredictionLogger("mysql://user@host/db")
    with pytest.raises(ParameterError, match="in-memory.*file"):
        PredictionLogger("sqlite://")
    with pytest.raises(ParameterError, match="empty"):
        read_log("  ")
    port = _free_port()  # nothing listens there
    with pytest.raises(LogStoreError, match="PostgreSQL server is running") as caught:
        PredictionLogger(f"postgresql://mlkit:secret-pw@127.0.0.1:{port}/db")
    assert "secret-pw" not in str(caught.value)
    conflicting = tmp_path / "other.db"
    with sqlite3.connect(conflicting) as conn:
        conn.execute("CREATE TABLE predictions (id INTEGER, other TEXT)")
    with pytest.raises(LogStoreError, match="not made by mlkit"):
        read_log(conflicting)


def test_bad_records_are_refused_whole_without_echoing_values(tmp_path):
    url = tmp_path / "log.db"
    secret = "Zx9-secret-value"
    with PredictionLogger(url, durable=True) as logger:
        cases = [
            ([_record(1), {"model": "m", "prediction": 1}], "record 1 has no 'features'"),
            ({"model": "m", "features": {"x": 1}, "prediction": 1, "colour": secret}, "unknown fields"),
            ({"model": "m", "features": [secret], "prediction": 1}, "must be a mapping"),
            ({"model": "m", "features": {"x": object()}, "prediction": 1}, "JSON cannot store"),
            ({"model": "m", "features": {}, "prediction": 1, "score": secret}, "'score' must be a number"),
            ({"model": "m", "features": {}, "prediction": 1, "timestamp": secret}, "ISO 8601"),
            ([_record(7), _record(7)], "appear twice"),
            (pd.DataFrame({"x": [1]}), "list of records"),
            ([secret], "not a mapping"),
        ]
        for records, message in cases:
            with pytest.raises(ParameterError, match=message) as caught:
                logger.log(records)
            assert secret not in str(caught.value)
    assert _count(url) == 0  # nothing of a refused call was queued
    for kwargs in ({"batch_size": 0}, {"flush_interval": -1}, {"max_queue": 1.5}, {"timeout": "10"}):
        with pytest.raises(ParameterError):
            PredictionLogger(url, **kwargs)


def test_a_log_file_made_anew_is_read_anew(tmp_path):
    db = tmp_path / "log.db"
    with PredictionLogger(db) as logger:
        logger.log([_record(1), _record(2)])
    assert _count(db) == 2
    for suffix in ("", "-wal", "-shm"):  # a notebook starting from a clean log
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    assert _count(db) == 0
    with PredictionLogger(db) as logger:
        logger.log(_record(3))
    assert read_log(db)["request_id"].tolist() == ["3"]
    assert attach_labels(db, {"3": 1}).matched == 1


def test_log_served_commits_each_part_on_its_own_and_builds_rows_off_the_callers_thread(store_url):
    import numpy as np

    from mlkit.monitoring.store import ServedRows

    def part(ids, amounts, channels, predictions, scores):
        return ServedRows(ids, {"amount": np.asarray(amounts, dtype=float), "channel": np.asarray(channels, dtype=object)},
                          predictions, scores, "fraud", "3", "mlkit-onnx")

    with PredictionLogger(store_url, durable=True) as logger:
        assert logger.log_served([part(["s1"], [1.0], ["web"], [1], [0.75])]).result(30) == [None]
        done = logger.log_served([
            part(["s2", "s3"], [2.5, float("nan")], ["app", float("nan")], [0, 1], [0.125, float("nan")]),
            part(["s1"], [9.0], ["web"], [1], [0.5]),  # already logged: this part alone is refused
            part(["s4"], [4.0], ["web"], ["yes"], None),
        ])
        errors = done.result(30)
        assert errors[0] is None and errors[2] is None
        assert isinstance(errors[1], LogStoreError) and "s1" in str(errors[1])
        assert logger.written == 4 and logger.failed == 1
        with pytest.raises(ParameterError, match="rows"):
            logger.log_served([part(["s5", "s6"], [1.0], ["web"], [1], None)])
        with pytest.raises(ParameterError, match="ServedRows"):
            logger.log_served([{"request_id": "s7"}])
    log = read_log(store_url).set_index("request_id")
    assert sorted(log.index) == ["s1", "s2", "s3", "s4"]
    assert log.loc["s1", "score"] == 0.75 and log.loc["s2", "score"] == 0.125
    assert pd.isna(log.loc["s3", "score"]) and pd.isna(log.loc["s4", "score"])
    assert pd.isna(log.loc["s3", "amount"]) and pd.isna(log.loc["s3", "channel"]) and log.loc["s2", "channel"] == "app"
    assert log.loc["s4", "prediction"] == "yes" and set(log["served_by"]) == {"mlkit-onnx"}
    assert set(log["model_version"]) == {"3"}
