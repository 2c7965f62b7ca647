"""Count the training a preset requests, and turn measured speeds into a time estimate.

    python benchmarks/budget.py [--preset full] [--cnn-rate IMAGES_PER_S] [--vit-rate IMAGES_PER_S]

For each model it prints the Hyperband trials, the most epochs the search
can train (early stopping only lowers it), the refit's epochs and seeds,
and the images each stage passes through the model (training images times
epochs, times the seeds for the refits; the test split once per seed, twice
for the first seed with flip test-time augmentation). Given a
training speed per model in images per second, measured on the target
machine with that preset's models, it adds an estimate of the time spent
in training steps; validation passes, model building and compilation come
on top. benchmarks/throughput.py measures the quick preset's models only.
The script trains nothing and needs no data: the full preset's image counts
assume CIFAR-10 (50,000 train and 10,000 test images).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.config import PRESETS, build_config  # noqa: E402
from study.search import hyperband_epoch_count, hyperband_trial_count  # noqa: E402

CIFAR10_TRAIN, CIFAR10_TEST = 50_000, 10_000


def plan(preset: str) -> dict:
    """Images through each model per stage: search and refit training, test passes."""
    config = build_config(preset)
    sample = config.train_images or CIFAR10_TRAIN
    fit_images = sample - round(sample * config.validation_fraction)
    first_test_passes = 2 if config.evaluation.flip_tta else 1
    rows = {}
    for name in ("cnn", "vit"):
        settings = config.model_settings(name)
        search, refit = settings.search, settings.refit
        search_images = min(search.train_images or fit_images, fit_images)
        epochs = hyperband_epoch_count(search.max_epochs, search.factor, search.iterations)
        rows[name] = {
            "trials": hyperband_trial_count(search.max_epochs, search.factor, search.iterations),
            "search_epochs": epochs,
            "search_images": epochs * search_images,
            "refit_epochs": refit.max_epochs,
            "seeds": refit.seeds,
            "refit_images": refit.seeds * refit.max_epochs * fit_images,
            "test_images": (first_test_passes + refit.seeds - 1)
                           * (config.test_images or CIFAR10_TEST),
        }
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=PRESETS, default="full")
    parser.add_argument("--cnn-rate", type=float, default=None, metavar="IMAGES_PER_S",
                        help="measured CNN training speed on the target machine")
    parser.add_argument("--vit-rate", type=float, default=None, metavar="IMAGES_PER_S",
                        help="measured ViT training speed on the target machine")
    args = parser.parse_args()
    rates = {"cnn": args.cnn_rate, "vit": args.vit_rate}
    for name, rate in rates.items():
        if rate is not None and rate <= 0:
            parser.error(f"--{name}-rate must be a positive number of images per second, "
                         f"got {rate}")

    total = 0.0
    for name, row in plan(args.preset).items():
        trained = row["search_images"] + row["refit_images"]
        print(f"{name}: search {row['trials']} trials, at most {row['search_epochs']} epochs "
              f"({row['search_images']:,} images); {row['seeds']} refit(s) of at most "
              f"{row['refit_epochs']} epochs ({row['refit_images']:,} images); test "
              f"{row['test_images']:,} images")
        if rates[name]:
            seconds = trained / rates[name]
            total += seconds
            print(f"{name}: at {rates[name]:,.0f} images/s, at most {seconds / 60:.1f} min "
                  "of training steps")
    if all(rates.values()):
        print(f"both: at most {total / 60:.1f} min of training steps (validation, model "
              "building and compilation not counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
