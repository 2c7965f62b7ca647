"""Write a small synthetic run folder that the report half can render.

`make_run_dir` produces a schema-complete `results.json` and a small
`exploration.npz` from a seeded generator, with no TensorFlow. The numbers
are made up but internally consistent: per-class metrics are computed from
the confusion matrix, each ROC curve's area equals its stated AUC, and the
Fourier arrays come from a real FFT of the sample images.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from study.errors import mistake_images, most_confident_mistakes
from study.ledger import ledger_from_records
from study.uncertainty import reliability

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

DEFAULT_ACCURACIES = {"cnn": 0.6512, "vit": 0.5830}
MODEL_LABELS = {"cnn": "CNN", "vit": "ViT"}
# Flip test-time augmentation per model: (net test images it turns from wrong
# to right, test images whose predicted class it changes). A model missing
# here gets no flip-TTA scores.
DEFAULT_FLIP_TTA = {"cnn": (3, 7), "vit": (-1, 4)}
CALIBRATION_BINS = 15
MISTAKES_SHOWN = 6
# Frequency robustness per model: the share of the margin over chance that
# the low-pass and the high-pass filter keep at each of ROBUSTNESS_WIDTHS.
# The ViT keeps more through the low-pass filters than the CNN, and less
# through the high-pass ones, so it leans more on low frequencies.
ROBUSTNESS_WIDTHS = (0.02, 0.04, 0.08, 0.16, 0.32)
ROBUSTNESS_SHARES = {
    "cnn": ((0.05, 0.2, 0.5, 0.85, 0.98), (0.9, 0.7, 0.35, 0.12, 0.02)),
    "vit": ((0.15, 0.4, 0.75, 0.93, 0.99), (0.6, 0.35, 0.12, 0.04, 0.0)),
}


def make_run_dir(
    path: Path,
    class_names: Sequence[str] = CIFAR10_CLASSES,
    *,
    accuracies: Mapping[str, float] | None = None,
    test_per_class: int = 20,
    train_per_class: int = 40,
    image_side: int = 16,
    spectrum_images: int = 4,
    filter_widths: Sequence[float] = (0.04, 0.08, 0.16),
    epochs: int = 6,
    null_auc_classes: Sequence[str] = (),
    flip_tta: Mapping[str, tuple[int, int]] | None = None,
    legacy: bool = False,
    seed: int = 0,
    seeds: int = 3,
) -> Path:
    """Write results.json and exploration.npz into `path` and return `path`.

    `accuracies` maps model key ("cnn", "vit") to the test accuracy stored in
    results.json. Each confusion matrix is built so that its diagonal share is
    close to that accuracy. Classes in `null_auc_classes` get a null per-class
    AUC and no per-class ROC curve, as for a class absent from the test split.
    `flip_tta` maps model key to (net images gained, predictions changed) for
    its flip test-time augmentation scores (default DEFAULT_FLIP_TTA); models
    missing from it get none. With
    `legacy`, results.json has the layout of runs made before the named
    search spaces: unnamed spaces without a "training" entry, and no flip-TTA
    scores, accelerator settings, calibration, confident mistakes or data
    fingerprint.
    Otherwise each model's calibration and confident mistakes come from
    scores that agree with its confusion matrix, and predictions_<key>.npz
    contains the mistakes' images. `seeds` refits per model give the spread
    over seeds, and the first two models get a paired comparison.
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    class_names = list(class_names)
    accuracies = dict(accuracies or DEFAULT_ACCURACIES)

    samples = np.stack([_synthetic_image(image_side, rng) for _ in class_names])
    spectrum_labels = np.arange(spectrum_images) % len(class_names)
    spectrum = samples[spectrum_labels]
    arrays = _exploration_arrays(samples, spectrum, spectrum_labels, filter_widths)
    np.savez_compressed(path / "exploration.npz", **arrays)

    flip_tta = dict(DEFAULT_FLIP_TTA if flip_tta is None else flip_tta)
    results = {
        "schema_version": 1,
        "title": "CNN versus Vision Transformer on CIFAR-10",
        "created": "2026-12-04T20:10:00+00:00",
        "config": _config(filter_widths, spectrum_images, epochs,
                          train_images=train_per_class * len(class_names), legacy=legacy),
        "data": {
            "name": "CIFAR-10",
            "source": "cifar10-jpeg.tar.xz",
            "class_names": class_names,
            "image_shape": [image_side, image_side, 3],
            "available": {"train": 50000, "test": 10000},
            "used": {
                "train": train_per_class * len(class_names) * 9 // 10,
                "validation": train_per_class * len(class_names) // 10,
                "test": test_per_class * len(class_names),
            },
        },
        "exploration": _exploration_summary(
            class_names, samples, train_per_class, test_per_class, filter_widths,
            spectrum_labels,
        ),
        "models": {
            key: _model_results(key, accuracy, class_names, test_per_class, epochs,
                                set(null_auc_classes), rng, legacy,
                                None if legacy else flip_tta.get(key))
            for key, accuracy in accuracies.items()
        },
        "environment": {
            "python": "3.11.7",
            "platform": "Linux-6.1.0-x86_64-with-glibc2.36",
            "processor": "x86_64",
            "cpu_count": 2,
            "gpus": [],
            "packages": {"tensorflow": "2.21.0", "keras": "3.15.1",
                         "keras-tuner": "1.4.7", "numpy": "2.1.3"},
        },
        "timings": {
            "stages": {"data": 9.5, "exploration": 3.0, "search_cnn": 70.0,
                       "search_vit": 60.0, "refit_cnn": 95.0, "refit_vit": 50.0,
                       "evaluation": 8.0},
            "total_seconds": 295.5,  # the sum of the stages
            "reused": [],
        },
    }
    if not legacy:
        results["data"]["fingerprint"] = _fingerprint(samples, class_names)
        # A CPU run: mixed precision and XLA stay off under the 'auto' settings.
        results["environment"]["accelerator"] = {"policy": "float32", "xla": False}
        for key, model in results["models"].items():
            _add_calibration(path, key, model, class_names, image_side)
            # Bootstrap intervals, refits with `seeds` seeds, and the paired comparison.
            model["intervals"] = _intervals(model)
            model["seeds"] = _seeds(model, seeds, results["config"]["seed"])
        comparison = _comparison(results["models"])
        if comparison is not None:
            results["comparison"] = comparison
    (path / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return path


def _fingerprint(samples: np.ndarray, class_names: Sequence[str]) -> str:
    # 16 hex digits of a SHA-256, the form a run records for its sampled data.
    digest = hashlib.sha256(samples.tobytes())
    digest.update(json.dumps(list(class_names)).encode())
    return digest.hexdigest()[:16]


def _synthetic_image(side: int, rng: np.random.Generator) -> np.ndarray:
    # A colour gradient with a disk on it and mild noise: smooth enough that
    # the spectrum and the filters look like those of a photo.
    rows, columns = np.mgrid[0:side, 0:side] / max(side - 1, 1)
    start, end, disk = rng.uniform(0, 255, size=(3, 3))
    image = start + (end - start) * ((rows + columns) / 2.0)[..., None]
    centre = rng.uniform(0.3, 0.7, size=2)
    inside = (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 < rng.uniform(0.04, 0.1)
    image[inside] = disk
    image += rng.normal(0.0, 6.0, size=image.shape)
    image[0, 0] = 255.0  # one saturated and one zero pixel, so both shares are non-zero
    image[-1, -1] = 0.0
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def _exploration_arrays(samples, spectrum, spectrum_labels, filter_widths) -> dict:
    side = samples.shape[1]
    transform = np.fft.fft2(spectrum.astype(np.float64), axes=(1, 2))
    shifted = np.fft.fftshift(transform, axes=(1, 2))
    reconstruction = np.real(np.fft.ifft2(transform, axes=(1, 2)))

    frequency = np.fft.fftfreq(side)
    radius_sq = frequency[:, None] ** 2 + frequency[None, :] ** 2
    low, high = [], []
    for width in filter_widths:
        gain = np.exp(-radius_sq / (2.0 * width**2))[None, :, :, None]
        low.append(np.real(np.fft.ifft2(transform * gain, axes=(1, 2))))
        high.append(np.real(np.fft.ifft2(transform * (1.0 - gain), axes=(1, 2))))

    return {
        "samples": samples,
        "sample_labels": np.arange(len(samples)),
        "spectrum_images": spectrum,
        "spectrum_labels": spectrum_labels,
        "log_amplitude": np.log1p(np.abs(shifted)).astype(np.float32),
        "phase": np.angle(shifted).astype(np.float32),
        "reconstruction": reconstruction.astype(np.float32),
        "filter_widths": np.asarray(filter_widths, dtype=np.float32),
        "low_pass": np.stack(low).astype(np.float32),
        "high_pass": np.stack(high).astype(np.float32),
    }


def _range(low, high, step=None, log=False) -> dict:
    return {"min": low, "max": high, "step": step, "log": log}


def _optimizer(name, learning_rate, weight_decay=(0.0, 0.0), momentum=(0.0, 0.0)) -> dict:
    return {"name": name, "learning_rate": _range(*learning_rate, log=True),
            "weight_decay": _range(*weight_decay, log=weight_decay[0] > 0),
            "momentum": _range(*momentum)}


def _training(optimizers, warmup_fraction) -> dict:
    return {"optimizers": optimizers, "schedules": ["cosine"],
            "warmup_fraction": warmup_fraction, "label_smoothing": _range(0.0, 0.2, 0.1)}


# Modern spaces as study/config.py writes them, sized like the full preset's.
# Ranges are dicts with min and max, choices are lists.
MODERN_CNN_SPACE = {
    "name": "modern", "conv_blocks": {"min": 3, "max": 3, "step": 1}, "convs_per_block": [2],
    "filter_multipliers": {"min": 1, "max": 4, "step": 1}, "batch_norm": [True],
    "residual": [False, True], "activations": ["relu"], "pooling": ["global_average"],
    "dense_units": {"min": 0, "max": 0, "step": 1}, "dropout": _range(0.0, 0.3, 0.1),
    "training": _training([_optimizer("adamw", (0.0005, 0.005), weight_decay=(0.01, 0.1)),
                           _optimizer("sgd_nesterov", (0.02, 0.2), weight_decay=(0.0005, 0.005),
                                      momentum=(0.9, 0.9))], 0.05),
}
MODERN_VIT_SPACE = {
    "name": "modern", "patch_sizes": [2, 4], "stems": ["patches", "conv"],
    "projection_dims": [128, 192], "heads": [4, 8],
    "transformer_layers": {"min": 4, "max": 6, "step": 2},
    "mlp_depth": {"min": 1, "max": 1, "step": 1}, "mlp_ratio": 2,
    "mlp_dropout": _range(0.0, 0.2, 0.1), "attention_dropout": 0.0,
    "drop_path": _range(0.0, 0.2, 0.1), "pooling": ["global_average", "class_token"],
    "head": {"units": [], "dropout": 0.0},
    "training": _training([_optimizer("adamw", (0.0003, 0.003), weight_decay=(0.02, 0.1))],
                          0.1),
}
# Spaces as runs wrote them before they had names and a "training" entry.
LEGACY_CNN_SPACE = {
    "conv_blocks": {"min": 3, "max": 3, "step": 1}, "convs_per_block": [1, 2],
    "filter_multipliers": {"min": 1, "max": 2, "step": 1}, "batch_norm": [True],
    "activations": ["relu", "elu"], "dense_units": {"min": 128, "max": 256, "step": 128},
    "dropout": _range(0.2, 0.4, 0.1), "optimizers": ["adam"],
    "learning_rate": _range(0.001, 0.003, log=True),
}
LEGACY_VIT_SPACE = {
    "patch_sizes": [4, 8], "projection_dims": [64], "heads": [4],
    "transformer_layers": {"min": 2, "max": 2, "step": 1},
    "mlp_depth": {"min": 1, "max": 1, "step": 1}, "mlp_dropout": _range(0.1, 0.2, 0.1),
    "head": {"units": [256], "dropout": 0.3}, "optimizers": ["adam"],
    "learning_rate": _range(0.0005, 0.002, log=True), "momentum": _range(0.0, 0.9, 0.1),
}


def _config(filter_widths, spectrum_images, epochs, train_images, legacy=False) -> dict:
    search = {"max_epochs": 3, "factor": 3, "iterations": 1, "batch_size": 128,
              "train_images": 6000, "patience": 2, "trial_time_limit_s": 60.0,
              "not_learning_min_delta": 0.02, "not_learning_patience": 2}
    refit = {"max_epochs": epochs + 2, "patience": 3, "batch_size": 128}
    config = {
        "preset": "quick",
        "seed": 42,
        "train_images": train_images,
        "test_images": None,
        "validation_fraction": 0.1,
        "cnn_space": copy.deepcopy(LEGACY_CNN_SPACE if legacy else MODERN_CNN_SPACE),
        "vit_space": copy.deepcopy(LEGACY_VIT_SPACE if legacy else MODERN_VIT_SPACE),
        "cnn": {"search": dict(search), "refit": dict(refit)},
        "vit": {"search": dict(search), "refit": dict(refit)},
        "exploration": {"histogram_bins": 256, "filter_widths": list(filter_widths),
                        "spectrum_images": spectrum_images},
    }
    if not legacy:
        config["evaluation"] = {"flip_tta": True, "calibration_bins": CALIBRATION_BINS,
                                "mistakes_shown": MISTAKES_SHOWN}
        config["accelerator"] = {"mixed_precision": "auto", "xla": "auto"}
    return config


def _exploration_summary(class_names, samples, train_per_class, test_per_class,
                         filter_widths, spectrum_labels) -> dict:
    # Uneven counts (the first class gets a few more) so min and max shares differ.
    train_counts = [train_per_class + (3 if i == 0 else 0) for i in range(len(class_names))]
    test_counts = [test_per_class] * len(class_names)
    balance = [
        {"class": name, "train_count": train, "train_share": train / sum(train_counts),
         "test_count": test, "test_share": test / sum(test_counts)}
        for name, train, test in zip(class_names, train_counts, test_counts)
    ]

    counts, channels = {}, {}
    for index, channel in enumerate(("red", "green", "blue")):
        values = samples[..., index].ravel()
        counts[channel] = np.bincount(values, minlength=256).tolist()
        channels[channel] = {
            "mean": float(values.mean()), "std": float(values.std()),
            "saturated_share": float(np.mean(values == 255)),
            "zero_share": float(np.mean(values == 0)),
        }

    widths = list(filter_widths)
    low_kept = [round(1.0 - 0.5 / (1.0 + 40.0 * w), 4) for w in widths]
    return {
        "class_balance": balance,
        "pixels": {"bins": 256, "counts": counts, "channels": channels},
        "fourier": {
            "reconstruction_max_abs_error": 2.1e-13,
            "filter_widths": widths,
            "low_pass_energy_kept": low_kept,
            "high_pass_energy_kept": [round(1.0 - kept - 0.01, 4) for kept in low_kept],
        },
        "samples": {"labels": list(range(len(class_names))),
                    "spectrum_labels": [int(label) for label in spectrum_labels]},
    }


def _confusion_matrix(accuracy, classes, per_class, rng) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=int)
    for true in range(classes):
        # Vary the recall by class so the easiest and hardest classes differ.
        spread = (true % 5 - 2) * 0.06
        correct = int(np.clip(round((accuracy + spread) * per_class), 0, per_class))
        matrix[true, true] = correct
        wrong = per_class - correct
        others = [c for c in range(classes) if c != true]
        for _ in range(wrong):
            matrix[true, others[rng.integers(len(others))]] += 1
    return matrix


def _per_class(matrix, class_names) -> list[dict]:
    rows = []
    for index, name in enumerate(class_names):
        hits = matrix[index, index]
        predicted = matrix[:, index].sum()
        support = matrix[index].sum()
        precision = hits / predicted if predicted else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": name, "precision": float(precision), "recall": float(recall),
                     "f1": float(f1), "support": int(support)})
    return rows


def _curve(auc: float, points: int = 21) -> dict:
    # tpr = fpr ** k has area 1 / (k + 1), so k = 1/auc - 1 gives the stated AUC.
    fpr = np.linspace(0.0, 1.0, points)
    return {"fpr": fpr.tolist(), "tpr": (fpr ** (1.0 / auc - 1.0)).tolist()}


def _roc(class_names, null_auc_classes, rng) -> dict:
    per_class_auc, curves = {}, {}
    for name in class_names:
        if name in null_auc_classes:
            per_class_auc[name] = None
            continue
        auc = float(np.round(rng.uniform(0.8, 0.97), 4))
        per_class_auc[name] = auc
        curves[name] = _curve(auc)
    defined = [auc for auc in per_class_auc.values() if auc is not None]
    macro = float(np.mean(defined)) if defined else 0.5
    micro = min(0.99, macro + 0.01)
    return {
        "micro_auc": micro,
        "macro_auc": macro,
        "per_class_auc": per_class_auc,
        "curves": {"micro": _curve(micro), "macro": _curve(macro), "per_class": curves},
    }


def _history(epochs, final_accuracy, rng) -> dict:
    steps = np.arange(1, epochs + 1)
    accuracy = final_accuracy * (1.0 - 0.6 * np.exp(-steps / 2.0))
    val_accuracy = accuracy - 0.03 + rng.normal(0.0, 0.01, epochs)
    loss = 2.3 * np.exp(-steps / 3.0) + 0.6
    val_loss = loss + 0.1 + rng.normal(0.0, 0.02, epochs)
    return {"accuracy": accuracy.tolist(), "val_accuracy": val_accuracy.tolist(),
            "loss": loss.tolist(), "val_loss": val_loss.tolist()}


def _best_hyperparameters(key: str, legacy: bool) -> dict:
    if legacy:
        return ({"conv_blocks": 3, "filters_multiplier": 2, "learning_rate": 0.0016,
                 "optimizer": "adam", "dropout": 0.3}
                if key == "cnn" else
                {"patch_size": 4, "projection_dim": 64, "transformer_layers": 2,
                 "learning_rate": 0.0011, "optimizer": "adam"})
    if key == "cnn":
        return {"conv_blocks": 3, "residual": True, "pooling": "global_average",
                "dropout": 0.2, "optimizer": "adamw", "learning_rate": 0.0016,
                "weight_decay": 0.03, "schedule": "cosine", "label_smoothing": 0.1}
    return {"stem": "conv", "patch_size": 4, "projection_dim": 128, "transformer_layers": 4,
            "drop_path": 0.1, "pooling": "class_token", "optimizer": "adamw",
            "learning_rate": 0.0011, "weight_decay": 0.05, "schedule": "cosine",
            "label_smoothing": 0.1}


# The Hyperband search behind each model's search summary (max_epochs 3,
# factor 3): bracket 1 runs three one-epoch trials and promotes 0001 to
# epoch 3 as 0003, bracket 0 runs two three-epoch trials. The time limit
# stops 0002, validation-loss patience stops 0004 (the best), and 0005 fails
# on a NaN loss. Per trial: id, bracket, round, parent, first epoch, target
# epoch, status, score minus the best score, epochs trained, seconds.
LEDGER_TRIALS = (
    ("0000", 1, 0, None, 0, 1, "COMPLETED", -0.15, 1, 4.1),
    ("0001", 1, 0, None, 0, 1, "COMPLETED", -0.10, 1, 4.3),
    ("0002", 1, 0, None, 0, 1, "COMPLETED", -0.20, 1, 9.0),
    ("0003", 1, 1, "0001", 1, 3, "COMPLETED", -0.03, 2, 8.2),
    ("0004", 0, 0, None, 0, 3, "COMPLETED", 0.0, 2, 8.8),
    ("0005", 0, 0, None, 0, 3, "FAILED", None, 0, 1.2),
)
LEDGER_GUARDS = (("0002", "time_limit", 1), ("0004", "val_loss_patience", 2),
                 ("0005", "nan_loss", 1))


def _ledger(best_score: float) -> dict:
    # Trial records in keras-tuner's trial.json layout, turned into a ledger
    # by study.ledger, so the fixture's ledger has the layout a run writes.
    space = [
        {"class_name": "Float", "config": {"name": "learning_rate", "min_value": 1e-3,
                                           "max_value": 4e-3, "sampling": "log"}},
        {"class_name": "Float", "config": {"name": "dropout", "min_value": 0.0,
                                           "max_value": 0.2, "step": 0.1,
                                           "sampling": "linear"}},
        {"class_name": "Choice", "config": {"name": "pooling",
                                            "values": ["flatten", "global_average"]}},
    ]
    oracle = {"max_epochs": 3, "factor": 3, "hyperband_iterations": 1,
              "hyperparameters": {"space": space}}
    trials, runs = [], []
    for index, (trial_id, bracket, round_num, parent, start, target, status, offset,
                trained, seconds) in enumerate(LEDGER_TRIALS):
        source = int(parent) if parent else index  # a promoted trial keeps its parent's values
        values = {"learning_rate": round(1e-3 * 1.3 ** source, 6), "dropout": source % 3 / 10,
                  "pooling": ("flatten", "global_average")[source % 2],
                  "tuner/epochs": target, "tuner/initial_epoch": start,
                  "tuner/bracket": bracket, "tuner/round": round_num}
        if parent:
            values["tuner/trial_id"] = parent
        score = None if offset is None else round(best_score + offset, 4)
        trials.append({"trial_id": trial_id, "status": status, "score": score,
                       "hyperparameters": {"space": space, "values": values}})
        accuracies = ([] if score is None else
                      [round(score - 0.02 * (trained - 1 - epoch), 4) for epoch in range(trained)])
        runs.append({"trial_id": trial_id, "seconds": seconds, "epochs_trained": trained,
                     "val_accuracy": accuracies})
    events = [{"trial_id": trial_id, "guard": guard, "epoch": epoch, "detail": guard}
              for trial_id, guard, epoch in LEDGER_GUARDS]
    return ledger_from_records(oracle, trials, events, runs)


def _flip_tta(test: dict, roc: dict, gained: int, changed: int) -> dict:
    # Scores consistent with the single pass: `gained` more images right,
    # `changed` predictions different, AUCs moved a little the same way.
    images = test["images"]
    return {"accuracy": min(1.0, max(0.0, test["accuracy"] + gained / images)),
            "loss": round(test["loss"] - 0.01 * gained, 4), "images": images,
            "micro_auc": min(0.99, roc["micro_auc"] + 0.001 * gained),
            "macro_auc": min(0.99, roc["macro_auc"] + 0.001 * gained),
            "changed_predictions": changed}


def _model_results(key, accuracy, class_names, per_class, epochs, null_auc_classes,
                   rng, legacy=False, flip_tta=None) -> dict:
    matrix = _confusion_matrix(accuracy, len(class_names), per_class, rng)
    history = _history(epochs, accuracy, rng)
    best_index = int(np.argmax(history["val_accuracy"]))
    test = {"accuracy": accuracy, "loss": round(2.2 - 1.8 * accuracy, 4),
            "images": int(matrix.sum())}
    roc = _roc(class_names, null_auc_classes, rng)
    model = {
        "label": MODEL_LABELS.get(key, key.upper()),
        "parameters": 357482 if key == "cnn" else 812330,
        "best_hyperparameters": _best_hyperparameters(key, legacy),
        # Guard-stopped trials are among the completed ones: 6 = 5 completed + 1 failed.
        "search": {"trials": 6, "completed": 5, "failed": 1, "stopped_by_guard": 2,
                   "best_val_accuracy": round(accuracy - 0.08, 4), "best_trial_id": "0004",
                   "seconds": 70.2 if key == "cnn" else 60.4},
        "refit": {"epochs_run": epochs, "best_epoch": best_index + 1,
                  "best_val_accuracy": history["val_accuracy"][best_index],
                  "seconds": 95.0 if key == "cnn" else 50.0, "history": history},
        "test": test,
        "per_class": _per_class(matrix, class_names),
        "confusion_matrix": matrix.tolist(),
        "roc": roc,
    }
    if flip_tta is not None:
        model["flip_tta"] = _flip_tta(test, roc, *flip_tta)
    if not legacy:
        model["search"]["ledger"] = _ledger(model["search"]["best_val_accuracy"])
    if not legacy and key in ROBUSTNESS_SHARES:
        model["robustness"] = _robustness(test, len(class_names), *ROBUSTNESS_SHARES[key])
    return model


def _intervals(model: dict) -> dict:
    # Symmetric intervals a few points wide around the stored scores.
    accuracy, macro_auc = model["test"]["accuracy"], model["roc"]["macro_auc"]
    recall = [row["recall"] for row in model["per_class"]]
    return {"confidence": 0.95, "resamples": 1000,
            "accuracy": [max(0.0, accuracy - 0.03), min(1.0, accuracy + 0.03)],
            "macro_auc": [max(0.0, macro_auc - 0.01), min(1.0, macro_auc + 0.01)],
            "per_class_recall": [None if value is None else
                                 [max(0.0, value - 0.1), min(1.0, value + 0.1)]
                                 for value in recall]}


def _seeds(model: dict, count: int, seed: int) -> dict:
    # The first run is the stored refit; later seeds lose 0.5 points each.
    runs = [{"seed": seed + offset,
             "accuracy": model["test"]["accuracy"] - 0.005 * offset,
             "macro_auc": model["roc"]["macro_auc"] - 0.001 * offset,
             "epochs_run": model["refit"]["epochs_run"], "best_epoch": model["refit"]["best_epoch"],
             "best_val_accuracy": model["refit"]["best_val_accuracy"],
             "seconds": model["refit"]["seconds"]} for offset in range(count)]
    summary = {"count": count, "runs": runs}
    for key in ("accuracy", "macro_auc"):
        values = np.array([run[key] for run in runs])
        summary[key] = {"mean": float(values.mean()),
                        "sd": float(values.std(ddof=1)) if count > 1 else None}
    return summary


def _comparison(models: dict) -> dict | None:
    # Images right for exactly one model: 10 each, plus the gap in images for
    # the more accurate one; McNemar's p from scipy on those counts.
    from scipy.stats import binomtest

    if len(models) < 2:
        return None
    first, second = list(models)[:2]
    images = models[first]["test"]["images"]
    gap = models[first]["test"]["accuracy"] - models[second]["test"]["accuracy"]
    only_a = 10 + max(0, round(gap * images))
    only_b = 10 + max(0, -round(gap * images))
    p_value = float(binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"models": [first, second], "accuracy_difference": gap,
            "interval": [gap - 0.04, gap + 0.04], "confidence": 0.95, "resamples": 1000,
            "only_a": only_a, "only_b": only_b, "p_value": p_value}


def _robustness(test: dict, classes: int, low_shares, high_shares) -> dict:
    # Accuracies chance + share * (unfiltered - chance), rounded to whole images.
    images, unfiltered, chance = test["images"], test["accuracy"], 1.0 / classes

    def accuracies(shares):
        return [round((chance + share * (unfiltered - chance)) * images) / images
                for share in shares]

    return {"images": images, "widths": list(ROBUSTNESS_WIDTHS), "chance": chance,
            "unfiltered_accuracy": unfiltered, "low_pass_accuracy": accuracies(low_shares),
            "high_pass_accuracy": accuracies(high_shares), "seconds": 4.2}


def _add_calibration(path: Path, key: str, model: dict, class_names, image_side: int) -> None:
    # Scores whose argmax gives the confusion matrix cell by cell: right
    # predictions at confidence 0.5 to 1, wrong ones from just above chance to
    # 0.95, so the gallery has confident mistakes. A generator of its own
    # keeps the other fixture numbers as they were.
    rng = np.random.default_rng(list(key.encode()))
    matrix = np.asarray(model["confusion_matrix"])
    classes = len(class_names)
    true, predicted = np.nonzero(matrix)
    y_true = np.repeat(true, matrix[true, predicted])
    y_pred = np.repeat(predicted, matrix[true, predicted])
    floor = 1.0 / classes + 0.05
    confidence = np.where(y_true == y_pred, rng.uniform(max(0.5, floor), 1.0, len(y_true)),
                          rng.uniform(floor, 0.95, len(y_true)))
    y_score = np.repeat(((1.0 - confidence) / (classes - 1))[:, None], classes, axis=1)
    y_score[np.arange(len(y_true)), y_pred] = confidence

    model["calibration"] = {**reliability(y_true, y_score, CALIBRATION_BINS),
                            "bin_count": CALIBRATION_BINS}
    mistakes = most_confident_mistakes(y_true, y_score, class_names, MISTAKES_SHOWN)
    model["confident_mistakes"] = mistakes
    test_images = np.stack([_synthetic_image(image_side, rng) for _ in y_true])
    np.savez_compressed(path / f"predictions_{key}.npz", y_true=y_true,
                        y_score=y_score.astype(np.float32),
                        mistake_images=mistake_images(test_images, mistakes))
