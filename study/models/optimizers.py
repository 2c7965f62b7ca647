"""Map an optimizer's name from a search space to the Keras optimizer."""

from __future__ import annotations

import keras

OPTIMIZERS = ("adam", "sgd", "rmsprop")


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.0):
    """Build the named optimizer; 'rmsprop' builds RMSprop, never SGD."""
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}: choose one of {', '.join(OPTIMIZERS)}")
