"""Running notebooks: a failing run is recorded with its cell and error, the report links runs."""

from __future__ import annotations

import json
import os

import nbformat
import pytest

from mlkit import batch
from mlkit.errors import MlkitError


@pytest.fixture
def broken_cell_notebook(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell('output_dir: str = ""  # where metrics go', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import mlkit\nmlkit.record('answer', 42, output_dir=output_dir)"),
        nbformat.v4.new_code_cell("1 / 0"),
    ]
    path = tmp_path / "broken_cell.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.slow
def test_a_failing_run_records_its_cell_and_error_and_the_report_shows_it(tmp_path, broken_cell_notebook):
    out_dir = tmp_path / "runs"
    result = batch.run_notebook(
        broken_cell_notebook, out_dir / "broken.ipynb", parameters={"output_dir": str(out_dir / "broken")}
    )
    assert result.status == "failed"
    assert result.error["ename"] == "ZeroDivisionError" and result.error["cell"] == 4  # after the injected cell
    assert result.metrics == {"answer": 42}
    result.html = str(batch.render_html(result.output))
    index = batch.write_index([result], out_dir)
    page = index.read_text()
    assert "broken_cell.ipynb" in page and "failed" in page and "ZeroDivisionError" in page
    assert "href='broken.html'" in page and "answer = 42" in page
    runs = json.loads((out_dir / "runs.json").read_text())
    assert runs[0]["status"] == "failed"


def test_strip_run_metadata_removes_paths_and_times(tmp_path, broken_cell_notebook):
    nb = nbformat.read(broken_cell_notebook, as_version=4)
    nb.metadata["papermill"] = {"input_path": "/abs/path.ipynb", "start_time": "2026-01-01"}
    nb.cells[0].metadata["execution"] = {"iopub.status.idle": "2026-01-01T00:00:00"}
    nb.cells[0].metadata["papermill"] = {"duration": 1.0}
    nbformat.write(nb, broken_cell_notebook)
    batch.strip_run_metadata(broken_cell_notebook)
    text = broken_cell_notebook.read_text()
    assert "papermill" not in text and "2026-01-01" not in text
    assert nbformat.read(broken_cell_notebook, as_version=4).cells[0].metadata["tags"] == ["parameters"]


def test_workers_must_be_positive():
    with pytest.raises(MlkitError, match="workers must be at least 1"):
        batch.run_many([], workers=0)


@pytest.mark.slow
def test_course_runs_every_notebook_and_indexes_them(tmp_path, monkeypatch):
    (tmp_path / "notebooks" / "usecases").mkdir(parents=True)
    for name, body in [("notebooks/00_hello.ipynb", "1 + 1"), ("notebooks/usecases/shop.ipynb", "raise ValueError('no shop')")]:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [
            nbformat.v4.new_code_cell('output_dir: str = ""  # where metrics go', metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(f"import mlkit\nmlkit.record('ran', True, output_dir=output_dir)\n{body}"),
        ]
        nbformat.write(nb, tmp_path / name)
    monkeypatch.setenv("MLKIT_ROOT", str(tmp_path))
    results = batch.run_course("build", workers=2)
    assert [(r.notebook, r.status) for r in results] == [("00_hello.ipynb", "ok"), ("shop.ipynb", "failed")]
    assert results[1].error["ename"] == "ValueError" and results[0].metrics == {"ran": True}
    page = (tmp_path / "build" / "index.html").read_text()
    assert "href='defaults/00_hello.html'" in page and "href='defaults/shop.html'" in page
    assert "1 of 2 notebooks ran without error" in page
    assert (tmp_path / "build" / "defaults" / "00_hello.html").read_text().startswith("<!DOCTYPE html>")


@pytest.mark.slow
def test_regenerating_a_failing_notebook_keeps_the_committed_copy(tmp_path, monkeypatch, broken_cell_notebook):
    monkeypatch.setenv("MLKIT_ROOT", str(tmp_path))
    before = broken_cell_notebook.read_text()
    [result] = batch.regenerate_notebooks([broken_cell_notebook], workers=1)
    assert result.status == "failed" and result.error["ename"] == "ZeroDivisionError"
    assert broken_cell_notebook.read_text() == before
    assert (tmp_path / "build" / "regenerated" / "broken_cell.ipynb").exists()


@pytest.mark.slow
def test_regenerating_a_good_notebook_stores_outputs_without_run_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("MLKIT_ROOT", str(tmp_path))
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("6 * 7")]
    path = tmp_path / "answer.ipynb"
    nbformat.write(nb, path)
    [result] = batch.regenerate_notebooks([path], workers=1)
    assert result.status == "ok" and result.output == str(path)
    stored = nbformat.read(path, as_version=4)
    assert stored.cells[0].outputs[0]["data"]["text/plain"] == "42"
    assert "papermill" not in path.read_text() and "iopub" not in path.read_text()


def _grid_notebook(folder):
    """x doubles into a metric; x == 3 is the broken parameter set; sleep slows a run down."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(
            "x: int = 1  # the value\nsleep: float = 0.0  # seconds to wait\noutput_dir: str = \"\"  # where metrics go",
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell("import mlkit\nparams = mlkit.check_parameters(globals(), require_supervised=False)"),
        nbformat.v4.new_code_cell("import time\ntime.sleep(sleep)\nmlkit.record('double', 2 * x)"),
        nbformat.v4.new_code_cell("if x == 3:\n    raise ValueError('x=3 is the broken case')"),
    ]
    path = folder / "grid_case.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture
def grid_case(tmp_path):
    return _grid_notebook(tmp_path)


def _batch(*args, cwd=None, **kw):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "mlkit.cli", "batch", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, **kw)


@pytest.mark.slow
def test_grid_with_one_failing_set_completes_the_others_and_resume_reruns_only_it(tmp_path, grid_case):
    from mlkit import cli, grid

    out = tmp_path / "out"
    assert cli.main(["batch", str(grid_case), "--param", "x=1,2,3", "--out", str(out), "--workers", "2"]) == 1
    runs = {r["run_id"]: r for r in json.loads((out / "runs.json").read_text())}
    assert set(runs) == {"x-1", "x-2", "x-3"}
    assert runs["x-1"]["status"] == runs["x-2"]["status"] == "ok" and runs["x-2"]["metrics"] == {"double": 4}
    assert runs["x-3"]["status"] == "failed"
    assert runs["x-3"]["error"]["ename"] == "ValueError" and runs["x-3"]["error"]["cell"] == 5  # 4 cells + injected
    assert (out / "x-2" / "grid_case.ipynb").exists() and (out / "x-2" / "grid_case.html").exists()
    page = (out / "index.html").read_text()
    assert "href='x-1/grid_case.html'" in page and "<img src='metric.png'" in page and (out / "metric.png").exists()

    done_at = (out / "x-1" / "grid_case.ipynb").stat().st_mtime_ns
    planned = grid.plan([grid_case], grid.expand({"x": [1, 2, 3]}), out)
    results = batch.run_batch(planned, out, workers=2, resume=True)
    assert [r.status for r in results] == ["ok", "ok", "failed"]
    assert (out / "x-1" / "grid_case.ipynb").stat().st_mtime_ns == done_at, "a run that succeeded is not run again"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--param", "y=1"], "run 1 (y-1) of grid_case.ipynb: Unknown parameter 'y'"),
        (["--param", "x=one"], "run 1 (x-one) of grid_case.ipynb: Parameter 'x' must be int"),
        (["--param", "x"], "is not of the form NAME=V1,V2"),
        (["--grid", "missing.yaml"], "Grid file not found"),
        (["--param", "x=1,1"], "the grid repeats a parameter set"),
    ],
)
def test_a_bad_grid_is_refused_before_any_run(tmp_path, grid_case, capsys, args, message):
    from mlkit import cli

    assert cli.main(["batch", str(grid_case), "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists(), "nothing ran"


def test_yaml_grid_lists_runs_and_products(tmp_path):
    from mlkit import grid

    path = tmp_path / "class.yaml"
    path.write_text("grid:\n  use_case: [retail-demand, finance-fraud]\n  seed: [0, 1]\nruns:\n  - {use_case: healthcare-diagnosis, smoke: true}\n")
    runs = grid.load_grid_file(path)
    assert len(runs) == 5 and runs[-1] == {"use_case": "healthcare-diagnosis", "smoke": True}
    path.write_text("- seed: [1\n")
    with pytest.raises(grid.GridError, match="not valid YAML"):
        grid.load_grid_file(path)


@pytest.mark.slow
def test_ctrl_c_leaves_a_consistent_state_that_resume_completes(tmp_path, grid_case):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mlkit.cli", "batch", str(grid_case), "--param", "x=1,2,4,5", "--param", "sleep=4",
           "--out", str(out), "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the first runs have finished
        if (out / "runs.json").exists() and '"status": "ok"' in (out / "runs.json").read_text():
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "--resume" in err
    statuses = [r["status"] for r in json.loads((out / "runs.json").read_text())]
    assert "ok" in statuses and set(statuses) <= {"ok", "interrupted"} and statuses != ["ok"] * 4

    resumed = _batch(grid_case, "--param", "x=1,2,4,5", "--param", "sleep=4", "--out", out, "--workers", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    statuses = [r["status"] for r in json.loads((out / "runs.json").read_text())]
    assert statuses == ["ok"] * 4


@pytest.mark.slow
def test_dask_backend_gives_the_same_results_and_report(tmp_path, grid_case):
    from mlkit import grid

    planned = grid.plan([grid_case], grid.expand({"x": [1, 2, 3]}), tmp_path / "dask")
    results = batch.run_batch(planned, tmp_path / "dask", workers=2, backend="dask")
    assert [(r.run_id, r.status, r.metrics.get("double")) for r in results] == [
        ("x-1", "ok", 2), ("x-2", "ok", 4), ("x-3", "failed", 6)]
    assert results[2].error["ename"] == "ValueError"
    assert (tmp_path / "dask" / "index.html").exists() and (tmp_path / "dask" / "x-1" / "grid_case.html").exists()


@pytest.mark.slow
def test_a_run_over_its_timeout_is_recorded_and_the_batch_goes_on(tmp_path, grid_case):
    from mlkit import grid

    planned = grid.plan([grid_case], [{"x": 1, "sleep": 60.0}, {"x": 2}], tmp_path / "t")
    results = batch.run_batch(planned, tmp_path / "t", workers=2, timeout=5)
    assert results[0].status == "failed" and results[0].error["ename"] == "Timeout"
    assert results[1].status == "ok"


@pytest.mark.slow
def test_dask_backend_runs_on_an_existing_scheduler(tmp_path, grid_case):
    from mlkit import cli
    from mlkit.cluster import local_cluster

    with local_cluster(1) as cluster:
        code = cli.main(["batch", str(grid_case), "--param", "x=1,2", "--out", str(tmp_path / "out"),
                         "--backend", "dask", "--scheduler", cluster.scheduler_address])
    assert code == 0
    runs = json.loads((tmp_path / "out" / "runs.json").read_text())
    assert [(r["run_id"], r["status"], r["metrics"]) for r in runs] == [("x-1", "ok", {"double": 2}), ("x-2", "ok", {"double": 4})]


def test_scheduler_without_the_dask_backend_is_refused(tmp_path, grid_case, capsys):
    from mlkit import cli

    assert cli.main(["batch", str(grid_case), "--out", str(tmp_path / "o"), "--scheduler", "tcp://127.0.0.1:8786"]) == 2
    assert "--scheduler needs --backend dask" in capsys.readouterr().err
    assert not (tmp_path / "o").exists(), "refused before anything was written"


@pytest.mark.slow
def test_a_local_dask_cluster_leaves_the_callers_environment_as_it_was():
    """dask's nanny writes PYTHONHASHSEED and thread counts into os.environ; mlkit takes them back."""
    from mlkit.cluster import local_cluster

    before = dict(os.environ)
    with local_cluster(1) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        assert dict(os.environ) == before
    assert dict(os.environ) == before
