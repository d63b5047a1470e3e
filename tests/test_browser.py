"""Browser tier: JupyterLab and a batch report in a real browser (Debian's headless Chromium).

Playwright's Python API drives ``/usr/bin/chromium`` (Debian's package, which ``make test``
installs with apt-get when it is missing and the machine allows it; never a browser download).
Both tests skip with a loud message when Chromium or the ``playwright`` package is missing, and
under ``CI=true`` tests/conftest.py turns that skip into a failure.

Screenshots go to ``build/browser/`` for a human to look at.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlparse
from urllib.request import url2pathname

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
# Debian's Chromium on a machine with a closed network: no sandbox (root), no GPU, and none of the
# background connections (component updates, sync, QUIC) that would be refused many at a time.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOW_TO_ENABLE = (
    "BROWSER TIER SKIPPED: {what}. Enable it with `make system-deps` as root (it runs "
    "`apt-get install --no-install-recommends chromium`, Debian's package) and `make setup` "
    "(playwright comes from requirements.lock). Never `playwright install`: no browser download."
)
RUN_ALL_TIMEOUT_S = 120
STDERR_MIME = "application/vnd.jupyter.stderr"


# --------------------------------------------------------------------------- Chromium


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """One headless Chromium (fresh profile) for the module; each test opens its own page."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(HOW_TO_ENABLE.format(what=f"{CHROMIUM} is missing"))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(HOW_TO_ENABLE.format(what="the Python package `playwright` is not installed"))
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def _shoot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    target = SHOTS / name
    page.screenshot(path=str(target))
    return target


# --------------------------------------------------------------------------- JupyterLab


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lab_sandbox(tmp: Path) -> tuple[Path, dict[str, str]]:
    """A copy of notebooks/ (the UI saves into it, never into the repo) and a clean Jupyter config.

    The copy of 00_start_here has its stored outputs and execution counts cleared, so whatever the
    test finds on the page was produced by the run from the UI. Its ``output_dir`` parameter points
    into ``tmp`` so the run's key figures do not land in the repository's build/; data still loads
    from the repository (``MLKIT_ROOT``).
    """
    notebooks = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    start = notebooks / "00_start_here.ipynb"
    nb = nbformat.read(start, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if "parameters" in cell.metadata.get("tags", []):
            cell.source = re.sub(
                r'^(output_dir\s*:\s*str\s*=\s*)"[^"]*"',
                lambda m: f'{m.group(1)}"{(tmp / "output" / "00_start_here").as_posix()}"',
                cell.source,
                flags=re.M,
            )
    nbformat.write(nb, start)

    settings = tmp / "lab-settings"
    for plugin, values in {
        # No news, no update check: both would ask a website, and their toast would cover the page.
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        target = settings / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values), encoding="utf-8")
    env = dict(os.environ)
    env.update(
        MLKIT_ROOT=str(ROOT),
        JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "lab-workspaces"),
        IPYTHONDIR=str(tmp / "ipython"),
        PYTHONHASHSEED="0",
    )
    env.pop("JUPYTER_TOKEN", None)
    return notebooks, env


def _stop(proc: subprocess.Popen) -> None:
    """Stop JupyterLab and everything it started (kernels run in sessions of their own)."""
    import psutil

    try:
        family = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        family = []
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: the server shuts its kernels down, then exits
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    _, alive = psutil.wait_procs(family, timeout=5)
    for child in alive:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)


def _wait_until_up(proc: subprocess.Popen, base: str, token: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode} before answering:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail(f"JupyterLab did not answer /api/status within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


_PROMPTS_JS = """() => {
  const nb = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook');
  return nb ? [...nb.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim()) : null;
}"""


def _kernel_state(base: str, token: str, notebook: str) -> str | None:
    """The execution state of the notebook's kernel, as the server knows it (None: no session yet)."""
    with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as resp:
        sessions = json.load(resp)
    for session in sessions:
        if session.get("path") == notebook and session.get("kernel"):
            return session["kernel"].get("execution_state")
    return None


def _answer_kernel_dialog(page) -> None:
    """JupyterLab asks for a kernel when it cannot pick one: take its default (Python 3)."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and dialog.get_by_text("Select Kernel").count():
        dialog.locator(".jp-Dialog-footer .jp-mod-accept").click()


def _wait_for_idle_kernel(page, base: str, token: str, notebook: str, timeout_s: float = 60) -> None:
    """Wait until the notebook's kernel has started and is idle, in the server and on the page."""
    deadline = time.monotonic() + timeout_s
    state = status = None
    while time.monotonic() < deadline:
        _answer_kernel_dialog(page)
        state = _kernel_state(base, token, notebook)
        bar = page.locator(".jp-StatusBar-Widget")
        status = bar.first.inner_text() if bar.count() else ""
        if state == "idle" and re.search(r"\| Idle", status) and "No Kernel" not in status:
            return
        time.sleep(0.25)
    pytest.fail(f"the kernel was not idle within {timeout_s:.0f} s: server says {state!r}, status bar {status!r}")


def test_jupyterlab_runs_start_here_from_the_ui_without_errors_and_renders_a_plot(browser_context, tmp_path):
    notebooks, env = _lab_sandbox(tmp_path)
    cells = nbformat.read(notebooks / "00_start_here.ipynb", as_version=4).cells
    expected_code_cells = sum(c.cell_type == "code" for c in cells)
    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser", "--ip", "127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={notebooks}",
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])  # fmt: skip
    with log.open("wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    page = None
    try:
        _wait_until_up(proc, base, token, log)
        page = browser_context.new_page()
        page.goto(f"{base}/lab/tree/00_start_here.ipynb?token={token}")
        page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(state="visible", timeout=60_000)
        _wait_for_idle_kernel(page, base, token, "00_start_here.ipynb")
        before = page.evaluate(_PROMPTS_JS)
        assert before and not any(re.search(r"\d", p) for p in before), f"cells ran before Run All: {before}"

        # Run › Run All Cells, from the menu bar as a learner would.
        page.locator("#jp-MainMenu .lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu .lm-Menu-item", has_text=re.compile(r"^Run All Cells")).click()

        # Done when every code cell shows its execution count, 1..N in order (a fresh kernel ran
        # them all, top to bottom) and the kernel is idle again.
        # An error stops Run All: once nothing runs any more and an error is shown, stop waiting.
        wanted = [f"[{i}]:" for i in range(1, expected_code_cells + 1)]
        errors = page.locator(f'.jp-OutputArea-output[data-mime-type="{STDERR_MIME}"]')
        deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
        prompts = state = None
        stopped_on_error = 0
        while time.monotonic() < deadline:
            _answer_kernel_dialog(page)
            prompts = page.evaluate(_PROMPTS_JS)
            state = _kernel_state(base, token, "00_start_here.ipynb")
            if prompts == wanted and state == "idle":
                break
            settled = state == "idle" and prompts is not None and "[*]:" not in prompts
            stopped_on_error = stopped_on_error + 1 if settled and errors.count() else 0
            if stopped_on_error >= 4:
                break
            time.sleep(0.5)
        else:
            shot = _shoot(page, "00_start_here.timeout.png")
            pytest.fail(f"Run All did not finish in {RUN_ALL_TIMEOUT_S} s: kernel {state!r}, prompts {prompts} ({shot})")
        run_s = RUN_ALL_TIMEOUT_S - (deadline - time.monotonic())

        error_texts = [(errors.nth(i).text_content() or "").strip()[:800] for i in range(errors.count())]
        images = page.locator(".jp-OutputArea-output img")
        if images.count():
            images.first.scroll_into_view_if_needed()  # the screenshot shows the plot
        rendered = page.evaluate(
            "() => [...document.querySelectorAll('.jp-OutputArea-output img')]"
            ".filter(i => i.complete && i.naturalWidth > 0).length"
        )
        shot = _shoot(page, "00_start_here.png")
        print(f"Run All Cells took {run_s:.1f} s for {expected_code_cells} code cells")
        assert not error_texts, f"error or stderr output after Run All ({shot}):\n" + "\n---\n".join(error_texts)
        assert prompts == wanted, f"not every code cell ran: {prompts}"
        assert rendered >= 1, f"no rendered image in any output area (screenshot {shot})"
    finally:
        if page is not None:
            page.close()
        _stop(proc)
    assert proc.poll() is not None


# --------------------------------------------------------------------------- batch report


def _tiny_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny browser check"),
        nbformat.v4.new_code_cell(
            'fail: bool = False  # raise in the last cell\noutput_dir: str = ""  # where metrics go',
            metadata={"tags": ["parameters"]},
        ),
        nbformat.v4.new_code_cell(
            "import mlkit\nmlkit.record('answer', 42, output_dir=output_dir)\nprint('tiny cell ran')"
        ),
        nbformat.v4.new_code_cell("if fail:\n    raise RuntimeError('asked to fail')"),
    ]
    nbformat.write(nb, path)
    return path


def test_batch_report_opens_in_chromium_with_a_row_and_a_working_link_per_run(browser_context, tmp_path):
    from mlkit import batch

    source = _tiny_notebook(tmp_path / "tiny.ipynb")
    out = tmp_path / "report"
    runs = {"good": False, "bad": True}
    jobs = [
        (str(source), str(out / f"tiny_{name}.ipynb"), {"fail": fail, "output_dir": str(out / name)})
        for name, fail in runs.items()
    ]
    results = batch.run_many(jobs, workers=1)
    assert [r.status for r in results] == ["ok", "failed"]
    index = batch.write_index(results, out)

    page = browser_context.new_page()
    try:
        page.goto(index.as_uri())
        table = page.locator("table").first
        assert table.locator("thead tr th").count() >= 2, "the report's table has no header row"
        rows = table.locator("tbody tr")
        assert rows.count() == len(runs), f"expected one row per run, got {rows.count()}"
        shot = _shoot(page, "batch_report.png")

        statuses = []
        links = []
        for i in range(rows.count()):
            cells = [t.strip() for t in rows.nth(i).locator("td").all_inner_texts()]
            status = [t for t in cells if t in ("ok", "failed")]
            assert len(status) == 1, f"row {i} shows no single status 'ok' or 'failed': {cells} ({shot})"
            statuses.append(status[0])
            hrefs = rows.nth(i).locator("a[href]")
            assert hrefs.count() >= 1, f"row {i} links to nothing: {cells}"
            links.append(urljoin(page.url, hrefs.first.get_attribute("href")))
        assert sorted(statuses) == ["failed", "ok"]

        for i, link in enumerate(links):
            target = Path(url2pathname(urlparse(link).path))
            assert target.is_file(), f"row {i} links to {link}, which does not exist"
            rows = page.locator("table").first.locator("tbody tr")
            with page.expect_navigation():
                rows.nth(i).locator("a[href]").first.click()
            assert page.url == link
            assert page.get_by_text("Tiny browser check").count() >= 1, f"{link} does not show the notebook's title"
            assert page.get_by_text("tiny cell ran").count() >= 1, f"{link} does not show the notebook's output"
            page.go_back()
            page.locator("table").first.wait_for()
    finally:
        page.close()
