"""Train the best configuration of a search from scratch and save it.

EarlyStopping on val_accuracy restores the best epoch's weights; the model
is saved as `<run_dir>/models/<name>.keras` and its per-epoch history as
`<name>_history.json`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import keras
import keras_tuner as kt

from study.config import RefitSettings

log = logging.getLogger(__name__)


class EpochLogger(keras.callbacks.Callback):
    """Log one line per epoch with the metrics and the epoch's wall time."""

    def __init__(self, name: str, max_epochs: int):
        super().__init__()
        self.name = name
        self.max_epochs = max_epochs
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        log.info("%s refit epoch %d/%d: loss %.4f, accuracy %.4f, val_loss %.4f, "
                 "val_accuracy %.4f, %.1f s", self.name, epoch + 1, self.max_epochs,
                 logs.get("loss", float("nan")), logs.get("accuracy", float("nan")),
                 logs.get("val_loss", float("nan")), logs.get("val_accuracy", float("nan")),
                 time.monotonic() - self._start)


def refit(name: str, hypermodel: kt.HyperModel, best_hp: kt.HyperParameters,
          settings: RefitSettings, train, validation, run_dir: Path) -> tuple[keras.Model, dict]:
    """Build the best configuration, train it, save it; return the model and a summary.

    `train` and `validation` are batched tf.data datasets.
    """
    model = hypermodel.build(best_hp)
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=settings.patience,
                                      restore_best_weights=True),
        keras.callbacks.TerminateOnNaN(),
        EpochLogger(name, settings.max_epochs),
    ]
    start = time.monotonic()
    history = model.fit(train, validation_data=validation, epochs=settings.max_epochs,
                        callbacks=callbacks, shuffle=False, verbose=0)
    seconds = time.monotonic() - start

    record = {key: [float(v) for v in values] for key, values in history.history.items()}
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
        "history": record,
        "model_file": f"models/{name}.keras",
    }
    log.info("%s refit: %d epochs, best epoch %d with val_accuracy %.4f, %.1f s",
             name, len(val_accuracy), best_epoch, val_accuracy[best_epoch - 1], seconds)
    return model, summary
