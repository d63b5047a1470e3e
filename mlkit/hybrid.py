"""Hybrid deployment: an on-premise gateway that keeps personal data in-house, scores in the
cloud, and falls back on-premise (``mlkit gateway``, notebook ``07_deploy_hybrid``).

A hospital (or a bank) may not send patients' names, birth dates or record numbers to a cloud
provider, but it may want the cloud's scale. The gateway sits on the boundary::

    in-house client --records--> [ gateway ]  --features + pseudonyms-->  cloud endpoint
                                 |  mapping  |  <------predictions--------
                                 |  (SQLite) |
                                 | fallback  |  (timeout, connection error, 5xx, open breaker,
                                 |  model    |   or a record the routing policy keeps in-house)

For every record it

1. applies the **personal-data rules** (:class:`PiiRule`): a direct identifier is removed
   (``drop``), a join key is replaced by a keyed HMAC-SHA256 **pseudonym** (``pseudonym``; the
   key is read from a key file and never logged), a quasi-identifier is generalised (a date of
   birth to a ten-year ``age_band``, a postcode to its ``area``);
2. remembers pseudonym -> original value in an on-premise SQLite file, with where each record
   was scored, so an outcome that comes back under a pseudonym can be joined in-house;
3. forwards **only the model's input columns** to the cloud endpoint, in that endpoint's
   contract (Vertex AI, SageMaker, MLflow scoring or Open Inference V2), with the pseudonyms in
   the contract's parameters where it has them;
4. scores on-premise with the fallback model when the cloud times out, refuses the
   connection, answers 5xx (or anything but a well-formed answer), when the **circuit breaker**
   is open (:class:`CircuitBreaker`), or when the routing policy keeps a record in-house.

Examples
--------
>>> rules = parse_pii_columns("name,patient_id=pseudonym,date_of_birth=age_band,postcode=area")
>>> [(r.column, r.action) for r in rules]
[('name', 'drop'), ('patient_id', 'pseudonym'), ('date_of_birth', 'age_band'), ('postcode', 'area')]
>>> p = Pseudonymiser(b"k" * 32, rules, as_of=datetime.date(2025, 1, 1))
>>> kept = p.apply({"patient_id": "PT-1", "name": "Ann", "date_of_birth": "1960-05-01", "postcode": "LS2 7EE", "age": 64})
>>> sorted(kept.record)
['age', 'date_of_birth', 'patient_id', 'postcode']
>>> kept.record["date_of_birth"], kept.record["postcode"], len(kept.record["patient_id"])
('60-69', 'LS', 32)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import logging
import math
import os
import re
import secrets
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

from mlkit.errors import MlkitError, ParameterError

__all__ = [
    "ACTIONS",
    "CONTRACTS",
    "GatewayError",
    "PiiRule",
    "parse_pii_columns",
    "default_rules",
    "new_key",
    "read_key",
    "age_band",
    "postcode_area",
    "Pseudonymiser",
    "CircuitBreaker",
    "MappingStore",
    "CloudContract",
    "GatewayConfig",
    "create_gateway_app",
    "serve_gateway",
    "running_gateway",
]

log = logging.getLogger("mlkit.hybrid")

ACTIONS = ("drop", "pseudonym", "age_band", "area")
"""What a personal-data rule does to its column: remove it, pseudonymise it, or generalise it."""

CONTRACTS = ("vertex", "sagemaker", "mlflow", "v2")
"""Cloud endpoint contracts the gateway speaks (see :class:`CloudContract`)."""

MIN_KEY_BYTES = 16


class GatewayError(MlkitError):
    """The gateway cannot start: a bad key file, fallback model, rule or URL (the message says which)."""


# --------------------------------------------------------------------------- personal-data rules


@dataclass(frozen=True)
class PiiRule:
    """One personal-data column and what the gateway does with it (one of :data:`ACTIONS`)."""

    column: str
    action: str = "drop"

    @property
    def why(self) -> str:
        """A sentence for the boundary table."""
        return {
            "drop": "direct identifier: removed",
            "pseudonym": "join key: keyed HMAC-SHA256 pseudonym",
            "age_band": "quasi-identifier: generalised to a ten-year age band",
            "area": "quasi-identifier: generalised to the postcode area",
        }[self.action]


def parse_pii_columns(text: str | Sequence[str]) -> list[PiiRule]:
    """Rules from ``"C1,C2=pseudonym,C3=age_band,..."`` (a bare name is ``drop``).

    Examples
    --------
    >>> parse_pii_columns("name, patient_id=pseudonym")
    [PiiRule(column='name', action='drop'), PiiRule(column='patient_id', action='pseudonym')]
    >>> parse_pii_columns("name=hash")
    Traceback (most recent call last):
    ...
    mlkit.errors.ParameterError: --pii-columns: 'name=hash' has an unknown action 'hash'; use one of drop, pseudonym, age_band, area (e.g. name,patient_id=pseudonym,date_of_birth=age_band,postcode=area).
    """
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    rules: list[PiiRule] = []
    example = "e.g. name,patient_id=pseudonym,date_of_birth=age_band,postcode=area"
    for item in items:
        if not item:
            continue
        column, _, action = (part.strip() for part in item.partition("="))
        action = action or "drop"
        if not column:
            raise ParameterError(f"--pii-columns: {item!r} has no column name ({example}).")
        if action not in ACTIONS:
            raise ParameterError(f"--pii-columns: {item!r} has an unknown action {action!r}; use one of "
                                 f"{', '.join(ACTIONS)} ({example}).")
        if any(r.column == column for r in rules):
            raise ParameterError(f"--pii-columns names {column!r} twice; give each column one action.")
        rules.append(PiiRule(column, action))
    return rules


def default_rules(use_case: Any, columns: Sequence[str]) -> list[PiiRule]:
    """Sensible rules for a use case's personal-data columns that are present in ``columns``.

    Identifier columns become pseudonyms (they are join keys); a column whose name says it is
    a birth date becomes an age band, a postcode (or ZIP code) becomes its area; any other
    personal-data column is dropped. Non-personal identifiers (a transaction id) are dropped too:
    the model does not use them and the cloud does not need them.
    """
    rules = []
    for col in columns:
        low = col.lower()
        if col in use_case.id_columns:
            rules.append(PiiRule(col, "pseudonym"))
        elif col not in use_case.sensitive_columns:
            continue
        elif "birth" in low or low in ("dob",):
            rules.append(PiiRule(col, "age_band"))
        elif "postcode" in low or "zip" in low or "postal" in low:
            rules.append(PiiRule(col, "area"))
        else:
            rules.append(PiiRule(col, "drop"))
    return rules


def new_key(path: str | os.PathLike) -> Path:
    """Write a fresh random 32-byte key (hex) to ``path``, readable by its owner only.

    The key is what makes pseudonyms unguessable: without it, nobody can recompute a patient
    id's pseudonym from the id. Keep it on-premise, out of version control, and back it up (a
    lost key means new pseudonyms that no longer join with the old ones).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return path


def read_key(path: str | os.PathLike) -> bytes:
    """The HMAC key in a key file (surrounding whitespace ignored), or a :class:`GatewayError` saying what is wrong."""
    path = Path(path)
    how = "create one with `python -c \"from mlkit import hybrid; hybrid.new_key('PATH')\"`"
    if not path.exists():
        raise GatewayError(f"The key file {path} does not exist; {how}.")
    if path.is_dir():
        raise GatewayError(f"The key file {path} is a folder; give the path of the key file itself.")
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise GatewayError(f"The key file {path} cannot be read ({exc.strerror}); check its permissions.") from None
    if len(key) < MIN_KEY_BYTES:
        raise GatewayError(f"The key file {path} holds {len(key)} bytes; a key needs at least {MIN_KEY_BYTES} "
                           f"(random ones); {how}.")
    return key


def _date(value: Any) -> datetime.date | None:
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.date.fromisoformat(value.strip()[:10])
    return None


def age_band(date_of_birth: Any, as_of: datetime.date) -> str | None:
    """A ten-year age band (``"60-69"``; ``"90+"`` at the top) from an ISO date; None if unreadable.

    Examples
    --------
    >>> age_band("1960-05-01", datetime.date(2025, 1, 1)), age_band("1920-01-01", datetime.date(2025, 1, 1))
    ('60-69', '90+')
    """
    born = _date(date_of_birth)
    if born is None:
        return None
    age = as_of.year - born.year - ((as_of.month, as_of.day) < (born.month, born.day))
    if age < 0:
        return None
    if age >= 90:
        return "90+"
    low = age // 10 * 10
    return f"{low}-{low + 9}"


def postcode_area(postcode: Any) -> str | None:
    """The area of a postcode: a UK postcode's leading letters, a ZIP code's first three digits.

    Examples
    --------
    >>> postcode_area("HX25 1LG"), postcode_area("02139"), postcode_area(None)
    ('HX', '021', None)
    """
    if not isinstance(postcode, str) or not postcode.strip():
        return None
    text = postcode.strip().upper()
    letters = re.match(r"[A-Z]+", text)
    if letters:
        return letters.group(0)[:2]
    digits = re.match(r"\d+", text)
    return digits.group(0)[:3] if digits else None


@dataclass
class Pseudonymised:
    """One record after the rules: what is left of it, and its pseudonyms by column."""

    record: dict[str, Any]
    pseudonyms: dict[str, str]


class Pseudonymiser:
    """Applies :class:`PiiRule` s to records with a secret key.

    A pseudonym is ``HMAC-SHA256(key, "<column>:<value>")`` as 32 hex characters: the same
    value always gets the same pseudonym (so records still join), and nobody without the key
    can compute it from the value (a plain hash of a record number can be reversed by hashing
    every possible number).
    """

    def __init__(self, key: bytes, rules: Sequence[PiiRule], *, as_of: datetime.date | None = None) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise GatewayError(f"A key needs at least {MIN_KEY_BYTES} bytes.")
        self._key = key
        self.rules = list(rules)
        self.as_of = as_of or datetime.datetime.now(datetime.timezone.utc).date()

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymiser(rules={[(r.column, r.action) for r in self.rules]}, as_of={self.as_of})"

    def pseudonym(self, column: str, value: Any) -> str:
        """The pseudonym of one value of one column."""
        message = f"{column}:{value}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def apply(self, record: Mapping[str, Any]) -> Pseudonymised:
        """The record with every rule applied (columns a rule names but the record lacks are skipped)."""
        out = dict(record)
        pseudonyms: dict[str, str] = {}
        for rule in self.rules:
            if rule.column not in out:
                continue
            value = out.pop(rule.column)
            if rule.action == "drop" or value is None:
                continue
            if rule.action == "pseudonym":
                pseudonyms[rule.column] = out[rule.column] = self.pseudonym(rule.column, value)
            elif rule.action == "age_band":
                out[rule.column] = age_band(value, self.as_of)
            else:
                out[rule.column] = postcode_area(value)
        return Pseudonymised(out, pseudonyms)


# --------------------------------------------------------------------------- circuit breaker


class CircuitBreaker:
    """Stops calling a failing cloud for a while, then tries it again.

    ``closed`` (normal): every call goes out; ``failures`` consecutive failures open it.
    ``open``: no call goes out (requests are scored on-premise at once) until ``cooldown_s``
    have passed. ``half-open``: one trial call goes out (the others stay on-premise); its
    success closes the breaker, its failure opens it for another cool-down.

    Examples
    --------
    >>> now = [0.0]
    >>> b = CircuitBreaker(failures=2, cooldown_s=5, clock=lambda: now[0])
    >>> b.failure(); b.failure(); b.state
    'open'
    >>> b.allow()
    False
    >>> now[0] = 6.0; b.allow(), b.state, b.allow()
    (True, 'half-open', False)
    >>> b.success(); b.state
    'closed'
    """

    def __init__(self, failures: int = 3, cooldown_s: float = 10.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not isinstance(failures, int) or failures < 1:
            raise ParameterError(f"The breaker needs failures >= 1 (consecutive failures that open it), got {failures!r}.")
        if not (isinstance(cooldown_s, (int, float)) and cooldown_s >= 0 and math.isfinite(cooldown_s)):
            raise ParameterError(f"The breaker needs cooldown_s >= 0 (seconds it stays open), got {cooldown_s!r}.")
        self.failures, self.cooldown_s, self.clock = failures, float(cooldown_s), clock
        self._state, self._consecutive, self._opened_at, self._trial = "closed", 0, 0.0, False
        self.opened = 0  # times it opened, for the health route

    @property
    def state(self) -> str:
        """``closed``, ``open`` or ``half-open``."""
        if self._state == "open" and self.clock() - self._opened_at >= self.cooldown_s:
            return "half-open"
        return self._state

    def allow(self) -> bool:
        """May this request call the cloud? (In half-open, only the one trial may.)"""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial:
            self._state, self._trial = "half-open", True
            return True
        return False

    def success(self) -> None:
        """A call answered well: close (or stay closed) and forget earlier failures."""
        self._state, self._consecutive, self._trial = "closed", 0, False

    def failure(self) -> None:
        """A call failed: count it; open on the threshold, or again at once after a failed trial."""
        self._consecutive += 1
        if self._trial or self._consecutive >= self.failures:
            if self._state != "open" or self._trial:
                self.opened += 1
            self._state, self._opened_at, self._trial = "open", self.clock(), False


# --------------------------------------------------------------------------- the on-premise mapping


class MappingStore:
    """Pseudonym -> original value, and where every record was scored, in an on-premise SQLite file.

    ``pseudonyms(pseudonym, column_name, value, first_seen)`` lets an outcome that comes back
    under a pseudonym be joined to the record in-house; ``decisions(request_id, position,
    pseudonym, served_by, reason, prediction, at)`` is the gateway's own log of what crossed the
    boundary. Writes are serialised by a lock (the gateway calls it from worker threads).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(
                "CREATE TABLE IF NOT EXISTS pseudonyms (pseudonym TEXT PRIMARY KEY, column_name TEXT NOT NULL, "
                "value TEXT NOT NULL, first_seen TEXT NOT NULL);"
                "CREATE TABLE IF NOT EXISTS decisions (request_id TEXT NOT NULL, position INTEGER NOT NULL, "
                "pseudonym TEXT, served_by TEXT NOT NULL, reason TEXT NOT NULL, prediction TEXT, at TEXT NOT NULL);"
            )
        except sqlite3.Error as exc:
            raise GatewayError(f"The mapping database {self.path} cannot be opened ({exc}); give a writable file "
                               "with --mapping-db.") from None
        self._lock = threading.Lock()

    def record(self, request_id: str, pseudonyms: Sequence[tuple[str, str, str]],
               decisions: Sequence[tuple[int, str | None, str, str, Any]]) -> None:
        """Store a request's new pseudonyms ``(pseudonym, column, value)`` and its decisions
        ``(position, pseudonym, served_by, reason, prediction)`` in one transaction."""
        import json

        at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR IGNORE INTO pseudonyms VALUES (?, ?, ?, ?)",
                                     [(p, c, str(v), at) for p, c, v in pseudonyms])
                self._db.executemany("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     [(request_id, i, p, s, r, json.dumps(pred), at) for i, p, s, r, pred in decisions])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def lookup(self, pseudonym: str) -> tuple[str, str] | None:
        """``(column, original value)`` of a pseudonym, or None if the gateway never made it."""
        with self._lock:
            row = self._db.execute("SELECT column_name, value FROM pseudonyms WHERE pseudonym = ?", (pseudonym,)).fetchone()
        return None if row is None else (row[0], row[1])

    def counts(self) -> dict[str, int]:
        """Records scored, by ``served_by`` and reason, e.g. ``{"cloud": 90, "on-premise/timeout": 10}``."""
        with self._lock:
            rows = self._db.execute("SELECT served_by, reason, COUNT(*) FROM decisions GROUP BY 1, 2").fetchall()
        return {(s if r == "cloud" else f"{s}/{r}"): n for s, r, n in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --------------------------------------------------------------------------- cloud contracts


class CloudAnswerError(Exception):
    """The cloud answered, but not with one prediction per row in its contract's shape."""


@dataclass(frozen=True)
class CloudContract:
    """How to ask one kind of cloud endpoint for predictions, and read its answer.

    | contract | default route | request | answer |
    |---|---|---|---|
    | ``vertex`` | ``/vertex/predict`` (``$AIP_PREDICT_ROUTE``) | ``{"instances": [{col: value}], "parameters": {"pseudonyms": [...]}}`` | ``{"predictions": [...]}`` |
    | ``sagemaker`` | ``/invocations`` | ``text/csv``: a header line, one line per row (no pseudonyms: CSV has no slot) | ``{"predictions": [...]}`` |
    | ``mlflow`` | ``/invocations`` | ``{"dataframe_split": {"columns", "data"}, "params": {"pseudonyms": [...]}}`` | ``{"predictions": [...]}`` |
    | ``v2`` | ``/v2/models/<model>/infer`` | ``{"inputs": [{"name", "shape", "datatype", "data"}], "parameters": {"pseudonyms": [...]}}`` | ``{"outputs": [{"data": [...]}]}`` |

    The standard contracts answer labels (or numbers) only, so a prediction scored in the cloud
    has no score.
    """

    name: str
    url: str
    model_name: str = "model"

    @classmethod
    def make(cls, name: str, url: str, model_name: str = "model") -> "CloudContract":
        """Check the contract name and URL; add the contract's default route to a bare ``http://host:port``."""
        if name not in CONTRACTS:
            raise GatewayError(f"Unknown cloud contract {name!r}; use one of {', '.join(CONTRACTS)}.")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise GatewayError(f"--cloud-url must be an http(s) URL such as http://127.0.0.1:8080, got {url!r}.")
        if parts.path in ("", "/"):
            route = {"vertex": "/vertex/predict", "sagemaker": "/invocations", "mlflow": "/invocations",
                     "v2": f"/v2/models/{model_name}/infer"}[name]
            url = url.rstrip("/") + route
        return cls(name, url, model_name)

    def request(self, columns: list[str], rows: list[list[Any]], types: Mapping[str, str],
                pseudonyms: list[str | None]) -> tuple[dict[str, str], bytes]:
        """Headers and body for ``rows`` (lists of values in ``columns`` order)."""
        import json

        params = {"pseudonyms": pseudonyms} if any(p is not None for p in pseudonyms) else None
        if self.name == "sagemaker":
            import csv
            import io

            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([["" if v is None else v for v in row] for row in rows])
            return {"content-type": "text/csv"}, buf.getvalue().encode()
        if self.name == "vertex":
            body: dict[str, Any] = {"instances": [dict(zip(columns, row)) for row in rows]}
            if params:
                body["parameters"] = params
        elif self.name == "mlflow":
            body = {"dataframe_split": {"columns": columns, "data": rows}}
            if params:
                body["params"] = params
        else:
            datatypes = {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "string": "BYTES",
                         "boolean": "BOOL"}
            body = {"inputs": [{"name": c, "shape": [len(rows)], "datatype": datatypes.get(types.get(c, ""), "BYTES"),
                                "data": [row[i] for row in rows]} for i, c in enumerate(columns)]}
            if params:
                body["parameters"] = params
        return {"content-type": "application/json"}, json.dumps(body, allow_nan=False).encode()

    def predictions(self, answer: Any, n: int) -> list:
        """The ``n`` predictions in an answer, or :class:`CloudAnswerError`."""
        if self.name == "v2":
            outputs = answer.get("outputs") if isinstance(answer, dict) else None
            values = outputs[0].get("data") if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict) else None
        else:
            values = answer.get("predictions") if isinstance(answer, dict) else None
        if not isinstance(values, list) or len(values) != n:
            raise CloudAnswerError(f"expected {n} predictions in the {self.name} answer")
        return values


# --------------------------------------------------------------------------- the gateway


@dataclass
class GatewayConfig:
    """Everything ``mlkit gateway`` takes (see :func:`create_gateway_app`)."""

    cloud_url: str
    cloud_contract: str
    fallback_model: str
    pii_columns: list[PiiRule]
    key_file: str
    timeout_ms: float = 300.0
    breaker_failures: int = 3
    breaker_cooldown_s: float = 10.0
    on_premise_when: dict[str, set[str]] = field(default_factory=dict)
    mapping_db: str = ".mlkit/gateway.db"
    as_of: datetime.date | None = None
    runtime: str = "sklearn"
    max_records: int = 10_000

    def check(self) -> None:
        """Raise :class:`GatewayError` for a value no gateway can run with."""
        if not (isinstance(self.timeout_ms, (int, float)) and 0 < self.timeout_ms <= 600_000):
            raise GatewayError(f"--timeout-ms must be a number of milliseconds in (0, 600000], got {self.timeout_ms!r}.")
        if not isinstance(self.max_records, int) or self.max_records < 1:
            raise GatewayError(f"max_records must be at least 1, got {self.max_records!r}.")


def parse_on_premise_when(items: Sequence[str] | None) -> dict[str, set[str]]:
    """``["diagnosis_group=oncology|mental_health", "sensitive=true"]`` -> ``{column: {values}}`` (lower-case).

    Examples
    --------
    >>> rules = parse_on_premise_when(["sensitive=true", "ward=ICU|HDU"])
    >>> {column: sorted(values) for column, values in rules.items()}
    {'sensitive': ['true'], 'ward': ['hdu', 'icu']}
    """
    rules: dict[str, set[str]] = {}
    for item in items or ():
        column, sep, values = (part.strip() for part in item.partition("="))
        if not sep or not column or not values:
            raise GatewayError(f"--on-premise-when takes COLUMN=VALUE[|VALUE...], e.g. sensitive=true; got {item!r}.")
        rules.setdefault(column, set()).update(v.strip().lower() for v in values.split("|") if v.strip())
    return rules


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip().lower()


class _Gateway:
    """The state behind the routes: model, rules, breaker, mapping, HTTP client."""

    def __init__(self, config: GatewayConfig, served: Any) -> None:
        config.check()
        self.config, self.served = config, served
        self.pseudonymiser = Pseudonymiser(read_key(config.key_file), config.pii_columns, as_of=config.as_of)
        personal = {r.column for r in config.pii_columns}
        needed = [c for c in served.schema.names if c in personal]
        if needed:
            raise GatewayError(
                f"The fallback model takes {', '.join(map(repr, needed))}, which --pii-columns marks as personal data, "
                "so the cloud would need it. Train the model without personal-data columns (mlkit.training does), "
                "or leave the column out of --pii-columns if it is not personal."
            )
        self.features = served.schema.names
        self.types = {c.name: c.type for c in served.schema.columns}
        self.join_key = next((r.column for r in config.pii_columns if r.action == "pseudonym"), None)
        self.contract = CloudContract.make(config.cloud_contract, config.cloud_url, served.name)
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_cooldown_s)
        self.mapping = MappingStore(config.mapping_db)
        self.timeout_s = config.timeout_ms / 1000.0
        self.client: Any = None
        self.counts: dict[str, int] = {}

    def route_on_premise(self, record: Mapping[str, Any]) -> bool:
        return any(col in record and _plain(record[col]) in values for col, values in self.config.on_premise_when.items())

    async def call_cloud(self, rows: list[list[Any]], pseudonyms: list[str | None]) -> tuple[list | None, str]:
        """Predictions from the cloud, or ``(None, why it failed)``; the breaker hears the outcome."""
        import httpx

        if not self.breaker.allow():
            return None, "breaker-open"
        headers, body = self.contract.request(self.features, rows, self.types, pseudonyms)
        try:
            response = await asyncio.wait_for(self.client.post(self.contract.url, content=body, headers=headers),
                                              self.timeout_s)
            if response.status_code >= 500:
                reason = "cloud-5xx"
            elif response.status_code >= 400:
                reason = "cloud-4xx"  # the gateway checked the rows: a 4xx means the contract or model differs
                log.warning("the cloud refused a request with %s", response.status_code)
            else:
                predictions = self.contract.predictions(response.json(), len(rows))
                self.breaker.success()
                return predictions, "cloud"
        except (asyncio.TimeoutError, httpx.TimeoutException):
            reason = "timeout"
        except httpx.TransportError:
            reason = "connection-error"
        except (CloudAnswerError, ValueError):
            reason = "bad-answer"
        self.breaker.failure()
        return None, reason


def _records(payload: Any, limit: int) -> list[dict]:
    from mlkit.serving.schema import InputError

    records = payload.get("records") if isinstance(payload, dict) else None
    if not isinstance(records, list) or not records:
        raise InputError('The request must be a JSON object {"records": [{...}, ...]} with at least one record.')
    if len(records) > limit:
        raise InputError(f"{len(records)} records in one request; send at most {limit} (split the batch).")
    bad = [i for i, r in enumerate(records) if not isinstance(r, dict)]
    if bad:
        raise InputError(f"Each record must be a JSON object of column names and values; record(s) {bad[:5]} are not.")
    return records


def create_gateway_app(config: GatewayConfig, served: Any = None):
    """The gateway's FastAPI app (``POST /predict``, ``GET /ping``, ``GET /health``, ``/docs``).

    ``served`` is the loaded fallback model (:func:`mlkit.serving.load_model`); by default it is
    loaded from ``config.fallback_model``, and a model that cannot be loaded is a
    :class:`GatewayError` here, before the gateway listens.

    ``POST /predict`` takes ``{"records": [{...}, ...]}`` (whole records, personal data included)
    and answers ``{"predictions": [{"id", "prediction", "score", "served_by"}, ...]}`` in the
    same order. ``id`` is the record's join key (the first ``pseudonym`` column) as sent, or its
    position when it has none. A record the fallback model cannot take is a 400 that names the
    column, before anything leaves the building. ``score`` is the fallback model's probability
    (positive class, or top class) for a record scored on-premise and null for one scored in the
    cloud (the standard contracts carry labels only) and for regression.
    """
    import json
    import uuid

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, PlainTextResponse

    from mlkit import __version__
    from mlkit.serving.app import LIMITS
    from mlkit.serving.schema import InputError

    if served is None:
        from mlkit import serving

        try:
            served = serving.load_model(config.fallback_model, runtime=config.runtime)
        except MlkitError as exc:
            raise GatewayError(f"The fallback model {config.fallback_model} cannot be loaded: {exc}") from None
        except Exception as exc:  # noqa: BLE001 (a broken file raises many types)
            raise GatewayError(f"The fallback model {config.fallback_model} cannot be loaded "
                               f"({type(exc).__name__}); check the path or models:/ URI.") from None
    gw = _Gateway(config, served)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        import httpx

        limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(gw.timeout_s)) as client:
            gw.client = client
            yield
        gw.mapping.close()

    app = FastAPI(
        title="mlkit gateway",
        version=__version__,
        description=(f"On-premise gateway: personal data stays here; {len(gw.features)} model columns go to the "
                     f"{gw.contract.name} endpoint; fallback model {served.name!r} answers when the cloud cannot."),
        lifespan=lifespan,
    )
    app.state.gateway = gw

    def error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def predict(request: Request) -> JSONResponse:
        raw = await request.body()
        if len(raw) > LIMITS["invocations"]:
            return error(f"The request is larger than {LIMITS['invocations'] // 2**20} MB; send fewer records.", 413)
        try:
            payload = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return error("The body is not valid JSON; send {\"records\": [{...}, ...]}.")
        try:
            records = _records(payload, config.max_records)
            batch = served.schema.from_records([{c: r.get(c) for c in gw.features if c in r} for r in records])
        except InputError as exc:
            return error(str(exc), exc.status)
        # Personal data is handled here, in memory: only features and pseudonyms are sent on.
        kept = [gw.pseudonymiser.apply(r) for r in records]
        pseudo = [k.pseudonyms.get(gw.join_key) if gw.join_key else None for k in kept]
        n = len(records)
        served_by, reasons, predictions, scores = ["on-premise"] * n, ["routing-policy"] * n, [None] * n, [None] * n
        to_cloud = [i for i, r in enumerate(records) if not gw.route_on_premise(r)]
        if to_cloud:
            rows = [[batch.columns[c][i].item() if hasattr(batch.columns[c][i], "item") else batch.columns[c][i]
                     for c in gw.features] for i in to_cloud]
            rows = [[None if isinstance(v, float) and math.isnan(v) else v for v in row] for row in rows]
            answer, why = await gw.call_cloud(rows, [pseudo[i] for i in to_cloud])
            for j, i in enumerate(to_cloud):
                if answer is None:
                    reasons[i] = why
                else:
                    served_by[i], reasons[i], predictions[i] = "cloud", "cloud", answer[j]
        local = [i for i in range(n) if served_by[i] == "on-premise"]
        if local:
            from mlkit.serving.schema import Batch

            part = Batch({c: v[local] for c, v in batch.columns.items()}, len(local))
            try:
                labels, probs = await asyncio.to_thread(served.predict_with_scores, part)
            except Exception:  # noqa: BLE001
                log.exception("the fallback model failed")
                return error("The on-premise model could not score these records; the gateway's log has the details.", 500)
            for j, i in enumerate(local):
                predictions[i] = labels[j].item() if hasattr(labels[j], "item") else labels[j]
                scores[i] = None if probs is None else round(float(probs[j]), 6)
        request_id = uuid.uuid4().hex
        new = [(k.pseudonyms[c], c, r[c]) for k, r in zip(kept, records) for c in k.pseudonyms]
        decisions = [(i, pseudo[i], served_by[i], reasons[i], predictions[i]) for i in range(n)]
        try:
            await asyncio.to_thread(gw.mapping.record, request_id, new, decisions)
        except Exception:  # noqa: BLE001
            log.exception("the mapping database could not record a request")
            return error("The gateway could not record this request's pseudonyms, so it was not answered; "
                         "try again shortly.", 503)
        for key in (f"{s}" if s == "cloud" else f"{s}/{r}" for s, r in zip(served_by, reasons)):
            gw.counts[key] = gw.counts.get(key, 0) + 1
        ids = [r.get(gw.join_key, i) if gw.join_key else i for i, r in enumerate(records)]
        body = {"predictions": [{"id": ids[i], "prediction": predictions[i], "score": scores[i], "served_by": served_by[i]}
                                for i in range(n)]}
        return JSONResponse(body, headers={"X-Request-ID": request_id})

    predict.__annotations__["request"] = Request  # FastAPI reads it; a local import is invisible to the string annotation
    app.add_api_route("/predict", predict, methods=["POST"], tags=["gateway"],
                      summary='Score whole records: {"records": [...]} -> {"predictions": [{id, prediction, score, served_by}]}')
    app.add_api_route("/ping", lambda: PlainTextResponse("ok"), methods=["GET"], tags=["operations"], summary="Liveness")

    def health() -> dict:
        return {"breaker": gw.breaker.state, "breaker_opened": gw.breaker.opened, "served": dict(sorted(gw.counts.items())),
                "cloud_contract": gw.contract.name, "features_sent": gw.features,
                "personal_data_rules": {r.column: r.action for r in config.pii_columns}}

    app.add_api_route("/health", health, methods=["GET"], tags=["operations"],
                      summary="Breaker state, records served by path, what crosses the boundary")
    return app


def serve_gateway(config: GatewayConfig, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Check everything, then serve the gateway with uvicorn until interrupted (``mlkit gateway``)."""
    import uvicorn

    from mlkit.serving import _stop_with_parent, protocol

    app = create_gateway_app(config)  # raises GatewayError before listening
    _stop_with_parent()
    uvicorn.run(app, host=host, port=port, http=protocol.best(), log_level="warning", access_log=False)


@contextlib.contextmanager
def running_gateway(*, cloud_url: str, cloud_contract: str, fallback_model: str | os.PathLike,
                    pii_columns: str | Sequence[PiiRule], key_file: str | os.PathLike, timeout_ms: float = 300,
                    breaker_failures: int = 3, breaker_cooldown_s: float = 10.0,
                    on_premise_when: Sequence[str] = (), mapping_db: str | os.PathLike = ".mlkit/gateway.db",
                    as_of: str | None = None, port: int = 0, timeout: float = 90.0) -> Iterator[str]:
    """Run ``mlkit gateway`` on 127.0.0.1 in a subprocess for a ``with`` block; yields its base URL.

    Like :func:`mlkit.serving.running`: the process is stopped when the block ends, however it ends.
    """
    from mlkit.serving.lifecycle import running_command

    if not isinstance(pii_columns, str):
        pii_columns = ",".join(f"{r.column}={r.action}" for r in pii_columns)
    cmd = [sys.executable, "-m", "mlkit.cli", "gateway", "--cloud-url", cloud_url, "--cloud-contract", cloud_contract,
           "--fallback-model", str(fallback_model), "--pii-columns", pii_columns, "--key-file", str(key_file),
           "--timeout-ms", str(timeout_ms), "--breaker-failures", str(breaker_failures),
           "--breaker-cooldown-s", str(breaker_cooldown_s), "--mapping-db", str(mapping_db)]
    for item in on_premise_when:
        cmd += ["--on-premise-when", item]
    if as_of:
        cmd += ["--as-of", as_of]
    with running_command(cmd, port=port, timeout=timeout) as url:
        yield url


def add_arguments(p: Any) -> None:
    """``mlkit gateway``'s options."""
    p.add_argument("--cloud-url", required=True, metavar="URL",
                   help="the cloud endpoint: its full predict URL, or http://HOST:PORT for the contract's default route")
    p.add_argument("--cloud-contract", required=True, choices=CONTRACTS, help="the endpoint's contract")
    p.add_argument("--fallback-model", required=True, metavar="MODEL",
                   help="the on-premise model: models:/NAME@ALIAS, models:/NAME/VERSION or a packaged model folder")
    p.add_argument("--pii-columns", default="", metavar="C1,C2=pseudonym,...",
                   help="personal-data columns and what to do with each: drop (default), pseudonym, age_band, area")
    p.add_argument("--key-file", required=True, metavar="PATH", help="the HMAC key for pseudonyms (never logged)")
    p.add_argument("--timeout-ms", type=float, default=300.0, help="cloud time budget per request (default: 300)")
    p.add_argument("--breaker-failures", type=int, default=3, metavar="N",
                   help="consecutive cloud failures that open the circuit breaker (default: 3)")
    p.add_argument("--breaker-cooldown-s", type=float, default=10.0, metavar="S",
                   help="seconds the breaker stays open before a trial call (default: 10)")
    p.add_argument("--on-premise-when", action="append", metavar="COLUMN=V1|V2",
                   help="score records with one of these values on-premise, never in the cloud (repeat)")
    p.add_argument("--mapping-db", default=".mlkit/gateway.db", metavar="PATH",
                   help="the on-premise SQLite file for pseudonyms and routing decisions (default: .mlkit/gateway.db)")
    p.add_argument("--as-of", metavar="YYYY-MM-DD", help="the date age bands are computed at (default: today)")
    p.add_argument("--runtime", choices=["sklearn", "onnx"], default="sklearn", help="the fallback model's runtime")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")


def run_from_args(args: Any) -> int:
    """``mlkit gateway``: build the configuration, check it, serve."""
    try:
        rules = parse_pii_columns(args.pii_columns)
    except ParameterError as exc:
        raise GatewayError(str(exc)) from None
    as_of = None
    if args.as_of:
        as_of = _date(args.as_of)
        if as_of is None:
            raise GatewayError(f"--as-of must be a date like 2025-01-31, got {args.as_of!r}.")
    if args.breaker_failures < 1 or not (args.breaker_cooldown_s >= 0):
        raise GatewayError("--breaker-failures must be at least 1 and --breaker-cooldown-s at least 0.")
    config = GatewayConfig(args.cloud_url, args.cloud_contract, args.fallback_model, rules, args.key_file,
                           timeout_ms=args.timeout_ms, breaker_failures=args.breaker_failures,
                           breaker_cooldown_s=args.breaker_cooldown_s,
                           on_premise_when=parse_on_premise_when(args.on_premise_when), mapping_db=args.mapping_db,
                           as_of=as_of, runtime=args.runtime)
    print(f"mlkit gateway: on http://{args.host}:{args.port}, cloud {args.cloud_contract} at {args.cloud_url}, "
          f"fallback {args.fallback_model}; /docs lists the routes", file=sys.stderr)
    serve_gateway(config, host=args.host, port=args.port)
    return 0
