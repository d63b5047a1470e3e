"""The ``mlkit`` command: thin; it parses arguments, calls one library function, and prints.

Examples
--------
>>> main(["usecases", "--json"]) == 0  # doctest: +ELLIPSIS
[...
True
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from mlkit import usecases
from mlkit.errors import MlkitError

__all__ = ["main", "run", "format_usecases"]


def format_usecases(rows: list[dict]) -> str:
    """Return the use-case table as aligned text columns."""
    headers = ["id", "industry", "task", "rows", "target", "primary_metric"]
    table = [headers] + [[str(r[h]) for h in headers] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table)


def _usecase_rows() -> list[dict]:
    return [
        {
            "id": u.id,
            "industry": u.industry,
            "task": u.task,
            "rows": u.default_rows,
            "target": u.target or "-",
            "primary_metric": u.primary_metric,
            "time_column": u.time_column,
            "source": u.source,
        }
        for u in usecases.all_use_cases()
    ]


def _cmd_usecases(args: argparse.Namespace) -> int:
    rows = _usecase_rows()
    print(json.dumps(rows, indent=2) if args.json else format_usecases(rows))
    return 0


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="notebook", file=sys.stderr)


def _report(results) -> int:
    failed = [r for r in results if r.status != "ok"]
    for r in results:
        line = f"{r.status:>11}  {r.duration_s:6.1f} s  {r.run_id + ' / ' if r.run_id else ''}{r.notebook}"
        if r.error.get("ename"):
            line += f"  (cell {r.error.get('cell')}: {r.error['ename']}: {str(r.error.get('evalue', ''))[:120]})"
        print(line)
    return 1 if failed else 0


class _Bar:
    """A tqdm bar fed by batch progress counts: done, failed, running, skipped, ETA."""

    def __init__(self, desc: str):
        from tqdm import tqdm

        self._bar = tqdm(desc=desc, unit="run", file=sys.stderr, total=0)

    def __call__(self, counts: dict[str, int]) -> None:
        self._bar.total = counts["total"] - counts["skipped"]
        self._bar.n = counts["done"]
        self._bar.set_postfix(failed=counts["failed"], running=counts["running"], skipped=counts["skipped"], refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def _run_with_bar(desc: str, call) -> list:
    bar = _Bar(desc)
    try:
        return call(bar)
    finally:
        bar.close()


def _cmd_course(args: argparse.Namespace) -> int:
    from mlkit import batch, paths

    results = _run_with_bar(
        "course", lambda bar: batch.run_course(args.out, workers=args.workers, timeout=args.timeout, on_progress=bar)
    )
    code = _report(results)
    print(f"report: {paths.resolve(args.out) / 'index.html'}")
    return code


def _cmd_batch(args: argparse.Namespace) -> int:
    from mlkit import batch, grid

    param_sets: list[dict] = []
    if args.grid:
        param_sets += grid.load_grid_file(args.grid)
    if args.param:
        named = dict(grid.parse_param(p) for p in args.param)
        base = param_sets or [{}]
        param_sets = [{**run, **combo} for run in base for combo in grid.expand(named)]
    out = Path(args.out).resolve()
    runs = grid.plan(args.notebooks, param_sets, out)
    print(f"{len(runs)} run(s): {len({r.notebook for r in runs})} notebook(s) x {len(param_sets) or 1} parameter set(s) -> {out}")
    results = _run_with_bar(
        "batch",
        lambda bar: batch.run_batch(
            runs,
            out,
            workers=args.workers,
            timeout=args.timeout,
            resume=args.resume,
            backend=args.backend,
            scheduler=args.scheduler,
            metric=args.metric,
            on_progress=bar,
            fast_start=not args.fresh_kernels,
        ),
    )
    code = _report(results)
    print(f"report: {out / 'index.html'}")
    return code


def _cmd_notebooks(args: argparse.Namespace) -> int:
    from mlkit import batch

    selected = [Path(p).resolve() for p in args.notebooks] or batch.course_notebooks()
    missing = [str(p) for p in selected if not p.exists()]
    if missing:
        raise MlkitError(f"Notebook(s) not found: {', '.join(missing)}.")
    with _progress(len(selected), "notebooks") as bar:
        results = batch.regenerate_notebooks(selected, workers=args.workers, on_done=lambda r: bar.update())
    return _report(results)


def _cmd_student(args: argparse.Namespace) -> int:
    from mlkit import student

    for e in student.write_student_editions(args.sources, args.out):
        print(f"{e.path}  ({e.solutions} solutions replaced, {e.self_checks} self-checks kept)")
        if e.warning:
            print(f"warning: {e.warning}", file=sys.stderr)
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from mlkit import datasets

    if args.write:
        for name, digest in sorted(datasets.write_committed().items()):
            print(f"{digest}  {name}")
        return 0
    problems = datasets.verify_manifest()
    for p in problems:
        print(p)
    print("datasets match MANIFEST" if not problems else f"{len(problems)} dataset(s) differ from MANIFEST")
    return 1 if problems else 0


def _cmd_models(args: argparse.Namespace) -> int:
    from mlkit import registry

    if args.action == "verify":
        loaded = registry.load(args.target)
        where = f"{loaded.name} version {loaded.version}" if loaded.version else args.target
        print(f"{where}: every file matches its manifest; {loaded.family} pipeline loaded with the allowlist; "
              f"gate {loaded.card['gate']['verdict']}")
        return 0
    if args.action == "versions":
        table = registry.versions(args.target)
        print(table.to_json(orient="records", indent=2) if args.json else table.round(4).to_string(index=False))
        return 0
    if args.action == "promote":
        version = registry.promote(args.target, args.version)
        print(f"{args.target}: champion -> version {version}")
        return 0
    if args.action == "rollback":
        version = registry.rollback(args.target)
        print(f"{args.target}: champion rolled back to version {version}")
        return 0
    if args.alias is None or args.version is None:
        raise MlkitError("mlkit models alias NAME needs --alias ALIAS and --version N.")
    registry.set_alias(args.target, args.alias, args.version)
    print(f"{args.target}: {args.alias} -> version {args.version}")
    return 0


_GUARDRAILS = {"canary_min_rows": "min_rows", "canary_max_error_rate": "max_error_rate",
               "canary_min_agreement": "min_agreement", "canary_max_drop": "max_drop",
               "canary_min_rate_ratio": "min_rate_ratio"}


def _cmd_serve(args: argparse.Namespace) -> int:
    from mlkit import serving

    if args.workers < 1:
        raise MlkitError(f"--workers must be at least 1, got {args.workers}.")
    if args.no_log and (args.log or args.log_db):
        raise MlkitError("--no-log contradicts --log and --log-db; give one of them.")
    second = "--shadow" if args.shadow else "--canary" if args.canary else None
    if second and args.no_log:
        raise MlkitError(f"{second} logs the second model's predictions beside the served model's, so it needs the "
                         "prediction log; drop --no-log (the log goes to --log-db URL, else $MLKIT_LOG_DB, else "
                         ".mlkit/predictions.db).")
    if args.max_batch_rows < 1:
        raise MlkitError(f"--max-batch-rows must be at least 1, got {args.max_batch_rows}.")
    guardrails = {key: getattr(args, option) for option, key in _GUARDRAILS.items() if getattr(args, option) is not None}
    extra = {"shadow": args.shadow, "canary": args.canary, "canary_percent": args.canary_percent,
             "guardrails": guardrails}
    percent = args.canary_percent if args.canary_percent is not None else 10.0  # rollout.DEFAULT_PERCENT
    rollout = (f"; shadow {args.shadow}" if args.shadow else "") + (
        f"; canary {args.canary} at {percent:g}%" if args.canary else "")
    print(f"mlkit serve: {args.model} on http://{args.host}:{args.port} (runtime {args.runtime}, "
          f"{args.workers} worker(s)){rollout}; /docs lists the routes", file=sys.stderr)
    serving.serve(args.model, host=args.host, port=args.port, runtime=args.runtime, name=args.name,
                  workers=args.workers, trust=tuple(args.trust or ()), allow_pickle=args.allow_pickle,
                  micro_batch=args.micro_batch, max_batch_rows=args.max_batch_rows, log=bool(args.log or args.log_db),
                  log_db=args.log_db, **extra)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlkit", description="The ML deployment teaching kit.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("usecases", help="list the industry use cases")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_usecases)

    p = sub.add_parser("course", help="execute every notebook with its defaults and write an HTML report")
    p.add_argument("--out", default="build", help="output folder (default: build)")
    p.add_argument("--workers", type=int, default=2, help="notebooks run at once (default: 2)")
    p.add_argument("--timeout", type=float, default=600, help="seconds a cell may run (default: 600)")
    p.set_defaults(func=_cmd_course)

    p = sub.add_parser("batch", help="run notebooks over a grid of parameters, with a report")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK_OR_DIR", help="notebooks, or folders of notebooks")
    p.add_argument("--param", action="append", metavar="NAME=V1,V2", help="values of one parameter (repeat; their product is the grid)")
    p.add_argument("--grid", metavar="FILE.yaml", help="runs from YAML: a list of parameter sets, or grid:/runs:")
    p.add_argument("--workers", type=int, default=2, help="runs at once (default: 2)")
    p.add_argument("--out", default="build/batch", help="output folder (default: build/batch)")
    p.add_argument("--timeout", type=float, default=600, help="seconds one run may take (default: 600)")
    p.add_argument("--resume", action="store_true", help="skip runs that already succeeded with the same notebook and parameters")
    p.add_argument("--backend", choices=["local", "dask"], default="local", help="local process pool or Dask")
    p.add_argument("--scheduler", metavar="ADDRESS", help="an existing Dask scheduler, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--metric", help="the recorded metric to plot across the grid (default: the most common)")
    p.add_argument("--fresh-kernels", action="store_true",
                   help="start every kernel and server as a new interpreter (default, on Linux: fork them from a "
                        "process that has imported the libraries once, seconds faster each)")
    p.set_defaults(func=_cmd_batch)

    p = sub.add_parser("notebooks", help="re-execute notebooks in place with their defaults")
    p.add_argument("notebooks", nargs="*", help="notebooks to regenerate (default: all)")
    p.add_argument("--workers", type=int, default=2, help="notebooks run at once (default: 2)")
    p.set_defaults(func=_cmd_notebooks)

    p = sub.add_parser("student", help="write student editions: solutions replaced, outputs cleared")
    p.add_argument("sources", nargs="+", metavar="SRC", help="notebooks, or folders of notebooks")
    p.add_argument("--out", required=True, help="folder for the student editions")
    p.set_defaults(func=_cmd_student)

    p = sub.add_parser("datasets", help="check (default) or rewrite the committed datasets")
    p.add_argument("--write", action="store_true", help="rewrite datasets/ and datasets/MANIFEST")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser(
        "models", help="the model registry: list versions, promote, roll back, set an alias, verify a model",
        description="Uses MLFLOW_TRACKING_URI, else the repository's .mlkit/mlflow.db (make mlflow-ui browses it).",
    )
    p.add_argument("action", choices=["versions", "promote", "rollback", "alias", "verify"])
    p.add_argument("target", metavar="NAME_OR_MODEL",
                   help="a registered model's name; for verify, models:/NAME@ALIAS, models:/NAME/N or a model folder")
    p.add_argument("--version", type=int, help="promote: this version instead of the challenger; alias: the version")
    p.add_argument("--alias", help="alias: the alias to set (e.g. champion, challenger)")
    p.add_argument("--json", action="store_true", help="versions: print JSON")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("serve", help="serve a model over HTTP: MLflow, SageMaker, Vertex AI, Azure ML and V2 contracts")
    p.add_argument("--model", required=True, metavar="MODEL",
                   help="models:/NAME@ALIAS, models:/NAME/VERSION, or an MLflow model folder")
    p.add_argument("--name", help="the model's name in the V2 routes (default: the registered name)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8080, help="port (default: 8080, as SageMaker expects; AIP_HTTP_PORT wins)")
    p.add_argument("--runtime", choices=["sklearn", "onnx"], default="sklearn", help="scikit-learn or onnxruntime")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default: 1)")
    p.add_argument("--trust", action="append", metavar="TYPE", help="a plain MLflow skops model: also trust this type")
    p.add_argument("--allow-pickle", action="store_true", help="a plain MLflow pickle model you made yourself: load it")
    p.add_argument("--no-micro-batch", dest="micro_batch", action="store_false",
                   help="score every request alone instead of merging requests that arrive together")
    p.add_argument("--max-batch-rows", type=int, default=256, metavar="N",
                   help="micro-batching: the most rows scored in one model call (default: 256)")
    p.add_argument("--log", action="store_true",
                   help="log every answered prediction ($MLKIT_LOG_DB, else .mlkit/predictions.db) and take POST /feedback")
    p.add_argument("--log-db", metavar="URL",
                   help="log to this store instead: a SQLAlchemy URL (sqlite:///..., postgresql://...) or a SQLite file")
    p.add_argument("--no-log", action="store_true", help="do not log predictions (the default; for scripts that say so)")
    rollout = p.add_argument_group(
        "shadow and canary rollout",
        "A second model beside --model (as models:/NAME@ALIAS, models:/NAME/VERSION or a folder, with the same columns); "
        "either turns the log on. A guardrail is judged once it has --canary-min-rows rows; when one breaks the canary "
        "is rolled back (no more traffic, WARNING in the server's log, GET /canary says why).")
    rollout.add_argument("--shadow", metavar="MODEL2",
                         help="score every request with MODEL2 too, in the background, and log its predictions "
                              "(served_by=shadow, same request id); answers come from --model only")
    rollout.add_argument("--canary", metavar="MODEL2",
                         help="answer --canary-percent of the requests (chosen by request id) with MODEL2 "
                              "(header X-Served-By: canary, logged as served_by=canary); the champion scores them too, "
                              "in the background; GET /canary reports the guardrails. Needs --workers 1")
    rollout.add_argument("--canary-percent", type=float, metavar="P",
                         help="share of requests the canary answers, more than 0 and less than 100 (default: 10)")
    rollout.add_argument("--canary-min-rows", type=int, metavar="N",
                         help="rows a guardrail needs before it is judged (default: 50)")
    rollout.add_argument("--canary-max-error-rate", type=float, metavar="E",
                         help="roll back when the canary fails (raises, NaN, unreadable request) on more than this "
                              "share of its rows; the champion answers those (default: 0.02; 1 turns it off)")
    rollout.add_argument("--canary-min-agreement", type=float, metavar="A",
                         help="roll back when the canary agrees with the champion on fewer than this share of rows; "
                              "classification: same label; regression: |canary - champion| <= 10%% of |champion| "
                              "(default: 0.8; 0 turns it off). Blind to a rare class: never predicting 1%% fraud "
                              "still agrees 99%%")
    rollout.add_argument("--canary-min-rate-ratio", type=float, metavar="R",
                         help="classification: roll back when, for a class either model predicts on at least 10 "
                              "paired rows, the canary predicts it less than R or more than 1/R times as often as the "
                              "champion on the same rows; catches a model that stops predicting a rare class "
                              "(default: 0.5; 0 turns it off)")
    rollout.add_argument("--canary-max-drop", type=float, metavar="D",
                         help="with outcomes from POST /feedback: roll back when the canary's balanced accuracy on its "
                              "labelled rows is more than D below the champion's on the same rows (classification; "
                              "classes with at least 10 labelled rows), or its MAE more than D (relative) above "
                              "(regression) (default: 0.05)")
    p.set_defaults(func=_cmd_serve)

    from mlkit import cloud
    from mlkit.serving import scoring

    p = sub.add_parser("score", help="score a CSV or Parquet file with a model, in chunks (local or Dask)")
    scoring.add_arguments(p)
    p.set_defaults(func=scoring.run_from_args)

    p = sub.add_parser("bundle", help="write a deployable bundle for SageMaker, Vertex AI, Azure ML or Lambda")
    cloud.add_arguments(p)
    p.set_defaults(func=cloud.run_from_args)

    from mlkit import hybrid

    p = sub.add_parser("gateway", help="hybrid: an on-premise gateway that pseudonymises records, scores them in "
                                       "the cloud and falls back on-premise")
    hybrid.add_arguments(p)
    p.set_defaults(func=hybrid.run_from_args)

    from mlkit.monitoring import commands as monitoring_commands

    p = sub.add_parser("drift", help="compare a CSV/Parquet table with a reference (table, fingerprint or model): "
                                     "per-column drift and dataset drift")
    monitoring_commands.add_drift_arguments(p)
    p.set_defaults(func=monitoring_commands.run_drift)

    p = sub.add_parser("monitor", help="a monitoring report from the prediction log: drift per window, "
                                       "performance over time, alerts (HTML)")
    monitoring_commands.add_monitor_arguments(p)
    p.set_defaults(func=monitoring_commands.run_monitor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 a run failed, 2 bad input)."""
    args = _parser().parse_args(argv)
    from mlkit.batch import BatchInterrupted

    try:
        return args.func(args)
    except BatchInterrupted as exc:
        print(f"\033[33minterrupted:\033[0m {exc}", file=sys.stderr)
        return 130
    except MlkitError as exc:
        print(f"\033[31merror:\033[0m {exc}", file=sys.stderr)
        return 2


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
