"""Interrupted searches and refits continue to the result of an uninterrupted run.

A callback that raises an exception simulates a killed process. What the
run folder contains at that moment is what a rerun finds. The SIGKILL test of
the whole CLI is in test_end_to_end.py.
"""

import json

import keras
import keras_tuner as kt
import numpy as np
import pytest

from study.config import AugmentationSettings, RefitSettings, SearchBudget
from study.inputs import EpochOrder, make_dataset
from study.refit import STATE_FILE, backup_dir, refit
from study.search import SearchSpaceChanged, run_search


class Interrupt(Exception):
    """Stands in for a kill."""


class StopAt(keras.callbacks.Callback):
    """Raise at the start of epoch `epoch` (0-based)."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise Interrupt(f"interrupted at epoch {epoch}")


class DropoutModel(kt.HyperModel):
    """A small dense classifier with dropout, so resuming must restore its RNG too."""

    def __init__(self, units=(4, 8, 16, 32, 64)):
        super().__init__()
        self.units = units

    def build(self, hp):
        inputs = keras.Input((4, 4, 3))
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(hp.Choice("units", list(self.units)), activation="relu")(x)
        x = keras.layers.Dropout(0.3)(x)
        outputs = keras.layers.Dense(3, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(hp.Float("lr", 1e-3, 3e-2, sampling="log")),
                      "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


def _data(seed=0, augmentation=None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, 60)
    x = (rng.integers(0, 60, (60, 4, 4, 3)) + 60 * y[:, None, None, None]).astype(np.uint8)
    order = EpochOrder(5)
    return (make_dataset(x, y, 16, order=order, augmentation=augmentation),
            make_dataset(x, y, 16), order)


def _batches(dataset):
    return [int(v) for _, labels in dataset for v in labels.numpy()]


def test_epoch_order_depends_on_epoch_only():
    train, _, order = _data()
    orders = {}
    for epoch in (0, 1, 2, 1):
        order.on_epoch_begin(epoch)
        orders.setdefault(epoch, []).append(_batches(train))
    assert orders[1][0] == orders[1][1]
    assert orders[0][0] != orders[1][0]
    assert sorted(orders[2][0]) == sorted(orders[0][0])
    again_train, _, again = _data()
    again.on_epoch_begin(2)
    assert _batches(again_train) == orders[2][0]


def _refit(tmp_path, settings, interrupt_at=None, augmentation=None):
    keras.utils.set_random_seed(3)
    hp = kt.HyperParameters()
    hp.Fixed("units", 16)
    hp.Fixed("lr", 0.02)
    train, val, order = _data(augmentation=augmentation)
    extra = [order] + ([StopAt(interrupt_at)] if interrupt_at is not None else [])
    return refit("tiny", DropoutModel(), hp, settings, train, val, tmp_path, callbacks=extra)


@pytest.mark.parametrize("interrupt_at", [1, 3])
def test_refit_resumes_to_same_weights(tmp_path, interrupt_at):
    settings = RefitSettings(max_epochs=6, patience=2, batch_size=16)
    model, summary = _refit(tmp_path / "whole", settings)
    with pytest.raises(Interrupt):
        _refit(tmp_path / "cut", settings, interrupt_at=interrupt_at)
    state = json.loads((backup_dir(tmp_path / "cut", "tiny") / STATE_FILE).read_text())
    assert state["epoch"] == interrupt_at
    resumed_model, resumed = _refit(tmp_path / "cut", settings)
    assert resumed["resumed_at_epoch"] == interrupt_at
    assert resumed["history"] == summary["history"]
    assert resumed["best_epoch"] == summary["best_epoch"]
    for a, b in zip(model.get_weights(), resumed_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_augmented_refit_resumes_to_same_weights(tmp_path):
    settings = RefitSettings(max_epochs=4, patience=4, batch_size=16)
    augmentation = AugmentationSettings(flip=True, translate_pixels=1)
    model, summary = _refit(tmp_path / "whole", settings, augmentation=augmentation)
    with pytest.raises(Interrupt):
        _refit(tmp_path / "cut", settings, interrupt_at=2, augmentation=augmentation)
    resumed_model, resumed = _refit(tmp_path / "cut", settings, augmentation=augmentation)
    assert resumed["history"] == summary["history"]
    for a, b in zip(model.get_weights(), resumed_model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_refit_finished_backup_trains_no_more(tmp_path):
    settings = RefitSettings(max_epochs=3, patience=5, batch_size=16)
    model, summary = _refit(tmp_path, settings)
    # The backup of a finished refit is kept until the pipeline records the stage.
    again_model, again = _refit(tmp_path, settings)
    assert again["resumed_at_epoch"] == 3
    assert again["history"] == summary["history"]
    for a, b in zip(model.get_weights(), again_model.get_weights()):
        np.testing.assert_array_equal(a, b)


BUDGET = SearchBudget(max_epochs=3, factor=3, batch_size=16, patience=5, trial_time_limit_s=60)


class StopInTrial(keras.callbacks.Callback):
    """Raise keras-tuner's FatalError (which ends the search) in the n-th trial's fit."""

    def __init__(self, trial_number: int):
        super().__init__()
        self.trial_number = trial_number
        self.fits = 0

    def __deepcopy__(self, memo):
        return self

    def on_train_begin(self, logs=None):
        self.fits += 1
        if self.fits == self.trial_number:
            raise kt.errors.FatalError("interrupted in a trial")


def test_search_resumes_interrupted_trial(tmp_path):
    train, val, order = _data()
    _, whole = run_search("tiny", DropoutModel(), BUDGET, train, val, tmp_path / "whole",
                          seed=2, callbacks=[order])
    with pytest.raises(kt.errors.FatalError):
        run_search("tiny", DropoutModel(), BUDGET, train, val, tmp_path / "cut", seed=2,
                   callbacks=[order, StopInTrial(3)])
    _, resumed = run_search("tiny", DropoutModel(), BUDGET, train, val, tmp_path / "cut",
                            seed=2, callbacks=[order])
    assert resumed["trials"] == whole["trials"]
    ids = [record["trial_id"] for record in resumed["trial_records"]]
    assert len(ids) == len(set(ids))
    assert [r["score"] for r in resumed["trial_records"]] == [
        r["score"] for r in whole["trial_records"]]
    assert resumed["best_trial_id"] == whole["best_trial_id"]


def test_search_refuses_changed_space(tmp_path):
    train, val, order = _data()
    run_search("tiny", DropoutModel(), BUDGET, train, val, tmp_path, seed=2, callbacks=[order])
    with pytest.raises(SearchSpaceChanged, match=r"units values was \[4, 8, 16, 32, 64\]"):
        run_search("tiny", DropoutModel(units=(4, 8)), BUDGET, train, val, tmp_path, seed=2,
                   callbacks=[order])


def test_scheduled_refit_resumes_to_same_weights(tmp_path):
    # The real CNN hypermodel with AdamW, warm-up + cosine and label smoothing:
    # the learning rate after a resume must continue the same curve.
    from study.config import (CNNSpace, FloatRange, IntRange, OptimizerSpace,
                              TrainingSpace)
    from study.models.cnn import CNNHyperModel

    training = TrainingSpace(
        optimizers=(OptimizerSpace("adamw", FloatRange(0.01, 0.01),
                                   weight_decay=FloatRange(0.05, 0.05)),),
        schedules=("cosine",), warmup_fraction=0.25, label_smoothing=FloatRange(0.1, 0.1))
    space = CNNSpace(conv_blocks=IntRange(1, 1), filter_multipliers=IntRange(1, 1),
                     batch_norm=(True,), residual=(True,), convs_per_block=(2,),
                     activations=("relu",), pooling=("global_average",),
                     dense_units=IntRange(0, 0), dropout=FloatRange(0.2, 0.2), training=training)
    settings = RefitSettings(max_epochs=4, patience=4, batch_size=16)

    def run(folder, interrupt_at=None):
        keras.utils.set_random_seed(3)
        hp = kt.HyperParameters()
        hp.Fixed("filters_0", 32)
        train, val, order = _data()
        extra = [order] + ([StopAt(interrupt_at)] if interrupt_at is not None else [])
        return refit("cnn", CNNHyperModel(space, (4, 4, 3), 3), hp, settings, train, val,
                     folder, callbacks=extra)

    model, summary = run(tmp_path / "whole")
    with pytest.raises(Interrupt):
        run(tmp_path / "cut", interrupt_at=2)
    resumed_model, resumed = run(tmp_path / "cut")
    assert resumed["resumed_at_epoch"] == 2
    assert resumed["history"] == summary["history"]
    for a, b in zip(model.get_weights(), resumed_model.get_weights()):
        np.testing.assert_array_equal(a, b)
