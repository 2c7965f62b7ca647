"""Train the best configuration of a search from scratch and save it.

EarlyStopping on val_accuracy restores the best epoch's weights; the model
is saved as `<run_dir>/models/<name>.keras` and its per-epoch history as
`<name>_history.json`.

Each epoch is backed up under `<run_dir>/backup/refit_<name>/` by
`RefitBackup`, Keras's BackupAndRestore extended with what it leaves out:
EarlyStopping's state (best value, wait, best weights), the history so far
and the training time. A refit killed at epoch k resumes at epoch k + 1
and ends where an uninterrupted one would.

Given a tf.distribute strategy, `refit` builds and compiles the model in
its scope, so every variable has a copy on each of the strategy's devices.
`fit` then splits each batch among them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path

import keras
import keras_tuner as kt

from study.config import RefitSettings
from study.files import write_text_atomically
from study.models.optimizers import schedule_length
from study.progress import refit_progress

log = logging.getLogger(__name__)

STATE_FILE = "state.json"


def backup_dir(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / "backup" / f"refit_{name}"


def _seed_states(model: keras.Model) -> list:
    """Return the state variables of the model's seed generators, which draw dropout masks.

    `save_weights` leaves them out, so a resumed refit would draw other masks.
    """
    return [v for v in model.non_trainable_variables
            if v.path.endswith("seed_generator_state")]


class RefitBackup(keras.callbacks.BackupAndRestore):
    """Back up the whole training state at each epoch end; restore it at train begin.

    Put it after `early_stopping` in the callback list: EarlyStopping resets
    itself in `on_train_begin`, and this callback restores it afterwards.
    Weights go to a new file per epoch, and `state.json`, replaced
    atomically, names the files to load, so a kill at any instant leaves a
    consistent backup.
    """

    def __init__(self, directory: Path, early_stopping: keras.callbacks.EarlyStopping):
        super().__init__(str(directory), delete_checkpoint=False)
        self.directory = Path(directory)
        self.early_stopping = early_stopping
        self.history: dict[str, list[float]] = {}
        self.seconds = 0.0
        self.resumed_at = 0
        self._best_file: str | None = None
        self._epoch_start = 0.0

    def _load_model(self):
        state_path = self.directory / STATE_FILE
        if not state_path.exists():
            return
        state = json.loads(state_path.read_text())
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        stopping = self.early_stopping
        self.model.load_weights(self.directory / state["best_weights"])
        stopping.best_weights = self.model.get_weights()
        self.model.load_weights(self.directory / state["weights"])
        # Matched by position: their names carry a process-wide counter.
        for variable, value in zip(_seed_states(self.model), state["seed_states"], strict=True):
            variable.assign(value)
        stopping.best = state["best"]
        stopping.best_epoch = state["best_epoch"]
        stopping.wait = state["wait"]
        stopping.stopped_epoch = state["stopped_epoch"]
        self._best_file = state["best_weights"]
        self.history = state["history"]
        self.seconds = state["seconds"]
        self.resumed_at = state["epoch"]
        # A finished refit (stopped early, or at its last epoch) runs no more epochs.
        self.model._initial_epoch = (self.params["epochs"] if state["finished"]
                                     else state["epoch"])

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.seconds += time.monotonic() - self._epoch_start
        super().on_epoch_end(epoch, logs)

    def _save_model(self):
        self.directory.mkdir(parents=True, exist_ok=True)
        epoch = self._current_epoch
        weights = f"epoch-{epoch}.weights.h5"
        self.model.save_weights(self.directory / weights, overwrite=True)
        stopping = self.early_stopping
        if stopping.best_epoch == epoch - 1 or self._best_file is None:
            self._best_file = weights
        finished = bool(self.model.stop_training) or epoch >= self.params["epochs"]
        state = {"epoch": epoch, "weights": weights, "best_weights": self._best_file,
                 "best": stopping.best, "best_epoch": stopping.best_epoch,
                 "wait": stopping.wait, "stopped_epoch": stopping.stopped_epoch,
                 "finished": finished, "history": self.history, "seconds": self.seconds,
                 "seed_states": [keras.ops.convert_to_numpy(v).tolist()
                                 for v in _seed_states(self.model)]}
        write_text_atomically(self.directory / STATE_FILE, json.dumps(state))
        for path in self.directory.glob("epoch-*.weights.h5"):
            if path.name not in (weights, self._best_file):
                path.unlink()


class EpochLogger(keras.callbacks.Callback):
    """Log one line per epoch with the metrics, the epoch's wall time and the time left."""

    def __init__(self, name: str, max_epochs: int):
        super().__init__()
        self.name = name
        self.max_epochs = max_epochs
        self._start = 0.0
        self._train_start = 0.0
        self._epochs_this_run = 0

    def on_train_begin(self, logs=None):
        self._train_start = time.monotonic()
        self._epochs_this_run = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self._epochs_this_run += 1
        now = time.monotonic()
        log.info("%s refit epoch %d/%d: loss %.4f, accuracy %.4f, val_loss %.4f, "
                 "val_accuracy %.4f, %.1f s; %s", self.name, epoch + 1, self.max_epochs,
                 logs.get("loss", float("nan")), logs.get("accuracy", float("nan")),
                 logs.get("val_loss", float("nan")), logs.get("val_accuracy", float("nan")),
                 now - self._start,
                 refit_progress(epoch + 1, self.max_epochs, now - self._train_start,
                                self._epochs_this_run))


def refit(name: str, hypermodel: kt.HyperModel, best_hp: kt.HyperParameters,
          settings: RefitSettings, train, validation, run_dir: Path,
          callbacks: list | tuple = (), strategy=None) -> tuple[keras.Model, dict]:
    """Build the best configuration, train it (or resume its backup), save it.

    Returns the model and a summary. `train` and `validation` are batched
    tf.data datasets; `callbacks` go to `fit` too (the EpochOrder of a
    shuffled `train`). `strategy`, a tf.distribute.Strategy such as
    `study.accelerator.distribution_strategy` returns, places the model's
    variables; None keeps Keras's default device.
    """
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = hypermodel.build(best_hp)
    stopping = keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=settings.patience,
                                             restore_best_weights=True)
    backup = RefitBackup(backup_dir(run_dir, name), stopping)
    state_path = backup.directory / STATE_FILE
    if state_path.exists():
        done = json.loads(state_path.read_text())["epoch"]
        log.info("%s refit: resuming after epoch %d from the backup in %s", name, done,
                 backup.directory)
    callbacks = [
        *callbacks,
        stopping,
        backup,
        keras.callbacks.TerminateOnNaN(),
        EpochLogger(name, settings.max_epochs),
    ]
    hypermodel.fit(best_hp, model, train, validation_data=validation,
                   epochs=settings.max_epochs, callbacks=callbacks, shuffle=False, verbose=0,
                   **schedule_length(hypermodel, settings.max_epochs))
    seconds = backup.seconds

    record = backup.history
    val_accuracy = record.get("val_accuracy", [])
    best_epoch = int(max(range(len(val_accuracy)), key=val_accuracy.__getitem__)) + 1
    models_dir = Path(run_dir) / "models"
    models_dir.mkdir(parents=True, exist_ok=True)
    model.save(models_dir / f"{name}.keras")
    (models_dir / f"{name}_history.json").write_text(json.dumps(record, indent=1))

    summary = {
        "epochs_run": len(val_accuracy),
        "best_epoch": best_epoch,
        "best_val_accuracy": val_accuracy[best_epoch - 1],
        "seconds": seconds,
        "resumed_at_epoch": backup.resumed_at,
        "history": record,
        "model_file": f"models/{name}.keras",
    }
    log.info("%s refit: %d epochs, best epoch %d with val_accuracy %.4f, %.1f s",
             name, len(val_accuracy), best_epoch, val_accuracy[best_epoch - 1], seconds)
    return model, summary
