"""Self-contained HTML reports: tables and matplotlib figures embedded as PNG, no JavaScript, no network.

A report is a list of sections (a heading, a paragraph, a table or a figure); :func:`render`
writes one HTML file that opens anywhere, offline, and can be attached to an e-mail or a
ticket as it is.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Report", "figure_png"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.verdict { font-size: 1.1rem; padding: 0.5rem 1rem; border-left: 0.4rem solid #888; background: #f7f7f7; }
.bad { border-color: #c0392b; } .good { border-color: #27ae60; }
img { max-width: 100%; }
"""


def figure_png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is closed afterwards)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


@dataclass
class Report:
    """An HTML report built section by section.

    Examples
    --------
    >>> report = Report("Drift")
    >>> report.text("Nothing drifted.", verdict="good")
    >>> "<h1>Drift</h1>" in report.html() and "<script" not in report.html()
    True
    """

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str) -> None:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")

    def text(self, text: str, *, verdict: str | None = None) -> None:
        """A paragraph; ``verdict`` "good" or "bad" frames it in green or red."""
        css = f' class="verdict {verdict}"' if verdict else ""
        self.parts.append(f"<p{css}>{html.escape(text)}</p>")

    def table(self, frame: pd.DataFrame, *, digits: int = 4) -> None:
        self.parts.append(frame.round(digits).to_html(index=False, border=0, na_rep="", escape=True))

    def figure(self, fig: Any, alt: str) -> None:
        """Embed a matplotlib figure as a PNG data URI; ``alt`` says what it shows."""
        data = base64.b64encode(figure_png(fig)).decode("ascii")
        self.parts.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')

    def html(self) -> str:
        body = "\n".join(self.parts)
        return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(self.title)}"
                f"</title><style>{_STYLE}</style></head>\n<body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n")

    def write(self, path: Any) -> None:
        """Write the report to ``path`` (UTF-8), creating its folder."""
        from pathlib import Path

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html(), encoding="utf-8")
