"""Tests of the report half: narrative facts, figures, and the rendered site and PDF.

Fast and TensorFlow-free: the run folders come from tests/report_fixture.py.
PDF checks read the text with pdftotext (poppler-utils) and are skipped
when it is not installed.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree

import markupsafe
import matplotlib
import pytest

from report_fixture import make_run_dir

from report import figures, narrative, render
from report import tables as report_tables
from report.formatting import (
    format_accuracy,
    format_signed_points,
    format_timestamp,
    format_value,
)
from report.layout import figure_keys
from report.run_folder import RunFolderError, load_run

SECTION_TITLES = ("Data", "Exploration", "Preprocessing", "Models and search", "Refit",
                  "Evaluation", "Conclusions", "Reproducibility")
# A folder name cannot contain "/", so no closing tag appears in a real class name.
HOSTILE_CLASS = '<b>"cat\'s"&'
# Unbalanced and invalid mathtext: "x$^$" stops matplotlib if it parses math.
DOLLAR_CLASSES = ("price $5", "a$b$c", "x$^$")
CLASS_NAMES = ("airplane", HOSTILE_CLASS, "dog $x$", "x$^$", "_ship")
ACCURACIES = {"cnn": 0.6512, "vit": 0.5830}

needs_pdftotext = pytest.mark.skipif(shutil.which("pdftotext") is None,
                                     reason="pdftotext (poppler-utils) is not installed")


# ---- Hand-made results --------------------------------------------------------


def _model(label: str, accuracy: float, **extra) -> dict:
    return {"label": label, "test": {"accuracy": accuracy, "images": 10000}, **extra}


def _two_models(cnn: float, vit: float) -> dict:
    return {"models": {"cnn": _model("CNN", cnn), "vit": _model("ViT", vit)}}


def _per_class(recalls: dict[str, float], supports: dict[str, int] | None = None) -> list:
    supports = supports or {}
    return [{"class": name, "precision": 0.5, "recall": recall, "f1": 0.5,
             "support": supports.get(name, 100)} for name, recall in recalls.items()]


# ---- Winner and margin --------------------------------------------------------


def test_winner_names_leader_and_margin():
    sentence = narrative.winner_sentence(_two_models(0.6512, 0.5830))
    assert sentence.startswith("The CNN has the higher test accuracy")
    assert "65.1%" in sentence
    assert "58.3%" in sentence
    assert "6.8 percentage points" in sentence


def test_winner_when_second_model_leads():
    comparison = narrative.compare_accuracy(_two_models(0.41, 0.47))
    assert comparison.leader == "vit"
    assert comparison.runner_up == "cnn"
    assert comparison.margin_points == 6.0
    assert not comparison.level


def test_winner_level_under_threshold():
    sentence = narrative.winner_sentence(_two_models(0.6512, 0.6470))
    assert "are level on test accuracy" in sentence
    assert "0.4 percentage points" in sentence
    assert "higher" not in sentence


def test_winner_margin_at_threshold_not_level():
    # 65.5 - 65.0 is exactly the threshold once printed, so a winner is named.
    comparison = narrative.compare_accuracy(_two_models(0.6550, 0.6500))
    assert comparison.margin_points == 0.5
    assert not comparison.level


def test_winner_equal_accuracies_level():
    sentence = narrative.winner_sentence(_two_models(0.6, 0.6))
    assert "are level" in sentence
    assert "0.0 percentage points" in sentence


def test_winner_single_model():
    results = {"models": {"cnn": _model("CNN", 0.7)}}
    assert narrative.compare_accuracy(results) is None
    assert narrative.winner_sentence(results) == (
        "Only the CNN was evaluated: its test accuracy is 70.0%.")


# ---- Uncertainty ----------------------------------------------------------------


def _uncertainty_results(cnn: float, vit: float, images: int = 20) -> dict:
    results = _two_models(cnn, vit)
    for model in results["models"].values():
        model["test"]["images"] = images
    results["config"] = {"seed": 42, "preset": "quick"}
    return results


def test_uncertainty_all_correct_not_zero():
    sentence = narrative.uncertainty_sentence(_uncertainty_results(0.6, 1.0))
    assert "The binomial standard error of the test accuracy, in percentage points, is 11.0 " \
           "for the CNN (20 test images)." in sentence
    assert ("The ViT classified all 20 test images correctly, so the binomial standard error "
            "of its accuracy is 0. That value understates the uncertainty of an accuracy "
            "measured on 20 images.") in sentence
    assert "0.0" not in sentence


def test_uncertainty_none_correct_float32():
    # Keras reports accuracies as float32, so 1.0 may arrive as 0.99999994.
    sentence = narrative.uncertainty_sentence(_uncertainty_results(0.0, 0.99999994))
    assert "The CNN classified none of its 20 test images correctly" in sentence
    assert "The ViT classified all 20 test images correctly" in sentence
    assert "percentage points" not in sentence


# ---- Flip test-time augmentation -------------------------------------------------


def _tta_model(label: str, plain: float, flipped: float, changed: int = 0) -> dict:
    return {"label": label, "test": {"accuracy": plain, "images": 1000},
            "roc": {"macro_auc": 0.9},
            "flip_tta": {"accuracy": flipped, "loss": 1.0, "images": 1000, "micro_auc": 0.92,
                         "macro_auc": 0.9051, "changed_predictions": changed}}


TTA_INTRO = ("Flip test-time augmentation (TTA) averages the predicted probabilities of each "
             "test image and of its left-right mirror image. ")
TTA_OUTRO = (" Every other result in this report, including the comparison of the models, "
             "comes from a single pass over the test images as they are.")


def test_flip_tta_rise_and_fall():
    results = {"models": {"cnn": _tta_model("CNN", 0.651, 0.666, 20),
                          "vit": _tta_model("ViT", 0.583, 0.578, 9)}}
    assert narrative.flip_tta_sentence(results) == (
        TTA_INTRO + "It raises the test accuracy of the CNN from 65.1% to 66.6% (1.5 "
        "percentage points) and lowers the test accuracy of the ViT from 58.3% to 57.8% "
        "(0.5 percentage points)." + TTA_OUTRO)


def test_flip_tta_one_point_singular():
    results = {"models": {"cnn": _tta_model("CNN", 0.650, 0.660, 10)}}
    assert "from 65.0% to 66.0% (1.0 percentage point)." in (
        narrative.flip_tta_sentence(results))


def test_flip_tta_tie_at_printed_value():
    # 58.31% and 58.34% both print as 58.3%, so the accuracy reads as unchanged.
    results = {"models": {"vit": _tta_model("ViT", 0.5831, 0.5834, 3)}}
    assert narrative.flip_tta_sentence(results) == (
        TTA_INTRO + "It leaves the test accuracy of the ViT at 58.3%, although 3 predictions "
                    "change." + TTA_OUTRO)
    results["models"]["vit"]["flip_tta"]["changed_predictions"] = 1
    assert "at 58.3%, although 1 prediction changes." in narrative.flip_tta_sentence(results)
    results["models"]["vit"]["flip_tta"]["changed_predictions"] = 0
    assert "It leaves the test accuracy of the ViT at 58.3%. Every other" in (
        narrative.flip_tta_sentence(results))


def test_flip_tta_none_without_scores():
    results = _two_models(0.6, 0.5)
    assert narrative.flip_tta_sentence(results) is None
    assert report_tables.flip_tta_table(results) is None


def test_flip_tta_table_rows():
    results = {"models": {"cnn": _tta_model("CNN", 0.651, 0.666, 20),
                          "mlp": _model("MLP", 0.5),
                          "vit": _tta_model("ViT", 0.5831, 0.5834, 3)}}
    view = report_tables.flip_tta_table(results)
    assert view.headers == ["Model", "Single pass", "Flip TTA", "Change (points)",
                            "Predictions changed", "Single pass", "Flip TTA"]
    assert view.groups == [("", 1), ("Test accuracy", 3), ("", 1), ("Macro-average AUC", 2)]
    # The MLP has no flip-TTA scores, so it has no row.
    assert view.rows == [["CNN", "65.1%", "66.6%", "+1.5", "20", "0.900", "0.905"],
                         ["ViT", "58.3%", "58.3%", "0.0", "3", "0.900", "0.905"]]
    results["models"]["vit"]["flip_tta"]["accuracy"] = 0.578
    assert report_tables.flip_tta_table(results).rows[1][3] == "\u22120.5"


def test_signed_points_format():
    assert format_signed_points(1.5) == "+1.5"
    assert format_signed_points(-0.5) == "\u22120.5"
    assert format_signed_points(0.0) == "0.0"
    assert format_signed_points(-0.04) == "0.0"


def test_flip_tta_numbered_after_test_and_uncertainty(tmp_path):
    numbered = narrative.number_tables(_fixture_results(tmp_path))
    order = ["test", "comparison", "uncertainty", "seeds", "flip_tta", "per_class",
             "recall_intervals", "per_class_auc"]
    assert [numbered[key].number for key in order] == list(
        range(numbered["test"].number, numbered["test"].number + len(order)))
    assert numbered["flip_tta"].caption.startswith(
        "Test accuracy and macro-average AUC from a single pass over the test images and "
        "from flip test-time augmentation (TTA)")


def test_flip_tta_absent_not_numbered(tmp_path):
    results = _fixture_results(tmp_path, class_names=("a", "b"), flip_tta={})
    numbered = narrative.number_tables(results)
    assert "flip_tta" not in numbered
    assert numbered["per_class"].number == numbered["seeds"].number + 1
    assert [view.number for view in numbered.values()] == list(range(1, len(numbered) + 1))
    html = render.render_html(narrative.build_context(results, {}), print_version=False)
    assert "test-time augmentation" not in html
    assert "mirrored left to right, in that same final step" not in html


# ---- Environment ------------------------------------------------------------------


def test_environment_accelerator_rows(tmp_path):
    results = _fixture_results(tmp_path)
    rows = dict(narrative.number_tables(results)["environment"].rows)
    assert rows["Dtype policy"] == "float32 (mixed precision setting: auto)"
    assert rows["XLA compilation"] == "off (XLA setting: auto)"

    results["environment"]["accelerator"] = {"policy": "mixed_bfloat16", "xla": True}
    results["config"]["accelerator"] = {"mixed_precision": "on", "xla": "auto"}
    rows = dict(narrative.number_tables(results)["environment"].rows)
    assert rows["Dtype policy"] == (
        "mixed_bfloat16: bfloat16 compute, float32 variables (mixed precision setting: on)")
    assert rows["XLA compilation"] == "on (XLA setting: auto)"

    del results["config"]["accelerator"]
    rows = dict(narrative.number_tables(results)["environment"].rows)
    assert rows["Dtype policy"] == "mixed_bfloat16: bfloat16 compute, float32 variables"
    assert rows["XLA compilation"] == "on"


def test_environment_replica_row(tmp_path):
    results = _fixture_results(tmp_path)
    assert "Training replicas" not in dict(narrative.number_tables(results)["environment"].rows)

    results["environment"]["accelerator"]["replicas"] = 1
    rows = dict(narrative.number_tables(results)["environment"].rows)
    assert rows["Training replicas"] == "1"

    results["environment"]["accelerator"]["replicas"] = 4
    rows = dict(narrative.number_tables(results)["environment"].rows)
    assert rows["Training replicas"] == (
        "4 (MirroredStrategy: one per GPU, each batch split among them)")


def test_environment_names_the_search_workers(tmp_path):
    results = _fixture_results(tmp_path)
    assert "Search trials run by" not in dict(narrative.number_tables(results)["environment"].rows)
    for name, workers in (("cnn", ["w1", "w2"]), ("vit", ["w2", "w3"])):
        results["models"][name]["search"]["ledger"]["totals"]["workers"] = workers
    rows = dict(narrative.number_tables(results)["environment"].rows)
    assert rows["Search trials run by"] == (
        "3 worker processes (w1, w2, w3) for a chief; the hardware rows describe the chief's "
        "machine")


def test_environment_legacy_no_accelerator(tmp_path):
    rows = narrative.number_tables(_fixture_results(tmp_path, legacy=True))["environment"].rows
    assert [label for label, _ in rows] == ["Preset", "Seed", "Run created", "Python",
                                            "Platform", "Processor", "CPU cores", "GPUs"]


# ---- Search -----------------------------------------------------------------------


def test_search_sentence_guard_among_completed():
    model = {"label": "CNN", "search": {"trials": 5, "completed": 5, "failed": 0,
                                        "stopped_by_guard": 2, "seconds": 70.0}}
    assert narrative.search_sentence(model) == (
        "The search for the CNN ran 5 trials in 1 min 10 s, of which 5 completed (2 of them "
        "stopped early by a guard) and 0 failed.")
    model["search"]["stopped_by_guard"] = 0
    assert narrative.search_sentence(model) == (
        "The search for the CNN ran 5 trials in 1 min 10 s, of which 5 completed and 0 failed.")


# ---- Confusions and difficulty ------------------------------------------------


def test_confused_pair_3x3():
    # Off-diagonal maximum is row b (true), column a (predicted): 7.
    matrix = [[5, 1, 0],
              [7, 4, 2],
              [0, 3, 9]]
    pairs = narrative.most_confused_pairs(matrix, ["a", "b", "c"])
    assert pairs == [narrative.ConfusedPair("b", "a", 7)]
    sentence = narrative.confusion_sentence({"label": "CNN", "confusion_matrix": matrix},
                                            ["a", "b", "c"])
    assert sentence == "The most frequent confusion of the CNN is true b predicted as a, 7 times."


def test_confused_pair_ties_listed():
    matrix = [[5, 2, 0],
              [2, 5, 0],
              [0, 1, 5]]
    pairs = narrative.most_confused_pairs(matrix, ["a", "b", "c"])
    assert [(p.true_class, p.predicted_class) for p in pairs] == [("a", "b"), ("b", "a")]
    sentence = narrative.confusion_sentence({"label": "ViT", "confusion_matrix": matrix},
                                            ["a", "b", "c"])
    assert "tied with true b as a" in sentence


def test_confused_pair_none_when_diagonal():
    matrix = [[3, 0], [0, 4]]
    assert narrative.most_confused_pairs(matrix, ["a", "b"]) == []
    sentence = narrative.confusion_sentence({"label": "CNN", "confusion_matrix": matrix},
                                            ["a", "b"])
    assert sentence == "The CNN misclassified no test image."


def test_recall_extremes_easiest_hardest():
    extremes = narrative.recall_extremes(_per_class({"a": 0.8, "b": 0.3, "c": 0.6}))
    assert extremes.easiest == ["a"]
    assert extremes.hardest == ["b"]
    sentence = narrative.difficulty_sentence(
        {"label": "CNN", "per_class": _per_class({"a": 0.8, "b": 0.3, "c": 0.6})})
    assert sentence == ("For the CNN, the easiest class is a (recall 0.800) and the hardest "
                        "class is b (recall 0.300).")


def test_recall_extremes_skip_absent_class():
    per_class = _per_class({"a": 0.8, "b": 0.0, "c": 0.6}, supports={"b": 0})
    extremes = narrative.recall_extremes(per_class)
    assert extremes.hardest == ["c"]


def test_recall_extremes_ties():
    extremes = narrative.recall_extremes(_per_class({"a": 0.5, "b": 0.9, "c": 0.5}))
    assert extremes.hardest == ["a", "c"]
    sentence = narrative.difficulty_sentence(
        {"label": "CNN", "per_class": _per_class({"a": 0.5, "b": 0.9, "c": 0.5})})
    assert "the hardest classes are a and c (recall 0.500 each)" in sentence


def test_recall_all_equal_sentence():
    sentence = narrative.difficulty_sentence(
        {"label": "CNN", "per_class": _per_class({"a": 0.5, "b": 0.5})})
    assert sentence == "For the CNN, every class has the same recall, 0.500."


def test_shared_hardest_identical_sets():
    results = {"models": {
        "cnn": {"label": "CNN", "per_class": _per_class({"a": 0.2, "b": 0.9, "c": 0.2})},
        "vit": {"label": "ViT", "per_class": _per_class({"a": 0.1, "b": 0.5, "c": 0.1})},
    }}
    assert narrative.shared_hardest_sentence(results) == (
        "Both models have the lowest recall on the same classes: a and c.")


def test_shared_hardest_none_when_recalls_equal():
    # A model with the same recall on every class has no hardest class.
    results = {"models": {
        "cnn": {"label": "CNN", "per_class": _per_class({"dark": 0.2, "light": 0.9})},
        "vit": {"label": "ViT", "per_class": _per_class({"dark": 1.0, "light": 1.0})},
    }}
    assert narrative.shared_hardest_sentence(results) is None
    assert narrative.difficulty_sentence(results["models"]["vit"]) == (
        "For the ViT, every class has the same recall, 1.000.")


def test_shared_hardest_partial_overlap():
    results = {"models": {
        "cnn": {"label": "CNN", "per_class": _per_class({"a": 0.0, "b": 0.0, "c": 0.4})},
        "vit": {"label": "ViT", "per_class": _per_class({"a": 0.0, "b": 0.3, "c": 0.4})},
    }}
    assert narrative.shared_hardest_sentence(results) == (
        "For both models, a is among the classes with the lowest recall.")


# ---- Other facts ------------------------------------------------------------------


def _fixture_results(tmp_path: Path, **options) -> dict:
    run_dir = make_run_dir(tmp_path / "run", **options)
    return json.loads((run_dir / "results.json").read_text(encoding="utf-8"))


def test_auc_undefined_for_absent_class(tmp_path):
    results = _fixture_results(tmp_path, class_names=("a", "b", "c"),
                               null_auc_classes=("b",))
    model = results["models"]["cnn"]
    model["per_class"][1]["support"] = 0
    assert "The AUC of class b is undefined because no test image belongs to it." in (
        narrative.auc_sentence(model))
    table = narrative.number_tables(results)["per_class_auc"]
    assert table.rows[1][1] == "undefined"


def test_auc_comparison_names_higher(tmp_path):
    results = _fixture_results(tmp_path)
    for model in results["models"].values():
        del model["intervals"]  # without intervals, no caveat about their overlap
    results["models"]["cnn"]["roc"]["macro_auc"] = 0.91
    results["models"]["vit"]["roc"]["macro_auc"] = 0.9304
    assert narrative.auc_comparison_sentence(results) == (
        "The ViT has the higher macro-average AUC, 0.930 against 0.910 for the CNN.")
    results["models"]["vit"]["roc"]["macro_auc"] = 0.9104
    assert narrative.auc_comparison_sentence(results) == (
        "Both models have the same macro-average AUC to three decimals, 0.910.")
    results["models"]["vit"]["roc"]["macro_auc"] = float("nan")
    assert narrative.auc_comparison_sentence(results) is None


def test_auc_comparison_three_models_all(tmp_path):
    results = _fixture_results(tmp_path, accuracies={"cnn": 0.6, "vit": 0.5, "mlp": 0.4})
    for model in results["models"].values():
        model["roc"]["macro_auc"] = 0.8
    assert narrative.auc_comparison_sentence(results).startswith(
        "All models have the same macro-average AUC")


def test_ranking_without_accuracy_explained():
    model = {"label": "CNN", "test": {"accuracy": 0.5, "images": 20},
             "per_class": _per_class({"a": 1.0, "b": 0.0}),
             "roc": {"micro_auc": 1.0, "macro_auc": 1.0, "per_class_auc": {"a": 1.0, "b": 1.0}}}
    sentence = narrative.ranking_without_accuracy_sentence(model)
    assert sentence.startswith(
        "The CNN has a macro-average AUC of 1.000 but a test accuracy of 50.0%, within 5 "
        "percentage points of the chance level of 50.0% for 2 classes.")
    assert "poorly calibrated" in sentence
    assert narrative.auc_sentence(model) == (
        "The CNN has a micro-average AUC of 1.000 and a macro-average AUC of 1.000. Its test "
        "accuracy of 50.0%, however, is within 5 percentage points of the chance level of "
        "50.0% for 2 classes." + sentence.split("2 classes.")[1])


def test_ranking_without_accuracy_only_when_shown():
    model = {"label": "CNN", "test": {"accuracy": 0.5, "images": 20},
             "per_class": _per_class({"a": 1.0, "b": 0.0}),
             "roc": {"micro_auc": 0.9, "macro_auc": 0.899, "per_class_auc": {}}}
    assert narrative.ranking_without_accuracy_sentence(model) is None
    model["roc"]["macro_auc"] = 0.95
    model["test"]["accuracy"] = 0.551  # 55.1% is 5.1 points above chance
    assert narrative.ranking_without_accuracy_sentence(model) is None
    model["test"]["accuracy"] = 0.55  # 5.0 points is still near chance
    assert narrative.ranking_without_accuracy_sentence(model) is not None


def test_ranking_without_accuracy_in_conclusions(tmp_path):
    results = _fixture_results(tmp_path, class_names=("a", "b"),
                               accuracies={"cnn": 0.5, "vit": 0.9})
    results["models"]["cnn"]["roc"]["macro_auc"] = 1.0
    conclusions = narrative.conclusion_sentences(results)
    assert sum("chance level" in sentence for sentence in conclusions) == 1


def test_balance_sentence_min_max(tmp_path):
    results = _fixture_results(tmp_path, class_names=("a", "b", "c", "d"))
    sentence = narrative.balance_sentence(results)
    # The fixture gives the first class 3 extra training images: 43 of 163.
    assert sentence.startswith("Shares of the training images range from 24.54% (b, c and d) "
                               "to 26.38% (a)")
    assert sentence.endswith("every class has 25.00% of the test images.")


def test_histogram_fact_names_value_and_channel(tmp_path):
    # More pixels sit at 0 than at 255, so the caption must name the pixel value it compares.
    results = _fixture_results(tmp_path)
    channels = results["exploration"]["pixels"]["channels"]
    for name, saturated, zero in (("red", 0.024, 0.01), ("green", 0.01, 0.05),
                                  ("blue", 0.002, 0.03)):
        channels[name]["saturated_share"] = saturated
        channels[name]["zero_share"] = zero
    assert narrative.histogram_fact(results) == (
        "The red channel has the largest share of values at 255 (2.40%), and the green "
        "channel has the largest share of values at 0 (5.00%).")


def test_histogram_fact_ties_and_all_equal(tmp_path):
    results = _fixture_results(tmp_path)
    channels = results["exploration"]["pixels"]["channels"]
    for name in ("red", "green", "blue"):
        channels[name]["zero_share"] = 0.01
        channels[name]["saturated_share"] = 0.0 if name == "blue" else 0.02
    assert narrative.histogram_fact(results) == (
        "The red and green channels have the largest share of values at 255 (2.00% each), "
        "and every channel has 1.00% of its values at 0.")


def test_sample_sentences_request_over_data(tmp_path):
    results = _fixture_results(tmp_path)
    results["data"]["available"] = {"train": 60, "test": 20}
    results["config"]["train_images"] = 400
    results["config"]["test_images"] = None
    assert narrative.sample_sentences(results) == [
        "The preset asks for up to 400 training images, and the data set has 60, so all were "
        "used.",
        "The preset uses all 20 test images.",
    ]


def test_sample_sentences_request_under_data(tmp_path):
    results = _fixture_results(tmp_path)
    results["config"]["train_images"] = 4000
    results["config"]["test_images"] = 10000
    assert narrative.sample_sentences(results) == [
        "The preset asks for a stratified sample of 4,000 of the 50,000 training images.",
        "The preset asks for up to 10,000 test images, and the data set has 10,000, so all "
        "were used.",
    ]
    del results["data"]["available"]
    assert narrative.sample_sentences(results)[0] == (
        "The preset asks for a stratified sample of up to 4,000 training images.")


def test_energy_sentence_shares_not_whole(tmp_path):
    results = _fixture_results(tmp_path, filter_widths=(0.04,))
    fourier = results["exploration"]["fourier"]
    fourier["low_pass_energy_kept"] = [0.857]
    fourier["high_pass_energy_kept"] = [0.0827]
    sentence = narrative.energy_sentence(results)
    assert sentence.startswith("Of the images' spectral energy, at width 0.04 the low-pass "
                               "keeps 85.70% and the high-pass 8.27%.")
    assert "add up to less than 100%" in sentence
    fourier["high_pass_energy_kept"] = [0.143]
    assert "100%" not in narrative.energy_sentence(results)


def test_source_name_drops_directories(tmp_path):
    results = _fixture_results(tmp_path)
    assert narrative.source_name(results) == "cifar10-jpeg.tar.xz"
    results["data"]["source"] = "/home/user/data/cifar10/"
    assert narrative.source_name(results) == "cifar10"
    results["data"]["source"] = "C:\\data\\cifar10-jpeg.tar.xz"
    assert narrative.source_name(results) == "cifar10-jpeg.tar.xz"
    results["data"]["source"] = None
    assert narrative.source_name(results) is None


def test_subtitle_skips_dataset_in_title(tmp_path):
    results = _fixture_results(tmp_path)
    assert narrative.subtitle(results) == "Preset quick, seed 42"
    results["title"] = "CNN versus Vision Transformer"
    assert narrative.subtitle(results) == "CIFAR-10, preset quick, seed 42"


def test_reuse_sentence_names_stages(tmp_path):
    results = _fixture_results(tmp_path)
    assert narrative.reuse_sentence(results) is None
    del results["timings"]["reused"]
    assert narrative.reuse_sentence(results) is None
    results["timings"]["reused"] = ["data", "search_cnn"]
    assert narrative.reuse_sentence(results) == (
        "The outputs of the stages Data and Search (CNN) were reused from an earlier run, so "
        "their wall times are the times of that original computation, and the total includes "
        "them.")
    table = narrative.number_tables(results)["timings"]
    assert [row[0] for row in table.rows[:3]] == [
        "Data (reused)", "Exploration", "Search (CNN) (reused)"]
    assert "marked reused" in table.caption


def test_augmentation_sentence_from_config():
    assert narrative.augmentation_sentence({}) == (
        "The training images are not augmented: every epoch sees them unchanged.")
    sentence = narrative.augmentation_sentence(
        {"augmentation": {"flip": True, "translate_pixels": 4}})
    assert sentence.startswith("Each training image is mirrored left to right with "
                               "probability 1/2 and shifted by up to 4 pixels")
    assert "Validation and test images are never changed." in sentence
    one = narrative.augmentation_sentence({"augmentation": {"flip": False,
                                                            "translate_pixels": 1}})
    assert "shifted by up to 1 pixel along" in one
    assert "mirrored" not in one


def test_resume_sentences_name_epoch(tmp_path):
    results = _fixture_results(tmp_path)
    assert narrative.resume_sentences(results) == []
    results["models"]["vit"]["refit"]["resumed_at_epoch"] = 2
    sentences = narrative.resume_sentences(results)
    assert len(sentences) == 1
    assert sentences[0].startswith("The ViT refit was interrupted and continued from its "
                                   "backup after epoch 2,")
    results["timings"]["resumed"] = {"refit_vit": 65.0}
    results["timings"]["heartbeat_seconds"] = 5.0
    assert narrative.resume_sentences(results)[1] == (
        "The stage Refit (ViT) began in a run that was interrupted and finished in a later "
        "one. The wall times include 1 min 05 s from the interrupted runs, recorded every 5 s, "
        "so up to 5 s per interruption are missing.")
    table = narrative.number_tables(results)["timings"]
    assert "Refit (ViT) (resumed)" in [row[0] for row in table.rows]
    assert "marked resumed" in table.caption
    epochs = results["models"]["cnn"]["refit"]["epochs_run"]
    results["models"]["cnn"]["refit"]["resumed_at_epoch"] = epochs
    assert f"after its last epoch ({epochs})" in narrative.resume_sentences(results)[0]


def test_f1_figure_marks_undefined_class(tmp_path):
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figures.plot_per_class_scores([("CNN", [0.5, None]), ("ViT", [0.25, None])],
                                      ["cat", "dog"], "F1 score", tmp_path / "f1.svg")
    texts = _svg_texts(tmp_path / "f1.svg")
    assert "cat" in texts
    assert "dog (undefined)" in texts


def test_f1_sentence_skips_undefined_class(tmp_path):
    results = _fixture_results(tmp_path)
    classes = len(results["data"]["class_names"])
    for model in results["models"].values():
        model["per_class"][0]["f1"] = None
        model["per_class"][0]["recall"] = None
    sentence = narrative.f1_wins_sentence(results)
    assert f"of {classes - 1}" in sentence
    assert sentence.endswith("; F1 is undefined for 1 class without test images.")
    assert sum(narrative.f1_wins(results).values()) <= classes - 1


def test_equal_recall_scope_names_untested(tmp_path):
    results = _fixture_results(tmp_path)
    model = results["models"]["cnn"]
    for row in model["per_class"]:
        row["recall"] = 1.0
    model["per_class"][0].update(recall=None, support=0)
    assert "every class with test images has the same recall, 1.000" in (
        narrative.difficulty_sentence(model))


def test_fourier_sentence_rounding_claim(tmp_path):
    results = _fixture_results(tmp_path)
    assert "rounding restores every pixel exactly" in narrative.fourier_sentence(results)
    results["exploration"]["fourier"]["reconstruction_max_abs_error"] = 0.7
    assert "rounding" not in narrative.fourier_sentence(results)


def test_parameter_sentence_ratio(tmp_path):
    results = _fixture_results(tmp_path)
    results["models"]["cnn"]["parameters"] = 100_000
    results["models"]["vit"]["parameters"] = 250_000
    assert narrative.parameter_sentence(results) == (
        "Parameters: 100,000 for the CNN and 250,000 for the ViT. The ViT has 2.50 times as "
        "many parameters as the CNN.")


def test_figures_numbered_in_order(tmp_path):
    results = _fixture_results(tmp_path)
    paths = {"roc": "figures/roc.png", "class_balance": "figures/class_balance.png",
             "confusion_vit": "figures/confusion_vit.png"}
    numbered = narrative.number_figures(results, paths)
    assert [view.key for view in numbered.values()] == ["class_balance", "confusion_vit", "roc"]
    assert [view.number for view in numbered.values()] == [1, 2, 3]
    assert "Micro/macro AUC: CNN" in numbered["roc"].caption


def test_captions_state_facts(tmp_path):
    results = _fixture_results(tmp_path)
    keys = ["fourier", "pixel_histograms", "confusion_cnn"]
    numbered = narrative.number_figures(results, {key: f"figures/{key}.png" for key in keys})
    assert "Largest reconstruction error: 2.1e-13." in numbered["fourier"].caption
    assert "largest share of values at 255" in numbered["pixel_histograms"].caption
    assert "Most frequent confusion: true" in numbered["confusion_cnn"].caption


# ---- Run folder -------------------------------------------------------------------


def test_run_folder_missing_results(tmp_path):
    with pytest.raises(RunFolderError, match="missing results.json"):
        load_run(tmp_path)


def test_run_folder_wrong_schema_version(tmp_path):
    run_dir = make_run_dir(tmp_path / "run")
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    results["schema_version"] = 2
    (run_dir / "results.json").write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(RunFolderError, match="schema_version 2"):
        load_run(run_dir)


def test_run_folder_bad_matrix_shape(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b", "c"))
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    results["models"]["vit"]["confusion_matrix"] = [[1, 0], [0, 1]]
    (run_dir / "results.json").write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(RunFolderError, match="models.vit.confusion_matrix"):
        load_run(run_dir)


def test_run_folder_best_epoch_zero(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b"))
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    results["models"]["cnn"]["refit"]["best_epoch"] = 0
    (run_dir / "results.json").write_text(json.dumps(results), encoding="utf-8")
    with pytest.raises(RunFolderError, match="best_epoch is 0"):
        load_run(run_dir)


def test_timestamp_format_utc():
    assert format_timestamp("2026-12-04T21:10:00+01:00") == "2026-12-04 20:10 UTC"
    assert format_timestamp("not a date") == "not a date"


# ---- Figures ------------------------------------------------------------------


@pytest.mark.parametrize("classes", [2, 20])
def test_figures_any_class_count(tmp_path, classes):
    names = tuple(f"class {index} with a long name" for index in range(classes))
    run = load_run(make_run_dir(tmp_path / "run", class_names=names, spectrum_images=12))
    written = figures.draw_figures(run.results, run.arrays, tmp_path / "site")
    # The fixture has the inputs of every figure, so all of the report's figures are drawn.
    assert sorted(written) == sorted(figure_keys(list(run.results["models"])))
    for relative in written.values():
        assert (tmp_path / "site" / relative).stat().st_size > 1000


def _svg_texts(path: Path) -> list[str]:
    # With svg.fonttype "none", each text object is one <text> element holding
    # its string, while mathtext is drawn as separate glyphs.
    tree = ElementTree.parse(path)
    return ["".join(element.itertext())
            for element in tree.iter("{http://www.w3.org/2000/svg}text")]


def test_figures_show_dollars_literally(tmp_path):
    run = load_run(make_run_dir(tmp_path / "run", class_names=DOLLAR_CLASSES))
    model = run.results["models"]["cnn"]
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figures.plot_confusion_matrix(model["confusion_matrix"], DOLLAR_CLASSES,
                                      "CNN $1 run", tmp_path / "confusion.svg")
        figures.plot_class_balance(run.results["exploration"]["class_balance"],
                                   tmp_path / "balance.svg")
        figures.plot_samples(run.arrays["samples"], run.arrays["sample_labels"],
                             DOLLAR_CLASSES, tmp_path / "samples.svg")
        figures.plot_roc([("CNN", model["roc"])], DOLLAR_CLASSES, tmp_path / "roc.svg")

    confusion = _svg_texts(tmp_path / "confusion.svg")
    assert "CNN $1 run" in confusion
    for name in DOLLAR_CLASSES:
        assert confusion.count(name) == 2, name  # one tick label on each axis
        assert name in _svg_texts(tmp_path / "balance.svg"), name
        assert name in _svg_texts(tmp_path / "samples.svg"), name
        roc_labels = [text for text in _svg_texts(tmp_path / "roc.svg")
                      if text.startswith(f"{name} (0.")]
        assert len(roc_labels) == 1, name


# ---- Rendered site and PDF ------------------------------------------------------


class _ImageSources(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images: list[dict] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))


def _pdf_text(pdf: Path) -> str:
    completed = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                               capture_output=True, text=True)
    return completed.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Render the fixture once into a folder that already contains an older site."""
    root = tmp_path_factory.mktemp("render")
    run_dir = make_run_dir(root / "run", class_names=CLASS_NAMES, accuracies=ACCURACIES,
                           null_auc_classes=("_ship",))
    out_dir = root / "site"
    (out_dir / "figures").mkdir(parents=True)
    (out_dir / "figures" / "stale.png").write_bytes(b"old")
    (out_dir / "CNAME").write_text("report.example.org\n", encoding="utf-8")
    paths = render.render_report(run_dir, out_dir)
    return {"root": root, "run_dir": run_dir, "out_dir": out_dir, "paths": paths,
            "html": paths["site"].read_text(encoding="utf-8")}


def test_render_returns_paths(rendered):
    out_dir = rendered["out_dir"]
    assert rendered["paths"] == {"site": out_dir / "index.html", "pdf": out_dir / "study.pdf",
                                 "results": out_dir / "results.json"}
    for path in rendered["paths"].values():
        assert path.is_file()


def test_render_images_exist(rendered):
    parser = _ImageSources()
    parser.feed(rendered["html"])
    assert len(parser.images) == len(figure_keys(["cnn", "vit"]))
    for image in parser.images:
        assert image["alt"]
        assert not image["src"].startswith(("/", "http:", "https:", "file:"))
        assert (rendered["out_dir"] / image["src"]).is_file(), image["src"]


def test_render_escapes_class_names(rendered):
    html = rendered["html"]
    assert str(markupsafe.escape(HOSTILE_CLASS)) in html
    assert HOSTILE_CLASS not in html
    assert "<b>" not in html


def test_render_no_external_links(rendered):
    assert "http://" not in rendered["html"]
    assert "https://" not in rendered["html"]
    assert 'href="study.pdf"' in rendered["html"]
    assert 'href="results.json"' in rendered["html"]


def test_render_numbers_in_order(rendered):
    html = rendered["html"]
    for label in ("Figure", "Table"):
        numbers = [int(number) for number in re.findall(rf"{label} (\d+)\.</span>", html)]
        assert numbers == list(range(1, len(numbers) + 1)), label
        assert numbers, label


def test_render_data_wording(rendered):
    html = rendered["html"]
    assert "read from <code>cifar10-jpeg.tar.xz</code>" in html
    assert '<p class="subtitle">Preset quick, seed 42. Run created' in html
    assert "settings: training sample" not in html
    assert "keeps what the low-pass removes" not in html


def test_render_flip_tta_section(rendered):
    html = rendered["html"]
    assert "<h3>Flip test-time augmentation</h3>" in html
    # The fixture's 100 test images: the CNN gains 3, the ViT loses 1.
    assert ("It raises the test accuracy of the CNN from 65.1% to 68.1% (3.0 percentage "
            "points) and lowers the test accuracy of the ViT from 58.3% to 57.3% (1.0 "
            "percentage point).") in html
    assert '<th colspan="3" class="group">Test accuracy</th>' in html
    assert '<td class="num">+3.0</td>' in html
    assert '<td class="num">\u22121.0</td>' in html
    assert "predicts them a second\n      time, mirrored left to right" in html


def test_render_spaces_and_accelerator(rendered):
    html = rendered["html"]
    assert "<p>The CNN searches the modern search space" in html
    assert "<td>optimizer: AdamW</td>" in html
    assert "<td>Dtype policy</td>" in html
    assert "<td>off (XLA setting: auto)</td>" in html


def test_render_undefined_auc_shown(rendered):
    assert "undefined" in rendered["html"]


def test_render_copies_results(rendered):
    copied = rendered["paths"]["results"].read_bytes()
    assert copied == (rendered["run_dir"] / "results.json").read_bytes()


def test_render_replaces_old_site(rendered):
    out_dir = rendered["out_dir"]
    assert not (out_dir / "figures" / "stale.png").exists()
    assert (out_dir / "CNAME").read_text(encoding="utf-8") == "report.example.org\n"
    assert (out_dir / ".nojekyll").is_file()
    leftovers = [entry.name for entry in rendered["root"].iterdir()
                 if entry.name.startswith(".site.")]
    assert leftovers == []


@needs_pdftotext
def test_pdf_pages_and_titles(rendered):
    text = _pdf_text(rendered["paths"]["pdf"])
    assert text.count("\f") >= 3
    for title in SECTION_TITLES:
        assert re.search(rf"^\s*{re.escape(title)}\s*$", text, re.MULTILINE), title
    assert "CNN versus Vision Transformer on" in text


@needs_pdftotext
def test_pdf_shows_accuracies(rendered):
    text = _pdf_text(rendered["paths"]["pdf"])
    for accuracy in ACCURACIES.values():
        assert format_accuracy(accuracy) in text
    assert "Page 2 of" in text


@needs_pdftotext
def test_pdf_shows_new_tables(rendered):
    text = _pdf_text(rendered["paths"]["pdf"])
    assert "Flip test-time augmentation" in text
    assert re.search(r"CNN\s+65\.1%\s+68\.1%\s+\+3\.0\s+7\s", text)
    assert re.search(r"ViT\s+58\.3%\s+57\.3%\s+\u22121\.0\s+4\s", text)
    assert "optimizer: AdamW" in text
    assert re.search(r"learning-rate schedule\s+cosine decay to zero \(fixed\)", text)
    assert re.search(r"Dtype policy\s+float32 \(mixed precision setting: auto\)", text)
    assert re.search(r"XLA compilation\s+off \(XLA setting: auto\)", text)


@needs_pdftotext
def test_pdf_shows_class_names_literally(rendered):
    text = _pdf_text(rendered["paths"]["pdf"])
    assert HOSTILE_CLASS in text
    assert "x$^$" in text
    assert "&lt;" not in text


@needs_pdftotext
def test_pdf_letter_page_size(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b"))
    paths = render.render_report(run_dir, tmp_path / "site", page_size="Letter")
    info = subprocess.run(["pdfinfo", str(paths["pdf"])], capture_output=True, text=True,
                          check=True).stdout
    assert "612 x 792 pts" in info


def test_render_rejects_page_size(tmp_path):
    with pytest.raises(ValueError, match="page size 'A3'"):
        render.render_report(tmp_path / "run", tmp_path / "site", page_size="A3")


def test_render_failure_keeps_old_site(tmp_path, monkeypatch):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b", "c"))
    out_dir = tmp_path / "site"
    out_dir.mkdir()
    (out_dir / "index.html").write_text("previous site", encoding="utf-8")
    (out_dir / ".nojekyll").touch()

    def broken_plot(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(figures, "plot_roc", broken_plot)
    with pytest.raises(RuntimeError, match="plot failed"):
        render.render_report(run_dir, out_dir)

    assert sorted(entry.name for entry in out_dir.iterdir()) == [".nojekyll", "index.html"]
    assert (out_dir / "index.html").read_text(encoding="utf-8") == "previous site"
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["run", "site"]


def _fail_with_no_space(path: Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(b"partial")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _patch_no_space(monkeypatch, writer: str) -> None:
    if writer == "pdf":
        monkeypatch.setattr(render, "render_pdf",
                            lambda html, site_dir, pdf_path: _fail_with_no_space(pdf_path))
    else:
        monkeypatch.setattr(figures, "save_figure",
                            lambda figure, path: _fail_with_no_space(path))


@pytest.mark.parametrize("writer", ["pdf", "figure"])
def test_render_disk_full_keeps_old_site(tmp_path, monkeypatch, writer):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b")).resolve()
    results_before = (run_dir / "results.json").read_bytes()
    out_dir = tmp_path.resolve() / "site"
    out_dir.mkdir()
    (out_dir / "index.html").write_text("previous site", encoding="utf-8")
    _patch_no_space(monkeypatch, writer)

    with pytest.raises(render.OutputFolderError) as raised:
        render.render_report(run_dir, out_dir)

    message = str(raised.value)
    assert message.startswith(f"ran out of space while writing the report into {out_dir} "
                              f"(No space left on device).")
    assert "The previous site there is unchanged." in message
    assert f"The run's results in {run_dir / 'results.json'} are safe." in message
    assert message.endswith("Free some space, then rebuild the report with: python "
                            f"run_study.py --render-only --run-dir {run_dir} --out {out_dir}")
    assert raised.value.__cause__.errno == errno.ENOSPC
    assert sorted(entry.name for entry in out_dir.iterdir()) == ["index.html"]
    assert (out_dir / "index.html").read_text(encoding="utf-8") == "previous site"
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["run", "site"]
    assert (run_dir / "results.json").read_bytes() == results_before


def test_render_disk_full_first_site(tmp_path, monkeypatch):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b")).resolve()
    out_dir = tmp_path.resolve() / "my site"
    _patch_no_space(monkeypatch, "figure")
    with pytest.raises(render.OutputFolderError, match="ran out of space") as raised:
        render.render_report(run_dir, out_dir, force=True)
    assert "previous site" not in str(raised.value)
    # The folder name has a space, so the command quotes it.
    assert str(raised.value).endswith(f"--out '{out_dir}' --force")
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["run"]


def test_output_parent_is_file_rejected(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b"))
    parent = tmp_path / "notes.txt"
    parent.write_text("not a folder", encoding="utf-8")
    out_dir = parent / "reports" / "site"
    for call in (lambda: render.check_output_folder(run_dir, out_dir),
                 lambda: render.render_report(run_dir, out_dir)):
        with pytest.raises(render.OutputFolderError) as raised:
            call()
        assert str(raised.value) == (
            f"cannot create the output folder {out_dir}: {parent} is a file, not a "
            f"folder. Move that file or choose another output folder.")
    assert parent.read_text(encoding="utf-8") == "not a folder"
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["notes.txt", "run"]


def test_output_path_is_file_rejected(tmp_path):
    out_path = tmp_path / "site"
    out_path.write_text("a file", encoding="utf-8")
    with pytest.raises(render.OutputFolderError,
                       match="exists and is not a folder: remove it or choose another"):
        render.check_output_folder(tmp_path / "run", out_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_parent_read_only_rejected(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b"))
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(render.OutputFolderError) as raised:
            render.render_report(run_dir, parent / "site")
        assert str(raised.value).startswith(
            f"cannot write the output folder {parent / 'site'}: creating a file in "
            f"{parent} failed (Permission denied). Make {parent} writable")
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o700)


def test_output_probe_read_only_filesystem(tmp_path, monkeypatch):
    # chmod cannot stop root, so a read-only mount is simulated at the file
    # creation the probe makes.
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(render.tempfile, "NamedTemporaryFile", read_only)
    with pytest.raises(render.OutputFolderError, match=re.escape(
            f"creating a file in {tmp_path} failed (Read-only file system). Make "
            f"{tmp_path} writable or choose another output folder.")):
        render.probe_output_folder(tmp_path / "site")


def test_output_probe_leaves_nothing(tmp_path):
    render.probe_output_folder(tmp_path / "new" / "site")
    render.check_output_folder(tmp_path / "run", tmp_path / "site")
    assert list(tmp_path.iterdir()) == []


def test_render_refuses_foreign_files(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b"))
    out_dir = tmp_path / "site"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(render.OutputFolderError, match="notes.txt"):
        render.render_report(run_dir, out_dir)
    assert (out_dir / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["run", "site"]


def test_output_check_force_allows_foreign(tmp_path):
    out_dir = tmp_path / "site"
    out_dir.mkdir()
    (out_dir / "page-1.png").write_bytes(b"old")
    with pytest.raises(render.OutputFolderError, match="page-1.png"):
        render.check_output_folder(tmp_path / "run", out_dir)
    render.check_output_folder(tmp_path / "run", out_dir, force=True)


def test_render_refuses_run_folder_as_output(tmp_path):
    run_dir = make_run_dir(tmp_path / "run", class_names=("a", "b"))
    with pytest.raises(render.OutputFolderError, match="contains the run folder"):
        render.render_report(run_dir, tmp_path)


def test_cli_missing_run_folder(tmp_path, caplog):
    code = render.main([str(tmp_path / "absent"), str(tmp_path / "site")])
    assert code == 2
    assert "run folder not found" in caplog.text
    assert not (tmp_path / "site").exists()


def test_context_is_deep_copy_safe(tmp_path):
    # build_context must not modify the results it reads.
    results = _fixture_results(tmp_path)
    before = copy.deepcopy(results)
    narrative.build_context(results, {})
    assert results == before


def test_space_entry_formats():
    from report.spaces import format_space_entry

    assert format_space_entry({"min": 1, "max": 3, "step": 1}) == "1 to 3"
    assert format_space_entry({"min": 512, "max": 2048, "step": 512}) == (
        "512 to 2,048, step 512")
    assert format_space_entry({"min": 1e-5, "max": 1e-3, "step": None, "log": True}) == (
        "1e-05 to 0.001, log-uniform")
    assert format_space_entry({"min": 3, "max": 3, "step": 1}) == "3 (fixed)"
    assert format_space_entry(["relu", "elu", "gelu"]) == "relu, elu or gelu"
    assert format_space_entry(["adam"]) == "adam (fixed)"
    assert format_space_entry([512, 1024, 2048]) == "512; 1,024 or 2,048"


def test_format_value_thousands_separator():
    assert format_value(999) == "999"
    assert format_value(1000) == "1,000"
    assert format_value(4000) == "4,000"
    assert format_value(3600.0) == "3,600"
    assert format_value(0.0016) == "0.0016"
    assert format_value([128, 4096]) == "[128; 4,096]"
    assert format_value({"units": 1024, "dropout": 0.3}) == "units: 1,024; dropout: 0.3"


def test_tables_separate_thousands_not_seed(tmp_path):
    results = _fixture_results(tmp_path)
    results["config"]["seed"] = 2024
    results["config"]["cnn"]["search"]["train_images"] = 4000
    tables = narrative.number_tables(results)
    settings = {row[0]: row[1] for row in tables["search_settings"].rows}
    assert settings["train images"] == "4,000"
    environment = dict(tables["environment"].rows)
    assert environment["Seed"] == "2024"


def test_histogram_fact_same_channel_both_ends():
    from report.narrative import histogram_fact

    results = {"exploration": {"pixels": {"channels": {
        "red": {"saturated_share": 0.0114, "zero_share": 0.0044},
        "green": {"saturated_share": 0.0095, "zero_share": 0.0039},
        "blue": {"saturated_share": 0.0123, "zero_share": 0.0108}}}}}
    assert histogram_fact(results) == (
        "The blue channel has the largest share of values at both ends: 1.23% at 255 "
        "and 1.08% at 0.")


def test_render_recovers_interrupted_swap(tmp_path):
    # A render killed between its two renames leaves the old site aside and
    # no output folder; one killed earlier leaves its partial new folder.
    old = tmp_path / ".site.old-1234abcd"
    old.mkdir()
    (old / "index.html").write_text("old site")
    partial = tmp_path / ".site.new-zz"
    partial.mkdir()
    (partial / "index.html").write_text("half")
    render._recover_interrupted_render(tmp_path / "site")
    assert (tmp_path / "site" / "index.html").read_text() == "old site"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]
