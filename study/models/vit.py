"""The Vision Transformer's hypermodel: a search space -> keras.Model.

Patches -> dense projection + learned position embedding -> pre-norm
transformer blocks (LayerNorm, multi-head self-attention, residual;
LayerNorm, GELU MLP with dropout, residual) -> LayerNorm -> flatten ->
dropout -> MLP head -> softmax.
"""

from __future__ import annotations

import keras
import keras_tuner as kt
from keras import layers

from study.config import ViTSpace
from study.models.layers import PatchEncoder, Patches
from study.models.optimizers import float_hp, int_hp, make_optimizer


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


def _mlp(x, units: list[int], dropout: float):
    for width in units:
        x = layers.Dense(width, activation="gelu")(x)
        x = layers.Dropout(dropout)(x)
    return x


class ViTHyperModel(kt.HyperModel):
    """Build a ViT from hyperparameters drawn within `space`.

    Args:
        space: the search space.
        input_shape: (H, W, C) of one image; H must equal W.
        num_classes: width of the softmax.
    """

    def __init__(self, space: ViTSpace, input_shape: tuple[int, int, int],
                 num_classes: int, **kwargs):
        super().__init__(**kwargs)
        if input_shape[0] != input_shape[1]:
            raise ValueError(f"the ViT needs square images, got {input_shape[:2]}")
        self.space = space
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.patch_sizes = valid_patch_sizes(space.patch_sizes, input_shape[0])

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        space = self.space
        patch = hp.Choice("patch_size", self.patch_sizes)
        dim = hp.Choice("projection_dim", list(space.projection_dims))
        heads = hp.Choice("num_heads", list(space.heads))
        depth = int_hp(hp, "transformer_layers", space.transformer_layers)
        mlp_depth = int_hp(hp, "mlp_depth", space.mlp_depth)
        dropout = float_hp(hp, "mlp_dropout", space.mlp_dropout)
        # Units halve layer by layer and end at the projection size, which the
        # residual connection needs: depth 3 at dim 64 gives 256, 128, 64.
        mlp_units = [dim * 2 ** (mlp_depth - 1 - i) for i in range(mlp_depth)]

        inputs = keras.Input(self.input_shape)
        num_patches = (self.input_shape[0] // patch) ** 2
        tokens = PatchEncoder(num_patches, dim)(Patches(patch)(inputs))
        for _ in range(depth):
            normed = layers.LayerNormalization(epsilon=1e-6)(tokens)
            attended = layers.MultiHeadAttention(heads, key_dim=dim // heads, dropout=0.1)(
                normed, normed
            )
            tokens = layers.Add()([attended, tokens])
            transformed = _mlp(layers.LayerNormalization(epsilon=1e-6)(tokens), mlp_units, dropout)
            tokens = layers.Add()([transformed, tokens])

        x = layers.LayerNormalization(epsilon=1e-6)(tokens)
        x = layers.Flatten()(x)
        x = layers.Dropout(space.head.dropout)(x)
        x = _mlp(x, list(space.head.units), space.head.dropout)
        outputs = layers.Dense(self.num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs, name="vit")

        optimizer_name = hp.Choice("optimizer", list(space.optimizers))
        momentum = 0.0
        if optimizer_name == "rmsprop":
            with hp.conditional_scope("optimizer", ["rmsprop"]):
                momentum = float_hp(hp, "momentum", space.momentum)
        optimizer = make_optimizer(
            optimizer_name,
            float_hp(hp, "learning_rate", space.learning_rate),
            momentum,
        )
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model
