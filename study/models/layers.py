"""Keras layers of the Vision Transformer, registered so saved models reload."""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="study")
class Patches(layers.Layer):
    """Cut (B, H, W, C) images into (B, H/p * W/p, p*p*C) flattened patches.

    The patch size must divide both image sides, so no pixel is dropped.
    """

    def __init__(self, patch_size: int, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = int(patch_size)

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        for side in (height, width):
            if side is not None and side % self.patch_size:
                raise ValueError(
                    f"patch size {self.patch_size} does not divide the image side "
                    f"{side}; choose a divisor such as "
                    f"{[d for d in range(2, side + 1) if side % d == 0]}"
                )
        super().build(input_shape)

    def call(self, images):
        patches = ops.image.extract_patches(images, size=self.patch_size)
        batch = ops.shape(patches)[0]
        count = patches.shape[1] * patches.shape[2]
        return ops.reshape(patches, (batch, count, patches.shape[-1]))

    def compute_output_shape(self, input_shape):
        count = (input_shape[1] // self.patch_size) * (input_shape[2] // self.patch_size)
        return (input_shape[0], count, self.patch_size * self.patch_size * input_shape[3])

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size}


@keras.saving.register_keras_serializable(package="study")
class TokenPositions(layers.Layer):
    """Add a learned position embedding to (B, N, D) tokens: one D-vector per position."""

    def build(self, input_shape):
        self.positions = self.add_weight(
            shape=tuple(input_shape[1:]), name="positions",
            initializer=keras.initializers.RandomNormal(stddev=0.02))
        super().build(input_shape)

    def call(self, tokens):
        return tokens + self.positions


@keras.saving.register_keras_serializable(package="study")
class ClassToken(layers.Layer):
    """Put one learned D-vector in front of (B, N, D) tokens, giving (B, N + 1, D)."""

    def build(self, input_shape):
        self.token = self.add_weight(shape=(1, 1, input_shape[-1]), name="token",
                                     initializer="zeros")
        super().build(input_shape)

    def call(self, tokens):
        batch = ops.shape(tokens)[0]
        token = ops.cast(ops.broadcast_to(self.token, (batch, 1, ops.shape(tokens)[-1])),
                         tokens.dtype)
        return ops.concatenate([token, tokens], axis=1)

    def compute_output_shape(self, input_shape):
        count = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], count, input_shape[2])
