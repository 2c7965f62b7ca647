"""Hyperband search for one hypermodel, with guards that end bad trials early.

The tuner's state lives under `<run_dir>/search/<name>/`, so running the
same search again reloads the finished trials and continues instead of
starting over. A trial that was running when the process died is run again
under the same trial id (keras-tuner's retry queue), never added twice.
Each trial seeds Keras from (seed, trial id), so its result does not depend
on how many trials the same process ran before it. A reloaded search whose
saved space differs from the hypermodel's current one is refused.

Guards, each a Keras callback added to every trial:
- EarlyStopping on val_loss (`patience` epochs);
- a wall-clock limit per trial (`trial_time_limit_s`);
- a "not learning" stop when training accuracy gains less than
  `not_learning_min_delta` for `not_learning_patience` epochs;
- a NaN guard that marks the trial failed; the search goes on.
Each guard that fires appends one JSON line to `guard_events.jsonl`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np

from study.config import SearchBudget
from study.files import write_text_atomically
from study.models.optimizers import schedule_length

log = logging.getLogger(__name__)

# keras-tuner 1.4.8 stops a search after 3 consecutive failed trials by
# default. A study should lose only the failed trials, so the limit is set out of reach.
MAX_CONSECUTIVE_FAILED_TRIALS = 1_000_000


class SearchError(RuntimeError):
    """A search finished without any completed trial."""


class SearchSpaceChanged(RuntimeError):
    """A saved search contains trials drawn from another search space."""


def trial_seed(seed: int, trial_id: str) -> int:
    """Return the Keras seed of one trial, fixed by the study seed and the trial id."""
    return (int(seed) * 1_000_003 + int(trial_id)) % 2**31


class GuardLog:
    """Append guard events for one trial to a JSON-lines file."""

    def __init__(self, path: Path, trial_id: str):
        self.path = Path(path)
        self.trial_id = trial_id

    def record(self, guard: str, epoch: int, detail: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps({"trial_id": self.trial_id, "guard": guard,
                                     "epoch": epoch, "detail": detail}) + "\n")


def read_guard_events(path: Path) -> list[dict]:
    """Read the events of a guard log, skipping a line that a killed process cut short."""
    events = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("skipping an incomplete line in %s: %r", path, line[:80])
    return events


class TrialTimeLimit(keras.callbacks.Callback):
    """Stop training once a trial has run `seconds` of wall-clock time."""

    def __init__(self, seconds: float, guard_log: GuardLog):
        super().__init__()
        self.seconds = seconds
        self.guard_log = guard_log
        self._start = 0.0
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self._start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        elapsed = time.monotonic() - self._start
        if elapsed > self.seconds and not self.model.stop_training:
            self.model.stop_training = True
            self.guard_log.record("time_limit", self._epoch + 1,
                                  f"stopped after {elapsed:.0f} s (limit {self.seconds:.0f} s)")


class StopOnNaN(keras.callbacks.Callback):
    """Fail the trial when the training loss becomes NaN or infinite."""

    def __init__(self, guard_log: GuardLog):
        super().__init__()
        self.guard_log = guard_log
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.guard_log.record("nan_loss", self._epoch + 1, f"loss {loss} at batch {batch}")
            raise kt.errors.FailedTrialError(
                f"training loss became {loss} at epoch {self._epoch + 1}, batch {batch}"
            )


class RecordedEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that records in the guard log when it stops a trial."""

    def __init__(self, guard_name: str, guard_log: GuardLog, **kwargs):
        super().__init__(**kwargs)
        self.guard_name = guard_name
        self.guard_log = guard_log

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if self.stopped_epoch > 0:
            self.guard_log.record(self.guard_name, self.stopped_epoch + 1,
                                  f"no improvement of {self.monitor} for {self.patience} epochs")


class AtomicHyperbandOracle(kt.oracles.HyperbandOracle):
    """HyperbandOracle whose state files are replaced whole, never rewritten in place.

    keras-tuner 1.4.8 truncates oracle.json and trial.json before writing
    them; a process killed at that moment leaves an empty file that the next
    run cannot reload.
    """

    def save(self):
        write_text_atomically(self._get_oracle_fname(), json.dumps(self.get_state()))

    def _save_trial(self, trial):
        write_text_atomically(Path(self._get_trial_dir(trial.trial_id)) / "trial.json",
                              json.dumps(trial.get_state()))


class StudyHyperband(kt.Hyperband):
    """Hyperband that adds the guards to each trial and logs one line per trial."""

    def __init__(self, hypermodel, *, budget: SearchBudget, guard_path: Path, study_seed: int,
                 objective: str, max_consecutive_failed_trials: int, **kwargs):
        oracle = AtomicHyperbandOracle(
            objective, max_epochs=budget.max_epochs, factor=budget.factor,
            hyperband_iterations=budget.iterations, seed=study_seed,
            max_consecutive_failed_trials=max_consecutive_failed_trials)
        # kt.Hyperband.__init__ only builds a plain HyperbandOracle and passes
        # it on; Tuner.__init__ takes this one instead.
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)
        self.budget = budget
        self.guard_path = Path(guard_path)
        self.study_seed = study_seed
        self._trial_start = 0.0

    def save(self):
        self.oracle.save()
        write_text_atomically(self._get_tuner_fname(), json.dumps(self.get_state()))

    def run_trial(self, trial, *args, **kwargs):
        keras.utils.set_random_seed(trial_seed(self.study_seed, trial.trial_id))
        guard_log = GuardLog(self.guard_path, trial.trial_id)
        budget = self.budget
        guards = [
            RecordedEarlyStopping("val_loss_patience", guard_log, monitor="val_loss",
                                  patience=budget.patience),
            RecordedEarlyStopping("not_learning", guard_log, monitor="accuracy",
                                  min_delta=budget.not_learning_min_delta,
                                  patience=budget.not_learning_patience),
            TrialTimeLimit(budget.trial_time_limit_s, guard_log),
            StopOnNaN(guard_log),
        ]
        kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + guards
        return super().run_trial(trial, *args, **kwargs)

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self._trial_start = time.monotonic()
        self._forget_guard_events(trial.trial_id)

    def _forget_guard_events(self, trial_id: str) -> None:
        """Drop events an interrupted earlier run of this trial left behind."""
        events = read_guard_events(self.guard_path)
        kept = [event for event in events if event["trial_id"] != trial_id]
        if len(kept) < len(events):
            write_text_atomically(self.guard_path,
                                  "".join(json.dumps(event) + "\n" for event in kept))

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        values = trial.hyperparameters.values
        score = trial.score if trial.score is not None else float("nan")
        log.info("%s trial %s: %s, val_accuracy %.4f, epochs trained to %d "
                 "(bracket %s, round %s), %.1f s",
                 self.project_name, trial.trial_id, trial.status, score,
                 values.get("tuner/epochs", 0), values.get("tuner/bracket"),
                 values.get("tuner/round"), time.monotonic() - self._trial_start)


def _hyperband_rounds(max_epochs: int, factor: int):
    """Yield (models, target epochs, epochs already trained) per Hyperband round.

    The rounds are those of one iteration of keras-tuner 1.4.8's Hyperband.
    With E = ceil(1 + log_factor(max_epochs)), round r of bracket s (s from
    s_max down to 0) runs ceil(E / (s + 1) * factor**(s - r)) models, each
    trained to ceil(max_epochs / factor**(s - r)) epochs. A round r > 0 model
    continues from the epochs it reached in round r - 1.
    """
    brackets, epochs = 0, float(max_epochs)
    while epochs >= 1:
        epochs /= factor
        brackets += 1
    end_size = math.ceil(1 + math.log(max_epochs, factor))
    for bracket in range(brackets):
        reached = 0
        for round_num in range(bracket + 1):
            models = math.ceil(end_size / (bracket + 1) * factor ** (bracket - round_num))
            target = math.ceil(max_epochs / factor ** (bracket - round_num))
            yield models, target, reached
            reached = target


def hyperband_trial_count(max_epochs: int, factor: int, iterations: int = 1) -> int:
    """Return the number of trials keras-tuner 1.4.8's Hyperband runs when none fails.

    Every model of every round counts as one trial.
    """
    per_iteration = sum(models for models, _, _ in _hyperband_rounds(max_epochs, factor))
    return per_iteration * iterations


def hyperband_epoch_count(max_epochs: int, factor: int, iterations: int = 1) -> int:
    """Return the most epochs keras-tuner 1.4.8's Hyperband trains, summed over its trials.

    Early stopping can only lower this total.

    >>> hyperband_epoch_count(2, 2)
    7
    """
    per_iteration = sum(models * (target - reached)
                        for models, target, reached in _hyperband_rounds(max_epochs, factor))
    return per_iteration * iterations


def space_differences(saved: kt.HyperParameters, current: kt.HyperParameters) -> list[str]:
    """Describe each hyperparameter of `current` that `saved` lacks or defines otherwise."""
    recorded = {hp.name: hp.get_config() for hp in saved.space}
    differences = []
    for hp in current.space:
        config = hp.get_config()
        if hp.name not in recorded:
            differences.append(f"{hp.name} is new")
            continue
        before = recorded[hp.name]
        for key in sorted(set(config) | set(before)):
            if key not in ("default", "conditions") and config.get(key) != before.get(key):
                differences.append(f"{hp.name} {key} was {before.get(key)!r}, "
                                   f"now {config.get(key)!r}")
    return differences


def _check_reloaded_space(name: str, tuner: kt.Tuner, hypermodel: kt.HyperModel,
                          search_dir: Path) -> None:
    if not tuner.oracle.trials:
        return
    current = kt.HyperParameters()
    hypermodel.build(current)
    differences = space_differences(tuner.oracle.hyperparameters, current)
    if differences:
        raise SearchSpaceChanged(
            f"the saved {name} search in {search_dir / name} was drawn from another search "
            f"space ({'; '.join(differences[:4])}); its trials must not be mixed with the "
            f"new space. Rerun with --restart search_{name}, or pass another --run-dir")


def run_search(name: str, hypermodel: kt.HyperModel, budget: SearchBudget, train, validation,
               run_dir: Path, seed: int,
               callbacks: list | tuple = ()) -> tuple[kt.HyperParameters, dict]:
    """Run (or continue) the Hyperband search; return the best hyperparameters and a summary.

    `train` and `validation` are batched tf.data datasets; `callbacks` go to
    every trial's `fit` (the EpochOrder of a shuffled `train`).
    """
    search_dir = Path(run_dir) / "search"
    tuner = StudyHyperband(
        hypermodel,
        objective="val_accuracy",
        directory=str(search_dir),
        project_name=name,
        overwrite=False,
        max_consecutive_failed_trials=MAX_CONSECUTIVE_FAILED_TRIALS,
        budget=budget,
        guard_path=search_dir / name / "guard_events.jsonl",
        study_seed=seed,
    )
    _check_reloaded_space(name, tuner, hypermodel, search_dir)
    if tuner.oracle.trials:
        statuses = [trial.status for trial in tuner.oracle.trials.values()]
        log.info("%s search: continuing from %s: %d trials finished, %d interrupted "
                 "one(s) to run again", name, search_dir / name,
                 len(statuses) - statuses.count("RUNNING"), statuses.count("RUNNING"))
    expected = hyperband_trial_count(budget.max_epochs, budget.factor, budget.iterations)
    log.info("%s search: Hyperband, max_epochs %d, factor %d, %d iteration(s), about %d trials",
             name, budget.max_epochs, budget.factor, budget.iterations, expected)
    start = time.monotonic()
    # The pipeline shuffles; Keras's own shuffle flag does nothing for a tf.data input.
    # A scheduled learning rate spans Hyperband's largest epoch budget, so a
    # promoted trial continues along the curve it started on.
    tuner.search(train, validation_data=validation, shuffle=False, verbose=0,
                 callbacks=list(callbacks), **schedule_length(hypermodel, budget.max_epochs))
    seconds = time.monotonic() - start
    return _best_and_summary(name, tuner, seconds)


def _best_and_summary(name: str, tuner: kt.Tuner, seconds: float) -> tuple[kt.HyperParameters, dict]:
    # A reloaded oracle lists its trials in file-system order; sort them by id.
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    completed = [t for t in trials if t.status == "COMPLETED" and t.score is not None
                 and np.isfinite(t.score)]
    failed = [t for t in trials if t.status in ("FAILED", "INVALID")]
    events = read_guard_events(tuner.guard_path)
    if not completed:
        last = failed[-1].message.strip().splitlines()[-1] if failed and failed[-1].message else "none"
        raise SearchError(
            f"the {name} search ended with no completed trial ({len(failed)} failed; "
            f"last error: {last}). A NaN loss calls for a lower learning-rate range; "
            "other errors are logged above with their trial"
        )
    best = max(completed, key=lambda t: t.score)
    summary = {
        "trials": len(trials),
        "completed": len(completed),
        "failed": len(failed),
        "stopped_by_guard": len({e["trial_id"] for e in events if e["guard"] != "nan_loss"}),
        "best_val_accuracy": float(best.score),
        "best_trial_id": best.trial_id,
        "seconds": seconds,
        "trial_records": [_trial_record(t) for t in trials],
        "guard_events": events,
    }
    best_hp = best.hyperparameters.copy()
    log.info("%s search: %d trials (%d failed), best val_accuracy %.4f (trial %s), %.1f s",
             name, len(trials), len(failed), best.score, best.trial_id, seconds)
    return best_hp, summary


def _trial_record(trial) -> dict:
    values = trial.hyperparameters.values
    return {
        "trial_id": trial.trial_id,
        "status": trial.status,
        "score": float(trial.score) if trial.score is not None else None,
        "epochs": values.get("tuner/epochs"),
        "initial_epoch": values.get("tuner/initial_epoch"),
        "bracket": values.get("tuner/bracket"),
        "round": values.get("tuner/round"),
        "parent_trial_id": values.get("tuner/trial_id"),
        "hyperparameters": {k: v for k, v in values.items() if not k.startswith("tuner/")},
    }
