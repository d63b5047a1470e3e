"""Notebook parameters: declared once, validated before any work, and key figures recorded.

A notebook declares its parameters in the one cell tagged ``parameters``, one a line,
annotated and commented::

    use_case: str = "finance-fraud"  # which industry example
    seed: int = 0                    # every random draw starts here

The next cell calls :func:`check_parameters`, which reads that cell and the cell papermill
injects after it (``# Parameters``) from the kernel's input history, so a run with the
papermill CLI is checked too: papermill only *warns* about an unknown name, mlkit stops.

Examples
--------
>>> declared = parse_parameters_cell('seed: int = 0  # the seed\\nsmoke: bool = False  # tiny sizes')
>>> sorted(declared)
['seed', 'smoke']
>>> validate({"seed": 3, "smoke": False}, declared).seed
3
"""

from __future__ import annotations

import ast
import difflib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from mlkit import paths, usecases
from mlkit.errors import ParameterError

__all__ = [
    "Declared",
    "Parameters",
    "parse_parameters_cell",
    "validate",
    "check_parameters",
    "record",
    "recorded",
    "start_recording",
]

_TYPES = ("str", "int", "float", "bool")  # the annotations a parameters cell may use
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}
INJECTED_HEADER = "# Parameters"


@dataclass(frozen=True)
class Declared:
    """One declared parameter: its name, annotated type, default value and comment."""

    name: str
    type: str
    default: Any
    comment: str = ""


class Parameters(dict):
    """The validated parameters of a run: a dict that also allows ``params.seed``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def format(self) -> str:
        """Return one ``name = value`` line per parameter (for printing)."""
        return "\n".join(f"{k} = {v!r}" for k, v in self.items())


def parse_parameters_cell(source: str) -> dict[str, Declared]:
    """Parse the source of a ``parameters`` cell into its declarations.

    Every statement must be an annotated assignment with a literal default, for example
    ``seed: int = 0  # comment``; the annotation is one of ``str``, ``int``, ``float``, ``bool``.

    Raises
    ------
    ParameterError
        When a line is not an annotated literal assignment.

    Examples
    --------
    >>> parse_parameters_cell('use_case: str = "retail-demand"  # which example')["use_case"].default
    'retail-demand'
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError(f"The parameters cell is not valid Python: {exc.msg} (line {exc.lineno}).") from None
    lines = source.splitlines()
    declared: dict[str, Declared] = {}
    for node in tree.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None):
            raise ParameterError(
                f"Line {node.lineno} of the parameters cell is not of the form "
                "`name: type = value  # comment`; keep only annotated parameters in that cell."
            )
        type_name = ast.unparse(node.annotation)
        if type_name not in _TYPES:
            raise ParameterError(
                f"Parameter {node.target.id!r} is annotated {type_name!r}; use one of {', '.join(_TYPES)}."
            )
        try:
            default = ast.literal_eval(node.value)
        except ValueError:
            raise ParameterError(f"Parameter {node.target.id!r} needs a literal default value.") from None
        line = lines[node.lineno - 1]
        comment = line.split("#", 1)[1].strip() if "#" in line[node.end_col_offset or 0 :] else ""
        declared[node.target.id] = Declared(node.target.id, type_name, default, comment)
    return declared


def _coerce(name: str, value: Any, type_name: str) -> Any:
    """Return ``value`` as ``type_name``, accepting only lossless, unambiguous conversions."""
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
    elif type_name == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
    elif type_name == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                pass
            else:
                if math.isfinite(out):
                    return out
    elif type_name == "str":
        if isinstance(value, str):
            return value
        if value is None:
            return ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    raise ParameterError(f"Parameter {name!r} must be {type_name}, got {type(value).__name__} {value!r}.")


def _check_values(p: Parameters, *, require_supervised: bool) -> None:
    """The checks every notebook shares, on the parameters it declares."""
    if "seed" in p and p["seed"] < 0:
        raise ParameterError(f"seed must be 0 or more, got {p['seed']}.")
    data_path = p.get("data_path", "")
    if "drift" in p and p["drift"] not in ("covariate", "label", "concept"):
        raise ParameterError(f"drift must be 'covariate', 'label' or 'concept', got {p['drift']!r}.")
    if "windows" in p and p["windows"] < 4:
        raise ParameterError(f"windows must be at least 4 (some before the drift, some after), got {p['windows']}.")
    if "label_delay_windows" in p and not 0 <= p["label_delay_windows"] < p.get("windows", 10**9) // 2:
        raise ParameterError(f"label_delay_windows must be 0 or more and less than half of windows, "
                             f"got {p['label_delay_windows']}.")
    if "false_alarm_rate" in p and not 0 < p["false_alarm_rate"] <= 0.2:
        raise ParameterError(f"false_alarm_rate must be above 0 and at most 0.2 (0.01 is usual), "
                             f"got {p['false_alarm_rate']}.")
    if "task" in p and p["task"] not in ("", "classification", "regression"):
        raise ParameterError(
            f"task must be 'classification' or 'regression' (or empty to infer it from the target), "
            f"got {p['task']!r}."
        )
    if data_path:
        if "target" in p and not p["target"]:
            raise ParameterError("data_path is set, so target must name the column to predict, e.g. -p target churned.")
        return
    if "use_case" in p:
        uc = usecases.get(p["use_case"])
        if require_supervised and not uc.supervised:
            raise ParameterError(
                f"{uc.id!r} is a {uc.task} use case; this notebook needs a supervised one "
                f"({', '.join(usecases.ids(supervised_only=True))}). "
                "See notebooks/usecases/ for the clustering example."
            )


def validate(
    values: Mapping[str, Any],
    declared: Mapping[str, Declared],
    *,
    injected: Iterable[str] = (),
    require_supervised: bool = True,
) -> Parameters:
    """Validate parameter values against their declarations.

    Parameters
    ----------
    values
        Current values by name (a notebook passes ``globals()``).
    declared
        The declarations, from :func:`parse_parameters_cell`.
    injected
        Names set from outside (papermill's injected cell); any not declared is an error.
    require_supervised
        Refuse a clustering use case (the core notebooks need a target).

    Raises
    ------
    ParameterError
        Unknown name (with the closest declared name), wrong type, or invalid value.

    Examples
    --------
    >>> d = parse_parameters_cell("n_samples: int = 10  # rows")
    >>> validate({"n_sampels": 5}, d, injected=["n_sampels"])
    Traceback (most recent call last):
    ...
    mlkit.errors.ParameterError: Unknown parameter 'n_sampels' (did you mean 'n_samples'?). This notebook takes: n_samples.
    """
    unknown = [n for n in injected if n not in declared]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, list(declared), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ParameterError(
            f"Unknown parameter {name!r}{hint}. This notebook takes: {', '.join(declared)}."
        )
    out = Parameters()
    for name, decl in declared.items():
        value = values.get(name, decl.default)
        out[name] = _coerce(name, value, decl.type)
    _check_values(out, require_supervised=require_supervised)
    return out


def _history() -> list[str]:
    """The kernel's input history (``In``), oldest first; empty outside IPython."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the notebooks extra
        return []
    ip = get_ipython()
    if ip is None:
        return []
    return list(ip.user_ns.get("In", []))


def _is_parameters_cell(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return bool(tree.body) and all(
        isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name) for n in tree.body
    )


def _injected_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)]


def _declared_from_annotations(namespace: Mapping[str, Any]) -> dict[str, Declared]:
    """Declarations rebuilt from a namespace's ``__annotations__`` (defaults: the current values)."""
    declared = {}
    for name, annotation in dict(namespace.get("__annotations__") or {}).items():
        type_name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        if type_name in _TYPES and name in namespace:
            declared[name] = Declared(name, type_name, namespace[name])
    return declared


def check_parameters(namespace: dict[str, Any], *, require_supervised: bool = True) -> Parameters:
    """Validate a notebook's parameters, from the cell right after the ``parameters`` cell.

    Reads the latest executed ``parameters`` cell and any papermill-injected cell after it
    from the kernel's history, validates names, types and values, writes coerced values
    back into ``namespace`` and returns them.

    Raises
    ------
    ParameterError
        Unknown parameter name, wrong type, unknown use case, or a clustering use case where
        a supervised one is needed; the message names the valid choices.
    """
    history = _history()
    start = next((i for i in range(len(history) - 1, -1, -1) if _is_parameters_cell(history[i])), None)
    injected: list[str] = []
    if start is not None:
        declared = parse_parameters_cell(history[start])
        for src in history[start + 1 :]:
            if src.lstrip().startswith(INJECTED_HEADER):
                injected.extend(_injected_names(src))
    else:
        # Kernels driven without input history (nbval runs cells with store_history=False):
        # the parameters cell's annotations are still in the namespace.
        declared = _declared_from_annotations(namespace)
        if not declared:
            raise ParameterError(
                "No parameters cell has run in this kernel yet: run the cell tagged `parameters` "
                "(the first code cell) before this one."
            )
    params = validate(namespace, declared, injected=injected, require_supervised=require_supervised)
    namespace.update(params)
    if "output_dir" in params:
        start_recording(params["output_dir"])
    return params


def start_recording(output_dir: str | Path) -> None:
    """Make ``output_dir`` where :func:`record` writes, starting a fresh ``metrics.json``.

    :func:`check_parameters` calls it with the notebook's ``output_dir`` parameter.
    """
    global _OUTPUT_DIR, _RECORDED
    _OUTPUT_DIR, _RECORDED = str(output_dir), {}


_OUTPUT_DIR: str | None = None
_RECORDED: dict[str, Any] = {}


def _plain(value: Any) -> Any:
    """Make ``value`` JSON-friendly: numpy scalars to Python, floats rounded to 6 significant digits."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    raise ParameterError(f"record() takes a number, a string or a bool, got {type(value).__name__}.")


def record(name: str, value: Any, *, output_dir: str | Path | None = None) -> None:
    """Record a key figure of this run in ``<output_dir>/metrics.json``.

    ``output_dir`` defaults to the notebook's ``output_dir`` parameter (relative paths are
    relative to the repository). The first record after :func:`check_parameters` starts a
    fresh file, so figures from an earlier run never linger.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> record("test_recall", 0.912345678, output_dir=d)
    >>> recorded(d)["test_recall"]
    0.912346
    """
    if not isinstance(name, str) or not name:
        raise ParameterError("record() needs a non-empty metric name.")
    target = output_dir if output_dir is not None else _OUTPUT_DIR
    if target is None:
        raise ParameterError(
            "record() does not know where to write: run check_parameters() first or pass output_dir=."
        )
    folder = paths.resolve(target)
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / "metrics.json"
    if output_dir is not None:
        current = recorded(folder)
    else:
        current = _RECORDED
    current[name] = _plain(value)
    file.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def recorded(output_dir: str | Path) -> dict[str, Any]:
    """Return the figures recorded in ``<output_dir>/metrics.json`` (empty when there are none)."""
    file = paths.resolve(output_dir) / "metrics.json"
    if not file.exists():
        return {}
    return json.loads(file.read_text(encoding="utf-8"))
