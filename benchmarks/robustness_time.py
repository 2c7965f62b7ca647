"""Time the frequency-robustness pass that the evaluation adds, per model.

    python benchmarks/robustness_time.py [--preset quick] [--repeats 3]

For each model it builds the preset's network with default hyperparameters
and random weights, because the accuracy does not change the time. It then
runs `study.robustness.evaluate_robustness` with the preset's widths and
sample size on random uint8 32 x 32 x 3 images, as the evaluation stage does. It
prints the median wall time of `--repeats` passes, split into the filtering
(NumPy FFTs) and the predictions. One untimed prediction first builds the
model's predict function, as the main test pass does in a study.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import keras_tuner as kt  # noqa: E402
import numpy as np  # noqa: E402

from study import accelerator  # noqa: E402
from study.config import PRESETS, build_config  # noqa: E402
from study.robustness import evaluate_robustness  # noqa: E402
from study.training import EVAL_BATCH_SIZE, build_hypermodel  # noqa: E402

CIFAR10_TEST = 10_000
CLASSES = 10


def _model(name: str, config, chosen: dict) -> keras.Model:
    # build_hypermodel reads only these three fields of the prepared data.
    prepared = type("Shape", (), {"class_names": tuple(range(CLASSES)),
                                  "image_shape": (32, 32, 3), "accelerator": chosen})()
    keras.utils.set_random_seed(config.seed)
    return build_hypermodel(name, config, prepared).build(kt.HyperParameters())


def _time_pass(model: keras.Model, x: np.ndarray, y: np.ndarray, config) -> tuple[float, float]:
    """Return the wall seconds of one robustness pass and the part spent predicting."""
    predicting = [0.0]

    def predict(images: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        scores = model.predict(images, batch_size=EVAL_BATCH_SIZE, verbose=0)
        predicting[0] += time.perf_counter() - start
        return scores

    scores = evaluate_robustness("benchmark", predict, x, y, config.evaluation, CLASSES,
                                 config.seed)
    return scores["seconds"], predicting[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=PRESETS, default="quick")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed passes per model; the median is printed")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    config = build_config(args.preset)
    chosen = accelerator.choose(config.accelerator, accelerator.gpu_capabilities())
    rng = np.random.default_rng(config.seed)
    test_images = config.test_images or CIFAR10_TEST
    x = rng.integers(0, 256, (test_images, 32, 32, 3), dtype=np.uint8)
    y = np.arange(test_images) % CLASSES
    sample = config.evaluation.robustness_images or test_images
    widths = config.evaluation.robustness_widths

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; preset {args.preset}: "
          f"{sample} of {test_images} test images, widths {', '.join(f'{w:g}' for w in widths)}, "
          f"{1 + 2 * len(widths)} passes over the sample")
    for name in ("cnn", "vit"):
        model = _model(name, config, chosen)
        model.predict(x[:EVAL_BATCH_SIZE].astype(np.float32) / 255.0, verbose=0)
        runs = [_time_pass(model, x, y, config) for _ in range(args.repeats)]
        total = statistics.median(seconds for seconds, _ in runs)
        predicting = statistics.median(predict for _, predict in runs)
        print(f"{name}: {total:6.1f} s median per pass ({predicting:.1f} s predicting, "
              f"{total - predicting:.1f} s filtering and sampling); "
              f"{model.count_params():,} parameters; "
              f"runs: {', '.join(f'{seconds:.1f}' for seconds, _ in runs)} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
