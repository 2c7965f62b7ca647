"""The report's plotting style and the helpers every figure module shares.

All figure modules (figures, calibration, robustness, ledger_figures) draw
under `STYLE` through the `styled` decorator, save with `save_figure`, and
take colours from `palette`, so the figures look alike and none of those
modules imports another.
"""

from __future__ import annotations

import functools
import math
import textwrap
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns

DPI = 150
WIDTH = 6.8  # inches, the printed column width
LABEL_CHARS = 18  # longer class names are cut with an ellipsis in tick labels and titles

STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7.5,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": DPI,
    # Class names and labels come from the data, so "$" in them is text, never
    # mathtext: "a$b$c" would lose its dollars and "x$^$" would not render.
    "text.parse_math": False,
}
CHANNEL_COLOURS = {"red": "#c0392b", "green": "#27ae60", "blue": "#2e6bc7"}


def styled(function: Callable) -> Callable:
    """Run a plot function under the report's rc settings."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with plt.rc_context(STYLE):
            return function(*args, **kwargs)
    return wrapper


def plain(text: str, limit: int | None = None) -> str:
    """Shorten user text to `limit` characters and keep it visible in legends.

    Matplotlib drops legend labels that start with "_", so a leading "_" gets
    a space before it. Dollar signs need no escaping because STYLE turns
    mathtext off, so only functions decorated with `styled` may draw the result.
    """
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return " " + text if text.startswith("_") else text


def short_title(text: str, width: int) -> str:
    """Wrap a class name onto at most two lines of `width` characters for a panel title."""
    lines = textwrap.wrap(str(text), width) or [""]
    if len(lines) > 2:
        lines = [lines[0], plain(" ".join(lines[1:]), width)]
    return "\n".join(plain(line) for line in lines)


def save_figure(figure: plt.Figure, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        figure.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    finally:
        plt.close(figure)


def palette(count: int) -> list:
    return sns.color_palette("colorblind", count)


def class_palette(count: int) -> list:
    # Distinct colours for up to 20 classes. Past that, colours repeat.
    name = "tab10" if count <= 10 else "tab20"
    return sns.color_palette(name, count)


def hide_axes(axes: plt.Axes) -> None:
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_visible(False)


def image_grid(images, titles: list[str], columns: int, cell: tuple[float, float],
               fontsize: float) -> plt.Figure:
    """Draw images in rows of at most `columns`, each under its title, and return the figure.

    `cell` is the width and height in inches given to each image with its title.
    """
    count = len(images)
    columns = min(count, columns)
    rows = math.ceil(count / columns)
    figure, grid = plt.subplots(rows, columns, figsize=(cell[0] * columns, cell[1] * rows),
                                squeeze=False)
    for index, axes in enumerate(grid.flat):
        hide_axes(axes)
        if index >= count:
            axes.set_visible(False)
            continue
        axes.imshow(images[index], interpolation="nearest")
        axes.set_title(titles[index], fontsize=fontsize)
    return figure
