"""Charts as inline SVG, drawn with matplotlib (Agg, no display, no network).

SVG, not PNG, so the charts stay sharp when printed and weigh a few kilobytes; inline, so the
site opens from disk as one folder with nothing to fetch. Text is kept as SVG ``<text>`` (not
paths) so that a test, a screen reader and a search in the page can read the numbers. Only
the grader's own words and numbers go into a chart, never a student's string, and the SVG is
checked to hold no script before it is inlined.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_FORBIDDEN = re.compile(r"<script|\bon\w+\s*=|javascript:|<foreignObject", re.I)
WIDTH, HEIGHT = 6.4, 3.0


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "svg.fonttype": "none",  # text as <text>, readable and searchable
        "svg.hashsalt": "mpgrade-report",  # the same ids on every run: reproducible pages
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    })
    return plt


def _svg(fig: Any, label: str) -> str:
    """The figure as an ``<svg>`` element with an accessible label, the prolog removed."""
    plt = _pyplot()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = _PROLOG.sub("", buf.getvalue(), count=1)
    if _FORBIDDEN.search(text):  # labels are plain text and escaped: never expected
        return f'<p class="note">(the chart "{_attr(label)}" was left out)</p>'
    return text.replace("<svg ", f'<svg role="img" aria-label="{_attr(label)}" ', 1)


def _attr(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def plain(text: str, limit: int = 60) -> str:
    """A label matplotlib draws as it is: printable characters only, ``$`` not read as math
    (mathtext would parse it and may raise), cut to ``limit`` characters."""
    clean = "".join(c if c.isprintable() else "?" for c in str(text))
    if len(clean) > limit:
        clean = clean[: limit - 1] + "…"
    return clean.replace("$", r"\$")


def histogram(scores: Sequence[float], max_score: float, *, bins: int = 10) -> str:
    """Score distribution: ``bins`` equal ranges from 0 to ``max_score``, each bar's count on it."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    top = max_score or max(scores, default=1.0) or 1.0
    edges = [top * i / bins for i in range(bins + 1)]
    counts, _, bars = ax.hist(list(scores), bins=edges, color="#3b6ea8", edgecolor="white")
    for count, bar in zip(counts, bars, strict=True):
        if count:
            ax.annotate(f"{int(count)}", (bar.get_x() + bar.get_width() / 2, count),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xlabel(f"score (of {top:g})")
    ax.set_ylabel("submissions")
    ax.set_xlim(0, top)
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _svg(fig, "Histogram of scores")


def bars(labels: Sequence[str], values: Sequence[float], *, xlabel: str, limit: float | None = None,
         label: str, color: str = "#3b6ea8") -> str:
    """Horizontal bars, one per label (pass rate per test, mean per exercise), top to bottom."""
    plt = _pyplot()
    height = max(1.6, 0.22 * len(labels) + 0.8)
    fig, ax = plt.subplots(figsize=(WIDTH, height))
    positions = list(range(len(labels)))[::-1]
    ax.barh(positions, list(values), color=color)
    ax.set_yticks(positions, [plain(t) for t in labels], fontsize=7)
    if limit is not None:
        ax.set_xlim(0, limit)
    ax.set_xlabel(plain(xlabel))
    return _svg(fig, label)


def scatter(xs: Sequence[float], ys: Sequence[float], *, xlabel: str, ylabel: str, label: str) -> str:
    """Score against grading time: long runs that score low are the hangs."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    ax.scatter(list(xs), list(ys), s=14, alpha=0.7, color="#3b6ea8", edgecolors="none")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    return _svg(fig, label)
