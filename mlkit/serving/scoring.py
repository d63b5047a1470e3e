"""Batch scoring: a model over a CSV or Parquet file, in chunks, with a report of every row.

:func:`score_file` streams the input in chunks (memory stays flat whatever the file's size),
checks each row against the model's schema, scores the rows that pass and writes them, in
input order, to a CSV or Parquet output: the input's columns, ``row`` (the row's number in
the input, from 0) and ``prediction``. A row the model cannot take (a missing required
value, text in a numeric column, an infinite number, a fraction in an integer column, a
number in a text column) is not scored: its number, column and reason go to
``<output>.errors.csv``, never its value. The checks are vectorised, one pass per column
(:func:`check_rows`), and stricter than the server's on one point: a required column
must hold a value in every row.
Every row read is either scored or rejected, and the :class:`ScoreReport` counts both.

``backend="dask"`` scores the chunks on ``dask.distributed`` workers (a local cluster, or
an existing scheduler); each worker loads the model once. The output is the same.

Examples
--------
From Python (a packaged model folder or ``models:/<name>@<alias>``)::

    from mlkit.serving.scoring import score_file

    report = score_file("models:/mlkit-finance-fraud@champion", "transactions.csv", "scored.parquet")
    print(report)        # 700 rows read: 697 scored, 3 rejected (see scored.parquet.errors.csv) ...

From the command line::

    mlkit score --model models:/mlkit-finance-fraud@champion --input transactions.csv --output scored.csv
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from mlkit.errors import DataError, MlkitError, ParameterError
from mlkit.serving.model import RUNTIMES, ServedModel, load_model
from mlkit.serving.schema import INTEGER, Column, Schema

__all__ = ["ScoreReport", "RowCheck", "check_rows", "score_file", "add_arguments", "run_from_args"]

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
BACKENDS = ("local", "dask")
ROW, PREDICTION = "row", "prediction"
_ERROR_COLUMNS = ["row", "column", "reason"]
_TRUTH = {"true": True, "false": False, "1": True, "0": False, "1.0": True, "0.0": False}
_EMPTY = {"long": np.int64, "double": np.float64, "string": object}


@dataclass
class ScoreReport:
    """What :func:`score_file` did: rows read, scored and rejected, where they went, how fast."""

    rows: int
    scored: int
    rejected: int
    errors_path: Path
    output: Path
    seconds: float
    rows_per_second: float

    def __str__(self) -> str:
        rejected = f"{self.rejected:,} rejected" + (f" (see {self.errors_path})" if self.rejected else "")
        return (f"{self.rows:,} rows read: {self.scored:,} scored, {rejected}; wrote {self.output} "
                f"in {self.seconds:.1f} s ({self.rows_per_second:,.0f} rows/s)")


# --------------------------------------------------------------------------- row checks


@dataclass
class RowCheck:
    """What :func:`check_rows` found in a chunk of rows.

    ``valid`` says, row by row, whether the model can take it; ``columns`` holds the
    schema's columns converted (numbers as float64, or Int64 for integer columns; text as
    ``string``; flags as ``boolean``); ``problems`` has one line (row, column, reason) per
    bad value, in row order.
    """

    valid: np.ndarray
    columns: dict[str, pd.Series]
    problems: pd.DataFrame


def _numbers(column: Column, values: pd.Series, present: np.ndarray) -> tuple[pd.Series, list]:
    if pd.api.types.is_bool_dtype(values.dtype):  # true/false is not a number, even if pandas could make it one
        numbers = np.full(len(values), np.nan)
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    problems = [
        (present & np.isnan(numbers),
         f"Column {column.name!r} must hold numbers ({column.type}); this row holds text or another non-number."),
        (np.isinf(numbers), f"Column {column.name!r} holds an infinite number; it must be finite."),
    ]
    converted = pd.Series(numbers, index=values.index)
    if column.type in INTEGER:
        whole = np.isfinite(numbers) & (numbers == np.round(numbers))
        problems.append((np.isfinite(numbers) & ~whole,
                         f"Column {column.name!r} must hold whole numbers ({column.type}); this row holds a fraction."))
        converted = converted.where(whole).astype("Int64")
    return converted, problems


def _flags(column: Column, values: pd.Series, present: np.ndarray) -> tuple[pd.Series, list]:
    if pd.api.types.is_bool_dtype(values.dtype):
        flags = values.astype("boolean")
    else:
        flags = values.astype(str).str.strip().str.lower().map(_TRUTH)
    bad = present & flags.isna().to_numpy()
    reason = f"Column {column.name!r} must hold true or false; this row holds another value."
    return flags.where(~bad).astype("boolean"), [(bad, reason)]


def _texts(column: Column, values: pd.Series, present: np.ndarray) -> tuple[pd.Series, list]:
    """Text as it is; numbers and other scalars as their text, as the server casts them (no row is refused)."""
    return values.astype(object).where(~pd.isna(values), None).map(lambda v: v if v is None or isinstance(v, str) else str(v)).astype("string"), []


def check_rows(frame: pd.DataFrame, schema: Schema, *, start: int = 0) -> RowCheck:
    """Check every row of ``frame`` against ``schema``, one vectorised pass per column.

    Parameters
    ----------
    frame
        Rows as read from a file (columns the schema does not name are ignored).
    schema
        The model's schema (:attr:`mlkit.serving.model.ServedModel.schema`).
    start
        The number of the frame's first row in the whole file (row numbers start at 0).

    Returns
    -------
    RowCheck
        Which rows are valid, the schema's columns converted, and one problem line per
        bad value. Reasons name the column and never repeat the value.

    Raises
    ------
    DataError
        A required column is absent from ``frame``.
    """
    missing = [c.name for c in schema.columns if c.required and c.name not in frame.columns]
    if missing:
        raise DataError(f"The input has no column(s) {', '.join(map(repr, missing))}. The model needs: "
                        f"{schema.describe()}. Add the column(s), or score with the model they belong to.")
    valid = np.ones(len(frame), dtype=bool)
    columns: dict[str, pd.Series] = {}
    lines = []
    for column in schema.columns:
        if column.name not in frame.columns:  # an optional column left out: the model imputes it
            continue
        values = frame[column.name]
        if isinstance(values.dtype, pd.CategoricalDtype):  # Parquet dictionary columns: check the values themselves
            values = values.astype(object)
        present = values.notna().to_numpy()
        check = _numbers if column.numeric else (_flags if column.type == "boolean" else _texts)
        columns[column.name], problems = check(column, values, present)
        # A missing value (an empty cell) is not refused: the pipeline imputes it, as the server does.
        for mask, reason in problems:
            rows = np.flatnonzero(mask)
            if rows.size:
                valid[rows] = False
                lines.append(pd.DataFrame({"row": rows + start, "column": column.name, "reason": reason}))
    problems = (pd.concat(lines, ignore_index=True).sort_values("row", kind="stable", ignore_index=True)
                if lines else pd.DataFrame({"row": np.array([], dtype=np.int64), "column": [], "reason": []}))
    return RowCheck(valid, columns, problems)


def _features(check: RowCheck, schema: Schema) -> pd.DataFrame:
    """The valid rows' schema columns as the model takes them; an optional column left out is all missing."""
    n = int(check.valid.sum())
    features = {}
    for column in schema.columns:
        values = check.columns.get(column.name)
        if values is None:
            features[column.name] = np.full(n, np.nan) if column.numeric else pd.Series([None] * n, dtype=object)
        else:
            values = values[check.valid].reset_index(drop=True)
            features[column.name] = values.astype("float64") if column.numeric else values
    return pd.DataFrame(features)


def _score_chunk(served: ServedModel, frame: pd.DataFrame, start: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check, convert and score one chunk: the scored rows (row, input columns, prediction) and the problems."""
    check = check_rows(frame, served.schema, start=start)
    valid = check.valid
    if valid.any():
        predictions = served.predict_batch(served.schema.from_frame(_features(check, served.schema)))
    else:
        predictions = np.array([], dtype=_EMPTY.get(served.output_type, object))
    out = frame.assign(**check.columns)[valid].reset_index(drop=True)
    out.insert(0, ROW, np.flatnonzero(valid) + start)
    out[PREDICTION] = predictions
    if len(out) + check.problems["row"].nunique() != len(frame):  # every row is scored or rejected, never both
        raise MlkitError(f"Rows {start}..{start + len(frame) - 1} were not all accounted for; this is a bug in mlkit.")
    return out, check.problems


# --------------------------------------------------------------------------- files


def _format(path: Path, what: str, error: type[MlkitError]) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise error(f"The {what} {path} has extension {path.suffix or '(none)'!r}; mlkit reads and writes "
                    f"{', '.join(FORMATS)} files. Rename it, or convert it to CSV or Parquet.")
    return fmt


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MlkitError("Parquet files need pyarrow: pip install pyarrow.") from None
    return pa, pq


def _open_input(path: Path, fmt: str, schema: Schema, chunksize: int) -> tuple[list[str], int | None, Iterator]:
    """The input's column names, its row count (Parquet; None for CSV) and an iterator of chunks."""
    unreadable = f"Cannot read {path} as {fmt.upper()}"
    if fmt == "csv":
        try:
            names = list(pd.read_csv(path, nrows=0).columns)
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise DataError(f"{unreadable} ({type(exc).__name__}); check that it is a CSV file with a header "
                            "row.") from None
        # Text stays text (ids with leading zeros, codes); the schema's numeric and boolean columns are parsed.
        parsed = {c.name for c in schema.columns if c.numeric or c.type == "boolean"}
        dtypes = {name: str for name in names if name not in parsed}

        def chunks():
            with pd.read_csv(path, chunksize=chunksize, dtype=dtypes) as reader:
                yield from reader

        return names, None, _wrap_errors(chunks(), unreadable)
    pa, pq = _pyarrow()
    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{unreadable} ({type(exc).__name__}); check that it is a Parquet file.") from None
    names = parquet.schema_arrow.names
    checked = [n for n in names if n in schema.names]

    def batches():
        for batch in parquet.iter_batches(batch_size=chunksize):
            frame = batch.to_pandas(types_mapper=pd.ArrowDtype)  # other columns keep their Parquet types exactly
            yield frame.assign(**batch.select(checked).to_pandas()) if checked else frame

    return names, parquet.metadata.num_rows, _wrap_errors(batches(), unreadable)


def _wrap_errors(chunks: Iterator[pd.DataFrame], unreadable: str) -> Iterator[pd.DataFrame]:
    """A file that breaks part-way (a row with too many fields, a corrupt page) is a DataError."""
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
            raise DataError(f"{unreadable}: {exc}. Fix the file and score it again.") from None
        yield chunk


class _Writer:
    """Writes chunks to ``<path>.partial`` and renames it to ``path`` on :meth:`commit` (no half files)."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        self.partial = path.with_name(path.name + ".partial")
        self._handle = None
        self._parquet = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.fmt == "csv":
            first = self._handle is None
            if first:
                self._handle = open(self.partial, "w", newline="", encoding="utf-8")
            frame.to_csv(self._handle, header=first, index=False)
            return
        pa, pq = _pyarrow()
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.partial, table.schema)
        elif not table.schema.equals(self._parquet.schema, check_metadata=False):
            table = table.cast(self._parquet.schema)  # e.g. a chunk whose optional column is all empty
        self._parquet.write_table(table)

    def _close(self) -> None:
        for handle in (self._handle, self._parquet):
            if handle is not None:
                handle.close()

    def commit(self, columns: list[str]) -> None:
        if self._handle is None and self._parquet is None:  # no chunk at all (an empty file): header only
            self.write(pd.DataFrame({c: pd.Series([], dtype=object) for c in columns}))
        self._close()
        os.replace(self.partial, self.path)

    def abort(self) -> None:
        self._close()
        self.partial.unlink(missing_ok=True)


# --------------------------------------------------------------------------- backends

_MODELS: dict[tuple, ServedModel] = {}  # in each Dask worker: the models it has loaded, by _spec()


def _spec(model: str, served: ServedModel, runtime: str, trust: tuple[str, ...], allow_pickle: bool) -> tuple:
    """What a worker needs to load the same model: a pinned version, or a folder and its files' stamps."""
    from mlkit import registry

    if model.startswith("models:/"):
        if served.version.isdigit():  # an alias could move during the run: workers load the version checked here
            model = f"models:/{served.name}/{served.version}"
        return model, runtime, registry.tracking_uri(), trust, allow_pickle, ()
    folder = Path(model).resolve()
    stamp = tuple(sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns, p.stat().st_size)
                         for p in folder.rglob("*") if p.is_file()))
    return str(folder), runtime, None, trust, allow_pickle, stamp


def _score_on_worker(spec: tuple, frame: pd.DataFrame, start: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A Dask task: load the model once per worker process, then score the chunk."""
    served = _MODELS.get(spec)
    if served is None:
        model, runtime, uri, trust, allow_pickle, _ = spec
        old = os.environ.get("MLFLOW_TRACKING_URI")
        if uri:  # the registry the model was checked against, not whatever the worker's environment says
            os.environ["MLFLOW_TRACKING_URI"] = uri
        try:
            served = load_model(model, runtime=runtime, trust=trust, allow_pickle=allow_pickle)
        finally:
            if uri and old is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            elif uri:
                os.environ["MLFLOW_TRACKING_URI"] = old
        if len(_MODELS) >= 4:
            _MODELS.clear()
        _MODELS[spec] = served
    return _score_chunk(served, frame, start)


def _numbered(chunks: Iterator[pd.DataFrame]) -> Iterator[tuple[int, pd.DataFrame]]:
    start = 0
    for frame in chunks:
        yield start, frame
        start += len(frame)


def _local_results(chunks, served: ServedModel):
    for start, frame in _numbered(chunks):
        yield len(frame), _score_chunk(served, frame, start)


def _dask_results(chunks, spec: tuple, *, workers: int, scheduler: str | None):
    """Chunks scored on Dask, results in input order; at most two chunks per worker thread in flight."""
    try:
        from distributed import Client

        from mlkit.cluster import start_local_cluster
    except ImportError:
        raise MlkitError("The Dask backend needs dask.distributed: pip install 'mlkit[distributed]'.") from None
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout=30)
    else:
        # one thread per worker (no oversubscription), loopback; os.environ left as it was
        cluster = start_local_cluster(workers, env={"OMP_NUM_THREADS": "1"})
        client = Client(cluster)
    pending: deque = deque()
    try:
        window = 2 * max(1, sum(client.nthreads().values()))
        for start, frame in _numbered(chunks):
            data = client.scatter(frame, hash=False)  # sent once, beside the task rather than inside its graph
            pending.append((len(frame), client.submit(_score_on_worker, spec, data, start, pure=False)))
            while len(pending) >= window:
                n, future = pending.popleft()
                yield n, future.result()
        while pending:
            n, future = pending.popleft()
            yield n, future.result()
    finally:
        client.cancel([f for _, f in pending])
        client.close()
        if cluster is not None:
            cluster.close()


# --------------------------------------------------------------------------- scoring


def _check_arguments(input: Path, output: Path, chunksize: int, backend: str, scheduler: str | None,
                     runtime: str, workers: int) -> tuple[str, str]:
    for name, value in (("chunksize", chunksize), ("workers", workers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(f"{name} must be a whole number of at least 1, got {value!r}.")
    if backend not in BACKENDS:
        raise ParameterError(f"Unknown backend {backend!r}; use one of {', '.join(BACKENDS)}.")
    if scheduler and backend != "dask":
        raise ParameterError("A scheduler address needs backend='dask' (--backend dask).")
    if runtime not in RUNTIMES:
        raise ParameterError(f"Unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}.")
    out_fmt = _format(output, "output", ParameterError)
    in_fmt = _format(input, "input", DataError)
    if not input.is_file():
        raise DataError(f"Input file {input} does not exist (or is not a file); check the path.")
    if output.resolve() == input.resolve():
        raise ParameterError(f"The output {output} is the input; write the scores to another file.")
    return in_fmt, out_fmt


def score_file(
    model: str | Path,
    input: str | Path,
    output: str | Path,
    *,
    chunksize: int = 10_000,
    backend: str = "local",
    scheduler: str | None = None,
    runtime: str = "sklearn",
    progress: bool = True,
    workers: int = 2,
    trust: tuple[str, ...] = (),
    allow_pickle: bool = False,
) -> ScoreReport:
    """Score every row of a CSV or Parquet file, in chunks, and write the scored rows in input order.

    Parameters
    ----------
    model
        ``models:/<name>@<alias>``, ``models:/<name>/<version>`` or a model folder
        (see :func:`mlkit.serving.model.load_model`).
    input
        A ``.csv`` or ``.parquet`` file with the model's columns (others are carried along).
    output
        A ``.csv`` or ``.parquet`` file to write: ``row``, the input's columns, ``prediction``,
        for the scored rows (the model's columns as it read them: numbers as floats). Rejected
        rows go to ``<output>.errors.csv`` (row, column, reason), which is always written.
        Both appear only when scoring finishes.
    chunksize
        Rows read, checked and scored at a time; memory grows with it, not with the file.
    backend
        ``"local"`` scores in this process; ``"dask"`` on ``dask.distributed`` workers.
    scheduler
        With ``backend="dask"``, the address of an existing scheduler (e.g.
        ``tcp://127.0.0.1:8786``); by default a local cluster of ``workers`` processes. Each
        worker loads the model once: from the same folder path, or from the registry at this
        process's ``MLFLOW_TRACKING_URI``, which the workers must be able to reach.
    runtime
        ``"sklearn"`` or ``"onnx"``.
    progress
        Show a progress bar (rows) on stderr.
    workers
        Worker processes of the local Dask cluster (one thread each).
    trust, allow_pickle
        For a plain MLflow model folder: as in :func:`mlkit.serving.model.load_model`.

    Returns
    -------
    ScoreReport
        Rows read, scored and rejected (``scored + rejected == rows``), the paths, and the
        wall time (model loading included).

    Raises
    ------
    DataError
        The input is missing, unreadable, not CSV or Parquet, lacks a required column, or
        already has a ``row`` or ``prediction`` column. Nothing is written.
    ParameterError
        A bad option: chunksize or workers below 1, an unknown backend or runtime, a
        scheduler without the Dask backend, an output that is the input or not CSV or Parquet.
    """
    began = time.perf_counter()
    input, output = Path(input), Path(output)
    in_fmt, out_fmt = _check_arguments(input, output, chunksize, backend, scheduler, runtime, workers)
    model = str(model)
    served = load_model(model, runtime=runtime, trust=tuple(trust), allow_pickle=allow_pickle)
    names, total, chunks = _open_input(input, in_fmt, served.schema, chunksize)
    check_rows(pd.DataFrame(columns=names), served.schema)  # the header alone: a required column missing stops here
    taken = [c for c in (ROW, PREDICTION) if c in names]
    if taken:
        raise DataError(f"The input already has a column named {', '.join(map(repr, taken))}, which the output "
                        "adds; rename or drop it (a scored file is scored again from its original input).")
    if backend == "dask":
        results = _dask_results(chunks, _spec(model, served, runtime, tuple(trust), allow_pickle),
                                workers=workers, scheduler=scheduler)
    else:
        results = _local_results(chunks, served)

    errors_path = output.with_name(output.name + ".errors.csv")
    output.parent.mkdir(parents=True, exist_ok=True)
    writer, errors = _Writer(output, out_fmt), _Writer(errors_path, "csv")
    rows = scored = rejected = 0
    from tqdm import tqdm  # imported here: a server bundle that never scores files need not ship it

    bar = tqdm(total=total, unit="row", unit_scale=True, desc="scoring", file=sys.stderr, disable=not progress)
    try:
        for n, (out, problems) in results:
            writer.write(out)
            errors.write(problems)
            rows, scored, rejected = rows + n, scored + len(out), rejected + problems["row"].nunique()
            bar.update(n)
        writer.commit([ROW, *names, PREDICTION])
        errors.commit(_ERROR_COLUMNS)
    except BaseException:
        writer.abort()
        errors.abort()
        with contextlib.suppress(Exception):
            results.close()
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - began
    return ScoreReport(rows, scored, rejected, errors_path, output, round(seconds, 3),
                       round(rows / seconds, 1) if seconds > 0 else 0.0)


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``mlkit score``'s options to ``parser``."""
    parser.add_argument("--model", required=True, metavar="MODEL",
                        help="models:/NAME@ALIAS, models:/NAME/VERSION, or a model folder")
    parser.add_argument("--input", required=True, metavar="FILE", help="the rows to score: .csv or .parquet")
    parser.add_argument("--output", required=True, metavar="FILE",
                        help="where the scored rows go: .csv or .parquet (rejected rows: FILE.errors.csv)")
    parser.add_argument("--chunksize", type=int, default=10_000, metavar="N", help="rows per chunk (default: 10000)")
    parser.add_argument("--backend", choices=BACKENDS, default="local", help="score here, or on Dask (default: local)")
    parser.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://127.0.0.1:8786")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes of a local cluster (default: 2)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="sklearn", help="scikit-learn or onnxruntime")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--trust", action="append", metavar="TYPE",
                        help="a plain MLflow skops model: also trust this type")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="a plain MLflow pickle model you made yourself: load it")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``mlkit score`` and print the report line; 0 when the file was scored, even with rejected rows."""
    report = score_file(args.model, args.input, args.output, chunksize=args.chunksize, backend=args.backend,
                        scheduler=args.scheduler, runtime=args.runtime, progress=not args.no_progress,
                        workers=args.workers, trust=tuple(args.trust or ()), allow_pickle=args.allow_pickle)
    print(report)
    if report.rejected:
        print(f"note: {report.rejected:,} row(s) were not scored; {report.errors_path} lists each one's "
              "row number, column and reason.", file=sys.stderr)
    return 0
