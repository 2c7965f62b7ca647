"""Draw the report's figures as PNG files with matplotlib and seaborn.

Each `plot_*` function takes only the data it shows and a path, saves one
PNG (report.plotting sets the style) and closes its figure. `draw_figures` calls them all for a run.
Figures are sized for a printed column of about 6.8 inches, so fonts stay
readable when the PDF shows them at full width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from matplotlib.ticker import PercentFormatter

from report.calibration import draw_calibration_figures
from report.formatting import format_score
from report.layout import (
    FILTER_IMAGES_SHOWN,
    FOURIER_CHANNEL,
    FOURIER_IMAGES_SHOWN,
    confusion_figure_key,
    figure_file,
)
from report.ledger_figures import draw_ledger_figures
from report.plotting import (
    CHANNEL_COLOURS,
    LABEL_CHARS,
    WIDTH,
    class_palette,
    hide_axes,
    image_grid,
    palette,
    plain,
    save_figure,
    short_title,
    styled,
)
from report.robustness import FIGURE_KEY, plot_robustness, robustness_curves

# ---- Data -----------------------------------------------------------------


@styled
def plot_class_balance(class_balance: Sequence[dict], path: Path) -> None:
    """Draw each class's share of the training and test images as horizontal bars."""
    names = [plain(entry["class"], LABEL_CHARS) for entry in class_balance]
    positions = np.arange(len(names))
    height = 0.38
    figure, axes = plt.subplots(figsize=(WIDTH, max(2.2, 0.32 * len(names) + 0.9)))
    train_colour, test_colour = palette(2)
    axes.barh(positions - height / 2, [entry["train_share"] for entry in class_balance],
              height, label="training", color=train_colour)
    axes.barh(positions + height / 2, [entry["test_share"] for entry in class_balance],
              height, label="test", color=test_colour)
    axes.set_yticks(positions, names)
    axes.margins(y=0.01)
    axes.invert_yaxis()
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("share of the split's images")
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    save_figure(figure, path)


@styled
def plot_pixel_histograms(counts: dict[str, Sequence[int]], path: Path) -> None:
    """Draw the number of pixels at each value 0-255 as one line per channel."""
    figure, axes = plt.subplots(figsize=(WIDTH, 2.6))
    for channel, values in counts.items():
        axes.plot(np.arange(len(values)), values, label=channel,
                  color=CHANNEL_COLOURS.get(channel), linewidth=1.1)
    axes.set_xlim(0, 255)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("pixel value")
    axes.set_ylabel("pixels")
    axes.ticklabel_format(axis="y", style="sci", scilimits=(0, 3))
    axes.legend(frameon=False)
    save_figure(figure, path)


@styled
def plot_samples(images: np.ndarray, labels: Sequence[int], class_names: Sequence[str],
                 path: Path) -> None:
    """Draw one image per class in a grid, titled with the class name."""
    titles = [short_title(class_names[int(label)], 16) for label in labels]
    figure = image_grid(images, titles, columns=5, cell=(1.3, 1.45), fontsize=8)
    save_figure(figure, path)


# ---- Fourier and filters ----------------------------------------------------


def _as_display_image(image: np.ndarray) -> np.ndarray:
    # float 0..255 (may overshoot) -> uint8 for imshow
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@styled
def plot_fourier(images: np.ndarray, log_amplitude: np.ndarray, phase: np.ndarray,
                 reconstruction: np.ndarray, labels: Sequence[int],
                 class_names: Sequence[str], path: Path,
                 channel: int = FOURIER_CHANNEL) -> None:
    """Draw image, log-amplitude, phase and reconstruction as four rows.

    Amplitude and phase are shown for one colour channel (`channel`, an RGB
    index). At most FOURIER_IMAGES_SHOWN images are drawn.
    """
    count = min(len(images), FOURIER_IMAGES_SHOWN)
    cell = min(1.1, WIDTH / max(count, 1))
    figure, grid = plt.subplots(4, count, figsize=(cell * count + 0.6, cell * 4 + 0.3),
                                squeeze=False)
    row_names = ("image", "log\namplitude", "phase", "recon-\nstruction")
    for column in range(count):
        panels = (
            (images[column], {"interpolation": "nearest"}),
            (log_amplitude[column, ..., channel], {"cmap": "magma"}),
            (phase[column, ..., channel], {"cmap": "twilight", "vmin": -np.pi, "vmax": np.pi}),
            (_as_display_image(reconstruction[column]), {"interpolation": "nearest"}),
        )
        for row, (picture, options) in enumerate(panels):
            axes = grid[row, column]
            hide_axes(axes)
            axes.imshow(picture, **options)
            if column == 0:
                axes.set_ylabel(row_names[row], fontsize=7, rotation=0, ha="right",
                                va="center")
        grid[0, column].set_title(short_title(class_names[int(labels[column])], 10),
                                  fontsize=6.5)
    figure.subplots_adjust(wspace=0.05, hspace=0.08)
    save_figure(figure, path)


def _rescale_high_pass(image: np.ndarray) -> np.ndarray:
    # Map 0 to mid-grey and the largest absolute value to the end of the 0..1 range.
    peak = float(np.max(np.abs(image)))
    if peak == 0.0:
        return np.full(image.shape, 0.5)
    return np.clip(0.5 + image / (2.0 * peak), 0.0, 1.0)


@styled
def plot_filtered(originals: np.ndarray, filtered: np.ndarray, widths: Sequence[float],
                  labels: Sequence[int], class_names: Sequence[str], path: Path,
                  *, high_pass: bool) -> None:
    """Draw the originals above one row of filtered images per filter width.

    `filtered` has shape (widths, images, H, W, 3). Low-pass images are
    clipped to 0..255. High-pass images are rescaled per image so that 0 is
    mid-grey. At most FILTER_IMAGES_SHOWN images are drawn.
    """
    count = min(len(originals), FILTER_IMAGES_SHOWN)
    rows = 1 + len(widths)
    cell = 1.15
    figure, grid = plt.subplots(rows, count, figsize=(cell * count + 0.9, cell * rows),
                                squeeze=False)
    for column in range(count):
        grid[0, column].imshow(originals[column], interpolation="nearest")
        grid[0, column].set_title(short_title(class_names[int(labels[column])], 14),
                                  fontsize=7.5)
        for row, width in enumerate(widths, start=1):
            image = filtered[row - 1, column]
            shown = _rescale_high_pass(image) if high_pass else _as_display_image(image)
            grid[row, column].imshow(shown, interpolation="nearest")
    for row in range(rows):
        for column in range(count):
            hide_axes(grid[row, column])
        name = "original" if row == 0 else f"width {widths[row - 1]:g}"
        grid[row, 0].set_ylabel(name, fontsize=8)
    figure.subplots_adjust(wspace=0.05, hspace=0.1)
    save_figure(figure, path)


# ---- Training and evaluation ---------------------------------------------------


@styled
def plot_learning_curves(curves: Sequence[tuple[str, dict, int]], path: Path) -> None:
    """Draw accuracy and loss per epoch, training and validation, one row per model.

    `curves` contains (label, history, best_epoch) per model, with `best_epoch`
    counted from 1. A dashed line and a star mark the best epoch.
    """
    train_colour, validation_colour = palette(2)
    figure, grid = plt.subplots(len(curves), 2, figsize=(WIDTH, 2.3 * len(curves) + 0.3),
                                squeeze=False)
    for row, (label, history, best_epoch) in enumerate(curves):
        for column, metric in enumerate(("accuracy", "loss")):
            axes = grid[row, column]
            train = history.get(metric, [])
            validation = history.get(f"val_{metric}", [])
            epochs = np.arange(1, max(len(train), len(validation)) + 1)
            axes.plot(epochs[: len(train)], train, marker="o", markersize=3,
                      color=train_colour, label="training")
            axes.plot(epochs[: len(validation)], validation, marker="s", markersize=3,
                      color=validation_colour, label="validation")
            if 1 <= best_epoch <= len(validation):
                axes.axvline(best_epoch, color="0.35", linestyle="--", linewidth=1,
                             label=f"best epoch ({best_epoch})")
                axes.plot([best_epoch], [validation[best_epoch - 1]], marker="*",
                          markersize=10, color=validation_colour)
            axes.set_title(f"{plain(label)}: {metric}")
            axes.set_xlabel("epoch")
            axes.xaxis.get_major_locator().set_params(integer=True)
            if metric == "accuracy":
                axes.yaxis.set_major_formatter(PercentFormatter(1.0))
            axes.legend(frameon=False, loc="best")
    figure.tight_layout()
    save_figure(figure, path)


@styled
def plot_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                          title: str, path: Path) -> None:
    """Draw a confusion matrix (rows true, columns predicted) with counts in each cell."""
    counts = np.asarray(matrix, dtype=int)
    classes = len(class_names)
    side = min(5.6, 1.4 + 0.38 * classes)
    annotation_size = 8
    if classes > 10:
        annotation_size = 6
    if classes > 15:
        annotation_size = 5
    names = [plain(name, LABEL_CHARS) for name in class_names]
    figure, axes = plt.subplots(figsize=(side + 0.8, side))
    sns.heatmap(counts, annot=True, fmt="d", cmap="Blues", square=True, cbar=True,
                cbar_kws={"label": "images", "shrink": 0.8}, linewidths=0.4,
                linecolor="white", annot_kws={"fontsize": annotation_size},
                xticklabels=names, yticklabels=names, ax=axes)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(plain(title))
    axes.tick_params(axis="x", labelrotation=45)
    for tick in axes.get_xticklabels():
        tick.set_horizontalalignment("right")
        tick.set_rotation_mode("anchor")
    axes.tick_params(axis="y", labelrotation=0)
    save_figure(figure, path)


@styled
def plot_roc(models: Sequence[tuple[str, dict]], class_names: Sequence[str],
             path: Path) -> None:
    """Draw one-vs-rest ROC curves, one panel per model, AUCs in the legends.

    Each panel shows every class with a defined curve, the micro-average
    (thick, dashed) and macro-average (thick, dotted) curves, and the chance
    diagonal.
    """
    colours = class_palette(len(class_names))
    columns = len(models)
    legend_rows = math.ceil((len(class_names) + 2) / 2)
    figure, grid = plt.subplots(1, columns, figsize=(WIDTH, 3.0 + 0.16 * legend_rows),
                                squeeze=False)
    for column, (label, roc) in enumerate(models):
        axes = grid[0, column]
        curves = roc["curves"]
        aucs = roc["per_class_auc"]
        for index, name in enumerate(class_names):
            curve = curves.get("per_class", {}).get(name)
            if curve is None or aucs.get(name) is None:
                continue
            axes.plot(curve["fpr"], curve["tpr"], linewidth=0.9, color=colours[index],
                      label=f"{plain(name, LABEL_CHARS)} ({format_score(aucs[name])})")
        for average, style in (("micro", "--"), ("macro", ":")):
            curve = curves.get(average)
            if curve is not None:
                axes.plot(curve["fpr"], curve["tpr"], linewidth=2.4, linestyle=style,
                          color="black" if average == "micro" else "0.4",
                          label=f"{average}-average "
                                f"({format_score(roc.get(f'{average}_auc'))})")
        axes.plot([0, 1], [0, 1], color="0.6", linewidth=0.8, linestyle="-.",
                  label="chance")
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.01)
        axes.set_aspect("equal")
        axes.set_xlabel("false positive rate")
        axes.set_ylabel("true positive rate")
        axes.set_title(plain(label))
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2,
                    frameon=False, fontsize=6.5, handlelength=1.8, columnspacing=1.0,
                    title="class (AUC)", title_fontsize=7)
    figure.tight_layout()
    save_figure(figure, path)


@styled
def plot_per_class_scores(scores: Sequence[tuple[str, Sequence[float]]],
                          class_names: Sequence[str], metric: str, path: Path) -> None:
    """Draw one horizontal bar per class and model for a score in [0, 1]."""
    positions = np.arange(len(class_names))
    height = 0.8 / max(len(scores), 1)
    colours = palette(len(scores))
    figure, axes = plt.subplots(figsize=(WIDTH, max(2.2, 0.32 * len(class_names) + 0.9)))
    for index, (label, values) in enumerate(scores):
        offset = (index - (len(scores) - 1) / 2) * height
        heights = [np.nan if value is None else value for value in values]
        axes.barh(positions + offset, heights, height, label=plain(label),
                  color=colours[index])
    # An undefined score (None) draws no bar, and its class label is marked undefined.
    undefined = [any(values[i] is None for _, values in scores) for i in positions]
    axes.set_yticks(positions, [plain(name, LABEL_CHARS) + (" (undefined)" if gap else "")
                                for name, gap in zip(class_names, undefined)])
    # Fixed limits, top to bottom: a class drawn without bars keeps its row.
    axes.set_ylim(len(class_names) - 0.5, -0.5)
    axes.set_xlim(0, 1)
    axes.set_xlabel(metric)
    axes.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(scores),
                frameon=False)
    save_figure(figure, path)


# ---- All figures of a run ------------------------------------------------------


def draw_figures(results: dict, arrays: dict[str, np.ndarray], site_dir: Path) -> dict[str, str]:
    """Draw every figure of a run under `site_dir` and return key -> relative path."""
    site_dir = Path(site_dir)
    class_names = results["data"]["class_names"]
    exploration = results["exploration"]
    models = list(results["models"].items())
    written: dict[str, str] = {}

    def target(key: str) -> Path:
        written[key] = figure_file(key)
        return site_dir / written[key]

    plot_class_balance(exploration["class_balance"], target("class_balance"))
    plot_pixel_histograms(exploration["pixels"]["counts"], target("pixel_histograms"))
    plot_samples(arrays["samples"], arrays["sample_labels"], class_names, target("samples"))
    plot_fourier(arrays["spectrum_images"], arrays["log_amplitude"], arrays["phase"],
                 arrays["reconstruction"], arrays["spectrum_labels"], class_names,
                 target("fourier"))
    widths = [float(width) for width in arrays["filter_widths"]]
    for key, high_pass in (("low_pass", False), ("high_pass", True)):
        plot_filtered(arrays["spectrum_images"], arrays[key], widths,
                      arrays["spectrum_labels"], class_names, target(key),
                      high_pass=high_pass)

    plot_learning_curves(
        [(model["label"], model["refit"]["history"], int(model["refit"]["best_epoch"]))
         for _, model in models],
        target("learning_curves"),
    )
    for key, model in models:
        plot_confusion_matrix(model["confusion_matrix"], class_names,
                              f"{model['label']} on the test images",
                              target(confusion_figure_key(key)))
    plot_roc([(model["label"], model["roc"]) for _, model in models], class_names,
             target("roc"))
    plot_per_class_scores(
        [(model["label"], [row["f1"] for row in model["per_class"]]) for _, model in models],
        class_names, "F1 score", target("per_class_f1"),
    )
    draw_calibration_figures(results, arrays, target)
    curves = robustness_curves(results)
    if curves:
        plot_robustness(curves, target(FIGURE_KEY))
    draw_ledger_figures(results, target)
    return written

