import json

import keras
import keras_tuner as kt
import numpy as np
import pytest

from study.config import SearchBudget
from study.inputs import EpochOrder, make_dataset
from study.search import SearchError, hyperband_trial_count, run_search


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
