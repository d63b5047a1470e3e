"""Conformance: ``mlkit serve`` answers like MLflow's scoring server on the MLflow contract.

Both servers serve the same packaged model (finance-fraud, built once for the module):

* MLflow's own scoring server, ``mlflow models serve -m <folder> --env-manager local``, as a
  subprocess on a free loopback port (its own process group, killed on teardown);
* ours, ``mlkit.serving.running(folder, port=0)``.

Every request in :data:`CASES` goes to both. For each case:

* MLflow's status (and ``error_code``) must still be the one recorded in the case: that pins the
  reference (tests/serving_reference.md) so an MLflow upgrade that changes it is noticed;
* same status code from ours (except where MLflow answers 500 to bad input: ours must answer 4xx);
* 2xx: identical JSON bodies (compared canonically, so ``0`` and ``0.0`` differ) and content type;
  /ping and /version: identical raw text and content type;
* 4xx JSON errors: both bodies carry ``error_code`` and ``message``, the same ``error_code``; ours
  has no traceback (``stack_trace``) and its message echoes none of the request's values (MLflow's
  often does: see the reference). Where MLflow's 4xx body is not an MLflow error (415 in
  text/plain, FastAPI's ``{"detail": ...}`` for routing), ours must be JSON: either the same
  ``detail`` body or an ``error_code``/``message`` body, again without echo.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

# mlkit.serving is written alongside this test: until it is importable the module is skipped
# (and under CI=true tests/conftest.py turns that skip into a failure, so it cannot hide).
serving = pytest.importorskip("mlkit.serving")
running = serving.running

MLFLOW_START_TIMEOUT = 120.0  # `mlflow models serve` takes ~20 s to answer /ping on this machine
REQUEST_TIMEOUT = 60.0

# --------------------------------------------------------------------------- request catalogue

COLUMNS = ["amount", "hour", "distance_from_home_km", "account_age_days", "merchant_category", "channel"]
# amount, hour, account_age_days: double (required); distance_from_home_km: double (optional);
# merchant_category, channel: string (required) -- see the package's MLmodel signature.
ROW = [19.58, 13.0, 6.4, 3923.0, "entertainment", "contactless"]
FRAUDY = [2324.53, 21.0, 855.8, 3263.0, "travel", "chip"]
ROW3 = [445.82, 22.0, 283.9, 416.0, "travel", "online"]
ROWS = [ROW, FRAUDY, ROW3]

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"


@dataclass(frozen=True)
class Case:
    id: str
    body: bytes = b""
    content_type: str | None = JSON  # None: no Content-Type header at all
    method: str = "POST"
    path: str = "/invocations"
    status: int = 200  # MLflow's status (the reference)
    error_code: str | None = None  # MLflow's error_code, for its JSON errors
    mlflow_500: str = ""  # why MLflow's 500 is a bug: ours must answer 4xx instead
    deviation: str = ""  # why ours deliberately refuses (4xx) what MLflow scores
    echo_values: tuple[str, ...] = ()  # more request values ours must not echo (matched as substrings)


def _j(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _split(rows: list, columns: list = COLUMNS, **extra: Any) -> dict:
    return {"dataframe_split": {"columns": columns, "data": rows, **extra}}


def _records(rows: list, columns: list = COLUMNS) -> list[dict]:
    return [dict(zip(columns, r)) for r in rows]


def _cols(rows: list, columns: list = COLUMNS) -> dict:
    return {c: [r[i] for r in rows] for i, c in enumerate(columns)}


def _sub(row: list, i: int, value: Any) -> list:
    out = list(row)
    out[i] = value
    return out


def _without(seq: list, i: int) -> list:
    return [v for j, v in enumerate(seq) if j != i]


def _drop(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


def _csv(rows: list, columns: list | None = COLUMNS) -> bytes:
    lines = [",".join(columns)] if columns is not None else []
    lines += [",".join("" if v is None else str(v) for v in r) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def _parquet(columns: dict) -> bytes:
    import pandas as pd

    buf = io.BytesIO()
    pd.DataFrame(columns).to_parquet(buf, index=False)
    return buf.getvalue()


def _ints(row: list) -> list:
    return [int(v) if isinstance(v, float) else v for v in row]


REV = list(reversed(COLUMNS))
SPLIT_ONE = _j(_split([ROW]))
BAD = "zz_not_a_number"
AMOUNT, HOUR, DISTANCE, AGE, CATEGORY, CHANNEL = range(6)

CASES: list[Case] = [
    # --- dataframe_split -------------------------------------------------------------------
    Case("split", _j(_split(ROWS))),
    Case("split_with_index", _j(_split(ROWS, index=[285, 1375, 2651]))),
    Case("split_string_index", _j(_split(ROWS[:2], index=["zz_a", "zz_b"]))),
    Case("split_columns_reordered", _j(_split([list(reversed(r)) for r in ROWS], REV))),
    Case("split_extra_column", _j(_split([r + ["zz_extra_value"] for r in ROWS], COLUMNS + ["zz_extra_col"]))),
    Case("split_ints_for_doubles", _j(_split([_ints(r) for r in ROWS]))),
    Case("split_numeric_string_for_double", _j(_split([_sub(ROW, AMOUNT, "2324.53")]))),
    Case("split_bool_for_double", _j(_split([_sub(ROW, HOUR, True)]))),
    Case("split_number_for_string", _j(_split([_sub(ROW, CHANNEL, 12345)]))),
    Case("split_null_required_double", _j(_split([_sub(ROW, AMOUNT, None)]))),
    Case("split_null_optional_double", _j(_split([_sub(ROW, DISTANCE, None)]))),
    Case("split_null_string", _j(_split([_sub(ROW, CATEGORY, None)]))),
    Case("split_nan_token", SPLIT_ONE.replace(b"13.0", b"NaN"),
         deviation="NaN is not JSON; the serving contract refuses NaN/inf with a 4xx (send null for a missing value)"),
    Case("split_infinity_token", SPLIT_ONE.replace(b"13.0", b"Infinity"), status=400, error_code="BAD_REQUEST"),
    Case("split_minus_infinity_token", SPLIT_ONE.replace(b"13.0", b"-Infinity"), status=400, error_code="BAD_REQUEST"),
    Case("split_overflowing_number", SPLIT_ONE.replace(b"13.0", b"1e400"), status=400, error_code="BAD_REQUEST"),
    Case("split_bool_in_string", _j(_split([_sub(ROW, CATEGORY, True)]))),
    Case("split_list_in_string", _j(_split([_sub(ROW, CATEGORY, ["zz_item"])])), status=400, error_code="BAD_REQUEST"),
    Case("split_integer_too_big_for_double", SPLIT_ONE.replace(b"19.58", b"9" * 400), status=400, error_code="BAD_REQUEST", echo_values=("9" * 400,)),
    Case("split_lone_surrogate", SPLIT_ONE.replace(b'"contactless"', b'"zz_\\ud800"'), status=400, error_code="BAD_REQUEST"),
    Case("split_unseen_category", _j(_split([_sub(ROW, CATEGORY, "zz_unseen_category")]))),
    Case("split_string_in_double", _j(_split([_sub(ROW, HOUR, BAD)])), status=400, error_code="BAD_REQUEST"),
    Case("split_string_in_double_second_row", _j(_split([ROW, _sub(FRAUDY, AMOUNT, BAD)])), status=400, error_code="BAD_REQUEST"),
    Case("split_list_in_double", _j(_split([_sub(ROW, HOUR, [1, 2])])), status=400, error_code="BAD_REQUEST"),
    Case("split_object_in_double", _j(_split([_sub(ROW, HOUR, {"zz_key": 1})])), status=400, error_code="BAD_REQUEST"),
    Case("split_no_columns", _j({"dataframe_split": {"data": ROWS}}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("split_missing_required_column", _j(_split([ROW[1:]], COLUMNS[1:])), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("split_only_one_column", _j(_split([[ROW[0]]], COLUMNS[:1])), status=400, error_code="INVALID_PARAMETER_VALUE"),
    # the optional column passes the signature, then the model's ColumnTransformer fails
    Case("split_missing_optional_column", _j(_split([_without(r, DISTANCE) for r in ROWS], _without(COLUMNS, DISTANCE))), status=400, error_code="BAD_REQUEST"),
    Case("split_duplicate_column", _j(_split([ROW + [ROW[0]]], COLUMNS + [COLUMNS[0]])), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("split_row_too_short", _j(_split([ROW[:-1]])), status=400, error_code="BAD_REQUEST"),
    Case("split_row_too_long", _j(_split([ROW + ["zz_surplus"]])), status=400, error_code="BAD_REQUEST"),
    Case("split_flat_row", _j({"dataframe_split": {"columns": COLUMNS, "data": ROW}}), status=400, error_code="BAD_REQUEST"),
    Case("split_data_not_a_list", _j({"dataframe_split": {"columns": COLUMNS, "data": "zz_canary"}}), status=400, error_code="BAD_REQUEST"),
    Case("split_index_length_mismatch", _j(_split(ROWS, index=[1])), status=400, error_code="BAD_REQUEST"),
    Case("split_unknown_field", _j({"dataframe_split": {"columns": COLUMNS, "data": [ROW], "zz_field": 1}}), status=400, error_code="BAD_REQUEST"),
    Case("split_no_data", _j({"dataframe_split": {"columns": COLUMNS}}), status=400, error_code="BAD_REQUEST"),
    Case("split_empty_data", _j(_split([])), status=400, error_code="BAD_REQUEST"),
    Case("split_is_a_list", _j({"dataframe_split": [ROW]}), status=400, error_code="BAD_REQUEST"),
    Case("split_is_null", _j({"dataframe_split": None}), status=400, error_code="BAD_REQUEST"),
    Case("split_is_columns_dict", _j({"dataframe_split": _cols([ROW])}), status=400, error_code="BAD_REQUEST"),
    # --- dataframe_records -----------------------------------------------------------------
    Case("records", _j({"dataframe_records": _records(ROWS)})),
    Case("records_keys_reordered", _j({"dataframe_records": [dict(reversed(list(d.items()))) for d in _records(ROWS)]})),
    Case("records_extra_key", _j({"dataframe_records": [dict(d, zz_extra_col="zz_extra_value") for d in _records(ROWS)]})),
    Case("records_ints_for_doubles", _j({"dataframe_records": _records([_ints(r) for r in ROWS])})),
    Case("records_null_double", _j({"dataframe_records": _records([_sub(ROW, HOUR, None)])})),
    Case("records_key_missing_in_one_row", _j({"dataframe_records": [_records([ROW])[0], _drop(_records([FRAUDY])[0], "hour")]})),
    Case("records_missing_required_column", _j({"dataframe_records": [_drop(d, "amount") for d in _records(ROWS)]}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("records_string_in_double", _j({"dataframe_records": _records([_sub(ROW, HOUR, BAD)])}), status=400, error_code="BAD_REQUEST"),
    Case("records_empty_list", _j({"dataframe_records": []}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("records_empty_record", _j({"dataframe_records": [{}]}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("records_list_of_lists", _j({"dataframe_records": ROWS}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("records_is_a_dict", _j({"dataframe_records": _records([ROW])[0]}), status=400, error_code="BAD_REQUEST"),
    Case("records_is_a_number", _j({"dataframe_records": 5}), status=400, error_code="BAD_REQUEST"),
    # --- instances -------------------------------------------------------------------------
    Case("instances_records", _j({"instances": _records(ROWS)})),
    Case("instances_columns", _j({"instances": _cols(ROWS)})),
    Case("instances_null_double", _j({"instances": _records([_sub(ROW, HOUR, None)])})),
    # MLflow casts null to the string 'None' here (np.array([None], str)), unlike dataframe_*
    Case("instances_null_string", _j({"instances": _records([_sub(ROW, CATEGORY, None)])})),
    Case("instances_lists", _j({"instances": ROWS}), status=400, error_code="BAD_REQUEST"),
    Case("instances_string_in_double", _j({"instances": _records([_sub(ROW, HOUR, BAD)])}), status=400, error_code="BAD_REQUEST"),
    Case("instances_key_missing_in_one_row", _j({"instances": [_records([ROW])[0], _drop(_records([FRAUDY])[0], "hour")]}), status=400, error_code="BAD_REQUEST"),
    Case("instances_missing_required_column", _j({"instances": [_drop(d, "amount") for d in _records(ROWS)]}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("instances_empty_list", _j({"instances": []}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    # --- inputs ----------------------------------------------------------------------------
    Case("inputs_columns", _j({"inputs": _cols(ROWS)})),
    Case("inputs_scalars", _j({"inputs": dict(zip(COLUMNS, FRAUDY))})),
    Case("inputs_records", _j({"inputs": _records(ROWS)})),
    Case("inputs_extra_column", _j({"inputs": dict(_cols(ROWS), zz_extra_col=["zz_a", "zz_b", "zz_c"])})),
    Case("inputs_ints_for_doubles", _j({"inputs": _cols([_ints(r) for r in ROWS])})),
    Case("inputs_null_double", _j({"inputs": _cols([_sub(ROW, HOUR, None)])})),
    Case("inputs_null_string", _j({"inputs": _cols([_sub(ROW, CATEGORY, None)])})),
    Case("inputs_lists", _j({"inputs": ROWS}), status=400, error_code="BAD_REQUEST"),
    Case("inputs_string_in_double", _j({"inputs": _cols([_sub(ROW, HOUR, BAD)])}), status=400, error_code="BAD_REQUEST"),
    Case("inputs_ragged_columns", _j({"inputs": dict(_cols(ROWS), amount=[ROW[0]])}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("inputs_missing_required_column", _j({"inputs": _drop(_cols(ROWS), "amount")}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("inputs_empty_list", _j({"inputs": []}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("inputs_empty_object", _j({"inputs": {}}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("inputs_number", _j({"inputs": 5}), status=400, error_code="INVALID_PARAMETER_VALUE"),
    # --- params (the model has no params schema: MLflow ignores any params, even non-dicts) --
    Case("params_valid", _j(dict(_split([ROW]), params={"zz_param": 1}))),
    Case("params_empty", _j(dict(_split([ROW]), params={}))),
    Case("params_null", _j(dict(_split([ROW]), params=None))),
    Case("params_string", _j(dict(_split([ROW]), params="zz_canary"))),
    Case("params_list", _j(dict(_split([ROW]), params=[1, 2]))),
    Case("params_alone", _j({"params": {"zz_param": 1}}), status=400, error_code="BAD_REQUEST"),
    # --- the top-level object --------------------------------------------------------------
    Case("unknown_top_level_key_ignored", _j(dict(_split([ROW]), zz_extra="zz_canary"))),
    Case("signature_name_ignored", _j({"instances": _records([ROW]), "signature_name": "zz_sig"})),
    Case("two_keys", _j({**_split([ROW]), "dataframe_records": _records([ROW])}), status=400, error_code="BAD_REQUEST"),
    Case("instances_and_inputs", _j({"instances": _records([ROW]), "inputs": _records([ROW])}), status=400, error_code="BAD_REQUEST"),
    Case("no_known_key", _j({"zz_data": _records([ROW])}), status=400, error_code="BAD_REQUEST"),
    Case("mlflow1_columns_data", _j({"columns": COLUMNS, "data": [ROW]}), status=400, error_code="BAD_REQUEST"),
    Case("empty_object", b"{}", status=400, error_code="BAD_REQUEST"),
    # a top-level "input", "prompt" or "messages" key switches MLflow to its "unified LLM" path:
    # the whole object is the data (no schema casting) and the answer is NOT wrapped in
    # {"predictions": ...}
    Case("llm_input_key_row", _j(dict(zip(COLUMNS, ROW), input="zz_canary")),
         deviation="MLflow's LLM path hands the raw object to a tabular model and answers unwrapped; ours says what to send"),
    Case("llm_prompt_key_columns", _j(dict(_cols(ROWS), prompt="zz_canary")),
         deviation="MLflow's LLM path hands the raw object to a tabular model and answers unwrapped; ours says what to send"),
    Case("llm_messages_key_with_split", _j(dict(_split([ROW]), messages=[{"role": "user", "content": "zz_canary"}])), status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("json_list", _j(_records([ROW])), status=400, error_code="BAD_REQUEST"),
    Case("json_string", _j("zz_canary_string"), status=400, error_code="BAD_REQUEST"),
    Case("json_number", b"42", status=400, error_code="BAD_REQUEST"),
    Case("json_null", b"null", status=400, error_code="BAD_REQUEST"),
    Case("json_true", b"true", status=400, error_code="BAD_REQUEST"),
    # Python's json raises RecursionError (nesting) and ValueError (an integer literal of more
    # than 4300 digits), which MLflow does not catch: 500 "Internal Server Error" in text/plain.
    # Both are the client's malformed input: ours answers 400.
    Case("json_deeply_nested", b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", status=500, mlflow_500="RecursionError in json.loads"),
    Case("json_integer_over_4300_digits", SPLIT_ONE.replace(b"19.58", b"9" * 5000), status=500, mlflow_500="ValueError (int digit limit) in json.loads", echo_values=("9" * 40,)),
    Case("malformed_json", b'{"dataframe_split": {"columns": ["zz_canary_col"', status=400, error_code="BAD_REQUEST"),
    Case("trailing_garbage", SPLIT_ONE + b" zz_garbage", status=400, error_code="BAD_REQUEST"),
    Case("empty_body", b"", status=400, error_code="BAD_REQUEST"),
    Case("invalid_utf8", b'{"dataframe_records": [{"merchant_category": "zz_bad\xff\xfe"}]}', status=400, error_code="BAD_REQUEST"),
    # json.loads(bytes) detects a BOM and UTF-16/32: MLflow accepts these bodies
    Case("utf8_bom", b"\xef\xbb\xbf" + SPLIT_ONE),
    Case("utf16_body", json.dumps(_split([ROW])).encode("utf-16")),
    # --- content types ---------------------------------------------------------------------
    Case("ct_charset_utf8", SPLIT_ONE, "application/json; charset=utf-8"),
    Case("ct_charset_utf8_upper", SPLIT_ONE, "application/json; charset=UTF-8"),
    Case("ct_space_before_semicolon", SPLIT_ONE, "application/json ;charset=utf-8"),
    Case("ct_charset_latin1", SPLIT_ONE, "application/json; charset=latin-1", status=415),
    Case("ct_charset_quoted", SPLIT_ONE, 'application/json; charset="utf-8"', status=415),
    Case("ct_format_pandas_split", SPLIT_ONE, "application/json; format=pandas-split", status=415),
    Case("ct_format_pandas_records", _j(_records([ROW])), "application/json; format=pandas-records", status=415),
    Case("ct_json_uppercase", SPLIT_ONE, "Application/JSON", status=415),
    Case("ct_json_suffix", SPLIT_ONE, "application/vnd.api+json", status=415),
    Case("ct_text_plain", SPLIT_ONE, "text/plain", status=415),
    Case("ct_xml", b"<row><amount>zz_canary</amount></row>", "application/xml", status=415),
    Case("ct_form", b"amount=zz_canary", "application/x-www-form-urlencoded", status=415),
    Case("ct_empty", SPLIT_ONE, "", status=415),
    # MLflow does content_type.split(";") on None: AttributeError, a 500 "Internal Server Error"
    # in text/plain. A request without Content-Type is the client's mistake: ours answers 4xx
    # (415, as for an empty or unknown content type).
    Case("ct_missing", SPLIT_ONE, None, status=500, mlflow_500="no Content-Type header: AttributeError in MLflow"),
    # --- text/csv --------------------------------------------------------------------------
    Case("csv", _csv(ROWS), CSV),
    Case("csv_charset_utf8", _csv(ROWS), "text/csv; charset=utf-8"),
    Case("csv_columns_reordered", _csv([list(reversed(r)) for r in ROWS], REV), CSV),
    Case("csv_extra_column", _csv([r + ["zz_extra_value"] for r in ROWS], COLUMNS + ["zz_extra_col"]), CSV),
    Case("csv_index_column", b"," + _csv([[i] + r for i, r in enumerate(ROWS)]), CSV),  # to_csv()'s default: unnamed index first
    Case("csv_ints_for_doubles", _csv([_ints(r) for r in ROWS]), CSV),
    Case("csv_empty_double_cell", _csv([_sub(ROW, HOUR, None)]), CSV),
    Case("csv_empty_string_cell", _csv([_sub(ROW, CATEGORY, None)]), CSV),
    Case("csv_no_header", _csv(ROWS, None), CSV, status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("csv_missing_required_column", _csv([r[1:] for r in ROWS], COLUMNS[1:]), CSV, status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("csv_bad_number", _csv([_sub(ROW, HOUR, BAD)]), CSV, status=400, error_code="BAD_REQUEST"),
    Case("csv_ragged_row", _csv([ROW + ["zz_surplus", "zz_more"]]), CSV, status=400, error_code="BAD_REQUEST"),
    Case("csv_header_only", _csv([]), CSV, status=400, error_code="BAD_REQUEST"),
    Case("csv_empty", b"", CSV, status=400, error_code="BAD_REQUEST"),
    Case("csv_invalid_utf8", _csv([_sub(ROW, CATEGORY, "zz_canary")]).replace(b"zz_canary", b"zz_bad\xff\xfe"), CSV, status=400, error_code="BAD_REQUEST"),
    Case("csv_json_body", SPLIT_ONE, CSV, status=400, error_code="INVALID_PARAMETER_VALUE"),
    # --- parquet (MLflow reads it without the schema's casting: int64 is not a double) -------
    Case("parquet", _parquet(_cols(ROWS)), PARQUET),
    Case("parquet_int_column", _parquet(_cols([_sub(r, HOUR, int(r[HOUR])) for r in ROWS])), PARQUET, status=400, error_code="INVALID_PARAMETER_VALUE"),
    Case("parquet_garbage", b"zz_not_parquet", PARQUET, status=400, error_code="BAD_REQUEST"),
    # --- size ------------------------------------------------------------------------------
    Case("large_body_10k_rows", _j(_split(ROWS * 3334))),  # ~1.2 MB; MLflow has no body limit
    # --- routes ----------------------------------------------------------------------------
    Case("get_ping", content_type=None, method="GET", path="/ping"),
    Case("get_health", content_type=None, method="GET", path="/health"),
    Case("get_version", content_type=None, method="GET", path="/version"),
    Case("head_ping", content_type=None, method="HEAD", path="/ping", status=405),
    Case("post_ping", b"{}", method="POST", path="/ping", status=405),
    Case("post_version", b"{}", method="POST", path="/version", status=405),
    Case("get_invocations", content_type=None, method="GET", path="/invocations", status=405),
    Case("put_invocations", SPLIT_ONE, method="PUT", path="/invocations", status=405),
    Case("options_invocations", content_type=None, method="OPTIONS", path="/invocations", status=405),
    Case("post_invocations_trailing_slash", SPLIT_ONE, path="/invocations/", status=307),
    Case("unknown_route", content_type=None, method="GET", path="/zz_unknown", status=404),
    Case("post_unknown_route", SPLIT_ONE, path="/predict", status=404),
]

# --------------------------------------------------------------------------- echo detection

_FORMAT_WORDS = {
    "dataframe_split", "dataframe_records", "instances", "inputs", "params", "columns", "data", "index",
    "signature_name", "input", "prompt", "messages", "role", "content", "user",
}
_CANARY = re.compile(rb"zz_[A-Za-z0-9_]+")


def _number_forms(v: float | int) -> set[str]:
    if isinstance(v, float) and not math.isfinite(v):
        return set()
    forms = {repr(v)}
    if isinstance(v, float) and v.is_integer():
        forms.add(str(int(v)))
    return forms


def _leaves(obj: Any) -> Iterator[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v)
    elif isinstance(obj, bool) or obj is None:
        return
    elif isinstance(obj, (int, float)):
        yield from _number_forms(obj)
    else:
        yield str(obj)


def input_values(case: Case) -> set[str]:
    """What in the request counts as an input value: leaves (and invented keys) of the body.

    Column names of the signature and the protocol's own words are not values; strings and
    numbers shorter than 4 characters are left out (too likely to occur by chance). Every
    ``zz_...`` canary in the raw body counts, which covers bodies that do not parse.
    """
    values = {m.decode() for m in _CANARY.findall(case.body)}
    text = case.body.decode("utf-8", "replace")
    if (case.content_type or "").startswith("text/csv"):
        candidates: Iterator[str] = (cell.strip() for line in text.splitlines() for cell in line.split(","))
    else:
        try:
            candidates = _leaves(json.loads(text))
        except (ValueError, RecursionError):
            candidates = iter(())
    for value in candidates:
        if len(value) >= 4 and value not in COLUMNS and value not in _FORMAT_WORDS:
            values.add(value)
    return values


def echoed(values: set[str], text: str) -> list[str]:
    return sorted(v for v in values if re.search(r"(?<![\w.])" + re.escape(v) + r"(?!\w)", text))


# --------------------------------------------------------------------------- servers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import pandas as pd

    from mlkit import datasets, registry, training, usecases

    uc = usecases.get("finance-fraud")
    model, parts = training.train(uc, datasets.load(uc, n=400), seed=0)
    fit = pd.concat([parts.train, parts.validation])
    folder = tmp_path_factory.mktemp("conformance") / "model"
    return Path(registry.package(model, folder, use_case=uc, fit_rows=fit, test_rows=parts.test))


def _terminate_with_parent() -> None:
    """Linux: SIGTERM the CLI if pytest dies without teardown (uvicorn, its child, follows it the
    same way: MLflow sets PR_SET_PDEATHSIG on it). Elsewhere a no-op."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _MlflowServer:
    """`mlflow models serve` in its own process group; :meth:`ready` waits for /ping."""

    def __init__(self, folder: Path, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        scripts = sysconfig.get_path("scripts")  # the venv's bin: `mlflow models serve` execs `uvicorn` from PATH
        env = dict(os.environ, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true")
        env["PATH"] = scripts + os.pathsep + env.get("PATH", "")
        cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(folder), "--env-manager", "local",
               "--host", "127.0.0.1", "-p", str(self.port)]
        self._log_handle = open(log, "wb")
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=self._log_handle,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_terminate_with_parent)

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def ready(self) -> str:
        deadline = time.monotonic() + MLFLOW_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"mlflow models serve exited with {self.proc.returncode}:\n{self._log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/ping", timeout=2).status_code == 200:
                    return self.url
            time.sleep(0.25)
        pytest.fail(f"mlflow models serve did not answer /ping within {MLFLOW_START_TIMEOUT} s:\n{self._log_tail()}")

    def stop(self) -> None:
        # The CLI runs `bash -c "exec uvicorn ..."` as a child: signal the whole group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)
        # the leader may be gone while uvicorn lingers: make sure nothing of the group survives
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log_handle.close()


@pytest.fixture(scope="module")
def mlflow_launch(package: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_MlflowServer]:
    server = _MlflowServer(package, tmp_path_factory.mktemp("mlflow-serve") / "serve.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def servers(package: Path, mlflow_launch: _MlflowServer) -> Iterator[tuple[str, str]]:
    """(MLflow's URL, our URL): ours starts while MLflow's is still loading (~20 s)."""
    with running(package, port=0) as ours:
        theirs = mlflow_launch.ready()
        yield theirs, str(ours).rstrip("/")


# --------------------------------------------------------------------------- the test


def _send(client: httpx.Client, base: str, case: Case) -> httpx.Response:
    headers = {} if case.content_type is None else {"Content-Type": case.content_type}
    body = case.body if case.method not in ("GET", "HEAD", "OPTIONS") else None
    request = client.build_request(case.method, base + case.path, content=body, headers=headers)
    if case.content_type is None:
        request.headers.pop("Content-Type", None)
    return client.send(request)


def _json(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def _media_type(resp: httpx.Response) -> str:
    return resp.headers.get("content-type", "").split(";")[0].strip().lower()


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, allow_nan=True)  # 0 and 0.0 stay different


def _check_our_error(case: Case, body: Any) -> None:
    assert isinstance(body, dict), f"our error body is not a JSON object: {body!r}"
    assert isinstance(body.get("error_code"), str) and isinstance(body.get("message"), str), body
    assert "stack_trace" not in body and "Traceback" not in body["message"], body
    text = json.dumps(body)
    leaks = echoed(input_values(case), text) + [v[:20] + "..." for v in case.echo_values if v in text]
    assert not leaks, f"our error body echoes request values {leaks}: {body!r}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_matches_mlflow(case: Case, servers: tuple[str, str]) -> None:
    theirs_url, ours_url = servers
    # A fresh connection per request: MLflow closes the connection after its 500.
    with httpx.Client(timeout=REQUEST_TIMEOUT, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        theirs = _send(client, theirs_url, case)
        ours = _send(client, ours_url, case)
    their_body, our_body = _json(theirs), _json(ours)

    # 1. the reference itself (tests/serving_reference.md) still holds
    assert theirs.status_code == case.status, (
        f"MLflow's scoring server changed: {theirs.status_code} {theirs.text[:500]!r}; "
        "update tests/serving_reference.md and this case")
    if case.error_code is not None:
        assert isinstance(their_body, dict) and their_body.get("error_code") == case.error_code, their_body

    # 2. MLflow's 500 on bad input is a bug we do not copy, and a few inputs MLflow scores are refused on
    #    purpose (case.deviation): ours is a 4xx with an MLflow-shaped error
    if case.mlflow_500 or case.deviation:
        assert 400 <= ours.status_code < 500, f"{case.mlflow_500}: ours must be 4xx, got {ours.status_code} {ours.text!r}"
        _check_our_error(case, our_body)
        return

    assert ours.status_code == theirs.status_code, f"ours {ours.status_code} {ours.text[:500]!r}"

    if 200 <= theirs.status_code < 300:
        assert _media_type(ours) == _media_type(theirs)
        if their_body is None:  # /ping ("\n") and /version ("3.17.2"): not JSON despite the content type
            assert ours.text == theirs.text
        else:
            assert _canonical(our_body) == _canonical(their_body)
    elif 300 <= theirs.status_code < 400:  # FastAPI's redirect_slashes
        assert ours.headers.get("location", "").endswith(case.path.rstrip("/"))
    elif isinstance(their_body, dict) and "error_code" in their_body:  # MLflow's own JSON errors
        assert _media_type(ours) == "application/json"
        _check_our_error(case, our_body)
        assert our_body["error_code"] == their_body["error_code"]
        # error_class and sqlstate are optional for us, but must agree when present
        for key in ("error_class", "sqlstate"):
            if key in our_body:
                assert our_body[key] == their_body.get(key), (key, our_body, their_body)
    elif case.method != "HEAD":
        # 415 (text/plain) and FastAPI's 404/405 {"detail": ...}: ours is JSON, either FastAPI's
        # same body or an MLflow-shaped error
        if isinstance(our_body, dict) and "detail" in our_body:
            assert our_body == their_body
        else:
            _check_our_error(case, our_body)
