"""``mlkit drift`` and ``mlkit monitor``: drift and monitoring reports, in the terminal, as JSON or as HTML.

``mlkit drift REFERENCE CURRENT``: ``REFERENCE`` is a CSV or Parquet table (usually the
training rows), a fingerprint JSON, or a packaged model folder (its ``fingerprint.json``);
``CURRENT`` is a CSV or Parquet table. Exit status: 0 when the report was made, 1 with
``--fail-on-drift`` when the dataset drifted, 2 for bad input.

``mlkit monitor --model NAME --html FILE``: one model's prediction log, window by window
(:func:`mlkit.monitoring.monitor.monitor`): drift, performance, alerts. Exit status: 0 when
the report was made, 1 with ``--fail-on-alert`` when an alert fired, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from mlkit.errors import DataError, ParameterError

__all__ = ["add_drift_arguments", "run_drift", "add_monitor_arguments", "run_monitor", "read_table"]


def read_table(path: str | Path, what: str) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame, with a clear error for a missing or unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{what} {path} does not exist; give the path of a CSV or Parquet file.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
    except Exception as exc:  # pandas and pyarrow raise many types for a broken file
        raise DataError(f"{what} {path} could not be read as {suffix[1:]}: {type(exc).__name__}. "
                        "Check that the file is complete and in that format.") from None
    raise ParameterError(f"{what} {path} is neither .csv nor .parquet; convert it to one of them.")


def _reference(path: str) -> pd.DataFrame | dict:
    from mlkit import fingerprint

    source = Path(path)
    if source.is_dir():
        if not (source / "fingerprint.json").is_file():
            raise ParameterError(f"{source} is a folder without fingerprint.json; give a model folder packaged by "
                                 "mlkit, a fingerprint JSON, or a CSV/Parquet table.")
        return fingerprint.load(source / "fingerprint.json")
    if source.suffix.lower() == ".json":
        return fingerprint.load(source)
    return read_table(source, "The reference")


def add_drift_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("reference", help="the reference: a CSV/Parquet table, a fingerprint JSON, or a packaged model folder")
    p.add_argument("current", help="the rows to check: a CSV or Parquet table")
    p.add_argument("--columns", nargs="+", metavar="C", help="feature columns to compare (default: all the reference's)")
    p.add_argument("--prediction", metavar="C", help="a prediction column: its drift is reported separately")
    p.add_argument("--target", metavar="C", help="a label column (table references only): label drift")
    p.add_argument("--statistic", choices=["psi", "ks", "wasserstein", "jensenshannon"], default=None,
                   help="the statistic for numeric columns (default: psi)")
    p.add_argument("--correction", choices=["bonferroni", "bh"], default=None,
                   help="multiple-testing correction of p-values (ks, chi-square)")
    p.add_argument("--drift-share", type=float, default=0.5, metavar="S",
                   help="dataset drift when at least this share of the columns drifted (default: 0.5)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument("--fail-on-drift", action="store_true", help="exit with status 1 when the dataset drifted")


def run_drift(args: argparse.Namespace) -> int:
    """What ``mlkit drift`` runs (see the module docstring)."""
    from mlkit.monitoring import drift

    reference = _reference(args.reference)
    current = read_table(args.current, "The current table")
    report = drift.drift_report(reference, current, columns=args.columns, prediction=args.prediction,
                                target=args.target, numeric_statistic=args.statistic, correction=args.correction,
                                drift_share=args.drift_share)
    verdict = (f"dataset drift: {len(report.drifted_columns)} of {len(report.features)} columns drifted "
               f"({report.drift_share:.0%}, threshold {report.drift_share_threshold:.0%})")
    if not report.dataset_drift:
        verdict = "no " + verdict
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        shown = report.table[["column", "role", "statistic", "value", "p_value", "threshold", "drifted"]]
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(verdict + (f": {', '.join(report.drifted_columns)}" if report.drifted_columns else ""))
    if args.html:
        _write_html(args, report, verdict)
        print(f"HTML report: {args.html}", file=sys.stderr)
    return 1 if args.fail_on_drift and report.dataset_drift else 0


def _write_html(args: argparse.Namespace, report, verdict: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mlkit.monitoring import drift
    from mlkit.monitoring.html import Report

    page = Report(f"Drift: {Path(args.current).name} against {Path(args.reference).name}")
    page.text(verdict + ".", verdict="bad" if report.dataset_drift else "good")
    page.text(f"Reference: {report.reference_rows:,} rows ({report.reference_source}); current: "
              f"{report.current_rows:,} rows. A column drifts when its statistic passes its threshold.")
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(report.table) + 1)))
    drift.plot_report(report, ax=ax)
    page.figure(fig, "Each column's statistic relative to its threshold; beyond 1 means drifted.")
    page.heading("Per column")
    page.table(report.table.drop(columns=["note"], errors="ignore"))
    page.write(args.html)


def add_monitor_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-db", metavar="URL",
                   help="the prediction log: a SQLAlchemy URL or a SQLite file (default: $MLKIT_LOG_DB, "
                        "else .mlkit/predictions.db)")
    p.add_argument("--model", required=True, metavar="NAME", help="the model to monitor, as it is logged")
    p.add_argument("--window", default="500", metavar="SIZE",
                   help="rows per window (500) or a span of time (1h, 15min, 1D); default 500")
    p.add_argument("--reference", metavar="PATH",
                   help="the training table (CSV/Parquet), a fingerprint JSON or a packaged model folder "
                        "(default: the log's first window)")
    p.add_argument("--metric", metavar="NAME",
                   help="performance metric, e.g. accuracy, recall, mae (default: accuracy for classes, mae otherwise)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--html", required=True, metavar="FILE", help="write the self-contained HTML report here")
    p.add_argument("--fail-on-alert", action="store_true", help="exit with status 1 when an alert fired")


def run_monitor(args: argparse.Namespace) -> int:
    """What ``mlkit monitor`` runs (see the module docstring)."""
    from mlkit.monitoring.monitor import format_summary, monitor

    result = monitor(args.log_db, model=args.model, window=args.window, reference=args.reference,
                     metric=args.metric)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        print(format_summary(result))
    result.to_html(args.html)
    print(f"HTML report: {args.html}", file=sys.stderr)
    return 1 if args.fail_on_alert and not result.alerts.empty else 0
