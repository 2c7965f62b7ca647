"""Compute the report's facts and write its sentences and captions from them.

Every comparative word ("higher", "more", "level", "hardest") comes from a
comparison in this module, made on the values as the report prints them
(see report.formatting), so a reader who compares the printed numbers
reaches the same conclusion as the text. Each sentence function takes the
parsed results.json, or a part of it, and returns plain text: the templates
escape it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from report import calibration, ledger, robustness, spaces, tables, uncertainty
from report.formatting import (
    ACCURACY_DECIMALS,
    PERCENT_DECIMALS,
    format_accuracy,
    format_count,
    format_percent,
    format_points,
    format_scientific,
    format_score,
    format_seconds,
    format_timestamp,
    join_words,
    round_accuracy,
    round_percent,
    round_score,
)
from report.layout import (
    CHANNEL_NAMES,
    FILTER_IMAGES_SHOWN,
    FOURIER_CHANNEL,
    FOURIER_IMAGES_SHOWN,
    confusion_figure_key,
    figure_keys,
)

LEVEL_THRESHOLD_POINTS = 0.5  # accuracy gaps below this are reported as level
HIGH_AUC = 0.9  # with an accuracy near chance, a macro-average AUC this high is explained
CHANCE_MARGIN_POINTS = 5.0  # accuracy within this of 100 / classes counts as near chance
MAX_NAMED_CLASSES = 3  # longer lists of tied classes are given as a count


def model_items(results: dict) -> list[tuple[str, dict]]:
    return tables.model_items(results)


def the(model: dict) -> str:
    """Return the model's name as used mid-sentence: "the CNN"."""
    return f"the {model['label']}"


def sentence_case(text: str) -> str:
    return text[:1].upper() + text[1:]


def name_classes(names: list[str]) -> str:
    """Join class names, or count them when there are more than MAX_NAMED_CLASSES."""
    if len(names) > MAX_NAMED_CLASSES:
        return f"{len(names)} classes"
    return join_words(names)


def _leaders(values: dict[str, float], highest: bool = True) -> list[str]:
    # Names whose value ties for the maximum (or minimum), in input order.
    if not values:
        return []
    target = max(values.values()) if highest else min(values.values())
    return [name for name, value in values.items() if value == target]


# ---- Test accuracy ---------------------------------------------------------


@dataclass(frozen=True)
class AccuracyComparison:
    leader: str  # model key with the highest printed accuracy
    runner_up: str
    leader_percent: float  # as printed, e.g. 65.12
    runner_up_percent: float
    margin_points: float  # leader_percent - runner_up_percent
    level: bool  # margin under LEVEL_THRESHOLD_POINTS


def compare_accuracy(results: dict) -> AccuracyComparison | None:
    """Compare the two best test accuracies, or return None with fewer than two models."""
    printed = {key: round_accuracy(model["test"]["accuracy"])
               for key, model in model_items(results)}
    if len(printed) < 2:
        return None
    # sorted() is stable, so equal accuracies keep the order of results.json.
    ranked = sorted(printed, key=printed.get, reverse=True)
    leader, runner_up = ranked[0], ranked[1]
    margin = round(printed[leader] - printed[runner_up], ACCURACY_DECIMALS)
    return AccuracyComparison(
        leader=leader,
        runner_up=runner_up,
        leader_percent=printed[leader],
        runner_up_percent=printed[runner_up],
        margin_points=margin,
        level=margin < LEVEL_THRESHOLD_POINTS,
    )


def winner_sentence(results: dict) -> str:
    """Name the more accurate model only when the paired comparison supports it.

    A results.json without the paired comparison (written before it
    existed) gets the older sentence: the printed accuracies, level when
    they differ by under LEVEL_THRESHOLD_POINTS.
    """
    gated = uncertainty.winner_sentence(results)
    if gated is not None:
        return gated
    models = results["models"]
    comparison = compare_accuracy(results)
    if comparison is None:
        (model,) = models.values()
        return (f"Only {the(model)} was evaluated: its test accuracy is "
                f"{format_accuracy(model['test']['accuracy'])}.")

    leader, runner_up = models[comparison.leader], models[comparison.runner_up]
    leader_text = format_accuracy(leader["test"]["accuracy"])
    runner_up_text = format_accuracy(runner_up["test"]["accuracy"])
    if comparison.level:
        return (
            f"{sentence_case(the(leader))} ({leader_text}) and {the(runner_up)} "
            f"({runner_up_text}) are level on test accuracy: they differ by "
            f"{format_points(comparison.margin_points)}, under the "
            f"{LEVEL_THRESHOLD_POINTS:.1f}-point threshold this report uses to name a winner."
        )
    word = "higher" if len(models) == 2 else "highest"
    return (
        f"{sentence_case(the(leader))} has the {word} test accuracy, {leader_text} against "
        f"{runner_up_text} for {the(runner_up)}, a margin of "
        f"{format_points(comparison.margin_points)}."
    )


def standard_error_points(accuracy: float, images: int) -> float:
    """Return the binomial standard error of an accuracy, in percentage points."""
    return 100.0 * math.sqrt(accuracy * (1.0 - accuracy) / images)


def _all_or_none_correct(accuracy: float, images: int) -> str | None:
    # "all" or "none" when the accuracy is 1 or 0 to within half an image, so
    # a float32 accuracy such as 0.99999994 counts as every image correct.
    correct = round(float(accuracy) * images)
    if correct >= images:
        return "all"
    if correct <= 0:
        return "none"
    return None


def _zero_error_sentence(model: dict, images: int, outcome: str) -> str:
    # At an accuracy of 0 or 1, sqrt(p(1-p)/n) is 0, which would suggest no
    # uncertainty at all, so the sentence states why that 0 is not informative.
    count = format_count(images)
    if outcome == "all":
        fact = f"{sentence_case(the(model))} classified all {count} test images correctly"
    else:
        fact = f"{sentence_case(the(model))} classified none of its {count} test images correctly"
    return (f"{fact}, so the binomial standard error of its accuracy is 0. That value "
            f"understates the uncertainty of an accuracy measured on {count} images.")


def uncertainty_sentence(results: dict) -> str:
    """State how far the test accuracies can be trusted.

    With bootstrap intervals in results.json, those and the spread over
    seeds; otherwise each accuracy's binomial standard error, with the
    run's scope. A model with every test image right (or every one wrong)
    gets a sentence of its own in place of a standard error of 0.
    """
    intervals = uncertainty.intervals_sentence(results)
    if intervals is not None:
        return " ".join([intervals, *uncertainty.seeds_sentences(results)])
    config = results["config"]
    parts, zero_error = [], []
    for _, model in model_items(results):
        images = model["test"].get("images")
        if not images:
            continue
        accuracy = model["test"]["accuracy"]
        outcome = _all_or_none_correct(accuracy, images)
        if outcome:
            zero_error.append(_zero_error_sentence(model, images, outcome))
        else:
            error = standard_error_points(accuracy, images)
            parts.append(f"{error:.1f} for {the(model)} ({format_count(images)} test images)")
    sentences = [f"These results come from one run with seed {config.get('seed')} on the "
                 f"{config.get('preset')} preset."]
    if parts:
        subject = ("The binomial standard error of each test accuracy" if len(parts) > 1
                   else "The binomial standard error of the test accuracy")
        sentences.append(f"{subject}, in percentage points, is {join_words(parts)}.")
    return " ".join(sentences + zero_error)


# ---- Confusions and per-class difficulty ------------------------------------


@dataclass(frozen=True)
class ConfusedPair:
    true_class: str
    predicted_class: str
    count: int


def most_confused_pairs(matrix: list[list[int]], class_names: list[str]) -> list[ConfusedPair]:
    """Return the off-diagonal cells with the largest count, all ties, row by row.

    Rows are true classes and columns predicted ones. The list is empty when
    no image was misclassified.
    """
    best, pairs = 0, []
    for true_index, row in enumerate(matrix):
        for predicted_index, count in enumerate(row):
            if true_index == predicted_index or count <= 0:
                continue
            pair = ConfusedPair(class_names[true_index], class_names[predicted_index],
                                int(count))
            if count > best:
                best, pairs = count, [pair]
            elif count == best:
                pairs.append(pair)
    return pairs


def _pair_text(pair: ConfusedPair) -> str:
    times = "time" if pair.count == 1 else "times"
    return f"true {pair.true_class} predicted as {pair.predicted_class}, {pair.count} {times}"


def confusion_sentence(model: dict, class_names: list[str]) -> str:
    """Name the model's most frequent confusion, with any ties."""
    pairs = most_confused_pairs(model["confusion_matrix"], class_names)
    if not pairs:
        return f"{sentence_case(the(model))} misclassified no test image."
    return (f"The most frequent confusion of {the(model)} is "
            f"{_pair_text(pairs[0])}{_ties_text(pairs)}.")


def _ties_text(pairs: list[ConfusedPair]) -> str:
    # " (tied with true b as a and 2 more)" when several cells share the maximum.
    if len(pairs) < 2:
        return ""
    others = [f"true {pair.true_class} as {pair.predicted_class}" for pair in pairs[1:4]]
    more = len(pairs) - 1 - len(others)
    tail = f" and {more} more" if more else ""
    return f" (tied with {join_words(others)}{tail})"


@dataclass(frozen=True)
class RecallExtremes:
    easiest: list[str]  # classes tied for the highest printed recall
    easiest_recall: float
    hardest: list[str]  # classes tied for the lowest printed recall
    hardest_recall: float


def recall_extremes(per_class: list[dict]) -> RecallExtremes | None:
    """Find the classes with the highest and lowest recall.

    Classes without test images (support 0) have no recall and are skipped;
    None is returned when no class has test images.
    """
    recalls = {row["class"]: round_score(row["recall"]) for row in per_class
               if row.get("support", 1) and row.get("recall") is not None}
    if not recalls:
        return None
    easiest, hardest = _leaders(recalls, highest=True), _leaders(recalls, highest=False)
    return RecallExtremes(easiest, recalls[easiest[0]], hardest, recalls[hardest[0]])


def _classes_phrase(names: list[str], superlative: str, recall: float) -> str:
    if len(names) == 1:
        return f"the {superlative} class is {names[0]} (recall {recall:.3f})"
    if len(names) > MAX_NAMED_CLASSES:
        return f"{len(names)} classes tie as {superlative} (recall {recall:.3f} each)"
    return f"the {superlative} classes are {join_words(names)} (recall {recall:.3f} each)"


def difficulty_sentence(model: dict) -> str:
    """Name the easiest and hardest class of a model by recall."""
    extremes = recall_extremes(model["per_class"])
    if extremes is None:
        return f"No class has test images, so {the(model)} has no per-class recall."
    if extremes.easiest_recall == extremes.hardest_recall:
        scope = ("every class" if all(row.get("recall") is not None for row in model["per_class"])
                 else "every class with test images")
        return (f"For {the(model)}, {scope} has the same recall, "
                f"{extremes.easiest_recall:.3f}.")
    return (f"For {the(model)}, "
            f"{_classes_phrase(extremes.easiest, 'easiest', extremes.easiest_recall)} and "
            f"{_classes_phrase(extremes.hardest, 'hardest', extremes.hardest_recall)}.")


def shared_hardest_sentence(results: dict) -> str | None:
    """Name the classes that are hardest for every model, or return None if there are none.

    A model whose printed recalls are all equal has no hardest class, so any
    such model also gives None.
    """
    sets = []
    for _, model in model_items(results):
        extremes = recall_extremes(model["per_class"])
        if extremes is None or extremes.easiest_recall == extremes.hardest_recall:
            return None
        sets.append(extremes.hardest)
    if len(sets) < 2:
        return None
    shared = [name for name in sets[0] if all(name in other for other in sets[1:])]
    if not shared:
        return None
    every = "both models" if len(sets) == 2 else "every model"
    if all(sorted(hardest) == sorted(shared) for hardest in sets):
        noun = "class" if len(shared) == 1 else "classes"
        return (f"{sentence_case(every)} have the lowest recall on the same {noun}: "
                f"{name_classes(shared)}.")
    # Each model has further classes tied at its lowest recall, so the shared
    # ones are only part of the picture.
    if len(shared) == 1:
        return f"For {every}, {shared[0]} is among the classes with the lowest recall."
    return f"For {every}, {name_classes(shared)} are among the classes with the lowest recall."


def f1_compared(results: dict) -> list[int]:
    """Return the indices of the classes whose F1 is defined for every model."""
    return [index for index in range(len(results["data"]["class_names"]))
            if all(model["per_class"][index]["f1"] is not None
                   for _, model in model_items(results))]


def f1_wins(results: dict) -> dict[str, int]:
    """Count, per model, the classes where its printed F1 is strictly the highest.

    Classes whose F1 is undefined for some model (no test images and no
    predictions) are not compared.
    """
    wins = {key: 0 for key, _ in model_items(results)}
    for index in f1_compared(results):
        scores = {key: round_score(model["per_class"][index]["f1"])
                  for key, model in model_items(results)}
        leaders = _leaders(scores)
        if len(leaders) == 1:
            wins[leaders[0]] += 1
    return wins


def f1_wins_sentence(results: dict) -> str:
    """Count the classes on which each model has the higher F1."""
    models = results["models"]
    classes = len(f1_compared(results))
    wins = f1_wins(results)
    parts = [f"{the(models[key])} on {count} of {classes}" for key, count in wins.items()]
    ties = classes - sum(wins.values())
    word = "higher" if len(models) == 2 else "highest"
    text = f"By class, the {word} F1 belongs to {join_words(parts)}"
    if ties:
        text += f", with {ties} {'class' if ties == 1 else 'classes'} tied"
    undefined = len(results["data"]["class_names"]) - classes
    if undefined:
        text += (f"; F1 is undefined for {undefined} "
                 f"{'class' if undefined == 1 else 'classes'} without test images")
    return text + "."


# ---- ROC and AUC ----------------------------------------------------------


def _is_defined(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def undefined_auc_classes(model: dict) -> list[str]:
    return [name for name, auc in model["roc"]["per_class_auc"].items() if not _is_defined(auc)]


def auc_sentence(model: dict) -> str:
    """Give a model's micro- and macro-average AUC, and classes whose AUC is undefined."""
    roc = model["roc"]
    text = (f"{sentence_case(the(model))} has a micro-average AUC of "
            f"{format_score(roc['micro_auc'])} and a macro-average AUC of "
            f"{format_score(roc['macro_auc'])}.")
    gap = ranking_without_accuracy_sentence(model, after_auc=True)
    if gap:
        text += f" {gap}"
    undefined = undefined_auc_classes(model)
    if not undefined:
        return text
    supports = {row["class"]: row.get("support") for row in model["per_class"]}
    absent = [name for name in undefined if supports.get(name) == 0]
    other = [name for name in undefined if name not in absent]
    if absent:
        noun = "class" if len(absent) == 1 else "classes"
        text += (f" The AUC of {noun} {join_words(absent)} is undefined because no test "
                 f"image belongs to {'it' if len(absent) == 1 else 'them'}.")
    if other:
        noun = "class" if len(other) == 1 else "classes"
        text += f" The AUC of {noun} {join_words(other)} is undefined."
    return text


def ranking_without_accuracy_sentence(model: dict, after_auc: bool = False) -> str | None:
    """Explain a high macro-average AUC next to an accuracy near chance, or return None.

    It applies when the printed macro-average AUC is at least HIGH_AUC and the
    printed accuracy is within CHANCE_MARGIN_POINTS of 100 / number of classes.
    With `after_auc`, the text follows a sentence that already gave the AUC.
    """
    macro = model["roc"].get("macro_auc")
    classes = len(model["per_class"])
    if not _is_defined(macro) or classes == 0:
        return None
    chance = round(100.0 / classes, ACCURACY_DECIMALS)
    accuracy = round_accuracy(model["test"]["accuracy"])
    distance = round(abs(accuracy - chance), ACCURACY_DECIMALS)
    if round_score(macro) < HIGH_AUC or distance > CHANCE_MARGIN_POINTS:
        return None

    accuracy_text = format_accuracy(model["test"]["accuracy"])
    near_chance = (f"within {CHANCE_MARGIN_POINTS:g} percentage points of the chance level "
                   f"of {chance:.1f}% for {classes} classes")
    if after_auc:
        text = f"Its test accuracy of {accuracy_text}, however, is {near_chance}."
    else:
        text = (f"{sentence_case(the(model))} has a macro-average AUC of {format_score(macro)} "
                f"but a test accuracy of {accuracy_text}, {near_chance}.")
    return (f"{text} Its scores rank the images of each class well, but picking the class "
            f"with the highest score (the argmax) often gives the wrong class. That happens "
            f"when the predicted probabilities are poorly calibrated, for example after very "
            f"short training.")


def auc_comparison_sentence(results: dict) -> str | None:
    """Name the model with the highest macro-average AUC, or return None with one model."""
    models = results["models"]
    # An undefined AUC (None, or NaN in results.json) cannot be ranked.
    printed = {key: round_score(model["roc"]["macro_auc"]) for key, model in models.items()
               if _is_defined(model["roc"].get("macro_auc"))}
    if len(printed) < 2:
        return None
    leaders = _leaders(printed)
    if len(leaders) == len(printed):
        every = "Both models have" if len(printed) == 2 else "All models have"
        return (f"{every} the same macro-average AUC to three decimals, "
                f"{format_score(printed[leaders[0]])}.")
    if len(leaders) > 1:
        names = join_words([models[key]["label"] for key in leaders])
        return (f"{names} share the highest macro-average AUC, "
                f"{format_score(printed[leaders[0]])}.")
    others = [f"{format_score(value)} for {the(models[key])}"
              for key, value in printed.items() if key != leaders[0]]
    word = "higher" if len(printed) == 2 else "highest"
    text = (f"{sentence_case(the(models[leaders[0]]))} has the {word} macro-average AUC, "
            f"{format_score(printed[leaders[0]])} against {join_words(others)}")
    if _auc_intervals_overlap(models, leaders[0]):
        text += (", but the bootstrap intervals overlap, so the test images do not show this "
                 "gap clearly")
    return text + "."


def _auc_intervals_overlap(models: dict, leader: str) -> bool:
    """Tell whether the leader's macro-AUC interval overlaps any other model's."""
    intervals = {key: (model.get("intervals") or {}).get("macro_auc")
                 for key, model in models.items()}
    if not intervals.get(leader):
        return False
    low = intervals[leader][0]
    return any(interval and interval[1] >= low
               for key, interval in intervals.items() if key != leader)


# ---- Flip test-time augmentation ----------------------------------------------


def _flip_tta_change_text(model: dict) -> str:
    plain = format_accuracy(model["test"]["accuracy"])
    flipped = format_accuracy(model["flip_tta"]["accuracy"])
    change = tables.flip_tta_change_points(model)
    if change > 0:
        return (f"raises the test accuracy of {the(model)} from {plain} to {flipped} "
                f"({format_points(change)})")
    if change < 0:
        return (f"lowers the test accuracy of {the(model)} from {plain} to {flipped} "
                f"({format_points(-change)})")
    text = f"leaves the test accuracy of {the(model)} at {plain}"
    changed = model["flip_tta"].get("changed_predictions") or 0
    if changed:
        # Changed predictions with an unchanged accuracy mean gains and losses cancel.
        counted = ("1 prediction changes" if changed == 1
                   else f"{format_count(changed)} predictions change")
        text += f", although {counted}"
    return text


def flip_tta_sentence(results: dict) -> str | None:
    """Compare flip-TTA with single-pass test accuracy per model, or return None without it.

    Each model's change is worded from the printed accuracies: a rise, a
    fall, or the same value.
    """
    models = tables.flip_tta_models(results)
    if not models:
        return None
    changes = join_words([_flip_tta_change_text(model) for _, model in models])
    return ("Flip test-time augmentation (TTA) averages the predicted probabilities of each "
            f"test image and of its left-right mirror image. It {changes}. Every other result "
            "in this report, including the comparison of the models, comes from a single "
            "pass over the test images as they are.")


# ---- Size, search and refit -------------------------------------------------


def parameter_sentence(results: dict) -> str:
    """Compare the parameter counts of the models."""
    models = model_items(results)
    counts = {key: int(model["parameters"]) for key, model in models}
    listed = join_words([f"{format_count(counts[key])} for {the(model)}" for key, model in models])
    if len(models) < 2:
        return f"Parameters: {listed}."
    largest = _leaders(counts)
    smallest = _leaders(counts, highest=False)
    if len(largest) == len(models):
        return f"The models have the same number of parameters: {listed}."
    text = f"Parameters: {listed}."
    if len(largest) == 1 and len(smallest) == 1 and counts[smallest[0]] > 0:
        ratio = counts[largest[0]] / counts[smallest[0]]
        big, small = results["models"][largest[0]], results["models"][smallest[0]]
        text += (f" {sentence_case(the(big))} has {ratio:.2f} times as many parameters as "
                 f"{the(small)}.")
    return text


def space_sentence(results: dict, model_key: str) -> str | None:
    """Name a model's search space and what it contains, or return None when it is unnamed."""
    model = results["models"][model_key]
    return spaces.space_summary(sentence_case(the(model)),
                                tables.search_space(results, model_key))


def search_sentence(model: dict) -> str:
    """Summarise a model's Hyperband search: trials, their outcomes and the best trial."""
    search = model["search"]
    trials = search.get("trials")
    noun = "trial" if trials == 1 else "trials"
    text = (f"The search for {the(model)} ran {format_count(trials, 'n/a')} "
            f"{noun} in {format_seconds(search.get('seconds'))}")
    outcomes = _trial_outcomes(search)
    text += f", of which {join_words(outcomes)}." if outcomes else "."
    if search.get("best_val_accuracy") is not None:
        trial = search.get("best_trial_id")
        trial_text = f" ({trial})" if trial is not None else ""
        text += (f" The best trial{trial_text} reached a validation accuracy of "
                 f"{format_accuracy(search['best_val_accuracy'])}.")
    return text


def _trial_outcomes(search: dict) -> list[str]:
    # A guard stops a trial early but the trial still reports a score, so the
    # guard-stopped trials are a subset of the completed ones, not a third outcome.
    completed, failed = search.get("completed"), search.get("failed")
    guarded = search.get("stopped_by_guard")
    outcomes = []
    if completed is not None:
        text = f"{format_count(completed)} completed"
        if guarded:
            text += f" ({format_count(guarded)} of them stopped early by a guard)"
        outcomes.append(text)
    elif guarded:
        outcomes.append(f"{format_count(guarded)} stopped early by a guard")
    if failed is not None:
        outcomes.append(f"{format_count(failed)} failed")
    return outcomes


def refit_sentence(model: dict, refit_config: dict) -> str:
    """Describe a model's refit: epochs run, the best epoch and its validation accuracy."""
    refit = model["refit"]
    limit = refit_config.get("max_epochs")
    limit_text = f" of at most {limit}" if limit is not None else ""
    text = (f"The refit of {the(model)} ran {refit['epochs_run']}{limit_text} epochs, and "
            f"its validation accuracy peaked at epoch {refit['best_epoch']}")
    best = refit.get("best_val_accuracy")
    if best is None:
        return text + "."
    text += f" with {format_accuracy(best)}."
    searched = model["search"].get("best_val_accuracy")
    if searched is not None:
        refit_printed, search_printed = round_accuracy(best), round_accuracy(searched)
        if refit_printed > search_printed:
            relation = "higher than"
        elif refit_printed < search_printed:
            relation = "lower than"
        else:
            relation = "equal to"
        text += (f" That is {relation} the {format_accuracy(searched)} of the best search "
                 f"trial.")
    return text


def _search_and_refit_seconds(results: dict, key: str) -> float:
    # The stage timings, which the reproducibility table lists, when present.
    stages = results["timings"].get("stages", {})
    if f"search_{key}" in stages and f"refit_{key}" in stages:
        return float(stages[f"search_{key}"]) + float(stages[f"refit_{key}"])
    model = results["models"][key]
    return float(model["search"].get("seconds") or 0.0) + float(model["refit"].get("seconds")
                                                                 or 0.0)


def time_sentence(results: dict) -> str:
    """Give each model's search plus refit wall time, naming the longer one."""
    models = model_items(results)
    totals = {key: round(_search_and_refit_seconds(results, key), 1) for key, _ in models}
    listed = join_words([f"{format_seconds(totals[key])} for {the(model)}"
                         for key, model in models])
    text = f"Search and refit took {listed}"
    longest = _leaders(totals)
    if len(models) >= 2 and len(longest) == 1:
        word = "longer" if len(models) == 2 else "longest"
        text += f", so {the(results['models'][longest[0]])} took {word}"
    text += "."
    # The refits with further seeds run after the evaluation and cost as much again.
    stages = results["timings"].get("stages", {})
    seeds = [(model, stages[f"seeds_{key}"]) for key, model in models
             if f"seeds_{key}" in stages]
    if seeds:
        added = join_words([f"{format_seconds(seconds)} for {the(model)}"
                            for model, seconds in seeds])
        text += f" The refits with further seeds added {added}."
    return text


# ---- Data and exploration -----------------------------------------------------


def _share_range(balance: list[dict], field: str, split_words: str) -> str:
    shares = {entry["class"]: round_percent(entry[field]) for entry in balance}
    highest, lowest = _leaders(shares), _leaders(shares, highest=False)
    if shares[highest[0]] == shares[lowest[0]]:
        return f"every class has {format_percent(shares[highest[0]] / 100)} of the {split_words}"
    return (f"shares of the {split_words} range from "
            f"{format_percent(shares[lowest[0]] / 100)} ({name_classes(lowest)}) to "
            f"{format_percent(shares[highest[0]] / 100)} ({name_classes(highest)})")


def _sample_sentence(split_words: str, requested: int | None, available: int | None) -> str:
    # requested is the preset's sample size (None = all), available the images
    # the data set has (None when results.json does not record it).
    if requested is None:
        count = f" {format_count(available)}" if available is not None else ""
        return f"The preset uses all{count} {split_words}."
    if available is None:
        return (f"The preset asks for a stratified sample of up to {format_count(requested)} "
                f"{split_words}.")
    if requested >= available:
        return (f"The preset asks for up to {format_count(requested)} {split_words}, and the "
                f"data set has {format_count(available)}, so all were used.")
    return (f"The preset asks for a stratified sample of {format_count(requested)} of the "
            f"{format_count(available)} {split_words}.")


def sample_sentences(results: dict) -> list[str]:
    """Compare the preset's requested training and test samples with the data set's size."""
    config, available = results["config"], results["data"].get("available", {})
    return [
        _sample_sentence("training images", config.get("train_images"), available.get("train")),
        _sample_sentence("test images", config.get("test_images"), available.get("test")),
    ]


def source_name(results: dict) -> str | None:
    """Return the file or folder name the images were read from, without its directories.

    results.json stores only the name. An older run that stored a full path
    is cut to its last part as well, so the site does not show a local path.
    """
    source = str(results["data"].get("source") or "").rstrip("/\\")
    if not source:
        return None
    return re.split(r"[/\\]", source)[-1]


def subtitle(results: dict) -> str:
    """Write the line under the title: the data set unless the title names it, preset and seed."""
    config = results["config"]
    settings = f"preset {config.get('preset', 'n/a')}, seed {config.get('seed', 'n/a')}"
    dataset = results["data"]["name"]
    if dataset in results.get("title", ""):
        return sentence_case(settings)
    return f"{dataset}, {settings}"


def balance_sentence(results: dict) -> str:
    """Give the smallest and largest class share in the training and test splits."""
    balance = results["exploration"]["class_balance"]
    train = _share_range(balance, "train_share", "training images")
    test = _share_range(balance, "test_share", "test images")
    return f"{sentence_case(train)}, and {test}."


def extreme_value_fact(results: dict, field: str, value: int) -> str:
    """Name the channel with the largest share of pixels at `value` (0 or 255).

    `field` is the channel statistic that contains the share, "zero_share" or
    "saturated_share". The comparison is across channels at one pixel value.
    """
    channels = results["exploration"]["pixels"]["channels"]
    shares = {name: round_percent(stats[field]) for name, stats in channels.items()}
    top = _leaders(shares)
    share_text = format_percent(shares[top[0]] / 100)
    if len(top) == len(shares):
        return f"every channel has {share_text} of its values at {value}"
    if len(top) == 1:
        return f"the {top[0]} channel has the largest share of values at {value} ({share_text})"
    return (f"the {join_words(top)} channels have the largest share of values at {value} "
            f"({share_text} each)")


def histogram_fact(results: dict) -> str:
    """State which channel has the most pixels at 255 and which at 0, as one sentence."""
    saturated = extreme_value_fact(results, "saturated_share", 255)
    zero = extreme_value_fact(results, "zero_share", 0)
    channels = results["exploration"]["pixels"]["channels"]
    top_saturated = _leaders({name: round_percent(stats["saturated_share"])
                              for name, stats in channels.items()})
    top_zero = _leaders({name: round_percent(stats["zero_share"])
                         for name, stats in channels.items()})
    if len(channels) > 1 and len(top_saturated) == 1 and top_saturated == top_zero:
        name = top_saturated[0]
        return (f"The {name} channel has the largest share of values at both ends: "
                f"{format_percent(channels[name]['saturated_share'])} at 255 and "
                f"{format_percent(channels[name]['zero_share'])} at 0.")
    return f"{sentence_case(saturated)}, and {zero}."


def pixel_sentence(results: dict) -> str:
    """Summarise channel means and the shares of saturated and zero values."""
    channels = results["exploration"]["pixels"]["channels"]
    means = {name: round(stats["mean"], 1) for name, stats in channels.items()}
    mean_text = join_words([f"{value:.1f} ({name})" for name, value in means.items()])
    saturated = join_words([f"{format_percent(stats['saturated_share'])} of {name}"
                            for name, stats in channels.items()])
    zero = join_words([f"{format_percent(stats['zero_share'])} of {name}"
                       for name, stats in channels.items()])
    text = (f"Mean pixel values are {mean_text} on the 0-255 scale. "
            f"The value 255 makes up {saturated} values, and 0 makes up {zero} values.")
    lowest = _leaders(means, highest=False)
    if len(lowest) == 1 and len(means) > 1:
        text += f" The {lowest[0]} channel has the lowest mean."
    return text


def fourier_sentence(results: dict) -> str:
    """Report the reconstruction error of the inverse transform."""
    error = float(results["exploration"]["fourier"]["reconstruction_max_abs_error"])
    text = (f"Inverting the transform gives back each image with a largest absolute error "
            f"of {format_scientific(error)} on the 0-255 scale")
    if error < 0.5:
        text += ", less than half a grey level, so rounding restores every pixel exactly"
    return text + "."


def energy_sentence(results: dict) -> str:
    """Give the share of spectral energy each filter width keeps.

    The energy a filter passes is the sum of |F|^2 times the squared gain.
    With a low-pass gain g and a high-pass gain 1 - g, both in [0, 1], the
    two squared gains add up to 1 - 2g(1 - g), so the two shares add up to
    100% at most. The sentence states their sum only as printed.
    """
    fourier = results["exploration"]["fourier"]
    rows = list(zip(fourier["filter_widths"], fourier["low_pass_energy_kept"],
                    fourier["high_pass_energy_kept"]))
    if not rows:
        return "No filter widths were configured."
    parts = [
        f"at width {width:g} the low-pass keeps {format_percent(low)} and the high-pass "
        f"{format_percent(high)}"
        for width, low, high in rows
    ]
    text = f"Of the images' spectral energy, {join_words(parts)}."
    sums = [round(round_percent(low) + round_percent(high), PERCENT_DECIMALS)
            for _, low, high in rows]
    if all(total < 100.0 for total in sums):
        text += (" At each width the two shares add up to less than 100%. Where the "
                 "low-pass gain g lies between 0 and 1, the two filters together pass only "
                 "g² + (1 − g)² of a frequency's energy, which is less than 1.")
    return text


# ---- Captions ---------------------------------------------------------------


@dataclass(frozen=True)
class FigureView:
    key: str
    number: int
    src: str  # relative to the site root
    caption: str  # text after "Figure N."
    alt: str


def _spectrum_count(results: dict) -> int:
    samples = results["exploration"].get("samples", {})
    if "spectrum_labels" in samples:
        return len(samples["spectrum_labels"])
    return int(results["config"].get("exploration", {}).get("spectrum_images", 0))


def _widths_text(results: dict) -> str:
    widths = results["exploration"]["fourier"]["filter_widths"]
    return join_words([f"{width:g}" for width in widths])


def _figure_texts(results: dict) -> dict[str, tuple[str, str]]:
    # Figure key -> (caption, alt text). Captions state a computed fact each.
    models = model_items(results)
    class_names = results["data"]["class_names"]
    fourier = results["exploration"]["fourier"]
    spectrum = _spectrum_count(results)
    shown = min(spectrum, FILTER_IMAGES_SHOWN)
    channel = CHANNEL_NAMES[FOURIER_CHANNEL]
    texts = {
        "class_balance": (
            f"Share of each class among the training and test images. "
            f"{sentence_case(_share_range(results['exploration']['class_balance'], 'train_share', 'training images'))}.",
            "Bar chart of the share of each class in the training and test images.",
        ),
        "pixel_histograms": (
            f"Number of pixels at each value from 0 to 255, per colour channel. "
            f"{histogram_fact(results)}",
            "Line chart of pixel value counts for the red, green and blue channels.",
        ),
        "samples": (
            "One image per class, titled with its class name.",
            f"Grid of {len(class_names)} sample images, one per class.",
        ),
        "fourier": (
            f"Discrete Fourier transform of {min(spectrum, FOURIER_IMAGES_SHOWN)} images. "
            f"Rows: the image, the "
            f"log-amplitude spectrum (centred, {channel} channel), the phase ({channel} "
            f"channel, -pi to pi) and the image rebuilt by the inverse transform. "
            f"Largest reconstruction error: "
            f"{format_scientific(fourier['reconstruction_max_abs_error'])}.",
            "Grid of images with their amplitude spectra, phase maps and reconstructions.",
        ),
        "low_pass": (
            f"Gaussian low-pass filtering of {shown} images at widths {_widths_text(results)} "
            f"cycles per pixel, one row per width, below the originals. "
            + _energy_fact(fourier, "low_pass_energy_kept", "low-pass"),
            "Grid of low-pass filtered images, one row per filter width.",
        ),
        "high_pass": (
            f"Gaussian high-pass filtering of the same {shown} images at widths "
            f"{_widths_text(results)} cycles per pixel. Each filtered image is rescaled so "
            f"that 0 is mid-grey and its largest absolute value reaches the end of the "
            f"display range. "
            + _energy_fact(fourier, "high_pass_energy_kept", "high-pass"),
            "Grid of high-pass filtered images, one row per filter width, shown on a "
            "rescaled grey range.",
        ),
        "learning_curves": (
            "Accuracy and loss per epoch of the refit, training against validation. The "
            "dashed line marks the best epoch: "
            + join_words([f"{model['label']} epoch {model['refit']['best_epoch']} of "
                          f"{model['refit']['epochs_run']}" for _, model in models]) + ".",
            "Line charts of training and validation accuracy and loss per epoch for each model.",
        ),
        "roc": (
            "One-vs-rest ROC curves on the test images, one panel per model. The thick "
            "dashed curve is the micro-average and the thick dotted one the macro-average. "
            "Micro/macro AUC: "
            + join_words([f"{model['label']} {format_score(model['roc']['micro_auc'])}/"
                          f"{format_score(model['roc']['macro_auc'])}"
                          for _, model in models]) + ".",
            "ROC curves per class with micro- and macro-average curves, one panel per model.",
        ),
        "per_class_f1": (
            f"F1 score per class on the test images. {f1_wins_sentence(results)}",
            "Horizontal bar chart comparing the F1 score of each class across models.",
        ),
    }
    for key, model in models:
        pairs = most_confused_pairs(model["confusion_matrix"], class_names)
        fact = (f"Most frequent confusion: {_pair_text(pairs[0])}{_ties_text(pairs)}."
                if pairs else "No test image was misclassified.")
        images = model["test"].get("images")
        images_text = f" {format_count(images)}" if images else ""
        texts[confusion_figure_key(key)] = (
            f"Confusion matrix of {the(model)} on the{images_text} test images, rows true "
            f"class, columns predicted class. {fact}",
            f"Heat map of the {model['label']} confusion matrix with counts in each cell.",
        )
    texts.update(calibration.figure_texts(results))
    texts.update(robustness.figure_texts(results))
    texts.update(ledger.figure_texts(results))
    return texts


def _energy_fact(fourier: dict, field: str, name: str) -> str:
    kept = fourier.get(field) or []
    if not kept:
        return ""
    widths = fourier["filter_widths"]
    return (f"The {name} keeps {format_percent(kept[0])} of the spectral energy at width "
            f"{widths[0]:g} and {format_percent(kept[-1])} at {widths[-1]:g}.")


def number_figures(results: dict, figures: dict[str, str]) -> dict[str, FigureView]:
    """Number the drawn figures in report order and attach their captions.

    `figures` maps figure key to its path relative to the site root. Keys
    missing from it are left out, and the numbering closes the gap.
    """
    texts = _figure_texts(results)
    numbered: dict[str, FigureView] = {}
    for key in figure_keys([key for key, _ in model_items(results)]):
        if key not in figures:
            continue
        caption, alt = texts[key]
        numbered[key] = FigureView(key, len(numbered) + 1, figures[key], caption, alt)
    return numbered


# ---- Tables -----------------------------------------------------------------


def _table_views(results: dict) -> list[tables.TableView]:
    # In the order the tables appear in the report.
    models = model_items(results)
    views = [tables.class_balance_table(results), tables.pixel_channels_table(results),
             tables.fourier_energy_table(results)]
    views += [tables.search_space_table(results, key) for key, _ in models]
    views += [tables.search_settings_table(results), tables.search_outcome_table(results)]
    views += [tables.best_hyperparameters_table(results, key) for key, _ in models]
    for key, model, recorded in ledger.model_ledgers(results):
        views += [ledger.rounds_table(results, key),
                  ledger.trials_print_table(model, recorded, f"ledger_trials_{key}")]
    views += [tables.refit_settings_table(results), tables.refit_outcome_table(results),
              tables.test_table(results)]
    views += uncertainty.headline_tables(results)
    flip_tta = tables.flip_tta_table(results)
    if flip_tta is not None:
        views.append(flip_tta)
    views.append(tables.per_class_table(results))
    recall_intervals = uncertainty.recall_intervals_table(results)
    if recall_intervals is not None:
        views.append(recall_intervals)
    views.append(tables.per_class_auc_table(results))
    views += calibration.table_views(results)
    views += robustness.table_views(results)
    views += [tables.environment_table(results),
              tables.packages_table(results), tables.timings_table(results)]
    return views


def _table_captions(results: dict) -> dict[str, str]:
    data = results["data"]
    timings_caption = (f"Wall time per stage, "
                       f"{format_seconds(results['timings'].get('total_seconds'))} in total.")
    if tables.reused_stages(results):
        timings_caption += " A stage marked reused took its time in an earlier run."
    if tables.resumed_stages(results):
        timings_caption += (" A stage marked resumed includes the time of the interrupted "
                            "runs it continued.")
    captions = {
        "class_balance": "Images per class in the training and test splits.",
        "pixel_channels": "Pixel statistics per channel on the 0-255 scale.",
        "fourier_energy": "Share of the images' spectral energy kept by each Gaussian filter.",
        "search_settings": "Hyperband settings per model.",
        "search_outcome": "Outcome of the Hyperband search per model.",
        "refit_settings": "Refit settings per model.",
        "refit_outcome": "Outcome of the refit per model.",
        "test": (f"Test results on the held-out test split "
                 f"({format_count(data['used'].get('test'))} images)."),
        "flip_tta": ("Test accuracy and macro-average AUC from a single pass over the test "
                     "images and from flip test-time augmentation (TTA), which averages the "
                     "predicted probabilities of each image and its left-right mirror image. "
                     "Change is the printed flip-TTA accuracy minus the printed single-pass "
                     "accuracy, in percentage points. Predictions changed counts the test images whose "
                     "predicted class differs between the two."),
        "per_class": "Precision, recall and F1 per class on the test images.",
        "per_class_auc": ("One-vs-rest AUC per class on the test images. It is undefined "
                          "for a class with no test images."),
        **uncertainty.table_captions(results),
        "environment": _environment_caption(results),
        "packages": "Package versions recorded by the run.",
        "timings": timings_caption,
        **calibration.table_captions(results),
        **robustness.table_captions(results),
        **ledger.table_captions(results),
    }
    for key, model in model_items(results):
        captions[f"search_space_{key}"] = _search_space_caption(
            model, tables.search_space(results, key))
        captions[f"best_hyperparameters_{key}"] = (
            f"Best hyperparameters of {the(model)} found by the search.")
    return captions


def _environment_caption(results: dict) -> str:
    caption = "Run settings, seeds and hardware."
    if results["data"].get("fingerprint"):
        caption += (" Two runs with the same data fingerprint trained and tested on the same "
                    "images and labels.")
    return caption


def _search_space_caption(model: dict, space: dict) -> str:
    name = space.get("name")
    subject = f"The {name} search space of {the(model)}" if name else (
        f"Search space of {the(model)}")
    caption = (f"{subject}: a range ('a to b'), a choice ('x or y'), or a value the search "
               f"does not vary ('fixed').")
    optimizers = (space.get("training") or {}).get("optimizers") or []
    if len(optimizers) > 1:
        caption += (" Each trial uses one of the optimizers, with the ranges in that "
                    "optimizer's row.")
    return caption


def number_tables(results: dict) -> dict[str, tables.TableView]:
    """Build every table, numbered in report order and captioned."""
    captions = _table_captions(results)
    return {
        view.key: dataclasses.replace(view, number=index, caption=captions[view.key])
        for index, view in enumerate(_table_views(results), start=1)
    }


# ---- Timings -------------------------------------------------------------------


def reuse_sentence(results: dict) -> str | None:
    """Name the stages whose outputs an earlier invocation computed, or return None."""
    reused = tables.reused_stages(results)
    if not reused:
        return None
    names = join_words([tables.stage_name(stage, results) for stage in reused])
    if len(reused) == 1:
        return (f"The outputs of the stage {names} were reused from an earlier run, so its wall "
                f"time is the time of that original computation, and the total includes it.")
    return (f"The outputs of the stages {names} were reused from an earlier run, so their wall "
            f"times are the times of that original computation, and the total includes them.")


def augmentation_sentence(config: dict) -> str:
    """Describe the random changes to the training batches from the run's config."""
    settings = config.get("augmentation") or {}
    changes = []
    if settings.get("flip"):
        changes.append("mirrored left to right with probability 1/2")
    shift = settings.get("translate_pixels") or 0
    if shift > 0:
        unit = "pixel" if shift == 1 else "pixels"
        changes.append(f"shifted by up to {shift} {unit} along each axis, with the border "
                       "reflected")
    if not changes:
        return "The training images are not augmented: every epoch sees them unchanged."
    return (f"Each training image is {join_words(changes)}, drawn anew every epoch from the "
            "seed. Validation and test images are never changed.")


def resume_sentences(results: dict) -> list[str]:
    """Say which refits continued from a backup after an interruption, and what that means."""
    sentences = []
    for model in results["models"].values():
        refit = model.get("refit", {})
        resumed_at = refit.get("resumed_at_epoch") or 0
        if resumed_at <= 0:
            continue
        total = refit.get("epochs_run")
        if total is not None and resumed_at >= total:
            where = f"after its last epoch ({resumed_at})"
        else:
            where = f"after epoch {resumed_at}"
        sentences.append(
            f"The {model['label']} refit was interrupted and continued from its backup {where}, "
            "with the weights, optimizer state, early-stopping state and dropout seeds of that "
            "epoch restored.")
    resumed = tables.resumed_stages(results)
    if resumed:
        names = join_words([tables.stage_name(stage, results) for stage in resumed])
        earlier = format_seconds(sum(resumed.values()))
        stages = "stage" if len(resumed) == 1 else "stages"
        interval = results["timings"].get("heartbeat_seconds")
        precision = (f", recorded every {interval:g} s, so up to {interval:g} s per "
                     "interruption are missing" if interval else "")
        sentences.append(
            f"The {stages} {names} began in a run that was interrupted and finished in a later "
            f"one. The wall times include {earlier} from the interrupted runs{precision}.")
    return sentences


# ---- Context ------------------------------------------------------------------


def abstract_sentences(results: dict) -> list[str]:
    """Write the abstract: data, protocol, both test accuracies and the winner."""
    data, config = results["data"], results["config"]
    models = model_items(results)
    names = join_words([the(model) for _, model in models])
    used = data["used"]
    sentences = [
        f"This report compares {names} on {data['name']}.",
        (f"Each model was tuned with a Hyperband search, refit on "
         f"{format_count(used.get('train'))} training images with "
         f"{format_count(used.get('validation'))} held out for validation, and evaluated "
         f"once on {format_count(used.get('test'))} test images "
         f"(preset {config.get('preset')}, seed {config.get('seed')})."),
        winner_sentence(results),
    ]
    cut = ledger.budget_summary(results)
    if cut:
        sentences.append(cut)
    return sentences


def conclusion_sentences(results: dict) -> list[str]:
    """Collect the conclusions, each a fact computed from the results."""
    sentences = [winner_sentence(results)]
    cut = ledger.budget_summary(results)
    if cut:
        sentences.append(cut)
    auc = auc_comparison_sentence(results)
    if auc:
        sentences.append(auc)
    for _, model in model_items(results):
        gap = ranking_without_accuracy_sentence(model)
        if gap:
            sentences.append(gap)
    sentences.append(parameter_sentence(results))
    sentences.append(time_sentence(results))
    class_names = results["data"]["class_names"]
    for _, model in model_items(results):
        sentences.append(difficulty_sentence(model))
        sentences.append(confusion_sentence(model, class_names))
    shared = shared_hardest_sentence(results)
    if shared:
        sentences.append(shared)
    lean = robustness.conclusion_sentence(results)
    if lean:
        sentences.append(lean)
    sentences.append(uncertainty_sentence(results))
    return sentences


def build_context(results: dict, figures: dict[str, str]) -> dict:
    """Assemble everything the templates print: facts, sentences, figures and tables.

    `figures` maps figure key (see report.layout.figure_keys) to the PNG's
    path relative to the site root.
    """
    data, config = results["data"], results["config"]
    class_names = data["class_names"]
    models = []
    for key, model in model_items(results):
        models.append({
            "key": key,
            "label": model["label"],
            "accuracy": format_accuracy(model["test"]["accuracy"]),
            "space": space_sentence(results, key),
            "search": search_sentence(model),
            "refit": refit_sentence(model, config.get(key, {}).get("refit", {})),
            "confusion": confusion_sentence(model, class_names),
            "difficulty": difficulty_sentence(model),
            "auc": auc_sentence(model),
        })

    shape = data.get("image_shape") or []
    numbered_tables = number_tables(results)
    return {
        "title": results.get("title", "Study report"),
        "created": format_timestamp(results.get("created", "unknown")),
        "subtitle": subtitle(results),
        "dataset": data["name"],
        "source": source_name(results),
        "class_count": len(class_names),
        "image_size": " x ".join(str(side) for side in shape),
        "used": {split: format_count(count) for split, count in data["used"].items()},
        "samples": sample_sentences(results),
        "preset": config.get("preset", "n/a"),
        "seed": config.get("seed", "n/a"),
        "augmentation": augmentation_sentence(config),
        "validation_percent": format_percent(config.get("validation_fraction", 0.0), 0),
        "models": models,
        "abstract": abstract_sentences(results),
        "winner": winner_sentence(results),
        "balance": balance_sentence(results),
        "pixels": pixel_sentence(results),
        "fourier": fourier_sentence(results),
        "energy": energy_sentence(results),
        "parameters": parameter_sentence(results),
        "auc_comparison": auc_comparison_sentence(results),
        "f1_wins": f1_wins_sentence(results),
        "flip_tta": flip_tta_sentence(results),
        "uncertainty": uncertainty_sentence(results),
        "conclusions": conclusion_sentences(results),
        "total_time": format_seconds(results["timings"].get("total_seconds")),
        "reuse": reuse_sentence(results),
        "resume": resume_sentences(results),
        "figures": number_figures(results, figures),
        "tables": numbered_tables,
        "ledger": ledger.ledger_context(results, numbered_tables),
        "calibration": calibration.section_context(results, figures),
        "robustness": robustness.robustness_context(results),
    }
