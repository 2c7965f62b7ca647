"""The results.json file: the one record every report and tool reads.

`REQUIRED_KEYS` lists the dotted paths that outside tools rely on;
`validate` checks them, `write_results` writes atomically.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from study.files import write_text_atomically

SCHEMA_VERSION = 1
MODEL_NAMES = ("cnn", "vit")
REQUIRED_KEYS = (
    "config.preset",
    "timings.total_seconds",
    *(f"models.{name}.{key}" for name in MODEL_NAMES for key in (
        "test.accuracy", "test.loss", "roc.micro_auc", "roc.macro_auc", "parameters")),
)
PACKAGES = ("tensorflow", "tensorflow-cpu", "keras", "keras-tuner", "numpy", "scikit-learn",
            "matplotlib", "seaborn", "jinja2", "weasyprint", "pillow")


def lookup(results: dict, dotted: str) -> Any:
    """Return results[a][b][c] for 'a.b.c'; raise KeyError naming the missing part."""
    node = results
    for depth, part in enumerate(dotted.split(".")):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"results.json lacks {'.'.join(dotted.split('.')[:depth + 1])!r}")
        node = node[part]
    return node


def validate(results: dict) -> None:
    """Raise KeyError unless every required key is present."""
    for key in REQUIRED_KEYS:
        lookup(results, key)


def _finite_or_none(value: Any) -> Any:
    # JSON has no NaN: browsers' JSON.parse rejects it, so undefined numbers
    # are written as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def write_results(path: Path, results: dict) -> None:
    """Write strict JSON (NaN and infinities as null) to a temporary file, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(_finite_or_none(results), indent=1,
                                           allow_nan=False))


def read_results(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def environment(gpus: list[str]) -> dict:
    """Python, platform, CPU count, GPUs and the versions of the packages used."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus,
        "packages": versions,
    }
