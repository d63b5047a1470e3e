"""Notebook tiers: conventions of every committed notebook, the smoke grid (every notebook x
every use case, smoke=True, papermill's Python API, two at a time; each gallery notebook once, on
its own use case), runs on users' CSVs, and parameter validation when a notebook is run with the
papermill CLI.

The golden tier (re-execute and compare outputs) is nbval, run by `make test` over notebooks/.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from mlkit import batch, usecases
from mlkit.parameters import parse_parameters_cell

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = batch.course_notebooks(ROOT)
GALLERY = [p for p in NOTEBOOKS if p.parent.name == "usecases"]  # the industry gallery: each fixed to its use case
CORE = [p for p in NOTEBOOKS if p not in GALLERY and p.name[:2] != "00"]  # numbered, for every supervised use case
START = ROOT / "notebooks" / "00_start_here.ipynb"
REQUIRED = {"use_case", "seed", "smoke", "data_path", "target", "task", "time_column", "output_dir"}
# A gallery notebook tells one industry's story on its own data: no use_case to choose, no CSV to bring.
REQUIRED_GALLERY = {"seed", "smoke", "output_dir"}

pytestmark = pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks committed yet")


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_conventions(path):
    nb = nbformat.read(path, as_version=4)
    code = _code_cells(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0], "one parameters cell, the first code cell"
    declared = parse_parameters_cell(tagged[0].source)
    required = REQUIRED_GALLERY if path in GALLERY else REQUIRED
    assert required <= set(declared), f"missing parameters: {required - set(declared)}"
    own = path.relative_to(ROOT / "notebooks").with_suffix("").as_posix()
    assert declared["output_dir"].default == f"build/{own}", "each notebook writes to its own folder under build/"
    assert all(d.comment for d in declared.values()), "every parameter has a comment"
    assert "check_parameters(globals()" in code[1].source, "parameters are validated right after"
    assert all(c.execution_count is not None for c in code), "committed with outputs"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not any("solution" in c.metadata.get("tags", []) for c in nb.cells[:1] + code[:2]), (
        "the title, parameters and check cells are never solutions (student editions drop solutions)"
    )
    assert "You will learn" in text and "## Summary" in text and "## Exercises" in text
    assert len([c for c in code if "solution" in c.metadata.get("tags", [])]) >= 2
    assert not [c for c in code if c.source.rstrip().endswith(";")], (
        "end plot cells with plt.show(): nbval runs cells without history, so a trailing ';' does not hide output"
    )
    stored = json.dumps([c.outputs for c in code])
    assert str(ROOT) not in stored, "no absolute paths in committed outputs"


def _csv_runs(nb: Path) -> tuple[str, ...]:
    """The users' CSVs a notebook runs on in the smoke grid.

    Notebooks 01-04 build the model, where a CSV's quirks matter: all three. The later ones
    take the packaged model and deploy or watch it; the use cases already cover binary
    classification and regression there, so they run on the one case the use cases lack:
    multiclass string labels (iris). This keeps the grid inside the suite's time budget.
    """
    return ("csv-biopsies", "csv-iris", "csv-diabetes") if nb.name[:2] <= "04" else ("csv-iris",)


def _run_params(nb: Path, out: Path) -> dict:
    """Where a smoke run writes: its output folder, and its own MLflow store if the notebook has one."""
    params = {"smoke": True, "output_dir": str(out)}
    if "tracking_uri" in parse_parameters_cell(_code_cells(nbformat.read(nb, as_version=4))[0].source):
        params["tracking_uri"] = f"sqlite:///{out}/mlflow.db"  # parallel runs never share a SQLite file
    return params


def _default_use_case(nb: Path) -> str:
    """The use case a notebook runs with its defaults (what the golden tier executes, at full size)."""
    return parse_parameters_cell(_code_cells(nbformat.read(nb, as_version=4))[0].source)["use_case"].default


def _gallery_run_id(nb: Path) -> str:
    """A gallery notebook's smoke run: once, on the use case it is written for."""
    return f"usecases-{nb.stem}"


def _grid_pairs() -> list[tuple[Path, str]]:
    """(notebook, use case) for every supervised use case, except each core notebook's default one.

    The golden tier already executes every notebook on its default use case at full size (a
    superset of the smoke run), so the grid leaves that pair out and spends its time on the others.
    """
    pairs = []
    for uc in usecases.all_use_cases():
        for nb in [START] + (CORE if uc.supervised else []):
            if nb in CORE and uc.id == _default_use_case(nb):
                continue
            pairs.append((nb, uc.id))
    return pairs


def _jobs(tmp: Path, csvs: dict[str, dict]) -> list[tuple[str, str, dict]]:
    jobs = []
    for nb, uc_id in _grid_pairs():
        out = tmp / f"{nb.stem}-{uc_id}"
        jobs.append((str(nb), str(out) + ".ipynb", {"use_case": uc_id, **_run_params(nb, out)}))
    for name, params in csvs.items():
        for nb in [nb for nb in CORE if name in _csv_runs(nb)]:
            out = tmp / f"{nb.stem}-{name}"
            jobs.append((str(nb), str(out) + ".ipynb", {**params, **_run_params(nb, out)}))
    for nb in GALLERY:
        out = tmp / _gallery_run_id(nb)
        jobs.append((str(nb), str(out) + ".ipynb", _run_params(nb, out)))
    return jobs


def _public_csvs(folder: Path) -> dict[str, dict]:
    """Real public data sets that ship inside scikit-learn, written as users' CSVs with real-world quirks."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

    bc = load_breast_cancer(as_frame=True).frame
    bc.insert(0, "record_id", [f"R{i:04d}" for i in range(len(bc))])
    bc["diagnosis"] = np.where(bc.pop("target") == 0, "malignant", "benign")
    bc["mean radius"] = bc["mean radius"].astype(object)
    bc.loc[::23, "mean radius"] = " "  # blank strings in a numeric column
    lines = bc.to_csv(index=False).splitlines()
    messy = "\ufeff" + "".join(ln + ("\r\n" if i % 3 else "\n") for i, ln in enumerate(lines))  # BOM, mixed endings
    (folder / "biopsies_messy.csv").write_text(messy, encoding="utf-8")

    iris = load_iris(as_frame=True)
    iris.frame.assign(species=iris.target_names[iris.target]).drop(columns="target").to_csv(folder / "iris.csv", index=False)
    load_diabetes(as_frame=True, scaled=False).frame.rename(columns={"target": "progression"}).to_csv(
        folder / "diabetes.csv", index=False
    )
    return {
        "csv-biopsies": {"data_path": str(folder / "biopsies_messy.csv"), "target": "diagnosis", "task": "classification"},
        "csv-iris": {"data_path": str(folder / "iris.csv"), "target": "species", "task": "classification"},
        "csv-diabetes": {"data_path": str(folder / "diabetes.csv"), "target": "progression", "task": "regression"},
    }


_GRID: dict = {}


def start_grid() -> None:
    """Start the smoke grid in a background thread, once.

    conftest.py calls this at collection time when a grid test is selected, so the grid's two
    kernels run while the golden tier and the unit tests run in the main process: the machine's
    cores are busy the whole time instead of idling through the golden tier's one kernel. The
    ``grid`` fixture waits for it.
    """
    if "future" in _GRID:
        return
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    tmp = Path(tempfile.mkdtemp(prefix="mlkit-smoke-grid-"))
    (tmp / "csv").mkdir()
    jobs = _jobs(tmp, _public_csvs(tmp / "csv"))
    executor = ThreadPoolExecutor(1, thread_name_prefix="smoke-grid")
    _GRID.update(tmp=tmp, future=executor.submit(batch.run_many, jobs, workers=2, timeout=300, render=False))
    executor.shutdown(wait=False)


def stop_grid() -> None:
    """Remove the grid's files once it has finished (conftest.py calls this at the end of the session)."""
    import shutil

    if "future" in _GRID and _GRID["future"].done():
        shutil.rmtree(_GRID["tmp"], ignore_errors=True)


@pytest.fixture(scope="module")
def grid():
    start_grid()
    results = _GRID["future"].result()
    return {Path(r.output).stem: r for r in results}


def _grid_ids() -> list[str]:
    ids = [f"{nb.stem}-{uc_id}" for nb, uc_id in _grid_pairs()]
    ids += [f"{nb.stem}-{name}" for name in ("csv-biopsies", "csv-iris", "csv-diabetes") for nb in CORE
            if name in _csv_runs(nb)]
    ids += [_gallery_run_id(nb) for nb in GALLERY]
    return ids


@pytest.mark.slow
@pytest.mark.parametrize("run_id", _grid_ids())
def test_smoke_grid_run_succeeds_and_records_figures(grid, run_id):
    result = grid[run_id]
    assert result.status == "ok", f"{run_id} failed: {result.error}"
    assert result.metrics, f"{run_id} recorded no key figures"


@pytest.mark.slow
@pytest.mark.parametrize("run_id", ["04_packaging_and_registry-healthcare-readmission", "04_packaging_and_registry-csv-iris"])
def test_packaging_notebook_leaves_a_verified_champion_in_its_fresh_store(grid, run_id, tmp_path):
    """Issue 4's 'done when': a fresh store holds a champion whose artifacts are complete and verified."""
    import shutil

    from mlkit import packaging, registry

    result = grid[run_id]
    assert result.status == "ok", f"{run_id} failed: {result.error}"
    uri = result.parameters["tracking_uri"]
    with registry.use_store(uri):
        names = [m.name for m in registry.client().search_registered_models()]
        assert len(names) == 1, names
        name = names[0]
        champion = registry.load(f"models:/{name}@champion")
        assert champion.aliases == ["champion"] and champion.onnx_bytes
        folder, _ = registry.download(f"models:/{name}@champion", tmp_path / "download")
        assert {"model.skops", "model.onnx", "model_card.md", "model_card.json", "fingerprint.json",
                "manifest.json"} <= {p.name for p in folder.iterdir()}
        copy = Path(shutil.copytree(folder, tmp_path / "copy"))
        data = bytearray((copy / "model.skops").read_bytes())
        data[100] ^= 1
        (copy / "model.skops").write_bytes(bytes(data))
        with pytest.raises(packaging.IntegrityError, match="model.skops"):
            registry.load(copy)
    assert result.metrics["onnx_parity_passed"] is True


def _papermill_cli(tmp_path, *params: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "papermill", str(CORE[0]), str(tmp_path / "out.ipynb"), "-k", "python3", "--cwd", str(ROOT / "notebooks")]
    return subprocess.run(cmd + list(params), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize(
    "params, expected",
    [
        (["-p", "use_case", "nope"], "Unknown use case 'nope'. Valid use cases: healthcare-diagnosis"),
        (["-p", "n_sampels", "5"], "Unknown parameter 'n_sampels'. This notebook takes: use_case, seed, smoke"),
        (["-p", "seed", "abc"], "Parameter 'seed' must be int, got str 'abc'"),
        (["-p", "use_case", "marketing-segments"], "is a clustering use case; this notebook needs a supervised one"),
    ],
)
def test_papermill_cli_stops_on_bad_parameters_with_a_clear_message(tmp_path, params, expected):
    proc = _papermill_cli(tmp_path, *params)
    assert proc.returncode != 0
    assert "ParameterError" in proc.stderr and expected in proc.stderr
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    ran = [c for c in _code_cells(executed) if c.execution_count]
    assert len(ran) == 3, "stopped at the validation cell, before any work"  # parameters, injected, check


def test_grid_covers_every_supervised_use_case_and_core_notebook():
    """Every (core notebook, supervised use case) runs: in the grid, or (the default one) in the golden tier."""
    ids = _grid_ids()
    for nb in CORE:
        default = _default_use_case(nb)
        assert default in usecases.ids(), f"{nb.name}: unknown default use case {default!r}"
        assert f"{nb.stem}-{default}" not in ids  # the golden tier runs it at full size
        for uc in usecases.supervised():
            assert uc.id == default or f"{nb.stem}-{uc.id}" in ids
    assert {nb.name[:2] for nb in CORE} >= {"01", "02", "03", "04", "05", "06"}


def test_grid_covers_every_gallery_notebook_once_in_smoke_mode(tmp_path):
    """Every notebook under notebooks/usecases runs in the grid exactly once, smoke=True, on its own use case."""
    gallery = sorted((ROOT / "notebooks" / "usecases").glob("*.ipynb"))
    assert gallery == GALLERY and not set(gallery) & set(CORE)
    jobs = [job for job in _jobs(tmp_path, {}) if Path(job[0]) in gallery]
    assert sorted(Path(nb) for nb, _, _ in jobs) == gallery
    for nb, output, params in jobs:
        assert params["smoke"] is True and not {"use_case", "data_path"} & set(params), params
        assert Path(output).stem in _grid_ids()
    assert len(set(_grid_ids())) == len(_grid_ids())
