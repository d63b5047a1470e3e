"""Running notebooks: a failing run is recorded with its cell and error, the report links runs."""

from __future__ import annotations

import json

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
    assert "href='00_hello.html'" in page and "href='usecases_shop.html'" in page
    assert "1 of 2 notebooks ran without error" in page
    assert (tmp_path / "build" / "00_hello.html").read_text().startswith("<!DOCTYPE html>")


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
