"""Matplotlib figures the notebooks share: the lifecycle map and the usual data and model plots.

Each function draws one figure with a title, labelled axes (with units) and a legend where
one is needed, and returns the :class:`~matplotlib.figure.Figure` (for whole diagrams) or the
:class:`~matplotlib.axes.Axes` it drew on (for plots that accept ``ax=``), so a notebook can
add to it. Nothing here calls ``plt.show()``: the notebook decides when to show, and the
caller closes figures it no longer needs (``plt.close(fig)``).

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import matplotlib.pyplot as plt
>>> import pandas as pd
>>> ax = class_balance(pd.Series([0, 0, 0, 1]))
>>> ax.get_title()
'Class balance of the target'
>>> plt.close(ax.figure)
"""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = [
    "LIFECYCLE",
    "lifecycle_map",
    "missing_values",
    "class_balance",
    "target_distribution",
    "target_over_time",
    "model_comparison",
]

LIFECYCLE: tuple[tuple[str, str], ...] = (
    ("00", "data"),
    ("01", "training"),
    ("02", "validation"),
    ("03", "testing"),
    ("04", "packaging\n& registry"),
    ("05", "deploy\non-premise"),
    ("06", "deploy\ncloud"),
    ("07", "deploy\nhybrid"),
    ("08", "monitoring"),
    ("09", "adjustment"),
    ("10", "retraining"),
)
"""The lifecycle stages in order, as (notebook number, stage label)."""

_FIGSIZE = (7, 4)
_BOX = {"build": "#dbe9f6", "deploy": "#fde6c8", "operate": "#dff0d8"}


def _new_axes(ax: Axes | None, figsize: tuple[float, float] = _FIGSIZE) -> Axes:
    """Return ``ax``, or the axes of a new figure of ``figsize``."""
    if ax is not None:
        return ax
    _, ax = plt.subplots(figsize=figsize)
    return ax


def _box(ax: Axes, x: float, y: float, number: str, label: str, colour: str, w: float = 1.5, h: float = 0.9) -> None:
    """Draw one lifecycle box centred on (x, y): the stage label and its notebook number."""
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor=colour, edgecolor="#333333", linewidth=1.0,
        )
    )
    ax.text(x, y + 0.1, label, ha="center", va="center", fontsize=8.5)
    ax.text(x, y - h / 2 + 0.13, f"notebook {number}", ha="center", va="center", fontsize=6.5, color="#555555")


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], **kwargs) -> None:
    ax.add_patch(
        FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=11, linewidth=1.1, color="#333333", **kwargs)
    )


def lifecycle_map(*, figsize: tuple[float, float] = (10, 4)) -> Figure:
    """Draw the model lifecycle as boxes and arrows, each box labelled with its notebook.

    Data flows through training, validation, testing and packaging to one of three
    deployments (on-premise, cloud, hybrid); monitoring, adjustment and retraining follow,
    and retraining loops back to training.

    Parameters
    ----------
    figsize
        Width and height of the figure, in inches.

    Returns
    -------
    matplotlib.figure.Figure
        The diagram, with a title and no axes frame.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig = lifecycle_map()
    >>> fig.axes[0].get_title()
    'The model lifecycle, one notebook per stage'
    >>> plt.close(fig)
    """
    fig, ax = plt.subplots(figsize=figsize)
    stages = {label: number for number, label in LIFECYCLE}
    top, bottom, half = 3.3, 0.1, 0.75
    # Top row, left to right: building the model.
    build = ["data", "training", "validation", "testing", "packaging\n& registry"]
    xs = [0.9, 2.8, 4.7, 6.6, 8.5]
    for x, label in zip(xs, build):
        _box(ax, x, top, stages[label], label, _BOX["build"])
    for a, b in zip(xs, xs[1:]):
        _arrow(ax, (a + half, top), (b - half, top))
    # Right column: the three ways to deploy (any one of them), joined by a line to monitoring.
    deploy_x, deploy_ys, bus_x = 10.9, [3.3, 2.25, 1.2], 11.95
    for y, label in zip(deploy_ys, ["deploy\non-premise", "deploy\ncloud", "deploy\nhybrid"]):
        _box(ax, deploy_x, y, stages[label], label, _BOX["deploy"], h=0.8)
        _arrow(ax, (xs[-1] + half, top), (deploy_x - half, y))
        ax.plot([deploy_x + half, bus_x], [y, y], color="#333333", linewidth=1.1)
    ax.text(deploy_x, top + 0.45, "one of", ha="center", va="bottom", fontsize=7.5, style="italic")
    ax.plot([bus_x, bus_x], [deploy_ys[0], bottom], color="#333333", linewidth=1.1)
    # Bottom row, right to left: operating the model.
    operate = ["monitoring", "adjustment", "retraining"]
    oxs = [8.5, 6.6, 4.7]
    for x, label in zip(oxs, operate):
        _box(ax, x, bottom, stages[label], label, _BOX["operate"])
    _arrow(ax, (bus_x, bottom), (oxs[0] + half, bottom))
    for a, b in zip(oxs, oxs[1:]):
        _arrow(ax, (a - half, bottom), (b + half, bottom))
    # Retraining loops back to training.
    _arrow(ax, (oxs[-1] - half, bottom), (xs[1], top - 0.45), connectionstyle="angle,angleA=180,angleB=90,rad=8")
    ax.text(xs[1] - 0.1, (top + bottom) / 2, "loop back", ha="right", va="center", fontsize=7.5, style="italic")
    ax.set_xlim(0, 12.2)
    ax.set_ylim(-0.45, 4.0)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("The model lifecycle, one notebook per stage")
    fig.tight_layout()
    return fig


def missing_values(df: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Bar chart of the share of missing values per column (only columns with any).

    Parameters
    ----------
    df
        The data.
    ax
        Axes to draw on; a new (7, 4) figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes
        With a title and axis labels; when no value is missing, it says so in the middle.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> ax = missing_values(pd.DataFrame({"a": [1.0, None], "b": [1, 2]}))
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['a']
    >>> plt.close(ax.figure)
    """
    ax = _new_axes(ax)
    share = df.isna().mean().mul(100)
    share = share[share > 0].sort_values()
    if share.empty:
        ax.text(0.5, 0.5, f"no missing values in any of the {df.shape[1]} columns", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_yticks([])
        ax.set_xlim(0, 100)
    else:
        ax.barh([str(c) for c in share.index], share.to_numpy(), color="#4c72b0")
        for y, v in enumerate(share.to_numpy()):
            ax.text(v, y, f" {v:.1f}%", va="center", fontsize=8)
        ax.set_xlim(0, min(100, share.max() * 1.25 + 1))
    ax.set_title("Missing values per column")
    ax.set_xlabel("missing values (% of rows)")
    ax.set_ylabel("column")
    return ax


def class_balance(y: pd.Series, ax: Axes | None = None, *, title: str = "Class balance of the target") -> Axes:
    """Horizontal bars of how many rows each class has, annotated with its share.

    Rare classes (1% fraud) get a visible count and percentage even when the bar is thin.

    Parameters
    ----------
    y
        The target column (any labels; missing values are not counted).
    ax
        Axes to draw on; a new (7, 4) figure when omitted.
    title
        The title.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> ax = class_balance(pd.Series(["a", "b", "b"], name="label"))
    >>> ax.get_xlabel(), ax.get_ylabel()
    ('rows (count)', 'label')
    >>> plt.close(ax.figure)
    """
    ax = _new_axes(ax)
    counts = pd.Series(y).value_counts().sort_index()
    total = counts.sum()
    labels = [str(c) for c in counts.index]
    ax.barh(labels, counts.to_numpy(), color="#4c72b0")
    for i, n in enumerate(counts.to_numpy()):
        ax.text(n, i, f" {n} ({n / total:.1%})", va="center", fontsize=8)
    ax.set_xlim(0, counts.max() * 1.3)
    ax.set_title(title)
    ax.set_xlabel("rows (count)")
    ax.set_ylabel(str(y.name) if getattr(y, "name", None) is not None else "class")
    return ax


def target_distribution(y: pd.Series, ax: Axes | None = None, *, bins: int = 40, unit: str = "") -> Axes:
    """Histogram of a numeric target, with its mean and median marked.

    Parameters
    ----------
    y
        The numeric target.
    ax
        Axes to draw on; a new (7, 4) figure when omitted.
    bins
        Number of histogram bins.
    unit
        Unit of the target for the x label, e.g. ``"units"``; the column name is used as is when empty.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> ax = target_distribution(pd.Series([1.0, 2.0, 2.0, 5.0], name="sales"))
    >>> ax.get_title(), ax.get_ylabel()
    ('Distribution of sales', 'rows (count)')
    >>> plt.close(ax.figure)
    """
    ax = _new_axes(ax)
    values = pd.Series(y).dropna().astype(float)
    name = str(y.name) if getattr(y, "name", None) is not None else "target"
    ax.hist(values.to_numpy(), bins=bins, color="#4c72b0", alpha=0.85)
    ax.axvline(values.mean(), color="#c44e52", linestyle="--", label=f"mean {values.mean():.3g}")
    ax.axvline(values.median(), color="#333333", linestyle=":", label=f"median {values.median():.3g}")
    ax.legend()
    ax.set_title(f"Distribution of {name}")
    ax.set_xlabel(f"{name} ({unit})" if unit else name)
    ax.set_ylabel("rows (count)")
    return ax


def target_over_time(
    df: pd.DataFrame, time_column: str, target: str, ax: Axes | None = None, *, max_points: int = 800
) -> Axes:
    """Line of the target's mean per time step (per day when there are many steps).

    Rows that share a time (several stores on one day) are averaged; a datetime axis with
    more than ``max_points`` steps is resampled to daily means so the line stays readable,
    leaving out days cut off at either end (under half the usual number of steps).

    Parameters
    ----------
    df
        The data.
    time_column
        The column that orders rows in time (datetime or numeric).
    target
        The numeric target column.
    ax
        Axes to draw on; a new (7, 4) figure when omitted.
    max_points
        Resample datetimes to days above this many distinct times.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> frame = pd.DataFrame({"t": pd.date_range("2024-01-01", periods=4, freq="D"), "y": [1, 2, 3, 4]})
    >>> ax = target_over_time(frame, "t", "y")
    >>> ax.get_ylabel()
    'mean y per day'
    >>> plt.close(ax.figure)
    """
    ax = _new_axes(ax)
    per_time = df.groupby(time_column, sort=True)[target].mean()
    step = "time step"
    if pd.api.types.is_datetime64_any_dtype(per_time.index):
        if len(per_time) > max_points:
            steps_per_day = per_time.resample("D").count()
            daily = per_time.resample("D").mean()
            # A day with less than half the usual number of steps (the first or last, cut off) would dip.
            per_time = daily[steps_per_day >= steps_per_day.median() / 2].dropna()
            step = "day"
        else:
            diffs = per_time.index.to_series().diff().dropna()
            if not diffs.empty and diffs.min() >= pd.Timedelta(days=1):
                step = "day"
            elif not diffs.empty and diffs.min() >= pd.Timedelta(hours=1):
                step = "hour"
    ax.plot(per_time.index, per_time.to_numpy(), color="#4c72b0", linewidth=0.9)
    ax.set_title(f"{target} over time")
    ax.set_xlabel(f"{time_column} ({'date' if pd.api.types.is_datetime64_any_dtype(per_time.index) else 'order'})")
    ax.set_ylabel(f"mean {target} per {step}")
    if pd.api.types.is_datetime64_any_dtype(per_time.index):
        ax.figure.autofmt_xdate()
    return ax


def model_comparison(
    scores: Mapping[str, float],
    *,
    metric: str,
    greater_is_better: bool = True,
    dataset: str = "validation",
    ax: Axes | None = None,
) -> Axes:
    """Horizontal bars of one metric per model, the best one highlighted.

    Parameters
    ----------
    scores
        Model name -> metric value, in the order to draw them (top to bottom).
    metric
        The metric's name, for the title and x label.
    greater_is_better
        Which direction is better (the best bar is highlighted, and the label says it).
    dataset
        Which rows were scored, for the title (``"validation"``, ``"test"``...).
    ax
        Axes to draw on; a new (7, 4) figure when omitted.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> ax = model_comparison({"baseline": 0.5, "linear": 0.8}, metric="roc_auc")
    >>> ax.get_xlabel()
    'roc_auc (higher is better)'
    >>> plt.close(ax.figure)
    """
    if not scores:
        raise ValueError("model_comparison needs at least one model's score.")
    ax = _new_axes(ax)
    names = list(scores)[::-1]
    values = np.array([float(scores[n]) for n in names])
    best = np.nanargmax(values) if greater_is_better else np.nanargmin(values)
    colours = ["#dd8452" if i == best else "#4c72b0" for i in range(len(names))]
    ax.barh(names, values, color=colours)
    span = np.nanmax(np.abs(values)) or 1.0
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
    low = min(0.0, float(np.nanmin(values)) * 1.3)
    ax.set_xlim(low, span * 1.2)
    ax.set_title(f"{metric} on the {dataset} set, by model (best in orange)")
    ax.set_xlabel(f"{metric} ({'higher' if greater_is_better else 'lower'} is better)")
    ax.set_ylabel("model")
    return ax
