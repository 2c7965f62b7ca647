"""Test-split metrics from predicted class probabilities (scikit-learn).

`evaluate_predictions` needs only NumPy arrays, so it is tested on toy cases
without TensorFlow; `evaluate_model` runs a Keras model over the test set.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
from sklearn.metrics import auc, confusion_matrix, log_loss, precision_recall_fscore_support, roc_curve

log = logging.getLogger(__name__)

CURVE_DECIMALS = 5  # rounding of the stored ROC points; plots need no more


def roc_analysis(y_true: np.ndarray, y_score: np.ndarray, class_names) -> dict:
    """One-vs-rest ROC curves per class, plus micro and macro averages.

    y_true: (N,) int labels; y_score: (N, K) class probabilities.
    Micro pools every (image, class) decision into one curve. The macro AUC
    is the mean of the per-class AUCs, and the macro curve is the mean of the
    per-class curves, so its area is the macro AUC.
    A class with no positive (or no negative) test image has no ROC curve,
    so its AUC is None and a warning is logged. The averages use the others.
    Raises ValueError when no class has a curve (a test split of one class).

    >>> roc_analysis(np.array([0, 0, 1, 1]), np.array([[.9, .1], [.6, .4], [.65, .35], [.2, .8]]),
    ...              ["a", "b"])["per_class_auc"]["b"]
    0.75
    """
    k = len(class_names)
    onehot = np.eye(k, dtype=int)[y_true]
    curves, aucs = {}, {}
    for i, name in enumerate(class_names):
        positives = onehot[:, i].sum()
        if positives == 0 or positives == len(y_true):
            log.warning("class %r has %s in the test split; its ROC AUC is undefined",
                        name, "no images" if positives == 0 else "every image")
            aucs[name] = None
            continue
        fpr, tpr, _ = roc_curve(onehot[:, i], y_score[:, i])
        curves[name] = (fpr, tpr)
        aucs[name] = float(auc(fpr, tpr))

    if not curves:
        raise ValueError(
            f"no class has both positive and negative test images among {len(y_true)} "
            "test labels; the ROC analysis needs test images of at least two classes"
        )
    micro_fpr, micro_tpr, _ = roc_curve(onehot.ravel(), y_score.ravel())
    macro_fpr, macro_tpr = _mean_curve(list(curves.values()))

    def _points(fpr, tpr):
        return {"fpr": np.round(fpr, CURVE_DECIMALS).tolist(),
                "tpr": np.round(tpr, CURVE_DECIMALS).tolist()}

    return {
        "micro_auc": float(auc(micro_fpr, micro_tpr)),
        "macro_auc": float(np.mean([value for value in aucs.values() if value is not None])),
        "per_class_auc": aucs,
        "curves": {
            "micro": _points(micro_fpr, micro_tpr),
            "macro": _points(macro_fpr, macro_tpr),
            "per_class": {name: _points(*curve) for name, curve in curves.items()},
        },
    }


def _mean_curve(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Average ROC curves pointwise, keeping their vertical steps.

    A ROC curve may rise vertically at one FPR, so it has two values there:
    the TPR reached from the left and the TPR leaving to the right. np.interp
    returns the right value when the FPR repeats, and on the curve read
    backwards it returns the left one. Averaging both at every breakpoint
    makes the mean curve exact, and its area the mean of the curves' areas.
    """
    grid = np.unique(np.concatenate([fpr for fpr, _ in curves]))
    right = np.mean([np.interp(grid, fpr, tpr) for fpr, tpr in curves], axis=0)
    left = np.mean([np.interp(-grid, -fpr[::-1], tpr[::-1]) for fpr, tpr in curves], axis=0)
    fpr = np.repeat(grid, 2)
    tpr = np.column_stack([left, right]).ravel()
    keep = np.ones(len(fpr), dtype=bool)
    keep[1::2] = right != left  # one point where the mean curve has no step
    return fpr[keep], tpr[keep]


def _defined(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


def evaluate_predictions(y_true: np.ndarray, y_score: np.ndarray, class_names) -> dict:
    """Accuracy, log loss, confusion matrix, per-class scores and ROC from probabilities."""
    k = len(class_names)
    labels = np.arange(k)
    y_pred = y_score.argmax(axis=1)
    # A ratio with a zero denominator (recall of a class without test images,
    # precision of a class never predicted) is undefined: NaN here, None in JSON.
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=np.nan
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # log_loss warns when a class is absent
        loss = log_loss(y_true, np.clip(y_score, 1e-7, 1.0), labels=labels)
    return {
        "test": {"accuracy": float(np.mean(y_pred == y_true)), "loss": float(loss),
                 "images": int(len(y_true))},
        "per_class": [
            {"class": name, "precision": _defined(precision[i]), "recall": _defined(recall[i]),
             "f1": _defined(f1[i]), "support": int(support[i])}
            for i, name in enumerate(class_names)
        ],
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "roc": roc_analysis(y_true, y_score, class_names),
    }


def flip_tta_scores(y_true: np.ndarray, y_score: np.ndarray, y_score_mirrored: np.ndarray,
                    class_names) -> dict:
    """Scores of the mean probabilities over each test image and its mirror image.

    >>> flip_tta_scores(np.array([0, 1]), np.array([[.6, .4], [.6, .4]]),
    ...                 np.array([[.8, .2], [.2, .8]]), ["a", "b"])["accuracy"]
    1.0
    """
    mean = (y_score + y_score_mirrored) / 2.0
    metrics = evaluate_predictions(y_true, mean, class_names)
    changed = int(np.sum(mean.argmax(axis=1) != y_score.argmax(axis=1)))
    return {**metrics["test"], "micro_auc": metrics["roc"]["micro_auc"],
            "macro_auc": metrics["roc"]["macro_auc"], "changed_predictions": changed}


def evaluate_model(model, test_dataset, y_true: np.ndarray, class_names,
                   mirrored_dataset=None) -> tuple[dict, dict]:
    """Predict the test split with a Keras model; return the metrics and the probabilities.

    With `mirrored_dataset` (the test images flipped left-right, in the same
    order) the metrics gain a 'flip_tta' entry, and the probabilities a
    'y_score_mirrored' array beside 'y_score'. The loss is the plain
    cross-entropy of the probabilities, whatever loss the model trained on.
    """
    y_score = np.asarray(model.predict(test_dataset, verbose=0), dtype=np.float64)
    metrics = evaluate_predictions(y_true, y_score, class_names)
    _, keras_accuracy = model.evaluate(test_dataset, verbose=0)
    # The two routes must agree; a mismatch means the predictions and labels
    # are out of step (for example, a shuffled test pipeline).
    if abs(keras_accuracy - metrics["test"]["accuracy"]) > 1e-3:
        raise RuntimeError(
            f"Keras test accuracy {keras_accuracy:.4f} differs from the accuracy of the "
            f"predictions {metrics['test']['accuracy']:.4f}; the test pipeline must not shuffle"
        )
    scores = {"y_score": y_score}
    if mirrored_dataset is not None:
        mirrored = np.asarray(model.predict(mirrored_dataset, verbose=0), dtype=np.float64)
        metrics["flip_tta"] = flip_tta_scores(y_true, y_score, mirrored, class_names)
        scores["y_score_mirrored"] = mirrored
    return metrics, scores
