"""Benchmark: a drift report on 1,000,000 rows x 20 columns, mlkit vs Evidently's DataDriftPreset.

One invocation generates the data deterministically (a reference and a current table, each
1,000,000 rows: 16 numeric and 4 categorical columns; four numeric columns and one categorical
column drift by known amounts), times `mlkit.monitoring.drift.drift_report` in this process,
times Evidently's `DataDriftPreset` on the same data in a subprocess that uses Evidently's own
virtual environment (Evidently needs pandas < 3), prints the time ratio, and checks that
mlkit's statistics equal scipy's on the same inputs (max absolute difference, must be <= 1e-9).

    .venv/bin/python benchmarks/drift.py [--rows 1000000] [--repeat 3] [--venv build/bench-evidently-venv]

The Evidently environment is created on first use (`python3 -m venv` + `pip install evidently
"pandas<3"`, from the package registry); `--no-install` skips that, `--no-evidently` skips
Evidently altogether. Exit status 1 when a statistic differs from scipy's by more than 1e-9.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlkit.monitoring import drift  # noqa: E402

NUMERIC = [f"num_{i:02d}" for i in range(16)]
CATEGORICAL = [f"cat_{j}" for j in range(4)]
LEVELS = [3, 8, 20, 50]  # levels per categorical column
SHIFTS = {"num_00": 0.02, "num_01": 0.15, "num_02": 0.3, "num_03": 0.6}  # mean shift, in std units
TOLERANCE = 1e-9

EVIDENTLY_RUNNER = r'''
import json, sys, time
import numpy as np, pandas as pd
import evidently
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

data, repeat = sys.argv[1], int(sys.argv[2])
frames = {}
with np.load(data, allow_pickle=False) as z:
    numeric, categorical = list(z["numeric_names"]), list(z["categorical_names"])
    for side in ("reference", "current"):
        cols = {name: z[f"{side}_{name}"] for name in numeric}
        for name in categorical:
            cols[name] = z[f"levels_{name}"].astype(object)[z[f"{side}_{name}"]]
        frames[side] = pd.DataFrame(cols)
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
times, snapshot = [], None
for _ in range(repeat):
    start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(frames["current"], data_definition=definition),
        reference_data=Dataset.from_pandas(frames["reference"], data_definition=definition),
    )
    times.append(time.perf_counter() - start)
values = {}
for metric in snapshot.dict()["metrics"]:
    config = metric.get("config", {})
    if config.get("column") is not None:
        values[config["column"]] = {"method": config.get("method"), "threshold": config.get("threshold"),
                                    "value": metric["value"]}
print(json.dumps({"times": times, "values": values, "evidently": evidently.__version__,
                  "pandas": pd.__version__, "numpy": np.__version__}))
'''


# --------------------------------------------------------------------------- data


def make_data(rows: int, seed: int, *, drifted: bool) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Numeric arrays and categorical codes of one table; `drifted` moves the columns in SHIFTS and cat_0."""
    rng = np.random.default_rng(seed)
    numeric = {}
    for i, name in enumerate(NUMERIC):
        kind = i % 4
        if kind == 0:
            x = rng.normal(10 * i, 1 + i / 4, rows)
        elif kind == 1:
            x = rng.lognormal(3, 0.8, rows)  # amounts
        elif kind == 2:
            x = rng.integers(18, 90, rows).astype(float)  # ages: ties
        else:
            x = rng.uniform(0, 100, rows)
        if drifted and name in SHIFTS:
            x = x + SHIFTS[name] * REFERENCE_STD[name]
        numeric[name] = x
    codes = {}
    for j, name in enumerate(CATEGORICAL):
        k = LEVELS[j]
        p = np.arange(k, 0, -1, dtype=float)  # level 0 most frequent
        if drifted and j == 0:
            p = p[::-1].copy()  # cat_0's mix reversed
        codes[name] = rng.choice(k, size=rows, p=p / p.sum()).astype(np.int32)
    return numeric, codes


_LOGNORMAL_STD = float(np.sqrt(np.expm1(0.8**2)) * np.exp(3 + 0.8**2 / 2))
_AGE_STD = float(np.sqrt((72**2 - 1) / 12))  # integers 18..89
REFERENCE_STD = {name: [1 + i / 4, _LOGNORMAL_STD, _AGE_STD, 100 / np.sqrt(12)][i % 4] for i, name in enumerate(NUMERIC)}
"""The standard deviation of each numeric column's distribution, so SHIFTS are in std units."""


def frame(numeric: dict[str, np.ndarray], codes: dict[str, np.ndarray]) -> pd.DataFrame:
    cols: dict[str, object] = dict(numeric)
    for j, name in enumerate(CATEGORICAL):
        levels = np.array([f"{name}_level_{k:02d}" for k in range(LEVELS[j])], dtype=object)
        cols[name] = pd.Series(levels[codes[name]])
    return pd.DataFrame(cols)


def save_npz(path: Path, ref: tuple, cur: tuple) -> None:
    arrays = {"numeric_names": np.array(NUMERIC), "categorical_names": np.array(CATEGORICAL)}
    for side, (numeric, codes) in (("reference", ref), ("current", cur)):
        arrays.update({f"{side}_{n}": v for n, v in numeric.items()})
        arrays.update({f"{side}_{n}": v for n, v in codes.items()})
    for j, name in enumerate(CATEGORICAL):
        arrays[f"levels_{name}"] = np.array([f"{name}_level_{k:02d}" for k in range(LEVELS[j])])
    np.savez(path, **arrays)


# --------------------------------------------------------------------------- machine and environments


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        memory = f", {kib / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} cores ({model}){memory}, Python {platform.python_version()}, load {load:.1f}"


def evidently_python(venv: Path, install: bool) -> tuple[Path | None, str]:
    """The venv's python once Evidently imports there (creating it if allowed), or None and why not."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", "import evidently, pandas; from evidently.presets import DataDriftPreset"]
    if python.exists():
        done = subprocess.run(check, capture_output=True, text=True)
        if done.returncode == 0:
            return python, ""
        if not install:
            return None, f"Evidently does not import in {venv}: {done.stderr.strip().splitlines()[-1:]}"
    elif not install:
        return None, f"no virtual environment at {venv} (run without --no-install to create it)"
    print(f"setting up {venv}: python3 -m venv, pip install evidently 'pandas<3' (package registry) ...", flush=True)
    steps = [["python3", "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "--quiet", "evidently", "pandas<3"]]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode != 0:
            return None, f"`{' '.join(step)}` failed: {(done.stderr or done.stdout).strip()[-2000:]}"
    done = subprocess.run(check, capture_output=True, text=True)
    if done.returncode != 0:
        return None, f"Evidently installed but does not import: {done.stderr.strip()[-2000:]}"
    return python, ""


# --------------------------------------------------------------------------- runs


def time_mlkit(reference: pd.DataFrame, current: pd.DataFrame, repeat: int, **options) -> tuple[float, object]:
    times, report = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        report = drift.drift_report(reference, current, **options)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), report


def run_evidently(python: Path, data: Path, repeat: int) -> dict:
    done = subprocess.run([str(python), "-c", EVIDENTLY_RUNNER, str(data), str(repeat)],
                          capture_output=True, text=True, timeout=3600)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def scipy_check(reference: pd.DataFrame, current: pd.DataFrame, reports: dict) -> dict[str, float]:
    """Max |mlkit - scipy| per statistic, on the full columns (scipy is slow here: ~1 s per KS)."""
    from scipy import stats
    from scipy.spatial.distance import jensenshannon

    worst: dict[str, float] = {}

    def note(key: str, ours: float, theirs: float) -> None:
        worst[key] = max(worst.get(key, 0.0), abs(float(ours) - float(theirs)))

    tables = {key: report.table.set_index("column") for key, report in reports.items()}
    for name in NUMERIC:
        a, b = reference[name].to_numpy(), current[name].to_numpy()
        ks = stats.ks_2samp(a, b, method="asymp")
        note("ks statistic", tables["ks"].loc[name, "value"], ks.statistic)
        note("ks p-value", tables["ks"].loc[name, "p_value"], ks.pvalue)
        note("wasserstein / std", tables["wasserstein"].loc[name, "value"],
             stats.wasserstein_distance(a, b) / np.std(a, ddof=1))  # fmt: skip
        edges = np.unique(np.quantile(a, np.linspace(0, 1, 11)[1:-1], method="inverted_cdf"))
        counts = [np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1) for x in (a, b)]
        note("jensenshannon (numeric, deciles)", tables["jensenshannon"].loc[name, "value"], jensenshannon(*counts))
    for name in CATEGORICAL:
        counts = pd.DataFrame({"reference": reference[name].value_counts(), "current": current[name].value_counts()})
        table = counts.fillna(0).to_numpy().T
        chi2 = stats.chi2_contingency(table, correction=False)
        note("chi2 statistic", tables["ks"].loc[name, "value"], chi2.statistic)
        note("chi2 p-value", tables["ks"].loc[name, "p_value"], chi2.pvalue)
        note("jensenshannon (categorical)", tables["jensenshannon"].loc[name, "value"], jensenshannon(*table))
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the reference and of the current table")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each report (the median is kept)")
    parser.add_argument("--venv", type=Path, default=ROOT / "build" / "bench-evidently-venv")
    parser.add_argument("--no-install", action="store_true", help="do not create the Evidently environment")
    parser.add_argument("--no-evidently", action="store_true", help="time mlkit only")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    start = time.perf_counter()
    ref_arrays = make_data(args.rows, seed=0, drifted=False)
    cur_arrays = make_data(args.rows, seed=1, drifted=True)
    reference, current = frame(*ref_arrays), frame(*cur_arrays)
    print(f"data: {args.rows:,} reference rows and {args.rows:,} current rows x {reference.shape[1]} columns "
          f"({len(NUMERIC)} numeric, {len(CATEGORICAL)} categorical), made in {time.perf_counter() - start:.1f} s; "
          f"drift injected in {', '.join(f'{k} (+{v} std)' for k, v in SHIFTS.items())} and cat_0 (mix reversed)")  # fmt: skip

    drift.drift_report(reference.iloc[:1000], current.iloc[:1000])  # warm-up: imports, first calls
    runs = {
        "psi": {"numeric_statistic": "psi", "categorical_statistic": "psi"},
        "ks": {"numeric_statistic": "ks", "categorical_statistic": "chi2"},
        "wasserstein": {"numeric_statistic": "wasserstein", "categorical_statistic": "jensenshannon"},
    }
    medians, reports = {}, {}
    for key, options in runs.items():
        medians[key], reports[key] = time_mlkit(reference, current, args.repeat, **options)
        label = f"{options['numeric_statistic']} / {options['categorical_statistic']}"
        print(f"mlkit drift_report ({label}): {medians[key]:.2f} s (median of {args.repeat}); "
              f"drifted: {', '.join(reports[key].drifted_columns) or 'none'}")  # fmt: skip
    one_thread, _ = time_mlkit(reference, current, 1, threads=1, **runs["ks"])
    print(f"mlkit drift_report (ks / chi2), threads=1: {one_thread:.2f} s (one run)")
    start = time.perf_counter()
    drift.calibrate_thresholds(reference, 1000, numeric_statistic="ks", categorical_statistic="chi2", n_boot=1000)
    print(f"mlkit calibrate_thresholds (ks / chi2, windows of 1,000 rows, 1,000 bootstrap windows per column): "
          f"{time.perf_counter() - start:.2f} s (one run)")  # fmt: skip
    _, reports["jensenshannon"] = time_mlkit(reference, current, 1, numeric_statistic="jensenshannon",
                                             categorical_statistic="jensenshannon")  # fmt: skip

    status = 0
    if not args.no_evidently:
        python, why = evidently_python(args.venv.resolve(), install=not args.no_install)
        if python is None:
            print(f"Evidently: not run: {why}")
        else:
            with tempfile.TemporaryDirectory(prefix="mlkit-bench-drift-") as tmp:
                data = Path(tmp) / "data.npz"
                save_npz(data, ref_arrays, cur_arrays)
                try:
                    result = run_evidently(python, data, args.repeat)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    result = None
                    print(f"Evidently: failed: {exc}")
            if result is not None:
                evidently_time = float(np.median(result["times"]))
                methods = sorted({v["method"] for v in result["values"].values()})
                print(f"Evidently {result['evidently']} DataDriftPreset (pandas {result['pandas']}; "
                      f"{' / '.join(methods)}): {evidently_time:.2f} s (median of {len(result['times'])})")  # fmt: skip
                print(f"ratio Evidently / mlkit, same statistics (wasserstein / jensenshannon): "
                      f"{evidently_time / medians['wasserstein']:.1f}x; vs mlkit's default (psi): "
                      f"{evidently_time / medians['psi']:.1f}x")  # fmt: skip
                ours = reports["wasserstein"].table.set_index("column")
                gaps, flagged = [], []
                for name, entry in result["values"].items():
                    value = float(ours.loc[name, "value"])
                    if name in NUMERIC:  # Evidently divides by the std with ddof=0, mlkit with ddof=1
                        value /= np.sqrt((args.rows - 1) / args.rows)
                    gaps.append(abs(value - float(entry["value"])))
                    if float(entry["value"]) >= float(entry["threshold"]):
                        flagged.append(name)
                print(f"Evidently vs mlkit values: max |diff| {max(gaps):.2e}; Evidently flags "
                      f"{', '.join(sorted(flagged)) or 'none'}")  # fmt: skip

    start = time.perf_counter()
    worst = scipy_check(reference, current, reports)
    print(f"scipy equality on the same inputs ({time.perf_counter() - start:.0f} s of scipy), max |mlkit - scipy|:")
    for key, gap in worst.items():
        verdict = "ok" if gap <= TOLERANCE else f"FAIL (> {TOLERANCE:g})"
        print(f"  {key:34s} {gap:.1e}  {verdict}")
        status |= gap > TOLERANCE
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
