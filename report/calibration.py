"""The "Calibration and errors" section: its facts, sentences, tables and figures.

It reads what the evaluation stage stores per model in results.json:
`calibration` (the ECE and the filled reliability bins of
study.uncertainty.reliability, plus `bin_count`), `confident_mistakes`
(study.errors) and the confusion matrix, and the mistakes' images that
report.run_folder loads from the predictions files. report.narrative takes
the sentences, captions and tables from here, and report.figures draws the
figures with `draw_calibration_figures`. A run folder made before these
numbers existed has no `calibration` entry, so `section_context` returns
None and the section is left out.

As in report.narrative, every comparison is made on the values as printed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from report.formatting import (
    ACCURACY_DECIMALS,
    format_accuracy,
    format_count,
    format_percent,
    format_points,
    format_score,
    format_signed_points,
    join_words,
    round_accuracy,
    round_score,
)
from report.layout import mistakes_figure_key
from report.plotting import WIDTH, image_grid, palette, plain, save_figure, styled
from report.run_folder import mistake_images_key
from report.tables import TableView, model_items

TOP_PAIRS = 5  # confused class pairs listed per model
GALLERY_COLUMNS = 6  # images per row of a mistakes gallery
GALLERY_LABEL_CHARS = 14  # longer class names are cut in the gallery's titles


def calibrated_models(results: dict) -> list[tuple[str, dict]]:
    """Return the (key, model) pairs that have calibration numbers, in results.json order."""
    return [(key, model) for key, model in model_items(results) if model.get("calibration")]


def _plural(count: int, singular: str, plural: str | None = None) -> str:
    return f"{format_count(count)} {singular if count == 1 else plural or singular + 's'}"


# ---- Confidence against accuracy ----------------------------------------------------


@dataclass(frozen=True)
class ConfidenceGap:
    mean_confidence: float  # mean top probability over the test images, a fraction
    accuracy: float  # share of test images predicted right
    points: float  # printed mean confidence minus printed accuracy, in percentage points
    bins_below: int  # filled bins whose accuracy is below their mean confidence
    bins_above: int  # filled bins whose accuracy is above their mean confidence
    bins_filled: int


def confidence_gap(calibration: dict) -> ConfidenceGap:
    """Compare a model's mean confidence with its accuracy, both weighted by bin counts.

    A positive gap means overconfident: the model's predicted class is right
    less often than its probability implies. Per-bin gaps of opposite sign
    cancel here but not in the ECE, which adds their sizes.
    """
    bins = calibration["bins"]
    images = sum(entry["images"] for entry in bins)
    mean_confidence = sum(entry["images"] * entry["confidence"] for entry in bins) / images
    accuracy = sum(entry["images"] * entry["accuracy"] for entry in bins) / images
    points = round(round_accuracy(mean_confidence) - round_accuracy(accuracy),
                   ACCURACY_DECIMALS)
    return ConfidenceGap(
        mean_confidence=mean_confidence,
        accuracy=accuracy,
        points=points,
        bins_below=sum(entry["accuracy"] < entry["confidence"] for entry in bins),
        bins_above=sum(entry["accuracy"] > entry["confidence"] for entry in bins),
        bins_filled=len(bins),
    )


def bin_count(calibration: dict) -> int | None:
    """Return the number of equal-width bins the confidences were sorted into, if recorded."""
    return calibration.get("bin_count")


def _bins_phrase(results: dict) -> str:
    # "15 equal-width confidence bins", or the count per model when they differ.
    counts = {key: bin_count(model["calibration"]) for key, model in calibrated_models(results)}
    if len(set(counts.values())) == 1:
        (count,) = set(counts.values())
        return f"{count} equal-width confidence bins" if count else "equal-width confidence bins"
    per_model = join_words([f"{count or 'an unrecorded number'} for "
                            f"the {results['models'][key]['label']}"
                            for key, count in counts.items()])
    return f"equal-width confidence bins ({per_model})"


def method_sentence(results: dict) -> str:
    """Explain the confidence, the reliability bins and the ECE, with the run's bin count."""
    return (f"The confidence of a prediction is the probability of its predicted class. The "
            f"test images are sorted by confidence into {_bins_phrase(results)} between 0 and "
            f"1, and in each bin the accuracy is compared with the mean confidence. The "
            f"expected calibration error (ECE) is the mean of the absolute gaps, weighted by "
            f"each bin's share of the images, so it is 0 only when the two are equal in every "
            f"bin.")


def _direction_text(gap: ConfidenceGap) -> str:
    confidence, accuracy = format_accuracy(gap.mean_confidence), format_accuracy(gap.accuracy)
    if gap.points > 0:
        return (f"Its mean confidence, {confidence}, is above its accuracy, {accuracy}, so it "
                f"is overconfident by {format_points(gap.points)} on average.")
    if gap.points < 0:
        return (f"Its mean confidence, {confidence}, is below its accuracy, {accuracy}, so it "
                f"is underconfident by {format_points(-gap.points)} on average.")
    return (f"Its mean confidence and its accuracy are both {accuracy}, so on average it is "
            f"neither overconfident nor underconfident.")


def _bins_text(gap: ConfidenceGap) -> str:
    filled = _plural(gap.bins_filled, "filled bin")
    return (f"The accuracy is below the mean confidence in {format_count(gap.bins_below)} and "
            f"above it in {format_count(gap.bins_above)} of its {filled}.")


def calibration_sentence(model: dict) -> str:
    """Give a model's ECE, whether it is over- or underconfident, and its bins' directions."""
    calibration = model["calibration"]
    gap = confidence_gap(calibration)
    return (f"The {model['label']} has an ECE of {format_score(calibration['ece'])}. "
            f"{_direction_text(gap)} {_bins_text(gap)}")


def comparison_sentence(results: dict) -> str | None:
    """Name the better-calibrated model by printed ECE, or return None with one model."""
    models = calibrated_models(results)
    if len(models) < 2:
        return None
    printed = {key: round_score(model["calibration"]["ece"]) for key, model in models}
    lowest = min(printed.values())
    leaders = [key for key, value in printed.items() if value == lowest]
    labels = {key: model["label"] for key, model in models}
    if len(leaders) == len(models):
        every = "Both models have" if len(models) == 2 else "All models have"
        return f"{every} the same ECE to three decimals, {format_score(lowest)}."
    if len(leaders) > 1:
        names = join_words([f"the {labels[key]}" for key in leaders])
        return f"{names[:1].upper()}{names[1:]} share the lowest ECE, {format_score(lowest)}."
    # NOTE: the ECEs are compared as point values. No bootstrap interval is
    # computed for them, so a small difference may be test-set noise.
    word = "better" if len(models) == 2 else "best"
    others = join_words([f"{format_score(value)} for the {labels[key]}"
                         for key, value in printed.items() if key != leaders[0]])
    return (f"On these test images, the {labels[leaders[0]]} is {word} calibrated: its ECE "
            f"is {format_score(lowest)} against {others}.")


# ---- Confident mistakes -------------------------------------------------------------


def misclassified_count(model: dict) -> int:
    """Return the number of test images the model got wrong, from its confusion matrix."""
    matrix = np.asarray(model["confusion_matrix"])
    return int(matrix.sum() - np.trace(matrix))


def mistakes_sentence(model: dict, gallery_drawn: bool) -> str:
    """Describe the confident mistakes shown: how many, of how many, and their confidences.

    `gallery_drawn` is False when the run folder lacks the mistakes' images,
    and the sentence then states that the gallery is left out.
    """
    label = model["label"]
    mistakes = model.get("confident_mistakes") or []
    wrong = misclassified_count(model)
    if not wrong:
        return f"The {label} misclassified no test image, so it has no mistakes to show."
    if not mistakes:
        return (f"The evaluation kept none of the {format_count(wrong)} mistakes of the "
                f"{label} for a gallery.")
    text = f"For the {label}, the gallery shows {_gallery_scope(len(mistakes), wrong)}"
    text += _confidence_range_text(mistakes)
    if not gallery_drawn:
        text += (" The run folder has no images of these mistakes, so the gallery is left "
                 "out.")
    return text


def _gallery_scope(shown: int, wrong: int) -> str:
    # Which of the model's mistakes the gallery shows.
    if shown >= wrong:
        return "its only mistake" if wrong == 1 else f"all {format_count(wrong)} of its mistakes"
    if shown == 1:
        return f"the one of its {format_count(wrong)} mistakes with the highest confidence"
    return (f"the {format_count(shown)} of its {format_count(wrong)} mistakes with the "
            f"highest confidence")


def _confidence_range_text(mistakes: list[dict]) -> str:
    # The rest of the gallery sentence: the first mistake and the last one's confidence.
    first = mistakes[0]
    case = (f"a test image of class {first['true']} predicted as {first['predicted']} with "
            f"probability {format_percent(first['confidence'], ACCURACY_DECIMALS)}")
    if len(mistakes) == 1:
        return f": {case}."
    last = format_percent(mistakes[-1]["confidence"], ACCURACY_DECIMALS)
    return (f", most confident first. The most confident one is {case}, and the last one "
            f"shown has probability {last}.")


# ---- Confused class pairs -----------------------------------------------------------


@dataclass(frozen=True)
class RankedConfusion:
    true_class: str
    predicted_class: str
    count: int  # test images of true_class predicted as predicted_class
    share: float  # count over the test images of true_class


def ranked_confusions(matrix: Sequence[Sequence[int]], class_names: Sequence[str],
                      limit: int = TOP_PAIRS) -> tuple[list[RankedConfusion], int]:
    """Return the `limit` largest off-diagonal cells and how many more tie with the last.

    Rows are true classes, columns predicted ones. Equal counts keep row by
    row order, the order of report.narrative.most_confused_pairs, so the
    first pair is the one the evaluation section names. Cells of 0 are
    never listed.

    >>> pairs, tied = ranked_confusions([[5, 2, 1], [3, 4, 0], [0, 2, 6]], "abc", 2)
    >>> [(pair.true_class, pair.predicted_class, pair.count) for pair in pairs], tied
    ([('b', 'a', 3), ('a', 'b', 2)], 1)
    """
    counts = np.asarray(matrix, dtype=int)
    supports = counts.sum(axis=1)
    cells = [(int(counts[true, predicted]), true, predicted)
             for true in range(len(counts)) for predicted in range(len(counts))
             if true != predicted and counts[true, predicted] > 0]
    cells.sort(key=lambda cell: -cell[0])  # stable, so ties stay in row order
    pairs = [RankedConfusion(class_names[true], class_names[predicted], count,
                             count / supports[true])
             for count, true, predicted in cells[:limit]]
    tied = sum(1 for count, _, _ in cells[limit:] if pairs and count == pairs[-1].count)
    return pairs, tied


def _tied_text(tied: int, count: int) -> str:
    # "Another pair has 3 images" or "Another 2 pairs have 3 images each".
    if tied == 1:
        return f"Another pair has {_plural(count, 'image')}"
    return f"Another {format_count(tied)} pairs have {_plural(count, 'image')} each"


def pairs_sentence(model: dict, class_names: list[str]) -> str:
    """Say how many of a model's mistakes its most frequent confusions account for."""
    label = model["label"]
    pairs, tied = ranked_confusions(model["confusion_matrix"], class_names)
    wrong = misclassified_count(model)
    if not pairs:
        return f"The {label} misclassified no test image."
    covered = sum(pair.count for pair in pairs)
    subject = ("The only confusion" if len(pairs) == 1
               else f"The {len(pairs)} most frequent confusions")
    verb = "accounts" if len(pairs) == 1 else "account"
    text = (f"{subject} of the {label} {verb} for {format_count(covered)} of its "
            f"{_plural(wrong, 'misclassified test image')} "
            f"({format_percent(covered / wrong, ACCURACY_DECIMALS)}).")
    if tied:
        text += f" {_tied_text(tied, pairs[-1].count)}, as many as the last pair listed."
    return text


def shared_pairs_sentence(results: dict) -> str | None:
    """Name the pairs listed among the most frequent confusions of every model, or None.

    Returns None with fewer than two models, or when a model misclassified
    nothing.
    """
    models = calibrated_models(results)
    if len(models) < 2:
        return None
    class_names = results["data"]["class_names"]
    listed = [ranked_confusions(model["confusion_matrix"], class_names)[0]
              for _, model in models]
    if not all(listed):
        return None
    keys = [[(pair.true_class, pair.predicted_class) for pair in pairs] for pairs in listed]
    shared = [key for key in keys[0] if all(key in other for other in keys[1:])]
    every = "both models" if len(models) == 2 else "every model"
    if not shared:
        return f"No class pair is listed among the most frequent confusions of {every}."
    phrases = join_words([f"true {true} predicted as {predicted}" for true, predicted in shared])
    if len(shared) == 1:
        return f"The pair {phrases} is listed among the most frequent confusions of {every}."
    return f"The pairs {phrases} are listed among the most frequent confusions of {every}."


# ---- Tables -------------------------------------------------------------------------


def calibration_table(results: dict) -> TableView:
    """Build one row per calibrated model: ECE, mean confidence, accuracy, gap, filled bins."""
    rows = []
    for _, model in calibrated_models(results):
        calibration = model["calibration"]
        gap = confidence_gap(calibration)
        bins = bin_count(calibration)
        filled = (f"{gap.bins_filled} of {bins}" if bins is not None
                  else format_count(gap.bins_filled))
        rows.append([model["label"], format_score(calibration["ece"]),
                     format_accuracy(gap.mean_confidence), format_accuracy(gap.accuracy),
                     format_signed_points(gap.points), filled])
    return TableView(
        key="calibration",
        headers=["Model", "ECE", "Mean confidence", "Accuracy",
                 "Confidence minus accuracy (points)", "Filled bins"],
        rows=rows,
        numeric=[False, True, True, True, True, True],
    )


def confused_pairs_key(model_key: str) -> str:
    return f"confused_pairs_{model_key}"


def confused_pairs_table(results: dict, model_key: str) -> TableView | None:
    """List a model's most frequent confusions, or return None when it made no mistake."""
    model = results["models"][model_key]
    pairs, _ = ranked_confusions(model["confusion_matrix"], results["data"]["class_names"])
    if not pairs:
        return None
    return TableView(
        key=confused_pairs_key(model_key),
        headers=["Rank", "True class", "Predicted class", "Test images",
                 "Share of the true class"],
        rows=[[str(rank), pair.true_class, pair.predicted_class, format_count(pair.count),
               format_percent(pair.share, ACCURACY_DECIMALS)]
              for rank, pair in enumerate(pairs, start=1)],
        numeric=[True, False, False, True, True],
    )


def table_views(results: dict) -> list[TableView]:
    """Build the section's tables in report order: calibration, then each model's pairs."""
    models = calibrated_models(results)
    if not models:
        return []
    views = [calibration_table(results)]
    for key, _ in models:
        view = confused_pairs_table(results, key)
        if view is not None:
            views.append(view)
    return views


def table_captions(results: dict) -> dict[str, str]:
    """Return the caption of every table that `table_views` can build."""
    models = calibrated_models(results)
    if not models:
        return {}
    captions = {
        "calibration": (
            f"Calibration on the test images, over {_bins_phrase(results)}. Mean confidence "
            f"is the mean probability of the predicted class. The difference is the printed "
            f"mean confidence minus the printed accuracy: positive for an overconfident "
            f"model, negative for an underconfident one."),
    }
    class_names = results["data"]["class_names"]
    for key, model in models:
        pairs, tied = ranked_confusions(model["confusion_matrix"], class_names)
        caption = (f"The most frequent confusions of the {model['label']}: test images of the "
                   f"true class predicted as another class, and their share of the true "
                   f"class's test images. Equal counts are listed row by row of the confusion "
                   f"matrix.")
        if tied:
            verb = "is" if tied == 1 else "are"
            caption += f" {_tied_text(tied, pairs[-1].count)} but {verb} not listed."
        captions[confused_pairs_key(key)] = caption
    return captions


# ---- Captions and context -----------------------------------------------------------


def figure_texts(results: dict) -> dict[str, tuple[str, str]]:
    """Return (caption, alt text) for every figure `draw_calibration_figures` can draw."""
    models = calibrated_models(results)
    if not models:
        return {}
    eces = join_words([f"{model['label']} {format_score(model['calibration']['ece'])}"
                       for _, model in models])
    texts = {
        "reliability": (
            f"Reliability diagrams on the test images, one column per model. Each bar is the "
            f"accuracy of a filled confidence bin ({_bins_phrase(results)}, empty bins left "
            f"out), the hatched part is its gap to the bin's mean confidence, and the dashed "
            f"diagonal marks confidence equal to accuracy. Below, the number of test images "
            f"per bin. ECE: {eces}.",
            "Bar charts of accuracy per confidence bin against a diagonal, above histograms "
            "of the test images per bin, one column per model.",
        ),
    }
    for key, model in models:
        shown = len(model.get("confident_mistakes") or [])
        texts[mistakes_figure_key(key)] = (
            _gallery_caption(model["label"], shown),
            f"Grid of {_plural(shown, 'misclassified test image')} of the {model['label']} "
            f"with their true and predicted classes.",
        )
    return texts


def _gallery_caption(label: str, shown: int) -> str:
    if shown == 1:
        return (f"The test image that the {label} misclassified with the highest confidence, "
                f"titled with its true class, the predicted class and the probability of the "
                f"predicted class.")
    return (f"The {format_count(shown)} test images that the {label} misclassified with the "
            f"highest confidence, most confident first, each titled with its true class, the "
            f"predicted class and the probability of the predicted class.")


def section_context(results: dict, figures: dict[str, str]) -> dict | None:
    """Assemble the section's sentences, or return None when no model has calibration numbers.

    `figures` maps the drawn figure keys to their paths. A model whose
    gallery is missing from it gets a sentence saying so.
    """
    models = calibrated_models(results)
    if not models:
        return None
    class_names = results["data"]["class_names"]
    return {
        "method": method_sentence(results),
        "comparison": comparison_sentence(results),
        "shared_pairs": shared_pairs_sentence(results),
        "models": [{
            "key": key,
            "label": model["label"],
            "calibration": calibration_sentence(model),
            "mistakes": mistakes_sentence(model, mistakes_figure_key(key) in figures),
            "pairs": pairs_sentence(model, class_names),
            "pairs_table": confused_pairs_key(key),
        } for key, model in models],
    }


# ---- Figures ------------------------------------------------------------------------


@styled
def plot_reliability(models: Sequence[tuple[str, dict]], path: Path) -> None:
    """Draw a reliability diagram per model, above a histogram of the images per bin.

    `models` contains (label, calibration) pairs, with calibration as
    study.uncertainty.reliability returns it. Only filled bins are drawn.
    """
    accuracy_colour, gap_colour = palette(4)[0], palette(4)[3]
    figure, grid = plt.subplots(2, len(models), figsize=(WIDTH, 4.2), sharex="col",
                                gridspec_kw={"height_ratios": [3, 1]}, squeeze=False)
    for column, (label, calibration) in enumerate(models):
        top, bottom = grid[0, column], grid[1, column]
        bins = calibration["bins"]
        lows = [entry["low"] for entry in bins]
        widths = [entry["high"] - entry["low"] for entry in bins]
        accuracy = np.array([entry["accuracy"] for entry in bins])
        confidence = np.array([entry["confidence"] for entry in bins])
        top.bar(lows, accuracy, widths, align="edge", color=accuracy_colour,
                edgecolor="white", linewidth=0.6, label="accuracy")
        top.bar(lows, confidence - accuracy, widths, bottom=accuracy, align="edge",
                fill=False, hatch="///", edgecolor=gap_colour, linewidth=0.6,
                label="gap to mean confidence")
        top.plot([0, 1], [0, 1], color="0.35", linestyle="--", linewidth=1,
                 label="confidence = accuracy")
        top.set_xlim(0, 1)
        top.set_ylim(0, 1)
        top.set_ylabel("accuracy")
        top.set_title(f"{plain(label)}: ECE {format_score(calibration['ece'])}")
        bottom.bar(lows, [entry["images"] for entry in bins], widths, align="edge",
                   color="0.55", edgecolor="white", linewidth=0.6)
        bottom.set_xlabel("confidence")
        bottom.set_ylabel("images")
    figure.tight_layout()
    # Above the panels, where no bar can cover it. The tight box of savefig keeps it.
    handles, labels = grid[0, 0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3,
                  frameon=False)
    save_figure(figure, path)


def _gallery_title(mistake: dict) -> str:
    return (f"{plain(mistake['true'], GALLERY_LABEL_CHARS)} \u2192\n"
            f"{plain(mistake['predicted'], GALLERY_LABEL_CHARS)}\n"
            f"{format_percent(mistake['confidence'], ACCURACY_DECIMALS)}")


@styled
def plot_confident_mistakes(images: np.ndarray, mistakes: Sequence[dict], path: Path) -> None:
    """Draw misclassified images in a grid, each titled "true ->", predicted, confidence.

    `images` is (M, H, W, C) uint8, in the order of `mistakes`.
    """
    cell = WIDTH / GALLERY_COLUMNS
    figure = image_grid(images[:len(mistakes)], [_gallery_title(item) for item in mistakes],
                        columns=GALLERY_COLUMNS, cell=(cell, cell + 0.5), fontsize=7)
    figure.subplots_adjust(wspace=0.1, hspace=0.55)
    save_figure(figure, path)


def draw_calibration_figures(results: dict, arrays: dict[str, np.ndarray],
                             target: Callable[[str], Path]) -> None:
    """Draw the section's figures, each to the path `target(figure_key)` returns.

    `arrays` contains each model's gallery images under
    `mistake_images_key(key)`, as report.run_folder loads them. A model
    without them, or without mistakes, gets no gallery. Nothing is drawn
    without calibration numbers.
    """
    models = calibrated_models(results)
    if not models:
        return
    plot_reliability([(model["label"], model["calibration"]) for _, model in models],
                     target("reliability"))
    for key, model in models:
        mistakes = model.get("confident_mistakes") or []
        images = arrays.get(mistake_images_key(key))
        if images is not None and mistakes:
            plot_confident_mistakes(images, mistakes, target(mistakes_figure_key(key)))
