import dataclasses
import json
import time

import keras
import keras_tuner as kt
import numpy as np
import pytest

from study.config import SearchBudget
from study.inputs import EpochOrder, make_dataset
from study.ledger import read_json_lines
from study.search import (GuardLog, RecordedEarlyStopping, SearchError, _forget_trial_lines,
                          hyperband_epoch_count, hyperband_trial_count, run_search)


def test_trial_count_by_hand():
    # max_epochs 3, factor 3: bracket 1 runs 3 one-epoch trials and promotes
    # 1 to three epochs; bracket 0 runs 2 three-epoch trials: 6 in all.
    assert hyperband_trial_count(3, 3) == 6
    # max_epochs 9, factor 3: 9 + 3 + 1, then 5 + 2, then 3.
    assert hyperband_trial_count(9, 3) == 23
    assert hyperband_trial_count(9, 3, iterations=2) == 46


class TinyModel(kt.HyperModel):
    """A dense classifier on 4x4x3 inputs, with enough unit choices for 6+ distinct
    trials; choosing poison makes every output NaN."""

    def __init__(self, poison_choices):
        super().__init__()
        self.poison_choices = poison_choices

    def build(self, hp):
        poison = hp.Choice("poison", self.poison_choices)
        inputs = keras.Input((4, 4, 3))
        x = keras.layers.Flatten()(inputs)
        x = keras.layers.Dense(hp.Int("units", 2, 64), activation="relu")(x)
        outputs = keras.layers.Dense(2, activation="softmax")(x)
        if poison:
            outputs = keras.layers.Lambda(lambda t: t * float("nan"))(outputs)
        model = keras.Model(inputs, outputs)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (32, 4, 4, 3), dtype=np.uint8)
    y = rng.integers(0, 2, 32)
    order = EpochOrder(0)
    return make_dataset(x, y, 8, order=order), make_dataset(x, y, 8), order


BUDGET = SearchBudget(max_epochs=3, factor=3, batch_size=8, patience=5, trial_time_limit_s=60)


def test_search_matches_count_and_resumes(tmp_path):
    train, val, order = _data()
    _, summary = run_search("tiny", TinyModel([False]), BUDGET, train, val, tmp_path, seed=1,
                       callbacks=[order])
    assert summary["trials"] == hyperband_trial_count(3, 3)
    assert summary["failed"] == 0
    # A second run over the same folder reloads the finished trials.
    _, again = run_search("tiny", TinyModel([False]), BUDGET, train, val, tmp_path, seed=1,
                       callbacks=[order])
    assert again["trials"] == summary["trials"]


def test_nan_trials_fail_search_continues(tmp_path):
    train, val, order = _data()
    _, summary = run_search("mixed", TinyModel([False, True]), BUDGET, train, val, tmp_path, seed=3,
                            callbacks=[order])
    poisoned = [r for r in summary["trial_records"] if r["hyperparameters"]["poison"]]
    assert poisoned, "the seed should draw at least one poisoned trial"
    assert all(r["status"] == "FAILED" for r in poisoned)
    assert summary["completed"] >= 1
    events = [json.loads(line) for line in
              (tmp_path / "search" / "mixed" / "guard_events.jsonl").read_text().splitlines()]
    assert {e["guard"] for e in events} >= {"nan_loss"}


def test_all_nan_search_reports(tmp_path):
    train, val, order = _data()
    with pytest.raises(SearchError, match="no completed trial"):
        run_search("poisoned", TinyModel([True]), BUDGET, train, val, tmp_path, seed=1,
                       callbacks=[order])


# ---- The ledger and the wall-clock budget ---------------------------------------------


def test_search_ledger_matches_hyperband(tmp_path):
    train, val, order = _data()
    _, summary = run_search("tiny", TinyModel([False]), BUDGET, train, val, tmp_path, seed=1,
                            callbacks=[order])
    ledger = summary["ledger"]
    # max_epochs 3, factor 3: three one-epoch trials, the best promoted to epoch 3,
    # then two three-epoch trials; no guard can fire within 3 epochs here.
    assert [(t["bracket"], t["round"], t["epochs_trained"]) for t in ledger["trials"]] == [
        (1, 0, 1), (1, 0, 1), (1, 0, 1), (1, 1, 2), (0, 0, 3), (0, 0, 3)]
    assert ledger["totals"]["epochs_trained"] == hyperband_epoch_count(3, 3) == 11
    promoted = [t for t in ledger["trials"] if t["outcome"] == "promoted"]
    assert len(promoted) == 1
    assert promoted[0]["score"] == max(t["score"] for t in ledger["trials"][:3])
    assert ledger["trials"][3]["parent_trial_id"] == promoted[0]["trial_id"]
    for trial in ledger["trials"]:
        # The recorded per-epoch accuracies give keras-tuner's own score.
        assert max(trial["val_accuracy"]) == pytest.approx(trial["score"])
        assert trial["seconds"] > 0
    assert ledger["budget"]["minutes"] is None


class SlowFirstBatch(keras.callbacks.Callback):
    """Sleep `seconds` after the search's first training batch, so a budget runs out there."""

    def __init__(self, seconds: float):
        super().__init__()
        self.seconds = seconds
        self.slept = False

    def __deepcopy__(self, memo):
        return self

    def on_train_batch_end(self, batch, logs=None):
        if not self.slept:
            self.slept = True
            time.sleep(self.seconds)


# 0.6 s: the first trial starts well within it and runs past it in its first batch.
CUT_BUDGET = dataclasses.replace(BUDGET, budget_minutes=0.01)


def test_budget_stops_search_and_resume(tmp_path):
    train, val, order = _data()
    budget = CUT_BUDGET
    _, summary = run_search("cut", TinyModel([False]), budget, train, val, tmp_path, seed=1,
                            callbacks=[order, SlowFirstBatch(1.0)])
    ledger = summary["ledger"]
    assert summary["trials"] == 1
    assert ledger["budget"]["cut_short"] is True
    assert ledger["budget"]["stopped_trial_id"] == "0000"
    assert ledger["trials"][0]["stopped_by"] == "search_budget"
    assert summary["best_trial_id"] == "0000"
    # A resumed search counts the trial time already spent, so it starts no trial.
    _, again = run_search("cut", TinyModel([False]), budget, train, val, tmp_path, seed=1,
                          callbacks=[order])
    assert again["trials"] == 1
    assert again["ledger"]["budget"]["cut_short"] is True
    assert again["ledger"]["budget"]["seconds_counted"] >= ledger["trials"][0]["seconds"]


def test_budget_before_any_completed_trial(tmp_path):
    train, val, order = _data()
    with pytest.raises(SearchError, match=r"budget of 0.01 min ran out before any trial "
                                          r"completed.*Raise --search-budget"):
        run_search("poisoned", TinyModel([True]), CUT_BUDGET, train, val, tmp_path, seed=1,
                   callbacks=[order, SlowFirstBatch(1.0)])


def test_forget_trial_lines(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(json.dumps({"trial_id": trial_id, "seconds": 1.0}) + "\n"
                            for trial_id in ("0000", "0001", "0001")))
    _forget_trial_lines(path, "0001")
    assert [record["trial_id"] for record in map(json.loads, path.read_text().splitlines())] == [
        "0000"]


@pytest.mark.parametrize("epochs, recorded", [(2, False), (4, True)])
def test_early_stop_recorded_only_before_the_last_epoch(tmp_path, epochs, recorded):
    # A learning rate of 0 keeps the loss flat, so patience 1 stops at the second epoch:
    # the last planned one of a 2-epoch trial, two epochs early in a 4-epoch one.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0), loss="mse")
    guard_log = GuardLog(tmp_path / "guards.jsonl", "0000")
    stopping = RecordedEarlyStopping("val_loss_patience", guard_log, monitor="loss", patience=1)
    history = model.fit(np.zeros((4, 2)), np.ones(4), epochs=epochs, verbose=0,
                        callbacks=[stopping])
    assert len(history.history["loss"]) == 2
    events = read_json_lines(tmp_path / "guards.jsonl")
    assert bool(events) is recorded
