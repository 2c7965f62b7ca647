import keras
import keras_tuner as kt
import numpy as np
import pytest

from study.config import build_config
from study.models.cnn import CNNHyperModel
from study.models.layers import Patches
from study.models.optimizers import make_optimizer
from study.models.vit import ViTHyperModel, valid_patch_sizes


def test_rmsprop_builds_rmsprop():
    optimizer = make_optimizer("rmsprop", 1e-3, momentum=0.5)
    assert isinstance(optimizer, keras.optimizers.RMSprop)
    assert optimizer.momentum == 0.5


def test_unknown_optimizer_named():
    with pytest.raises(ValueError, match="'adamw'"):
        make_optimizer("adamw", 1e-3)


def test_patches_layout():
    # A 4x4 one-channel image cut into 2x2 patches gives 4 patches of 4 values;
    # the first patch is the top-left corner 0, 1, 4, 5.
    image = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    patches = keras.ops.convert_to_numpy(Patches(2)(image))
    assert patches.shape == (1, 4, 4)
    assert patches[0, 0].tolist() == [0, 1, 4, 5]
    assert patches[0, 3].tolist() == [10, 11, 14, 15]


def test_patch_size_must_divide():
    with pytest.raises(ValueError, match="does not divide the image side 32"):
        Patches(10).build((None, 32, 32, 3))
    assert valid_patch_sizes([8, 10, 12, 14, 16], 32) == [8, 16]
    with pytest.raises(ValueError, match="none of the patch sizes"):
        valid_patch_sizes([10, 12], 32)


def test_cnn_filters_follow_block_index():
    config = build_config("full")
    hp = kt.HyperParameters()
    hp.Fixed("conv_blocks", 3)
    model = CNNHyperModel(config.cnn_space, (32, 32, 3), 10).build(hp)
    # Block i draws from 32*2^i .. 256*2^i in steps of 32*2^i.
    for i in range(3):
        spec = hp.get_config()["space"]
        entry = next(s["config"] for s in spec if s["config"]["name"] == f"filters_{i}")
        assert (entry["min_value"], entry["max_value"], entry["step"]) == (
            32 * 2**i, 256 * 2**i, 32 * 2**i)
    assert model.output_shape == (None, 10)


def test_vit_saves_and_reloads(tmp_path):
    config = build_config("smoke")
    model = ViTHyperModel(config.vit_space, (32, 32, 3), 3).build(kt.HyperParameters())
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    path = tmp_path / "vit.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-5)
