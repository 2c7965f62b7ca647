"""Choosing the most confident mistakes and their images, on hand-made arrays."""

import doctest

import numpy as np
import pytest

from study import errors
from study.errors import mistake_images, most_confident_mistakes

NAMES = ("cat", "dog", "ship")

# Six images. Rows 1, 2, 4 and 5 are wrong: row 1 at 0.5, rows 2 and 5 tied
# at 0.7 and row 4 at 0.9. Rows 0 and 3 are right at 0.8 and 0.95.
LABELS = np.array([0, 0, 1, 2, 2, 0])
SCORES = np.array([
    [0.80, 0.10, 0.10],
    [0.30, 0.50, 0.20],
    [0.70, 0.20, 0.10],
    [0.02, 0.03, 0.95],
    [0.05, 0.90, 0.05],
    [0.10, 0.20, 0.70],
])


def test_mistakes_sorted_by_confidence():
    chosen = most_confident_mistakes(LABELS, SCORES, NAMES, 10)
    assert [mistake["index"] for mistake in chosen] == [4, 2, 5, 1]
    assert [mistake["confidence"] for mistake in chosen] == [0.9, 0.7, 0.7, 0.5]


def test_mistakes_name_classes():
    first = most_confident_mistakes(LABELS, SCORES, NAMES, 1)
    assert first == [{"index": 4, "true": "ship", "predicted": "dog", "confidence": 0.9}]


def test_mistakes_tie_keeps_index_order():
    # Rows 2 and 5 tie at 0.7, so the limit of 2 keeps the lower index.
    chosen = most_confident_mistakes(LABELS, SCORES, NAMES, 2)
    assert [mistake["index"] for mistake in chosen] == [4, 2]


def test_mistakes_none_when_all_right():
    labels = SCORES.argmax(axis=1)
    assert most_confident_mistakes(labels, SCORES, NAMES, 5) == []


def test_mistakes_limit_zero():
    assert most_confident_mistakes(LABELS, SCORES, NAMES, 0) == []


@pytest.mark.parametrize("limit", [-1, 2.5, True, "3"])
def test_mistakes_bad_limit(limit):
    with pytest.raises(ValueError, match=f"got {limit!r}"):
        most_confident_mistakes(LABELS, SCORES, NAMES, limit)


def test_mistakes_label_count_mismatch():
    with pytest.raises(ValueError, match="one label per scored image"):
        most_confident_mistakes(LABELS[:5], SCORES, NAMES, 3)


def test_mistakes_class_count_mismatch():
    with pytest.raises(ValueError, match="3 columns but there are 2 class names"):
        most_confident_mistakes(LABELS, SCORES, NAMES[:2], 3)


def test_mistakes_label_out_of_range():
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        most_confident_mistakes(np.array([0, 0, 1, 2, 2, 3]), SCORES, NAMES, 3)


def test_mistakes_scores_not_2d():
    with pytest.raises(ValueError, match=r"shape \(images, classes\)"):
        most_confident_mistakes(LABELS, SCORES.ravel(), NAMES, 3)


def test_images_follow_mistake_order():
    # Image i is filled with the value i, so each picked image shows its index.
    images = np.arange(6, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3),
                                                                         dtype=np.uint8)
    chosen = most_confident_mistakes(LABELS, SCORES, NAMES, 3)
    picked = mistake_images(images, chosen)
    assert picked.dtype == np.uint8
    assert picked.shape == (3, 2, 2, 3)
    assert picked[:, 0, 0, 0].tolist() == [4, 2, 5]


def test_images_empty_keeps_shape():
    images = np.zeros((6, 4, 4, 3), dtype=np.uint8)
    assert mistake_images(images, []).shape == (0, 4, 4, 3)


def test_images_index_outside_array():
    images = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="outside the 3 test images"):
        mistake_images(images, [{"index": 4}])


def test_errors_doctest():
    failures, tried = doctest.testmod(errors)
    assert tried > 0
    assert failures == 0
