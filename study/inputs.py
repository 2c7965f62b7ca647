"""Turn uint8 image arrays into tf.data pipelines that feed Keras.

Images stay uint8 in memory, (N, H, W, 3). Each batch is cast to float32
and scaled to [0, 1] inside the pipeline, so no float copy of the whole set
is made. Labels are integer class indices for a sparse cross-entropy.

A shuffled pipeline takes its order from an `EpochOrder` callback: the
order of epoch e is a pure function of (seed, e). An interrupted training
that resumes at epoch e therefore receives the same batches as one that was
never interrupted, which a reshuffling tf.data buffer cannot promise.
Augmentation (flips, shifts) draws from stateless seeds folded from
(seed, epoch, batch) for the same reason.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from sklearn.model_selection import train_test_split

from study.config import AugmentationSettings


def _scale(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    return tf.cast(images, tf.float32) / 255.0, labels


class EpochOrder(keras.callbacks.Callback):
    """Tell shuffled pipelines which epoch Keras starts; pass it to `fit` with them.

    Keras opens a new iterator over the data at each epoch, after
    `on_epoch_begin`, so the permutation is drawn for the right epoch.
    """

    def __init__(self, seed: int):
        super().__init__()
        self.seed = int(seed)
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False)

    def __deepcopy__(self, memo):
        # keras-tuner deep-copies the callbacks of each trial; a copy would
        # carry its own epoch variable that no pipeline reads.
        return self

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch.assign(epoch)

    def permutation(self, size: int) -> tf.Tensor:
        """Return the order of `size` items for the current epoch."""
        seed = tf.stack([tf.constant(self.seed, tf.int64), self.epoch.read_value()])
        keys = tf.random.stateless_uniform([size], seed=seed)
        return tf.argsort(keys, stable=True)


def augment_batch(images: tf.Tensor, seed: tf.Tensor,
                  settings: AugmentationSettings) -> tf.Tensor:
    """Flip and shift each image of a float batch (B, H, W, C) independently.

    `seed` is a stateless seed, shape (2,); the same seed gives the same
    changes. Shifts are whole pixels with the border reflected, so no
    pixel value is interpolated.

    NOTE: this runs inside tf.data, on the host CPU even when a GPU trains
    the model. Whether it keeps up with a GPU has not been measured.
    """
    if settings.flip:
        flip_seed = tf.random.experimental.stateless_fold_in(seed, 0)
        images = tf.image.stateless_random_flip_left_right(images, seed=flip_seed)
    if settings.translate_pixels > 0:
        shift_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        limit = settings.translate_pixels
        shifts = tf.cast(tf.random.stateless_uniform(
            [tf.shape(images)[0], 2], seed=shift_seed, minval=-limit, maxval=limit + 1,
            dtype=tf.int32), tf.float32)
        ones, zeros = tf.ones_like(shifts[:, 0]), tf.zeros_like(shifts[:, 0])
        # Output pixel (x, y) reads input pixel (x - dx, y - dy).
        transforms = tf.stack([ones, zeros, -shifts[:, 0], zeros, ones, -shifts[:, 1],
                               zeros, zeros], axis=1)
        images = keras.ops.image.affine_transform(images, transforms,
                                                  interpolation="nearest",
                                                  fill_mode="reflect")
    return images


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *,
                 order: EpochOrder | None = None,
                 augmentation: AugmentationSettings | None = None) -> tf.data.Dataset:
    """Build a batched, scaled, prefetched dataset from (N, H, W, 3) uint8 arrays.

    With `order`, each epoch visits the images in that callback's
    permutation for the epoch; without it, in array order. `augmentation`
    (which needs `order`, for the epoch) changes each training batch.
    """
    labels = y.astype(np.int32)
    augmenting = augmentation is not None and augmentation.enabled
    if augmenting and order is None:
        raise ValueError("augmentation needs an EpochOrder, which gives each epoch its seeds")
    if order is None:
        dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(batch_size)
    else:
        images = tf.constant(x)
        targets = tf.constant(labels)
        size = len(x)
        indices = tf.data.Dataset.range(1).flat_map(
            lambda _: tf.data.Dataset.from_tensor_slices(order.permutation(size)))
        dataset = indices.batch(batch_size).map(
            lambda idx: (tf.gather(images, idx), tf.gather(targets, idx)))
        # flat_map hides the length; Keras needs it to open one iterator per epoch.
        batches = -(-size // batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches))
    dataset = dataset.map(_scale, num_parallel_calls=tf.data.AUTOTUNE)
    if augmenting:
        def augment(batch, pair):
            # Read inside the pipeline, so each epoch's iterator uses its own epoch.
            epoch_seed = tf.stack([tf.constant(order.seed, tf.int64), order.epoch.read_value()])
            seed = tf.random.experimental.stateless_fold_in(epoch_seed, batch)
            return augment_batch(pair[0], seed, augmentation), pair[1]

        dataset = dataset.enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE)
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
