"""A Dask ``LocalCluster`` on loopback that leaves this process's environment as it found it.

dask.distributed's nanny prepares its workers' environment by writing into ``os.environ`` of the
process that starts the cluster (``PYTHONHASHSEED=6640``, one thread for OpenMP, MKL and
OpenBLAS, ``MALLOC_TRIM_THRESHOLD_``...), and never takes it back. The workers keep what they
were started with; the caller gets its own environment back, so a later subprocess (a kernel, a
server, :mod:`mlkit.zygote`'s check of start-up variables) sees what the user set.

    >>> import os
    >>> before = dict(os.environ)
    >>> with local_cluster(n_workers=1) as cluster:   # doctest: +SKIP
    ...     ...
    >>> dict(os.environ) == before                   # doctest: +SKIP
    True
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

__all__ = ["local_cluster"]


@contextlib.contextmanager
def _environ_restored() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update({k: v for k, v in saved.items() if os.environ.get(k) != v})


def start_local_cluster(n_workers: int, **options: Any):
    """Start a ``LocalCluster`` (processes, one thread each, 127.0.0.1, no dashboard) without touching os.environ."""
    from distributed import LocalCluster

    settings = {"threads_per_worker": 1, "processes": True, "host": "127.0.0.1", "dashboard_address": None,
                "silence_logs": logging.ERROR, **options}
    with _environ_restored():
        return LocalCluster(n_workers=n_workers, **settings)


@contextlib.contextmanager
def local_cluster(n_workers: int, **options: Any) -> Iterator[Any]:
    """:func:`start_local_cluster` as a ``with`` block that closes the cluster."""
    cluster = start_local_cluster(n_workers, **options)
    try:
        yield cluster
    finally:
        with _environ_restored():
            cluster.close()
