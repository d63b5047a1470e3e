"""The HTML report of a batch: a table of runs and a plot of one metric across the grid.

Examples
--------
>>> from types import SimpleNamespace as Run
>>> runs = [Run(metrics={"auc": 0.8, "verdict": "GO"}), Run(metrics={"auc": 0.7, "rows": 5})]
>>> choose_metric(runs)
'auc'
>>> choose_metric(runs[1:]) is None  # one run: nothing to compare
True
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

__all__ = ["choose_metric", "plot_metric", "write_index", "write_runs"]


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def choose_metric(results: list, metric: str | None = None) -> str | None:
    """The metric to plot: ``metric`` if given, else the numeric one recorded by most runs."""
    if metric:
        return metric
    counts = Counter(k for r in results for k, v in r.metrics.items() if _numeric(v))
    if not counts or counts.most_common(1)[0][1] < 2:
        return None  # nothing recorded by two runs: no comparison to plot
    return counts.most_common(1)[0][0]


def plot_metric(results: list, metric: str, target: Path) -> Path | None:
    """Bar chart of ``metric`` for every run that recorded it (failed runs shown as gaps); a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in results if metric in r.metrics or r.status != "ok"]  # failed runs stay, as gaps
    labels = [f"{r.run_id or 'run'} / {Path(r.notebook).stem}" for r in results]
    values = [r.metrics.get(metric) if r.status == "ok" else None for r in results]
    if not any(_numeric(v) for v in values):
        return None
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(results) + 2), 4.5))
    heights = [v if _numeric(v) else 0 for v in values]
    colors = ["#4c72b0" if _numeric(v) else "#cccccc" for v in values]
    ax.bar(range(len(results)), heights, color=colors)
    ax.set_xticks(range(len(results)), labels, rotation=45, ha="right", fontsize=8)
    ax.set(title=f"{metric} across the grid (grey: failed or not recorded)", xlabel="run / notebook", ylabel=metric)
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    plt.close(fig)
    return target


def write_index(results: list, out_dir: str | Path, *, title: str = "mlkit course", metric: str | None = None) -> Path:
    """Write ``out_dir/index.html`` (runs with status, duration, parameters, key figures, links,
    and a plot of one metric) and ``out_dir/runs.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in results:
        target = r.html or r.output
        link = os.path.relpath(target, out_dir) if Path(target).is_absolute() else Path(target).name
        figures = ", ".join(f"{html.escape(str(k))} = {html.escape(str(v))}" for k, v in sorted(r.metrics.items()))
        params = ", ".join(f"{k}={v}" for k, v in r.parameters.items() if k != "output_dir")
        error = ""
        if r.error.get("ename"):
            error = html.escape(f"cell {r.error.get('cell')}: {r.error.get('ename')}: {r.error.get('evalue')}")
        rows.append(
            f"<tr class='{html.escape(r.status)}'><td>{html.escape(r.run_id or '')}</td>"
            f"<td><a href='{html.escape(link)}'>{html.escape(r.notebook)}</a></td>"
            f"<td>{html.escape(params) or 'defaults'}</td><td>{html.escape(r.status)}</td>"
            f"<td>{r.duration_s:.1f} s</td><td>{figures or '&ndash;'}</td><td>{error}</td></tr>"
        )
    ok = sum(r.status == "ok" for r in results)
    chosen = choose_metric(results, metric)
    figure = ""
    if chosen:
        png = plot_metric(results, chosen, out_dir / "metric.png")
        if png:
            figure = (
                f"<h2>{html.escape(chosen)} across the grid</h2>"
                f"<img src='metric.png' alt='{html.escape(chosen)} for each run'>"
            )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; }}
tr.ok td:nth-child(4) {{ color: #176d2e; }} tr.failed td:nth-child(4), tr.interrupted td:nth-child(4) {{ color: #b00020; font-weight: bold; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{ok} of {len(results)} notebooks ran without error.</p>
<table><thead><tr><th>run</th><th>notebook</th><th>parameters</th><th>status</th><th>duration</th><th>key figures</th><th>error</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
{figure}
</body></html>
"""
    target = out_dir / "index.html"
    target.write_text(page, encoding="utf-8")
    write_runs(results, out_dir)
    return target


def write_runs(results: list, out_dir: str | Path) -> Path:
    """Write ``out_dir/runs.json`` atomically, so an interrupt never leaves it half-written."""
    target = Path(out_dir) / "runs.json"
    tmp = target.with_name("runs.json.tmp")
    tmp.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target
