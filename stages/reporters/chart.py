"""The rank-over-time chart: today's top N over the trend window, drawn by matplotlib as SVG.

matplotlib is an optional extra (``charts``); without it ``rank_chart_svg`` returns ``None``
and the reports say so in one line. The SVG is deterministic (no date, fixed ids), so a
rerun of a day with the same data writes the same bytes. Titles are drawn as SVG text,
which matplotlib escapes; math parsing is off, so a ``$`` in a title is only a ``$``.
It reads on GitHub's light and dark themes: transparent background, mid-grey text and
grid, and line colours of middling lightness.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import logging
import threading
import warnings
from typing import TYPE_CHECKING, Any

from pipeline.stage import LakeReader, RunLake
from pipeline.trends import FeedTrend, TitleTrend

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

MISSING_NOTE = "The rank chart needs the optional `charts` extra: `pip install 'tmdb-trending-pipeline[charts]'`."
SERIES_ID = "{salt}-series-{n}"
"""The SVG group id of a feed's n-th series (1-based), so a page or a test can find each title's line."""
_INK = "#8b949e"  # GitHub's muted text colour: readable on its white and its near-black backgrounds
# Tableau's ten, one step toward mid-lightness where they were very dark or very light.
_COLOURS = (
    "#4e8fd0",
    "#f28e2b",
    "#e15759",
    "#59a14f",
    "#c9a227",
    "#b07aa1",
    "#ff7f9f",
    "#9c755f",
    "#48b5ad",
    "#8f8fd9",
)
_LABEL_WIDTH = 32


def available() -> bool:
    """Whether matplotlib (the ``charts`` extra) is installed."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def legend_label(item: TitleTrend, width: int = _LABEL_WIDTH) -> str:
    """``3. Name (year)``, shortened to ``width`` characters; control characters become spaces."""
    text = "".join(c if c.isprintable() else " " for c in item.label)
    text = " ".join(text.split()) or f"id {item.id}"
    if len(text) > width:
        text = text[: width - 1].rstrip() + "…"
    return f"{item.rank}. {text}"


def alt_text(model: FeedTrend) -> str:
    """One sentence saying what the chart shows (for the image's alt text)."""
    days = len(model.dates)
    return f"Rank of today's top {len(model.top)} over the last {days} days; rank 1 at the top"


async def shared_chart(lake: LakeReader, model: FeedTrend, salt: str) -> str | None:
    """``rank_chart_svg`` off the event loop, drawn once per run however many reporters ask."""

    async def draw() -> str | None:
        return await asyncio.to_thread(rank_chart_svg, model, salt=salt)

    if isinstance(lake, RunLake):
        return await lake.shared(f"rank_chart:{id(model)}:{salt}", draw)
    return await draw()


def warm() -> None:
    """Import what drawing needs and load matplotlib's font list (built and cached on a machine's first use)."""
    if not available():
        return
    import matplotlib

    matplotlib.use("svg", force=False)
    from matplotlib import font_manager
    from matplotlib.backends import backend_svg  # noqa: F401  (savefig's format="svg" loads it)
    from matplotlib.figure import Figure  # noqa: F401

    font_manager.findfont(font_manager.FontProperties(family=["sans-serif"]))


_warming: concurrent.futures.Future[None] | None = None
_warming_lock = threading.Lock()


def _start_warming() -> concurrent.futures.Future[None]:
    """``warm`` once per process, in a thread of its own.

    Not a daemon thread: a run that ends meanwhile (failed, stopped) waits for it at exit, so the
    interpreter never halts it half-way through writing matplotlib's font cache and its lock file
    (a stale lock would stall the next run's chart). Awaiting ``prepare`` can be cancelled at once.
    """
    global _warming
    with _warming_lock:
        if _warming is None:
            future: concurrent.futures.Future[None] = concurrent.futures.Future()

            def target() -> None:
                if not future.set_running_or_notify_cancel():
                    return
                try:
                    warm()
                except BaseException as exc:  # handed to whoever awaits prepare()
                    future.set_exception(exc)
                else:
                    future.set_result(None)

            threading.Thread(target=target, name="chart-warm-up").start()
            _warming = future
        return _warming


async def prepare() -> None:
    """``warm`` off the event loop (a reporter's ``prepare``): the first chart of the run then draws at once."""
    await asyncio.wrap_future(_start_warming())


def rank_chart_svg(model: FeedTrend, *, salt: str = "") -> str | None:
    """The chart as SVG text, or ``None`` when matplotlib is not installed or there is nothing to draw."""
    if not model.top:
        return None
    if not available():
        logger.info("matplotlib is not installed: no rank chart (install the charts extra)")
        return None
    import matplotlib

    matplotlib.use("svg", force=False)  # no display needed; the svg backend is all we use
    rc: dict[Any, Any] = {
        "svg.hashsalt": f"tmdb-trend-{salt}",
        "svg.fonttype": "none",
        "text.parse_math": False,
        "font.family": "sans-serif",
        "font.size": 10,
        "text.color": _INK,
        "axes.labelcolor": _INK,
        "axes.edgecolor": _INK,
        "xtick.color": _INK,
        "ytick.color": _INK,
    }
    with matplotlib.rc_context(rc), warnings.catch_warnings():
        # the SVG keeps titles as text and the viewer's fonts draw them: a glyph DejaVu lacks is no problem
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        figure = _draw(model, salt)
        out = io.StringIO()
        figure.savefig(out, format="svg", transparent=True, metadata={"Date": None}, bbox_inches="tight")
    return out.getvalue()


def _draw(model: FeedTrend, salt: str = "") -> Figure:
    from matplotlib.figure import Figure

    n = model.top_n
    floor = max(n, max((r for t in model.top for r in t.ranks if r is not None and r <= 3 * n), default=n))
    figure = Figure(figsize=(10, 5), dpi=100)
    axes = figure.add_subplot()
    axes.set_facecolor("none")
    for day in model.holes:  # a day missing from the lake: a faint band, and the lines break there
        axes.axvspan(day.date.toordinal() - 0.5, day.date.toordinal() + 0.5, color=_INK, alpha=0.15, linewidth=0)
    x = [d.toordinal() for d in model.dates]
    for number, item in enumerate(model.top, start=1):
        y = [float("nan") if r is None or r > floor else float(r) for r in item.ranks]
        (line,) = axes.plot(
            x,
            y,
            color=_COLOURS[(number - 1) % len(_COLOURS)],
            linewidth=2,
            marker="o",
            markersize=3,
            label=legend_label(item),
        )
        line.set_gid(SERIES_ID.format(salt=salt, n=number))
    axes.set_ylim(floor + 0.5, 0.5)  # rank 1 at the top
    ticks = sorted({1, *range(5, floor + 1, 5), n})
    axes.set_yticks(ticks)
    axes.set_ylabel("Rank")
    step = max(1, -(-len(x) // 7))  # at most about seven date labels, the latest day always one of them
    shown = list(range(len(x) - 1, -1, -step))[::-1]
    axes.set_xticks([x[i] for i in shown], [model.dates[i].strftime("%b %d") for i in shown])
    axes.set_xlim(x[0] - 0.5, x[-1] + 0.5)
    axes.grid(True, color=_INK, alpha=0.25, linewidth=0.5)
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.set_title(f"Rank of today's top {len(model.top)}, {model.dates[0]} to {model.dates[-1]}", color=_INK)
    legend = axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    for text in legend.get_texts():
        text.set_color(_INK)
    return figure
