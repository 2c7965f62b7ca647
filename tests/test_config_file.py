"""The TOML config file: overrides, type and key errors, value checks, and the stored copy."""

import dataclasses
import textwrap
import tomllib

import pytest

import run_study
from conftest import ROOT
from study.config import PRESETS, SPACE_NAMES, FloatRange, IntRange, build_config
from study.config_file import (ConfigError, check_config, config_listing, config_toml,
                               read_config_file, resolve_config)


def _resolve(text: str, **options):
    return resolve_config(tomllib.loads(textwrap.dedent(text)), source="my.toml", **options)


def _error(text: str, **options) -> str:
    with pytest.raises(ConfigError) as error:
        _resolve(text, **options)
    return str(error.value)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("space", SPACE_NAMES)
def test_stored_toml_reads_back_unchanged(preset, space):
    config = build_config(preset, cnn_space=space, vit_space=space)
    assert resolve_config(tomllib.loads(config_toml(config))) == config


def test_empty_file_is_quick_preset():
    assert resolve_config({}) == build_config("quick")


def test_nested_values_override_preset():
    config = _resolve("""
        preset = "smoke"
        seed = 7
        test_images = "none"
        [cnn.refit]
        max_epochs = 3
        [evaluation]
        confidence = 0.9
        robustness_widths = [0.1, 0.2]
    """)
    base = build_config("smoke")
    assert config.preset == "smoke"
    assert config.seed == 7
    assert config.test_images is None
    assert config.cnn.refit.max_epochs == 3
    assert config.cnn.refit.patience == base.cnn.refit.patience
    assert config.vit.refit.max_epochs == base.vit.refit.max_epochs
    assert config.evaluation.confidence == 0.9
    assert config.evaluation.robustness_widths == (0.1, 0.2)


def test_integer_accepted_for_float():
    config = _resolve("""
        [cnn.search]
        trial_time_limit_s = 30
    """)
    assert config.cnn.search.trial_time_limit_s == 30.0
    assert isinstance(config.cnn.search.trial_time_limit_s, float)


def test_space_named_by_string():
    config = _resolve('cnn_space = "original"\npreset = "full"')
    assert config.cnn_space == build_config("full", cnn_space="original").cnn_space
    assert config.vit_space.name == "modern"


def test_space_table_modifies_named_space():
    config = _resolve("""
        preset = "full"
        [vit_space]
        name = "original"
        heads = [2]
        transformer_layers = {min = 2, max = 4, step = 2}
    """)
    original = build_config("full", vit_space="original").vit_space
    assert config.vit_space == dataclasses.replace(
        original, heads=(2,), transformer_layers=IntRange(2, 4, 2))


def test_range_partly_overridden():
    config = _resolve("""
        preset = "quick"
        [cnn_space.dropout]
        max = 0.3
    """)
    assert config.cnn_space.dropout == FloatRange(0.0, 0.3, 0.1)


def test_optimizer_list_replaced():
    config = _resolve("""
        preset = "smoke"
        [[cnn_space.training.optimizers]]
        name = "sgd_nesterov"
        learning_rate = {min = 0.01, max = 0.1, log = true}
        momentum = {min = 0.9, max = 0.9}
    """)
    (optimizer,) = config.cnn_space.training.optimizers
    assert optimizer.name == "sgd_nesterov"
    assert optimizer.learning_rate == FloatRange(0.01, 0.1, None, True)
    assert optimizer.momentum == FloatRange(0.9, 0.9)
    assert optimizer.weight_decay == FloatRange(0.0, 0.0)


def test_command_line_wins_over_file(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('preset = "smoke"\nseed = 5\ncnn_space = "original"\n'
                    '[evaluation]\nflip_tta = true\n[cnn.refit]\nseeds = 2\n')
    args = run_study.parse_args(["--config", str(path), "--seed", "9", "--cnn-space",
                                 "modern", "--no-flip-tta", "--seeds", "3", "--xla", "off"])
    config = run_study.build_study_config(args)
    assert config.preset == "smoke"
    assert config.seed == 9
    assert config.cnn_space.name == "modern"
    assert config.evaluation.flip_tta is False
    assert config.cnn.refit.seeds == 3
    assert config.accelerator.xla == "off"
    assert config.accelerator.mixed_precision == "auto"


def test_preset_option_wins_over_file(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text('preset = "full"\n')
    config = run_study.build_study_config(run_study.parse_args(["--config", str(path),
                                                                "--preset", "smoke"]))
    assert config.preset == "smoke"


def test_unknown_top_key_names_allowed():
    message = _error("sed = 3")
    assert "my.toml: unknown key 'sed'" in message
    assert "at the top level" in message
    assert "seed" in message


def test_unknown_nested_key_names_table():
    message = _error("[cnn.refit]\nmax_epoch = 3")
    assert "unknown key 'cnn.refit.max_epoch'" in message
    assert "in [cnn.refit]" in message
    assert "max_epochs, patience, batch_size, seeds" in message


def test_wrong_type_names_key_value_type():
    message = _error('[cnn.refit]\nmax_epochs = "ten"')
    assert 'cnn.refit.max_epochs = "ten" has the wrong type' in message
    assert "expected an integer" in message


def test_bool_not_accepted_as_integer():
    assert "expected an integer" in _error("seed = true")


def test_float_not_accepted_as_integer():
    assert "cnn.refit.seeds = 2.5 has the wrong type" in _error("[cnn.refit]\nseeds = 2.5")


def test_table_expected_for_section():
    assert "cnn = 3 must be a table of settings" in _error("cnn = 3")


def test_list_expected_for_choices():
    message = _error('[cnn_space]\nactivations = "relu"')
    assert 'cnn_space.activations = "relu" must be a list, for example ["text"]' in message


def test_unknown_choice_lists_allowed():
    message = _error('[vit_space]\npooling = ["max"]')
    assert "vit_space.pooling" in message
    assert '"max" is not allowed' in message
    assert "flatten, global_average, class_token" in message


def test_unknown_preset_lists_allowed():
    assert 'preset = "huge" is not allowed: choose one of smoke, quick, full' in _error(
        'preset = "huge"')


def test_unknown_space_name_lists_allowed():
    assert 'cnn_space.name = "new"' in _error('cnn_space = "new"')


def test_optimizer_without_required_key():
    message = _error('[[cnn_space.training.optimizers]]\nname = "adam"')
    assert "cnn_space.training.optimizers[0] is missing the key(s) learning_rate" in message


def test_unknown_optimizer_name():
    message = _error('[[cnn_space.training.optimizers]]\nname = "lion"\n'
                     "learning_rate = {min = 0.001, max = 0.01}")
    assert '"lion" is not allowed' in message
    assert "adamw" in message


@pytest.mark.parametrize(("text", "expected"), [
    ("[cnn.refit]\nseeds = 0", "cnn.refit.seeds = 0: the value must be at least 1"),
    ("[vit.search]\nfactor = 1", "vit.search.factor = 1: the value must be at least 2"),
    ("validation_fraction = 1.0", "the value must be a share in (0, 1)"),
    ("validation_fraction = 0.0", "the value must be a share in (0, 1)"),
    ("[cnn.search]\nbudget_minutes = 0", "the value must be above 0"),
    ("[cnn_space]\nconv_blocks = {min = 4, max = 2}", "min must not exceed max"),
    ("[cnn_space.dropout]\nmax = 1.5", "the range must lie in [0, 1)"),
    ("[vit_space]\nheads = []", "the list is empty"),
    ("[vit_space]\nheads = [0]", "vit_space.heads = [0]: the value must be at least 1"),
    ("[[cnn_space.training.optimizers]]\nname = \"adam\"\n"
     "learning_rate = {min = 0.0, max = 0.01, log = true}", "a log range needs min above 0"),
])
def test_values_outside_limits(text, expected):
    assert expected in _error(text)


def test_check_passes_every_preset():
    for preset in PRESETS:
        for space in SPACE_NAMES:
            check_config(build_config(preset, cnn_space=space, vit_space=space))


def test_missing_file_names_path(tmp_path):
    with pytest.raises(ConfigError, match="config file .*nothing.toml not found"):
        read_config_file(tmp_path / "nothing.toml")


def test_invalid_toml_names_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[cnn.refit\nmax_epochs = 3\n")
    with pytest.raises(ConfigError, match="broken.toml is not valid TOML"):
        read_config_file(path)


def test_listing_is_toml_of_same_values():
    config = build_config("full")
    listing = textwrap.dedent(config_listing(config))
    assert resolve_config(tomllib.loads(listing)) == config


def test_cli_config_error_exit_code(tmp_path, capsys):
    path = tmp_path / "study.toml"
    path.write_text("[cnn.refit]\nmax_epochs = -1\n")
    assert run_study.main(["--config", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: cnn.refit.max_epochs = -1: the value must be at least 1" in err
    assert not (tmp_path / "run").exists()


def test_readme_example_resolves():
    readme = (ROOT / "README.md").read_text()
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    config = resolve_config(tomllib.loads(example))
    assert config.preset == "quick"
    assert config.seed == 7
    assert config.cnn_space.name == "original"
    assert config.vit_space.heads == (4, 8)
    assert config.cnn.refit.max_epochs == 10
    assert config.vit_space.training.optimizers[0].learning_rate.log is True


def test_file_preset_checked_despite_option():
    assert 'preset = "huge" is not allowed' in _error('preset = "huge"', preset="smoke")


def test_space_option_conflicts_with_edits():
    message = _error('[vit_space]\nheads = [2]', vit_space="original")
    assert "--vit-space original conflicts with [vit_space] in my.toml" in message
    assert "changes the modern space" in message


def test_space_option_matching_edits_accepted():
    config = _resolve('[vit_space]\nname = "original"\nheads = [2]', vit_space="original")
    assert config.vit_space.heads == (2,)


def test_space_option_overrides_plain_name():
    config = _resolve('cnn_space = "original"', cnn_space="modern")
    assert config.cnn_space.name == "modern"


def test_none_named_in_type_error():
    message = _error('test_images = "None"')
    assert 'test_images = "None" has the wrong type: expected an integer' in message
    assert 'or "none" for None' in message


def test_non_utf8_file_named(tmp_path):
    path = tmp_path / "latin.toml"
    path.write_bytes(b"seed = 1 # \xff\n")
    with pytest.raises(ConfigError, match="latin.toml is not UTF-8 text"):
        read_config_file(path)
