import numpy as np
import pytest

from study.uncertainty import accuracy_interval, bootstrap_interval, mcnemar_exact, reliability


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
