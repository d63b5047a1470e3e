"""Benchmark: a grid of notebook runs, as a sequential loop of papermill CLI calls vs `mlkit batch`.

The anchor is what an instructor would otherwise script: one `papermill` process per run, one
after another. `mlkit batch` runs twice, with fresh kernels (``--fresh-kernels``) and with its
default (kernels forked from a warm zygote, mlkit/zygote.py). All run the same grid (00_start_here x 6 use cases x 2 seeds, smoke=True, 12 runs)
in one invocation of this script, and the ratio of wall-clock times is printed.

    .venv/bin/python benchmarks/batch.py [--workers 2] [--seeds 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "00_start_here.ipynb"
BIN = Path(sys.executable).parent


def grid(seeds: int) -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from mlkit import usecases

    return [{"use_case": u, "seed": s, "smoke": True} for u in usecases.ids(supervised_only=True) for s in range(seeds)]


def sequential_papermill(runs: list[dict], out: Path) -> float:
    start = time.perf_counter()
    for i, params in enumerate(runs):
        args = [str(BIN / "papermill"), str(NOTEBOOK), str(out / f"run{i}.ipynb"), "-k", "python3",
                "--cwd", str(NOTEBOOK.parent), "--no-progress-bar", "--log-level", "ERROR"]
        for name, value in {**params, "output_dir": str(out / f"run{i}")}.items():
            args += ["-p", name, str(value)]
        subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - start


def mlkit_batch(runs: list[dict], out: Path, workers: int, *extra: str) -> float:
    import yaml

    grid_file = out / "grid.yaml"
    grid_file.write_text(yaml.safe_dump(runs))
    start = time.perf_counter()
    subprocess.run([str(BIN / "mlkit"), "batch", str(NOTEBOOK), "--grid", str(grid_file), "--out", str(out / "batch"),
                    "--workers", str(workers), *extra], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    runs = grid(args.seeds)
    tmp = Path(tempfile.mkdtemp(prefix="mlkit-bench-"))
    try:
        seq = sequential_papermill(runs, tmp)
        fresh = mlkit_batch(runs, tmp, args.workers, "--fresh-kernels")
        par = mlkit_batch(runs, tmp, args.workers)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"grid: {len(runs)} runs of {NOTEBOOK.name} (smoke=True)")
    print(f"sequential papermill CLI loop:                  {seq:7.1f} s")
    print(f"mlkit batch --workers {args.workers} --fresh-kernels:      {fresh:7.1f} s  ratio {seq / fresh:.2f}x"
          "  (HTML reports included)")
    print(f"mlkit batch --workers {args.workers} (kernels forked):     {par:7.1f} s  ratio {seq / par:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
