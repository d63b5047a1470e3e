"""Shared fixtures. Under CI=true no test may be skipped: a skip fails the run."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import tempfile
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]

# Tests never touch a learner's MLflow store (.mlkit/mlflow.db or $MLFLOW_TRACKING_URI): the whole
# session, and every kernel it starts (nbval, the smoke grid), uses a fresh SQLite file.
_STORE = Path(tempfile.mkdtemp(prefix="mlkit-test-mlflow-"))
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_STORE / 'mlflow.db'}"
os.environ["MLKIT_LOG_DB"] = f"sqlite:///{_STORE / 'predictions.db'}"  # nor a learner's prediction log
# One OpenMP thread per process: tests and notebook kernels run side by side on 2 cores, and
# gradient boosting's threads fighting over them make a 3-second test take minutes.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# A shell that starts `make test &` in the background (no job control) starts it with Ctrl-C
# ignored, and every process inherits that. The tests of Ctrl-C (mlkit batch, running()) need the
# normal behaviour: restore it, in this process and (reset on exec) in the processes it starts.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Kernels (the smoke grid, the batch tests) and servers (running()) start by forking a zygote that
# has imported numpy, pandas, scikit-learn, MLflow and FastAPI once (mlkit/zygote.py): the same
# programs, seconds sooner each. MLKIT_ZYGOTE=off starts everything the usual way.
_ZYGOTE = contextlib.ExitStack()


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("MLKIT_ZYGOTE") != "off":
        from mlkit import zygote

        _ZYGOTE.enter_context(zygote.running())


def pytest_unconfigure(config: pytest.Config) -> None:
    _ZYGOTE.close()


_real_connect = socket.socket.connect


def _loopback_only_connect(self, address):
    """Tests run offline: a connection to anything but loopback is a bug, so it fails loudly."""
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise OSError(f"network access to {host!r} attempted in a test; mlkit runs offline")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only_connect


@pytest.fixture
def repo_root() -> Path:
    return ROOT


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected: `pytest -k something` never starts the grid
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Start the smoke grid in the background as soon as one of its tests is selected (tests/test_notebooks.py)."""
    for item in items:
        if "grid" in getattr(item, "fixturenames", ()) and hasattr(item.module, "start_grid"):
            item.module.start_grid()
            return


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for item in session.items:
        if hasattr(getattr(item, "module", None), "stop_grid"):
            item.module.stop_grid()
            break
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI", "").lower() == "true" and reporter is not None:
        skipped = reporter.stats.get("skipped", [])
        if skipped:
            reporter.write_line(f"CI=true: {len(skipped)} test(s) were skipped; every tier must run in CI.", red=True)
            session.exitstatus = 1
