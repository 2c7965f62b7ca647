"""The report's frequency-robustness section: its chart, its table and its sentences.

It reads `models.<key>.robustness` from results.json, written by
study.robustness: each model's accuracy on a test sample without a filter
and through Gaussian low- and high-pass filters of several widths. A run
folder made before that record existed has no such key, and the section is
left out.

To compare models of different accuracy, the sentences use the share of a
model's margin over chance (its unfiltered accuracy minus 1 / classes) that
a filtered accuracy keeps, averaged over the widths. A model whose low-pass
share exceeds its high-pass share by more than the noise level leans on
low frequencies, and the reverse means it leans on high ones. As in
report.narrative, each comparison is made on the values as printed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import NullLocator, PercentFormatter

from report.formatting import (
    ACCURACY_DECIMALS,
    format_accuracy,
    format_count,
    format_percent,
    format_points,
    format_seconds,
    format_signed_points,
    join_words,
    round_accuracy,
    round_percent,
)
from report.plotting import WIDTH, palette, plain, save_figure, styled
from report.tables import TableView, model_items

FIGURE_KEY = "robustness"  # also listed last in report.layout.figure_keys
TABLE_KEY = "robustness"
# The shares are only read when the unfiltered accuracy exceeds chance by at
# least this many percentage points. Nearer chance they are mostly noise.
MIN_MARGIN_POINTS = 5.0
# Gaps smaller than this many approximate standard errors are reported as
# no lean, or as two models that respond alike.
NOISE_STANDARD_ERRORS = 2.0


def robustness_models(results: dict) -> list[tuple[str, dict]]:
    """Return the (key, model) pairs that have robustness scores, in results.json order."""
    return [(key, model) for key, model in model_items(results)
            if model.get("robustness") and model["robustness"].get("widths")]


def by_width(scores: dict, field: str) -> list[tuple[float, float]]:
    """Return (width, accuracy) pairs of one filter kind, narrowest width first.

    `field` is "low_pass_accuracy" or "high_pass_accuracy".
    """
    return sorted(zip((float(width) for width in scores["widths"]), scores[field]))


def _the(model: dict) -> str:
    return f"the {model['label']}"


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---- The lean towards low or high frequencies ----------------------------------


@dataclass(frozen=True)
class FrequencyLean:
    low_share: float  # mean over widths of (low-pass accuracy - chance) / (unfiltered - chance)
    high_share: float  # the same for the high-pass accuracies
    standard_error: float  # approximate, of low_share - high_share

    def gap_points(self) -> float:
        """Return the printed low-pass share minus the printed high-pass share, in points."""
        return round(round_percent(self.low_share, ACCURACY_DECIMALS)
                     - round_percent(self.high_share, ACCURACY_DECIMALS), ACCURACY_DECIMALS)


def frequency_lean(scores: dict) -> FrequencyLean | None:
    """Average the shares of the margin over chance that each filter kind keeps.

    Returns None when the printed unfiltered accuracy is less than
    MIN_MARGIN_POINTS above the printed chance level, because the shares
    would divide by a margin that is mostly noise.

    The standard error treats each filtered accuracy as an independent
    binomial proportion over the sample and the unfiltered accuracy as exact.
    NOTE: the filtered accuracies come from the same images, so they are
    correlated; a paired bootstrap over the images would give the exact error.
    """
    chance, unfiltered = scores["chance"], scores["unfiltered_accuracy"]
    if round_accuracy(unfiltered) - round_accuracy(chance) < MIN_MARGIN_POINTS:
        return None
    margin = unfiltered - chance
    low, high = scores["low_pass_accuracy"], scores["high_pass_accuracy"]
    widths = len(low)
    variance = sum(accuracy * (1.0 - accuracy) / scores["images"] for accuracy in low + high)
    return FrequencyLean(
        low_share=sum(accuracy - chance for accuracy in low) / (widths * margin),
        high_share=sum(accuracy - chance for accuracy in high) / (widths * margin),
        standard_error=math.sqrt(variance) / (widths * margin),
    )


def noise_points(standard_error: float) -> float:
    """Return the printed noise level, NOISE_STANDARD_ERRORS standard errors, in points."""
    return round_percent(NOISE_STANDARD_ERRORS * standard_error, ACCURACY_DECIMALS)


def _noise_text(points: float) -> str:
    return (f"the noise level of {format_points(points)} ({NOISE_STANDARD_ERRORS:g} times "
            f"the approximate standard error)")


def lean_sentence(model: dict) -> str:
    """Describe a model's mean low- and high-pass shares and name the frequencies it leans on."""
    scores = model["robustness"]
    lean = frequency_lean(scores)
    if lean is None:
        return (f"The unfiltered accuracy of {_the(model)} is less than {MIN_MARGIN_POINTS:g} "
                f"percentage points above the chance level of "
                f"{format_accuracy(scores['chance'])}, so its response to the filters is not "
                f"read as a lean towards low or high frequencies.")
    text = (f"Averaged over the widths, {_the(model)} keeps "
            f"{format_percent(lean.low_share, ACCURACY_DECIMALS)} of its margin over chance "
            f"through the low-pass filters and "
            f"{format_percent(lean.high_share, ACCURACY_DECIMALS)} through the high-pass "
            f"filters.")
    gap, noise = lean.gap_points(), noise_points(lean.standard_error)
    if abs(gap) < noise:
        return (f"{text} The gap of {format_points(abs(gap))} is below {_noise_text(noise)}, "
                f"so {_the(model)} does about as well with either end of the spectrum.")
    end = "low" if gap > 0 else "high"
    return (f"{text} The gap of {format_points(abs(gap))} exceeds {_noise_text(noise)}, so "
            f"{_the(model)} leans on {end} frequencies.")


def comparison_sentence(results: dict) -> str | None:
    """Name the model that leans more on low frequencies, or state that both respond alike.

    Returns None unless exactly two models have robustness scores. When a
    model is too near chance for its shares to be read, the sentence states
    that instead.
    """
    items = robustness_models(results)
    if len(items) != 2:
        return None
    leans = {key: frequency_lean(model["robustness"]) for key, model in items}
    near_chance = [model for key, model in items if leans[key] is None]
    if near_chance:
        names = join_words([_the(model) for model in near_chance])
        return (f"The two models' leans are not compared, because the unfiltered accuracy of "
                f"{names} is less than {MIN_MARGIN_POINTS:g} percentage points above chance.")

    (first_key, first), (second_key, second) = items
    gaps = {key: leans[key].gap_points() for key, _ in items}
    difference = round(gaps[first_key] - gaps[second_key], ACCURACY_DECIMALS)
    noise = noise_points(math.hypot(leans[first_key].standard_error,
                                    leans[second_key].standard_error))
    listed = (f"The low-pass share minus the high-pass share is "
              f"{format_signed_points(gaps[first_key])} percentage points for {_the(first)} and "
              f"{format_signed_points(gaps[second_key])} for {_the(second)}, a difference of "
              f"{format_points(abs(difference))}")
    if abs(difference) < noise:
        return (f"The two models respond alike to the filters. {listed}, below "
                f"{_noise_text(noise)}.")
    low_leaning, high_leaning = (first, second) if difference > 0 else (second, first)
    return (f"{_capitalized(_the(low_leaning))} leans more on low frequencies than "
            f"{_the(high_leaning)}, and {_the(high_leaning)} more on high frequencies. "
            f"{listed}, above {_noise_text(noise)}.")


# ---- Other sentences ----------------------------------------------------------------


def sample_text(results: dict) -> str:
    """Describe the test images the filters ran on: "a stratified sample of 2,000 of the ..."."""
    items = robustness_models(results)
    counts = {model["robustness"]["images"] for _, model in items}
    if len(counts) > 1:
        return "test samples of " + join_words(
            [f"{format_count(model['robustness']['images'])} images for {_the(model)}"
             for _, model in items])
    (used,) = counts
    available = items[0][1]["test"].get("images")
    if available and used < available:
        return (f"a stratified sample of {format_count(used)} of the {format_count(available)} "
                f"test images")
    return f"all {format_count(used)} test images"


def _widths(results: dict) -> list[float]:
    return sorted({float(width) for _, model in robustness_models(results)
                   for width in model["robustness"]["widths"]})


def _widths_text(widths: Sequence[float]) -> str:
    return join_words([f"{width:g}" for width in widths])


def method_sentences(results: dict) -> list[str]:
    """Describe what was filtered, at which widths, and how the filtered images reach the models."""
    return [
        f"Each model classified {sample_text(results)} again, once through a Gaussian low-pass "
        f"filter and once through the matching high-pass filter at each of the widths "
        f"{_widths_text(_widths(results))} cycles per pixel. The filters are those of the "
        f"exploration section, at more widths than its figures show.",
        "The filtered images are divided by 255 like the test images but not clipped, so a "
        "high-pass image has values around 0, while the models were trained on values between "
        "0 and 1.",
        f"A model's margin over chance is its unfiltered accuracy minus the chance level of "
        f"{format_accuracy(robustness_models(results)[0][1]['robustness']['chance'])}. The "
        f"share of that margin a filtered accuracy keeps puts models of different accuracy on "
        f"one scale.",
    ]


def range_sentence(model: dict) -> str:
    """Give a model's unfiltered accuracy and its accuracy at the narrowest and widest filters."""
    scores = model["robustness"]
    low, high = by_width(scores, "low_pass_accuracy"), by_width(scores, "high_pass_accuracy")
    return (f"Without a filter, {_the(model)} classifies "
            f"{format_accuracy(scores['unfiltered_accuracy'])} of these images correctly. "
            f"Through the low-pass filters its accuracy is {_ends_text(low)}, and through the "
            f"high-pass filters {_ends_text(high)}.")


def _ends_text(pairs: list[tuple[float, float]]) -> str:
    # "14.0% at width 0.02 and 64.0% at 0.32", or one value for a single width.
    (first_width, first), (last_width, last) = pairs[0], pairs[-1]
    text = f"{format_accuracy(first)} at width {first_width:g}"
    if len(pairs) > 1:
        text += f" and {format_accuracy(last)} at {last_width:g}"
    return text


def cost_sentence(results: dict) -> str | None:
    """Give the wall time of the filtered passes per model, or None when it was not recorded."""
    items = [(key, model) for key, model in robustness_models(results)
             if model["robustness"].get("seconds") is not None]
    if not items:
        return None
    listed = join_words([f"{format_seconds(model['robustness']['seconds'])} for {_the(model)}"
                         for _, model in items])
    return f"The filtered passes, part of the evaluation stage, took {listed}."


def conclusion_sentence(results: dict) -> str | None:
    """Return the comparison of the two models' leans when both can be read, else None."""
    items = robustness_models(results)
    if len(items) != 2 or any(frequency_lean(model["robustness"]) is None for _, model in items):
        return None
    return comparison_sentence(results)


def robustness_context(results: dict) -> dict | None:
    """Collect the section's sentences, or return None when no model has robustness scores."""
    items = robustness_models(results)
    if not items:
        return None
    return {
        "method": method_sentences(results),
        "models": [f"{range_sentence(model)} {lean_sentence(model)}" for _, model in items],
        "comparison": comparison_sentence(results),
        "cost": cost_sentence(results),
    }


# ---- Figure and table ----------------------------------------------------------------


def figure_texts(results: dict) -> dict[str, tuple[str, str]]:
    """Return {FIGURE_KEY: (caption, alt text)}, or {} when no model has robustness scores."""
    items = robustness_models(results)
    if not items:
        return {}
    narrowest = join_words([
        f"{format_accuracy(by_width(model['robustness'], 'low_pass_accuracy')[0][1])} "
        f"for {_the(model)}" for _, model in items])
    widest = join_words([
        f"{format_accuracy(by_width(model['robustness'], 'high_pass_accuracy')[-1][1])} "
        f"for {_the(model)}" for _, model in items])
    chance = format_accuracy(items[0][1]["robustness"]["chance"])
    caption = (
        f"Accuracy on {sample_text(results)} against the width of the Gaussian filter, on a "
        f"log scale. Solid lines are low-pass, dashed lines high-pass, dotted lines each "
        f"model's accuracy without a filter, and the grey dash-dot line is chance ({chance}). "
        f"A wider low-pass filter keeps more of each image, and a wider high-pass filter "
        f"less. The narrowest low-pass filter leaves {narrowest}, and the widest high-pass "
        f"filter {widest}."
    )
    alt = ("Line chart of test accuracy against filter width, with a low-pass and a "
           "high-pass line for each model.")
    return {FIGURE_KEY: (caption, alt)}


def _accuracy_at(scores: dict, field: str, width: float) -> str:
    for index, listed in enumerate(scores["widths"]):
        if float(listed) == width:
            return format_accuracy(scores[field][index])
    return "n/a"


def _share_text(lean: FrequencyLean | None, field: str) -> str:
    return "n/a" if lean is None else format_percent(getattr(lean, field), ACCURACY_DECIMALS)


def table_views(results: dict) -> list[TableView]:
    """Return the accuracy-per-width table in a list, or [] when no model has the scores."""
    items = robustness_models(results)
    if not items:
        return []
    rows = [["No filter"] + [format_accuracy(model["robustness"]["unfiltered_accuracy"])
                             for _, model in items for _ in range(2)]]
    for width in _widths(results):
        row = [f"{width:g}"]
        for _, model in items:
            row += [_accuracy_at(model["robustness"], "low_pass_accuracy", width),
                    _accuracy_at(model["robustness"], "high_pass_accuracy", width)]
        rows.append(row)
    shares = ["Mean share of the margin over chance"]
    for _, model in items:
        lean = frequency_lean(model["robustness"])
        shares += [_share_text(lean, "low_share"), _share_text(lean, "high_share")]
    rows.append(shares)
    return [TableView(
        key=TABLE_KEY,
        headers=["Filter width (cycles per pixel)"] + ["Low-pass", "High-pass"] * len(items),
        rows=rows,
        numeric=[False] + [True] * 2 * len(items),
        groups=[("", 1)] + [(model["label"], 2) for _, model in items],
    )]


def table_captions(results: dict) -> dict[str, str]:
    """Return {TABLE_KEY: caption}, or {} when no model has robustness scores."""
    items = robustness_models(results)
    if not items:
        return {}
    return {TABLE_KEY: (
        f"Accuracy on {sample_text(results)} through each Gaussian filter. The first row is "
        f"the accuracy without a filter. The last row is the share of the margin over chance "
        f"that the filters keep, averaged over the widths, and n/a for a model less than "
        f"{MIN_MARGIN_POINTS:g} percentage points above chance."
    )}


def robustness_curves(results: dict) -> list[tuple[str, dict]]:
    """Return (label, robustness scores) per model that has them, for `plot_robustness`."""
    return [(model["label"], model["robustness"]) for _, model in robustness_models(results)]


@styled
def plot_robustness(curves: Sequence[tuple[str, dict]], path: Path) -> None:
    """Draw accuracy against filter width, low-pass solid and high-pass dashed, per model.

    Each model also gets a dotted line at its unfiltered accuracy, and a grey
    dash-dot line marks chance. The x axis is logarithmic, with a tick at
    every width.
    """
    figure, axes = plt.subplots(figsize=(WIDTH, 3.2))
    for (label, scores), colour in zip(curves, palette(len(curves))):
        name = plain(label)
        for field, marker, style, kind in (("low_pass_accuracy", "o", "-", "low-pass"),
                                           ("high_pass_accuracy", "s", "--", "high-pass")):
            widths, accuracies = zip(*by_width(scores, field))
            axes.plot(widths, accuracies, marker=marker, markersize=4, linestyle=style,
                      color=colour, label=f"{name} {kind}")
        axes.axhline(scores["unfiltered_accuracy"], color=colour, linestyle=":", linewidth=1.2,
                     label=f"{name} without a filter")
    axes.axhline(curves[0][1]["chance"], color="0.5", linestyle="-.", linewidth=0.9,
                 label="chance")
    widths = sorted({float(width) for _, scores in curves for width in scores["widths"]})
    axes.set_xscale("log")
    axes.set_xticks(widths, [f"{width:g}" for width in widths])
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_ylim(0.0, 1.0)
    axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel("Gaussian filter width (cycles per pixel)")
    axes.set_ylabel("test accuracy")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    save_figure(figure, path)
