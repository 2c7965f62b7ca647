"""Pick a model's most confident mistakes on the test split, for the report's gallery.

A mistake is a test image whose top predicted class is not its label. The
most confident ones are those whose predicted class has the highest
probability. They show what a model gets wrong while being sure of itself,
which accuracy and the confusion matrix alone do not. Only NumPy is needed,
so the choice is tested on hand-made arrays without TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def most_confident_mistakes(y_true: np.ndarray, y_score: np.ndarray,
                            class_names: Sequence[str], limit: int) -> list[dict]:
    """Return up to `limit` misclassified test images, most confident first.

    y_true: (N,) int labels; y_score: (N, K) class probabilities, in the
    order of the test array. Each entry has the image's `index` in that
    array, its `true` and `predicted` class names and the `confidence`, the
    predicted class's probability. Equal confidences keep index order, so
    the choice is the same on every run.

    >>> most_confident_mistakes(np.array([0, 1, 1]),
    ...                         np.array([[.9, .1], [.8, .2], [.3, .7]]), ["a", "b"], 5)
    [{'index': 1, 'true': 'b', 'predicted': 'a', 'confidence': 0.8}]
    """
    y_true, y_score = _checked_scores(y_true, y_score, class_names)
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise ValueError(f"the number of mistakes to keep must be a whole number of 0 or "
                         f"more, got {limit!r}")
    predicted = y_score.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y_true)
    confidence = y_score[wrong, predicted[wrong]]
    # np.lexsort sorts by its last key first: confidence, highest first, then index.
    chosen = wrong[np.lexsort((wrong, -confidence))][:limit]
    return [{"index": int(index), "true": class_names[int(y_true[index])],
             "predicted": class_names[int(predicted[index])],
             "confidence": float(y_score[index, predicted[index]])}
            for index in chosen]


def mistake_images(images: np.ndarray, mistakes: Sequence[dict]) -> np.ndarray:
    """Return the images of `mistakes` from `images`, in the order of `mistakes`.

    `images` must be the test array the scores were computed on, (N, H, W, C)
    uint8, so that each mistake's index points at its own image. With no
    mistakes the result is an empty (0, H, W, C) array.
    """
    indices = np.asarray([mistake["index"] for mistake in mistakes], dtype=np.intp)
    if indices.size and (indices.min() < 0 or indices.max() >= len(images)):
        raise ValueError(f"a mistake's index is outside the {len(images)} test images: "
                         f"pass the test array the scores were computed on")
    return np.asarray(images)[indices]


def _checked_scores(y_true: np.ndarray, y_score: np.ndarray,
                    class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    # Labels and probabilities must describe the same images and classes,
    # else an index or a class name would point at the wrong one.
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=float)
    if y_score.ndim != 2:
        raise ValueError(f"y_score must have shape (images, classes), got {y_score.shape}")
    if y_true.shape != (len(y_score),):
        raise ValueError(f"y_true has shape {y_true.shape} but y_score has {len(y_score)} "
                         f"rows: pass one label per scored image")
    if y_score.shape[1] != len(class_names):
        raise ValueError(f"y_score has {y_score.shape[1]} columns but there are "
                         f"{len(class_names)} class names: pass one name per class")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= len(class_names)):
        raise ValueError(f"y_true contains a label outside 0..{len(class_names) - 1}")
    return y_true.astype(int), y_score
