"""How far to trust a test-set number: bootstrap intervals, McNemar's test, calibration.

All functions take NumPy arrays of the test labels and predicted
probabilities, so they are tested on hand-made cases without TensorFlow.
Resampling uses scipy.stats.bootstrap over the test images (percentile
intervals). The paired comparison of two models is McNemar's exact test,
a two-sided binomial test on the images where exactly one model is right.

NOTE: not yet called by the pipeline or the report.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.stats import binomtest, bootstrap

CALIBRATION_BINS = 15


def bootstrap_interval(metric: Callable[[np.ndarray], float], count: int, *,
                       resamples: int = 1000, confidence: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `metric(indices)` over `count` test images.

    `metric` receives an array of resampled image indices (with repeats)
    and returns the statistic on those images. When every resample gives
    the same value (a constant predictor), the interval is that one value.
    """
    if count < 1:
        raise ValueError(f"a bootstrap interval needs at least one test image, got {count}")
    result = bootstrap((np.arange(count),), lambda idx: metric(idx.astype(int)),
                       n_resamples=resamples, confidence_level=confidence,
                       method="percentile", vectorized=False, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def accuracy_interval(y_true: np.ndarray, y_score: np.ndarray, **kwargs) -> tuple[float, float]:
    """Bootstrap interval of the accuracy of argmax predictions."""
    correct = (np.asarray(y_score).argmax(axis=1) == np.asarray(y_true)).astype(float)
    return bootstrap_interval(lambda idx: float(correct[idx].mean()), len(correct), **kwargs)


def mcnemar_exact(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> dict:
    """McNemar's exact test on the test images where exactly one of two models is right.

    Returns the counts (`only_a`: a right and b wrong, `only_b` the reverse)
    and the two-sided p-value of a binomial test with p = 0.5 on them; with
    no such image the p-value is 1.0.
    """
    right_a = np.asarray(pred_a) == np.asarray(y_true)
    right_b = np.asarray(pred_b) == np.asarray(y_true)
    only_a = int(np.sum(right_a & ~right_b))
    only_b = int(np.sum(~right_a & right_b))
    disagreements = only_a + only_b
    p_value = 1.0 if disagreements == 0 else float(binomtest(only_a, disagreements, 0.5).pvalue)
    return {"only_a": only_a, "only_b": only_b, "p_value": p_value}


def reliability(y_true: np.ndarray, y_score: np.ndarray,
                bins: int = CALIBRATION_BINS) -> dict:
    """Reliability diagram data and the expected calibration error (ECE).

    Each image's confidence is its top probability. Confidences fall into
    `bins` equal-width bins over [0, 1] (the last bin includes 1.0). ECE is
    the mean over images of |accuracy - mean confidence| of their bin, that
    is the bin gaps weighted by the bins' shares of the images.
    """
    y_score = np.asarray(y_score, dtype=float)
    confidence = y_score.max(axis=1)
    correct = (y_score.argmax(axis=1) == np.asarray(y_true)).astype(float)
    bin_index = np.minimum((confidence * bins).astype(int), bins - 1)
    counts = np.bincount(bin_index, minlength=bins)
    filled = counts > 0
    accuracy = np.bincount(bin_index, weights=correct, minlength=bins)[filled] / counts[filled]
    confidence_sums = np.bincount(bin_index, weights=confidence, minlength=bins)
    mean_confidence = confidence_sums[filled] / counts[filled]
    ece = float(np.sum(counts[filled] / len(correct) * np.abs(accuracy - mean_confidence)))
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {
        "ece": ece,
        "bins": [{"low": float(edges[i]), "high": float(edges[i + 1]), "images": int(counts[i]),
                  "accuracy": float(a), "confidence": float(c)}
                 for i, a, c in zip(np.flatnonzero(filled), accuracy, mean_confidence)],
    }
