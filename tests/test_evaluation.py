import logging

import numpy as np
import pytest
from sklearn.metrics import auc

from study.evaluation import evaluate_predictions, roc_analysis


def test_binary_auc_by_hand():
    # Positives score 0.35 and 0.8, negatives 0.1 and 0.4: three of the four
    # positive-negative pairs are ordered correctly, so the AUC is 3/4.
    y = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    roc = roc_analysis(y, scores, ["a", "b"])
    assert roc["per_class_auc"]["b"] == pytest.approx(0.75)
    assert roc["per_class_auc"]["a"] == pytest.approx(0.75)
    # Both classes have the same curve, a step at FPR 0.5, so the macro
    # average is that curve. Averaging only the TPR after each step gave 0.875.
    assert roc["macro_auc"] == pytest.approx(0.75)
    assert roc["curves"]["macro"] == roc["curves"]["per_class"]["b"]
    assert auc(roc["curves"]["macro"]["fpr"], roc["curves"]["macro"]["tpr"]) == pytest.approx(0.75)
    # Micro pools the 8 decisions: positives score .9 .6 .35 .8, negatives
    # .65 .2 .1 .4. Of the 16 pairs, 4 + 4 + 3 + 2 = 13 are ordered correctly.
    assert roc["micro_auc"] == pytest.approx(13 / 16)


def test_perfect_scores_give_auc_one():
    y = np.array([0, 1, 2])
    roc = roc_analysis(y, np.eye(3), ["a", "b", "c"])
    assert roc["micro_auc"] == pytest.approx(1.0)
    assert roc["macro_auc"] == pytest.approx(1.0)


def test_absent_class_auc_undefined(caplog):
    y = np.array([0, 0, 1, 1])
    scores = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    with caplog.at_level(logging.WARNING):
        roc = roc_analysis(y, scores, ["a", "b", "c"])
    assert roc["per_class_auc"]["c"] is None
    assert "'c' has no images" in caplog.text
    assert roc["per_class_auc"]["a"] == pytest.approx(1.0)
    assert roc["macro_auc"] == pytest.approx(1.0)


def test_metrics_from_predictions():
    y = np.array([0, 0, 1, 1, 2])
    scores = np.array([[.8, .1, .1], [.1, .8, .1], [.1, .8, .1], [.1, .8, .1], [.1, .1, .8]])
    metrics = evaluate_predictions(y, scores, ["a", "b", "c"])
    assert metrics["test"]["accuracy"] == pytest.approx(0.8)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    by_class = {row["class"]: row for row in metrics["per_class"]}
    assert by_class["b"]["precision"] == pytest.approx(2 / 3)
    assert by_class["a"]["recall"] == pytest.approx(0.5)
    assert metrics["test"]["loss"] == pytest.approx(-np.mean(np.log([.8, .1, .8, .8, .8])))


def test_absent_class_metrics_computed(caplog):
    # Class c has training images but none in this test split.
    y = np.array([0, 0, 1, 1])
    scores = np.array([[0.6, 0.3, 0.1], [0.3, 0.5, 0.2], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1]])
    with caplog.at_level(logging.WARNING):
        metrics = evaluate_predictions(y, scores, ["a", "b", "c"])
    assert "class 'c' has no images in the test split" in caplog.text
    assert metrics["test"]["accuracy"] == pytest.approx(0.75)
    by_class = {row["class"]: row for row in metrics["per_class"]}
    assert by_class["c"]["support"] == 0
    # c has no test images and is never predicted: 0/0 for all three scores.
    assert by_class["c"]["recall"] is None
    assert by_class["c"]["precision"] is None
    assert by_class["c"]["f1"] is None
    assert by_class["b"]["precision"] == pytest.approx(2 / 3)
    roc = metrics["roc"]
    assert roc["per_class_auc"]["c"] is None
    assert "c" not in roc["curves"]["per_class"]
    # a: positive scores .6 .3 against negatives .2 .1, all 4 pairs in order.
    assert roc["per_class_auc"]["a"] == pytest.approx(1.0)
    assert roc["per_class_auc"]["b"] == pytest.approx(1.0)


def test_never_predicted_class_precision_undefined():
    # b has two test images and is never predicted: precision 0/0 is
    # undefined, recall 0/2 is 0, and F1 = 2TP / (2TP + FP + FN) = 0/2 = 0.
    y = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]])
    by_class = {row["class"]: row for row in evaluate_predictions(y, scores, ["a", "b"])[
        "per_class"]}
    assert by_class["b"]["precision"] is None
    assert by_class["b"]["recall"] == 0.0
    assert by_class["b"]["f1"] == 0.0
    assert by_class["a"]["precision"] == pytest.approx(0.5)


def test_one_test_class_roc_rejected():
    y = np.array([1, 1])
    scores = np.array([[0.2, 0.8], [0.4, 0.6]])
    with pytest.raises(ValueError, match="needs test images of at least two classes"):
        roc_analysis(y, scores, ["a", "b"])


def test_macro_auc_mean_of_classes():
    # Positive-negative pairs in order, a tie counting one half: a 3 of 3,
    # b 2 of 3 (.5 beats .1 and .4, not .6), c 2.5 of 4 (.3 and .4 beat .1,
    # .4 ties .4). The macro AUC is (1 + 2/3 + 5/8) / 3 = 55/72.
    y = np.array([0, 1, 2, 2])
    scores = np.array([[0.8, 0.1, 0.1], [0.1, 0.5, 0.4], [0.1, 0.6, 0.3], [0.2, 0.4, 0.4]])
    roc = roc_analysis(y, scores, ["a", "b", "c"])
    assert roc["per_class_auc"] == pytest.approx({"a": 1.0, "b": 2 / 3, "c": 5 / 8})
    assert roc["macro_auc"] == pytest.approx(55 / 72)
    macro = roc["curves"]["macro"]
    assert auc(macro["fpr"], macro["tpr"]) == pytest.approx(55 / 72, abs=1e-5)


def test_flip_tta_averages_the_two_passes():
    from study.evaluation import flip_tta_scores

    y_true = np.array([0, 1, 1])
    plain = np.array([[0.6, 0.4], [0.6, 0.4], [0.3, 0.7]])
    mirrored = np.array([[0.8, 0.2], [0.2, 0.8], [0.9, 0.1]])
    # Means: [.7, .3] right, [.4, .6] right (plain was wrong), [.6, .4] wrong (plain was right).
    scores = flip_tta_scores(y_true, plain, mirrored, ["a", "b"])
    assert scores["accuracy"] == pytest.approx(2 / 3)
    assert scores["changed_predictions"] == 2
    assert scores["images"] == 3
    expected_loss = -(np.log(0.7) + np.log(0.6) + np.log(0.4)) / 3
    assert scores["loss"] == pytest.approx(expected_loss)
    # Class b scores .3, .6, .4 against labels 0, 1, 1: both positives beat the negative.
    assert scores["macro_auc"] == pytest.approx(1.0)
