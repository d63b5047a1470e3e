"""Bring your own CSV: read a messy real-world file sensibly, say what was done, or stop clearly.

Real CSVs carry a byte-order mark, blank strings in numeric columns, identifier columns,
mixed line endings and categorical columns with hundreds of levels. :func:`read_csv` handles
these and returns notes that say what it did; it raises :class:`~mlkit.errors.DataError` with
the fix for what it cannot handle (missing file or target column, a task that does not fit
the target, too few rows, a constant or all-missing target).

Examples
--------
>>> import pathlib, tempfile
>>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny.csv"
>>> rows = "".join(f"{i},{i % 7},{'yes' if i % 3 == 0 else 'no'}\\n" for i in range(60))
>>> _ = p.write_text("customer_id,visits,churned\\n" + rows)
>>> data = read_csv(p, target="churned", task="classification")
>>> data.use_case.id_columns, int(data.frame["churned"].sum())
(('customer_id',), 20)
"""

from __future__ import annotations

import difflib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mlkit import paths, usecases
from mlkit.errors import DataError, ParameterError

__all__ = ["LoadedData", "read_csv", "load_data", "MIN_ROWS", "SMOKE_ROWS", "HIGH_CARDINALITY"]

MIN_ROWS = 50
"""Fewer usable rows than this cannot be split into train, validation and test honestly."""
SMOKE_ROWS = 2000
"""Rows used when a notebook runs with ``smoke=True`` (the CI grid)."""
HIGH_CARDINALITY = 50
"""A categorical column with more levels than this is reported as high-cardinality."""

_NA = ["", "NA", "N/A", "n/a", "na", "NaN", "nan", "null", "NULL", "None", "none", "?", "-"]
_POSITIVE_WORDS = {"yes", "y", "true", "t", "1", "positive", "pos"}
_ID_NAME = re.compile(r"(^id$|_id$|^id_|Id$|ID$|^uuid$|_uuid$)")


@dataclass
class LoadedData:
    """A data set ready for the notebooks: its use case, its rows, and notes on what was done."""

    use_case: usecases.UseCase
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def format_notes(self) -> str:
        """Return the notes as bullet lines ("- ...") or a line saying there were none."""
        return "\n".join(f"- {n}" for n in self.notes) if self.notes else "- nothing needed fixing"


def _decode(raw: bytes, notes: list[str]) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        notes.append("removed a UTF-8 byte-order mark at the start of the file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        notes.append("the file is not UTF-8; read it as Latin-1")
    crlf = text.count("\r\n")
    lone_cr = text.count("\r") - crlf
    lf = text.count("\n") - crlf
    if sum(1 for c in (crlf, lone_cr, lf) if c) > 1:
        notes.append("the file mixes line endings (\\r\\n, \\n, \\r); normalised them to \\n")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _parse_columns(df: pd.DataFrame, notes: list[str], protect: set[str]) -> pd.DataFrame:
    """Type every column read as text: numbers, dates, or text with real missing values.

    A column becomes numeric when at least 98% of its non-missing values are numbers (100% for
    the target); blanks, missing-value tokens ("NA", "?", ...) and unreadable values become
    missing, and each such fix is noted.
    """
    out = {}
    for col in df.columns:
        stripped = df[col].astype("object").str.strip()
        is_na = stripped.isin(_NA)
        blanks = int((stripped == "").sum())
        tokens = int(is_na.sum()) - blanks
        values = stripped[~is_na]
        fixes = []
        if blanks:
            fixes.append(f"{blanks} blank strings")
        if tokens:
            fixes.append(f"{tokens} missing-value markers such as 'NA' or '?'")
        if values.empty:
            out[col] = pd.Series(np.nan, index=df.index, dtype="float64")
            continue
        numeric = pd.to_numeric(values, errors="coerce")
        ok = numeric.notna().mean()
        if ok >= (1.0 if col in protect else 0.98):
            bad = int(numeric.isna().sum())
            if bad:
                fixes.append(f"{bad} unreadable values")
            full = pd.Series(np.nan, index=df.index, dtype="float64")
            full[values.index] = numeric.astype("float64")
            if full.notna().all() and np.all(np.mod(full, 1) == 0):
                full = full.astype("int64")
            out[col] = full
            if fixes:
                notes.append(f"column {col!r} is numeric; {' and '.join(fixes)} read as missing")
            continue
        if ok < 0.5 and re.search(r"date|time|_at$|day$", str(col), re.I):
            dates = pd.to_datetime(values, errors="coerce", format="mixed")
            if dates.notna().mean() >= 0.95:
                full = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns]")
                full[values.index] = dates
                out[col] = full
                notes.append(f"column {col!r} holds dates; parsed it as datetime")
                continue
        out[col] = stripped.where(~is_na, np.nan)
        if fixes:
            notes.append(f"column {col!r}: {' and '.join(fixes)} read as missing")
    return pd.DataFrame(out, index=df.index)


def _identifier_columns(df: pd.DataFrame, target: str) -> list[str]:
    out = []
    for col in df.columns:
        if col == target:
            continue
        s = df[col]
        unique_ratio = s.nunique(dropna=True) / max(len(s), 1)
        is_text = not pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_datetime64_any_dtype(s)
        if _ID_NAME.search(str(col)) and unique_ratio > 0.5:
            out.append(col)
        elif is_text and unique_ratio > 0.95 and len(s) >= MIN_ROWS:
            out.append(col)
        elif pd.api.types.is_integer_dtype(s) and unique_ratio == 1.0 and s.is_monotonic_increasing and len(s) > 1 and (
            s.diff().dropna() == 1
        ).all():
            out.append(col)
    return out


def _infer_task(y: pd.Series) -> str:
    if not pd.api.types.is_numeric_dtype(y):
        return "classification"
    values = y.dropna()
    if values.nunique() <= 10 and np.all(np.equal(np.mod(values, 1), 0)):
        return "classification"
    return "regression"


def _encode_binary(y: pd.Series, notes: list[str], target: str) -> tuple[pd.Series, str]:
    labels = sorted(y.unique(), key=str)
    if set(labels) <= {0, 1}:
        return y.astype(int), "1"
    words = [str(v).strip().lower() for v in labels]
    positives = [lab for lab, w in zip(labels, words) if w in _POSITIVE_WORDS]
    if len(positives) == 1:
        pos = positives[0]
    else:
        counts = y.value_counts()
        pos = counts.idxmin() if counts.iloc[0] != counts.iloc[-1] else labels[-1]
    notes.append(f"target {target!r} has two classes; coded {pos!r} as 1 (positive) and the other as 0")
    return (y == pos).astype(int), str(pos)


def read_csv(
    path: str | Path,
    *,
    target: str,
    task: str = "",
    time_column: str = "",
    n: int | None = None,
    seed: int = 0,
) -> LoadedData:
    """Read a user's CSV and describe it as a use case.

    Parameters
    ----------
    path
        The CSV file; relative paths are tried against the repository, then the cwd.
    target
        The column to predict.
    task
        ``"classification"`` or ``"regression"``; empty to infer it from the target (noted).
    time_column
        A column that orders the rows in time; the notebooks then split by time.
    n
        Keep at most this many rows (a random sample by ``seed``, or the first ``n`` in time order).
    seed
        Seed of that sample.

    Raises
    ------
    DataError
        Missing file, empty file, missing target or time column, all-missing or constant
        target, a task that does not fit the target, or fewer than :data:`MIN_ROWS` rows.
    """
    file = paths.find_input(path)
    if not file.exists():
        raise DataError(
            f"Data file not found: {path} (looked at {file}). Pass data_path as an absolute path "
            "or relative to the repository root."
        )
    if file.is_dir():
        raise DataError(f"data_path {path} is a folder; point it at a CSV file.")
    notes: list[str] = []
    text = _decode(file.read_bytes(), notes)
    if not text.strip():
        raise DataError(f"{file.name} is empty; it needs a header line and at least {MIN_ROWS} rows.")
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{file.name} could not be read as CSV: {str(exc).strip()}. Check the delimiter is a comma.") from None
    renamed = {c: str(c).strip() for c in df.columns if str(c) != str(c).strip()}
    if renamed:
        df = df.rename(columns=renamed)
        notes.append(f"stripped spaces around {len(renamed)} column name(s)")
    if target not in df.columns:
        close = difflib.get_close_matches(target, [str(c) for c in df.columns], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"Target column {target!r} is not in {file.name}.{hint} Columns: {', '.join(map(str, df.columns))}."
        )
    if time_column and time_column not in df.columns:
        raise DataError(f"time_column {time_column!r} is not in {file.name}. Columns: {', '.join(map(str, df.columns))}.")
    df = _parse_columns(df, notes, protect={target})
    y = df[target]
    if y.isna().all():
        raise DataError(f"Target column {target!r} is empty in every row; choose a column that holds the outcome.")
    missing_target = int(y.isna().sum())
    if missing_target:
        df = df[y.notna()].reset_index(drop=True)
        notes.append(f"dropped {missing_target} row(s) whose target {target!r} is missing")
    y = df[target]
    if y.nunique() < 2:
        raise DataError(f"Target column {target!r} has a single value ({y.iloc[0]!r}); there is nothing to predict.")
    if not task:
        task = _infer_task(y)
        notes.append(f"task not given; inferred {task!r} from the target's values")
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise DataError(
            f"task='regression' needs a numeric target, but {target!r} holds text such as {str(y.iloc[0])[:20]!r}. "
            "Use task='classification'."
        )
    if task == "classification":
        values = y.dropna()
        if pd.api.types.is_float_dtype(values) and values.nunique() > 20 and not np.all(np.mod(values, 1) == 0):
            raise DataError(
                f"task='classification' but {target!r} looks continuous ({values.nunique()} distinct decimal values). "
                "Use task='regression', or bin the target into classes first."
            )
        counts = values.value_counts()
        if counts.min() < 5:
            rare = counts[counts < 5].index.tolist()[:3]
            raise DataError(
                f"Class(es) {rare} of {target!r} have fewer than 5 rows; a stratified split cannot put them in "
                "train, validation and test. Merge rare classes or remove those rows."
            )
    if task not in ("classification", "regression"):
        raise ParameterError(f"task must be 'classification' or 'regression', got {task!r}.")
    if time_column:
        t = df[time_column]
        if not (pd.api.types.is_datetime64_any_dtype(t) or pd.api.types.is_numeric_dtype(t)):
            parsed = pd.to_datetime(t, errors="coerce", format="mixed")
            if parsed.notna().mean() < 0.95:
                raise DataError(f"time_column {time_column!r} does not hold dates or numbers; pick a column that orders rows in time.")
            df[time_column] = parsed
        df = df.sort_values(time_column, kind="stable").reset_index(drop=True)
    ids = _identifier_columns(df, target)
    ids = [c for c in ids if c != time_column]
    if ids:
        notes.append(f"identifier column(s) {', '.join(ids)} will not be used as features")
    for col in df.columns:
        s = df[col]
        if col != target and col not in ids and pd.api.types.is_object_dtype(s) and s.nunique() > HIGH_CARDINALITY:
            notes.append(
                f"column {col!r} has {s.nunique()} categories; one-hot encoding keeps the most frequent "
                "and groups the rest as 'infrequent'"
            )
    n_classes = int(df[target].nunique()) if task == "classification" else 0
    metric, positive = None, None
    if task == "classification":
        if n_classes == 2:
            df[target], positive = _encode_binary(df[target], notes, target)
            metric = "roc_auc"
        else:
            df[target] = df[target].astype(str)
            metric = "balanced_accuracy"
            notes.append(f"target {target!r} has {n_classes} classes: multiclass, scored by balanced accuracy")
    if n is not None and n < len(df):
        df = df.head(n) if time_column else df.sample(n=n, random_state=seed).reset_index(drop=True)
        notes.append(f"kept {n} of the rows ({'the earliest' if time_column else 'a random sample'})")
    if len(df) < MIN_ROWS:
        raise DataError(
            f"{file.name} has {len(df)} usable rows; at least {MIN_ROWS} are needed to split into train, "
            "validation and test."
        )
    uc = usecases.custom(
        name=file.name,
        target=target,
        task=task,
        time_column=time_column or None,
        id_columns=tuple(ids),
        default_rows=len(df),
        primary_metric=metric,
        positive_label=1 if positive is not None else None,
    )
    return LoadedData(uc, df, notes)


def load_data(params: dict) -> LoadedData:
    """Load the data a notebook's parameters ask for: the user's CSV, or a built-in use case.

    ``smoke=True`` keeps :data:`SMOKE_ROWS` rows so the CI grid runs in seconds.

    Examples
    --------
    >>> data = load_data({"use_case": "healthcare-diagnosis", "seed": 0, "smoke": True})
    >>> data.use_case.target, len(data.frame)
    ('malignant', 569)
    """
    from mlkit import datasets

    seed = int(params.get("seed", 0))
    smoke = bool(params.get("smoke", False))
    if params.get("data_path"):
        return read_csv(
            params["data_path"],
            target=params.get("target", ""),
            task=params.get("task", ""),
            time_column=params.get("time_column", ""),
            n=SMOKE_ROWS if smoke else None,
            seed=seed,
        )
    uc = usecases.get(params.get("use_case", ""))
    n = min(SMOKE_ROWS, uc.default_rows) if smoke else None
    return LoadedData(uc, datasets.load(uc, seed=seed, n=n), [])
