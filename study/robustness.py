"""Test accuracy of a trained model on low- and high-pass filtered test images.

The filters are the exploration's: `study.fourier.filter_images`, a Gaussian
gain on the unshifted frequency grid with its width in cycles per pixel, and
1 minus that gain for the high-pass. A filtered image is a float array on
the 0-255 scale. It reaches the model divided by 255, the scaling that
`study.inputs` applies to uint8 batches, and is not clipped. A high-pass
image therefore has values centred on 0, while the model trained on values
in [0, 1].

`robustness_scores` takes a `predict` function instead of a Keras model, so
its tests run NumPy classifiers without TensorFlow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from study.config import EvaluationSettings
from study.data import stratified_indices
from study.fourier import filter_images

log = logging.getLogger(__name__)

# Images filtered at once. For 32 x 32 x 3 images, the complex128 spectrum
# of a chunk takes about 100 MB, so the full test split never sits in memory
# as complex numbers.
CHUNK_IMAGES = 2_000

# float32 batch (n, H, W, C) -> class scores (n, classes); the argmax is the prediction.
Predict = Callable[[np.ndarray], np.ndarray]


def scale_for_model(images: np.ndarray) -> np.ndarray:
    """Divide 0-255 images by 255 in float32, without clipping.

    For uint8 input the result equals the input pipeline's `cast(float32) / 255`
    bit for bit, so the unfiltered images get the same predictions as in
    the main evaluation.
    """
    return np.asarray(images, dtype=np.float32) / np.float32(255.0)


def _correct_predictions(predict: Predict, images: np.ndarray, labels: np.ndarray,
                         classes: int) -> int:
    scores = np.asarray(predict(scale_for_model(images)))
    if scores.shape != (len(labels), classes):
        raise ValueError(f"predict returned scores of shape {scores.shape} for {len(labels)} "
                         f"images, expected ({len(labels)}, {classes})")
    return int(np.sum(scores.argmax(axis=1) == labels))


def robustness_scores(predict: Predict, images: np.ndarray, labels: np.ndarray,
                      widths: Sequence[float], classes: int,
                      chunk: int = CHUNK_IMAGES) -> dict:
    """Score `predict` on `images` unfiltered and through each filter at each width.

    images: (N, H, W, C) uint8 (or float) on the 0-255 scale; labels: (N,)
    class indices. Each filter passes over the images `chunk` at a time.
    Returns the image count, the widths, the chance level 1 / `classes`,
    and the accuracies: "unfiltered_accuracy", and "low_pass_accuracy" and
    "high_pass_accuracy" with one value per width.

    >>> def mean_brightness(x):  # class 1 when the mean value is above mid-grey
    ...     bright = x.mean(axis=(1, 2, 3)) > 0.5
    ...     return np.stack([~bright, bright], axis=1).astype(float)
    >>> images = np.stack([np.zeros((4, 4, 3)), np.full((4, 4, 3), 255.0)])
    >>> scores = robustness_scores(mean_brightness, images, np.array([0, 1]), [0.1], 2)
    >>> scores["low_pass_accuracy"], scores["high_pass_accuracy"]
    ([1.0], [0.5])
    """
    labels = np.asarray(labels)
    count = len(labels)
    if count == 0 or len(images) != count:
        raise ValueError(f"the robustness check needs at least one image and one label per "
                         f"image, got {len(images)} images and {count} labels")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of images, got {chunk}")
    widths = [float(width) for width in widths]
    correct = {"unfiltered": 0, "low": np.zeros(len(widths), dtype=int),
               "high": np.zeros(len(widths), dtype=int)}
    for start in range(0, count, chunk):
        batch, truth = images[start:start + chunk], labels[start:start + chunk]
        correct["unfiltered"] += _correct_predictions(predict, batch, truth, classes)
        for kind in ("low", "high"):
            for index, width in enumerate(widths):
                filtered = filter_images(batch, width, kind)
                correct[kind][index] += _correct_predictions(predict, filtered, truth, classes)
    return {
        "images": count,
        "widths": widths,
        "chance": 1.0 / classes,
        "unfiltered_accuracy": correct["unfiltered"] / count,
        "low_pass_accuracy": (correct["low"] / count).tolist(),
        "high_pass_accuracy": (correct["high"] / count).tolist(),
    }


def evaluate_robustness(name: str, predict: Predict, x_test: np.ndarray, y_test: np.ndarray,
                        settings: EvaluationSettings, classes: int, seed: int) -> dict | None:
    """Score model `name` on a stratified test sample through every configured filter.

    The sample has `settings.robustness_images` images (all when None),
    drawn with `seed`. The result is `robustness_scores`' dict plus the wall
    time in "seconds", or None when `settings.robustness_widths` is empty,
    which turns the check off.
    """
    widths = tuple(settings.robustness_widths)
    if not widths:
        log.info("%s frequency robustness: skipped, config.evaluation.robustness_widths is "
                 "empty", name)
        return None
    invalid = [width for width in widths if not width > 0]
    if invalid:
        raise ValueError(f"config.evaluation.robustness_widths contains {invalid}: every "
                         f"width must be a positive number of cycles per pixel, such as 0.08")
    requested = settings.robustness_images
    if requested is not None and requested < 1:
        raise ValueError(f"config.evaluation.robustness_images is {requested}: give a "
                         f"positive number of test images, or None for all of them")

    start = time.perf_counter()
    picked = stratified_indices(y_test, requested, seed,
                                "test images for the frequency robustness check")
    scores = robustness_scores(predict, x_test[picked], y_test[picked], widths, classes)
    scores["seconds"] = time.perf_counter() - start
    log.info("%s frequency robustness: %d images, %d widths, unfiltered accuracy %.4f, %.1f s",
             name, scores["images"], len(widths), scores["unfiltered_accuracy"], scores["seconds"])
    return scores
