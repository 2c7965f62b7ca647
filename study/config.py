"""Every setting of a study run, typed, with its unit, in three presets.

`smoke` is for tests (a few hundred images, one or two epochs). `quick` fits
a 2-core laptop CPU in minutes. `full` is the study at the scale of the 2024
CIFAR-10 notebook it reproduces, or larger, and is meant for a GPU.
`build_config` picks a preset and applies the command-line overrides, and
`to_dict` gives the resolved config that goes into results.json.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

PRESETS = ("smoke", "quick", "full")


@dataclass(frozen=True)
class IntRange:
    """Integers from `min` to `max` inclusive, in steps of `step`."""

    min: int
    max: int
    step: int = 1


@dataclass(frozen=True)
class FloatRange:
    """Floats from `min` to `max`: on a grid of `step`, or log-uniform when `log`."""

    min: float
    max: float
    step: float | None = None
    log: bool = False


@dataclass(frozen=True)
class CNNSpace:
    """Search space of the convolutional network.

    Block i (from 0) has `32 * 2**i * m` filters, m drawn from
    `filter_multipliers`, so the notebook's 32*2^i to 256*2^i in steps of
    32*2^i is m in 1..8.
    """

    # Tuples are choices, and IntRange or FloatRange fields are ranges.
    conv_blocks: IntRange = IntRange(1, 3)
    convs_per_block: tuple[int, ...] = (1,)
    filter_multipliers: IntRange = IntRange(1, 8)
    batch_norm: tuple[bool, ...] = (False, True)
    activations: tuple[str, ...] = ("relu", "elu")
    dense_units: IntRange = IntRange(512, 2048, 512)
    dropout: FloatRange = FloatRange(0.0, 0.4, 0.1)
    optimizers: tuple[str, ...] = ("adam", "sgd")
    learning_rate: FloatRange = FloatRange(1e-5, 1e-3, log=True)


@dataclass(frozen=True)
class ViTHead:
    """The classifier after the flattened tokens: fixed, not searched."""

    units: tuple[int, ...] = (2048, 1024)  # GELU dense layers, in order
    dropout: float = 0.5  # before and after each dense layer


@dataclass(frozen=True)
class ViTSpace:
    """Search space of the Vision Transformer.

    Patch sizes must divide the image side; the search keeps those that do
    and fails when none does.
    """

    patch_sizes: tuple[int, ...] = (4, 8, 16)  # pixels per patch side
    projection_dims: tuple[int, ...] = (64, 128)
    heads: tuple[int, ...] = (4, 8)
    transformer_layers: IntRange = IntRange(2, 6, 2)
    mlp_depth: IntRange = IntRange(1, 3)  # hidden layers in each block's MLP
    mlp_dropout: FloatRange = FloatRange(0.1, 0.4, 0.1)
    head: ViTHead = field(default_factory=ViTHead)
    optimizers: tuple[str, ...] = ("adam", "rmsprop")
    learning_rate: FloatRange = FloatRange(1e-5, 1e-3, log=True)
    momentum: FloatRange = FloatRange(0.0, 0.9, 0.1)  # RMSprop only


@dataclass(frozen=True)
class SearchBudget:
    """How long Hyperband may train, and the guards that stop a trial early."""

    max_epochs: int = 30  # Hyperband's largest per-trial epoch budget
    factor: int = 3
    iterations: int = 1
    batch_size: int = 128
    train_images: int | None = None  # training images the search fits on; None = all
    patience: int = 5  # EarlyStopping on val_loss, epochs
    trial_time_limit_s: float = 600.0  # wall seconds before a trial is stopped
    not_learning_min_delta: float = 0.02  # training accuracy gain per epoch
    not_learning_patience: int = 5  # epochs without that gain


@dataclass(frozen=True)
class RefitSettings:
    """Final training of the best configuration."""

    max_epochs: int = 50
    patience: int = 15  # EarlyStopping on val_accuracy, epochs
    batch_size: int = 128


@dataclass(frozen=True)
class ModelSettings:
    search: SearchBudget
    refit: RefitSettings


@dataclass(frozen=True)
class ExplorationSettings:
    histogram_bins: int = 256  # one bin per uint8 value
    filter_widths: tuple[float, ...] = (0.04, 0.08, 0.16)  # cycles per pixel
    spectrum_images: int = 10  # images in the FFT figure


@dataclass(frozen=True)
class AugmentationSettings:
    """Random changes to each training batch; validation and test images are never changed."""

    flip: bool = False  # mirror left-right with probability 0.5
    translate_pixels: int = 0  # shift by up to this many pixels along x and y, border reflected

    @property
    def enabled(self) -> bool:
        return self.flip or self.translate_pixels > 0


@dataclass(frozen=True)
class StudyConfig:
    preset: str
    seed: int = 42
    train_images: int | None = None  # stratified sample of the train split; None = all
    test_images: int | None = None  # stratified sample of the test split; None = all
    validation_fraction: float = 0.1  # of the training sample, stratified
    augmentation: AugmentationSettings = field(default_factory=AugmentationSettings)
    cnn_space: CNNSpace = field(default_factory=CNNSpace)
    vit_space: ViTSpace = field(default_factory=ViTSpace)
    cnn: ModelSettings = field(
        default_factory=lambda: ModelSettings(SearchBudget(), RefitSettings())
    )
    vit: ModelSettings = field(
        default_factory=lambda: ModelSettings(
            SearchBudget(batch_size=512, iterations=2), RefitSettings(max_epochs=100)
        )
    )
    exploration: ExplorationSettings = field(default_factory=ExplorationSettings)

    def model_settings(self, name: str) -> ModelSettings:
        return {"cnn": self.cnn, "vit": self.vit}[name]


def _smoke() -> StudyConfig:
    # Smoke values: enough to run every code path on a few hundred images.
    budget = SearchBudget(
        max_epochs=2, factor=2, batch_size=64, patience=1,
        trial_time_limit_s=120.0, not_learning_patience=2,
    )
    refit = RefitSettings(max_epochs=2, patience=1, batch_size=64)
    return StudyConfig(
        preset="smoke",
        train_images=400,
        test_images=200,
        cnn_space=CNNSpace(
            conv_blocks=IntRange(1, 2), filter_multipliers=IntRange(1, 1), batch_norm=(True,),
            activations=("relu",), dense_units=IntRange(64, 128, 64),
            optimizers=("adam",), learning_rate=FloatRange(1e-3, 3e-3, log=True),
        ),
        vit_space=ViTSpace(
            patch_sizes=(8,), projection_dims=(32,), heads=(2,),
            transformer_layers=IntRange(1, 1), mlp_depth=IntRange(1, 1), head=ViTHead((64,), 0.5),
            optimizers=("adam", "rmsprop"), learning_rate=FloatRange(1e-3, 3e-3, log=True),
        ),
        cnn=ModelSettings(budget, refit),
        vit=ModelSettings(budget, refit),
        exploration=ExplorationSettings(spectrum_images=4),
    )


def _quick() -> StudyConfig:
    # Quick values, sized for a 2-core CPU. The CNN width (32/64/128 filters)
    # and the ViT patch size are fixed, and a short Hyperband on 4,000 images
    # searches the cheap settings (activation, dense width, dropout, learning
    # rate). The refits use the whole sample, and the test split is complete.
    search = SearchBudget(max_epochs=2, factor=2, batch_size=128, train_images=4_000,
                          patience=2, trial_time_limit_s=60.0, not_learning_patience=2)
    refit = RefitSettings(max_epochs=12, patience=3, batch_size=128)
    return StudyConfig(
        preset="quick",
        train_images=25_000,
        test_images=None,
        cnn_space=CNNSpace(
            conv_blocks=IntRange(3, 3), convs_per_block=(1,), filter_multipliers=IntRange(1, 1),
            batch_norm=(True,), activations=("relu", "elu"),
            dense_units=IntRange(128, 256, 128), dropout=FloatRange(0.2, 0.4, 0.1),
            optimizers=("adam",), learning_rate=FloatRange(1e-3, 3e-3, log=True),
        ),
        vit_space=ViTSpace(
            patch_sizes=(8,), projection_dims=(64,), heads=(4, 8),
            transformer_layers=IntRange(2, 2), mlp_depth=IntRange(1, 2),
            mlp_dropout=FloatRange(0.1, 0.2, 0.1), head=ViTHead((256,), 0.3),
            optimizers=("adam", "rmsprop"), learning_rate=FloatRange(5e-4, 2e-3, log=True),
        ),
        cnn=ModelSettings(search, refit),
        vit=ModelSettings(search, refit),
    )


def _full() -> StudyConfig:
    # The notebook's search spaces and budgets on all the data, with patch
    # sizes cut to those that divide 32, and the usual CIFAR augmentation
    # (flips and shifts of up to 4 pixels) for its longer training.
    return StudyConfig(preset="full",
                       augmentation=AugmentationSettings(flip=True, translate_pixels=4))


_BUILDERS = {"smoke": _smoke, "quick": _quick, "full": _full}


def build_config(preset: str, seed: int | None = None) -> StudyConfig:
    """Return the preset's config, with the seed overridden when given."""
    if preset not in _BUILDERS:
        raise ValueError(
            f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}"
        )
    config = _BUILDERS[preset]()
    if seed is not None:
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        config = dataclasses.replace(config, seed=seed)
    return config


def to_dict(config: StudyConfig) -> dict[str, Any]:
    """Return the config as plain JSON types: tuples become lists, ranges dicts."""
    return json.loads(json.dumps(dataclasses.asdict(config)))
