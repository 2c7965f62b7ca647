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


SCHEDULES = ("constant", "cosine")
OPTIMIZERS = ("adam", "adamw", "sgd", "sgd_nesterov", "rmsprop")
SPACE_NAMES = ("modern", "original")
CNN_POOLINGS = ("flatten", "global_average")
VIT_POOLINGS = ("flatten", "global_average", "class_token")
VIT_STEMS = ("patches", "conv")


@dataclass(frozen=True)
class OptimizerSpace:
    """One optimizer the search may pick, with ranges of its own.

    `learning_rate` is the peak rate of the schedule. `weight_decay` is
    decoupled, as Keras applies it: each step multiplies the weights by
    (1 - learning_rate * weight_decay). `momentum` applies to SGD and
    RMSprop; 'sgd_nesterov' is SGD with Nesterov momentum.
    """

    name: str
    learning_rate: FloatRange
    weight_decay: FloatRange = FloatRange(0.0, 0.0)
    momentum: FloatRange = FloatRange(0.0, 0.0)


@dataclass(frozen=True)
class TrainingSpace:
    """Training choices of a candidate: optimizer, learning-rate schedule, loss.

    'cosine' raises the learning rate linearly over `warmup_fraction` of the
    training epochs, then lowers it to zero along a half cosine. Those
    epochs are Hyperband's `max_epochs` in the search and the refit's
    `max_epochs` in the refit. `label_smoothing` moves that share of each
    one-hot target evenly onto all classes.
    """

    optimizers: tuple[OptimizerSpace, ...] = (
        OptimizerSpace("adam", FloatRange(1e-5, 1e-3, log=True)),
    )
    schedules: tuple[str, ...] = ("constant",)
    warmup_fraction: float = 0.0
    label_smoothing: FloatRange = FloatRange(0.0, 0.0)


# The 2024 notebook's optimizers, at a constant learning rate: Adam or plain
# SGD for the CNN, Adam or RMSprop (momentum 0 to 0.9) for the ViT.
_NOTEBOOK_RATE = FloatRange(1e-5, 1e-3, log=True)
ORIGINAL_CNN_TRAINING = TrainingSpace(optimizers=(
    OptimizerSpace("adam", _NOTEBOOK_RATE), OptimizerSpace("sgd", _NOTEBOOK_RATE),
))
ORIGINAL_VIT_TRAINING = TrainingSpace(optimizers=(
    OptimizerSpace("adam", _NOTEBOOK_RATE),
    OptimizerSpace("rmsprop", _NOTEBOOK_RATE, momentum=FloatRange(0.0, 0.9, 0.1)),
))


@dataclass(frozen=True)
class CNNSpace:
    """Search space of the convolutional network.

    Block i (from 0) has `32 * 2**i * m` filters, m drawn from
    `filter_multipliers`, so the notebook's 32*2^i to 256*2^i in steps of
    32*2^i is m in 1..8. A residual block adds its input (through a 1x1
    convolution when the width changes) to the output of its convolutions.
    'flatten' passes every position of the last block to the dense layers,
    'global_average' their mean. `dense_units` of 0 means no hidden layer.
    """

    # Tuples are choices, and IntRange or FloatRange fields are ranges.
    name: str = "original"
    conv_blocks: IntRange = IntRange(1, 3)
    convs_per_block: tuple[int, ...] = (1,)
    filter_multipliers: IntRange = IntRange(1, 8)
    batch_norm: tuple[bool, ...] = (False, True)
    residual: tuple[bool, ...] = (False,)
    activations: tuple[str, ...] = ("relu", "elu")
    pooling: tuple[str, ...] = ("flatten",)
    dense_units: IntRange = IntRange(512, 2048, 512)
    dropout: FloatRange = FloatRange(0.0, 0.4, 0.1)
    training: TrainingSpace = ORIGINAL_CNN_TRAINING


@dataclass(frozen=True)
class ViTHead:
    """The classifier after the flattened tokens: fixed, not searched."""

    units: tuple[int, ...] = (2048, 1024)  # GELU dense layers, in order
    dropout: float = 0.5  # before and after each dense layer


@dataclass(frozen=True)
class ViTSpace:
    """Search space of the Vision Transformer.

    Patch sizes must divide the image side; the search keeps those that do
    and fails when none does. The 'patches' stem projects each patch with
    one dense layer. The 'conv' stem reaches the same token grid through 3x3
    convolutions of stride 2, one per halving of the side (so the patch size
    must be a power of 2), which gives each token local features to start
    from. 'flatten' reads every token through the fixed `head`;
    'global_average' passes the mean token and 'class_token' a learned extra
    token straight to the softmax. `drop_path` is the stochastic-depth rate
    of the last block, growing linearly from zero over the blocks: the share
    of images for which a block's two residual branches are skipped.
    """

    name: str = "original"
    patch_sizes: tuple[int, ...] = (4, 8, 16)  # pixels per patch side
    stems: tuple[str, ...] = ("patches",)
    projection_dims: tuple[int, ...] = (64, 128)
    heads: tuple[int, ...] = (4, 8)
    transformer_layers: IntRange = IntRange(2, 6, 2)
    mlp_depth: IntRange = IntRange(1, 3)  # hidden layers in each block's MLP
    mlp_ratio: int = 0  # one hidden layer of ratio * projection units; 0 = use mlp_depth
    mlp_dropout: FloatRange = FloatRange(0.1, 0.4, 0.1)
    attention_dropout: float = 0.1
    drop_path: FloatRange = FloatRange(0.0, 0.0)
    pooling: tuple[str, ...] = ("flatten",)
    head: ViTHead = field(default_factory=ViTHead)
    training: TrainingSpace = ORIGINAL_VIT_TRAINING


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
    # Wall-clock minutes for the whole search (--search-budget); when they run
    # out, the running trial is stopped and the best trial so far is refit.
    budget_minutes: float | None = None
    not_learning_min_delta: float = 0.02  # training accuracy gain per epoch
    not_learning_patience: int = 5  # epochs without that gain


@dataclass(frozen=True)
class RefitSettings:
    """Final training of the best configuration."""

    max_epochs: int = 50
    patience: int = 15  # EarlyStopping on val_accuracy, epochs
    batch_size: int = 128
    # Refits of the best configuration, each with its own seed (study seed,
    # seed + 1, ...). Every figure shows the first, and all of them give the
    # mean and standard deviation of the test scores.
    seeds: int = 1


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
class EvaluationSettings:
    # Also score the mean of the probabilities for each test image and its
    # mirror image; reported beside the plain scores, never instead of them.
    flip_tta: bool = True
    # Percentile bootstrap over the test images: resamples and confidence level.
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    calibration_bins: int = 15  # equal-width confidence bins of the reliability diagram
    mistakes_shown: int = 12  # most confident mistakes per model in the gallery
    # Frequency robustness: the test images through Gaussian low- and
    # high-pass filters (study.fourier) at these widths, in cycles per pixel.
    robustness_widths: tuple[float, ...] = (0.02, 0.04, 0.08, 0.16, 0.32)
    robustness_images: int | None = 2_000  # stratified test sample; None = all


@dataclass(frozen=True)
class AcceleratorSettings:
    """Numeric settings that only pay off on a GPU.

    'auto' turns mixed precision (bfloat16 on GPUs that have it, else
    float16 with loss scaling) and XLA compilation on when TensorFlow finds a
    GPU, and off on a CPU.
    """

    mixed_precision: str = "auto"  # auto, on or off
    xla: str = "auto"  # auto, on or off


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
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    accelerator: AcceleratorSettings = field(default_factory=AcceleratorSettings)
    exploration: ExplorationSettings = field(default_factory=ExplorationSettings)

    def model_settings(self, name: str) -> ModelSettings:
        return {"cnn": self.cnn, "vit": self.vit}[name]


# ---- Search spaces per preset: 'modern' (the default) and 'original' -------------


def _adamw(rate: FloatRange, decay: FloatRange) -> OptimizerSpace:
    return OptimizerSpace("adamw", rate, weight_decay=decay)


def _modern_training(optimizers: tuple[OptimizerSpace, ...], smoothing: FloatRange,
                     warmup: float) -> TrainingSpace:
    return TrainingSpace(optimizers=optimizers, schedules=("cosine",),
                         warmup_fraction=warmup, label_smoothing=smoothing)


def _smoke_spaces() -> dict:
    rate = FloatRange(1e-3, 3e-3, log=True)
    adam = TrainingSpace(optimizers=(OptimizerSpace("adam", rate),))
    modern = _modern_training((_adamw(rate, FloatRange(0.05, 0.05)),),
                              FloatRange(0.0, 0.1, 0.1), 0.1)
    return {
        "cnn": {
            "original": CNNSpace(
                conv_blocks=IntRange(1, 2), filter_multipliers=IntRange(1, 1),
                batch_norm=(True,), activations=("relu",), dense_units=IntRange(64, 128, 64),
                training=adam,
            ),
            "modern": CNNSpace(
                name="modern", conv_blocks=IntRange(1, 2), convs_per_block=(2,),
                filter_multipliers=IntRange(1, 1), batch_norm=(True,), residual=(True,),
                activations=("relu",), pooling=("global_average",),
                dense_units=IntRange(0, 0), dropout=FloatRange(0.0, 0.0), training=modern,
            ),
        },
        "vit": {
            "original": ViTSpace(
                patch_sizes=(8,), projection_dims=(32,), heads=(2,),
                transformer_layers=IntRange(1, 1), mlp_depth=IntRange(1, 1),
                head=ViTHead((64,), 0.5),
                training=TrainingSpace(optimizers=(
                    OptimizerSpace("adam", rate),
                    OptimizerSpace("rmsprop", rate, momentum=FloatRange(0.0, 0.9, 0.1)),
                )),
            ),
            "modern": ViTSpace(
                name="modern", patch_sizes=(8,), stems=("patches", "conv"),
                projection_dims=(32,), heads=(2,), transformer_layers=IntRange(2, 2),
                mlp_depth=IntRange(1, 1), mlp_ratio=2, mlp_dropout=FloatRange(0.0, 0.0),
                attention_dropout=0.0, drop_path=FloatRange(0.1, 0.1),
                pooling=("global_average", "class_token"), head=ViTHead((), 0.0),
                training=modern,
            ),
        },
    }


def _quick_spaces() -> dict:
    # Sized for a 2-core CPU: widths and depths are fixed, and the short
    # search varies the cheap settings. In 12-epoch trial refits on this
    # preset's sample, flattening the CNN's last block reached 0.733 test
    # accuracy and global average pooling 0.690, so the quick CNN flattens.
    # The ViT's convolutional stem with 4-pixel patches reached 0.59 to 0.62,
    # and dense-projected 4-pixel patches 0.49 in twice the time.
    modern_cnn = _modern_training(
        (_adamw(FloatRange(1e-3, 4e-3, log=True), FloatRange(0.05, 0.05)),),
        FloatRange(0.0, 0.1, 0.1), 0.1)
    modern_vit = _modern_training(
        (_adamw(FloatRange(1e-3, 3e-3, log=True), FloatRange(0.05, 0.05)),),
        FloatRange(0.0, 0.1, 0.1), 0.1)
    return {
        "cnn": {
            "original": CNNSpace(
                conv_blocks=IntRange(3, 3), convs_per_block=(1,),
                filter_multipliers=IntRange(1, 1), batch_norm=(True,),
                activations=("relu", "elu"), dense_units=IntRange(128, 256, 128),
                dropout=FloatRange(0.2, 0.4, 0.1),
                training=TrainingSpace(optimizers=(
                    OptimizerSpace("adam", FloatRange(1e-3, 3e-3, log=True)),)),
            ),
            "modern": CNNSpace(
                name="modern", conv_blocks=IntRange(3, 3), convs_per_block=(1,),
                filter_multipliers=IntRange(1, 1), batch_norm=(True,), residual=(False,),
                activations=("relu",), pooling=("flatten",),
                dense_units=IntRange(0, 0), dropout=FloatRange(0.0, 0.2, 0.1),
                training=modern_cnn,
            ),
        },
        "vit": {
            "original": ViTSpace(
                patch_sizes=(8,), projection_dims=(64,), heads=(4, 8),
                transformer_layers=IntRange(2, 2), mlp_depth=IntRange(1, 2),
                mlp_dropout=FloatRange(0.1, 0.2, 0.1), head=ViTHead((256,), 0.3),
                training=TrainingSpace(optimizers=(
                    OptimizerSpace("adam", FloatRange(5e-4, 2e-3, log=True)),
                    OptimizerSpace("rmsprop", FloatRange(5e-4, 2e-3, log=True),
                                   momentum=FloatRange(0.0, 0.9, 0.1)),
                )),
            ),
            "modern": ViTSpace(
                name="modern", patch_sizes=(4,), stems=("conv",), projection_dims=(64,),
                heads=(4,), transformer_layers=IntRange(2, 2), mlp_depth=IntRange(1, 1),
                mlp_ratio=2, mlp_dropout=FloatRange(0.0, 0.0), attention_dropout=0.0,
                drop_path=FloatRange(0.0, 0.1, 0.1), pooling=("global_average",),
                head=ViTHead((), 0.0), training=modern_vit,
            ),
        },
    }


def _full_spaces() -> dict:
    # Modern: ResNet-style CNNs and small-patch ViTs trained with AdamW or
    # Nesterov SGD, warm-up and cosine decay, and label smoothing. Original:
    # the notebook's spaces, with patch sizes cut to those that divide 32.
    cnn_training = _modern_training(
        (_adamw(FloatRange(5e-4, 5e-3, log=True), FloatRange(0.01, 0.1, log=True)),
         OptimizerSpace("sgd_nesterov", FloatRange(0.02, 0.2, log=True),
                        weight_decay=FloatRange(5e-4, 5e-3, log=True),
                        momentum=FloatRange(0.9, 0.9))),
        FloatRange(0.0, 0.2, 0.1), 0.05)
    vit_training = _modern_training(
        (_adamw(FloatRange(3e-4, 3e-3, log=True), FloatRange(0.02, 0.1, log=True)),),
        FloatRange(0.0, 0.2, 0.1), 0.1)
    return {
        "cnn": {
            "original": CNNSpace(),
            "modern": CNNSpace(
                name="modern", conv_blocks=IntRange(3, 3), convs_per_block=(2,),
                filter_multipliers=IntRange(1, 4), batch_norm=(True,), residual=(False, True),
                activations=("relu",), pooling=("global_average",),
                dense_units=IntRange(0, 0), dropout=FloatRange(0.0, 0.3, 0.1),
                training=cnn_training,
            ),
        },
        "vit": {
            "original": ViTSpace(),
            "modern": ViTSpace(
                name="modern", patch_sizes=(2, 4), stems=("patches", "conv"),
                projection_dims=(128, 192), heads=(4, 8), transformer_layers=IntRange(4, 6, 2),
                mlp_depth=IntRange(1, 1), mlp_ratio=2, mlp_dropout=FloatRange(0.0, 0.2, 0.1),
                attention_dropout=0.0, drop_path=FloatRange(0.0, 0.2, 0.1),
                pooling=("global_average", "class_token"), head=ViTHead((), 0.0),
                training=vit_training,
            ),
        },
    }


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
        cnn=ModelSettings(budget, refit),
        vit=ModelSettings(budget, refit),
        evaluation=EvaluationSettings(bootstrap_resamples=200, mistakes_shown=6,
                                      robustness_images=None),
        exploration=ExplorationSettings(spectrum_images=4),
    )


def _quick() -> StudyConfig:
    # Quick values, sized for a 2-core CPU: a short Hyperband on 4,000
    # images, then three refits (seeds) per model on the whole 25,000-image
    # sample; the test split is complete. Six refit epochs keep the six
    # refits near ten minutes (docs/benchmarks.md): with seven, the whole
    # study took 867 s, too close to its 15-minute bar.
    search = SearchBudget(max_epochs=2, factor=2, batch_size=128, train_images=4_000,
                          patience=2, trial_time_limit_s=60.0, not_learning_patience=2)
    refit = RefitSettings(max_epochs=6, patience=4, batch_size=128, seeds=3)
    return StudyConfig(
        preset="quick",
        train_images=25_000,
        test_images=None,
        cnn=ModelSettings(search, refit),
        vit=ModelSettings(search, refit),
    )


def _full() -> StudyConfig:
    # All the data, with the usual CIFAR augmentation (flips and shifts of up
    # to 4 pixels). The budgets aim at about an hour on one H200-class GPU,
    # an estimate from image counts (benchmarks/budget.py), not a timing.
    # Each search is 30 Hyperband trials (at most 226 epochs) on 20,000
    # images, where the notebook ran 90 and 180 trials on all of them. The
    # refits use every image. Their patience is a third of their epochs, so
    # a cosine schedule reaches its low rates before a stop.
    search = SearchBudget(max_epochs=20, factor=3, iterations=1, batch_size=256,
                          train_images=20_000, patience=5)
    return StudyConfig(
        preset="full",
        augmentation=AugmentationSettings(flip=True, translate_pixels=4),
        cnn=ModelSettings(search, RefitSettings(max_epochs=60, patience=20, batch_size=256,
                                                seeds=5)),
        vit=ModelSettings(search, RefitSettings(max_epochs=100, patience=34, batch_size=256,
                                                seeds=5)),
        evaluation=EvaluationSettings(bootstrap_resamples=2000, robustness_images=None),
    )


_BUILDERS = {"smoke": (_smoke, _smoke_spaces), "quick": (_quick, _quick_spaces),
             "full": (_full, _full_spaces)}


def build_config(preset: str, seed: int | None = None, *, cnn_space: str = "modern",
                 vit_space: str = "modern") -> StudyConfig:
    """Return the preset's config with the named search spaces, and the seed when given."""
    if preset not in _BUILDERS:
        raise ValueError(
            f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}"
        )
    for model, name in (("CNN", cnn_space), ("ViT", vit_space)):
        if name not in SPACE_NAMES:
            raise ValueError(f"unknown {model} search space {name!r}: choose one of "
                             f"{', '.join(SPACE_NAMES)}")
    build, spaces = _BUILDERS[preset]
    spaces = spaces()
    config = dataclasses.replace(build(), cnn_space=spaces["cnn"][cnn_space],
                                 vit_space=spaces["vit"][vit_space])
    if seed is not None:
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        config = dataclasses.replace(config, seed=seed)
    return config


def to_dict(config: StudyConfig) -> dict[str, Any]:
    """Return the config as plain JSON types: tuples become lists, ranges dicts."""
    return json.loads(json.dumps(dataclasses.asdict(config)))
