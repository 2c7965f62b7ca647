"""Shared pieces of the hypermodels: optimizers by name, ranges as hyperparameters."""

from __future__ import annotations

import keras
import keras_tuner as kt

from study.config import FloatRange, IntRange

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


def int_hp(hp: kt.HyperParameters, name: str, bounds: IntRange) -> int:
    """Register an integer hyperparameter over `bounds`; a one-value range is fixed."""
    if bounds.min == bounds.max:
        return hp.Fixed(name, bounds.min)
    return hp.Int(name, bounds.min, bounds.max, step=bounds.step)


def float_hp(hp: kt.HyperParameters, name: str, bounds: FloatRange) -> float:
    """Register a float hyperparameter over `bounds`, log-uniform when `bounds.log`."""
    if bounds.min == bounds.max:
        return hp.Fixed(name, bounds.min)
    if bounds.log:
        return hp.Float(name, bounds.min, bounds.max, sampling="log")
    return hp.Float(name, bounds.min, bounds.max, step=bounds.step)
