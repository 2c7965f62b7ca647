"""The convolutional network's hypermodel: a search space -> keras.Model.

Blocks of 3x3 'same' convolutions (optionally batch-normalized, optionally
with a residual shortcut around them) each followed by a 2x2 max-pool; then
flatten or global average pooling, an optional dense hidden layer, dropout
and a softmax.
"""

from __future__ import annotations

import keras
import keras_tuner as kt
import tensorflow as tf
from keras import layers

from study.config import CNN_POOLINGS as POOLINGS
from study.config import CNNSpace
from study.models.optimizers import StudyHyperModel, compile_model, float_hp, int_hp

# Keras's default momentum of 0.99 averages over ~100 batches, so after a
# few hundred steps the moving statistics still lag the weights and test
# accuracy sits near chance; 0.9 tracks them within ~10 batches.
BATCH_NORM_MOMENTUM = 0.9


def batch_normalization() -> layers.BatchNormalization:
    """Create a BatchNormalization layer, synchronized across replicas when there are several.

    Without `synchronized`, each replica of a MirroredStrategy normalizes
    over its own share of the batch and updates its own copy of the moving
    statistics. The copies drift apart, and a saved model keeps only the
    first replica's. Synchronized moments use another formula, so a single
    device keeps Keras's default.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, synchronized=replicas > 1)


def _choice(hp: kt.HyperParameters, name: str, values) -> object:
    values = list(values)
    if len(set(values)) == 1:
        return hp.Fixed(name, values[0])
    return hp.Choice(name, values)


def _conv(x, filters: int, kernel: int, batch_norm: bool):
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=not batch_norm)(x)
    if batch_norm:
        x = batch_normalization()(x)
    return x


class CNNHyperModel(StudyHyperModel):
    """Build a CNN from hyperparameters drawn within `space`.

    Args:
        space: the search space.
        input_shape: (H, W, C) of one image.
        num_classes: width of the softmax.
        jit_compile: passed to `Model.compile` (True, False or 'auto').
        dtype_policy: Keras dtype policy set before each build, e.g. 'mixed_bfloat16'.
    """

    def __init__(self, space: CNNSpace, input_shape: tuple[int, int, int],
                 num_classes: int, jit_compile: bool | str = "auto",
                 dtype_policy: str | None = None, **kwargs):
        super().__init__(**kwargs)
        for pooling in space.pooling:
            if pooling not in POOLINGS:
                raise ValueError(f"unknown CNN pooling {pooling!r}: choose one of "
                                 f"{', '.join(POOLINGS)}")
        for activation in space.activations:
            try:
                keras.activations.get(activation)
            except ValueError:
                raise ValueError(f"unknown CNN activation {activation!r}: use the name of a "
                                 "Keras activation, such as relu, elu, gelu or swish") from None
        self.space = space
        self.training_space = space.training
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.jit_compile = jit_compile
        self.dtype_policy = dtype_policy

    def build_model(self, hp: kt.HyperParameters) -> keras.Model:
        space = self.space
        blocks = int_hp(hp, "conv_blocks", space.conv_blocks)
        convs = hp.Choice("convs_per_block", list(space.convs_per_block))
        batch_norm = bool(_choice(hp, "batch_norm", space.batch_norm))
        residual = bool(_choice(hp, "residual", space.residual))
        activation = hp.Choice("activation", list(space.activations))

        inputs = keras.Input(self.input_shape)
        x = inputs
        for i in range(blocks):
            base = 32 * 2**i
            multipliers = space.filter_multipliers
            filters = hp.Int(f"filters_{i}", base * multipliers.min, base * multipliers.max,
                             step=base * multipliers.step)
            shortcut = x
            for j in range(convs):
                x = _conv(x, filters, 3, batch_norm)
                if not (residual and j == convs - 1):
                    x = layers.Activation(activation)(x)
            if residual:
                if shortcut.shape[-1] != filters:
                    shortcut = _conv(shortcut, filters, 1, batch_norm)
                x = layers.Activation(activation)(layers.Add()([x, shortcut]))
            x = layers.MaxPooling2D(2)(x)

        pooling = _choice(hp, "pooling", space.pooling)
        x = layers.Flatten()(x) if pooling == "flatten" else layers.GlobalAveragePooling2D()(x)
        units = int_hp(hp, "dense_units", space.dense_units)
        if units:
            x = layers.Dense(units, activation=activation)(x)
        x = layers.Dropout(float_hp(hp, "dropout", space.dropout))(x)
        # float32 probabilities even under a mixed-precision policy.
        outputs = layers.Dense(self.num_classes, activation="softmax", dtype="float32")(x)
        model = keras.Model(inputs, outputs, name="cnn")
        compile_model(model, self.training_choice(hp), self.jit_compile)
        return model
