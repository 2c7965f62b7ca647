import logging

import numpy as np
import pytest

from study.evaluation import evaluate_predictions, roc_analysis


def test_binary_auc_by_hand():
    # Positives score 0.35 and 0.8, negatives 0.1 and 0.4: three of the four
    # positive-negative pairs are ordered correctly, so the AUC is 3/4.
    y = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    roc = roc_analysis(y, scores, ["a", "b"])
    assert roc["per_class_auc"]["b"] == pytest.approx(0.75)
    assert roc["per_class_auc"]["a"] == pytest.approx(0.75)


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
