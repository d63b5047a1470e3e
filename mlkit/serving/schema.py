"""Request checking against a model's signature: columns in, one typed array per column out.

Every serving contract ends here: whatever the request's shape (MLflow's four JSON keys,
CSV, Vertex instances, Open Inference tensors), it becomes a :class:`Batch` of one NumPy
array per signature column, in signature order, converted once. Bad input raises
:class:`InputError` with a message that names the column and the fix and never repeats a
value from the request (requests may carry personal data).

Examples
--------
>>> schema = Schema.from_signature([{"name": "amount", "type": "double", "required": True},
...                                 {"name": "channel", "type": "string", "required": True}])
>>> batch = schema.from_records([{"amount": 12, "channel": "web", "extra": 1}])
>>> batch.n, batch.columns["amount"].dtype
(1, dtype('float64'))
>>> try:
...     schema.from_records([{"amount": "12 EUR", "channel": "web"}])
... except InputError as e:
...     print(e)
Column 'amount' must hold numbers (double); it holds something else in row 0. Send a JSON number (or null for a missing value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from mlkit.errors import MlkitError

__all__ = ["InputError", "Column", "Schema", "Batch", "NUMERIC", "INTEGER"]

SCHEMA = "INVALID_PARAMETER_VALUE"
"""MLflow's error_code when a request does not fit the signature (missing columns, no rows)."""
NUMERIC = {"double", "float"}
INTEGER = {"long", "integer"}
_KNOWN = NUMERIC | INTEGER | {"string", "boolean"}


class InputError(MlkitError):
    """A request the model cannot take; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, *, status: int = 400, field: str | None = None, code: str = "BAD_REQUEST") -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.code = code  # MLflow's error_code: INVALID_PARAMETER_VALUE for schema mismatches


@dataclass(frozen=True)
class Column:
    """One input column of a signature."""

    name: str
    type: str
    required: bool = True

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC | INTEGER


@dataclass
class Batch:
    """A validated request: one NumPy array per signature column, all of length ``n``."""

    columns: dict[str, np.ndarray]
    n: int
    params: dict[str, Any] = field(default_factory=dict)

    def frame(self) -> pd.DataFrame:
        """The batch as a DataFrame (what a scikit-learn pipeline takes)."""
        return pd.DataFrame(self.columns, copy=False)


def _in_rows(rows: Sequence[int]) -> str:
    """``"in row 3"`` or ``"in rows 1, 2, 5, 8, 9 and 4 more"`` (row numbers from 0)."""
    shown = ", ".join(str(r) for r in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    return f"in row {shown}" if len(rows) == 1 else f"in rows {shown}{more}"


@dataclass
class Schema:
    """The columns a model takes, from its MLflow signature."""

    columns: list[Column]

    @classmethod
    def from_signature(cls, inputs: Iterable[Mapping[str, Any]]) -> "Schema":
        """Build from the ``inputs`` list of an MLflow signature (column-based)."""
        columns = []
        for spec in inputs:
            if spec.get("type") == "tensor" or "name" not in spec:
                raise MlkitError(
                    "This model's signature describes tensors, not named columns; mlkit serves models "
                    "whose signature names each column (infer it from a DataFrame)."
                )
            kind = str(spec.get("type", "string"))
            if kind not in _KNOWN:
                raise MlkitError(f"Column {spec['name']!r} has signature type {kind!r}, which mlkit cannot serve yet.")
            columns.append(Column(str(spec["name"]), kind, bool(spec.get("required", True))))
        if not columns:
            raise MlkitError("The model has no input signature; log it with one (mlkit.registry.package adds it).")
        return cls(columns)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def describe(self) -> str:
        """``name (type)`` for every column, for error messages."""
        return ", ".join(f"{c.name} ({c.type}{'' if c.required else ', optional'})" for c in self.columns)

    # ------------------------------------------------------------------ conversion

    def _missing(self, present: Iterable[str]) -> None:
        present = set(present)
        missing = [c for c in self.columns if c.name not in present]
        if missing:
            raise InputError(
                f"Missing column(s) {', '.join(repr(c.name) for c in missing)}. The model needs: {self.describe()}. "
                "An optional column may hold null values, but it must be sent.",
                field=missing[0].name,
                code=SCHEMA if any(c.required for c in missing) else "BAD_REQUEST",
            )

    def _convert(self, column: Column, values: Sequence[Any]) -> np.ndarray:
        """One column's raw values (from JSON or CSV) as a typed array, or an InputError."""
        if column.numeric:
            return self._numbers(column, values)
        if column.type == "boolean":
            bad = [i for i, v in enumerate(values) if not (isinstance(v, bool) or _missing_value(v))]
            if bad:
                raise InputError(f"Column {column.name!r} must hold true or false; it holds another value {_in_rows(bad)}.", field=column.name)
            return np.array([np.nan if _missing_value(v) else float(v) for v in values], dtype=np.float64)
        bad = [i for i, v in enumerate(values) if isinstance(v, (list, dict, bytes))]
        if bad:
            raise InputError(
                f"Column {column.name!r} must hold text (string); it holds a list or object {_in_rows(bad)}. "
                "Send a JSON string.",
                field=column.name,
            )
        broken = [i for i, v in enumerate(values) if isinstance(v, str) and not v.isascii() and not _encodes(v)]
        if broken:
            raise InputError(f"Column {column.name!r} holds text that is not valid Unicode {_in_rows(broken)} "
                             "(a lone surrogate escape); send UTF-8 text.", field=column.name)
        out = np.empty(len(values), dtype=object)
        out[:] = [np.nan if _missing_value(v) else (v if isinstance(v, str) else str(v)) for v in values]
        return out

    def _numbers(self, column: Column, values: Sequence[Any]) -> np.ndarray:
        if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
            out = values.astype(np.float64, copy=False)
        else:
            out = np.empty(len(values), dtype=np.float64)
            bad = []
            for i, v in enumerate(values):
                if _missing_value(v):
                    out[i] = np.nan
                    continue
                try:
                    if isinstance(v, (list, dict, bytes)) or (isinstance(v, str) and not v.strip()):
                        raise ValueError
                    out[i] = float(v)  # numbers, booleans and numeric text, as MLflow casts them
                except (TypeError, ValueError, OverflowError):
                    bad.append(i)
                    continue
                if isinstance(v, str) and not np.isfinite(out[i]):
                    bad.append(i)  # "nan", "inf" written as text
            if bad:
                raise InputError(
                    f"Column {column.name!r} must hold numbers ({column.type}); it holds something else {_in_rows(bad)}. "
                    "Send a JSON number (or null for a missing value).",
                    field=column.name,
                )
        finite = np.isfinite(out)
        if not finite.all():
            nan = np.isnan(out)
            inf = np.flatnonzero(~finite & ~nan).tolist()
            if inf:
                raise InputError(
                    f"Column {column.name!r} holds an infinite number {_in_rows(inf)}; send a finite number.",
                    field=column.name,
                )
        if column.type in INTEGER:
            present = out[~np.isnan(out)]
            fractional = np.flatnonzero((~np.isnan(out)) & (out != np.round(out))).tolist() if present.size else []
            if fractional:
                raise InputError(
                    f"Column {column.name!r} must hold whole numbers ({column.type}); it holds a fraction {_in_rows(fractional)}.",
                    field=column.name,
                )
        return out

    def _batch(self, columns: Mapping[str, Sequence[Any]], n: int, params: Mapping[str, Any] | None) -> Batch:
        if n == 0:
            try:
                self._missing(columns)
            except InputError as exc:  # no rows, so no columns either: say the first thing first
                raise InputError(f"The request holds no rows; send at least one row with the columns "
                                 f"{self.describe()}.", status=exc.status, code=exc.code) from None
            raise InputError("The request holds no rows; send at least one.")
        self._missing(columns)
        out: dict[str, np.ndarray] = {}
        for column in self.columns:
            values = columns.get(column.name)
            if values is None:
                values = [None] * n
            out[column.name] = self._convert(column, values)
        return Batch(out, n, dict(params or {}))

    def from_columns(self, columns: Mapping[str, Sequence[Any]], params: Mapping[str, Any] | None = None) -> Batch:
        """A batch from ``{column: [values...]}`` (all the same length)."""
        lengths = {len(v) for k, v in columns.items() if k in set(self.names)}
        if len(lengths) > 1:
            raise InputError("Columns have different lengths; send one value per row in every column.", code=SCHEMA)
        return self._batch(columns, lengths.pop() if lengths else 0, params)

    def from_records(self, records: Sequence[Any], params: Mapping[str, Any] | None = None) -> Batch:
        """A batch from ``[{column: value, ...}, ...]``."""
        if not isinstance(records, list):
            raise InputError("Records must be a JSON list of objects, one per row.")
        bad = [i for i, r in enumerate(records) if not isinstance(r, dict)]
        if bad:
            raise InputError(f"Records must be JSON objects ({{column: value}}); another value is given {_in_rows(bad)}.",
                             code=SCHEMA)
        names = self.names
        present = set().union(*(r.keys() for r in records)) if records else set()
        columns = {name: [r.get(name) for r in records] for name in names if name in present}
        return self._batch(columns, len(records), params)

    def from_rows(self, rows: Sequence[Any], columns: Sequence[str] | None = None,
                  params: Mapping[str, Any] | None = None) -> Batch:
        """A batch from row lists: with ``columns`` named, or in signature order."""
        if not isinstance(rows, list) or any(not isinstance(r, list) for r in rows):
            raise InputError("data must be a JSON list of rows, each a list of values.")
        names = list(columns) if columns is not None else self.names
        if columns is not None and (not all(isinstance(c, str) for c in names) or len(set(names)) != len(names)):
            raise InputError("columns must be a list of distinct column names.", code=SCHEMA)
        bad = [i for i, r in enumerate(rows) if len(r) != len(names)]
        if bad:
            raise InputError(
                f"Each row must hold {len(names)} values, one per column ({', '.join(names)}); a row has another length {_in_rows(bad)}."
            )
        index = {name: i for i, name in enumerate(names)}
        data = {name: [r[index[name]] for r in rows] for name in self.names if name in index}
        return self._batch(data, len(rows), params)

    def from_frame(self, frame: pd.DataFrame, params: Mapping[str, Any] | None = None, *, strict: bool = False) -> Batch:
        """A batch from a DataFrame (CSV and Parquet bodies, batch scoring).

        ``strict``: column types must already match (a Parquet file carries its own types, and
        MLflow does not cast them): an integer column where the model takes doubles is refused.
        """
        self._missing(frame.columns)
        if strict:
            for column in self.columns:
                kind = frame[column.name].dtype.kind
                ok = kind == "f" if column.type in NUMERIC else kind in "iu" if column.type in INTEGER else \
                    kind == "b" if column.type == "boolean" else kind in "OSUT" or str(frame[column.name].dtype) in ("str", "string")
                if not ok:
                    raise InputError(
                        f"Column {column.name!r} is {frame[column.name].dtype} in the file, but the model takes "
                        f"{column.type}; write it with that type.", field=column.name, code=SCHEMA)
        data = {}
        for name in self.names:
            if name in frame.columns:
                s = frame[name]
                data[name] = s.to_numpy() if s.dtype.kind in "fiu" else s.astype(object).where(s.notna(), None).tolist()
        return self._batch(data, len(frame), params)


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _missing_value(v: Any) -> bool:
    """None, or a float NaN (pandas' missing value in a CSV or Parquet cell)."""
    return v is None or (isinstance(v, float) and v != v)


def finite_json(value: Any) -> bool:
    """True when a parsed JSON value holds no NaN or Infinity (Python's json accepts those tokens)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite_json(v) for v in value.values())
    if isinstance(value, list):
        return all(finite_json(v) for v in value)
    return True
