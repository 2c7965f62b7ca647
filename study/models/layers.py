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
class PatchEncoder(layers.Layer):
    """Project each patch to `projection_dim` and add a learned position embedding."""

    def __init__(self, num_patches: int, projection_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.num_patches = int(num_patches)
        self.projection_dim = int(projection_dim)
        self.projection = layers.Dense(self.projection_dim)
        self.position_embedding = layers.Embedding(self.num_patches, self.projection_dim)

    def build(self, input_shape):
        self.projection.build(input_shape)
        self.position_embedding.build((self.num_patches,))
        super().build(input_shape)

    def call(self, patches):
        positions = ops.arange(self.num_patches)
        return self.projection(patches) + self.position_embedding(positions)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.projection_dim)

    def get_config(self):
        return {**super().get_config(), "num_patches": self.num_patches,
                "projection_dim": self.projection_dim}
