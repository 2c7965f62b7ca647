"""Augmentation in the input pipeline: what each flag does to an image, and its seeds."""

import numpy as np
import pytest

from study.config import AugmentationSettings
from study.inputs import EpochOrder, make_dataset


def _images(count=6, size=8):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8), np.arange(count)


def _epoch(dataset, order, epoch):
    order.on_epoch_begin(epoch)
    batches = [(images.numpy(), labels.numpy()) for images, labels in dataset]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def test_flip_mirrors_or_keeps_each_image():
    x, y = _images()
    order = EpochOrder(1)
    dataset = make_dataset(x, y, 4, order=order, augmentation=AugmentationSettings(flip=True))
    flips = 0
    for epoch in range(3):
        images, labels = _epoch(dataset, order, epoch)
        for image, label in zip(images, labels):
            original = x[label].astype(np.float32) / np.float32(255.0)
            mirrored = np.array_equal(image, original[:, ::-1])
            assert mirrored or np.array_equal(image, original), label
            flips += mirrored
    assert 0 < flips < 18  # 18 draws with probability 1/2 each


def test_translate_shifts_by_whole_pixels():
    x, y = _images(size=10)
    order = EpochOrder(2)
    dataset = make_dataset(x, y, 3, order=order,
                           augmentation=AugmentationSettings(translate_pixels=2))
    images, labels = _epoch(dataset, order, 0)
    shifted = 0
    for image, label in zip(images, labels):
        original = x[label].astype(np.float32) / np.float32(255.0)
        # Away from the reflected border, output (r, c) is input (r - dy, c - dx).
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(image[2:-2, 2:-2],
                                     original[2 - dy:10 - 2 - dy, 2 - dx:10 - 2 - dx])]
        assert len(matches) == 1, label
        shifted += matches[0] != (0, 0)
    assert shifted > 0


def test_augmentation_repeats_per_epoch():
    x, y = _images()
    order = EpochOrder(3)
    settings = AugmentationSettings(flip=True, translate_pixels=2)
    dataset = make_dataset(x, y, 4, order=order, augmentation=settings)
    first, _ = _epoch(dataset, order, 0)
    second, _ = _epoch(dataset, order, 1)
    again, _ = _epoch(dataset, order, 0)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


def test_augmentation_without_order_rejected():
    x, y = _images()
    with pytest.raises(ValueError, match="needs an EpochOrder"):
        make_dataset(x, y, 4, augmentation=AugmentationSettings(flip=True))


def test_disabled_augmentation_changes_nothing():
    x, y = _images()
    order = EpochOrder(4)
    dataset = make_dataset(x, y, 4, order=order, augmentation=AugmentationSettings())
    images, labels = _epoch(dataset, order, 0)
    np.testing.assert_array_equal(images, x[labels] / np.float32(255.0))
