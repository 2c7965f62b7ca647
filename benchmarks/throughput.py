"""Compare the study's input pipeline with a plain `model.fit` on the same arrays.

    python benchmarks/throughput.py [--images 10000] [--epochs 3] [--repeats 3] [--model cnn]
                                     [--xla auto]

Both runs train the quick preset's model (default hyperparameters) on the
same uint8 images for the same epochs and batch size, in this one process.
The plain run gives Keras a float32 copy of the images scaled to [0, 1] and
lets it shuffle. The study's run feeds the uint8 arrays through
`study.inputs.make_dataset` with its per-epoch order. The first epoch of
each run builds and traces the model and is not timed. The two runs
alternate `--repeats` times, because on a shared 2-core machine one run can
be up to 30% off the next. The script prints the median images per second of
each and their ratio (pipeline / plain).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from study import accelerator  # noqa: E402
from study.config import build_config  # noqa: E402
from study.inputs import EpochOrder, make_dataset  # noqa: E402
from study.training import build_hypermodel  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    """Record the wall time of each epoch in seconds."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def _model(name: str, config, num_classes: int, chosen: dict) -> keras.Model:
    prepared = type("Shape", (), {"class_names": tuple(range(num_classes)),
                                  "image_shape": (32, 32, 3), "accelerator": chosen})()
    keras.utils.set_random_seed(config.seed)
    return build_hypermodel(name, config, prepared).build(kt.HyperParameters())


def _images_per_second(timer: EpochTimer, images: int) -> float:
    timed = timer.seconds[1:]  # epoch 1 traces the model
    return images * len(timed) / sum(timed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000,
                        help="training images per epoch (random uint8, 32x32x3)")
    parser.add_argument("--epochs", type=int, default=3,
                        help="epochs per run, the first untimed (at least 2)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="alternating runs of each kind; the medians are compared")
    parser.add_argument("--model", choices=("cnn", "vit"), default="cnn")
    parser.add_argument("--xla", choices=("auto", "on", "off"), default="auto",
                        help="XLA compilation of both runs; 'auto' is the study's choice "
                             "(on only when TensorFlow finds a GPU)")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch is not timed")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    config = build_config("quick")
    config = dataclasses.replace(config, accelerator=dataclasses.replace(
        config.accelerator, xla=args.xla))
    # The study's precision and XLA choice for this machine (on with a GPU).
    chosen = accelerator.choose(config.accelerator, accelerator.gpu_capabilities())
    batch_size = config.model_settings(args.model).refit.batch_size
    rng = np.random.default_rng(config.seed)
    x = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, args.images)

    plain_rates, pipeline_rates = [], []
    for _ in range(args.repeats):
        plain_timer = EpochTimer()
        _model(args.model, config, 10, chosen).fit(
            x.astype("float32") / 255.0, y, batch_size=batch_size, epochs=args.epochs,
            shuffle=True, callbacks=[plain_timer], verbose=0)
        plain_rates.append(_images_per_second(plain_timer, args.images))

        order = EpochOrder(config.seed)
        pipeline_timer = EpochTimer()
        _model(args.model, config, 10, chosen).fit(
            make_dataset(x, y, batch_size, order=order), epochs=args.epochs, shuffle=False,
            callbacks=[order, pipeline_timer], verbose=0)
        pipeline_rates.append(_images_per_second(pipeline_timer, args.images))
    plain = statistics.median(plain_rates)
    pipeline = statistics.median(pipeline_rates)

    gpus = [device.name for device in tf.config.list_physical_devices("GPU")]
    print(f"machine:   {platform.machine()}, {os.cpu_count()} CPUs, "
          f"GPUs: {', '.join(gpus) or 'none'}")
    print(f"model:     {args.model} (quick preset defaults), dtype policy {chosen['policy']}, "
          f"XLA {'on' if chosen['xla'] else 'off'}, batch {batch_size}, "
          f"{args.images} images, {args.epochs - 1} timed epoch(s), {args.repeats} repeat(s)")
    print(f"plain fit: {plain:8.0f} images/s median "
          f"({', '.join(f'{rate:.0f}' for rate in plain_rates)}; float32 arrays, Keras shuffle)")
    print(f"pipeline:  {pipeline:8.0f} images/s median "
          f"({', '.join(f'{rate:.0f}' for rate in pipeline_rates)}; uint8 tf.data, "
          "per-epoch order)")
    print(f"ratio:     {pipeline / plain:.3f} (pipeline / plain)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
