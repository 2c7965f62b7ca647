"""Read and check the run folder that `run_study.py` writes.

The report reads two files: `results.json` (numbers, config, environment)
and `exploration.npz` (the images behind the exploration figures), plus,
when present, the confident mistakes' images in `predictions_<model>.npz`. This
module checks the parts the report relies on and raises `RunFolderError`
with the missing or inconsistent item, so a broken run fails before any
figure is drawn.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger("report.run_folder")

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
EXPLORATION_FILE = "exploration.npz"
PREDICTIONS_FILE = "predictions_{model}.npz"  # per model, written by the evaluation stage
MISTAKE_IMAGES = "mistake_images"  # its array of the confident mistakes' images

_TOP_LEVEL_KEYS = ("config", "data", "exploration", "models", "environment", "timings")
_MODEL_KEYS = ("label", "parameters", "best_hyperparameters", "search", "refit", "test",
               "per_class", "confusion_matrix", "roc")

# Array name -> number of dimensions, per the run-folder schema.
_ARRAY_DIMENSIONS = {
    "samples": 4,
    "sample_labels": 1,
    "spectrum_images": 4,
    "spectrum_labels": 1,
    "log_amplitude": 4,
    "phase": 4,
    "reconstruction": 4,
    "filter_widths": 1,
    "low_pass": 5,
    "high_pass": 5,
}


class RunFolderError(ValueError):
    """The run folder is missing a file, or a file does not match the schema."""


@dataclass(frozen=True)
class RunFolder:
    path: Path
    results: dict
    arrays: dict[str, np.ndarray]


def load_run(run_dir: Path) -> RunFolder:
    """Read results.json, exploration.npz and the mistake images from `run_dir`, and check them."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder not found: {run_dir}")
    results = read_results(run_dir / RESULTS_FILE)
    arrays = read_exploration(run_dir / EXPLORATION_FILE)
    check_arrays_match(results, arrays)
    arrays.update(read_mistake_images(run_dir, results))
    return RunFolder(path=run_dir, results=results, arrays=arrays)


def read_results(path: Path) -> dict:
    """Parse results.json and check the keys the report uses."""
    if not path.is_file():
        raise RunFolderError(f"missing {path.name} in {path.parent}: run run_study.py first")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RunFolderError(f"{path} is not valid JSON: {error}") from error
    check_results(results)
    return results


def check_results(results: dict) -> None:
    """Raise RunFolderError unless `results` has the keys and shapes the report reads."""
    if not isinstance(results, dict):
        raise RunFolderError("results.json must contain a JSON object")
    version = results.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RunFolderError(
            f"results.json has schema_version {version!r}, but this report reads "
            f"version {SCHEMA_VERSION}"
        )
    _require_keys(results, _TOP_LEVEL_KEYS, "results.json")

    class_names = results["data"].get("class_names")
    if (not isinstance(class_names, list) or len(class_names) < 2
            or not all(isinstance(name, str) for name in class_names)):
        raise RunFolderError("data.class_names must be a list of at least two strings")

    models = results["models"]
    if not isinstance(models, dict) or not models:
        raise RunFolderError("results.json has no models")
    for key, model in models.items():
        _check_model(key, model, class_names)


def _check_model(key: str, model: dict, class_names: list[str]) -> None:
    where = f"models.{key}"
    _require_keys(model, _MODEL_KEYS, where)
    classes = len(class_names)

    matrix = np.asarray(model["confusion_matrix"])
    if matrix.shape != (classes, classes):
        raise RunFolderError(
            f"{where}.confusion_matrix has shape {matrix.shape}, expected "
            f"({classes}, {classes}) for {classes} classes"
        )
    rows = [row.get("class") for row in model["per_class"]]
    if rows != class_names:
        raise RunFolderError(
            f"{where}.per_class lists classes {rows}, expected data.class_names in order"
        )
    _require_keys(model["test"], ("accuracy", "loss"), f"{where}.test")
    _require_keys(model["refit"], ("history", "best_epoch", "epochs_run"), f"{where}.refit")
    _require_keys(model["roc"], ("micro_auc", "macro_auc", "per_class_auc", "curves"),
                  f"{where}.roc")
    _check_best_epoch(where, model["refit"])
    _check_calibration(where, model, class_names)


def _check_best_epoch(where: str, refit: dict) -> None:
    # The report reads best_epoch as counted from 1. A mismatch with the
    # history usually means the run counted from 0, so the figure would mark
    # the wrong epoch.
    history = refit["history"].get("val_accuracy") or []
    best_epoch, best = refit["best_epoch"], refit.get("best_val_accuracy")
    if not 1 <= best_epoch <= max(len(history), 1):
        raise RunFolderError(
            f"{where}.refit.best_epoch is {best_epoch}, outside 1..{len(history)} "
            f"(epochs are counted from 1)"
        )
    if history and best is not None and abs(history[best_epoch - 1] - best) > 1e-6:
        logger.warning(
            "%s.refit: val_accuracy at best_epoch %d is %.4f but best_val_accuracy is %.4f. "
            "Check that best_epoch is counted from 1.", where, best_epoch,
            history[best_epoch - 1], best,
        )


def _check_calibration(where: str, model: dict, class_names: list[str]) -> None:
    # Both entries are optional, because runs made before them lack them.
    if "calibration" in model:
        calibration = model["calibration"]
        _require_keys(calibration, ("ece", "bins"), f"{where}.calibration")
        if not isinstance(calibration["bins"], list) or not calibration["bins"]:
            raise RunFolderError(f"{where}.calibration.bins must be a non-empty list")
        for index, entry in enumerate(calibration["bins"]):
            _require_keys(entry, ("low", "high", "images", "accuracy", "confidence"),
                          f"{where}.calibration.bins[{index}]")
    mistakes = model.get("confident_mistakes", [])
    if not isinstance(mistakes, list):
        raise RunFolderError(f"{where}.confident_mistakes must be a list")
    for index, mistake in enumerate(mistakes):
        place = f"{where}.confident_mistakes[{index}]"
        _require_keys(mistake, ("index", "true", "predicted", "confidence"), place)
        for field in ("true", "predicted"):
            if mistake[field] not in class_names:
                raise RunFolderError(f"{place}.{field} is {mistake[field]!r}, which is not "
                                     f"in data.class_names")


def _require_keys(mapping: object, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(mapping, dict):
        raise RunFolderError(f"{where} must be a JSON object")
    missing = [key for key in keys if key not in mapping]
    if missing:
        raise RunFolderError(f"{where} is missing {', '.join(missing)}")


def read_exploration(path: Path) -> dict[str, np.ndarray]:
    """Load every array of exploration.npz into memory and check its rank."""
    if not path.is_file():
        raise RunFolderError(f"missing {path.name} in {path.parent}: run run_study.py first")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise RunFolderError(f"{path} is not a readable .npz file: {error}") from error

    missing = sorted(set(_ARRAY_DIMENSIONS) - set(arrays))
    if missing:
        raise RunFolderError(f"{path.name} is missing arrays: {', '.join(missing)}")
    for name, dimensions in _ARRAY_DIMENSIONS.items():
        if arrays[name].ndim != dimensions:
            raise RunFolderError(
                f"{path.name}: array {name} has shape {arrays[name].shape}, expected "
                f"{dimensions} dimensions"
            )
    return arrays


def check_arrays_match(results: dict, arrays: dict[str, np.ndarray]) -> None:
    """Raise RunFolderError when labels or counts in the arrays disagree with results."""
    classes = len(results["data"]["class_names"])
    for name in ("sample_labels", "spectrum_labels"):
        labels = arrays[name]
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise RunFolderError(
                f"{EXPLORATION_FILE}: {name} contains a label outside 0..{classes - 1}"
            )
    if len(arrays["samples"]) != len(arrays["sample_labels"]):
        raise RunFolderError(f"{EXPLORATION_FILE}: samples and sample_labels differ in length")

    spectrum = arrays["spectrum_images"].shape[0]
    for name in ("spectrum_labels", "log_amplitude", "phase", "reconstruction"):
        if arrays[name].shape[0] != spectrum:
            raise RunFolderError(
                f"{EXPLORATION_FILE}: {name} has {arrays[name].shape[0]} images, but "
                f"spectrum_images has {spectrum}"
            )
    widths = arrays["filter_widths"].shape[0]
    for name in ("low_pass", "high_pass"):
        if arrays[name].shape[:2] != (widths, spectrum):
            raise RunFolderError(
                f"{EXPLORATION_FILE}: {name} has shape {arrays[name].shape}, expected "
                f"({widths}, {spectrum}, H, W, 3)"
            )


def mistake_images_key(model_key: str) -> str:
    """Return the key of a model's gallery images in `RunFolder.arrays`."""
    return f"mistake_images_{model_key}"


def read_mistake_images(run_dir: Path, results: dict) -> dict[str, np.ndarray]:
    """Load the images of each model's confident mistakes from predictions_<model>.npz.

    Returns them under `mistake_images_key(model)`, in the order of the
    model's `confident_mistakes`. A model with no mistakes listed has none
    to load. A missing file or array is logged, and that model's gallery is
    left out: the rest of the report does not depend on it.
    """
    images = {}
    for key, model in results["models"].items():
        mistakes = model.get("confident_mistakes") or []
        if not mistakes:
            continue
        path = Path(run_dir) / PREDICTIONS_FILE.format(model=key)
        array = _read_optional_array(path, MISTAKE_IMAGES)
        if array is None:
            logger.warning("%s has no %s array, so the gallery of models.%s is left out",
                           path, MISTAKE_IMAGES, key)
            continue
        if array.ndim != 4 or len(array) != len(mistakes) or array.dtype != np.uint8:
            raise RunFolderError(
                f"{path.name}: {MISTAKE_IMAGES} is {array.dtype} with shape {array.shape}, "
                f"expected uint8 ({len(mistakes)}, H, W, C) for the {len(mistakes)} "
                f"confident_mistakes of models.{key}. Rerun the evaluation with "
                f"--restart evaluation_{key}."
            )
        images[mistake_images_key(key)] = array
    return images


def _read_optional_array(path: Path, name: str) -> np.ndarray | None:
    # Only the named array is read: the archive also contains every test
    # image's probabilities, which the report does not need.
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive[name] if name in archive.files else None
    except (OSError, ValueError) as error:
        raise RunFolderError(f"{path} is not a readable .npz file: {error}") from error
