"""The convolutional network's hypermodel: a search space -> keras.Model.

Blocks of 3x3 'same' convolutions (optionally batch-normalized) and a 2x2
max-pool, then one dense hidden layer with dropout and a softmax.
"""

from __future__ import annotations

import keras
import keras_tuner as kt
from keras import layers

from study.config import CNNSpace
from study.models.optimizers import float_hp, int_hp, make_optimizer

# Keras's default momentum of 0.99 averages over ~100 batches, so after a
# few hundred steps the moving statistics still lag the weights and test
# accuracy sits near chance; 0.9 tracks them within ~10 batches.
BATCH_NORM_MOMENTUM = 0.9


class CNNHyperModel(kt.HyperModel):
    """Build a CNN from hyperparameters drawn within `space`.

    Args:
        space: the search space.
        input_shape: (H, W, C) of one image.
        num_classes: width of the softmax.
    """

    def __init__(self, space: CNNSpace, input_shape: tuple[int, int, int],
                 num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.space = space
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        space = self.space
        blocks = int_hp(hp, "conv_blocks", space.conv_blocks)
        convs = hp.Choice("convs_per_block", list(space.convs_per_block))
        if len(set(space.batch_norm)) == 2:
            batch_norm = hp.Boolean("batch_norm")
        else:
            batch_norm = hp.Fixed("batch_norm", bool(space.batch_norm[0]))
        activation = hp.Choice("activation", list(space.activations))

        inputs = keras.Input(self.input_shape)
        x = inputs
        for i in range(blocks):
            base = 32 * 2**i
            multipliers = space.filter_multipliers
            filters = hp.Int(f"filters_{i}", base * multipliers.min, base * multipliers.max,
                             step=base * multipliers.step)
            for _ in range(convs):
                x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm)(x)
                if batch_norm:
                    x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM)(x)
                x = layers.Activation(activation)(x)
            x = layers.MaxPooling2D(2)(x)

        x = layers.Flatten()(x)
        x = layers.Dense(int_hp(hp, "dense_units", space.dense_units), activation=activation)(x)
        x = layers.Dropout(float_hp(hp, "dropout", space.dropout))(x)
        outputs = layers.Dense(self.num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs, name="cnn")

        optimizer = make_optimizer(
            hp.Choice("optimizer", list(space.optimizers)),
            float_hp(hp, "learning_rate", space.learning_rate),
        )
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model
