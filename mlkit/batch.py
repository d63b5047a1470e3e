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

import html
import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlkit import paths
from mlkit.errors import MlkitError

__all__ = [
    "RunResult",
    "course_notebooks",
    "run_notebook",
    "run_many",
    "render_html",
    "write_index",
    "run_course",
    "strip_run_metadata",
    "regenerate_notebooks",
]


@dataclass
class RunResult:
    """What one notebook run produced."""

    notebook: str
    output: str
    parameters: dict[str, Any]
    status: str = "pending"  # "ok" or "failed"
    duration_s: float = 0.0
    error: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    html: str = ""


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
    km = AsyncKernelManager(kernel_name="python3")
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
        result.status = "failed"
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
                if not _alive(pid):
                    return
                time.sleep(0.2)

    def stop(self) -> None:
        if self._timer:
            self._timer.cancel()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _shutdown(km) -> None:
    """Stop the run's kernel whatever happened; nothing outlives a run."""
    import asyncio

    try:
        if km.has_kernel:
            asyncio.run(km.shutdown_kernel(now=True))
    except Exception:  # already dead, or the loop is gone: kill by pid as a last resort
        pid = getattr(getattr(km, "provisioner", None), "pid", None)
        if pid and _alive(pid):
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
) -> list[RunResult]:
    """Run ``(notebook, output, parameters)`` jobs in ``workers`` processes; results in job order.

    With ``render`` each executed notebook is also rendered to HTML beside it.
    """
    if workers < 1:
        raise MlkitError(f"workers must be at least 1, got {workers}.")
    results: dict[int, RunResult] = {}
    os.environ.setdefault("MPLBACKEND", "Agg")
    if workers > 1:
        # Several kernels share the cores: one OpenMP thread each avoids oversubscription, which
        # slows gradient boosting tenfold. Results are identical either way.
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    # spawn, not fork: a forked worker inherits the parent's event-loop and ZeroMQ state,
    # which can leave a kernel client spinning forever.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_run_job, (*job, timeout, render)): i for i, job in enumerate(jobs)}
        for fut in as_completed(futures):
            res = fut.result()
            results[futures[fut]] = res
            if on_done:
                on_done(res)
    return [results[i] for i in range(len(jobs))]


def write_index(results: list[RunResult], out_dir: str | Path, *, title: str = "mlkit course") -> Path:
    """Write ``out_dir/index.html``: a table of runs with status, duration, key figures and links."""
    out_dir = Path(out_dir)
    rows = []
    for r in results:
        link = Path(r.html).name if r.html else Path(r.output).name
        figures = ", ".join(f"{html.escape(str(k))} = {html.escape(str(v))}" for k, v in sorted(r.metrics.items()))
        error = ""
        if r.error.get("ename"):
            error = html.escape(f"cell {r.error.get('cell')}: {r.error.get('ename')}: {r.error.get('evalue')}")
        rows.append(
            f"<tr class='{r.status}'><td><a href='{html.escape(link)}'>{html.escape(r.notebook)}</a></td>"
            f"<td>{r.status}</td><td>{r.duration_s:.1f} s</td><td>{figures or '&ndash;'}</td><td>{error}</td></tr>"
        )
    ok = sum(r.status == "ok" for r in results)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; }}
tr.ok td:nth-child(2) {{ color: #176d2e; }} tr.failed td:nth-child(2) {{ color: #b00020; font-weight: bold; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{ok} of {len(results)} notebooks ran without error.</p>
<table><thead><tr><th>notebook</th><th>status</th><th>duration</th><th>key figures</th><th>error</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table></body></html>
"""
    target = out_dir / "index.html"
    target.write_text(page, encoding="utf-8")
    (out_dir / "runs.json").write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n", encoding="utf-8")
    return target


def run_course(
    out: str | Path = "build",
    *,
    workers: int = 2,
    timeout: float | None = 600,
    on_done: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Execute every course notebook with its defaults into ``out``, render HTML, write the index.

    Each notebook's ``output_dir`` is set to ``out/<notebook stem>`` so its key figures land
    beside the executed copy.
    """
    out_dir = paths.resolve(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for nb in course_notebooks():
        stem = nb.stem if nb.parent.name != "usecases" else f"usecases_{nb.stem}"
        jobs.append((str(nb), str(out_dir / f"{stem}.ipynb"), {"output_dir": str(out_dir / stem)}))
    if not jobs:
        raise MlkitError(f"No notebooks found under {paths.repo_root() / 'notebooks'}.")
    results = run_many(jobs, workers=workers, timeout=timeout, on_done=on_done)
    write_index(results, out_dir)
    return results


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
