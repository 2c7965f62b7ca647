import numpy as np
import pytest

from sklearn.metrics import roc_auc_score

from study.uncertainty import (
    _ResampledScores,
    accuracy_interval,
    bootstrap_interval,
    mcnemar_exact,
    paired_comparison,
    reliability,
    score_intervals,
)


def test_constant_predictor_interval_is_a_point():
    y = np.array([0, 1, 2, 1])
    always_right = np.eye(3)[y]
    assert accuracy_interval(y, always_right) == (1.0, 1.0)
    assert accuracy_interval(y, np.eye(3)[(y + 1) % 3]) == (0.0, 0.0)


def test_accuracy_interval_covers_the_accuracy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    right = rng.random(400) < 0.7
    pred = np.where(right, y, 1 - y)
    low, high = accuracy_interval(y, np.eye(2)[pred], seed=1)
    accuracy = right.mean()
    assert low < accuracy < high
    # The binomial standard error is about 0.023, so the 95% interval is near +-0.045.
    assert 0.06 < high - low < 0.12


def test_bootstrap_interval_needs_images():
    with pytest.raises(ValueError, match="at least one test image, got 0"):
        bootstrap_interval(lambda idx: 0.0, 0)


def test_mcnemar_by_hand():
    # 10 disagreements, model a right on 1 of them: p = 2 * (1 + 10) / 2**10.
    y = np.zeros(14, dtype=int)
    pred_a = np.array([0] + [1] * 9 + [0, 0, 1, 1])
    pred_b = np.array([1] + [0] * 9 + [0, 0, 1, 1])
    result = mcnemar_exact(y, pred_a, pred_b)
    assert result["only_a"] == 1
    assert result["only_b"] == 9
    assert result["p_value"] == pytest.approx(22 / 1024)


def test_mcnemar_without_disagreement():
    y = np.array([0, 1])
    assert mcnemar_exact(y, y, y) == {"only_a": 0, "only_b": 0, "p_value": 1.0}


def test_perfectly_calibrated_toy_has_zero_ece():
    # Four images at confidence 0.75, three right; four at 0.5 (two classes), two right.
    y = np.array([0, 0, 0, 1, 0, 1, 0, 1])
    score = np.array([[0.75, 0.25]] * 4 + [[0.5, 0.5]] * 4)
    result = reliability(y, score)
    assert result["ece"] == pytest.approx(0.0)
    assert [b["images"] for b in result["bins"]] == [4, 4]


def test_overconfident_toy_ece_by_hand():
    # Confidence 0.9 on every image, half of them right: ECE = |0.5 - 0.9| = 0.4.
    y = np.array([0, 1, 0, 1])
    score = np.array([[0.9, 0.1]] * 4)
    result = reliability(y, score)
    assert result["ece"] == pytest.approx(0.4)
    assert result["bins"][0]["low"] == pytest.approx(13 / 15)


def test_resampled_auc_by_hand():
    # Class 1 scores .1 .4 (negatives) and .35 .8 (positives); image 2 drawn twice.
    # Positive draws beat 1 + 1 + 2 of the 3 x 2 pairs: AUC 4/6, and class 0 mirrors it.
    y = np.array([0, 0, 1, 1])
    score = np.array([[.9, .1], [.6, .4], [.65, .35], [.2, .8]])
    values = _ResampledScores(y, score)(np.array([1, 1, 2, 1]))
    assert values[1] == pytest.approx(4 / 6)
    # The predicted classes are 0, 0, 0, 1, so 1 + 1 + 0 + 1 of the 5 draws are right.
    # Class 0 recalls both its draws and class 1 one of its three.
    assert values[0] == pytest.approx(3 / 5)
    assert values[2:] == pytest.approx([1.0, 1 / 3])


def test_resampled_auc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 300)
    score = np.round(rng.random((300, 4)), 1) + 0.01
    score /= score.sum(axis=1, keepdims=True)
    idx = rng.integers(0, 300, 300)
    values = _ResampledScores(y, score)(np.bincount(idx, minlength=300))
    assert values[1] == pytest.approx(roc_auc_score(y[idx], score[idx], multi_class="ovr"))


def test_score_intervals_of_a_perfect_predictor_are_points():
    y = np.arange(30) % 3
    result = score_intervals(y, np.eye(3)[y], resamples=200)
    assert result["accuracy"] == [1.0, 1.0]
    assert result["macro_auc"] == [1.0, 1.0]
    assert result["per_class_recall"] == [[1.0, 1.0]] * 3
    assert (result["confidence"], result["resamples"]) == (0.95, 200)


def test_score_intervals_cover_the_scores():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    right = rng.random(600) < 0.6
    score = np.full((600, 3), 0.1)
    score[np.arange(600), np.where(right, y, (y + 1) % 3)] = 0.8
    result = score_intervals(y, score, resamples=300, seed=2)
    low, high = result["accuracy"]
    assert low < right.mean() < high
    for (low, high), k in zip(result["per_class_recall"], range(3)):
        assert low < right[y == k].mean() < high


def test_paired_comparison_by_hand():
    # a is right on all 8 images, b on the first 4: the gap is 0.5 and b is never
    # right alone, so McNemar's p = 2 * 0.5**4.
    y = np.zeros(8, dtype=int)
    score_a = np.eye(2)[np.zeros(8, dtype=int)]
    score_b = np.eye(2)[np.array([0, 0, 0, 0, 1, 1, 1, 1])]
    result = paired_comparison(y, score_a, score_b, resamples=300)
    assert result["accuracy_difference"] == pytest.approx(0.5)
    assert (result["only_a"], result["only_b"]) == (4, 0)
    assert result["p_value"] == pytest.approx(2 / 16)
    low, high = result["interval"]
    assert 0.0 < low <= 0.5 <= high <= 1.0
