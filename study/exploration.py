"""Describe the data before training: balance, pixels, samples, spectra.

Returns plain numbers (for results.json) and arrays (for the figures,
saved to the run folder's exploration.npz).
"""

from __future__ import annotations

import numpy as np

from study import fourier
from study.config import ExplorationSettings
from study.data import ImageDataset

CHANNELS = ("red", "green", "blue")


def class_balance(y_train: np.ndarray, y_test: np.ndarray,
                  class_names: tuple[str, ...]) -> list[dict]:
    """Count and share of each class in both splits.

    >>> class_balance(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ("a", "b"))[1]["test_share"]
    0.75
    """
    k = len(class_names)
    train = np.bincount(y_train, minlength=k)
    test = np.bincount(y_test, minlength=k)
    return [
        {"class": name, "train_count": int(train[i]), "train_share": float(train[i] / train.sum()),
         "test_count": int(test[i]), "test_share": float(test[i] / test.sum())}
        for i, name in enumerate(class_names)
    ]


def pixel_statistics(images: np.ndarray) -> dict:
    """Per-channel histogram over the 256 uint8 values, with mean, std and clipping shares."""
    stats = {"bins": 256, "images": int(len(images)), "counts": {}, "channels": {}}
    for c, name in enumerate(CHANNELS):
        values = images[..., c]
        counts = np.bincount(values.ravel(), minlength=256)
        total = counts.sum()
        levels = np.arange(256)
        mean = float((counts * levels).sum() / total)
        std = float(np.sqrt((counts * (levels - mean) ** 2).sum() / total))
        stats["counts"][name] = counts.astype(int).tolist()
        stats["channels"][name] = {
            "mean": mean, "std": std,
            "saturated_share": float(counts[255] / total),
            "zero_share": float(counts[0] / total),
        }
    return stats


def first_of_each_class(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Index of the first image of every class present, in class order."""
    return np.array([np.flatnonzero(labels == k)[0] for k in range(num_classes)
                     if np.any(labels == k)])


def explore(dataset: ImageDataset, settings: ExplorationSettings) -> tuple[dict, dict]:
    """Compute the exploration numbers and figure arrays from the training split."""
    num_classes = len(dataset.class_names)
    sample_idx = first_of_each_class(dataset.y_train, num_classes)
    spectrum_idx = sample_idx[: settings.spectrum_images]
    spectrum_images = dataset.x_train[spectrum_idx]

    reconstruction = fourier.reconstruct(spectrum_images)
    widths = np.asarray(settings.filter_widths, dtype=np.float32)
    low = np.stack([fourier.filter_images(spectrum_images, w, "low") for w in widths])
    high = np.stack([fourier.filter_images(spectrum_images, w, "high") for w in widths])

    numbers = {
        "class_balance": class_balance(dataset.y_train, dataset.y_test, dataset.class_names),
        "pixels": {"split": "train", **pixel_statistics(dataset.x_train)},
        "fourier": {
            "reconstruction_max_abs_error": float(np.abs(reconstruction - spectrum_images).max()),
            "filter_widths": widths.tolist(),
            "low_pass_energy_kept": [fourier.energy_kept(spectrum_images, w, "low") for w in widths],
            "high_pass_energy_kept": [fourier.energy_kept(spectrum_images, w, "high") for w in widths],
        },
        "samples": {"labels": dataset.y_train[sample_idx].tolist(),
                    "spectrum_labels": dataset.y_train[spectrum_idx].tolist()},
    }
    arrays = {
        "samples": dataset.x_train[sample_idx],
        "sample_labels": dataset.y_train[sample_idx],
        "spectrum_images": spectrum_images,
        "spectrum_labels": dataset.y_train[spectrum_idx],
        "log_amplitude": fourier.log_amplitude(spectrum_images).astype(np.float32),
        "phase": fourier.phase(spectrum_images).astype(np.float32),
        "reconstruction": reconstruction.astype(np.float32),
        "filter_widths": widths,
        "low_pass": low.astype(np.float32),
        "high_pass": high.astype(np.float32),
    }
    return numbers, arrays
