"""Plan a batch: notebooks × parameter sets, validated before any run starts.

A grid comes from ``--param NAME=V1,V2`` options (their cartesian product) or a YAML file
(a list of runs, or ``grid:`` for a product and ``runs:`` for extra runs). Every run's
parameters are checked against each notebook's declared parameters, names and types,
before anything executes; a bad grid is refused with a message naming the run and the
parameter.

Examples
--------
>>> expand({"use_case": ["retail-demand", "finance-fraud"], "seed": [0, 1]})[:2]
[{'use_case': 'retail-demand', 'seed': 0}, {'use_case': 'retail-demand', 'seed': 1}]
>>> parse_param("seed=0,1,2")
('seed', [0, 1, 2])
>>> run_id({"use_case": "retail-demand", "seed": 1})
'use_case-retail-demand_seed-1'
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from mlkit import parameters
from mlkit.errors import MlkitError, ParameterError

__all__ = ["GridError", "Run", "parse_value", "parse_param", "expand", "load_grid_file", "run_id", "notebook_parameters", "plan"]


class GridError(MlkitError, ValueError):
    """Raised when a grid cannot run: a malformed option or file, or a run with a bad parameter."""


@dataclass
class Run:
    """One notebook executed with one parameter set."""

    notebook: Path
    parameters: dict[str, Any]
    run_id: str
    output: Path
    key: str = ""  # sha256 of the notebook's content and the parameters: what --resume compares
    extra: dict[str, Any] = field(default_factory=dict)


def parse_value(text: str) -> Any:
    """Read a command-line value as papermill's CLI does: int, float, bool, None, else text.

    Examples
    --------
    >>> [parse_value(v) for v in ["3", "0.5", "True", "None", "retail-demand"]]
    [3, 0.5, True, None, 'retail-demand']
    """
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    if text == "None":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_param(option: str) -> tuple[str, list[Any]]:
    """Parse one ``NAME=V1,V2`` option into its name and values."""
    name, sep, values = option.partition("=")
    name = name.strip()
    if not sep or not name.isidentifier() or not values:
        raise GridError(f"--param {option!r} is not of the form NAME=V1,V2 (for example --param seed=0,1,2).")
    return name, [parse_value(v.strip()) for v in values.split(",")]


def expand(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of a grid, as a list of parameter sets (one empty set for no grid)."""
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def load_grid_file(path: str | Path) -> list[dict[str, Any]]:
    """Read runs from YAML: a list of parameter mappings, or ``grid:`` (product) and/or ``runs:`` (list).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "class.yaml"
    >>> _ = p.write_text("grid:\\n  seed: [0, 1]\\nruns:\\n  - {use_case: retail-demand}\\n")
    >>> load_grid_file(p)
    [{'seed': 0}, {'seed': 1}, {'use_case': 'retail-demand'}]
    """
    import yaml

    path = Path(path)
    if not path.exists():
        raise GridError(f"Grid file not found: {path}.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise GridError(f"{path.name} is not valid YAML{where}: {getattr(exc, 'problem', exc)}.") from None
    if isinstance(data, list):
        runs = data
    elif isinstance(data, dict) and set(data) <= {"grid", "runs"} and data:
        grid = data.get("grid") or {}
        if not isinstance(grid, dict) or not all(isinstance(v, list) for v in grid.values()):
            raise GridError(f"{path.name}: `grid:` must map each parameter name to a list of values.")
        runs = (expand(grid) if grid else []) + list(data.get("runs") or [])
    else:
        raise GridError(
            f"{path.name} must hold a list of runs (each a mapping of parameters), or `grid:` and/or `runs:`."
        )
    for i, run in enumerate(runs, 1):
        if not isinstance(run, dict):
            raise GridError(f"{path.name}: run {i} is {run!r}, not a mapping of parameter names to values.")
    return runs


def run_id(params: dict[str, Any]) -> str:
    """A readable, file-system-safe id for a parameter set; long ones end in a short hash.

    Examples
    --------
    >>> run_id({})
    'defaults'
    """
    if not params:
        return "defaults"
    text = "_".join(f"{k}-{Path(str(v)).name if k == 'data_path' else v}" for k, v in params.items())
    text = re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-")
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return text if len(text) <= 60 and "data_path" not in params else f"{text[:50]}-{digest}"


def notebook_parameters(notebook: str | Path) -> tuple[dict[str, parameters.Declared], bool]:
    """A notebook's declared parameters, and whether it needs a supervised use case.

    Raises
    ------
    GridError
        When the notebook is missing, unreadable or has no cell tagged ``parameters``.
    """
    notebook = Path(notebook)
    try:
        nb = nbformat.read(notebook, as_version=4)
    except FileNotFoundError:
        raise GridError(f"Notebook not found: {notebook}.") from None
    except Exception as exc:
        raise GridError(f"{notebook.name} is not a readable notebook: {exc}.") from None
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    if not tagged:
        raise GridError(f"{notebook.name} has no cell tagged `parameters`; papermill cannot set its parameters.")
    declared = parameters.parse_parameters_cell(code[tagged[0]].source)
    following = code[tagged[0] + 1].source if tagged[0] + 1 < len(code) else ""
    return declared, "require_supervised=False" not in following


def _key(notebook: Path, params: dict[str, Any]) -> str:
    h = hashlib.sha256(notebook.read_bytes())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    return h.hexdigest()


def plan(notebooks: list[str | Path], param_sets: list[dict[str, Any]], out_dir: str | Path) -> list[Run]:
    """Every notebook × every parameter set, validated; outputs go to ``out_dir/<run-id>/<notebook>``.

    A notebook that declares ``output_dir`` gets ``out_dir/<run-id>/<notebook stem>`` so its
    recorded figures land beside the executed copy.

    Raises
    ------
    GridError
        Naming the run and the parameter, for an unknown name, a wrong type or a bad value.
    """
    out_dir = Path(out_dir)
    files = _notebook_files(notebooks)
    param_sets = param_sets or [{}]
    runs = []
    for nb in files:
        declared, supervised = notebook_parameters(nb)
        for i, params in enumerate(param_sets, 1):
            rid = run_id(params)
            label = f"run {i} ({rid}) of {nb.name}"
            try:
                parameters.validate(params, declared, injected=list(params), require_supervised=supervised)
            except ParameterError as exc:
                raise GridError(f"{label}: {exc}") from None
            values = dict(params)
            if "output_dir" in declared and "output_dir" not in values:
                values["output_dir"] = str((out_dir / rid / nb.stem).resolve())
            runs.append(Run(nb, values, rid, out_dir / rid / nb.name, key=_key(nb, params)))
    seen: dict[Path, Run] = {}
    for run in runs:
        if run.output in seen:
            raise GridError(f"Two runs would write {run.output}: the grid repeats a parameter set.")
        seen[run.output] = run
    return runs


def _notebook_files(items: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(x for x in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in x.parts)
            if not found:
                raise GridError(f"No notebooks in folder {p}.")
            files.extend(found)
        elif p.suffix == ".ipynb" and p.exists():
            files.append(p)
        elif p.exists():
            raise GridError(f"{p} is not a notebook (.ipynb).")
        else:
            raise GridError(f"Notebook not found: {p}.")
    if not files:
        raise GridError("Name at least one notebook or folder of notebooks.")
    return [f.resolve() for f in files]
