"""Batch scoring (mlkit.serving.scoring): predictions equal the model's, in order, for CSV and Parquet;
bad rows are rejected with their numbers and columns, never their values; memory stays flat; the
Dask backend, the ONNX runtime and the command line give the same output."""

from __future__ import annotations

import argparse
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlkit import datasets, registry, training, usecases
from mlkit.errors import DataError, MlkitError, ParameterError
from mlkit.serving import scoring
from mlkit.serving.schema import Schema
from mlkit.serving.scoring import ScoreReport, check_rows, score_file

SECRET = "Zx9-secret-value"  # a bad value that must never reach the errors file


@pytest.fixture(scope="module")
def fraud(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scoring")
    uc = usecases.get("finance-fraud")
    data = datasets.load(uc, n=3000)
    model, parts = training.train(uc, data, seed=0)
    fit = pd.concat([parts.train, parts.validation])
    folder = registry.package(model, tmp / "model", use_case=uc, fit_rows=fit, test_rows=parts.test)
    features = training.feature_columns(fit, uc).features
    rows = data.head(700).reset_index(drop=True)
    expected = np.asarray(model.predict(training.xy(rows, uc)[0][features]))
    rows.to_csv(tmp / "transactions.csv", index=False)
    rows.to_parquet(tmp / "transactions.parquet", index=False)
    return {"folder": folder, "model": model, "uc": uc, "data": data, "rows": rows, "expected": expected,
            "features": features, "tmp": tmp}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def _score(fraud, source: Path, output: Path, **kwargs) -> ScoreReport:
    return score_file(fraud["folder"], source, output, progress=False, **kwargs)


# --------------------------------------------------------------------------- clean files


@pytest.mark.parametrize("source, target", [("csv", "csv"), ("parquet", "parquet"), ("csv", "parquet")])
def test_scoring_a_file_gives_the_model_predictions_in_input_order(fraud, tmp_path, source, target):
    output = tmp_path / f"scored.{target}"
    report = _score(fraud, fraud["tmp"] / f"transactions.{source}", output, chunksize=128)

    assert (report.rows, report.scored, report.rejected) == (700, 700, 0)
    assert report.output == output and report.errors_path == tmp_path / f"scored.{target}.errors.csv"
    out = _read(output)
    assert list(out.columns) == ["row", *fraud["rows"].columns, "prediction"]
    assert out["row"].tolist() == list(range(700))
    assert out["transaction_id"].tolist() == fraud["rows"]["transaction_id"].tolist()
    np.testing.assert_array_equal(out["prediction"].to_numpy(), fraud["expected"])
    np.testing.assert_array_equal(out["amount"].to_numpy(), fraud["rows"]["amount"].to_numpy())
    assert pd.read_csv(report.errors_path).empty  # written, with its header, even when no row is rejected
    assert not list(tmp_path.glob("*.partial"))


def test_report_line_counts_every_row(tmp_path):
    report = ScoreReport(700, 696, 4, tmp_path / "o.csv.errors.csv", tmp_path / "o.csv", 2.0, 350.0)
    line = str(report)
    assert "\n" not in line
    assert "700 rows read: 696 scored, 4 rejected" in line and "o.csv.errors.csv" in line and "350 rows/s" in line


# --------------------------------------------------------------------------- bad rows


@pytest.fixture(scope="module")
def malformed(fraud):
    """The 700 rows with text in amount (row 3) and in hour (row 150), inf (row 420), text in amount and an
    empty channel (row 699: the empty cell is a missing value the pipeline imputes, as the server does)."""
    rows = fraud["rows"].astype({"amount": object, "hour": object})
    rows.loc[3, "amount"] = SECRET
    rows.loc[150, "hour"] = f"late {SECRET}"
    rows.loc[420, "amount"] = "Infinity"
    rows.loc[699, ["amount", "channel"]] = [f"12 EUR {SECRET}", None]
    path = fraud["tmp"] / "malformed_transactions.csv"
    rows.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("chunksize", [128, 10_000])
def test_malformed_rows_are_reported_by_number_and_column_and_the_rest_scored(fraud, malformed, tmp_path, chunksize):
    output = tmp_path / "scored.csv"
    report = _score(fraud, malformed, output, chunksize=chunksize)

    assert (report.rows, report.scored, report.rejected) == (700, 696, 4)
    assert report.scored + report.rejected == report.rows
    errors = pd.read_csv(report.errors_path)
    assert list(errors.columns) == ["row", "column", "reason"]
    assert errors[["row", "column"]].values.tolist() == [
        [3, "amount"], [150, "hour"], [420, "amount"], [699, "amount"]]
    assert "text" in errors.reason[0] and "text" in errors.reason[1] and "infinite" in errors.reason[2]
    assert all(f"'{c}'" in r for c, r in zip(errors.column, errors.reason))  # each reason names its column
    text = report.errors_path.read_text(encoding="utf-8")
    assert SECRET not in text and "Infinity" not in text and "EUR" not in text

    out = pd.read_csv(output)
    kept = [i for i in range(700) if i not in (3, 150, 420, 699)]
    assert out["row"].tolist() == kept
    np.testing.assert_array_equal(out["prediction"].to_numpy(), fraud["expected"][kept])


def test_check_rows_finds_each_kind_of_bad_value_without_repeating_it():
    schema = Schema.from_signature([
        {"name": "count", "type": "long", "required": True},
        {"name": "flag", "type": "boolean", "required": True},
        {"name": "city", "type": "string", "required": True},
        {"name": "score", "type": "double", "required": False},
    ])
    frame = pd.DataFrame({
        "count": [1, 2.5, 3, 4, None, 6],
        "flag": ["true", "False", "maybe", "1", "true", "0"],
        "city": pd.Categorical(["Oslo", "Rome", "Oslo", 42, "Lima", "Nice"]),  # as Parquet dictionaries arrive
        "score": [0.5, None, 1.5, 2.5, 3.5, -np.inf],
    })
    check = check_rows(frame, schema, start=100)

    # as the server does: a number in a text column is read as its text, and an empty cell is a missing value
    assert check.valid.tolist() == [True, False, False, True, True, False]
    assert check.problems[["row", "column"]].values.tolist() == [[101, "count"], [102, "flag"], [105, "score"]]
    assert "whole numbers" in check.problems.reason[0] and "true or false" in check.problems.reason[1]
    assert "infinite" in check.problems.reason[2]
    assert "maybe" not in check.problems.to_csv() and "inf" not in check.problems.to_csv().replace("infinite", "")
    assert check.columns["count"].dtype == "Int64" and check.columns["flag"].tolist()[:2] == [True, False]
    assert check.columns["city"].tolist()[3] == "42"
    # an optional column may be left out entirely (the model imputes it); a required one may not
    assert check_rows(frame.drop(columns="score"), schema).valid.tolist() == [True, False, False, True, True, True]
    with pytest.raises(DataError, match="'city'"):
        check_rows(frame.drop(columns="city"), schema)


# --------------------------------------------------------------------------- bad files, bad arguments


def test_missing_column_is_a_data_error_before_any_output_is_written(fraud, tmp_path):
    source = tmp_path / "no_channel.csv"
    fraud["rows"].drop(columns="channel").to_csv(source, index=False)
    output = tmp_path / "out" / "scored.csv"

    with pytest.raises(DataError, match="no column.*'channel'.*needs"):
        _score(fraud, source, output)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def _bad_arguments(tmp: Path, good: Path) -> list:
    (tmp / "notes.txt").write_text("a,b\n1,2\n")
    (tmp / "broken.parquet").write_bytes(b"not parquet at all")
    pd.read_csv(good, nrows=5).assign(prediction=1).to_csv(tmp / "has_prediction.csv", index=False)
    return [
        ({"input": good, "output": tmp / "o.csv", "chunksize": 0}, ParameterError, "chunksize"),
        ({"input": good, "output": tmp / "o.csv", "workers": 0}, ParameterError, "workers"),
        ({"input": good, "output": tmp / "o.csv", "backend": "spark"}, ParameterError, "Unknown backend"),
        ({"input": good, "output": tmp / "o.csv", "scheduler": "tcp://127.0.0.1:8786"}, ParameterError, "dask"),
        ({"input": good, "output": tmp / "o.csv", "runtime": "tensorrt"}, ParameterError, "runtime"),
        ({"input": good, "output": good}, ParameterError, "is the input"),
        ({"input": good, "output": tmp / "o.xlsx"}, ParameterError, "extension '.xlsx'"),
        ({"input": tmp / "notes.txt", "output": tmp / "o.csv"}, DataError, "extension '.txt'"),
        ({"input": tmp / "absent.csv", "output": tmp / "o.csv"}, DataError, "does not exist"),
        ({"input": tmp / "broken.parquet", "output": tmp / "o.csv"}, DataError, "Cannot read"),
        ({"input": tmp / "has_prediction.csv", "output": tmp / "o.csv"}, DataError, "prediction"),
    ]


def test_bad_arguments_and_files_raise_clear_errors_and_write_nothing(fraud, tmp_path):
    for kwargs, error, message in _bad_arguments(tmp_path, fraud["tmp"] / "transactions.csv"):
        with pytest.raises(error, match=message):
            score_file(fraud["folder"], progress=False, **kwargs)
        assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.csv.errors.csv").exists(), kwargs


def test_a_file_that_breaks_part_way_is_a_data_error_and_leaves_no_output(fraud, tmp_path):
    source = tmp_path / "broken_at_row_500.csv"
    lines = (fraud["tmp"] / "transactions.csv").read_text(encoding="utf-8").splitlines()
    lines[501] += ",an extra field"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(DataError, match="Cannot read .* as CSV.*line 502"):
        _score(fraud, source, tmp_path / "scored.csv", chunksize=100)
    assert list(tmp_path.iterdir()) == [source]  # neither a half output nor its errors file


def test_an_optional_column_may_be_left_out(fraud, tmp_path):
    source = tmp_path / "no_distance.csv"
    fraud["rows"].drop(columns="distance_from_home_km").to_csv(source, index=False)
    report = _score(fraud, source, tmp_path / "scored.csv", chunksize=300)

    X = training.xy(fraud["rows"], fraud["uc"])[0][fraud["features"]].assign(distance_from_home_km=np.nan)
    assert (report.scored, report.rejected) == (700, 0)
    out = pd.read_csv(tmp_path / "scored.csv")
    assert "distance_from_home_km" not in out.columns  # the output holds the input's columns, not the schema's
    np.testing.assert_array_equal(out["prediction"].to_numpy(), fraud["model"].predict(X))


def test_an_input_with_a_header_only_gives_an_empty_output(fraud, tmp_path):
    source = tmp_path / "empty.csv"
    fraud["rows"].head(0).to_csv(source, index=False)
    report = _score(fraud, source, tmp_path / "scored.csv")
    assert (report.rows, report.scored, report.rejected) == (0, 0, 0)
    assert list(pd.read_csv(tmp_path / "scored.csv").columns) == ["row", *fraud["rows"].columns, "prediction"]


# --------------------------------------------------------------------------- memory


def _peak(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat_whatever_the_file_size(fraud, tmp_path):
    big = pd.concat([fraud["data"]] * 100, ignore_index=True)  # 300,000 rows
    source = tmp_path / "big_transactions.parquet"
    big.to_parquet(source, index=False, row_group_size=50_000)
    big.head(20_000).to_parquet(tmp_path / "one_chunk.parquet", index=False)
    whole = pd.read_parquet(source).memory_usage(deep=True).sum()  # the frame of the whole file
    del big
    _score(fraud, fraud["tmp"] / "transactions.parquet", tmp_path / "warm.parquet")  # imports and caches, untraced

    small = _peak(lambda: _score(fraud, tmp_path / "one_chunk.parquet", tmp_path / "small.parquet", chunksize=20_000))
    report = None

    def score_big():
        nonlocal report
        report = _score(fraud, source, tmp_path / "big.parquet", chunksize=20_000)

    large = _peak(score_big)
    assert report.rows == report.scored == 300_000
    # Traced memory (numpy and Python; pyarrow's string buffers are not traced, but they are per chunk
    # too) is what one chunk needs plus the model, whether the file has 1 chunk or 15...
    assert large < 1.3 * small, (large, small)
    # ...and well below the whole file's frame, which a read-everything-then-score approach holds.
    assert large < whole / 2, (large, whole)


# --------------------------------------------------------------------------- Dask, ONNX, command line


def test_dask_backend_gives_the_local_output(fraud, tmp_path):
    source = fraud["tmp"] / "transactions.csv"
    _score(fraud, source, tmp_path / "local.csv", chunksize=100)

    report = _score(fraud, source, tmp_path / "dask.csv", chunksize=100, backend="dask", workers=2)

    assert (report.rows, report.scored) == (700, 700)
    assert (tmp_path / "dask.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_a_worker_loads_a_registered_model_once_from_the_drivers_registry(fraud, monkeypatch):
    registered = registry.log_model(fraud["folder"], name="scoring-fraud", alias="champion")
    served = scoring.load_model("models:/scoring-fraud@champion")
    spec = scoring._spec("models:/scoring-fraud@champion", served, "sklearn", (), False)
    assert spec[0] == f"models:/scoring-fraud/{registered.version}"  # pinned: the alias may move during a run
    assert spec[2] == registry.tracking_uri()

    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # a worker started without it
    scoring._MODELS.clear()
    out, problems = scoring._score_on_worker(spec, fraud["rows"].head(50), 0)
    again, _ = scoring._score_on_worker(spec, fraud["rows"].head(50), 0)

    np.testing.assert_array_equal(out["prediction"].to_numpy(), fraud["expected"][:50])
    assert problems.empty and list(scoring._MODELS) == [spec]
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the worker's environment is left as it was


def test_onnx_runtime_gives_the_same_predictions(fraud, tmp_path):
    report = _score(fraud, fraud["tmp"] / "transactions.parquet", tmp_path / "onnx.csv", runtime="onnx")
    assert report.scored == 700
    np.testing.assert_array_equal(pd.read_csv(tmp_path / "onnx.csv")["prediction"].to_numpy(), fraud["expected"])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlkit score")
    scoring.add_arguments(parser)
    return parser


def test_command_line_prints_the_report_and_exits_0_even_with_rejected_rows(fraud, malformed, tmp_path, capsys):
    output = tmp_path / "scored.csv"
    args = _parser().parse_args(["--model", str(fraud["folder"]), "--input", str(malformed), "--output", str(output),
                                 "--chunksize", "300"])
    assert (args.backend, args.runtime, args.workers, args.scheduler) == ("local", "sklearn", 2, None)

    assert scoring.run_from_args(args) == 0

    captured = capsys.readouterr()
    assert captured.out.startswith("700 rows read: 696 scored, 4 rejected") and captured.out.count("\n") == 1
    assert "4 row(s) were not scored" in captured.err and "scored.csv.errors.csv" in captured.err
    assert "700/700" in captured.err or "700row" in captured.err  # the progress bar, in rows, on stderr
    assert len(pd.read_csv(output)) == 696


def test_command_line_rejects_bad_arguments(fraud, tmp_path):
    base = ["--model", str(fraud["folder"]), "--input", str(fraud["tmp"] / "transactions.csv")]
    with pytest.raises(SystemExit):
        _parser().parse_args([*base, "--output", "o.csv", "--backend", "spark"])
    args = _parser().parse_args([*base, "--output", str(tmp_path / "o.csv"), "--chunksize", "0"])
    with pytest.raises(MlkitError, match="chunksize"):  # mlkit's CLI boundary turns this into exit 2
        scoring.run_from_args(args)


def test_public_names():
    assert sorted(scoring.__all__) == sorted(
        ["ScoreReport", "RowCheck", "check_rows", "score_file", "add_arguments", "run_from_args"])
    assert all(hasattr(scoring, name) for name in scoring.__all__)


def test_mlkit_score_is_wired_into_the_command_line(fraud, malformed, tmp_path, capsys):
    from mlkit import cli

    output = tmp_path / "cli.csv"
    assert cli.main(["score", "--model", str(fraud["folder"]), "--input", str(malformed), "--output", str(output),
                     "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("700 rows read: 696 scored, 4 rejected")
    assert cli.main(["score", "--model", str(fraud["folder"]), "--input", str(malformed), "--output",
                     str(tmp_path / "x.txt"), "--no-progress"]) == 2
