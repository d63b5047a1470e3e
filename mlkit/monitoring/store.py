"""The prediction log: every prediction a model served, and the true outcome once it is known.

One table, ``predictions``, written through SQLAlchemy Core, so the same code runs on a
SQLite file (the default, in WAL mode, at ``<repo>/.mlkit/predictions.db``) and on
PostgreSQL (``postgresql+psycopg://user@host:5432/db``). Which store: the ``url`` argument
if given, else the ``MLKIT_LOG_DB`` environment variable, else the default file. A plain
path is a SQLite file (relative paths are relative to the repository).

Each row is one prediction: ``request_id``, ``timestamp`` (UTC), ``model``,
``model_version``, ``features`` (JSON text), ``prediction`` (JSON text), ``score`` (a float
or null), ``served_by`` (``"mlkit-sklearn"``, ``"cloud"``, ``"on-premise"``, ``"shadow"``,
...), then ``label`` (JSON text) and ``label_timestamp``, filled later by
:func:`attach_labels` when the outcome arrives. A request id is unique per ``served_by``: a
shadow model that scored the same request logs a second row with the same id, so a label
attached to the request reaches both predictions.

Writing: :class:`PredictionLogger` validates the records in the caller's thread, queues
them, and a background thread inserts them in batches (one ``executemany`` per
transaction). A server uses :meth:`PredictionLogger.log_served` instead: its rows are
trusted (built by the server from input it has already validated), handed over as columns,
and turned into log rows (JSON and all) in the writer's thread, so the request path only
queues them. SQLite writers (threads or processes) queue for a file lock
(``<db>.lock``, ``flock``) around each write transaction instead of polling SQLite's busy
handler, which sleeps in steps of up to 100 ms. What is guaranteed:

- nothing accepted is dropped: :meth:`PredictionLogger.log` either queues every record
  it was given or raises (:class:`LogFullError` when the bounded queue stays full for
  ``timeout`` seconds: the database is not keeping up, and the caller is told, not
  silently short-changed);
- :meth:`~PredictionLogger.flush` and :meth:`~PredictionLogger.close` (also run at
  interpreter exit, and by ``with``) return once everything queued before them is
  committed, or raise saying what was not;
- a killed process (``kill -9``) leaves a consistent database holding **every prediction
  whose batch was committed**; those still in the queue are lost. With ``durable=True``
  (or ``log(..., wait=True)``), ``log`` returns only after the record's batch is committed
  (callers waiting together share one commit: group commit), so a server that logs
  before it answers keeps **every prediction whose response was sent**. A durable SQLite
  logger also sets ``synchronous=FULL``, so committed batches survive a power cut too.

Reading: :func:`read_log` returns a DataFrame with the features expanded to columns, and
:func:`windows` numbers fixed-size windows (``500`` rows, or ``"1h"`` of time) for
monitoring reports.

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> url = f"sqlite:///{folder}/log.db"
>>> with PredictionLogger(url) as logger:
...     ids = logger.log([
...         {"request_id": "r1", "model": "fraud", "model_version": "1",
...          "features": {"amount": 12.5, "channel": "web"}, "prediction": 0, "score": 0.1},
...         {"request_id": "r2", "model": "fraud", "model_version": "1",
...          "features": {"amount": 990.0, "channel": "app"}, "prediction": 1, "score": 0.8},
...     ])
>>> attach_labels(url, {"r1": 0, "r2": 1, "r9": 0})
LabelResult(matched=2, unknown=('r9',), stale=())
>>> read_log(url)[["request_id", "prediction", "label", "amount", "channel"]]
  request_id  prediction  label  amount channel
0         r1           0      0    12.5     web
1         r2           1      1   990.0     app
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import concurrent.futures
import contextlib
import datetime as dt
import json
import logging
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.schema import CreateIndex, CreateTable

from mlkit import paths
from mlkit.errors import MlkitError, ParameterError

__all__ = [
    "COLUMNS",
    "ENV_VAR",
    "LogStoreError",
    "LogFullError",
    "LabelResult",
    "ServedRows",
    "resolve_url",
    "PredictionLogger",
    "attach_labels",
    "read_log",
    "windows",
]

ENV_VAR = "MLKIT_LOG_DB"
"""The environment variable naming the log's database URL (a ``url`` argument wins over it)."""

COLUMNS = (
    "request_id",
    "timestamp",
    "model",
    "model_version",
    "prediction",
    "score",
    "served_by",
    "label",
    "label_timestamp",
)
"""The log's columns as :func:`read_log` returns them, before the feature columns."""

_FIELDS = {"request_id", "timestamp", "model", "model_version", "features", "prediction", "score",
           "served_by", "label", "label_timestamp"}
_TABLE = "predictions"
_PG_LOCK_KEY = 0x6D6C6B6974  # "mlkit": serialises schema creation across PostgreSQL clients
_log = logging.getLogger(__name__)


class LogStoreError(MlkitError):
    """Raised when the prediction log cannot be opened, written or read."""


class LogFullError(LogStoreError):
    """Raised when :meth:`PredictionLogger.log` waited ``timeout`` seconds for room in a full queue."""


@dataclass(frozen=True)
class LabelResult:
    """What :func:`attach_labels` did.

    Attributes
    ----------
    matched : int
        Request ids found in the log whose label was set (every row of the id: the served
        prediction and any shadow prediction).
    unknown : tuple of str
        Request ids not in the log (yet): nothing was written for them.
    stale : tuple of str
        Request ids already labelled at a later time than the new label's: kept as they were.
    """

    matched: int
    unknown: tuple[str, ...]
    stale: tuple[str, ...]


@dataclass(frozen=True)
class ServedRows:
    """Rows one server request scored, for :meth:`PredictionLogger.log_served`.

    Trusted input: the server built it from a request it validated, so the values are not
    checked one by one (the lengths and names are). :meth:`PredictionLogger.log` is the
    validating entry for anything else.

    Attributes
    ----------
    request_ids : sequence of str
        One non-empty id per row.
    features : mapping of str to array-like
        One column per feature, each with one value per row (NumPy arrays or lists; NaN
        and None are stored as null).
    predictions : sequence
        One prediction per row (numbers, strings or booleans).
    scores : sequence of float or None, or None
        One score per row (NaN and None are stored as null), or None for no scores.
    model, model_version, served_by : str
        Who made the predictions.
    """

    request_ids: Sequence[str]
    features: Mapping[str, Any]
    predictions: Sequence[Any]
    scores: Sequence[Any] | None
    model: str
    model_version: str = ""
    served_by: str = "mlkit-sklearn"


# --------------------------------------------------------------------------- the store


_metadata = sa.MetaData()
_predictions = sa.Table(
    _TABLE,
    _metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(), nullable=False),
    sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model", sa.String(), nullable=False),
    sa.Column("model_version", sa.String(), nullable=False),
    sa.Column("features", sa.Text(), nullable=False),
    sa.Column("prediction", sa.Text(), nullable=False),
    sa.Column("score", sa.Float(), nullable=True),
    sa.Column("served_by", sa.String(), nullable=False),
    sa.Column("label", sa.Text(), nullable=True),
    sa.Column("label_timestamp", sa.DateTime(timezone=True), nullable=True),
)
_indexes = (
    sa.Index("ix_predictions_request", _predictions.c.request_id, _predictions.c.served_by, unique=True),
    sa.Index("ix_predictions_timestamp", _predictions.c.timestamp),
    sa.Index("ix_predictions_model_timestamp", _predictions.c.model, _predictions.c.timestamp),
)


def resolve_url(url: str | os.PathLike[str] | None = None) -> str:
    """The log's SQLAlchemy URL: ``url`` if given, else ``$MLKIT_LOG_DB``, else the repository's file.

    A value without ``://`` is a path to a SQLite file, relative to the repository root.
    ``postgresql://`` and ``postgres://`` mean PostgreSQL through psycopg 3
    (``postgresql+psycopg://``).

    Parameters
    ----------
    url : str or path-like, optional
        A SQLAlchemy URL (``sqlite:///ABSOLUTE/PATH.db``, ``postgresql+psycopg://...``) or a
        path to a SQLite file.

    Returns
    -------
    str
        The URL to connect to.

    Raises
    ------
    ParameterError
        For an in-memory SQLite database or an unsupported database.

    Examples
    --------
    >>> resolve_url("/tmp/log.db")
    'sqlite:////tmp/log.db'
    >>> resolve_url("postgresql://mlkit@127.0.0.1:5432/monitoring")
    'postgresql+psycopg://mlkit@127.0.0.1:5432/monitoring'
    >>> import os
    >>> saved = os.environ.pop("MLKIT_LOG_DB", None)  # the default, when the variable is not set
    >>> resolve_url().endswith(".mlkit/predictions.db")
    True
    >>> if saved is not None:
    ...     os.environ["MLKIT_LOG_DB"] = saved
    """
    if url is None:
        url = os.environ.get(ENV_VAR, "").strip() or None
    if url is None:
        return f"sqlite:///{paths.repo_root() / '.mlkit' / 'predictions.db'}"
    text = os.fspath(url).strip()
    if not text:
        raise ParameterError(f"The prediction log URL is empty. Give a URL ({_URL_HELP}) or unset {ENV_VAR}.")
    if "://" not in text:
        return f"sqlite:///{paths.resolve(text)}"
    scheme, rest = text.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    backend = scheme.split("+", 1)[0]
    if backend == "sqlite":
        if rest in ("", "/", "/:memory:") or ":memory:" in rest or "mode=memory" in rest:
            raise ParameterError(
                "An in-memory SQLite prediction log would vanish with its connection (and the writer "
                "thread has its own). Give a file instead: sqlite:///ABSOLUTE/PATH.db, or a plain path."
            )
        try:
            parsed = sa.engine.make_url(text)
        except sa_exc.ArgumentError:
            raise ParameterError(f"{scheme}://... is not a database URL. Use {_URL_HELP}.") from None
        if parsed.database and not Path(parsed.database).is_absolute():  # relative to the repository, not the cwd
            return parsed.set(database=str(paths.resolve(parsed.database))).render_as_string(hide_password=False)
        return text
    if backend == "postgresql":
        return text
    raise ParameterError(
        f"The prediction log supports SQLite and PostgreSQL, not {scheme!r}. Use {_URL_HELP}."
    )


_URL_HELP = "sqlite:///ABSOLUTE/PATH.db, a plain file path, or postgresql+psycopg://USER@HOST:PORT/DATABASE"


def _display(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (a URL too broken to parse: show only its scheme)
        return url.split("://", 1)[0] + "://..."


def _sqlite_file(url: str) -> Path | None:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def _open_error(url: str, exc: BaseException) -> LogStoreError:
    """A store that cannot be opened, with the fix."""
    where = _display(url)
    detail = _first_line(exc)
    db = _sqlite_file(url) if url.startswith("sqlite") else None
    if db is not None:
        fix = (f"check that {db.parent} is a folder you can write to, or log elsewhere: pass another url "
               f"or set {ENV_VAR} ({_URL_HELP})")
    else:
        fix = (f"check that the PostgreSQL server is running and reachable, that the database exists and "
               f"the user may create tables in it; or set {ENV_VAR} ({_URL_HELP})")
    return LogStoreError(f"Cannot open the prediction log at {where}: {detail}. To fix it, {fix}.")


def _create_engine(url: str, *, durable: bool = False, pooled: bool = True, power_safe: bool | None = None) -> sa.engine.Engine:
    """An engine with the log's schema in place (created on first use, safely across processes).

    ``pooled=False`` opens a SQLite connection per use, so a log file deleted and made anew (a
    notebook starting from a clean log) is never read through a connection to the old one.
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa_exc.ArgumentError:
        raise ParameterError(f"{url.split('://', 1)[0]}://... is not a database URL. Use {_URL_HELP}.") from None
    backend = parsed.get_backend_name()
    db = _sqlite_file(url)
    if backend == "sqlite":
        if db is None:
            raise ParameterError(f"The SQLite URL names no file. Use {_URL_HELP}.")
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _open_error(url, exc) from None
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                                  **({} if pooled else {"poolclass": sa.pool.NullPool}))
        # WAL + NORMAL: a commit survives the process being killed (the OS holds the WAL pages);
        # FULL also syncs to disk at every commit, so it survives a power cut, at a cost per commit.
        synchronous = "FULL" if (durable if power_safe is None else power_safe) else "NORMAL"

        @sa.event.listens_for(engine, "connect")
        def _pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA busy_timeout=30000")
            mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                cursor.close()
                raise LogStoreError(
                    f"SQLite refused WAL mode for {db} (it answered {mode!r}): the folder is probably on a "
                    f"network file system. Put the log on a local disk, or use PostgreSQL."
                )
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.close()

    elif backend == "postgresql":
        try:
            engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        except ModuleNotFoundError as exc:
            raise LogStoreError(
                f"The PostgreSQL driver for {_display(url)} is not installed ({exc.name}). Install psycopg 3: "
                f"pip install 'psycopg[binary]', and use a postgresql+psycopg:// URL."
            ) from None
    else:
        raise ParameterError(f"The prediction log supports SQLite and PostgreSQL, not {backend!r}. Use {_URL_HELP}.")
    try:
        _ensure_schema(url, engine)
    except BaseException:
        engine.dispose()
        raise
    return engine


def _ensure_schema(url: str, engine: sa.engine.Engine) -> None:
    """Create the table and its indexes if they are missing, or say why they cannot be."""
    db = _sqlite_file(url) if engine.dialect.name == "sqlite" else None
    try:
        with paths.file_lock(db) if db is not None else contextlib.nullcontext():
            _create_schema(engine)
    except LogStoreError:
        raise
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        raise _open_error(url, exc) from None


def _create_schema(engine: sa.engine.Engine) -> None:
    """``CREATE ... IF NOT EXISTS`` under a lock (a file lock for SQLite, an advisory lock on PostgreSQL)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        conn.execute(CreateTable(_predictions, if_not_exists=True))
        found = {column["name"] for column in sa.inspect(conn).get_columns(_TABLE)}
        missing = [column.name for column in _predictions.columns if column.name not in found]
        if missing:
            raise LogStoreError(
                f"The table {_TABLE!r} at {_display(str(engine.url))} was not made by mlkit: it lacks the columns "
                f"{missing}. Log to another database (url or {ENV_VAR}), or rename that table."
            )
        for index in _indexes:
            conn.execute(CreateIndex(index, if_not_exists=True))


_ENGINES: dict[str, sa.engine.Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(url: str | os.PathLike[str] | None) -> tuple[str, sa.engine.Engine]:
    """A cached engine for reading and labelling (the logger has its own)."""
    resolved = resolve_url(url)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(resolved)
        if engine is None:
            engine = _ENGINES[resolved] = _create_engine(resolved, pooled=False)
    return resolved, engine


def _using(url: str | os.PathLike[str] | None, work: Callable[[sa.engine.Engine], Any], doing: str) -> Any:
    """Run ``work(engine)`` on the log; a SQLite file deleted since it was opened is made anew first."""
    resolved, engine = _engine(url)
    try:
        try:
            return work(engine)
        except sa_exc.OperationalError as exc:
            if engine.dialect.name != "sqlite" or "no such table" not in str(exc):
                raise
        _ensure_schema(resolved, engine)
        return work(engine)
    except sa_exc.SQLAlchemyError as exc:
        raise LogStoreError(f"Cannot {doing} the prediction log at {_display(resolved)}: {_first_line(exc)}. "
                            f"Check that the database is reachable and writable.") from None


def _forget_engines() -> None:
    """A forked child must not share its parent's connections: it opens its own."""
    _ENGINES.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_engines)


# --------------------------------------------------------------------------- values


def _utc(value: Any, what: str) -> dt.datetime:
    """A UTC-aware datetime from a datetime, a pandas Timestamp or an ISO 8601 string (naive means UTC)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ParameterError(f"{what} is not an ISO 8601 time; give a datetime or a string like "
                                 f"'2024-05-01T12:00:00+00:00'.") from None
    elif isinstance(value, np.datetime64):
        value = pd.Timestamp(value).to_pydatetime()
    if not isinstance(value, dt.datetime) or pd.isna(value):
        raise ParameterError(f"{what} must be a datetime or an ISO 8601 string, not {type(value).__name__}.")
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (dt.datetime, dt.date, pd.Timestamp)):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _plain(value: Any) -> Any:
    """A value JSON can hold as valid JSON: NaN and infinities become null."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _to_json(value: Any, what: str) -> str:
    if isinstance(value, Mapping):
        value = {str(key): _plain(item) for key, item in value.items()}
    else:
        value = _plain(value)
    try:
        return json.dumps(value, default=_json_default, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{what} holds a value JSON cannot store ({exc}); convert it to a number, a "
                             f"string or a list first.") from None


def _row(record: Any, position: int, now: dt.datetime) -> dict[str, Any]:
    """One validated row from a record mapping (values are never echoed in errors: they may be personal)."""
    where = f"record {position}"
    if not isinstance(record, Mapping):
        raise ParameterError(f"{where} is a {type(record).__name__}, not a mapping; log dicts like "
                             f"{{'model': ..., 'features': {{...}}, 'prediction': ...}}.")
    unknown = set(record) - _FIELDS
    if unknown:
        raise ParameterError(f"{where} has unknown fields {sorted(map(str, unknown))}; the fields are {sorted(_FIELDS)}.")
    for field in ("model", "features", "prediction"):
        if field not in record:
            raise ParameterError(f"{where} has no {field!r}; every record needs 'model', 'features' and 'prediction'.")
    features = record["features"]
    if not isinstance(features, Mapping):
        raise ParameterError(f"{where}: 'features' must be a mapping of column name to value (one input row), "
                             f"not a {type(features).__name__}.")
    request_id = record.get("request_id")
    request_id = uuid.uuid4().hex if request_id is None else str(request_id)
    if not request_id.strip():
        raise ParameterError(f"{where} has an empty 'request_id'; give a unique id, or leave it out for a new one.")
    model = str(record["model"]).strip()
    if not model:
        raise ParameterError(f"{where} has an empty 'model'; name the model that made the prediction.")
    served_by = str(record.get("served_by") or "mlkit-sklearn")
    score = record.get("score")
    if score is not None:
        try:
            score = float(score)
        except (TypeError, ValueError):
            raise ParameterError(f"{where}: 'score' must be a number or None, not a {type(score).__name__}.") from None
        if math.isnan(score):
            score = None
    row = {
        "request_id": request_id,
        "timestamp": now if record.get("timestamp") is None else _utc(record["timestamp"], f"{where}: 'timestamp'"),
        "model": model,
        "model_version": "" if record.get("model_version") is None else str(record["model_version"]),
        "features": _to_json(features, f"{where}: 'features'"),
        "prediction": _to_json(record["prediction"], f"{where}: 'prediction'"),
        "score": score,
        "served_by": served_by,
        "label": None,
        "label_timestamp": None,
    }
    if record.get("label") is not None:
        row["label"] = _to_json(record["label"], f"{where}: 'label'")
        stamp = record.get("label_timestamp")
        row["label_timestamp"] = now if stamp is None else _utc(stamp, f"{where}: 'label_timestamp'")
    return row


def _rows(records: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(records, Mapping):
        records = [records]
    elif isinstance(records, (str, bytes, pd.DataFrame)) or not isinstance(records, Iterable):
        raise ParameterError(f"log() takes a record (a dict) or a list of records, not a {type(records).__name__}; "
                             f"for a DataFrame of inputs, build one dict per row with 'features': row.to_dict().")
    now = dt.datetime.now(dt.timezone.utc)
    rows = [_row(record, position, now) for position, record in enumerate(records)]
    keys = [(row["request_id"], row["served_by"]) for row in rows]
    if len(set(keys)) != len(keys):
        repeated = sorted({key[0] for key in keys if keys.count(key) > 1})[:5]
        raise ParameterError(f"request ids {repeated} appear twice in one call with the same 'served_by'; "
                             f"each prediction needs its own id.")
    return rows


_ENCODE = json.JSONEncoder(default=_json_default, allow_nan=False, separators=(",", ":")).encode


def _plain_column(values: Any) -> list[Any]:
    """A column as plain Python values (JSON-ready), NaN and None as None."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind == "f":
            plain = values.tolist()
            if np.isnan(values).any():
                plain = [None if v != v else v for v in plain]
            return plain
        values = values.tolist()
    return [None if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v) else v for v in
            (item.item() if isinstance(item, np.generic) else item for item in values)]


def _served_rows(part: ServedRows, now: dt.datetime) -> list[dict[str, Any]]:
    """The log rows of a server's scored request (run in the writer's thread: JSON encoding is not free)."""
    names = [str(name) for name in part.features]
    columns = [_plain_column(values) for values in part.features.values()]
    predictions = _plain_column(np.asarray(part.predictions)) if isinstance(part.predictions, np.ndarray) \
        else part.predictions
    if part.scores is None:
        scores: Sequence[Any] = [None] * len(part.request_ids)
    else:
        scores = [None if v is None or v != v else float(v) for v in part.scores]
    rows = []
    for position, request_id in enumerate(part.request_ids):
        prediction = predictions[position]
        if isinstance(prediction, float) and not math.isfinite(prediction):
            prediction = None
        rows.append({
            "request_id": request_id, "timestamp": now, "model": part.model, "model_version": part.model_version,
            "features": _ENCODE(dict(zip(names, [column[position] for column in columns]))),
            "prediction": _ENCODE(prediction), "score": scores[position], "served_by": part.served_by,
            "label": None, "label_timestamp": None,
        })
    return rows


def _check_served(part: Any, position: int) -> int:
    """The number of rows of a :class:`ServedRows`, after checking its shape (not its values)."""
    where = f"part {position}"
    if not isinstance(part, ServedRows):
        raise ParameterError(f"{where} is a {type(part).__name__}, not a ServedRows; log_served takes a list of "
                             f"ServedRows (use log() for plain records).")
    n = len(part.request_ids)
    if any(not isinstance(rid, str) or not rid for rid in part.request_ids):
        raise ParameterError(f"{where}: every request id must be a non-empty string.")
    if len(set(part.request_ids)) != n:
        raise ParameterError(f"{where}: request ids repeat; each row needs its own id.")
    if not isinstance(part.model, str) or not part.model.strip():
        raise ParameterError(f"{where} has an empty 'model'; name the model that made the predictions.")
    if not isinstance(part.features, Mapping):
        raise ParameterError(f"{where}: 'features' must map each column name to its values.")
    lengths = {len(part.predictions), *(len(values) for values in part.features.values())}
    if part.scores is not None:
        lengths.add(len(part.scores))
    if lengths - {n}:
        raise ParameterError(f"{where}: the request ids, features, predictions and scores must all have {n} rows.")
    return n


# --------------------------------------------------------------------------- the background writer




class _Group:
    """Several log_served parts waiting together: one future, set once every part is committed or refused."""

    __slots__ = ("future", "errors", "left", "lock")

    def __init__(self, size: int) -> None:
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.errors: list[BaseException | None] = [None] * size
        self.left = size
        self.lock = threading.Lock()

    def settle(self, index: int, error: BaseException | None) -> None:
        with self.lock:
            self.errors[index] = error
            self.left -= 1
            done = self.left == 0
        if done:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                self.future.set_result(self.errors)


class _Item:
    """One log() call, one part of a log_served() call, or a flush marker: its rows, and who waits for them.

    A served part's rows are built by the writer (``part`` holds them until then).
    """

    __slots__ = ("rows", "future", "born", "n", "part", "now", "group", "index")

    def __init__(self, rows: list[dict[str, Any]] | None, future: concurrent.futures.Future | None, *,
                 n: int | None = None, part: ServedRows | None = None, now: dt.datetime | None = None,
                 group: _Group | None = None, index: int = 0) -> None:
        self.rows = rows
        self.future = future
        self.born = time.monotonic()
        self.n = len(rows) if n is None else n
        self.part, self.now, self.group, self.index = part, now, group, index

    @property
    def urgent(self) -> bool:
        """Someone waits for the commit: write it at once."""
        return self.future is not None or self.group is not None

    def ids(self) -> list[str]:
        return list(self.part.request_ids) if self.rows is None else [row["request_id"] for row in self.rows]


def _transient(exc: BaseException) -> bool:
    """Errors worth retrying: a locked SQLite file, a dropped or refused connection."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError))


class PredictionLogger:
    """Log predictions from any thread without waiting for the database: a thread writes them in batches.

    Parameters
    ----------
    url : str or path-like, optional
        Where to log (see :func:`resolve_url`): a SQLAlchemy URL or a SQLite file path;
        ``$MLKIT_LOG_DB`` or ``<repo>/.mlkit/predictions.db`` when None. The store (and
        its table) is opened here, so a bad URL fails now, not in the thread.
    batch_size : int, default 500
        Most rows written in one transaction.
    flush_interval : float, default 0.2
        Longest time, in seconds, a record waits in the queue for its batch to fill up.
        It bounds what a killed non-durable process loses. A durable record, or a
        :meth:`flush`, is written at once.
    max_queue : int, default 100000
        Most records waiting to be written. :meth:`log` blocks while the queue is full.
    timeout : float, default 10.0
        Seconds :meth:`log` waits for room in a full queue (then :class:`LogFullError`),
        and, when durable, for its commit (then :class:`LogStoreError`).
    durable : bool, default False
        When True, :meth:`log` returns only after its records are committed.
    power_safe : bool, optional
        SQLite only: sync every commit to disk (``synchronous=FULL``), so committed records
        survive a power cut, not only a killed process. Default: the same as ``durable``. A
        server that waits for each commit passes False: a killed server still keeps every
        committed record (WAL), and a commit costs no disk flush.

    Attributes
    ----------
    url : str
        The resolved URL.
    written : int
        Records committed so far.
    pending : int
        Records accepted and not yet committed.
    failed : int
        Records the database refused (for instance a request id already logged).

    Notes
    -----
    Nothing is dropped silently. A record the database refuses (a duplicate request id)
    makes a durable :meth:`log` raise; otherwise the next :meth:`flush` or :meth:`close`
    raises :class:`LogStoreError` with the count and the reason (and the error is logged
    with :mod:`logging`). When the database is unreachable or locked, the thread retries
    with a growing pause while the queue fills; :meth:`log` then raises
    :class:`LogFullError` after ``timeout`` seconds, and :meth:`close` raises if records
    are still unwritten when it gives up.

    Examples
    --------
    >>> import tempfile
    >>> url = f"sqlite:///{tempfile.mkdtemp()}/log.db"
    >>> logger = PredictionLogger(url, durable=True)
    >>> logger.log({"request_id": "a", "model": "m", "features": {"x": 1.0}, "prediction": 0.5})
    ['a']
    >>> logger.written, logger.pending
    (1, 0)
    >>> logger.close()
    >>> logger.close()  # safe twice
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.2,
        max_queue: int = 100_000,
        timeout: float = 10.0,
        durable: bool = False,
        power_safe: bool | None = None,
    ) -> None:
        for name, value, low in (("batch_size", batch_size, 1), ("max_queue", max_queue, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ParameterError(f"{name} must be a whole number of at least {low}, not {value!r}.")
        for name, value in (("flush_interval", flush_interval), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ParameterError(f"{name} must be a number of seconds, at least 0, not {value!r}.")
        self.url = resolve_url(url)
        self.batch_size = int(batch_size)
        self.flush_interval = float(flush_interval)
        self.max_queue = int(max_queue)
        self.timeout = float(timeout)
        self.durable = bool(durable)
        self._engine = _create_engine(self.url, durable=self.durable, power_safe=power_safe)
        self._lock_file = None
        db = _sqlite_file(self.url)
        if db is not None:
            try:
                import fcntl  # noqa: F401  (Windows has no flock: SQLite's busy handler alone, as before)

                self._lock_file = open(db.with_name(db.name + ".lock"), "a")  # noqa: SIM115  (closed in close())
            except (ImportError, OSError):
                self._lock_file = None
        self._cond = threading.Condition()
        self._items: collections.deque[_Item] = collections.deque()
        self._queued = 0  # rows in _items
        self._in_flight = 0  # rows taken by the writer, not yet committed or failed
        self._urgent = 0  # items someone waits for (durable, flush markers)
        self._closed = False
        self._stop = False
        self._written = 0
        self._failed = 0
        self._unreported: list[str] = []  # failures not yet raised by flush() or close()
        self._last_error: str | None = None
        self._abandoned = False
        self._thread = threading.Thread(target=self._run, name="mlkit-prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    # ---- state

    @property
    def written(self) -> int:
        """Records committed so far."""
        with self._cond:
            return self._written

    @property
    def pending(self) -> int:
        """Records accepted and not yet committed (queued, or in the batch being written)."""
        with self._cond:
            return self._queued + self._in_flight

    @property
    def failed(self) -> int:
        """Records the database refused."""
        with self._cond:
            return self._failed

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"pending={self.pending}"
        return f"PredictionLogger({_display(self.url)!r}, durable={self.durable}, {state})"

    # ---- the caller's side

    def log(self, records: Mapping[str, Any] | Iterable[Mapping[str, Any]], *, wait: bool | None = None) -> list[str]:
        """Queue records for writing, and return their request ids.

        Parameters
        ----------
        records : mapping or iterable of mappings
            One record or several. Fields: ``model``, ``features`` (a mapping, one input
            row) and ``prediction`` are required; ``request_id`` (a new UUID when absent),
            ``timestamp`` (now, UTC; naive times are taken as UTC), ``model_version``,
            ``score``, ``served_by`` (default ``"mlkit-sklearn"``), ``label`` and
            ``label_timestamp`` are optional. A call's records are committed together.
        wait : bool, optional
            Return only after the records are committed; None uses the logger's ``durable``.

        Returns
        -------
        list of str
            The request ids, in order.

        Raises
        ------
        ParameterError
            For a malformed record (nothing of the call is queued).
        LogFullError
            When the queue stayed full for ``timeout`` seconds.
        LogStoreError
            When the logger is closed, or (waiting) the records were refused or not
            committed within ``timeout`` seconds.
        """
        rows = _rows(records)
        durable = self.durable if wait is None else bool(wait)
        future = self._enqueue(rows, durable, self.timeout)
        if future is not None:
            self._wait(future, self.timeout, len(rows))
        return [row["request_id"] for row in rows]

    async def alog(self, records: Mapping[str, Any] | Iterable[Mapping[str, Any]], *,
                   wait: bool | None = None) -> list[str]:
        """:meth:`log` for an asyncio server: waits for room or for the commit without blocking the event loop.

        Parameters
        ----------
        records : mapping or iterable of mappings
            As for :meth:`log`.
        wait : bool, optional
            As for :meth:`log`.

        Returns
        -------
        list of str
            The request ids, in order.

        Examples
        --------
        ::

            @app.post("/invocations")
            async def invocations(...):
                ...
                await request.app.state.logger.alog(records)   # durable: returns after the commit
                return {"predictions": predictions}
        """
        rows = _rows(records)
        durable = self.durable if wait is None else bool(wait)
        try:
            future = self._enqueue(rows, durable, 0.0)
        except LogFullError:  # wait for room in a worker thread, not on the event loop
            loop = asyncio.get_running_loop()
            future = await loop.run_in_executor(None, self._enqueue, rows, durable, self.timeout)
        if future is not None:
            try:
                await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
            except asyncio.TimeoutError:
                raise self._timeout_error(len(rows)) from None
        return [row["request_id"] for row in rows]

    def log_served(self, parts: Sequence[ServedRows]) -> concurrent.futures.Future:
        """Queue what a server scored, without waiting: the fast path for :mod:`mlkit.serving`.

        The parts are trusted (see :class:`ServedRows`): their shapes are checked, their
        values are not, and their log rows are built in the writer's thread. Each part is
        committed or refused on its own (a request id logged twice fails only its part);
        parts queued together are normally written in one transaction. Never blocks, so an
        event loop can call it.

        Parameters
        ----------
        parts : sequence of ServedRows
            Typically one per request answered in this turn of the event loop.

        Returns
        -------
        concurrent.futures.Future
            Set once every part is settled, to a list with one entry per part: None when
            its rows are committed, else the :class:`LogStoreError` saying why not.

        Raises
        ------
        ParameterError
            A part of the wrong shape (nothing is queued).
        LogFullError
            The queue has no room now (the database is not keeping up).
        LogStoreError
            The logger is closed.
        """
        parts = list(parts)
        sizes = [_check_served(part, position) for position, part in enumerate(parts)]
        group = _Group(len(parts))
        if not parts:
            group.future.set_result([])
            return group.future
        now = dt.datetime.now(dt.timezone.utc)
        items = [_Item(None, None, n=n, part=part, now=now, group=group, index=index)
                 for index, (part, n) in enumerate(zip(parts, sizes))]
        self._enqueue_items(items, sum(sizes), 0.0)
        return group.future

    def flush(self, timeout: float | None = None) -> None:
        """Write everything queued so far, and return once it is committed.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait; None waits the longer of the logger's ``timeout`` and 60 s.

        Raises
        ------
        LogStoreError
            When records logged before were refused by the database (since the last
            report), or the queue was not written in time.
        """
        if self._closed:
            self._raise_unreported()
            return
        limit = max(self.timeout, 60.0) if timeout is None else float(timeout)
        future = self._enqueue([], True, limit)  # a marker: written once everything before it is
        if future is not None:
            self._wait(future, limit, self.pending)
        self._raise_unreported()

    def close(self, timeout: float | None = 60.0) -> None:
        """Flush the queue, stop the thread and release the database. Safe to call twice.

        Also runs at interpreter exit, and at the end of a ``with`` block.

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait for the queue to be written; None waits as long as it takes.

        Raises
        ------
        LogStoreError
            When records were refused by the database, or were still unwritten after ``timeout``.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._stop = True
            self._cond.notify_all()
        with contextlib.suppress(Exception):
            atexit.unregister(self._at_exit)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandoned = True
            with self._cond:
                left = self._queued + self._in_flight
            raise LogStoreError(
                f"{left} predictions were still unwritten after {timeout:g} s when the log at "
                f"{_display(self.url)} was closed (last database error: {self._last_error or 'none'}). "
                f"Check the database, or close with a longer timeout."
            )
        self._engine.dispose()
        if self._lock_file is not None:
            self._lock_file.close()
        self._raise_unreported()

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _at_exit(self) -> None:
        try:
            self.close()
        except LogStoreError as exc:
            _log.error("%s", exc)

    def _enqueue(self, rows: list[dict[str, Any]], durable: bool,
                 timeout: float) -> concurrent.futures.Future | None:
        """Queue one item, waiting up to ``timeout`` for room; a future when the caller waits."""
        future: concurrent.futures.Future | None = concurrent.futures.Future() if durable else None
        self._enqueue_items([_Item(rows, future)], len(rows), timeout)
        return future

    def _enqueue_items(self, items: list[_Item], count: int, timeout: float) -> None:
        """Queue items holding ``count`` rows together, waiting up to ``timeout`` for room."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._closed:
                raise LogStoreError(f"The prediction logger for {_display(self.url)} is closed; make a new "
                                    f"PredictionLogger to log again.")
            while self._queued and self._queued + count > self.max_queue:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LogFullError(
                        f"The prediction log's queue has held {self._queued} records (max_queue={self.max_queue}) "
                        f"for {timeout:g} s: the database at {_display(self.url)} is not keeping up"
                        f"{' (last error: ' + self._last_error + ')' if self._last_error else ''}. "
                        f"The {count} records of this call were not logged. Check the database, "
                        f"raise max_queue or timeout, or send fewer requests."
                    )
                self._cond.wait(remaining)
                if self._closed:
                    raise LogStoreError(f"The prediction logger for {_display(self.url)} was closed while "
                                        f"waiting for room; these records were not logged.")
            self._items.extend(items)
            self._queued += count
            self._urgent += sum(1 for item in items if item.urgent)
            self._cond.notify_all()

    def _wait(self, future: concurrent.futures.Future, timeout: float, count: int) -> None:
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise self._timeout_error(count) from None

    def _timeout_error(self, count: int) -> LogStoreError:
        return LogStoreError(
            f"{count} records were not committed to the prediction log at {_display(self.url)} within "
            f"{self.timeout:g} s (last database error: {self._last_error or 'none'}); they stay queued and may "
            f"still be written. Check the database, or raise timeout."
        )

    def _raise_unreported(self) -> None:
        with self._cond:
            problems, self._unreported = self._unreported, []
        if problems:
            raise LogStoreError(
                f"The prediction log at {_display(self.url)} refused {'; '.join(problems[:3])}"
                f"{'; ...' if len(problems) > 3 else ''}. {_REFUSED_HELP}"
            )

    # ---- the writer's side

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._write(batch)

    def _next_batch(self) -> list[_Item] | None:
        """Wait for items, let a batch fill for up to ``flush_interval`` unless someone waits, take it."""
        with self._cond:
            while not self._items:
                if self._stop:
                    return None
                self._cond.wait()
            deadline = self._items[0].born + self.flush_interval
            while self._queued < self.batch_size and not self._urgent and not self._stop:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch: list[_Item] = []
            taken = 0
            while self._items and (not batch or taken + self._items[0].n <= self.batch_size):
                item = self._items.popleft()
                batch.append(item)
                taken += item.n
                if item.urgent:
                    self._urgent -= 1
            self._queued -= taken
            self._in_flight = taken
            self._cond.notify_all()  # room for callers waiting on a full queue
            return batch

    def _write(self, batch: list[_Item]) -> None:
        ready = []
        for item in batch:
            if item.rows is None:  # a served part: its rows are built here, off the request path
                try:
                    item.rows = _served_rows(item.part, item.now)
                except Exception as exc:  # noqa: BLE001  (a value JSON cannot hold: that part alone fails)
                    self._finish([item], exc)
                    continue
            ready.append(item)
        self._insert(ready)

    @contextlib.contextmanager
    def _write_lock(self) -> Any:
        """SQLite: hold ``<db>.lock`` for the transaction, so writers queue in the kernel instead of polling."""
        if self._lock_file is None:
            yield
            return
        import fcntl

        fcntl.flock(self._lock_file, fcntl.LOCK_EX)  # releases the GIL while it waits
        try:
            yield
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)

    def _insert(self, batch: list[_Item]) -> None:
        rows = [row for item in batch for row in item.rows]
        pause = 0.05
        while True:
            try:
                if rows:
                    with self._write_lock(), self._engine.begin() as conn:
                        conn.execute(_predictions.insert(), rows)
            except Exception as exc:  # noqa: BLE001  (the thread must survive every error, and report it)
                if _transient(exc) and not self._gave_up():
                    self._last_error = _first_line(exc)
                    time.sleep(pause)
                    pause = min(pause * 2, 2.0)
                    continue
                if len(batch) > 1 and not _transient(exc):  # find the call(s) at fault; commit the others
                    for item in batch:
                        self._insert([item])
                    return
                self._finish(batch, exc)
                return
            self._finish(batch, None)
            return

    def _gave_up(self) -> bool:
        """close() stopped waiting for a database that keeps failing: stop retrying, fail what is left."""
        return self._abandoned

    def _finish(self, batch: list[_Item], exc: BaseException | None) -> None:
        count = sum(item.n for item in batch)
        error = None
        if exc is not None:
            self._last_error = reason = _first_line(exc)
            ids = [request_id for item in batch for request_id in item.ids()]
            shown = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
            problem = f"{count} record(s) with request ids {shown}: {reason}"
            fix = ("The database kept failing; check it." if _transient(exc) else _REFUSED_HELP
                   if isinstance(exc, sa_exc.DBAPIError) else "Log numbers, strings or booleans.")
            error = LogStoreError(f"The prediction log at {_display(self.url)} refused {problem}. {fix}")
        report = False
        with self._cond:
            self._in_flight -= count
            if exc is None:
                self._written += count
            else:
                self._failed += count
                report = any(not item.urgent for item in batch if item.n)  # nobody waits: report later
                if report:
                    self._unreported.append(problem)
        if report:
            _log.error("%s", error)
        for item in batch:
            if item.group is not None:
                item.group.settle(item.index, error if item.n else None)
                continue
            if item.future is None or item.future.done():  # done: an async caller gave up waiting
                continue
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                if error is None or not item.n:
                    item.future.set_result(None)
                else:
                    item.future.set_exception(error)


_REFUSED_HELP = ("A request id may be logged once per served_by: give each prediction its own id "
                 "(or leave request_id out for a new one).")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- delayed labels


def attach_labels(
    url: str | os.PathLike[str] | None,
    labels: Mapping[str, Any] | pd.DataFrame | pd.Series,
    *,
    timestamp: Any = None,
) -> LabelResult:
    """Attach true outcomes to logged predictions by request id.

    A request labelled again gets the new label when the new label is at least as recent
    as the one it has (so a late, older correction does not overwrite a newer one).

    Parameters
    ----------
    url : str or path-like or None
        The log (see :func:`resolve_url`); None for ``$MLKIT_LOG_DB`` or the default file.
    labels : mapping, DataFrame or Series
        ``{request_id: label}``; a Series indexed by request id; or a DataFrame with
        columns ``request_id`` and ``label`` (and optionally ``label_timestamp``, one time
        per row).
    timestamp : datetime or str, optional
        When the outcome became known (UTC when naive); default now.

    Returns
    -------
    LabelResult
        How many request ids were labelled, which are unknown, which kept a newer label.

    Raises
    ------
    ParameterError
        For labels that are missing (None or NaN) or in a shape this function does not take.

    Examples
    --------
    >>> import tempfile
    >>> url = f"sqlite:///{tempfile.mkdtemp()}/log.db"
    >>> with PredictionLogger(url) as logger:
    ...     _ = logger.log({"request_id": "a", "model": "m", "features": {"x": 1}, "prediction": 1})
    >>> attach_labels(url, {"a": 0}, timestamp="2024-01-02T00:00:00")
    LabelResult(matched=1, unknown=(), stale=())
    >>> attach_labels(url, {"a": 1}, timestamp="2024-01-01T00:00:00")  # older than the label it has
    LabelResult(matched=0, unknown=(), stale=('a',))
    >>> read_log(url)["label"].tolist()
    [0]
    """
    default_time = dt.datetime.now(dt.timezone.utc) if timestamp is None else _utc(timestamp, "timestamp")
    pairs = _label_rows(labels, default_time)
    if not pairs:
        return LabelResult(0, (), ())
    return _using(url, lambda engine: _attach(engine, pairs), "label predictions in")


def _attach(engine: sa.engine.Engine, pairs: dict[str, tuple[str, dt.datetime]]) -> LabelResult:
    """Find the ids, then update in one transaction; the WHERE clause keeps a newer label under races."""
    table = _predictions
    found: dict[str, dt.datetime | None] = {}
    ids = list(pairs)
    with engine.begin() as conn:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            query = sa.select(table.c.request_id, sa.func.max(table.c.label_timestamp)).where(
                table.c.request_id.in_(chunk)).group_by(table.c.request_id)
            for request_id, stamp in conn.execute(query):
                found[request_id] = None if stamp is None else _utc(stamp, "label_timestamp")
        updates = []
        stale = []
        for request_id, (label, stamp) in pairs.items():
            if request_id not in found:
                continue
            if found[request_id] is not None and found[request_id] > stamp:
                stale.append(request_id)
                continue
            updates.append({"rid": request_id, "new_label": label, "new_ts": stamp})
        if updates:
            statement = table.update().where(
                table.c.request_id == sa.bindparam("rid"),
                sa.or_(table.c.label_timestamp.is_(None), table.c.label_timestamp <= sa.bindparam("new_ts")),
            ).values(label=sa.bindparam("new_label"), label_timestamp=sa.bindparam("new_ts"))
            conn.execute(statement, updates)
    unknown = tuple(request_id for request_id in pairs if request_id not in found)
    return LabelResult(len(updates), unknown, tuple(stale))


def _label_rows(labels: Any, default_time: dt.datetime) -> dict[str, tuple[str, dt.datetime]]:
    """``{request_id: (label JSON, time)}`` from the shapes attach_labels takes."""
    times: Sequence[Any] | None = None
    if isinstance(labels, pd.DataFrame):
        missing = {"request_id", "label"} - set(labels.columns)
        if missing:
            raise ParameterError(f"The labels DataFrame lacks the columns {sorted(missing)}; it needs 'request_id' "
                                 f"and 'label' (and may have 'label_timestamp').")
        ids, values = labels["request_id"].tolist(), labels["label"].tolist()
        if "label_timestamp" in labels.columns:
            times = labels["label_timestamp"].tolist()
    elif isinstance(labels, pd.Series):
        ids, values = labels.index.tolist(), labels.tolist()
    elif isinstance(labels, Mapping):
        ids, values = list(labels.keys()), list(labels.values())
    else:
        raise ParameterError(f"labels must be a dict {{request_id: label}}, a Series indexed by request id or a "
                             f"DataFrame with 'request_id' and 'label' columns, not a {type(labels).__name__}.")
    pairs: dict[str, tuple[str, dt.datetime]] = {}
    for position, (request_id, value) in enumerate(zip(ids, values)):
        request_id = str(request_id)
        if value is None or (isinstance(value, (float, np.floating)) and math.isnan(value)):
            raise ParameterError(f"The label for request id {request_id!r} is missing (None or NaN); drop the "
                                 f"requests whose outcome is not known yet and attach them later.")
        stamp = default_time if times is None or pd.isna(times[position]) else _utc(
            times[position], f"label_timestamp of request id {request_id!r}")
        previous = pairs.get(request_id)
        if previous is None or previous[1] <= stamp:  # the same id twice: the later label wins
            pairs[request_id] = (_to_json(value, f"the label for request id {request_id!r}"), stamp)
    return pairs


# --------------------------------------------------------------------------- reading


def read_log(
    url: str | os.PathLike[str] | None = None,
    *,
    model: str | None = None,
    since: Any = None,
    until: Any = None,
    with_labels: bool | None = None,
) -> pd.DataFrame:
    """Read logged predictions as a DataFrame, one row each, with the features as columns.

    Parameters
    ----------
    url : str or path-like, optional
        The log (see :func:`resolve_url`).
    model : str, optional
        Only this model's predictions.
    since, until : datetime or str, optional
        Only predictions with ``since <= timestamp < until`` (UTC when naive).
    with_labels : bool, optional
        True: only labelled predictions; False: only unlabelled ones; None: all.

    Returns
    -------
    pandas.DataFrame
        :data:`COLUMNS` (``timestamp`` and ``label_timestamp`` as UTC datetimes,
        ``prediction`` and ``label`` decoded from JSON), then one column per feature,
        ordered by time. A feature whose name is also a log column (say ``timestamp``)
        is named ``feature_<name>``; ``frame.attrs["features"]`` maps every feature name
        to its column.

    Examples
    --------
    >>> import tempfile
    >>> url = f"sqlite:///{tempfile.mkdtemp()}/log.db"
    >>> with PredictionLogger(url) as logger:
    ...     _ = logger.log([{"model": "a", "features": {"timestamp": 1, "x": 2}, "prediction": 0,
    ...                      "timestamp": "2024-01-01T10:00:00"},
    ...                     {"model": "b", "features": {"x": 3}, "prediction": 1,
    ...                      "timestamp": "2024-01-01T11:00:00"}])
    >>> frame = read_log(url, model="a")
    >>> frame[["model", "timestamp", "feature_timestamp", "x"]]
      model                 timestamp  feature_timestamp  x
    0     a 2024-01-01 10:00:00+00:00                  1  2
    >>> frame.attrs["features"]
    {'timestamp': 'feature_timestamp', 'x': 'x'}
    >>> len(read_log(url, since="2024-01-01T10:30:00")), len(read_log(url, with_labels=True))
    (1, 0)
    """
    table = _predictions
    query = sa.select(*(table.c[name] for name in COLUMNS), table.c.features)
    if model is not None:
        query = query.where(table.c.model == str(model))
    if since is not None:
        query = query.where(table.c.timestamp >= _utc(since, "since"))
    if until is not None:
        query = query.where(table.c.timestamp < _utc(until, "until"))
    if with_labels is True:
        query = query.where(table.c.label.is_not(None))
    elif with_labels is False:
        query = query.where(table.c.label.is_(None))
    elif with_labels is not None:
        raise ParameterError(f"with_labels must be True, False or None, not {with_labels!r}.")
    query = query.order_by(table.c.timestamp, table.c.id)

    def fetch(engine: sa.engine.Engine) -> list[Any]:
        with engine.connect() as conn:
            return conn.execute(query).all()

    result = _using(url, fetch, "read")
    columns = [*COLUMNS, "features"]
    raw = pd.DataFrame.from_records(result, columns=columns)
    frame = raw[list(COLUMNS)].copy()
    for name in ("timestamp", "label_timestamp"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    for name in ("prediction", "label"):  # decoded values; pandas infers the column's dtype
        values = [json.loads(text) if isinstance(text, str) else None for text in raw[name]]
        frame[name] = pd.Series(values, index=frame.index, dtype=object if not values else None)
    frame["score"] = frame["score"].astype(float)
    features = pd.DataFrame([json.loads(text) for text in raw["features"]], index=frame.index)
    names = {str(name): (f"feature_{name}" if name in COLUMNS else str(name)) for name in features.columns}
    features.columns = [names[str(name)] for name in features.columns]
    out = pd.concat([frame, features], axis=1)
    out.attrs["features"] = names
    return out


def windows(frame: pd.DataFrame, size: int | str | pd.Timedelta, *, on: str = "timestamp") -> pd.Series:
    """Number the monitoring window each row falls in: fixed counts of rows, or fixed spans of time.

    Parameters
    ----------
    frame : pandas.DataFrame
        Rows in time order, as :func:`read_log` returns them.
    size : int, str or Timedelta
        A number of rows (``500``: rows 0–499 are window 0, ...), or a span of time
        (``"1h"``, ``"15min"``, ``"1D"``): windows aligned on whole spans since the epoch,
        numbered from the first row's, so a span without rows leaves a gap in the numbers.
    on : str, default "timestamp"
        The time column for time windows (``"label_timestamp"`` to window by when the
        outcomes arrived).

    Returns
    -------
    pandas.Series
        Integer window ids named ``window``, aligned with ``frame``: use
        ``frame.groupby(windows(frame, "1h"))``.

    Raises
    ------
    ParameterError
        For a size that is neither a positive row count nor a positive span of time, or
        a missing time column.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"timestamp": pd.to_datetime(
    ...     ["2024-01-01 10:05", "2024-01-01 10:50", "2024-01-01 11:10", "2024-01-01 13:00"], utc=True)})
    >>> windows(frame, 2).tolist()
    [0, 0, 1, 1]
    >>> windows(frame, "1h").tolist()
    [0, 0, 1, 3]
    """
    if isinstance(size, (bool, np.bool_)):
        raise ParameterError(f"size must be a number of rows or a span of time like '1h', not {size!r}.")
    if isinstance(size, (int, np.integer)):
        if size < 1:
            raise ParameterError(f"size must be at least 1 row, not {size}.")
        return pd.Series(np.arange(len(frame), dtype=np.int64) // int(size), index=frame.index, name="window")
    try:
        span = pd.Timedelta(size)
    except (TypeError, ValueError):
        raise ParameterError(f"size {size!r} is neither a number of rows nor a span of time; use e.g. 500, "
                             f"'1h', '15min' or '1D'.") from None
    if pd.isna(span) or span <= pd.Timedelta(0):
        raise ParameterError(f"size must be a positive span of time, not {size!r}.")
    if on not in frame.columns:
        raise ParameterError(f"The frame has no {on!r} column to window by time; pass on=<a datetime column>, "
                             f"or a number of rows as size.")
    times = pd.to_datetime(frame[on], utc=True)
    if times.isna().any():
        raise ParameterError(f"{int(times.isna().sum())} rows have no {on!r}; drop them (or window by row count) first.")
    starts = times.dt.floor(span)
    if len(starts) == 0:
        return pd.Series([], index=frame.index, dtype=np.int64, name="window")
    ids = (starts - starts.min()) // span
    return pd.Series(ids.to_numpy(dtype=np.int64), index=frame.index, name="window")
