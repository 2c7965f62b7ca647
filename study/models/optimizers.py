"""Training hyperparameters of a candidate: optimizer, learning-rate schedule and loss.

`register_training` draws the optimizer and its ranges, the schedule and
the label smoothing from a TrainingSpace, and `compile_model` compiles a
model with them. `StudyHyperModel.fit` adds the schedule's callback, so the
search and the refit train the same way.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import keras
import keras_tuner as kt
from keras import ops

from study.config import OPTIMIZERS, SCHEDULES, FloatRange, IntRange, TrainingSpace


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.0,
                   weight_decay: float = 0.0):
    """Build the named optimizer; 'rmsprop' builds RMSprop, never SGD.

    `weight_decay` is Keras's decoupled decay, applied as
    w -= learning_rate * weight_decay * w each step; 0 turns it off.
    """
    decay = weight_decay or None
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, weight_decay=decay)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    if name in ("sgd", "sgd_nesterov"):
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                    nesterov=name == "sgd_nesterov", weight_decay=decay)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=learning_rate, momentum=momentum,
                                        weight_decay=decay)
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


def scheduled_rate(progress: float, peak: float, epochs: float, kind: str,
                   warmup_fraction: float = 0.0) -> float:
    """Learning rate after `progress` epochs (fractional) of `epochs`.

    'constant' keeps `peak`. 'cosine' rises linearly from 0 to `peak` over
    the first `warmup_fraction * epochs` epochs, then falls to 0 at `epochs`
    along a half cosine.

    >>> scheduled_rate(0.5, 1.0, 10, "cosine", 0.1)
    0.5
    >>> round(scheduled_rate(5.5, 1.0, 10, "cosine", 0.1), 6)
    0.5
    """
    if kind == "constant":
        return peak
    if kind != "cosine":
        raise ValueError(f"unknown schedule {kind!r}: choose one of {', '.join(SCHEDULES)}")
    warmup = warmup_fraction * epochs
    if progress < warmup:
        return peak * progress / warmup
    span = max(epochs - warmup, 1e-9)
    done = min(max((progress - warmup) / span, 0.0), 1.0)
    return peak * 0.5 * (1.0 + math.cos(math.pi * done))


class LearningRateCurve(keras.callbacks.Callback):
    """Set the learning rate before every batch from the epoch and the batch index.

    The position comes from the epoch index, not the optimizer's step
    counter, so a Hyperband trial that continues with a fresh optimizer, or
    a refit resumed from its backup, stays on the same curve.
    """

    def __init__(self, peak: float, epochs: int, kind: str, warmup_fraction: float):
        super().__init__()
        self.peak, self.epochs, self.kind = peak, epochs, kind
        self.warmup_fraction = warmup_fraction
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        steps = (self.params or {}).get("steps") or 1
        progress = self._epoch + (batch + 0.5) / steps  # the middle of the step
        self.model.optimizer.learning_rate = scheduled_rate(
            progress, self.peak, self.epochs, self.kind, self.warmup_fraction)


@keras.saving.register_keras_serializable(package="study")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against probabilities, with label smoothing.

    Keras's sparse cross-entropy has no smoothing, so the labels are one-hot
    encoded and passed to its categorical cross-entropy.
    """

    def __init__(self, label_smoothing: float = 0.0, name: str = "smoothed_crossentropy",
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        onehot = ops.one_hot(labels, ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(onehot, y_pred,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


@dataclass(frozen=True)
class TrainingChoice:
    """One draw from a TrainingSpace."""

    optimizer: str
    learning_rate: float
    weight_decay: float
    momentum: float
    schedule: str
    warmup_fraction: float
    label_smoothing: float


def register_training(hp: kt.HyperParameters, space: TrainingSpace) -> TrainingChoice:
    """Draw the optimizer (and its own ranges), the schedule and the label smoothing.

    Each optimizer's learning rate, weight decay and momentum are active only
    when that optimizer is chosen. A decay or momentum fixed at 0 is left out.
    """
    names = [option.name for option in space.optimizers]
    name = hp.Choice("optimizer", names)
    option = space.optimizers[names.index(name)]
    scope = (hp.conditional_scope("optimizer", [name]) if len(names) > 1
             else contextlib.nullcontext())
    with scope:
        rate = float_hp(hp, "learning_rate", option.learning_rate)
        decay = float_hp(hp, "weight_decay", option.weight_decay) if option.weight_decay.max else 0.0
        momentum = float_hp(hp, "momentum", option.momentum) if option.momentum.max else 0.0
    schedule = hp.Choice("schedule", list(space.schedules))
    smoothing = (float_hp(hp, "label_smoothing", space.label_smoothing)
                 if space.label_smoothing.max else 0.0)
    return TrainingChoice(name, rate, decay, momentum, schedule, space.warmup_fraction,
                          smoothing)


def compile_model(model: keras.Model, choice: TrainingChoice, jit_compile="auto") -> None:
    """Compile with the chosen optimizer and loss, reporting accuracy."""
    loss = (SmoothedSparseCrossentropy(choice.label_smoothing) if choice.label_smoothing
            else "sparse_categorical_crossentropy")
    optimizer = make_optimizer(choice.optimizer, choice.learning_rate, choice.momentum,
                               choice.weight_decay)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"],
                  jit_compile=jit_compile)


class StudyHyperModel(kt.HyperModel):
    """A hypermodel whose `fit` follows the drawn learning-rate schedule.

    Subclasses set `self.training_space`, implement `build_model` and call
    `register_training` there. `fit` takes `schedule_epochs`, the length of the schedule:
    Hyperband's max_epochs in the search, max_epochs in the refit.
    """

    training_space: TrainingSpace
    jit_compile: bool | str = "auto"
    dtype_policy: str | None = None  # Keras dtype policy name; None leaves the global one

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        # keras-tuner clears the Keras session before each trial, and that
        # resets the global dtype policy to float32, so set it for each model.
        if self.dtype_policy is not None:
            keras.mixed_precision.set_global_policy(self.dtype_policy)
        return self.build_model(hp)

    def build_model(self, hp: kt.HyperParameters) -> keras.Model:
        raise NotImplementedError

    def training_choice(self, hp: kt.HyperParameters) -> TrainingChoice:
        return register_training(hp, self.training_space)

    def fit(self, hp, model, *args, schedule_epochs: int | None = None, callbacks=None,
            **kwargs):
        callbacks = list(callbacks or [])
        choice = self.training_choice(hp)
        if choice.schedule != "constant":
            if schedule_epochs is None:
                raise ValueError("a scheduled learning rate needs schedule_epochs")
            callbacks.append(LearningRateCurve(choice.learning_rate, schedule_epochs,
                                               choice.schedule, choice.warmup_fraction))
        return model.fit(*args, callbacks=callbacks, **kwargs)


def schedule_length(hypermodel: kt.HyperModel, epochs: int) -> dict:
    """Return the `fit` keyword that sets a StudyHyperModel's schedule length.

    Other hypermodels get no keyword.
    """
    return {"schedule_epochs": epochs} if isinstance(hypermodel, StudyHyperModel) else {}
