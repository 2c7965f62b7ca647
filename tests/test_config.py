import pytest

from study.config import PRESETS, FloatRange, IntRange, build_config, to_dict


def test_presets_build():
    for preset in PRESETS:
        assert build_config(preset).preset == preset


def test_unknown_preset_named():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        build_config("huge")


def test_negative_seed_rejected():
    with pytest.raises(ValueError, match="got -1"):
        build_config("quick", seed=-1)


def test_quick_uses_whole_test_split():
    assert build_config("quick").test_images is None


def test_full_covers_original_spaces():
    config = build_config("full")
    assert config.cnn_space.conv_blocks == IntRange(1, 3)
    assert config.cnn_space.filter_multipliers == IntRange(1, 8)
    assert config.cnn_space.dense_units == IntRange(512, 2048, 512)
    assert config.cnn_space.learning_rate == FloatRange(1e-5, 1e-3, log=True)
    assert set(config.cnn_space.optimizers) == {"adam", "sgd"}
    assert set(config.vit_space.optimizers) == {"adam", "rmsprop"}
    assert config.vit_space.transformer_layers == IntRange(2, 6, 2)
    assert config.cnn.search.max_epochs == 30
    assert config.vit.search.iterations == 2
    assert config.train_images is None
    assert config.test_images is None


def test_config_dict_is_plain():
    as_dict = to_dict(build_config("smoke", seed=7))
    assert as_dict["seed"] == 7
    assert as_dict["cnn"]["search"]["max_epochs"] == 2
    # Ranges serialize with named bounds, choices as lists.
    assert as_dict["cnn_space"]["conv_blocks"] == {"min": 1, "max": 2, "step": 1}
    assert as_dict["cnn_space"]["activations"] == ["relu"]


def test_results_nan_written_as_null(tmp_path):
    from study.results import read_results, write_results

    write_results(tmp_path / "results.json", {"auc": {"cat": float("nan"), "dog": 0.5}})
    assert read_results(tmp_path / "results.json") == {"auc": {"cat": None, "dog": 0.5}}
