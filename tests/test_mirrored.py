"""Refits under tf.distribute.MirroredStrategy, with two logical CPUs in place of GPUs.

TensorFlow fixes its logical devices when its runtime starts, so the
mirrored refits run in a child process that splits the CPU before anything
else touches TensorFlow. The child prints one JSON line for the checks here.
"""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from study.accelerator import distribution_strategy, replica_count

ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent('''
    import json
    import sys
    from pathlib import Path

    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

    import keras
    import keras_tuner as kt
    import numpy as np

    from study.accelerator import distribution_strategy, gpu_strategy, replica_count
    from study.config import (CNNSpace, FloatRange, IntRange, OptimizerSpace, RefitSettings,
                              TrainingSpace)
    from study.inputs import EpochOrder, make_dataset
    from study.models.cnn import CNNHyperModel
    from study.refit import refit


    class Interrupt(Exception):
        """Simulates a killed process."""


    class StopAtSecondEpoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise Interrupt("interrupted at epoch 1")


    run_dir = Path(sys.argv[1])
    devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    strategy = distribution_strategy(devices)

    # Batch normalization, dropout and a warm-up then cosine schedule: the
    # parts of the CNN whose state a mirrored refit must carry across a resume.
    training = TrainingSpace(
        optimizers=(OptimizerSpace("adamw", FloatRange(0.01, 0.01),
                                   weight_decay=FloatRange(0.05, 0.05)),),
        schedules=("cosine",), warmup_fraction=0.25, label_smoothing=FloatRange(0.1, 0.1))
    space = CNNSpace(conv_blocks=IntRange(1, 1), filter_multipliers=IntRange(1, 1),
                     batch_norm=(True,), residual=(False,), convs_per_block=(1,),
                     activations=("relu",), pooling=("global_average",),
                     dense_units=IntRange(0, 0), dropout=FloatRange(0.2, 0.2),
                     training=training)
    hypermodel = CNNHyperModel(space, (8, 8, 3), 3, jit_compile=False)
    hp = kt.HyperParameters()
    hp.Fixed("filters_0", 8)

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    y = rng.integers(0, 3, 40)


    def run(name, epochs, extra=()):
        keras.utils.set_random_seed(1)
        order = EpochOrder(1)
        train = make_dataset(x[:32], y[:32], 8, order=order)
        validation = make_dataset(x[32:], y[32:], 8)
        settings = RefitSettings(max_epochs=epochs, patience=epochs, batch_size=8)
        return refit(name, hypermodel, hp, settings, train, validation, run_dir,
                     callbacks=[order, *extra], strategy=strategy)


    model, summary = run("one_epoch", 1)
    whole_model, whole = run("whole", 2)
    try:
        run("resumed", 2, [StopAtSecondEpoch()])
    except Interrupt:
        pass
    resumed_model, resumed = run("resumed", 2)
    saved = keras.models.load_model(run_dir / summary["model_file"])
    print(json.dumps({
        "devices": devices,
        "replicas": replica_count(strategy),
        "model_replicas": model.distribute_strategy.num_replicas_in_sync,
        "batch_norm_synchronized": [layer.synchronized for layer in model.layers
                                    if isinstance(layer, keras.layers.BatchNormalization)],
        "gpu_strategy_is_none": gpu_strategy() is None,
        "one_epoch": {key: summary[key] for key in ("epochs_run", "history", "model_file")},
        "resumed": {key: resumed[key] for key in ("epochs_run", "resumed_at_epoch")},
        "resumed_history_matches": resumed["history"] == whole["history"],
        "resumed_weights_match": all(
            np.array_equal(a, b) for a, b in
            zip(whole_model.get_weights(), resumed_model.get_weights(), strict=True)),
        "saved_matches": all(np.array_equal(a, b) for a, b in
                             zip(model.get_weights(), saved.get_weights(), strict=True)),
    }))
''')


def test_one_device_gives_no_strategy():
    assert distribution_strategy([]) is None
    assert distribution_strategy(["/device:GPU:0"]) is None
    assert replica_count(None) == 1


def test_single_device_batch_norm_unsynchronized():
    from study.models.cnn import batch_normalization

    assert batch_normalization().synchronized is False


def test_prepared_data_records_one_replica():
    from study.config import build_config
    from study.data import ImageDataset
    from study.training import PreparedData

    rng = np.random.default_rng(0)
    dataset = ImageDataset(rng.integers(0, 256, (30, 8, 8, 3), dtype=np.uint8),
                           np.arange(30) % 3, rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
                           np.arange(6) % 3, ("a", "b", "c"), "random")
    prepared = PreparedData.from_dataset(dataset, build_config("smoke"))
    assert prepared.strategy is None
    assert prepared.accelerator["replicas"] == 1


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("mirrored")
    child = subprocess.run([sys.executable, "-c", CHILD, str(run_dir)], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
                                "CUDA_VISIBLE_DEVICES": ""},
                           capture_output=True, text=True, timeout=180)
    assert child.returncode == 0, child.stderr[-4000:]
    return {"run_dir": run_dir, **json.loads(child.stdout.strip().splitlines()[-1])}


def test_mirrored_refit_uses_two_replicas(mirrored):
    assert len(mirrored["devices"]) == 2
    assert mirrored["replicas"] == 2
    assert mirrored["model_replicas"] == 2
    assert mirrored["batch_norm_synchronized"] == [True]
    assert mirrored["gpu_strategy_is_none"]


def test_mirrored_refit_trains_and_saves(mirrored):
    one_epoch = mirrored["one_epoch"]
    assert one_epoch["epochs_run"] == 1
    assert len(one_epoch["history"]["loss"]) == 1
    assert math.isfinite(one_epoch["history"]["loss"][0])
    assert (mirrored["run_dir"] / one_epoch["model_file"]).is_file()
    assert mirrored["saved_matches"]


def test_mirrored_refit_resumes_backup(mirrored):
    # Exact only with synchronized batch normalization: unsynchronized, the
    # replicas' moving statistics drift apart and a resume restores the first's.
    assert mirrored["resumed"] == {"epochs_run": 2, "resumed_at_epoch": 1}
    assert mirrored["resumed_history_matches"]
    assert mirrored["resumed_weights_match"]
