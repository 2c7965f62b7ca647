"""How far the headline numbers can be trusted: intervals, seeds and the paired test.

Reads what the study stores (study.uncertainty): each model's bootstrap
intervals (`models.<key>.intervals`), its refits with further seeds
(`models.<key>.seeds`) and the paired comparison of the two models on the
same test images (`comparison`). A winner is named only when three checks
agree. The bootstrap interval of the accuracy gap excludes zero. McNemar's
exact test rejects equal error rates at the interval's level. With two or
more seeds per model, the mean accuracy over the seeds ranks the models the
same way. Otherwise the report states that there is no clear difference.

A results.json written before these numbers existed has none of these
keys; every function here then returns None and the report falls back to
its earlier sentences.
"""

from __future__ import annotations

from dataclasses import dataclass

from report.formatting import (
    format_accuracy,
    format_count,
    format_points,
    format_score,
    format_seconds,
    format_signed_points,
    join_words,
    round_accuracy,
)
from report.tables import TableView, model_items

SD_POINT_DECIMALS = 2  # standard deviations over seeds, in percentage points
SD_SCORE_DECIMALS = 4  # standard deviations of an AUC over seeds


def _the(model: dict) -> str:
    return f"the {model['label']}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def format_p_value(p_value: float) -> str:
    """Format a p-value for prose: "p < 0.001" or "p = 0.0215".

    >>> format_p_value(0.00002), format_p_value(0.02148)
    ('p < 0.001', 'p = 0.0215')
    """
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.3g}"


def _level_percent(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def _points_range(low: float, high: float) -> str:
    """Format the interval of an accuracy gap (fractions) in signed percentage points."""
    return f"{format_signed_points(100 * low)} to {format_signed_points(100 * high)}"


def _accuracy_range(interval: list[float] | None) -> str:
    if not interval:
        return "undefined"
    return f"{format_accuracy(interval[0])} to {format_accuracy(interval[1])}"


def _score_range(interval: list[float] | None) -> str:
    if not interval:
        return "undefined"
    return f"{format_score(interval[0])} to {format_score(interval[1])}"


# ---- The paired comparison and the verdict ----------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The comparison of two models, seen from the one with the higher accuracy."""

    leader: str  # model key
    runner_up: str
    gap: float  # accuracy of leader minus runner-up, a fraction
    interval: tuple[float, float]  # bootstrap interval of that gap
    confidence: float
    p_value: float
    only_leader: int  # test images only the leader gets right
    only_runner_up: int
    seeds_disagree: bool  # the mean accuracy over seeds ranks the runner-up first

    @property
    def interval_excludes_zero(self) -> bool:
        return self.interval[0] > 0.0

    @property
    def test_rejects(self) -> bool:
        return self.p_value < 1.0 - self.confidence

    @property
    def supported(self) -> bool:
        return self.interval_excludes_zero and self.test_rejects and not self.seeds_disagree


def _seed_mean(model: dict) -> float | None:
    seeds = model.get("seeds") or {}
    if (seeds.get("count") or 0) < 2:
        return None
    return seeds["accuracy"]["mean"]


def verdict(results: dict) -> Verdict | None:
    """Return the comparison of the two models, or None when results.json has none."""
    comparison = results.get("comparison")
    if not comparison:
        return None
    first, second = comparison["models"]
    low, high = comparison["interval"]
    gap = comparison["accuracy_difference"]
    leader, runner_up = (first, second) if gap >= 0 else (second, first)
    if leader != first:
        gap, low, high = -gap, -high, -low
    only = {first: comparison["only_a"], second: comparison["only_b"]}
    means = {key: _seed_mean(results["models"][key]) for key in (leader, runner_up)}
    seeds_disagree = (None not in means.values()) and means[runner_up] > means[leader]
    return Verdict(leader, runner_up, gap, (low, high), comparison["confidence"],
                   comparison["p_value"], only[leader], only[runner_up], seeds_disagree)


def _disagreement_text(found: Verdict, models: dict) -> str:
    leader, runner_up = models[found.leader], models[found.runner_up]
    images = found.only_leader + found.only_runner_up
    return (f"McNemar's exact test on the {format_count(images)} images that exactly one "
            f"model classifies correctly ({format_count(found.only_leader)} only by "
            f"{_the(leader)}, {format_count(found.only_runner_up)} only by "
            f"{_the(runner_up)}) gives {format_p_value(found.p_value)}")


def _printed_gap(leader: dict, runner_up: dict) -> float:
    """Return the gap between the two test accuracies as printed, in percentage points."""
    return round(round_accuracy(leader["test"]["accuracy"])
                 - round_accuracy(runner_up["test"]["accuracy"]), 1)


def winner_sentence(results: dict) -> str | None:
    """Name the more accurate model when the evidence supports it, else state why not."""
    found = verdict(results)
    if found is None:
        return None
    models = results["models"]
    leader, runner_up = models[found.leader], models[found.runner_up]
    images = format_count(leader["test"].get("images"), "the")
    accuracies = (f"{format_accuracy(leader['test']['accuracy'])} against "
                  f"{format_accuracy(runner_up['test']['accuracy'])}")
    level = _level_percent(found.confidence)
    printed_gap = _printed_gap(leader, runner_up)
    interval = f"{_points_range(*found.interval)} points"
    if found.supported:
        return (f"{_capital(_the(leader))} is more accurate than {_the(runner_up)}: "
                f"{accuracies} on the same {images} test images. The gap of "
                f"{format_points(printed_gap)} has a {level} bootstrap interval of {interval}, "
                f"and {_disagreement_text(found, models)}.")
    reasons = []
    if not found.interval_excludes_zero:
        reasons.append(f"the {level} bootstrap interval of the gap, {interval}, includes zero")
    if not found.test_rejects:
        reasons.append(f"{_disagreement_text(found, models)}, not below "
                       f"{1.0 - found.confidence:.2g}")
    if found.seeds_disagree:
        reasons.append(f"the mean accuracy over the seeds ranks {_the(runner_up)} first")
    return (f"There is no clear difference between {_the(leader)} and {_the(runner_up)} "
            f"({accuracies} on the same {images} test images): {join_words(reasons)}.")


def comparison_table(results: dict) -> TableView | None:
    """Build the table of the paired comparison: counts, gap, interval and p-value."""
    found = verdict(results)
    if found is None:
        return None
    models = results["models"]
    leader, runner_up = models[found.leader]["label"], models[found.runner_up]["label"]
    rows = [
        [f"Test images only the {leader} classifies correctly", format_count(found.only_leader)],
        [f"Test images only the {runner_up} classifies correctly",
         format_count(found.only_runner_up)],
        [f"Accuracy gap, {leader} minus {runner_up} (points)",
         format_signed_points(_printed_gap(models[found.leader], models[found.runner_up]))],
        [f"{_level_percent(found.confidence)} bootstrap interval of the gap (points)",
         _points_range(*found.interval)],
        ["McNemar's exact test, two-sided p-value", f"{found.p_value:.3g}"],
        ["Verdict", f"the {leader} is more accurate" if found.supported
         else "no clear difference"],
    ]
    return TableView(key="comparison", headers=["Quantity", "Value"], rows=rows,
                     numeric=[False, True])


# ---- Bootstrap intervals -----------------------------------------------------------


def _interval_models(results: dict) -> list[tuple[str, dict]]:
    return [(key, model) for key, model in model_items(results) if model.get("intervals")]


def intervals_sentence(results: dict) -> str | None:
    """State each model's bootstrap intervals of accuracy and macro-average AUC."""
    models = _interval_models(results)
    if not models:
        return None
    first = models[0][1]["intervals"]
    accuracy = join_words([f"{_accuracy_range(model['intervals']['accuracy'])} for "
                           f"{_the(model)}" for _, model in models])
    auc = join_words([f"{_score_range(model['intervals']['macro_auc'])} for {_the(model)}"
                      for _, model in models])
    return (f"Resampling the test images {format_count(first['resamples'])} times gives "
            f"{_level_percent(first['confidence'])} bootstrap intervals for the test accuracy "
            f"of {accuracy}, and for the macro-average AUC of {auc}.")


def recall_intervals_table(results: dict) -> TableView | None:
    """Build the table of each class's recall and its bootstrap interval, per model."""
    models = _interval_models(results)
    if not models:
        return None
    rows = []
    for index, name in enumerate(results["data"]["class_names"]):
        row = [name]
        for _, model in models:
            row += [format_score(model["per_class"][index]["recall"]),
                    _score_range(model["intervals"]["per_class_recall"][index])]
        rows.append(row)
    level = _level_percent(models[0][1]["intervals"]["confidence"])
    return TableView(
        key="recall_intervals",
        headers=["Class", *[header for _ in models for header in ("Recall", f"{level} interval")]],
        rows=rows,
        numeric=[False, *[True] * (2 * len(models))],
        groups=[("", 1), *[(model["label"], 2) for _, model in models]],
    )


# ---- Refits with further seeds -------------------------------------------------------


def _seed_models(results: dict) -> list[tuple[str, dict]]:
    return [(key, model) for key, model in model_items(results) if model.get("seeds")]


def _mean_sd_accuracy(summary: dict) -> str:
    mean, sd = summary["mean"], summary["sd"]
    if sd is None:
        return format_accuracy(mean)
    return f"{format_accuracy(mean)} ± {100 * sd:.{SD_POINT_DECIMALS}f}"


def _mean_sd_score(summary: dict) -> str:
    mean, sd = summary["mean"], summary["sd"]
    if sd is None:
        return format_score(mean)
    return f"{format_score(mean)} ± {sd:.{SD_SCORE_DECIMALS}f}"


def seeds_sentences(results: dict) -> list[str]:
    """Describe the refits with further seeds and the spread of their test scores."""
    models = _seed_models(results)
    if not models:
        return []
    seed = results["config"].get("seed")
    counts = {model["seeds"]["count"] for _, model in models}
    if counts == {1}:
        return [f"Each model was refit once, with seed {seed}, so the spread of its test "
                f"scores over seeds is not measured here; the option --seeds K refits each "
                f"best configuration K times."]
    sentences = []
    for _, model in models:
        summary = model["seeds"]
        seeds = join_words([str(run["seed"]) for run in summary["runs"]])
        if summary["count"] == 1:
            sentences.append(f"{_capital(_the(model))} was refit once, with seed {seeds}.")
            continue
        sentences.append(
            f"Over {summary['count']} refits of {_the(model)} (seeds {seeds}) the test "
            f"accuracy is {_mean_sd_accuracy(summary['accuracy'])} points and the "
            f"macro-average AUC {_mean_sd_score(summary['macro_auc'])} (mean ± sample "
            f"standard deviation).")
    augmentation = results["config"].get("augmentation") or {}
    augmented = augmentation.get("flip") or (augmentation.get("translate_pixels") or 0) > 0
    varied = ("the initial weights, the dropout masks, the shuffling and the augmentation"
              if augmented else "the initial weights, the dropout masks and the shuffling")
    sentences.append(f"A seed sets {varied}; the data split and the hyperparameters stay "
                     f"fixed. Every other figure and table shows the refit with seed {seed}.")
    return sentences


def uncertainty_table(results: dict) -> TableView | None:
    """Build the table of headline scores with their bootstrap intervals and spread over seeds."""
    models = [(key, model) for key, model in model_items(results)
              if model.get("intervals") and model.get("seeds")]
    if not models:
        return None
    level = _level_percent(models[0][1]["intervals"]["confidence"])
    rows = []
    for _, model in models:
        intervals, seeds = model["intervals"], model["seeds"]
        rows.append([
            model["label"], format_accuracy(model["test"]["accuracy"]),
            _accuracy_range(intervals["accuracy"]), format_score(model["roc"]["macro_auc"]),
            _score_range(intervals["macro_auc"]), str(seeds["count"]),
            _mean_sd_accuracy(seeds["accuracy"]), _mean_sd_score(seeds["macro_auc"]),
        ])
    return TableView(
        key="uncertainty",
        headers=["Model", "Accuracy", f"{level} interval", "Macro AUC", f"{level} interval",
                 "Refits", "Accuracy", "Macro AUC"],
        rows=rows,
        numeric=[False, True, True, True, True, True, True, True],
        groups=[("", 1), ("First refit", 4), ("Over the seeds, mean ± sd", 3)],
    )


def seeds_table(results: dict) -> TableView | None:
    """Build the table of refits, one row per seed: test scores, epochs and training time."""
    models = _seed_models(results)
    if not models or all(model["seeds"]["count"] == 1 for _, model in models):
        return None
    rows = []
    for _, model in models:
        for run in model["seeds"]["runs"]:
            rows.append([model["label"], str(run["seed"]), format_accuracy(run["accuracy"]),
                         format_score(run["macro_auc"]),
                         f"{run['epochs_run']} (best {run['best_epoch']})",
                         format_seconds(run.get("seconds"))])
    return TableView(
        key="seeds",
        headers=["Model", "Seed", "Test accuracy", "Macro AUC", "Epochs run", "Time"],
        rows=rows,
        numeric=[False, True, True, True, True, True],
    )


def table_captions(results: dict) -> dict[str, str]:
    """Return the captions of this module's tables, by table key."""
    seed = results["config"].get("seed")
    return {
        "comparison": ("Paired comparison of the two models on the same test images. The "
                       "interval resamples the test images; McNemar's exact test is a "
                       "binomial test on the images that exactly one model gets right."),
        "uncertainty": (f"Test scores of the refit with seed {seed} with their bootstrap "
                        "intervals, and the mean and sample standard deviation over all "
                        "refits (accuracy in percent, its deviation in percentage points)."),
        "seeds": "Every refit of the best configurations, one row per seed.",
        "recall_intervals": ("Recall per class with its bootstrap interval over the test "
                             "images."),
    }


def headline_tables(results: dict) -> list[TableView]:
    """Return the tables that follow the test-score table, in report order, where supported."""
    views = [comparison_table(results), uncertainty_table(results), seeds_table(results)]
    return [view for view in views if view is not None]
