"""Turn uint8 image arrays into tf.data pipelines that feed Keras.

Images stay uint8 in memory, (N, H, W, 3). Each batch is cast to float32
and scaled to [0, 1] inside the pipeline, so no float copy of the whole set
is made. Labels are integer class indices for a sparse cross-entropy.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from sklearn.model_selection import train_test_split


def _scale(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(images, tf.float32) / 255.0, labels


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool,
                 seed: int) -> tf.data.Dataset:
    """Build a batched, scaled, prefetched dataset from (N, H, W, 3) uint8 arrays.

    With `shuffle`, the order is reshuffled each epoch from a fixed seed, so
    two runs with the same seed see the same batches.
    """
    dataset = tf.data.Dataset.from_tensor_slices((x, y.astype(np.int32)))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(_scale, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def validation_split(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """Hold out a stratified `fraction` of (x, y); returns x_fit, y_fit, x_val, y_val."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must lie in (0, 1), got {fraction}")
    fit_idx, val_idx = train_test_split(
        np.arange(len(y)), test_size=fraction, stratify=y, random_state=seed
    )
    fit_idx, val_idx = np.sort(fit_idx), np.sort(val_idx)
    return x[fit_idx], y[fit_idx], x[val_idx], y[val_idx]
