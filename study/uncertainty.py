"""How far to trust a test-set number: bootstrap intervals, McNemar's test, calibration.

All functions take NumPy arrays of the test labels and predicted
probabilities, so they are tested on hand-made cases without TensorFlow.
Resampling uses scipy.stats.bootstrap over the test images (percentile
intervals). The paired comparison of two models is McNemar's exact test,
a two-sided binomial test on the images where exactly one model is right.

The evaluation stage stores `score_intervals` per model; the pipeline
stores `paired_comparison` of the two models; the report reads both.
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


class _ResampledScores:
    """Accuracy, macro AUC and per-class recall of one model on a resample of the test set.

    A resample is given as the count of times each test image was drawn.
    Each class's scores are sorted once, so the one-vs-rest AUC of a
    resample is a weighted Mann-Whitney count over the sorted order (tied
    scores count one half), with no sorting per resample. The macro AUC is
    the mean over the classes that have both positive and negative images
    in the resample, as in study.evaluation.roc_analysis.
    """

    def __init__(self, y_true: np.ndarray, y_score: np.ndarray):
        y_true = np.asarray(y_true, dtype=int)
        y_score = np.asarray(y_score, dtype=float)
        self.classes = y_score.shape[1]
        self.positive = np.eye(self.classes, dtype=bool)[y_true]
        self.correct = (y_score.argmax(axis=1) == y_true).astype(float)
        self.orders, self.groups = [], []
        for column in y_score.T:
            order = np.argsort(column, kind="stable")
            ordered = column[order]
            # Group index of each sorted score: equal scores share a group.
            self.groups.append(np.concatenate([[0], np.cumsum(ordered[1:] != ordered[:-1])]))
            self.orders.append(order)

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        """Return [accuracy, macro AUC, recall of class 0, ..., recall of class K-1]."""
        counts = counts.astype(float)
        accuracy = counts @ self.correct / counts.sum()
        drawn = counts @ self.positive
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = (counts * self.correct) @ self.positive / drawn
        aucs = []
        for k in range(self.classes):
            positives, negatives = drawn[k], counts.sum() - drawn[k]
            if positives == 0 or negatives == 0:
                continue
            order, groups = self.orders[k], self.groups[k]
            size = groups[-1] + 1
            weights = counts[order]
            is_positive = self.positive[order, k]
            pos = np.bincount(groups, weights * is_positive, size)
            neg = np.bincount(groups, weights * ~is_positive, size)
            below = np.cumsum(neg) - neg
            aucs.append(float(pos @ (below + 0.5 * neg)) / (positives * negatives))
        macro_auc = float(np.mean(aucs)) if aucs else np.nan
        return np.concatenate([[accuracy, macro_auc], recall])


def _interval(low: float, high: float) -> list[float] | None:
    return None if np.isnan(low) or np.isnan(high) else [float(low), float(high)]


def score_intervals(y_true: np.ndarray, y_score: np.ndarray, *, resamples: int = 1000,
                    confidence: float = 0.95, seed: int = 0) -> dict:
    """Bootstrap intervals of accuracy, macro AUC and each class's recall.

    All three come from the same resamples of the test images. An interval
    is None where a resample can leave the statistic undefined (a class
    with no test image has no recall).
    """
    y_true = np.asarray(y_true, dtype=int)
    count = len(y_true)
    if count < 1:
        raise ValueError(f"a bootstrap interval needs at least one test image, got {count}")
    statistic = _ResampledScores(y_true, y_score)
    result = bootstrap((np.arange(count),),
                       lambda idx: statistic(np.bincount(idx.astype(int), minlength=count)),
                       n_resamples=resamples, confidence_level=confidence,
                       method="percentile", vectorized=False, rng=np.random.default_rng(seed))
    lows, highs = result.confidence_interval.low, result.confidence_interval.high
    return {
        "confidence": confidence,
        "resamples": resamples,
        "accuracy": _interval(lows[0], highs[0]),
        "macro_auc": _interval(lows[1], highs[1]),
        "per_class_recall": [_interval(low, high) for low, high in zip(lows[2:], highs[2:])],
    }


def paired_comparison(y_true: np.ndarray, score_a: np.ndarray, score_b: np.ndarray, *,
                      resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict:
    """Compare two models on the same test images: accuracy gap, its interval, McNemar.

    The gap is accuracy(a) - accuracy(b); its percentile bootstrap interval
    resamples images, so both models are scored on the same resample.
    """
    y_true = np.asarray(y_true, dtype=int)
    pred_a = np.asarray(score_a).argmax(axis=1)
    pred_b = np.asarray(score_b).argmax(axis=1)
    gap = (pred_a == y_true).astype(float) - (pred_b == y_true).astype(float)
    interval = bootstrap_interval(lambda idx: float(gap[idx].mean()), len(gap),
                                  resamples=resamples, confidence=confidence, seed=seed)
    return {"accuracy_difference": float(gap.mean()), "interval": list(interval),
            "confidence": confidence, "resamples": resamples,
            **mcnemar_exact(y_true, pred_a, pred_b)}


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
