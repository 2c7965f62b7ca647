"""Read a study config from a TOML file, check every value, and write it back as TOML.

A config file overrides any setting of `study.config.StudyConfig` by its
dotted path, as a TOML table or key::

    preset = "quick"               # the preset the file starts from
    seed = 7
    cnn_space = "original"         # a named search space, or a table:
    [vit_space]
    name = "modern"                # the named space the table modifies
    heads = [4, 8]
    transformer_layers = {min = 2, max = 4, step = 2}
    [cnn.refit]
    max_epochs = 10
    [[cnn_space.training.optimizers]]   # a list replaces the preset's list
    name = "adamw"
    learning_rate = {min = 1e-3, max = 3e-3, log = true}

TOML has no null, so the string "none" stands for None (for example
`test_images = "none"`, all test images). `config_toml` writes a resolved
config in this form, and reading that file back gives the same config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

import tomli_w

from study.accelerator import SWITCHES
from study.config import (CNN_POOLINGS, OPTIMIZERS, PRESETS, SCHEDULES,
                          SPACE_NAMES, VIT_POOLINGS, VIT_STEMS, FloatRange,
                          IntRange, StudyConfig, build_config)

NONE = "none"  # the TOML spelling of None
SPACE_KEYS = ("cnn_space", "vit_space")

# Allowed values of string settings, by dotted path without list indices.
CHOICES = {
    "preset": PRESETS,
    "cnn_space.name": SPACE_NAMES,
    "vit_space.name": SPACE_NAMES,
    "cnn_space.pooling": CNN_POOLINGS,
    "vit_space.pooling": VIT_POOLINGS,
    "vit_space.stems": VIT_STEMS,
    "cnn_space.training.optimizers.name": OPTIMIZERS,
    "vit_space.training.optimizers.name": OPTIMIZERS,
    "cnn_space.training.schedules": SCHEDULES,
    "vit_space.training.schedules": SCHEDULES,
    "accelerator.mixed_precision": SWITCHES,
    "accelerator.xla": SWITCHES,
}

# Lower bounds of numeric settings, by field name: a field name means the
# same quantity wherever it occurs in the config. Fractions are checked below.
MINIMUMS = {
    "seed": 0, "train_images": 1, "test_images": 1, "max_epochs": 1, "factor": 2,
    "iterations": 1, "batch_size": 1, "patience": 0, "trial_time_limit_s": 1e-9,
    "budget_minutes": 1e-9, "not_learning_min_delta": 0, "not_learning_patience": 0,
    "seeds": 1, "histogram_bins": 1, "spectrum_images": 1, "translate_pixels": 0,
    "bootstrap_resamples": 1, "calibration_bins": 1, "mistakes_shown": 0,
    "robustness_images": 1, "robustness_widths": 1e-9, "filter_widths": 1e-9,
    "patch_sizes": 1, "projection_dims": 1, "heads": 1, "units": 1, "mlp_ratio": 0,
    "conv_blocks": 1, "convs_per_block": 1, "filter_multipliers": 1, "dense_units": 0,
    "transformer_layers": 1, "mlp_depth": 1,
}
# Lists that must hold at least one value, besides those in CHOICES.
NON_EMPTY = ("convs_per_block", "batch_norm", "residual", "activations", "patch_sizes",
             "projection_dims", "heads", "optimizers", "filter_widths", "robustness_widths")
# Settings that are shares: at least 0 and below 1 (confidence and the
# validation split also above 0).
FRACTIONS = ("validation_fraction", "confidence", "warmup_fraction", "dropout",
             "attention_dropout", "mlp_dropout", "drop_path", "label_smoothing")
OPEN_FRACTIONS = ("validation_fraction", "confidence")


class ConfigError(ValueError):
    """A config file or value that cannot be used, with the key and what is allowed."""


def read_config_file(path: Path) -> dict[str, Any]:
    """Return the tables of a TOML config file; raise ConfigError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found: pass the path of a TOML file, "
                          "for example one written to a run folder as config.toml") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start}); save "
                          "it as UTF-8, as TOML requires") from None
    except OSError as error:
        raise ConfigError(f"cannot read the config file {path}: {error.strerror or error}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def resolve_config(table: dict[str, Any], *, preset: str | None = None,
                   cnn_space: str | None = None, vit_space: str | None = None,
                   source: str = "config") -> StudyConfig:
    """Build the config from a preset, the named search spaces and a config file's table.

    The keyword arguments (from the command line) win over the file's
    `preset` and space names; the file's other values win over the preset.
    `source` names the file in error messages.
    """
    table = dict(table)
    # The file's preset is checked even when the command line overrides it.
    named_preset = _choice_in(table.pop("preset", "quick"), "preset", source)
    chosen = {"preset": preset or named_preset}
    for key, requested in zip(SPACE_KEYS, (cnn_space, vit_space)):
        value = table.get(key)
        if isinstance(value, str):
            table.pop(key)
            named = value
        elif isinstance(value, dict) and "name" in value:
            table[key] = {k: v for k, v in value.items() if k != "name"}
            named = value["name"]
        else:
            named = "modern"
        named = _choice_in(named, f"{key}.name", source)
        if requested and requested != named and isinstance(table.get(key), dict) and table[key]:
            option = "--" + key.replace("_", "-")
            raise ConfigError(f"{option} {requested} conflicts with [{key}] in {source}, which "
                              f"changes the {named} space: drop {option}, or set name = "
                              f'"{requested}" in [{key}] to apply the changes to that space')
        chosen[key] = requested or named
    config = build_config(chosen["preset"], cnn_space=chosen["cnn_space"],
                          vit_space=chosen["vit_space"])
    config = _merge(config, table, "", source)
    check_config(config, source)
    return config


def _choice_in(value, key: str, source: str):
    allowed = CHOICES[key]
    if value not in allowed:
        raise ConfigError(f"{source}: {key} = {_shown(value)} is not allowed: choose one of "
                          f"{', '.join(allowed)}")
    return value


def _merge(current, table: dict, prefix: str, source: str):
    """Return dataclass instance `current` with the values of `table` converted and set."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {prefix} = {_shown(table)} must be a table of settings")
    hints = typing.get_type_hints(type(current))
    changes = {}
    for key, value in table.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in hints:
            allowed = ", ".join(hints)
            raise ConfigError(f"{source}: unknown key {path!r}; the keys allowed "
                              f"{'in [' + prefix + ']' if prefix else 'at the top level'} "
                              f"are: {allowed}")
        changes[key] = _convert(value, hints[key], path, getattr(current, key), source)
    return dataclasses.replace(current, **changes)


def _build(cls, table: dict, prefix: str, source: str):
    """Create a `cls` instance from a table alone (an item of a replaced list)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {prefix} = {_shown(table)} must be a table with the keys "
                          f"{', '.join(field.name for field in dataclasses.fields(cls))}")
    required = [field.name for field in dataclasses.fields(cls)
                if field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING]
    missing = [name for name in required if name not in table]
    if missing:
        raise ConfigError(f"{source}: {prefix} is missing the key(s) {', '.join(missing)}")
    hints = typing.get_type_hints(cls)
    # The required fields create the instance; the others are merged into it.
    base = cls(**{name: _convert(table[name], hints[name], f"{prefix}.{name}", None, source)
                  for name in required})
    return _merge(base, {k: v for k, v in table.items() if k not in required}, prefix, source)


def _convert(value, hint, path: str, current, source: str):
    """Convert a TOML value to the field type `hint`, or raise ConfigError naming `path`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = next(arg for arg in typing.get_args(hint) if arg is not type(None))
        if value == NONE:
            return None
        try:
            return _convert(value, inner, path, current, source)
        except ConfigError as error:
            raise ConfigError(f'{error}, or "{NONE}" for None') from None
    if dataclasses.is_dataclass(hint):
        if current is None:
            return _build(hint, value, path, source)
        return _merge(current, value, path, source)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {path} = {_shown(value)} must be a list, for example "
                              f"[{_example(typing.get_args(hint)[0])}]")
        item = typing.get_args(hint)[0]
        return tuple(_convert(element, item, f"{path}[{index}]", None, source)
                     for index, element in enumerate(value))
    return _scalar(value, hint, path, source)


def _scalar(value, hint, path: str, source: str):
    accepted = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}[hint]
    if isinstance(value, bool) and hint is not bool or not isinstance(value, accepted):
        raise ConfigError(f"{source}: {path} = {_shown(value)} has the wrong type: expected "
                          f"{_type_name(hint)}, for example {_example(hint)}")
    return float(value) if hint is float else value


def _shown(value) -> str:
    """Format a value as the config file would write it, for error messages."""
    return _inline(_toml_value(value))


def _type_name(hint) -> str:
    return {bool: "true or false", int: "an integer", float: "a number",
            str: "a string"}.get(hint, getattr(hint, "__name__", str(hint)))


def _example(hint) -> str:
    if dataclasses.is_dataclass(hint):
        return f"a table of {', '.join(field.name for field in dataclasses.fields(hint))}"
    return {bool: "true", int: "10", float: "0.5", str: '"text"'}.get(hint, "[...]")


def check_config(config: StudyConfig, source: str = "config") -> None:
    """Raise ConfigError for the first value outside what the study can run with."""
    for path, value in _leaves(config):
        _check_value(path, value, source)


def _leaves(node, prefix: str = ""):
    """Yield (dotted path without list indices, value) for each setting, ranges whole."""
    for field in dataclasses.fields(node):
        path = f"{prefix}.{field.name}" if prefix else field.name
        value = getattr(node, field.name)
        if isinstance(value, (IntRange, FloatRange)):
            yield path, value
        elif dataclasses.is_dataclass(value):
            yield from _leaves(value, path)
        elif isinstance(value, tuple) and value and dataclasses.is_dataclass(value[0]):
            for item in value:
                yield from _leaves(item, path)
        else:
            yield path, value


def _check_value(path: str, value, source: str) -> None:
    name = path.rsplit(".", 1)[-1]
    where = f"{source}: {path} = {_shown(value)}"
    if isinstance(value, tuple) and not value and (path in CHOICES or name in NON_EMPTY):
        raise ConfigError(f"{where}: the list is empty; give at least one value")
    values = value if isinstance(value, tuple) else (value,)
    if path in CHOICES:
        wrong = [item for item in values if item not in CHOICES[path]]
        if wrong:
            raise ConfigError(f"{where}: {_shown(wrong[0])} is not allowed; choose from "
                              f"{', '.join(CHOICES[path])}")
    if isinstance(value, (IntRange, FloatRange)):
        _check_range(where, name, value)
        return
    numbers = [item for item in values if isinstance(item, (int, float))
               and not isinstance(item, bool)]
    if name in MINIMUMS and any(item < MINIMUMS[name] or not math.isfinite(item)
                                for item in numbers):
        least = MINIMUMS[name]
        bound = "above 0" if 0 < least < 1e-6 else f"at least {least}"
        raise ConfigError(f"{where}: the value must be {bound}")
    if name in FRACTIONS:
        low = 0.0 if name not in OPEN_FRACTIONS else math.nextafter(0.0, 1.0)
        if any(not low <= item < 1.0 for item in numbers):
            interval = "(0, 1)" if name in OPEN_FRACTIONS else "[0, 1)"
            raise ConfigError(f"{where}: the value must be a share in {interval}")


def _check_range(where: str, name: str, value: IntRange | FloatRange) -> None:
    if value.min > value.max:
        raise ConfigError(f"{where}: min must not exceed max")
    if isinstance(value, IntRange) and value.step < 1:
        raise ConfigError(f"{where}: step must be at least 1")
    if isinstance(value, FloatRange):
        if value.step is not None and value.step <= 0:
            raise ConfigError(f"{where}: step must be above 0, or \"none\"")
        if value.log and value.min <= 0:
            raise ConfigError(f"{where}: a log range needs min above 0")
        if name in FRACTIONS and not (0.0 <= value.min and value.max < 1.0):
            raise ConfigError(f"{where}: the range must lie in [0, 1)")
    elif name in MINIMUMS and value.min < MINIMUMS[name]:
        raise ConfigError(f"{where}: min must be at least {MINIMUMS[name]}")


def _toml_value(value):
    """Return `value` in TOML-writable form: dataclasses as tables, None as "none"."""
    if dataclasses.is_dataclass(value):
        return {field.name: _toml_value(getattr(value, field.name))
                for field in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_toml_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _toml_value(item) for key, item in value.items()}
    return NONE if value is None else value


def config_toml(config: StudyConfig) -> str:
    """Write `config` as a TOML config file that `resolve_config` reads back unchanged."""
    return tomli_w.dumps(_toml_value(config))


def config_listing(config: StudyConfig) -> str:
    """Return one `dotted.key = value` line per setting, ranges and list items inline."""
    lines = []

    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and "min" not in value:
                walk(value, path)
            else:
                lines.append(f"  {path} = {_inline(value)}")

    walk(_toml_value(config), "")
    return "\n".join(lines)


def _inline(value) -> str:
    """Format a value as TOML on one line (tomli_w writes tables over several lines)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_inline(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(item) for item in value) + "]"
    return json.dumps(value)  # true/false, numbers and quoted strings read the same in TOML
