"""Student editions: no solution survives, outputs go, self-checks stay verbatim; the
instructor's editions pass their own self-checks, and a student's edition stops at the first
self-check with a message that says what to define."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mlkit import batch
from mlkit.errors import ParameterError
from mlkit.student import EXERCISE_TAG, SELF_CHECK_TAG, SOLUTION_TAG, student_edition, write_student_editions

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = batch.course_notebooks(ROOT)
SELF_CHECKED = [p for p in NOTEBOOKS if p.name[:2] in ("00", "01", "02", "03")]  # every exercise has a self-check
TICK = re.compile(r"✓ exercise (\d+) looks right")


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def _code(nb, tag: str | None = None) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and (tag is None or tag in _tags(c))]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _leak_candidates(instructor) -> set[str]:
    """The non-trivial lines of every solution cell that no other cell of the notebook shares."""
    shared = {ln.strip() for c in instructor.cells if SOLUTION_TAG not in _tags(c) for ln in c.source.splitlines()}
    lines = set()
    for cell in instructor.cells:
        if SOLUTION_TAG in _tags(cell):
            lines |= {ln.strip() for ln in cell.source.splitlines()}
    return {ln for ln in lines - shared if len(ln) >= 8 and re.search(r"[A-Za-z0-9]", ln)}


# ---- every committed notebook --------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_edition_carries_no_solution_line(path):
    instructor = _read(path)
    student = student_edition(instructor)
    text = "\n".join(c.source for c in student.cells)
    lines = {ln.strip() for ln in text.splitlines()}
    candidates = _leak_candidates(instructor)
    assert candidates, "the solutions have lines to look for"
    # a solution line as a line of its own, or (when long enough to be unmistakable) anywhere in a cell
    leaked = sorted(ln for ln in candidates if ln in lines or (len(ln) >= 25 and ln in text))
    assert not leaked, f"solution lines in the student edition of {path.name}: {leaked[:3]}"
    assert not [c for c in student.cells if SOLUTION_TAG in _tags(c)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_edition_has_no_outputs_and_no_run_records(path):
    student = student_edition(_read(path))
    assert all(c.outputs == [] and c.execution_count is None for c in _code(student))
    assert set(student.metadata) <= {"kernelspec", "language_info"}
    assert student.metadata["kernelspec"]["name"] == "python3"
    assert not [c for c in student.cells if {"papermill", "execution"} & set(c.metadata)]
    assert "papermill" not in json.dumps(student.metadata)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_edition_keeps_every_self_check_verbatim(path):
    instructor = _read(path)
    student = student_edition(instructor)
    kept = [(c.source, _tags(c)) for c in _code(student, SELF_CHECK_TAG)]
    assert kept == [(c.source, _tags(c)) for c in _code(instructor, SELF_CHECK_TAG)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_edition_has_one_placeholder_per_solution(path):
    instructor = _read(path)
    student = student_edition(instructor)
    placeholders = _code(student, EXERCISE_TAG)
    assert len(placeholders) == len(_code(instructor, SOLUTION_TAG)) >= 2
    numbers = [int(re.fullmatch(r"# Your solution to exercise (\d+) here", c.source).group(1)) for c in placeholders]
    assert numbers == list(range(1, len(numbers) + 1))
    headings = [c.source for c in student.cells if c.cell_type == "markdown" and c.source.startswith("**Your solution")]
    assert headings == [f"**Your solution to exercise {n}**" for n in numbers]
    # everything that is neither solution nor output is kept, in order
    others = [c.source for c in instructor.cells if SOLUTION_TAG not in _tags(c) and not c.source.startswith("**Solution")]
    assert others == [c.source for c in student.cells if EXERCISE_TAG not in _tags(c) and not c.source.startswith("**Your")]


@pytest.mark.parametrize("path", SELF_CHECKED, ids=lambda p: p.name)
def test_every_solution_is_followed_by_its_self_check(path):
    nb = _read(path)
    solutions = _code(nb, SOLUTION_TAG)
    for n, solution in enumerate(solutions, 1):
        after = nb.cells[nb.cells.index(solution) + 1 :]
        after = [c for c in after if not (c.cell_type == "markdown" and SOLUTION_TAG in _tags(c))]  # its discussion
        intro, check = after[0], after[1]
        assert intro.source == "Run this self-check after your solution:", f"exercise {n}: intro line"
        assert SELF_CHECK_TAG in _tags(check) and check.cell_type == "code", f"exercise {n}: self-check cell"
        assert check.source.startswith("assert ") and "in globals()" in check.source.splitlines()[0], (
            f"exercise {n}: the self-check first says which variable to define"
        )
        assert f'print("✓ exercise {n} looks right")' in check.source


@pytest.mark.parametrize("path", SELF_CHECKED, ids=lambda p: p.name)
def test_committed_instructor_edition_passes_its_self_checks(path):
    checks = _code(_read(path), SELF_CHECK_TAG)
    assert len(checks) == len(_code(_read(path), SOLUTION_TAG))
    for n, cell in enumerate(checks, 1):
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert f"✓ exercise {n} looks right" in text, f"self-check {n} of {path.name}: {cell.outputs}"


# ---- executed: the instructor passes, the student is told what to do ------------------------


TRAINING = ROOT / "notebooks" / "01_training.ipynb"


@pytest.fixture
def one_thread(monkeypatch):
    """One OpenMP thread in the kernel, as batch.run_many sets: on a busy machine, competing
    threads slow gradient boosting down tenfold or more."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.mark.slow
def test_instructor_edition_passes_its_self_checks_in_smoke_mode(tmp_path, one_thread):
    result = batch.run_notebook(
        TRAINING, tmp_path / "instructor.ipynb", parameters={"smoke": True, "output_dir": str(tmp_path / "out")},
        cwd=ROOT / "notebooks",
    )
    assert result.status == "ok", result.error
    checks = _code(_read(tmp_path / "instructor.ipynb"), SELF_CHECK_TAG)
    assert len(checks) == 3
    for n, cell in enumerate(checks, 1):
        assert f"✓ exercise {n} looks right" in "".join(o.get("text", "") for o in cell.outputs)


@pytest.mark.slow
def test_student_edition_stops_at_the_first_self_check_saying_what_to_define(tmp_path, one_thread):
    [written] = write_student_editions([TRAINING], tmp_path / "student")
    result = batch.run_notebook(
        written.path, tmp_path / "ran.ipynb", parameters={"smoke": True, "output_dir": str(tmp_path / "out")},
        cwd=ROOT / "notebooks",
    )
    assert result.status == "failed"
    assert result.error["ename"] == "AssertionError"
    assert "Define with_forest in your solution to exercise 1 above." in result.error["evalue"]
    ran = _read(tmp_path / "ran.ipynb")
    failing = [c for c in _code(ran) if any(o.output_type == "error" for o in c.outputs)]
    assert failing == [_code(ran, SELF_CHECK_TAG)[0]], "the first self-check is where the run stops"
    placeholder = _code(ran, EXERCISE_TAG)[0]
    assert placeholder.execution_count is not None, "every cell before it ran, the placeholder included"


# ---- student_edition on small notebooks ----------------------------------------------------


def _lesson(*, solutions: bool = True):
    cells = [
        new_markdown_cell("# 99 · A lesson"),
        new_code_cell("x = 1", metadata={"tags": ["parameters"]}, execution_count=1,
                      outputs=[nbformat.v4.new_output("stream", name="stdout", text="out\n")]),
        new_markdown_cell("## Exercises\n\n1. Define `a`.\n2. Define `b`."),
    ]
    if solutions:
        cells += [
            new_markdown_cell("**Solution to exercise 1**"),
            new_code_cell("a = 'the first answer'", metadata={"tags": ["solution"], "papermill": {"duration": 1.0}}),
            new_markdown_cell("Because the first answer ...", metadata={"tags": ["solution"]}),
            new_code_cell("assert 'a' in globals(), 'Define a'", metadata={"tags": ["self-check"]}, execution_count=3),
            new_markdown_cell("**Solution to exercise 2**"),
            new_code_cell("b = 'the second answer'", metadata={"tags": ["solution"]}),
        ]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nb.metadata["papermill"] = {"input_path": "/somewhere/99.ipynb"}
    return nb


def test_student_edition_on_a_small_lesson():
    instructor = _lesson()
    before = json.dumps(instructor, sort_keys=True)
    student = student_edition(instructor)
    assert json.dumps(instructor, sort_keys=True) == before, "the instructor's notebook is not changed"
    assert [c.source for c in student.cells] == [
        "# 99 · A lesson",
        "x = 1",
        "## Exercises\n\n1. Define `a`.\n2. Define `b`.",
        "**Your solution to exercise 1**",
        "# Your solution to exercise 1 here",
        "assert 'a' in globals(), 'Define a'",
        "**Your solution to exercise 2**",
        "# Your solution to exercise 2 here",
    ]
    assert list(student.metadata) == ["kernelspec"]
    assert _tags(student.cells[4]) == [EXERCISE_TAG] and "papermill" not in student.cells[4].metadata
    assert _tags(student.cells[1]) == ["parameters"]
    assert student.cells[4].id == instructor.cells[4].id, "a placeholder keeps its place and id: editions are reproducible"
    nbformat.validate(student)


def test_placeholders_are_numbered_by_position_without_headings():
    nb = new_notebook(cells=[new_code_cell("a = 1", metadata={"tags": ["solution"]}),
                             new_code_cell("b = 2", metadata={"tags": ["solution"]})])
    assert [c.source for c in student_edition(nb).cells] == ["# Your solution to exercise 1 here", "# Your solution to exercise 2 here"]


def test_placeholders_take_the_number_of_their_heading():
    nb = new_notebook(cells=[new_markdown_cell("### Solution to exercise 4"),
                             new_code_cell("a = 1", metadata={"tags": ["solution"]})])
    assert [c.source for c in student_edition(nb).cells] == ["### Your solution to exercise 4", "# Your solution to exercise 4 here"]


def test_student_edition_refuses_what_is_not_a_notebook():
    with pytest.raises(ParameterError, match="nbformat 4 notebook"):
        student_edition({"cells": []})


# ---- write_student_editions: inputs and refusals -------------------------------------------


@pytest.fixture
def instructor_folder(tmp_path) -> Path:
    """A course folder: two lessons (one in a subfolder), a lesson without solutions, a checkpoint copy."""
    folder = tmp_path / "course"
    (folder / "usecases").mkdir(parents=True)
    (folder / ".ipynb_checkpoints").mkdir()
    nbformat.write(_lesson(), folder / "10_lesson.ipynb")
    nbformat.write(_lesson(), folder / "usecases" / "retail.ipynb")
    nbformat.write(_lesson(solutions=False), folder / "20_reading_only.ipynb")
    nbformat.write(_lesson(), folder / ".ipynb_checkpoints" / "10_lesson-checkpoint.ipynb")
    (folder / "notes.txt").write_text("not a notebook")
    return folder


def test_writes_a_folder_keeping_relative_names(instructor_folder, tmp_path):
    written = write_student_editions([instructor_folder], tmp_path / "student")
    names = [w.path.relative_to(tmp_path / "student").as_posix() for w in written]
    assert names == ["10_lesson.ipynb", "20_reading_only.ipynb", "usecases/retail.ipynb"]  # no checkpoint, no .txt
    assert [(w.solutions, w.self_checks) for w in written] == [(2, 1), (0, 0), (2, 1)]
    assert [bool(w.warning) for w in written] == [False, True, False]
    assert "no cell tagged 'solution'" in written[1].warning
    assert "the first answer" not in written[0].path.read_text()


def test_out_folder_inside_the_sources_is_not_read_back(instructor_folder):
    out = instructor_folder / "student"
    first = write_student_editions([instructor_folder], out)
    again = write_student_editions([instructor_folder], out)  # regenerating: same files, no student/student/
    assert [w.path for w in again] == [w.path for w in first]
    assert not (out / "student").exists()


def test_a_single_file_and_a_repository_relative_source(tmp_path):
    written = write_student_editions(["notebooks/01_training.ipynb"], tmp_path)
    assert [w.path for w in written] == [tmp_path / "01_training.ipynb"]
    assert written[0].source == ROOT / "notebooks" / "01_training.ipynb"


@pytest.mark.parametrize(
    "scenario, expected",
    [
        ("missing_source", "no such file or folder"),
        ("text_file", "not a notebook (expected a .ipynb file)"),
        ("broken_json", "not a readable Jupyter notebook"),
        ("empty_folder", "holds no .ipynb notebook"),
        ("no_sources", "No notebooks given"),
        ("out_is_the_source_folder", "is the source folder itself"),
        ("out_holds_the_source_file", "would overwrite the instructor's notebook 10_lesson.ipynb"),
        ("out_holds_another_instructor_notebook", "holds solutions (an instructor's notebook); it is not overwritten"),
        ("two_sources_same_name", "would both be written to"),
        ("out_is_a_file", "is a file"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(instructor_folder, tmp_path, scenario, expected):
    out = tmp_path / "student"
    lesson = instructor_folder / "10_lesson.ipynb"
    if scenario == "missing_source":
        sources = [tmp_path / "nope.ipynb"]
    elif scenario == "text_file":
        sources = [lesson, instructor_folder / "notes.txt"]
    elif scenario == "broken_json":
        (tmp_path / "broken.ipynb").write_text("{ not json")
        sources = [lesson, tmp_path / "broken.ipynb"]
    elif scenario == "empty_folder":
        (tmp_path / "empty").mkdir()
        sources = [tmp_path / "empty"]
    elif scenario == "no_sources":
        sources = []
    elif scenario == "out_is_the_source_folder":
        sources, out = [instructor_folder], instructor_folder
    elif scenario == "out_holds_the_source_file":
        sources, out = [lesson], instructor_folder
    elif scenario == "out_holds_another_instructor_notebook":
        (tmp_path / "elsewhere").mkdir()
        nbformat.write(_lesson(), tmp_path / "elsewhere" / "10_lesson.ipynb")
        sources, out = [tmp_path / "elsewhere" / "10_lesson.ipynb"], instructor_folder
    elif scenario == "two_sources_same_name":
        sources = [lesson, instructor_folder / ".ipynb_checkpoints" / "10_lesson-checkpoint.ipynb", instructor_folder / "usecases"]
        nbformat.write(_lesson(), instructor_folder / "usecases" / "10_lesson.ipynb")
    elif scenario == "out_is_a_file":
        out = instructor_folder / "notes.txt"
        sources = [lesson]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(ParameterError, match=re.escape(expected)):
        write_student_editions(sources, out)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert after == before, "a refused call writes nothing and changes nothing"


def test_rewriting_a_student_edition_is_allowed(instructor_folder, tmp_path):
    out = tmp_path / "student"
    first = write_student_editions([instructor_folder / "10_lesson.ipynb"], out)[0].path.read_text()
    assert write_student_editions([instructor_folder / "10_lesson.ipynb"], out)[0].path.read_text() == first
