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
    with pytest.raises(ValueError, match="'adagrad'"):
        make_optimizer("adagrad", 1e-3)


def test_weight_decay_and_nesterov_reach_the_optimizer():
    adamw = make_optimizer("adamw", 1e-3, weight_decay=0.05)
    assert isinstance(adamw, keras.optimizers.AdamW)
    assert adamw.weight_decay == 0.05
    sgd = make_optimizer("sgd_nesterov", 0.1, momentum=0.9, weight_decay=5e-4)
    assert sgd.nesterov
    assert sgd.momentum == 0.9
    assert sgd.weight_decay == 5e-4
    assert make_optimizer("sgd", 0.1).nesterov is False


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
    config = build_config("full", cnn_space="original")
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


def _assert_reloads_same(model, tmp_path):
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    path = tmp_path / "vit.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0),
                               model.predict(images, verbose=0), rtol=1e-5)


def test_vit_saves_and_reloads(tmp_path):
    config = build_config("smoke")
    model = ViTHyperModel(config.vit_space, (32, 32, 3), 3).build(kt.HyperParameters())
    _assert_reloads_same(model, tmp_path)


# ---- Schedules, loss, modern architectures -------------------------------------


def test_cosine_schedule_by_hand():
    from study.models.optimizers import scheduled_rate

    # 10 epochs, 1 of warm-up: 0 -> peak linearly, then a half cosine to 0.
    assert scheduled_rate(0.25, 2.0, 10, "cosine", 0.1) == pytest.approx(0.5)
    assert scheduled_rate(1.0, 2.0, 10, "cosine", 0.1) == pytest.approx(2.0)
    assert scheduled_rate(5.5, 2.0, 10, "cosine", 0.1) == pytest.approx(1.0)
    assert scheduled_rate(10.0, 2.0, 10, "cosine", 0.1) == pytest.approx(0.0)
    assert scheduled_rate(3.0, 2.0, 10, "cosine", 0.0) == pytest.approx(
        1.0 + np.cos(np.pi * 0.3))
    assert scheduled_rate(7.0, 2.0, 10, "constant") == 2.0
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        scheduled_rate(1.0, 1.0, 10, "step")


def test_learning_rate_curve_sets_each_batch():
    from study.models.optimizers import LearningRateCurve, scheduled_rate

    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1.0), "mse")
    x = np.zeros((4, 2), "float32")
    # Two steps per epoch, two epochs: the middles of the steps are 0.25 ... 1.75 epochs.
    model.fit(x, x[:, :1], batch_size=2, epochs=2, verbose=0, shuffle=False,
              callbacks=[LearningRateCurve(1.0, 2, "cosine", 0.5), Record()])
    expected = [scheduled_rate(p, 1.0, 2, "cosine", 0.5) for p in (0.25, 0.75, 1.25, 1.75)]
    assert seen == pytest.approx(expected)
    assert expected[:2] == pytest.approx([0.25, 0.75])


def test_label_smoothing_loss_by_hand():
    from study.models.optimizers import SmoothedSparseCrossentropy

    # Two classes, smoothing 0.2: target [0.9, 0.1] for label 0.
    loss = SmoothedSparseCrossentropy(0.2)
    value = loss(np.array([0]), np.array([[0.8, 0.2]], "float32"))
    assert float(value) == pytest.approx(-(0.9 * np.log(0.8) + 0.1 * np.log(0.2)), rel=1e-5)
    plain = SmoothedSparseCrossentropy(0.0)(np.array([1]), np.array([[0.8, 0.2]], "float32"))
    assert float(plain) == pytest.approx(-np.log(0.2), rel=1e-5)


def _fixed(values: dict) -> kt.HyperParameters:
    hp = kt.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def test_modern_cnn_has_residual_blocks_and_average_pooling():
    space = build_config("full").cnn_space
    hp = _fixed({"residual": True, "filters_0": 32, "filters_1": 64, "filters_2": 128})
    model = CNNHyperModel(space, (32, 32, 3), 10).build(hp)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Add") == 3  # one shortcut per block
    assert "GlobalAveragePooling2D" in kinds
    assert "Flatten" not in kinds
    assert kinds.count("Dense") == 1  # dense_units 0: straight to the softmax
    assert hp.values["optimizer"] in ("adamw", "sgd_nesterov")
    assert hp.values["schedule"] == "cosine"


def test_conditional_optimizer_ranges():
    space = build_config("full").cnn_space
    for name, low in (("adamw", 5e-4), ("sgd_nesterov", 0.02)):
        hp = _fixed({"optimizer": name})
        CNNHyperModel(space, (32, 32, 3), 10).build(hp)
        # Each optimizer's learning rate is drawn from its own range.
        entries = [s["config"] for s in hp.get_config()["space"]
                   if s["config"]["name"] == "learning_rate"]
        assert low in [entry["min_value"] for entry in entries]
        assert hp.values["learning_rate"] >= low


@pytest.mark.parametrize("stem,pooling,tokens", [
    ("conv", "global_average", 64), ("patches", "class_token", 65),
])
def test_modern_vit_variants_save_and_reload(tmp_path, stem, pooling, tokens):
    space = build_config("full").vit_space
    hp = _fixed({"stem": stem, "patch_size": 4, "projection_dim": 128, "num_heads": 4,
                 "transformer_layers": 4, "pooling": pooling, "drop_path": 0.1})
    model = ViTHyperModel(space, (32, 32, 3), 10).build(hp)
    positions = next(layer for layer in model.layers if type(layer).__name__ == "TokenPositions")
    assert tuple(positions.positions.shape) == (tokens, 128)
    drops = [layer for layer in model.layers
             if isinstance(layer, keras.layers.Dropout) and layer.noise_shape]
    assert len(drops) == 8  # two residual branches per block
    _assert_reloads_same(model, tmp_path)


def test_stochastic_depth_skips_whole_branches():
    drop = keras.layers.Dropout(0.5, noise_shape=(None, 1, 1), seed=1)
    out = keras.ops.convert_to_numpy(drop(np.ones((64, 3, 4), "float32"), training=True))
    per_image = out.reshape(64, -1)
    # Each image's branch is all zeros or all 2 (kept and scaled by 1 / (1 - 0.5)).
    assert set(np.unique(per_image)) <= {0.0, 2.0}
    assert all(len(np.unique(row)) == 1 for row in per_image)


def test_conv_stem_needs_powers_of_two():
    from dataclasses import replace

    space = replace(build_config("full").vit_space, patch_sizes=(16, 32), stems=("conv",))
    ViTHyperModel(space, (32, 32, 3), 10)
    with pytest.raises(ValueError, match="powers of 2"):
        ViTHyperModel(replace(space, patch_sizes=(6,)), (18, 18, 3), 10)
    # A size that only the dense stem could use is rejected too: the two are drawn apart.
    with pytest.raises(ValueError, match=r"powers of 2, such as 2, 4 or 8; got \[2, 6\]"):
        ViTHyperModel(replace(space, patch_sizes=(2, 6), stems=("patches", "conv")),
                      (12, 12, 3), 10)


def test_both_stems_train_under_the_tuner(tmp_path):
    from dataclasses import replace

    # keras-tuner draws every hyperparameter itself; each stem must build and train.
    space = replace(build_config("smoke").vit_space, patch_sizes=(4,),
                    stems=("patches", "conv"), pooling=("global_average", "class_token"))
    hypermodel = ViTHyperModel(space, (8, 8, 3), 3)
    tuner = kt.RandomSearch(hypermodel, objective="val_accuracy", directory=str(tmp_path),
                            project_name="stems", max_trials=6, seed=3)
    rng = np.random.default_rng(0)
    x = rng.random((12, 8, 8, 3)).astype("float32")
    y = np.arange(12) % 3
    tuner.search(x, y, validation_data=(x, y), epochs=1, batch_size=6, verbose=0,
                 schedule_epochs=1)
    trials = list(tuner.oracle.trials.values())
    assert {t.hyperparameters.values["stem"] for t in trials} == {"patches", "conv"}
    assert all(t.status == "COMPLETED" for t in trials), [t.status for t in trials]


def test_dtype_policy_survives_clear_session():
    previous = keras.mixed_precision.global_policy()
    try:
        for hypermodel in (
                CNNHyperModel(build_config("smoke").cnn_space, (16, 16, 3), 3,
                              dtype_policy="mixed_bfloat16"),
                ViTHyperModel(build_config("smoke").vit_space, (16, 16, 3), 3,
                              dtype_policy="mixed_bfloat16")):
            # keras-tuner calls clear_session before each trial, which resets the policy.
            keras.backend.clear_session()
            model = hypermodel.build(kt.HyperParameters())
            assert model.layers[1].compute_dtype == "bfloat16"
            assert model.output.dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy(previous)


def test_accelerator_choice():
    from study.accelerator import choose
    from study.config import AcceleratorSettings

    assert choose(AcceleratorSettings(), []) == {"policy": "float32", "xla": False}
    assert choose(AcceleratorSettings(), [(9, 0)]) == {"policy": "mixed_bfloat16", "xla": True}
    assert choose(AcceleratorSettings(), [(7, 5)])["policy"] == "mixed_float16"
    assert choose(AcceleratorSettings("off", "off"), [(9, 0)]) == {"policy": "float32",
                                                                   "xla": False}
    assert choose(AcceleratorSettings("on", "on"), []) == {"policy": "mixed_bfloat16",
                                                           "xla": True}
    with pytest.raises(ValueError, match="accelerator.xla must be one of auto, on, off"):
        choose(AcceleratorSettings(xla="yes"), [])


def test_scheduled_fit_needs_its_length():
    hypermodel = CNNHyperModel(build_config("smoke").cnn_space, (16, 16, 3), 3)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    with pytest.raises(ValueError, match="schedule_epochs"):
        hypermodel.fit(hp, model, np.zeros((2, 16, 16, 3)), np.zeros(2), epochs=1, verbose=0)
