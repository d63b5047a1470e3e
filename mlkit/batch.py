"""Run notebooks with papermill: one run, the course (every notebook at its defaults), a report.

Runs go through papermill's Python API in worker processes, kernel ``python3``, with the
notebook's folder as working directory. A failing run is recorded with its failing cell,
error name and message; the others go on.

Examples
--------
>>> [p.name for p in course_notebooks()][:2]
['00_start_here.ipynb', '01_training.ipynb']
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlkit import paths, report, zygote
from mlkit.report import write_index
from mlkit.errors import MlkitError

__all__ = [
    "RunResult",
    "course_notebooks",
    "run_notebook",
    "run_many",
    "render_html",
    "write_index",
    "run_course",
    "run_batch",
    "BatchInterrupted",
    "strip_run_metadata",
    "regenerate_notebooks",
]


@dataclass
class RunResult:
    """What one notebook run produced."""

    notebook: str
    output: str
    parameters: dict[str, Any]
    status: str = "pending"  # then "ok", "failed" or "interrupted"
    duration_s: float = 0.0
    error: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    html: str = ""
    run_id: str = ""
    key: str = ""


def course_notebooks(root: Path | None = None) -> list[Path]:
    """The course's notebooks in order: ``notebooks/NN_*.ipynb`` then ``notebooks/usecases/*.ipynb``."""
    nb_dir = (root or paths.repo_root()) / "notebooks"
    found = sorted(nb_dir.glob("[0-9][0-9]_*.ipynb")) + sorted((nb_dir / "usecases").glob("*.ipynb"))
    return [p for p in found if ".ipynb_checkpoints" not in p.parts]


def _failing_cell(nb_path: Path) -> dict[str, Any]:
    """Find the first cell whose outputs hold an error, in an executed notebook."""
    import nbformat

    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:  # an unreadable output notebook: report without the cell
        return {}
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return {"cell": code_index, "ename": out.get("ename", ""), "evalue": out.get("evalue", "")}
    return {}


def run_notebook(
    notebook: str | Path,
    output: str | Path,
    *,
    parameters: dict[str, Any] | None = None,
    timeout: float | None = 600,
    cwd: str | Path | None = None,
) -> RunResult:
    """Execute one notebook with papermill and return what happened (never raises for a failing cell).

    Parameters
    ----------
    notebook, output
        Source notebook and where the executed copy goes.
    parameters
        Parameters to inject; ``output_dir`` decides where ``metrics.json`` is read from.
    timeout
        Seconds the whole run may take; at the deadline the kernel is interrupted (then
        killed if it does not stop) and the run is recorded as failed with ``Timeout``.
    cwd
        Working directory of the kernel; the notebook's folder by default.
    """
    import papermill as pm
    from jupyter_client.manager import AsyncKernelManager

    notebook, output = Path(notebook), Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    params = dict(parameters or {})
    result = RunResult(notebook=notebook.name, output=str(output), parameters=params)
    km = _kernel_manager_class(AsyncKernelManager)(kernel_name="python3")
    watchdog = _Watchdog(km, timeout)
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(notebook),
            str(output),
            parameters=params,
            kernel_name="python3",
            cwd=str(cwd or notebook.parent),
            execution_timeout=timeout,
            progress_bar=False,
            log_output=False,
            km=km,
            # The kernel talks to us over loopback only; its warning that TCP is unencrypted
            # would print once per run and bury the progress bar.
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
            on_notebook_start=lambda **_: watchdog.start(),
        )
        result.status = "ok"
    except pm.PapermillExecutionError as exc:
        result.status = "interrupted" if exc.ename == "KeyboardInterrupt" and not watchdog.fired else "failed"
        result.error = {"cell": exc.exec_count, "ename": exc.ename, "evalue": exc.evalue}
        result.error.update({k: v for k, v in _failing_cell(output).items() if k not in result.error or not result.error[k]})
    except Exception as exc:  # kernel died, cell timeout, unreadable notebook: record, do not crash the batch
        result.status = "failed"
        result.error = {"cell": None, "ename": type(exc).__name__, "evalue": str(exc)[:500]}
    finally:
        watchdog.stop()
        _shutdown(km)
    if watchdog.fired:
        result.status = "failed"
        result.error.update({"ename": "Timeout", "evalue": f"the run took longer than {timeout:g} s (--timeout)"})
    result.duration_s = round(time.perf_counter() - start, 2)
    if params.get("output_dir"):
        metrics_file = paths.resolve(params["output_dir"]) / "metrics.json"
        if metrics_file.exists():
            result.metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    return result


def _kernel_manager_class(base):
    """``base`` (jupyter_client's kernel manager), starting its kernel from the zygote when one runs.

    The kernel is the same ``python -m ipykernel_launcher -f <connection file>``, forked with
    numpy, pandas and scikit-learn already imported (:mod:`mlkit.zygote`); without a zygote, or
    if it refuses, the kernel starts the usual way.
    """

    class ForkingKernelManager(base):
        async def _async_launch_kernel(self, kernel_cmd, **kw):
            # As jupyter_client's launcher does: the kernel knows its parent (and stays quiet about Ctrl-C).
            env = {**(kw.get("env") or os.environ), "JPY_PARENT_PID": str(os.getpid())}
            proc = zygote.spawn(kernel_cmd, env=env, cwd=kw.get("cwd"))
            if proc is None:
                return await super()._async_launch_kernel(kernel_cmd, **kw)
            provisioner = self.provisioner
            provisioner.process, provisioner.pid, provisioner.pgid = proc, proc.pid, proc.pid
            provisioner.cwd = kw.get("cwd")
            self._reconcile_connection_info(provisioner.connection_info)

    return ForkingKernelManager


class _Watchdog:
    """Interrupts, then kills, a kernel that outlives its run's deadline."""

    def __init__(self, km, timeout: float | None):
        self.km, self.timeout, self.fired = km, timeout, False
        self._timer: threading.Timer | None = None

    def start(self) -> None:
        if self.timeout:
            self._timer = threading.Timer(self.timeout, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        pid = getattr(getattr(self.km, "provisioner", None), "pid", None)
        if not pid:
            return
        self.fired = True
        for sig, grace in ((signal.SIGINT, 10.0), (signal.SIGKILL, 0.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not zygote.alive(pid):
                    return
                time.sleep(0.2)

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()


def _shutdown(km) -> None:
    """Stop the run's kernel whatever happened; nothing outlives a run."""
    import asyncio

    try:
        if km.has_kernel:
            asyncio.run(km.shutdown_kernel(now=True))
    except Exception:  # already dead, or the loop is gone: kill by pid as a last resort
        pid = getattr(getattr(km, "provisioner", None), "pid", None)
        if pid and zygote.alive(pid):
            os.kill(pid, signal.SIGKILL)


def render_html(executed: str | Path) -> Path:
    """Render an executed notebook to HTML beside it (same name, ``.html``)."""
    import nbformat
    from nbconvert import HTMLExporter

    executed = Path(executed)
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(executed, as_version=4))
    target = executed.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


def _run_job(job: tuple[str, str, dict[str, Any], float | None, bool]) -> RunResult:
    notebook, output, params, timeout, render = job
    result = run_notebook(notebook, output, parameters=params, timeout=timeout)
    if render and Path(output).exists():
        try:
            result.html = str(render_html(output))
        except Exception as exc:  # a render failure must not lose the run's result
            result.error.setdefault("render", f"{type(exc).__name__}: {exc}"[:300])
    return result


def run_many(
    jobs: list[tuple[str, str, dict[str, Any]]],
    *,
    workers: int = 2,
    timeout: float | None = 600,
    render: bool = True,
    on_done: Callable[[RunResult], None] | None = None,
    fast_start: bool = False,
) -> list[RunResult]:
    """Run ``(notebook, output, parameters)`` jobs in ``workers`` processes; results in job order.

    With ``render`` each executed notebook is also rendered to HTML beside it. With ``fast_start``
    kernels and servers are forked from a warm zygote (:mod:`mlkit.zygote`): the same runs, without
    importing the libraries again for each (off by default: committed outputs and the course come
    from fresh kernels).
    """
    full = [(str(nb), str(out), dict(params), timeout, render) for nb, out, params in jobs]
    results: list[RunResult | None] = [None] * len(full)
    for i, res in _completions(list(enumerate(full)), backend="local", workers=workers, fast_start=fast_start):
        results[i] = res
        if on_done:
            on_done(res)
    return [r for r in results if r is not None]


def _completions(jobs, *, backend: str, workers: int, scheduler: str | None = None, fast_start: bool = False):
    """Yield ``(index, RunResult)`` as jobs finish, on a local process pool or on Dask.

    With ``fast_start`` (local backend, Linux) kernels and the servers they start are forked from
    a zygote that has already imported the libraries (:mod:`mlkit.zygote`), a few seconds each.
    """
    _check_backend(backend, workers, scheduler)
    os.environ.setdefault("MPLBACKEND", "Agg")
    if workers > 1 or backend == "dask":
        # Several kernels share the cores: one OpenMP thread each avoids oversubscription, which
        # slows gradient boosting tenfold. Results are identical either way.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not jobs:
        return
    if backend == "dask":
        yield from _dask_completions(jobs, workers=workers, scheduler=scheduler)
        return
    with zygote.running() if fast_start and zygote.SUPPORTED else contextlib.nullcontext():
        # spawn, not fork: a forked worker inherits the parent's event-loop and ZeroMQ state,
        # which can leave a kernel client spinning forever. (The zygote forks kernels from a
        # process that has imported the libraries and started nothing.)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            futures = {pool.submit(_run_job, job): i for i, job in jobs}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:  # Ctrl-C, or the consumer stopped early: stop the runs still going
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True)


def _check_backend(backend: str, workers: int, scheduler: str | None) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise MlkitError(f"workers must be at least 1, got {workers}.")
    if backend not in ("local", "dask"):
        raise MlkitError(f"Unknown backend {backend!r}; use 'local' or 'dask'.")
    if scheduler and backend != "dask":
        raise MlkitError("--scheduler needs --backend dask.")


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: cancel what has not started, interrupt what runs (its kernel is shut down)."""
    processes = list(getattr(pool, "_processes", {}).values())  # no public handle on the workers
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            try:
                os.kill(proc.pid, signal.SIGINT)  # run_notebook's finally shuts its kernel down
            except ProcessLookupError:
                pass
    for proc in processes:
        proc.join(timeout=15)
        if proc.is_alive():
            proc.terminate()


def _dask_completions(jobs, *, workers: int, scheduler: str | None):
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed

        from mlkit.cluster import start_local_cluster
    except ImportError:
        raise MlkitError("The Dask backend needs dask.distributed: pip install 'mlkit[distributed]'.") from None
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout=30)
    else:
        cluster = start_local_cluster(workers)  # loopback, one thread a worker; os.environ left as it was
        client = Client(cluster)
    futures = {}
    try:
        futures = {client.submit(_run_job, job, pure=False): i for i, job in jobs}
        for fut in dask_completed(futures):
            yield futures[fut], fut.result()
    finally:
        client.cancel(list(futures))
        client.close()
        if cluster is not None:
            cluster.close()


class BatchInterrupted(MlkitError):
    """Raised when a batch is stopped (Ctrl-C); ``runs.json`` is consistent and ``--resume`` completes it."""


def _previous_successes(out_dir: Path) -> dict[str, dict[str, Any]]:
    file = out_dir / "runs.json"
    if not file.exists():
        return {}
    try:
        entries = json.loads(file.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return {e["key"]: e for e in entries if e.get("status") == "ok" and e.get("key") and Path(e["output"]).exists()}


def run_batch(
    runs: list,
    out_dir: str | Path,
    *,
    workers: int = 2,
    timeout: float | None = 600,
    resume: bool = False,
    backend: str = "local",
    scheduler: str | None = None,
    metric: str | None = None,
    title: str = "mlkit batch",
    on_progress: Callable[[dict[str, int]], None] | None = None,
    fast_start: bool = True,
) -> list[RunResult]:
    """Execute planned runs (:func:`mlkit.grid.plan`), record them, and write the report.

    ``runs.json`` is rewritten after every finished run; with ``resume`` a run whose notebook
    content and parameters already succeeded is skipped. On Ctrl-C the runs still going are
    stopped, recorded as ``interrupted``, and :class:`BatchInterrupted` is raised.

    Parameters
    ----------
    runs
        :class:`mlkit.grid.Run` objects.
    out_dir
        Where ``<run-id>/<notebook>.ipynb``, its HTML, ``runs.json`` and ``index.html`` go.
    on_progress
        Called with counts ``done``, ``failed``, ``running``, ``skipped``, ``total`` after each change.
    fast_start
        Fork kernels and the servers they start from a warm zygote (:mod:`mlkit.zygote`; local
        backend on Linux): a grid's runs each skip seconds of imports.
    """
    _check_backend(backend, workers, scheduler)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = _previous_successes(out_dir) if resume else {}
    results = []
    todo = []
    for i, run in enumerate(runs):
        if run.key in previous:
            results.append(RunResult(**{k: v for k, v in previous[run.key].items() if k in RunResult.__dataclass_fields__}))
        else:
            results.append(RunResult(notebook=run.notebook.name, output=str(run.output), parameters=run.parameters,
                                     run_id=run.run_id, key=run.key))
            todo.append((i, (str(run.notebook), str(run.output), run.parameters, timeout, True)))
    counts = {"done": 0, "failed": 0, "running": min(workers, len(todo)), "skipped": len(runs) - len(todo), "total": len(runs)}
    report.write_runs(results, out_dir)
    if on_progress:
        on_progress(dict(counts))
    stream = _completions(todo, backend=backend, workers=workers, scheduler=scheduler, fast_start=fast_start)
    try:
        for i, res in stream:
            res.run_id, res.key = runs[i].run_id, runs[i].key
            results[i] = res
            counts["done"] += 1
            counts["failed"] += res.status != "ok"
            counts["running"] = min(workers, len(todo) - counts["done"])
            report.write_runs(results, out_dir)
            if on_progress:
                on_progress(dict(counts))
    except KeyboardInterrupt:
        stream.close()
        for r in results:
            if r.status == "pending":
                r.status = "interrupted"
        report.write_runs(results, out_dir)
        report.write_index(results, out_dir, title=title, metric=metric)
        finished = sum(r.status in ("ok", "failed") for r in results)
        raise BatchInterrupted(
            f"Interrupted: {finished} of {len(results)} runs finished and are recorded in {out_dir / 'runs.json'}; "
            "run the same command with --resume to complete the rest."
        ) from None
    report.write_index(results, out_dir, title=title, metric=metric)
    return results


def run_course(
    out: str | Path = "build",
    *,
    workers: int = 2,
    timeout: float | None = 600,
    on_progress: Callable[[dict[str, int]], None] | None = None,
) -> list[RunResult]:
    """The batch over every course notebook with its defaults: ``out/defaults/<notebook>``, ``out/index.html``."""
    from mlkit import grid

    notebooks = course_notebooks()
    if not notebooks:
        raise MlkitError(f"No notebooks found under {paths.repo_root() / 'notebooks'}.")
    out_dir = paths.resolve(out)
    runs = grid.plan(notebooks, [{}], out_dir)
    return run_batch(runs, out_dir, workers=workers, timeout=timeout, title="mlkit course", on_progress=on_progress)


def strip_run_metadata(notebook: str | Path) -> None:
    """Remove what changes on every run from a notebook: papermill's paths, times and durations.

    Committed notebooks keep outputs but no absolute paths or timestamps, so regenerating
    them gives a diff only where an output really changed.
    """
    import nbformat

    notebook = Path(notebook)
    nb = nbformat.read(notebook, as_version=4)
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        if "tags" in cell.metadata and not cell.metadata["tags"]:
            del cell.metadata["tags"]
    nbformat.write(nb, notebook)


def regenerate_notebooks(
    notebooks: list[Path] | None = None,
    *,
    workers: int = 2,
    on_done: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Re-execute notebooks with their defaults and replace the committed copies (``make notebooks``).

    Each notebook runs into ``build/regenerated/``; only a run that succeeds replaces the
    original (with run metadata stripped), so a failing notebook never overwrites good outputs.
    The failed copy stays in ``build/regenerated/`` for inspection.
    """
    notebooks = [Path(nb) for nb in (notebooks or course_notebooks())]
    scratch = paths.resolve("build") / "regenerated"
    scratch.mkdir(parents=True, exist_ok=True)
    jobs = [(str(nb), str(scratch / nb.name), {}) for nb in notebooks]
    results = run_many(jobs, workers=workers, render=False, on_done=on_done)
    for nb, r in zip(notebooks, results):
        if r.status == "ok":
            strip_run_metadata(r.output)
            shutil.move(r.output, nb)
            r.output = str(nb)
    return results
