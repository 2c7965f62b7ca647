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


def test_full_original_spaces_are_the_notebooks():
    config = build_config("full", cnn_space="original", vit_space="original")
    assert config.cnn_space.name == config.vit_space.name == "original"
    assert config.cnn_space.conv_blocks == IntRange(1, 3)
    assert config.cnn_space.filter_multipliers == IntRange(1, 8)
    assert config.cnn_space.dense_units == IntRange(512, 2048, 512)
    assert config.cnn_space.pooling == ("flatten",)
    cnn_optimizers = config.cnn_space.training.optimizers
    assert {o.name for o in cnn_optimizers} == {"adam", "sgd"}
    assert {o.learning_rate for o in cnn_optimizers} == {FloatRange(1e-5, 1e-3, log=True)}
    assert config.cnn_space.training.schedules == ("constant",)
    assert {o.name for o in config.vit_space.training.optimizers} == {"adam", "rmsprop"}
    assert config.vit_space.transformer_layers == IntRange(2, 6, 2)
    assert config.vit_space.stems == ("patches",)
    assert config.train_images is None
    assert config.test_images is None


def test_modern_spaces_are_the_default():
    for preset in PRESETS:
        config = build_config(preset)
        assert config.cnn_space.name == config.vit_space.name == "modern"
        assert "adamw" in {o.name for o in config.cnn_space.training.optimizers}
        assert config.vit_space.training.schedules == ("cosine",)
    full = build_config("full")
    assert full.cnn_space.residual == (False, True)
    assert {o.name for o in full.cnn_space.training.optimizers} == {"adamw", "sgd_nesterov"}
    assert set(full.vit_space.patch_sizes) == {2, 4}
    assert set(full.vit_space.pooling) == {"global_average", "class_token"}


def test_unknown_space_named():
    with pytest.raises(ValueError, match="unknown ViT search space 'tiny'"):
        build_config("quick", vit_space="tiny")


def test_config_dict_is_plain():
    as_dict = to_dict(build_config("smoke", seed=7, cnn_space="original"))
    assert as_dict["seed"] == 7
    assert as_dict["cnn"]["search"]["max_epochs"] == 2
    # Ranges serialize with named bounds, choices as lists.
    assert as_dict["cnn_space"]["conv_blocks"] == {"min": 1, "max": 2, "step": 1}
    assert as_dict["cnn_space"]["activations"] == ["relu"]


def test_results_nan_written_as_null(tmp_path):
    from study.results import read_results, write_results

    write_results(tmp_path / "results.json", {"auc": {"cat": float("nan"), "dog": 0.5}})
    assert read_results(tmp_path / "results.json") == {"auc": {"cat": None, "dog": 0.5}}


def test_full_search_budget_fits_the_hour_plan():
    from study.search import hyperband_epoch_count, hyperband_trial_count

    config = build_config("full")
    for name in ("cnn", "vit"):
        search = config.model_settings(name).search
        assert hyperband_trial_count(search.max_epochs, search.factor, search.iterations) == 30
        assert hyperband_epoch_count(search.max_epochs, search.factor, search.iterations) == 226
        assert search.train_images == 20_000
        refit = config.model_settings(name).refit
        assert 3 * refit.patience >= refit.max_epochs
