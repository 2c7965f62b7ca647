"""Search, refit and evaluate one model: the TensorFlow half of the pipeline.

Each step records its outputs as a stage of the run folder, so a rerun
skips what is done: a finished search is not repeated, a saved refit model
is reloaded instead of retrained.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass, field

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from study import accelerator
from study.cluster import Cluster
from study.config import AugmentationSettings, StudyConfig
from study.data import ImageDataset, stratified_indices
from study.errors import mistake_images, most_confident_mistakes
from study.evaluation import evaluate_model, roc_analysis
from study.files import write_text_atomically
from study.inputs import EpochOrder, make_dataset, validation_split
from study.models.cnn import CNNHyperModel
from study.models.vit import ViTHyperModel
from study.pipeline import STEPS, seeds_dir
from study.refit import backup_dir, refit
from study.robustness import evaluate_robustness
from study.search import run_search
from study.stop import raise_if_requested
from study.uncertainty import reliability, score_intervals

log = logging.getLogger(__name__)
# Keras-tuner builds a new model per trial, so TensorFlow's retracing
# warnings fire by design; they would bury the study's own log lines.
logging.getLogger("tensorflow").setLevel(logging.ERROR)
# Hyperband promotes a trial by loading its weights into a fresh model whose
# optimizer has no slots yet; Keras warns that it skips the saved optimizer
# state, which is expected here.
warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")

class StopCheck(keras.callbacks.Callback):
    """Raise a stop request (Ctrl-C, SIGTERM) whose first raise was lost, at the next batch."""

    def __deepcopy__(self, memo):
        return self  # keras-tuner deep-copies each trial's callbacks; this one has no state

    def on_train_batch_end(self, batch, logs=None):
        raise_if_requested()

    def on_test_batch_end(self, batch, logs=None):
        raise_if_requested()


EVAL_BATCH_SIZE = 512  # images per prediction batch; memory only, no effect on results


@dataclass
class PreparedData:
    """The training sample split into fit and validation parts, plus the test split."""

    x_fit: np.ndarray
    y_fit: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    image_shape: tuple[int, int, int]
    seed: int
    gpus: list[str]
    # The dtype policy, the XLA flag and the number of replicas in use (study.accelerator)
    accelerator: dict
    # The MirroredStrategy over the GPUs, or None for one GPU or none
    strategy: tf.distribute.Strategy | None = field(default=None, repr=False)

    @classmethod
    def from_dataset(cls, dataset: ImageDataset, config: StudyConfig) -> "PreparedData":
        x_fit, y_fit, x_val, y_val = validation_split(
            dataset.x_train, dataset.y_train, config.validation_fraction, config.seed
        )
        gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
        chosen = accelerator.choose(config.accelerator, accelerator.gpu_capabilities())
        strategy = accelerator.gpu_strategy()
        chosen["replicas"] = accelerator.replica_count(strategy)
        log.info("preprocessing: %d images to fit, %d to validate, %d to test; GPUs: %s; "
                 "dtype policy %s, XLA %s, %d replica(s)", len(y_fit), len(y_val),
                 len(dataset.y_test), ", ".join(gpus) or "none", chosen["policy"],
                 "on" if chosen["xla"] else "off", chosen["replicas"])
        return cls(x_fit, y_fit, x_val, y_val, dataset.x_test, dataset.y_test,
                   dataset.class_names, dataset.image_shape, config.seed, gpus, chosen,
                   strategy)

    def fit_dataset(self, batch_size: int, limit: int | None = None,
                    augmentation: AugmentationSettings | None = None, seed: int | None = None):
        """Shuffled, optionally augmented training batches, from a stratified
        `limit`-image subset when given.

        `seed` (the study seed by default) sets the shuffling and augmentation.
        Returns the dataset and the EpochOrder callback that `fit` needs with it.
        """
        seed = self.seed if seed is None else seed
        idx = stratified_indices(self.y_fit, limit, seed, "training images to fit on")
        order = EpochOrder(seed)
        dataset = make_dataset(self.x_fit[idx], self.y_fit[idx], batch_size, order=order,
                               augmentation=augmentation)
        return dataset, order

    def validation_dataset(self, batch_size: int):
        return make_dataset(self.x_val, self.y_val, batch_size)

    def test_dataset(self, mirrored: bool = False):
        """Test batches in array order; `mirrored` flips every image left-right."""
        dataset = make_dataset(self.x_test, self.y_test, EVAL_BATCH_SIZE)
        if mirrored:
            dataset = dataset.map(lambda x, y: (tf.image.flip_left_right(x), y))
        return dataset


def build_hypermodel(name: str, config: StudyConfig, prepared: PreparedData) -> kt.HyperModel:
    num_classes = len(prepared.class_names)
    xla, policy = prepared.accelerator["xla"], prepared.accelerator["policy"]
    if name == "cnn":
        return CNNHyperModel(config.cnn_space, prepared.image_shape, num_classes, xla, policy)
    if name == "vit":
        return ViTHyperModel(config.vit_space, prepared.image_shape, num_classes, xla, policy)
    raise ValueError(f"unknown model {name!r}: choose 'cnn' or 'vit'")


def check_spaces(config: StudyConfig, prepared: PreparedData) -> None:
    """Raise ValueError when a search space cannot be built for these images.

    The hypermodels check their spaces against the image size (patch sizes
    that divide the side, for example) and Keras's activation names. Building
    both before the first search stops a bad space before any training.
    """
    for name in ("cnn", "vit"):
        build_hypermodel(name, config, prepared)


def _search_model(name: str, hypermodel: kt.HyperModel, prepared: PreparedData,
                  config: StudyConfig, run, cluster: Cluster | None):
    """Run model `name`'s search on its training subset; return what run_search returns."""
    search = config.model_settings(name).search
    train, order = prepared.fit_dataset(search.batch_size, search.train_images,
                                        config.augmentation)
    return run_search(name, hypermodel, search, train,
                      prepared.validation_dataset(search.batch_size), run.root, config.seed,
                      callbacks=[order, StopCheck()], cluster=cluster,
                      strategy=prepared.strategy)


def search_for_chief(name: str, prepared: PreparedData, config: StudyConfig, run,
                     cluster: Cluster) -> None:
    """Run trials of model `name`'s search as one of the chief's workers."""
    _search_model(name, build_hypermodel(name, config, prepared), prepared, config, run,
                  cluster)


def train_and_evaluate(name: str, prepared: PreparedData, config: StudyConfig, run,
                       timer, steps=STEPS, cluster: Cluster | None = None) -> dict | None:
    """Search, refit and evaluate model `name`; return its results.json entry.

    `timer.cached(run, stage, compute)` runs each step once per run folder
    and reuses its saved record afterwards. Only the `steps` named run (each
    needs the ones before it); when one is left out, the steps after it are
    skipped and None is returned. With a chief's `cluster`, workers run the
    search's trials.
    """
    if "search" not in steps:
        return None
    settings = config.model_settings(name)
    hypermodel = build_hypermodel(name, config, prepared)

    def search() -> dict:
        best_hp, summary = _search_model(name, hypermodel, prepared, config, run, cluster)
        return {"best_hyperparameters": best_hp.values,
                "hyperparameters_config": best_hp.get_config(), "summary": summary}

    searched = timer.cached(run, f"search_{name}", search)
    # The stage time includes earlier, interrupted runs of the search.
    searched["summary"]["seconds"] = timer.seconds[f"search_{name}"]
    best_hp = kt.HyperParameters.from_config(searched["hyperparameters_config"])
    if "refit" not in steps:
        return None

    trained = {}  # the refit model, when this invocation trains it

    def refit_best() -> dict:
        keras.utils.set_random_seed(config.seed)
        train, order = prepared.fit_dataset(settings.refit.batch_size,
                                            augmentation=config.augmentation)
        model, summary = refit(
            name, hypermodel, best_hp, settings.refit, train,
            prepared.validation_dataset(settings.refit.batch_size), run.root,
            callbacks=[order, StopCheck()], strategy=prepared.strategy,
        )
        trained["model"] = model
        return {**summary, "parameters": int(model.count_params())}

    refitted = timer.cached(run, f"refit_{name}", refit_best)
    refitted["seconds"] = timer.seconds[f"refit_{name}"]
    # The stage record now contains the refit; its epoch backup is no longer needed.
    shutil.rmtree(backup_dir(run.root, name), ignore_errors=True)
    if "evaluation" not in steps:
        return None

    def evaluate() -> dict:
        model = trained.get("model") or keras.models.load_model(run.root / refitted["model_file"])
        mirrored = prepared.test_dataset(mirrored=True) if config.evaluation.flip_tta else None
        metrics, scores = evaluate_model(model, prepared.test_dataset(), prepared.y_test,
                                         prepared.class_names, mirrored)
        metrics["intervals"] = score_intervals(
            prepared.y_test, scores["y_score"],
            resamples=config.evaluation.bootstrap_resamples,
            confidence=config.evaluation.confidence, seed=config.seed)
        bins = config.evaluation.calibration_bins
        metrics["calibration"] = {**reliability(prepared.y_test, scores["y_score"], bins),
                                  "bin_count": bins}
        mistakes = most_confident_mistakes(prepared.y_test, scores["y_score"],
                                           prepared.class_names,
                                           config.evaluation.mistakes_shown)
        metrics["confident_mistakes"] = mistakes
        # The gallery's images come from the array the scores were computed on.
        np.savez_compressed(run.root / f"predictions_{name}.npz", y_true=prepared.y_test,
                            mistake_images=mistake_images(prepared.x_test, mistakes),
                            **{key: value.astype(np.float32) for key, value in scores.items()})
        metrics["robustness"] = evaluate_robustness(
            name, lambda images: model.predict(images, batch_size=EVAL_BATCH_SIZE, verbose=0),
            prepared.x_test, prepared.y_test, config.evaluation, len(prepared.class_names),
            config.seed)
        return metrics

    evaluated = timer.cached(run, f"evaluation_{name}", evaluate)
    log.info("%s test: accuracy %.4f, loss %.4f, micro AUC %.4f, macro AUC %.4f", name,
             evaluated["test"]["accuracy"], evaluated["test"]["loss"],
             evaluated["roc"]["micro_auc"], evaluated["roc"]["macro_auc"])
    if "calibration" in evaluated:
        log.info("%s calibration: ECE %.4f over %d bins, %d most confident mistakes kept",
                 name, evaluated["calibration"]["ece"], evaluated["calibration"]["bin_count"],
                 len(evaluated["confident_mistakes"]))
    if "flip_tta" in evaluated:
        log.info("%s test with flip TTA: accuracy %.4f, macro AUC %.4f", name,
                 evaluated["flip_tta"]["accuracy"], evaluated["flip_tta"]["macro_auc"])

    if "seeds" not in steps:
        return None

    def refit_more_seeds() -> dict:
        runs = []
        # The refit above is the first of `seeds`; these are the second onwards.
        for number, seed in enumerate(extra_seeds(config.seed, settings.refit.seeds), start=2):
            log.info("%s seeds: refit %d of %d, with seed %d", name, number,
                     settings.refit.seeds, seed)
            runs.append(refit_with_seed(name, seed, hypermodel, best_hp, prepared, config, run))
        return {"runs": runs}

    # One seed needs no stage of its own (nor a row in the timings).
    replicated = (timer.cached(run, f"seeds_{name}", refit_more_seeds)
                  if settings.refit.seeds > 1 else {"runs": []})

    hyperparameters = {k: v for k, v in searched["best_hyperparameters"].items()
                       if not k.startswith("tuner/")}
    first = {"seed": config.seed, "accuracy": evaluated["test"]["accuracy"],
             "macro_auc": evaluated["roc"]["macro_auc"],
             **{key: refitted[key] for key in SEED_RUN_KEYS}}
    return {
        "parameters": refitted["parameters"],
        "best_hyperparameters": hyperparameters,
        "search": searched["summary"],
        "refit": {k: v for k, v in refitted.items() if k != "parameters"},
        **evaluated,
        "seeds": seed_summary([first, *replicated["runs"]]),
    }


SEED_RUN_KEYS = ("epochs_run", "best_epoch", "best_val_accuracy", "seconds")


def extra_seeds(seed: int, count: int) -> list[int]:
    """Seeds of the refits after the first: seed + 1, ..., seed + count - 1.

    >>> extra_seeds(42, 3)
    [43, 44]
    """
    return [seed + offset for offset in range(1, count)]


def refit_with_seed(name: str, seed: int, hypermodel: kt.HyperModel,
                    best_hp: kt.HyperParameters, prepared: PreparedData, config: StudyConfig,
                    run) -> dict:
    """Refit the best configuration with another seed and score it on the test split.

    The seed sets the initial weights, the dropout masks, the shuffling and
    the augmentation; the data split and the hyperparameters stay as they
    are. The model, its probabilities and a JSON record go under
    `<run_dir>/seeds/<name>/`. A finished seed is read from its record, so
    a killed stage loses at most the seed that was training.
    """
    folder = seeds_dir(run.root, name)
    record_path = folder / f"seed-{seed}.json"
    if record_path.exists():
        return json.loads(record_path.read_text())
    settings = config.model_settings(name)
    tag = f"{name}_seed{seed}"
    keras.utils.set_random_seed(seed)
    train, order = prepared.fit_dataset(settings.refit.batch_size,
                                        augmentation=config.augmentation, seed=seed)
    model, summary = refit(tag, hypermodel, best_hp, settings.refit, train,
                           prepared.validation_dataset(settings.refit.batch_size), folder,
                           callbacks=[order, StopCheck()], strategy=prepared.strategy)
    y_score = np.asarray(model.predict(prepared.test_dataset(), verbose=0), dtype=np.float64)
    np.savez_compressed(folder / f"predictions_seed{seed}.npz", y_true=prepared.y_test,
                        y_score=y_score.astype(np.float32))
    record = {"seed": seed,
              "accuracy": float(np.mean(y_score.argmax(axis=1) == prepared.y_test)),
              "macro_auc": roc_analysis(prepared.y_test, y_score,
                                        prepared.class_names)["macro_auc"],
              **{key: summary[key] for key in SEED_RUN_KEYS}}
    log.info("%s refit with seed %d: test accuracy %.4f, macro AUC %.4f", name, seed,
             record["accuracy"], record["macro_auc"])
    write_text_atomically(record_path, json.dumps(record, indent=1))
    shutil.rmtree(backup_dir(folder, tag), ignore_errors=True)
    return record


def seed_summary(runs: list[dict]) -> dict:
    """Mean and sample standard deviation of the test scores over the seeds' refits.

    With one run the standard deviation is None (undefined).

    >>> spread = seed_summary([{"accuracy": 0.5, "macro_auc": 0.8},
    ...                        {"accuracy": 0.7, "macro_auc": 0.8}])["accuracy"]
    >>> round(spread["mean"], 4), round(spread["sd"], 4)
    (0.6, 0.1414)
    """
    summary = {"count": len(runs), "runs": runs}
    for key in ("accuracy", "macro_auc"):
        values = np.array([run[key] for run in runs], dtype=float)
        summary[key] = {"mean": float(values.mean()),
                        "sd": float(values.std(ddof=1)) if len(values) > 1 else None}
    return summary
