"""Benchmark: single-row scoring over HTTP, `mlflow models serve` vs `mlkit serve` (sklearn and onnx).

The anchor is what a student would otherwise run: MLflow's own scoring server over the same
model folder. One finance-fraud model (boosting) is packaged once with `mlkit.registry.package`,
then each server is started in turn on a free loopback port with the same number of uvicorn
workers, checked (HTTP 200 and the pipeline's own predictions, for the timed row and for 50
more test rows), warmed up, and driven by wrk (16 connections, 2 threads) POSTing that one row
as `dataframe_split` JSON to `/invocations`. Throughput and latency percentiles come from
wrk's Lua `done()` hook; the ratios are mlkit's req/s over MLflow's, within one invocation.

    apt-get install -y wrk   # once, as root (Debian package)
    .venv/bin/python benchmarks/serving.py [--workers 1 2] [--seconds 20] [--rounds 3] [--quick] [--log]
        [--servers mlflow mlkit-sklearn mlkit-onnx]

With ``--rounds N`` the servers take turns N times (the order rotating each round) and the
median of each figure is shown, which keeps a neighbour's burst of load from landing on one
server only. Besides wrk's figures, the table shows the server's CPU time per request (its
whole process group, from /proc), which busy neighbours disturb less than req/s.

Exits 1 if any server answers a check request wrongly, or if wrk saw errors or non-2xx
answers. Every server runs in its own process group, which is killed on the way out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

from mlkit.serving.lifecycle import stop_process_group as _stop  # the server's whole process group

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONNECTIONS, THREADS = 16, 2
KINDS = ("mlflow", "mlkit-sklearn", "mlkit-onnx")

WRK_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, "status": %%d, '
    .. '"timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# --------------------------------------------------------------------------- the model and the request


def _split_body(X) -> str:
    """``X`` as an MLflow ``dataframe_split`` JSON request (NaN as null, NumPy scalars as JSON numbers)."""
    def plain(v):
        v = v.item() if hasattr(v, "item") else v
        return None if isinstance(v, float) and math.isnan(v) else v

    rows = [[plain(v) for v in row] for row in X.itertuples(index=False)]
    return json.dumps({"dataframe_split": {"columns": list(X.columns), "data": rows}})


def build_model(out: Path) -> dict:
    """Train and package the finance-fraud boosting model; return its folder and the requests to send.

    ``body`` is the single-row request wrk sends; ``check_body`` holds 50 test rows (the 25 the
    model finds most fraud-like, then 25 more) to check that every server gives the pipeline's
    own predictions, positives included, before any timing.
    """
    sys.path.insert(0, str(ROOT))
    import pandas as pd

    from mlkit import datasets, registry, training, usecases

    uc = usecases.get("finance-fraud")
    model, parts = training.train(uc, datasets.load(uc, n=20000), seed=0)
    fit = pd.concat([parts.train, parts.validation])
    folder = registry.package(model, out / "model", use_case=uc, fit_rows=fit, test_rows=parts.test)
    features = training.feature_columns(fit, uc).features
    X = training.xy(parts.test, uc)[0][features]
    row = X.head(1)
    likely = X.iloc[model.predict_proba(X)[:, 1].argsort()[::-1][:25]]
    several = pd.concat([likely, X.drop(likely.index).head(25)])
    return {"folder": Path(folder), "body": _split_body(row), "expected": model.predict(row).tolist(),
            "check_body": _split_body(several), "check_expected": model.predict(several).tolist()}


# --------------------------------------------------------------------------- servers




@contextlib.contextmanager
def mlflow_server(folder: Path, workers: int, log: Path, timeout: float = 120.0) -> Iterator[str]:
    """`mlflow models serve --env-manager local -w N` in its own process group; yields the base URL."""
    from mlkit.serving import free_port

    port = free_port()
    env = dict(os.environ, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="true")
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")  # it execs `uvicorn` from PATH
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", str(folder), "--env-manager", "local",
           "--host", "127.0.0.1", "-p", str(port), "-w", str(workers)]
    with open(log, "wb") as handle:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _pings(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"mlflow models serve did not answer /ping:\n{tail}")
            time.sleep(0.2)
        yield url
    finally:
        _stop(proc)


def _pings(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


PREDICTION_LOG = False  # main() turns it on with --log


def server(kind: str, folder: Path, workers: int, log: Path):
    """The context manager that runs ``kind`` ("mlflow", "mlkit-sklearn", "mlkit-onnx").

    With ``--log``, mlkit's servers also write every prediction to the prediction log (a fresh
    SQLite file beside the server's log) before answering, as ``mlkit serve --log-db`` does.
    """
    if kind == "mlflow":
        return mlflow_server(folder, workers, log)
    from mlkit.serving import running

    extra = ("--log-db", f"sqlite:///{log.with_suffix('.predictions.db')}") if PREDICTION_LOG else ("--no-log",)
    return running(folder, runtime=kind.removeprefix("mlkit-"), workers=workers, timeout=120, extra_args=extra)


# --------------------------------------------------------------------------- measuring


def check(url: str, body: str, expected: list) -> str | None:
    """None if the server answers the request with 200 and ``expected``; otherwise what went wrong."""
    request = urllib.request.Request(f"{url}/invocations", data=body.encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            status, text = answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode(errors="replace")
    if status != 200:
        return f"HTTP {status}: {text[:300]}"
    try:
        got = json.loads(text)["predictions"]
    except (ValueError, KeyError, TypeError):
        return f"unexpected body: {text[:300]}"
    if not isinstance(got, list) or len(got) != len(expected):
        return f"{len(expected)} predictions expected, got: {text[:300]}"
    wrong = [i for i, (a, b) in enumerate(zip(got, expected)) if a != b]
    return f"wrong prediction for {len(wrong)} of {len(expected)} rows (first: row {wrong[0]})" if wrong else None


def wrk(url: str, script: Path, seconds: int) -> dict:
    """One wrk run; req/s, p50/p99 in ms, and the count of failed requests."""
    cmd = ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout", "10s",
           "-s", str(script), f"{url}/invocations"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    stats = json.loads(out.strip().splitlines()[-1])
    failed = sum(stats[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {"rps": stats["requests"] / (stats["duration_us"] / 1e6), "p50": stats["p50_us"] / 1000,
            "p99": stats["p99_us"] / 1000, "requests": stats["requests"], "failed": failed}


def _group_cpu_seconds(port: int) -> float | None:
    """CPU seconds used so far by the process group of the server listening on ``port`` (Linux /proc)."""
    def stat(pid: str) -> list[str]:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()

    pids = [p for p in os.listdir("/proc") if p.isdigit()] if os.path.isdir("/proc") else []
    group = None
    for pid in pids:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(port).encode() in f.read().split(b"\0"):
                    group = stat(pid)[2]  # the process group of the server's launcher
                    break
    if group is None:
        return None
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = stat(pid)
            if fields[2] == group:
                ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(kind: str, model: dict, workers: int, script: Path, seconds: int, warmup: int, tmp: Path) -> dict:
    """Start one server, check its answers, warm it up, and measure it under wrk."""
    with server(kind, model["folder"], workers, tmp / f"{kind}-{workers}.log") as url:
        problem = (check(url, model["body"], model["expected"])
                   or check(url, model["check_body"], model["check_expected"]))
        if problem:
            return {"server": kind, "workers": workers, "error": problem}
        wrk(url, script, warmup)
        port, load = int(url.rsplit(":", 1)[1]), os.getloadavg()[0]
        cpu0 = _group_cpu_seconds(port)
        stats = wrk(url, script, seconds)
        cpu1 = _group_cpu_seconds(port)
        measured = cpu0 is not None and cpu1 is not None and stats["requests"]
        cpu = 1000 * (cpu1 - cpu0) / stats["requests"] if measured else math.nan
        return {"server": kind, "workers": workers, **stats, "cpu_ms": cpu, "load": load}


def median_of(runs: list[dict]) -> dict:
    """One row from several rounds of the same server: the median of each figure (any wrong answer wins)."""
    wrong = [r for r in runs if "error" in r]
    if wrong:
        return wrong[0]
    keys = ("rps", "p50", "p99", "cpu_ms", "load")
    return {"server": runs[0]["server"], "workers": runs[0]["workers"], "rounds": len(runs),
            "failed": sum(r["failed"] for r in runs), **{k: statistics.median(r[k] for r in runs) for k in keys}}


# --------------------------------------------------------------------------- report


def format_table(results: list[dict]) -> str:
    """The results as a text table, with each mlkit row's req/s over MLflow's at the same workers."""
    lines = [f"{'server':<14} {'workers':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU ms/req':>10} "
             f"{'load':>5} {'vs mlflow':>10}"]
    anchors = {r["workers"]: r["rps"] for r in results if r["server"] == "mlflow" and "rps" in r}
    for r in results:
        if "error" in r:
            lines.append(f"{r['server']:<14} {r['workers']:>7}  WRONG ANSWER: {r['error']}")
            continue
        anchor = anchors.get(r["workers"])
        ratio = f"{r['rps'] / anchor:.2f}x" if anchor and r["server"] != "mlflow" else ""
        failed = f"  ({r['failed']} failed requests)" if r["failed"] else ""
        lines.append(f"{r['server']:<14} {r['workers']:>7} {r['rps']:>9.0f} {r['p50']:>8.2f} {r['p99']:>8.2f} "
                     f"{r['cpu_ms']:>10.2f} {r['load']:>5.1f} {ratio:>10}{failed}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn workers, per server")
    parser.add_argument("--seconds", type=int, default=20, help="measured seconds per server")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured wrk seconds before each run")
    parser.add_argument("--rounds", type=int, default=1, help="turns per server; the table shows medians")
    parser.add_argument("--quick", action="store_true", help="5 s per server, 1 s warm-up, one round")
    parser.add_argument("--log", action="store_true", help="mlkit serve --log-db: log every prediction (durable SQLite)")
    parser.add_argument("--servers", nargs="+", choices=KINDS, default=list(KINDS),
                        help="which servers to run (default all; the ratio column needs mlflow)")
    args = parser.parse_args()
    global PREDICTION_LOG
    PREDICTION_LOG = args.log
    if args.quick:
        args.seconds, args.warmup, args.rounds = 5, 1, 1
    if shutil.which("wrk") is None:
        print("wrk is not installed; as root: apt-get install -y wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="mlkit-bench-serving-"))
    results = []
    try:
        model = build_model(tmp)
        script = tmp / "invocations.lua"
        script.write_text(WRK_LUA % model["body"])
        kinds = tuple(kind for kind in KINDS if kind in args.servers)
        for workers in args.workers:
            runs: dict[str, list[dict]] = {kind: [] for kind in kinds}
            for turn in range(args.rounds):
                for kind in kinds[turn % len(kinds):] + kinds[:turn % len(kinds)]:
                    runs[kind].append(measure(kind, model, workers, script, args.seconds, args.warmup, tmp))
                    print(f"round {turn + 1}: " + format_table(runs[kind][-1:]).splitlines()[-1], file=sys.stderr,
                          flush=True)
            results += [median_of(runs[kind]) for kind in kinds]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"single-row dataframe_split POST /invocations, finance-fraud boosting; wrk -t{THREADS} -c{CONNECTIONS} "
          f"-d{args.seconds}s after {args.warmup} s warm-up, median of {args.rounds} round(s); "
          f"mlkit {'logging every prediction (durable SQLite)' if PREDICTION_LOG else 'without the prediction log'}; "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    print(format_table(results))
    wrong = [r for r in results if "error" in r or r.get("failed")]
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
