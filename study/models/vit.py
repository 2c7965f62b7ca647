"""The Vision Transformer's hypermodel: a search space -> keras.Model.

Tokens from a stem (patches + dense projection, or strided 3x3
convolutions), a learned position embedding and an optional class token ->
pre-norm transformer blocks (LayerNorm, multi-head self-attention, residual;
LayerNorm, GELU MLP with dropout, residual; both branches optionally dropped
per image, which is stochastic depth) -> LayerNorm -> a readout (flatten +
MLP head, the mean token, or the class token) -> softmax.
"""

from __future__ import annotations

import math

import keras
import keras_tuner as kt
from keras import layers

from study.config import VIT_POOLINGS as POOLINGS
from study.config import VIT_STEMS as STEMS
from study.config import ViTSpace
from study.models.cnn import batch_normalization
from study.models.layers import ClassToken, Patches, TokenPositions
from study.models.optimizers import StudyHyperModel, compile_model, float_hp, int_hp


def valid_patch_sizes(candidates, image_side: int) -> list[int]:
    """Keep the candidate patch sizes that divide the image side."""
    sizes = sorted({p for p in candidates if p > 0 and image_side % p == 0})
    if not sizes:
        raise ValueError(
            f"none of the patch sizes {list(candidates)} divides the image side "
            f"{image_side}; use divisors such as "
            f"{[d for d in range(2, image_side + 1) if image_side % d == 0]}"
        )
    return sizes


def _check_names(kind: str, chosen, known) -> None:
    for value in chosen:
        if value not in known:
            raise ValueError(f"unknown ViT {kind} {value!r}: choose one of {', '.join(known)}")


def _mlp(x, units: list[int], dropout: float):
    for width in units:
        x = layers.Dense(width, activation="gelu")(x)
        x = layers.Dropout(dropout)(x)
    return x


def _conv_stem(images, patch: int, dim: int):
    # One stride-2 3x3 convolution per halving; widths double up to `dim`.
    halvings = int(math.log2(patch))
    x = images
    for i in range(halvings):
        last = i == halvings - 1
        x = layers.Conv2D(dim // 2 ** (halvings - 1 - i), 3, strides=2, padding="same",
                          use_bias=last)(x)
        if not last:
            x = batch_normalization()(x)
            x = layers.Activation("gelu")(x)
    return layers.Reshape((x.shape[1] * x.shape[2], dim))(x)


def _drop_path(branch, rate: float):
    # Dropout with one mask value per image: the whole branch is skipped for
    # that image, and kept branches are scaled by 1 / (1 - rate).
    if not rate:
        return branch
    return layers.Dropout(rate, noise_shape=(None, 1, 1))(branch)


class ViTHyperModel(StudyHyperModel):
    """Build a ViT from hyperparameters drawn within `space`.

    Args:
        space: the search space.
        input_shape: (H, W, C) of one image; H must equal W.
        num_classes: width of the softmax.
        jit_compile: passed to `Model.compile` (True, False or 'auto').
        dtype_policy: Keras dtype policy set before each build, e.g. 'mixed_bfloat16'.
    """

    def __init__(self, space: ViTSpace, input_shape: tuple[int, int, int],
                 num_classes: int, jit_compile: bool | str = "auto",
                 dtype_policy: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if input_shape[0] != input_shape[1]:
            raise ValueError(f"the ViT needs square images, got {input_shape[:2]}")
        _check_names("stem", space.stems, STEMS)
        _check_names("pooling", space.pooling, POOLINGS)
        self.space = space
        self.training_space = space.training
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.jit_compile = jit_compile
        self.dtype_policy = dtype_policy
        self.patch_sizes = valid_patch_sizes(space.patch_sizes, input_shape[0])
        # Every patch size must suit every stem, because keras-tuner draws the
        # two independently.
        if "conv" in space.stems and not all(p > 1 and p & (p - 1) == 0
                                             for p in self.patch_sizes):
            raise ValueError(f"the 'conv' stem needs patch sizes that are powers of 2, "
                             f"such as 2, 4 or 8; got {self.patch_sizes}")

    def build_model(self, hp: kt.HyperParameters) -> keras.Model:
        space = self.space
        stem = hp.Choice("stem", list(space.stems))
        patch = hp.Choice("patch_size", self.patch_sizes)
        dim = hp.Choice("projection_dim", list(space.projection_dims))
        heads = hp.Choice("num_heads", list(space.heads))
        depth = int_hp(hp, "transformer_layers", space.transformer_layers)
        if space.mlp_ratio:
            mlp_units = [dim * space.mlp_ratio]
        else:
            # Units halve layer by layer and end at the projection size, which
            # the residual connection needs: depth 3 at dim 64 gives 256, 128, 64.
            mlp_depth = int_hp(hp, "mlp_depth", space.mlp_depth)
            mlp_units = [dim * 2 ** (mlp_depth - 1 - i) for i in range(mlp_depth)]
        dropout = float_hp(hp, "mlp_dropout", space.mlp_dropout)
        drop_path = float_hp(hp, "drop_path", space.drop_path) if space.drop_path.max else 0.0
        pooling = hp.Choice("pooling", list(space.pooling))

        inputs = keras.Input(self.input_shape)
        if stem == "conv":
            tokens = _conv_stem(inputs, patch, dim)
        else:
            tokens = layers.Dense(dim)(Patches(patch)(inputs))
        if pooling == "class_token":
            tokens = ClassToken()(tokens)
        tokens = TokenPositions()(tokens)
        for i in range(depth):
            rate = drop_path * (i + 1) / depth
            normed = layers.LayerNormalization(epsilon=1e-6)(tokens)
            attended = layers.MultiHeadAttention(heads, key_dim=dim // heads,
                                                 dropout=space.attention_dropout)(normed, normed)
            tokens = layers.Add()([_drop_path(attended, rate), tokens])
            transformed = _mlp(layers.LayerNormalization(epsilon=1e-6)(tokens), mlp_units, dropout)
            if space.mlp_ratio:  # back to the projection size for the residual
                transformed = layers.Dropout(dropout)(layers.Dense(dim)(transformed))
            tokens = layers.Add()([_drop_path(transformed, rate), tokens])

        x = layers.LayerNormalization(epsilon=1e-6)(tokens)
        if pooling == "flatten":
            x = layers.Flatten()(x)
        elif pooling == "global_average":
            x = layers.GlobalAveragePooling1D()(x)
        else:
            x = x[:, 0]
        if pooling == "flatten":  # the head reads the flattened tokens only
            x = layers.Dropout(space.head.dropout)(x)
            x = _mlp(x, list(space.head.units), space.head.dropout)
        # float32 probabilities even under a mixed-precision policy.
        outputs = layers.Dense(self.num_classes, activation="softmax", dtype="float32")(x)
        model = keras.Model(inputs, outputs, name="vit")
        compile_model(model, self.training_choice(hp), self.jit_compile)
        return model
