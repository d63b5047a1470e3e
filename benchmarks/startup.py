"""Benchmark: starting a server and a kernel fresh vs forked from the zygote (mlkit/zygote.py).

What every smoke run and every `mlkit serve` in a notebook pays before its first line of work.
Both ways start the same programs in one invocation of this script, alternating, and the ratio of
the medians is printed:

- a server: ``mlkit.serving.running(folder)`` until ``/ping`` answers, for a packaged
  finance-fraud model (the anchor: a fresh interpreter, which is what ``running`` does without a zygote);
- a kernel: ``mlkit.batch.run_notebook`` of a two-cell notebook that imports pandas, scikit-learn
  and mlkit (the anchor: a fresh ``ipykernel`` as jupyter_client starts it).

    .venv/bin/python benchmarks/startup.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package(folder: Path) -> Path:
    import pandas as pd

    from mlkit import datasets, registry, training, usecases

    uc = usecases.get("finance-fraud")
    model, parts = training.train(uc, datasets.load(uc, n=2000), seed=0)
    return registry.package(model, folder / "package", use_case=uc, fit_rows=pd.concat([parts.train, parts.validation]),
                            test_rows=parts.test)


def notebook(folder: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell('output_dir: str = ""  # unused', metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("import pandas, sklearn.ensemble, mlkit.training\n6 * 7")]
    path = folder / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def time_server(model: Path) -> float:
    from mlkit.serving import running

    start = time.perf_counter()
    with running(model):
        return time.perf_counter() - start


def time_kernel(nb: Path, out: Path) -> float:
    from mlkit import batch

    start = time.perf_counter()
    result = batch.run_notebook(nb, out, parameters={"output_dir": ""})
    assert result.status == "ok", result.error
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(ROOT))
    from mlkit import zygote

    tmp = Path(tempfile.mkdtemp(prefix="mlkit-bench-startup-"))
    times: dict[tuple[str, str], list[float]] = {}
    try:
        model, nb = package(tmp), notebook(tmp)
        with zygote.running() as address:
            if not address:
                print("no zygote on this platform: nothing to compare")
                return 1
            for r in range(args.rounds):
                for way in ("fresh", "forked") if r % 2 == 0 else ("forked", "fresh"):
                    os.environ[zygote.ENV] = address if way == "forked" else "off"
                    times.setdefault(("server", way), []).append(time_server(model))
                    times.setdefault(("kernel", way), []).append(time_kernel(nb, tmp / f"out-{way}-{r}.ipynb"))
            os.environ[zygote.ENV] = address
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"medians of {args.rounds} rounds, alternating; 1-minute load average now {os.getloadavg()[0]:.1f}")
    for what in ("server", "kernel"):
        fresh, forked = (statistics.median(times[(what, w)]) for w in ("fresh", "forked"))
        label = "mlkit serve until /ping" if what == "server" else "kernel + a two-cell notebook"
        print(f"{label:32s} fresh {fresh:6.2f} s   forked {forked:6.2f} s   ratio {fresh / forked:5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
