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
- a NaN guard that marks the trial failed; the search goes on;
- with `budget_minutes`, a wall-clock budget for the whole search (see
  `SearchClock`): when it runs out, the running trial stops at the next
  batch, no new trial starts, and the best trial so far wins.
Each guard that fires appends one JSON line to `guard_events.jsonl`. Each
finished trial appends its wall time, epochs and per-epoch validation
accuracy to `trial_runs.jsonl`. study.ledger builds the ledger from both.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from pathlib import Path

import keras
import keras_tuner as kt
import numpy as np

from study.cluster import Cluster
from study.config import SearchBudget
from study.distributed import WorkerOracleClient, serve_search
from study.files import write_text_atomically
from study.ledger import (BUDGET_GUARD, GUARD_FILE, NAN_GUARD, RUNS_FILE, SINGLE_TUNER,
                          WORKER_EVENTS_FILE, build_ledger, hyperband_rounds, read_json_lines,
                          read_tuner_lines, tuner_file)
from study.models.optimizers import schedule_length
from study.progress import search_progress

log = logging.getLogger(__name__)

# keras-tuner 1.4.8 stops a search after 3 consecutive failed trials by
# default. A study should lose only the failed trials, so the limit is set out of reach.
MAX_CONSECUTIVE_FAILED_TRIALS = 1_000_000
# A trial whose worker is lost goes to another worker this many times, then fails.
LOST_WORKER_RERUNS = 1


class SearchError(RuntimeError):
    """A search finished without any completed trial."""


class SearchSpaceChanged(RuntimeError):
    """A saved search contains trials drawn from another search space."""


def trial_seed(seed: int, trial_id: str) -> int:
    """Return the Keras seed of one trial, fixed by the study seed and the trial id."""
    return (int(seed) * 1_000_003 + int(trial_id)) % 2**31


class GuardLog:
    """Append guard events for one trial to a JSON-lines file."""

    def __init__(self, path: Path, trial_id: str, tuner_id: str = SINGLE_TUNER):
        self.path = Path(path)
        self.trial_id = trial_id
        self.tuner_id = tuner_id

    def record(self, guard: str, epoch: int, detail: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps({"trial_id": self.trial_id, "guard": guard,
                                     "epoch": epoch, "detail": detail,
                                     "tuner_id": self.tuner_id}) + "\n")


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
            self.guard_log.record(NAN_GUARD, self._epoch + 1, f"loss {loss} at batch {batch}")
            raise kt.errors.FailedTrialError(
                f"training loss became {loss} at epoch {self._epoch + 1}, batch {batch}"
            )


class RecordedEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that records in the guard log when it stops a trial.

    A stop at the trial's last planned epoch cuts nothing short, so it is
    not recorded: the trial trained every epoch it was given.
    """

    def __init__(self, guard_name: str, guard_log: GuardLog, **kwargs):
        super().__init__(**kwargs)
        self.guard_name = guard_name
        self.guard_log = guard_log

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        if 0 < self.stopped_epoch < self.params["epochs"] - 1:
            self.guard_log.record(self.guard_name, self.stopped_epoch + 1,
                                  f"no improvement of {self.monitor} for {self.patience} epochs")


class SearchClock:
    """The wall-clock budget of one search, shared by its oracle and its trials.

    The clock counts the wall seconds of the trials that earlier, interrupted
    invocations of the same search finished (`spent_before_s`, read from
    `trial_runs.jsonl`) plus this invocation's time since `start`, which the
    tuner calls when its search begins. The time between trials in earlier
    invocations, and the part of a trial that a kill cut off, are not
    counted, so a resumed search can run a little over its budget.
    """

    def __init__(self, minutes: float | None, spent_before_s: float = 0.0):
        self.minutes = minutes
        self.spent_before_s = spent_before_s
        self._start = time.monotonic()
        self.schedule_left = False  # set when the budget ended a search with trials to run

    def __deepcopy__(self, memo):
        return self  # keras-tuner deep-copies each trial's callbacks; all share one clock

    def start(self) -> None:
        self._start = time.monotonic()

    def seconds(self) -> float:
        return self.spent_before_s + time.monotonic() - self._start

    def expired(self) -> bool:
        return self.minutes is not None and self.seconds() >= 60.0 * self.minutes

    def outcome(self, stopped_a_trial: bool) -> dict:
        """Return the budget entry of the ledger: the budget and whether it cut the search."""
        return {"minutes": self.minutes, "cut_short": stopped_a_trial or self.schedule_left,
                "seconds_counted": self.seconds()}


class SearchBudgetStop(keras.callbacks.Callback):
    """Stop the running trial at the next batch once the search's budget has run out."""

    def __init__(self, clock: SearchClock, guard_log: GuardLog):
        super().__init__()
        self.clock = clock
        self.guard_log = guard_log
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.clock.expired() and not self.model.stop_training:
            self.model.stop_training = True
            self.guard_log.record(BUDGET_GUARD, self._epoch + 1,
                                  f"the search budget of {self.clock.minutes:g} min ran out "
                                  f"after {self.clock.seconds():.0f} s")


class EpochRecorder(keras.callbacks.Callback):
    """Count the epochs a trial trains and keep its validation accuracy after each."""

    def __init__(self):
        super().__init__()
        self.val_accuracy: list[float | None] = []

    def __deepcopy__(self, memo):
        return self  # the tuner reads this instance after the trial, not keras-tuner's copy

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_accuracy")
        self.val_accuracy.append(None if value is None else float(value))


class AtomicHyperbandOracle(kt.oracles.HyperbandOracle):
    """HyperbandOracle whose state files are replaced whole, never rewritten in place.

    keras-tuner 1.4.8 truncates oracle.json and trial.json before writing
    them; a process killed at that moment leaves an empty file that the next
    run cannot reload.
    """

    clock: SearchClock | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lost_runs: dict[str, int] = {}  # trial id -> times a lost worker held it

    def save(self):
        write_text_atomically(self._get_oracle_fname(), json.dumps(self.get_state()))

    def get_state(self):
        return {**super().get_state(), "lost_runs": self.lost_runs}

    def set_state(self, state):
        super().set_state(state)
        self.lost_runs = dict(state.get("lost_runs") or {})

    @kt.synchronized
    def tuner_of(self, trial_id: str) -> str | None:
        """Return the id of the tuner running `trial_id`, or None when none runs it."""
        return next((tuner_id for tuner_id, trial in self.ongoing_trials.items()
                     if trial.trial_id == trial_id), None)

    @kt.synchronized
    def active_tuners(self) -> list[str]:
        """Return the ids of the tuners that requested trials and have not yet received STOPPED."""
        return sorted(self.tuner_ids)

    @kt.synchronized
    def release_tuner(self, tuner_id: str, reason: str) -> dict | None:
        """Forget a worker that went silent; return what became of its trial.

        Its trial goes back to the queue for the next worker the first
        `LOST_WORKER_RERUNS` times a worker is lost on it, and is marked
        failed after that. Returns None when the worker held no trial.
        """
        self.tuner_ids.discard(tuner_id)
        trial = self.ongoing_trials.pop(tuner_id, None)
        if trial is None:
            return None
        losses = self.lost_runs.get(trial.trial_id, 0) + 1
        self.lost_runs[trial.trial_id] = losses
        if losses <= LOST_WORKER_RERUNS:
            action = "rerun"
            self._retry_queue.append(trial.trial_id)
        else:
            action = "failed"
            trial.status = kt.engine.trial.TrialStatus.FAILED
            trial.message = f"{reason}; this trial lost its worker {losses} times"
            self.end_order.append(trial.trial_id)
            self._save_trial(trial)
        self.save()
        return {"trial_id": trial.trial_id, "tuner_id": tuner_id, "action": action,
                "losses": losses}

    def create_trial(self, tuner_id):
        # keras-tuner's search loop ends cleanly when the oracle hands out a
        # STOPPED trial, as it does at the end of the Hyperband schedule.
        if self.clock is not None and self.clock.expired():
            self.clock.schedule_left = bool(self._retry_queue) or self._schedule_has_trial()
            return kt.engine.trial.Trial(self.get_space(),
                                         status=kt.engine.trial.TrialStatus.STOPPED)
        return super().create_trial(tuner_id)

    def search_finished(self) -> bool:
        """Return True when no trial runs or waits for a rerun and the schedule has none left."""
        return not self.ongoing_trials and not self._retry_queue and \
            not self._schedule_has_trial()

    def _schedule_has_trial(self) -> bool:
        """Ask the Hyperband schedule for its next trial, then restore the oracle's state.

        populate_space records the trial it hands out in its bracket, so the
        state is saved before the call and restored after it.
        """
        state = copy.deepcopy(self.get_state())
        try:
            response = self.populate_space("budget-check")
        finally:
            self.set_state(state)
        return response["status"] != "STOPPED"

    def _save_trial(self, trial):
        write_text_atomically(Path(self._get_trial_dir(trial.trial_id)) / "trial.json",
                              json.dumps(trial.get_state()))


class StudyHyperband(kt.Hyperband):
    """Hyperband that adds the guards to each trial, records each trial's run and logs it.

    `clock` carries the search's wall-clock budget; the oracle consults it
    before each new trial and SearchBudgetStop during each trial.
    """

    def __init__(self, hypermodel, *, budget: SearchBudget, clock: SearchClock,
                 study_seed: int, objective: str, max_consecutive_failed_trials: int,
                 **kwargs):
        oracle = AtomicHyperbandOracle(
            objective, max_epochs=budget.max_epochs, factor=budget.factor,
            hyperband_iterations=budget.iterations, seed=study_seed,
            max_consecutive_failed_trials=max_consecutive_failed_trials)
        oracle.clock = clock
        # kt.Hyperband.__init__ only builds a plain HyperbandOracle and passes
        # it on; Tuner.__init__ takes this one instead.
        kt.Tuner.__init__(self, oracle=oracle, hypermodel=hypermodel, **kwargs)
        if self._is_worker():  # Tuner.__init__ wrapped the oracle in keras-tuner's client
            self.oracle = WorkerOracleClient(self.oracle._oracle)
        self.budget = budget
        self.clock = clock
        # Each tuner of a distributed search appends to files of its own.
        self.guard_path = tuner_file(Path(self.project_dir), GUARD_FILE, self.tuner_id)
        self.runs_path = tuner_file(Path(self.project_dir), RUNS_FILE, self.tuner_id)
        self.study_seed = study_seed
        # The schedule's size when no trial fails, for the progress lines.
        self.expected_trials = hyperband_trial_count(budget.max_epochs, budget.factor,
                                                     budget.iterations)
        self.planned_epochs = hyperband_epoch_count(budget.max_epochs, budget.factor,
                                                    budget.iterations)
        self._trial_start = 0.0
        self._epochs = EpochRecorder()

    def save(self):
        if not self._is_worker():  # a worker's oracle lives in the chief
            self.oracle.save()
        write_text_atomically(self._get_tuner_fname(), json.dumps(self.get_state()))

    def run_trial(self, trial, *args, **kwargs):
        keras.utils.set_random_seed(trial_seed(self.study_seed, trial.trial_id))
        guard_log = GuardLog(self.guard_path, trial.trial_id, self.tuner_id)
        budget = self.budget
        guards = [
            RecordedEarlyStopping("val_loss_patience", guard_log, monitor="val_loss",
                                  patience=budget.patience),
            RecordedEarlyStopping("not_learning", guard_log, monitor="accuracy",
                                  min_delta=budget.not_learning_min_delta,
                                  patience=budget.not_learning_patience),
            TrialTimeLimit(budget.trial_time_limit_s, guard_log),
            StopOnNaN(guard_log),
            self._epochs,
        ]
        if self.clock.minutes is not None:
            guards.append(SearchBudgetStop(self.clock, guard_log))
        kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + guards
        return super().run_trial(trial, *args, **kwargs)

    def on_search_begin(self):
        super().on_search_begin()
        self.clock.start()

    def on_trial_begin(self, trial):
        super().on_trial_begin(trial)
        self._trial_start = time.monotonic()
        self._epochs = EpochRecorder()
        # Drop what an interrupted earlier run of this trial left behind.
        for path in (self.guard_path, self.runs_path):
            _forget_trial_lines(path, trial.trial_id)

    def on_trial_end(self, trial):
        seconds = time.monotonic() - self._trial_start
        # Recorded before keras-tuner saves the trial as ended: a kill in
        # between re-runs the trial, and on_trial_begin drops this line.
        self.runs_path.parent.mkdir(parents=True, exist_ok=True)
        with self.runs_path.open("a") as handle:
            handle.write(json.dumps({"trial_id": trial.trial_id, "seconds": seconds,
                                     "epochs_trained": len(self._epochs.val_accuracy),
                                     "val_accuracy": self._epochs.val_accuracy,
                                     "tuner_id": self.tuner_id, "finished": time.time()}) + "\n")
        super().on_trial_end(trial)
        self.log_ended_trial(trial.trial_id)

    def log_ended_trial(self, trial_id: str, tuner_id: str | None = None) -> None:
        """Log a trial's outcome as the oracle recorded it, then the search's progress.

        The chief of a distributed search calls this for each result a
        worker sends, naming the worker.
        """
        # A worker's own trial object has no score: the chief's oracle computes it.
        trial = self.oracle.get_trial(trial_id)
        values = trial.hyperparameters.values
        score = trial.score if trial.score is not None else float("nan")
        run = next((record for record in reversed(read_tuner_lines(Path(self.project_dir),
                                                                   RUNS_FILE))
                    if record["trial_id"] == trial_id), {})
        worker = f" on {tuner_id}" if tuner_id else ""
        log.info("%s trial %s%s: %s, val_accuracy %.4f, epochs trained to %d "
                 "(bracket %s, round %s), %.1f s",
                 self.project_name, trial_id, worker, trial.status, score,
                 values.get("tuner/epochs", 0), values.get("tuner/bracket"),
                 values.get("tuner/round"), run.get("seconds") or 0.0)
        self._log_progress()

    def _log_progress(self) -> None:
        """Log the trials done of the schedule, the best score so far and the time left."""
        runs = read_tuner_lines(Path(self.project_dir), RUNS_FILE)
        best = self.oracle.get_best_trials(1)
        minutes = self.clock.minutes
        log.info("%s", search_progress(
            self.project_name, len({record["trial_id"] for record in runs}),
            self.expected_trials, best[0].score if best else None, self.clock.seconds(),
            sum(record.get("epochs_trained") or 0 for record in runs), self.planned_epochs,
            None if minutes is None else 60.0 * minutes))


def _forget_trial_lines(path: Path, trial_id: str) -> None:
    """Rewrite a JSON-lines file without the lines of one trial, if it has any."""
    records = read_json_lines(path)
    kept = [record for record in records if record["trial_id"] != trial_id]
    if len(kept) < len(records):
        write_text_atomically(path, "".join(json.dumps(record) + "\n" for record in kept))


def hyperband_trial_count(max_epochs: int, factor: int, iterations: int = 1) -> int:
    """Return the number of trials keras-tuner 1.4.8's Hyperband runs when none fails.

    Every trial of every round counts once, a promoted one included.
    """
    per_iteration = sum(step.trials for step in hyperband_rounds(max_epochs, factor))
    return per_iteration * iterations


def hyperband_epoch_count(max_epochs: int, factor: int, iterations: int = 1) -> int:
    """Return the most epochs keras-tuner 1.4.8's Hyperband trains, summed over its trials.

    Early stopping can only lower this total.

    >>> hyperband_epoch_count(2, 2)
    7
    """
    per_iteration = sum(step.trials * (step.epochs - step.initial_epoch)
                        for step in hyperband_rounds(max_epochs, factor))
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
               run_dir: Path, seed: int, callbacks: list | tuple = (),
               cluster: Cluster | None = None,
               strategy=None) -> tuple[kt.HyperParameters, dict] | None:
    """Run (or continue) the Hyperband search; return the best hyperparameters and a summary.

    `train` and `validation` are batched tf.data datasets; `callbacks` go to
    every trial's `fit` (the EpochOrder of a shuffled `train`). With
    `budget.budget_minutes`, the search ends when that wall time runs out
    (see SearchClock for what a resumed search counts), and the summary's
    ledger records whether the budget cut it short. `cluster` makes this
    process the chief of a distributed search, which serves the trials and
    runs none, or one of its workers, which runs trials and returns None.
    `strategy` (a tf.distribute strategy) trains each trial on several
    devices. Raises SearchError when no trial completed.
    """
    cluster = cluster or Cluster()
    search_dir = Path(run_dir) / "search"
    with cluster.environment(name):
        tuner = _make_tuner(name, hypermodel, budget, search_dir, seed, strategy)
        if cluster.role == "worker":
            _search_as_worker(name, tuner, hypermodel, cluster, budget, train, validation,
                              callbacks)
            return None
        _check_reloaded_space(name, tuner, hypermodel, search_dir)
        _log_search_plan(name, tuner, budget, search_dir)
        start = time.monotonic()
        if cluster.role == "chief":
            _serve_as_chief(name, tuner, cluster)
        else:
            _search(tuner, hypermodel, budget, train, validation, callbacks)
        seconds = time.monotonic() - start
    return _best_and_summary(name, tuner, seconds)


def _make_tuner(name: str, hypermodel: kt.HyperModel, budget: SearchBudget, search_dir: Path,
                seed: int, strategy) -> StudyHyperband:
    earlier_runs = read_tuner_lines(search_dir / name, RUNS_FILE)
    clock = SearchClock(budget.budget_minutes,
                        sum(record.get("seconds") or 0.0 for record in earlier_runs))
    return StudyHyperband(
        hypermodel,
        objective="val_accuracy",
        directory=str(search_dir),
        project_name=name,
        overwrite=False,
        max_consecutive_failed_trials=MAX_CONSECUTIVE_FAILED_TRIALS,
        budget=budget,
        clock=clock,
        study_seed=seed,
        distribution_strategy=strategy,
    )


def _log_search_plan(name: str, tuner: StudyHyperband, budget: SearchBudget,
                     search_dir: Path) -> None:
    if tuner.oracle.trials:
        statuses = [trial.status for trial in tuner.oracle.trials.values()]
        log.info("%s search: continuing from %s: %d trials finished, %d interrupted "
                 "one(s) to run again", name, search_dir / name,
                 len(statuses) - statuses.count("RUNNING"), statuses.count("RUNNING"))
    log.info("%s search: Hyperband, max_epochs %d, factor %d, %d iteration(s), about %d trials",
             name, budget.max_epochs, budget.factor, budget.iterations, tuner.expected_trials)
    clock = tuner.clock
    if clock.minutes is not None:
        log.info("%s search: wall-clock budget %g min, %.0f s of it spent by earlier runs",
                 name, clock.minutes, clock.spent_before_s)


def _search(tuner: StudyHyperband, hypermodel: kt.HyperModel, budget: SearchBudget, train,
            validation, callbacks) -> None:
    # The pipeline shuffles; Keras's own shuffle flag does nothing for a tf.data input.
    # A scheduled learning rate spans Hyperband's largest epoch budget, so a
    # promoted trial continues along the curve it started on.
    tuner.search(train, validation_data=validation, shuffle=False, verbose=0,
                 callbacks=list(callbacks), **schedule_length(hypermodel, budget.max_epochs))


def _serve_as_chief(name: str, tuner: StudyHyperband, cluster: Cluster) -> None:
    if tuner.oracle.search_finished():
        # A chief stopped after the last trial ended: no worker would come to end the search.
        log.info("%s search: every trial of the schedule has ended; no worker is needed", name)
        return
    tuner.oracle.verbose = 0  # keras-tuner's own trial display; the log has it all
    tuner.save()
    tuner.clock.start()
    serve_search(tuner.oracle, cluster.address(name), cluster.worker_timeout_s,
                 Path(tuner.project_dir) / WORKER_EVENTS_FILE, tuner.log_ended_trial)


def _search_as_worker(name: str, tuner: StudyHyperband, hypermodel: kt.HyperModel,
                      cluster: Cluster, budget: SearchBudget, train, validation,
                      callbacks) -> None:
    log.info("%s search: worker %s requests trials from the chief at %s; keras-tuner waits "
             "up to an hour for a connection", name, cluster.worker_id, cluster.address(name))
    start = time.monotonic()
    try:
        _search(tuner, hypermodel, budget, train, validation, callbacks)
    finally:
        tuner.oracle.close()
    log.info("%s search: the chief has no more trials; worker %s ran %d of them in %.1f s",
             name, cluster.worker_id, len(read_json_lines(tuner.runs_path)),
             time.monotonic() - start)


def _budget_outcome(name: str, tuner: StudyHyperband, events: list[dict]) -> dict | None:
    """Return the budget entry of the ledger, logging when the budget cut the search short."""
    clock = tuner.clock
    if clock.minutes is None:
        return None
    outcome = clock.outcome(stopped_a_trial=any(event["guard"] == BUDGET_GUARD
                                                for event in events))
    if outcome["cut_short"]:
        log.warning("%s search: the budget of %g min ran out after %.0f s; the best trial "
                    "so far is refit", name, clock.minutes, outcome["seconds_counted"])
    return outcome


def _no_completed_trial_error(name: str, failed: list, budget: dict | None) -> SearchError:
    last = failed[-1].message.strip().splitlines()[-1] if failed and failed[-1].message else "none"
    if budget and budget["cut_short"]:
        return SearchError(
            f"the {name} search's budget of {budget['minutes']:g} min ran out before any "
            f"trial completed ({len(failed)} failed; last error: {last}). Raise "
            "--search-budget, or leave it out to run the whole Hyperband schedule")
    return SearchError(
        f"the {name} search ended with no completed trial ({len(failed)} failed; "
        f"last error: {last}). A NaN loss calls for a lower learning-rate range; "
        "other errors are logged above with their trial")


def _best_and_summary(name: str, tuner: StudyHyperband,
                      seconds: float) -> tuple[kt.HyperParameters, dict]:
    # A reloaded oracle lists its trials in file-system order; sort them by id.
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    completed = [t for t in trials if t.status == "COMPLETED" and t.score is not None
                 and np.isfinite(t.score)]
    failed = [t for t in trials if t.status in ("FAILED", "INVALID")]
    events = read_tuner_lines(Path(tuner.project_dir), GUARD_FILE)
    budget = _budget_outcome(name, tuner, events)
    if not completed:
        raise _no_completed_trial_error(name, failed, budget)
    best = max(completed, key=lambda t: t.score)
    summary = {
        "trials": len(trials),
        "completed": len(completed),
        "failed": len(failed),
        "stopped_by_guard": len({e["trial_id"] for e in events if e["guard"] != NAN_GUARD}),
        "best_val_accuracy": float(best.score),
        "best_trial_id": best.trial_id,
        "seconds": seconds,
        "trial_records": [_trial_record(t) for t in trials],
        "guard_events": events,
        "ledger": build_ledger(Path(tuner.project_dir), budget),
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
