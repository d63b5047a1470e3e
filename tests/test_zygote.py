"""mlkit.zygote: a program forked from the warm zygote behaves as `python -m` would, or is not forked."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from mlkit import batch, zygote

pytestmark = pytest.mark.skipif(not zygote.SUPPORTED, reason="the zygote forks, which mlkit does on Linux only")

# A module that reports what a program sees at start, then exits with the status it is given.
PROBE = '''
import json, os, sys
report = {
    "name": __name__, "argv": sys.argv[1:], "cwd": os.getcwd(), "path0": sys.path[0],
    "env": os.environ.get("PROBE_VALUE"), "session_leader": os.getsid(0) == os.getpid(),
    "main_globals": sorted(k for k in globals() if not k.startswith("__") and k not in ("json", "os", "sys", "report")),
}
print(json.dumps(report))
print("to stderr", file=sys.stderr)
sys.exit(int(sys.argv[1]))
'''


@pytest.fixture(scope="module")
def warm():
    """The session's zygote (tests/conftest.py starts one), or one of our own."""
    with zygote.running() as address:
        assert address, "the zygote did not start"
        yield address


@pytest.fixture
def probe(tmp_path):
    (tmp_path / "probe_module.py").write_text(PROBE)
    return tmp_path


def _run_forked(folder: Path, *args: str, env: dict | None = None) -> tuple[int, str, str]:
    out, err = folder / "out.txt", folder / "err.txt"
    with open(out, "w") as o, open(err, "w") as e:
        proc = zygote.spawn([sys.executable, "-m", "probe_module", *args],
                            env={**os.environ, **(env or {})}, cwd=folder, stdout=o, stderr=e)
        assert isinstance(proc, zygote.ForkedProcess), "the zygote did not fork the probe"
        code = proc.wait(30)
    return code, out.read_text(), err.read_text()


def test_a_forked_program_sees_what_python_dash_m_gives_it(warm, probe):
    code, out, err = _run_forked(probe, "3", "--flag", env={"PROBE_VALUE": "from the requester"})
    fresh = subprocess.run([sys.executable, "-m", "probe_module", "3", "--flag"], cwd=probe, capture_output=True,
                           text=True, env={**os.environ, "PROBE_VALUE": "from the requester"}, timeout=60)
    assert code == fresh.returncode == 3
    forked, expected = json.loads(out), json.loads(fresh.stdout)
    assert forked.pop("session_leader") is True  # os.killpg(proc.pid, ...) reaches it and its children
    expected.pop("session_leader")
    assert forked == expected  # name, argv, cwd, sys.path[0], environment, an empty __main__
    assert forked["argv"] == ["3", "--flag"] and forked["env"] == "from the requester" and forked["main_globals"] == []
    assert err == fresh.stderr == "to stderr\n"


def test_exit_status_and_signals_come_back_as_popen_reports_them(warm, probe):
    assert _run_forked(probe, "0")[0] == 0
    (probe / "sleeper.py").write_text("import time\ntime.sleep(60)\n")
    proc = zygote.spawn([sys.executable, "-m", "sleeper"], cwd=probe)
    assert proc.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == -signal.SIGTERM
    assert proc.poll() == -signal.SIGTERM and not zygote.alive(proc.pid)


def test_what_cannot_be_forked_faithfully_starts_the_usual_way(warm, probe, monkeypatch):
    # another interpreter start-up setting: a fresh interpreter would hash differently
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    assert zygote.spawn([sys.executable, "-m", "probe_module", "0"], cwd=probe,
                        env={**os.environ, "PYTHONHASHSEED": seed}) is None
    # not `<this python> -m <module>`
    assert zygote.spawn([sys.executable, "-c", "pass"], cwd=probe) is None
    assert zygote.spawn(["/bin/true", "-m", "x"], cwd=probe) is None
    # no zygote, or turned off
    monkeypatch.setenv(zygote.ENV, "off")
    assert zygote.spawn([sys.executable, "-m", "probe_module", "0"], cwd=probe) is None
    with zygote.running() as address:
        assert address == ""
    monkeypatch.delenv(zygote.ENV)
    assert zygote.spawn([sys.executable, "-m", "probe_module", "0"], cwd=probe) is None


def test_stopping_the_zygote_stops_what_it_started(probe, monkeypatch):
    monkeypatch.delenv(zygote.ENV, raising=False)
    (probe / "sleeper.py").write_text("import time\ntime.sleep(60)\n")
    with zygote.running(preload=("json",)) as address:
        assert address and os.environ[zygote.ENV] == address
        proc = zygote.spawn([sys.executable, "-m", "sleeper"], cwd=probe)
        assert proc.poll() is None
    assert zygote.ENV not in os.environ and not Path(address).exists()
    assert proc.wait(10) == -signal.SIGTERM and not zygote.alive(proc.pid)


def test_what_a_requester_started_stops_when_the_requester_dies(warm, probe):
    """As a kernel whose parent dies exits: a forked program cannot watch the process that asked for it."""
    (probe / "sleeper.py").write_text("import time\ntime.sleep(60)\n")
    requester = ("import os, sys\nfrom mlkit import zygote\n"
                 "proc = zygote.spawn([sys.executable, '-m', 'sleeper'], cwd=sys.argv[1])\n"
                 "print(proc.pid, flush=True)\nos._exit(0)  # gone without stopping it\n")
    done = subprocess.run([sys.executable, "-c", requester, str(probe)], capture_output=True, text=True, timeout=60)
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 15
    while zygote.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not zygote.alive(pid)


def _notebook(path: Path, *cells: str) -> Path:
    """A notebook with a parameters cell (``output_dir``) and then ``cells``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell('output_dir: str = ""  # where metrics go', metadata={"tags": ["parameters"]}),
                *(nbformat.v4.new_code_cell(source) for source in cells)]
    nbformat.write(nb, path)
    return path


def test_a_kernel_forked_from_the_zygote_gives_the_outputs_of_a_fresh_one(warm, tmp_path, monkeypatch):
    nb = _notebook(tmp_path / "nb.ipynb",
                   "import numpy as np\nimport pandas as pd\nimport mlkit\n"
                   "rng = np.random.default_rng(0)\n"
                   "frame = pd.DataFrame({'x': rng.normal(size=5).round(3)})\n"
                   "mlkit.record('total', float(frame['x'].sum().round(3)), output_dir=output_dir)\n"
                   "print(frame.to_string())\nimport warnings\nwarnings.warn('a visible warning')",
                   "import os\nsorted(k for k in globals() if not k.startswith('_'))[:6]")
    forked = batch.run_notebook(nb, tmp_path / "forked.ipynb", parameters={"output_dir": str(tmp_path / "f")})
    monkeypatch.setenv(zygote.ENV, "off")
    fresh = batch.run_notebook(nb, tmp_path / "fresh.ipynb", parameters={"output_dir": str(tmp_path / "g")})
    assert forked.status == fresh.status == "ok"
    assert forked.metrics == fresh.metrics == {"total": fresh.metrics["total"]}

    def outputs(path):
        cells = nbformat.read(path, as_version=4).cells
        text = json.dumps([[{k: v for k, v in o.items() if k != "execution_count"} for o in c.outputs]
                           for c in cells if c.cell_type == "code"])
        return re.sub(r"ipykernel_\d+", "ipykernel_<pid>", text)  # a warning names the kernel's process

    assert outputs(tmp_path / "forked.ipynb") == outputs(tmp_path / "fresh.ipynb")


def test_batch_kernels_and_their_servers_are_forked_when_a_zygote_runs(warm, tmp_path, monkeypatch):
    """What tells a forked kernel from a fresh one: scikit-learn is already in memory, and its parent is the zygote."""
    _notebook(tmp_path / "probe.ipynb",
              "import os, sys\nimport mlkit\n"
              "mlkit.record('warm', 'sklearn' in sys.modules, output_dir=output_dir)\n"
              "mlkit.record('zygote', os.environ.get('MLKIT_ZYGOTE', ''), output_dir=output_dir)")
    forked = batch.run_notebook(tmp_path / "probe.ipynb", tmp_path / "a.ipynb", parameters={"output_dir": str(tmp_path / "a")})
    assert forked.metrics == {"warm": True, "zygote": warm}  # servers it starts are forked too (running())
    monkeypatch.setenv(zygote.ENV, "off")
    fresh = batch.run_notebook(tmp_path / "probe.ipynb", tmp_path / "b.ipynb", parameters={"output_dir": str(tmp_path / "b")})
    assert fresh.metrics == {"warm": False, "zygote": "off"}
