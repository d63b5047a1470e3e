"""Student editions: the course notebooks with the solutions taken out.

An instructor's notebook ends with exercises, each followed by its solution (code cells
tagged ``solution``) and a self-check (a code cell tagged ``self-check`` that tests the
learner's answer through the variables the exercise names). The student edition keeps
everything but the answers: each solution cell becomes a placeholder for the learner's
own code, markdown cells tagged ``solution`` (discussion of an answer) are dropped, every
output is cleared, and the self-checks stay, so a learner can check their own work.

Examples
--------
>>> from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
>>> nb = new_notebook(cells=[
...     new_markdown_cell("**Solution to exercise 1**"),
...     new_code_cell("answer = 42", metadata={"tags": ["solution"]}),
...     new_code_cell("assert answer > 0", metadata={"tags": ["self-check"]}),
... ])
>>> [c.source for c in student_edition(nb).cells]
['**Your solution to exercise 1**', '# Your solution to exercise 1 here', 'assert answer > 0']
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from mlkit import paths
from mlkit.errors import ParameterError

__all__ = [
    "SOLUTION_TAG",
    "SELF_CHECK_TAG",
    "EXERCISE_TAG",
    "StudentEdition",
    "student_edition",
    "find_notebooks",
    "write_student_editions",
]

SOLUTION_TAG = "solution"
"""Cells with this tag hold an answer: code cells become placeholders, markdown cells go."""
SELF_CHECK_TAG = "self-check"
"""Cells with this tag check a learner's answer; student editions keep them verbatim."""
EXERCISE_TAG = "exercise"
"""The tag of the placeholder cell that replaces a solution in a student edition."""

_HEADING = re.compile(r"^(\s*[#*]*\s*)Solution(\s+to\s+exercise\s+(\d+))", re.IGNORECASE)
_RUN_METADATA = ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled")
_KEPT_NOTEBOOK_METADATA = ("kernelspec", "language_info")


@dataclass
class StudentEdition:
    """One student edition written by :func:`write_student_editions`.

    ``warning`` is empty unless something deserves a look (a notebook without solutions,
    whose student edition is then the same lesson without outputs).
    """

    source: Path
    path: Path
    solutions: int
    self_checks: int
    warning: str = ""


def _tags(cell: NotebookNode) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _clean_cell_metadata(cell: NotebookNode) -> None:
    for key in _RUN_METADATA:
        cell.metadata.pop(key, None)


def student_edition(nb: NotebookNode) -> NotebookNode:
    """Return the learner's copy of an instructor notebook (the input is not changed).

    - every code cell tagged ``solution`` becomes a placeholder code cell tagged
      ``exercise`` (``# Your solution to exercise N here``); N comes from the preceding
      ``**Solution to exercise N**`` markdown cell, which is renamed ``**Your solution to
      exercise N**``, or else from the solution's position;
    - markdown cells tagged ``solution`` (discussion of an answer) are dropped;
    - cells tagged ``self-check`` are kept with their source intact;
    - all outputs are cleared and execution counts reset;
    - notebook metadata keeps ``kernelspec`` and ``language_info`` only (no papermill or
      execution records); cell metadata keeps tags, minus run records.

    Parameters
    ----------
    nb
        An nbformat version 4 notebook, as ``nbformat.read(path, as_version=4)`` returns.

    Returns
    -------
    nbformat.NotebookNode
        A new notebook.

    Raises
    ------
    ParameterError
        ``nb`` is not an nbformat 4 notebook.

    Examples
    --------
    >>> from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    >>> nb = new_notebook(cells=[
    ...     new_markdown_cell("## Exercises\\n\\n1. Define `answer`."),
    ...     new_markdown_cell("**Solution to exercise 1**"),
    ...     new_code_cell("answer = 42", metadata={"tags": ["solution"]}, execution_count=7),
    ...     new_markdown_cell("42, because ...", metadata={"tags": ["solution"]}),
    ...     new_code_cell("assert 'answer' in globals(), 'define answer'\\nprint('ok')",
    ...                   metadata={"tags": ["self-check"]}),
    ... ])
    >>> student = student_edition(nb)
    >>> [(c.cell_type, c.source.splitlines()[0], c.metadata.get("tags")) for c in student.cells]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('markdown', '## Exercises', None),
     ('markdown', '**Your solution to exercise 1**', None),
     ('code', '# Your solution to exercise 1 here', ['exercise']),
     ('code', "assert 'answer' in globals(), 'define answer'", ['self-check'])]
    >>> student.cells[2].execution_count is None
    True
    """
    if not isinstance(nb, dict) or nb.get("nbformat") != 4 or "cells" not in nb:
        raise ParameterError(
            "student_edition needs an nbformat 4 notebook: read it with nbformat.read(path, as_version=4)."
        )
    out = copy.deepcopy(nb)
    out.metadata = nbformat.from_dict({k: out.metadata[k] for k in _KEPT_NOTEBOOK_METADATA if k in out.metadata})

    cells: list[NotebookNode] = []
    heading_number: int | None = None  # N of the last "Solution to exercise N" heading
    solutions = 0
    for cell in out.cells:
        tags = _tags(cell)
        _clean_cell_metadata(cell)
        if SOLUTION_TAG in tags and cell.cell_type != "code":
            continue  # discussion of an answer: not in the learner's copy
        if cell.cell_type == "markdown":
            match = _HEADING.match(cell.source)
            if match:
                heading_number = int(match.group(3))
                cell.source = _HEADING.sub(r"\1Your solution\2", cell.source, count=1)
        if cell.cell_type == "code":
            if SOLUTION_TAG in tags:
                solutions += 1
                number = heading_number if heading_number is not None else solutions
                placeholder = nbformat.v4.new_code_cell(f"# Your solution to exercise {number} here")
                placeholder.metadata["tags"] = [EXERCISE_TAG]
                if "id" in cell:  # same place, same id: regenerating an edition gives the same file
                    placeholder["id"] = cell["id"]
                cell = placeholder
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    out.cells = cells
    return out


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def _has_solutions(path: Path) -> bool:
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception:  # not a notebook: not an instructor's edition either
        return False
    return any(SOLUTION_TAG in _tags(c) for c in nb.cells)


def find_notebooks(sources: list[str | os.PathLike[str]], *, exclude: Path | None = None) -> list[tuple[Path, Path]]:
    """List the notebooks named by ``sources`` as ``(path, relative name)`` pairs.

    A file stands for itself (relative name: its file name); a folder for every
    ``*.ipynb`` below it (relative name: the path inside the folder), skipping
    ``.ipynb_checkpoints`` and anything under ``exclude``. Relative sources are found
    against the repository, then the working directory.

    Raises
    ------
    ParameterError
        No sources, a source that does not exist, a file that is not a ``.ipynb``
        notebook, or a folder without notebooks.

    Examples
    --------
    >>> [rel.as_posix() for _, rel in find_notebooks(["notebooks"])][:2]
    ['00_start_here.ipynb', '01_training.ipynb']
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if not sources:
        raise ParameterError("No notebooks given: name notebook files or folders, e.g. `mlkit student notebooks --out build/student`.")
    found: list[tuple[Path, Path]] = []
    for source in sources:
        path = paths.find_input(source)
        if not path.exists():
            raise ParameterError(f"{source}: no such file or folder. Name a notebook (.ipynb) or a folder of notebooks.")
        path = path.resolve()
        if path.is_dir():
            inside = sorted(
                p for p in path.rglob("*.ipynb")
                if ".ipynb_checkpoints" not in p.relative_to(path).parts
                and not (exclude is not None and _is_within(p.resolve(), exclude))
            )
            if not inside:
                raise ParameterError(f"{source}: this folder holds no .ipynb notebook. Name a folder of notebooks.")
            found += [(p, p.relative_to(path)) for p in inside]
        elif path.suffix != ".ipynb":
            raise ParameterError(f"{source}: not a notebook (expected a .ipynb file). Name a notebook or a folder of notebooks.")
        else:
            found.append((path, Path(path.name)))
    return found


def write_student_editions(sources: list[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> list[StudentEdition]:
    """Write the student edition of each notebook in ``sources`` to ``out_dir``.

    Parameters
    ----------
    sources
        Notebook files or folders (searched recursively for ``*.ipynb``, skipping
        ``.ipynb_checkpoints``). Relative paths are found against the repository, then the
        working directory.
    out_dir
        Where the editions go, under the same relative names (``notebooks/usecases/x.ipynb``
        given as the folder ``notebooks`` becomes ``out_dir/usecases/x.ipynb``). Relative to
        the repository. It may not be a source folder, and no edition is written over a
        source notebook or over any existing notebook that holds solutions: that would
        overwrite an instructor's edition. Earlier student editions are overwritten.

    Returns
    -------
    list of StudentEdition
        One per notebook, in order: source, written path, solutions replaced, self-checks
        kept, and a warning for a notebook without solutions (it is still written).

    Raises
    ------
    ParameterError
        No sources, a missing source, a file that is not a notebook (or not readable as
        one), a folder without notebooks, an ``out_dir`` that is a file or would overwrite
        an instructor's notebook, or two sources with the same relative name. Nothing is
        written in these cases.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> written = write_student_editions(["notebooks/01_training.ipynb"], out)
    >>> [(w.path.name, w.solutions > 0, w.warning) for w in written]
    [('01_training.ipynb', True, '')]
    >>> write_student_editions(["notebooks"], "notebooks")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    mlkit.errors.ParameterError: ...would overwrite the instructor's notebook...
    >>> import shutil; shutil.rmtree(out)
    """
    out_root = paths.resolve(out_dir).resolve()
    if out_root.exists() and not out_root.is_dir():
        raise ParameterError(f"Output folder {out_dir}: is a file. Name a folder for the student editions.")
    for source in [sources] if isinstance(sources, (str, os.PathLike)) else sources:
        if paths.find_input(source).resolve() == out_root:
            raise ParameterError(
                f"Output folder {out_dir}: is the source folder itself; writing there would overwrite the instructor's "
                "notebooks. Choose another folder, e.g. build/student."
            )
    found = find_notebooks(sources, exclude=out_root)

    plan: list[tuple[Path, Path]] = []
    targets: dict[Path, Path] = {}
    source_files = {src for src, _ in found}
    for src, rel in found:
        target = out_root / rel
        if target in source_files:
            raise ParameterError(
                f"Output folder {out_dir}: writing there would overwrite the instructor's notebook {src.name}. "
                "Choose a folder outside the sources, e.g. build/student."
            )
        if target in targets:
            raise ParameterError(
                f"{targets[target]} and {src} would both be written to {target}: "
                "give their folder instead, or write them to different output folders."
            )
        if target.exists() and _has_solutions(target):
            raise ParameterError(
                f"Output folder {out_dir}: {target} exists and holds solutions (an instructor's notebook); it is not "
                "overwritten. Choose another folder, e.g. build/student."
            )
        targets[target] = src
        plan.append((src, target))

    editions: list[tuple[Path, Path, NotebookNode, int, int]] = []
    for src, target in plan:  # read and convert everything first: a bad file writes nothing
        try:
            nb = nbformat.read(src, as_version=4)
        except Exception as exc:  # invalid JSON or not a notebook at all
            raise ParameterError(
                f"{src}: not a readable Jupyter notebook ({type(exc).__name__}). Check the file, or leave it out."
            ) from exc
        code = [c for c in nb.cells if c.cell_type == "code"]
        n_solutions = sum(SOLUTION_TAG in _tags(c) for c in code)
        n_checks = sum(SELF_CHECK_TAG in _tags(c) and SOLUTION_TAG not in _tags(c) for c in code)
        editions.append((src, target, student_edition(nb), n_solutions, n_checks))

    written = []
    for src, target, student, n_solutions, n_checks in editions:
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(student, target)
        warning = "" if n_solutions else (
            f"{src.name} has no cell tagged '{SOLUTION_TAG}': its student edition only drops the outputs."
        )
        written.append(StudentEdition(src, target, n_solutions, n_checks, warning))
    return written
