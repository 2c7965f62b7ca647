"""Draw the Hyperband ledger's figures: successive halving, best so far, hyperparameters.

Each `plot_*` function takes the ledgers it shows (see study.ledger) and a
path, and saves one PNG in report.plotting's style. `draw_ledger_figures`
draws them for a run whose results contain ledgers and skips them otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter, PercentFormatter

from report.formatting import format_value, humanize_key
from report.layout import ledger_hyperparameters_key
from report.ledger import (
    best_so_far,
    best_trial,
    model_ledgers,
    scored_trials,
    varying_hyperparameters,
)
from report.plotting import WIDTH, plain, save_figure, styled

LABELLED_TRIALS = 40  # panels with more trials than this drop the trial-id tick labels
PANEL_COLUMNS = 3  # hyperparameter panels per row
CATEGORY_CHARS = 14  # choice labels longer than this in all are drawn at a slant
FAILED_COLOUR = "#c0392b"


def _bracket_colours(ledgers: Sequence[dict]) -> dict[int, tuple]:
    brackets = sorted({trial["bracket"] for ledger in ledgers for trial in ledger["trials"]},
                      reverse=True)
    return dict(zip(brackets, sns.color_palette("colorblind", len(brackets))))


def _draw_trial_lines(axes: plt.Axes, ledger: dict, colours: dict[int, tuple]) -> None:
    """Draw one row per trial: planned span faint, trained span solid, end marker, promotions."""
    rows = {trial["trial_id"]: row for row, trial in enumerate(ledger["trials"])}
    best = best_trial(ledger)
    for row, trial in enumerate(ledger["trials"]):
        colour = colours[trial["bracket"]]
        start, target = trial["initial_epoch"], trial["target_epochs"] or trial["initial_epoch"]
        # A trial without a run record ends at its target epoch if it completed.
        end = trial["final_epoch"]
        if end is None:
            end = target if trial["status"] == "COMPLETED" else start
        axes.plot([start, target], [row, row], color=colour, alpha=0.25, linewidth=1.2)
        axes.plot([start, end], [row, row], color=colour, linewidth=2.4,
                  solid_capstyle="butt")
        if trial["outcome"] == "failed":
            axes.plot([end], [row], marker="x", color=FAILED_COLOUR, markersize=6)
        elif trial.get("stopped_by"):
            axes.plot([end], [row], marker="D", markerfacecolor="white", color="0.15",
                      markersize=4.5)
        else:
            axes.plot([end], [row], marker="o", color=colour, markersize=3.5)
        if best is not None and trial["trial_id"] == best["trial_id"]:
            # Just right of the end marker, so both stay visible.
            axes.plot([end + 0.04 * (ledger["max_epochs"] + 1)], [row], marker="*",
                      color="black", markersize=9)
        parent = rows.get(trial["parent_trial_id"] or "")
        if parent is not None:
            before = ledger["trials"][parent]
            parent_end = before["final_epoch"] if before["final_epoch"] is not None else start
            axes.plot([parent_end, start], [parent, row], color="0.45", linestyle=":",
                      linewidth=1.0)


@styled
def plot_successive_halving(models: Sequence[tuple[str, dict]], path: Path) -> None:
    """Draw each search's trials as rows of epoch spans, one panel per model.

    `models` contains (label, ledger) pairs. Rows follow the order the trials
    ran, top to bottom, and colours follow the Hyperband bracket.
    """
    colours = _bracket_colours([ledger for _, ledger in models])
    largest = max(len(ledger["trials"]) for _, ledger in models)
    height = max(2.4, 0.16 * largest + 1.3)
    figure, grid = plt.subplots(1, len(models), figsize=(WIDTH, height), squeeze=False)
    for column, (label, ledger) in enumerate(models):
        axes = grid[0, column]
        _draw_trial_lines(axes, ledger, colours)
        count = len(ledger["trials"])
        axes.set_ylim(count - 0.5, -0.5)
        if count <= LABELLED_TRIALS:
            axes.set_yticks(range(count), [trial["trial_id"] for trial in ledger["trials"]],
                            fontsize=6.5)
        else:
            axes.set_yticks([])
        axes.set_xlim(-0.2, ledger["max_epochs"] * 1.08 + 0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_xlabel("epoch")
        axes.set_ylabel("trial, in the order run")
        axes.set_title(plain(label))
    handles = [Line2D([], [], color=colour, linewidth=2.4, label=f"bracket {bracket}")
               for bracket, colour in colours.items()]
    handles += [
        Line2D([], [], linestyle="", marker="x", color=FAILED_COLOUR, label="failed"),
        Line2D([], [], linestyle="", marker="D", markerfacecolor="white", color="0.15",
               label="stopped by a guard"),
        Line2D([], [], linestyle="", marker="*", color="black", markersize=9,
               label="best trial"),
        Line2D([], [], linestyle=":", color="0.45", label="promoted"),
    ]
    figure.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  ncol=min(len(handles), 4), frameon=False)
    figure.tight_layout()
    save_figure(figure, path)


@styled
def plot_best_so_far(models: Sequence[tuple[str, dict]], path: Path) -> None:
    """Draw the best validation accuracy so far against cumulative epochs, one line per model."""
    figure, axes = plt.subplots(figsize=(WIDTH, 2.6))
    colours = sns.color_palette("colorblind", len(models))
    for colour, (label, ledger) in zip(colours, models):
        epochs, best = best_so_far(ledger)
        points = [(epoch, value) for epoch, value in zip(epochs, best) if value is not None]
        if not points:
            continue
        x, y = zip(*points)
        axes.step(x, y, where="post", color=colour, label=plain(label))
        axes.plot([x[-1]], [y[-1]], marker="o", color=colour, markersize=4)
    axes.set_xlim(left=0)
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("epochs trained by all trials so far")
    axes.set_ylabel("best validation accuracy")
    axes.legend(frameon=False, loc="lower right")
    save_figure(figure, path)


def _epoch_palette(trials: Sequence[dict]) -> dict[int, tuple]:
    epochs = sorted({trial["target_epochs"] for trial in trials})
    return dict(zip(epochs, sns.color_palette("viridis", len(epochs))))


def _categories(entry: dict, values: list) -> list[str]:
    # Category labels in the order of the space's choices, then any others.
    order = [format_value(value) for value in entry.get("values") or []]
    order += [label for label in dict.fromkeys(format_value(value) for value in values)
              if label not in order]
    present = {format_value(value) for value in values}
    return [label for label in order if label in present]


def log_ticks(low: float, high: float) -> list[float]:
    """Return the ticks at 1, 2 and 5 per decade within [low, high], or the two ends.

    Past five such ticks only the powers of ten are kept. The ends, to two
    significant digits, stand in when the range contains fewer than two ticks,
    as a learning rate from 0.0011 to 0.0019 does.

    >>> log_ticks(0.0008, 0.03), log_ticks(0.0011, 0.0019), log_ticks(1e-5, 0.2)
    ([0.001, 0.002, 0.005, 0.01, 0.02], [0.0011, 0.0019], [1e-05, 0.0001, 0.001, 0.01, 0.1])
    """
    ticks = [float(f"{mantissa * 10.0 ** exponent:.1g}")
             for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
             for mantissa in (1, 2, 5)]
    inside = [tick for tick in ticks if low <= tick <= high]
    if len(inside) > 5:
        inside = [tick for tick in inside if f"{tick:.0e}".startswith("1")]
    return inside if len(inside) >= 2 else [float(f"{low:.2g}"), float(f"{high:.2g}")]


def _log_axis(axes: plt.Axes, values: list[float]) -> None:
    # Labelled as plain numbers: the report's style turns mathtext off, so the
    # default "10^-3" labels would not render.
    axes.set_xscale("log")
    axes.set_xticks(log_ticks(min(values), max(values)))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(NullFormatter())


def _hyperparameter_panel(axes: plt.Axes, entry: dict, trials: list[dict],
                          palette: dict[int, tuple]) -> None:
    name = entry["name"]
    present = [trial for trial in trials if name in trial["hyperparameters"]]
    values = [trial["hyperparameters"][name] for trial in present]
    scores = [trial["score"] for trial in present]
    hues = [trial["target_epochs"] for trial in present]
    if entry["kind"] in ("float", "int"):
        sns.scatterplot(x=values, y=scores, hue=hues, palette=palette, legend=False, s=18,
                        ax=axes)
        if entry.get("log") and min(values) > 0:
            _log_axis(axes, values)
        else:
            # At most four ticks, in compact notation, so that labels such as
            # 0.00125 do not run into each other in a narrow panel.
            axes.xaxis.set_major_locator(MaxNLocator(4, integer=entry["kind"] == "int"))
            axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
    else:
        labels = [format_value(value) for value in values]
        order = _categories(entry, values)
        sns.stripplot(x=labels, y=scores, hue=hues, palette=palette, order=order,
                      legend=False, size=4, jitter=0.18, ax=axes)
        if sum(len(label) for label in order) > CATEGORY_CHARS:
            axes.tick_params(axis="x", labelrotation=25)
            for tick in axes.get_xticklabels():
                tick.set_horizontalalignment("right")
                tick.set_rotation_mode("anchor")
    title = humanize_key(name)
    axes.set_title(plain(title[:1].upper() + title[1:], 28))
    axes.set_xlabel("")
    axes.set_ylabel("")
    # One decimal: the scores of a short search often lie within a few points.
    axes.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))


@styled
def plot_hyperparameter_scores(ledger: dict, path: Path) -> None:
    """Draw each completed trial's score against each hyperparameter that varies.

    Numeric hyperparameters searched on a log scale get a log axis;
    categorical and boolean ones are strip plots. Colour gives the epoch a
    trial trained up to.
    """
    trials = scored_trials(ledger)
    varying = varying_hyperparameters(ledger)
    columns = min(PANEL_COLUMNS, len(varying))
    rows = math.ceil(len(varying) / columns)
    figure, grid = plt.subplots(rows, columns, figsize=(WIDTH, 1.9 * rows + 0.5),
                                squeeze=False, sharey=True)
    palette = _epoch_palette(trials)
    for index, axes in enumerate(grid.flat):
        if index >= len(varying):
            axes.set_visible(False)
            continue
        _hyperparameter_panel(axes, varying[index], trials, palette)
    for row in range(rows):
        grid[row, 0].set_ylabel("validation accuracy")
    handles = [Line2D([], [], linestyle="", marker="o", color=colour,
                      label=f"trained to epoch {epochs}") for epochs, colour in palette.items()]
    figure.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                  ncol=min(len(handles), 4), frameon=False)
    figure.tight_layout()
    save_figure(figure, path)


def draw_ledger_figures(results: dict, target: Callable[[str], Path]) -> None:
    """Draw the ledger figures of every model with a ledger; `target(key)` gives each path.

    A model gets a hyperparameter figure only when some hyperparameter
    differs between its completed trials.
    """
    ledgers = model_ledgers(results)
    if not ledgers:
        return
    models = [(model["label"], ledger) for _, model, ledger in ledgers]
    plot_successive_halving(models, target("ledger_halving"))
    plot_best_so_far(models, target("ledger_best_so_far"))
    for key, _, ledger in ledgers:
        if varying_hyperparameters(ledger):
            plot_hyperparameter_scores(ledger, target(ledger_hyperparameters_key(key)))
