"""The study's stages in report order, computing into one run folder.

Each finished stage leaves `<run_dir>/stages/<stage>.json`. A rerun with
the same config skips those stages and reloads their outputs, and the
Hyperband tuners continue from their saved trials. The last step writes
`<run_dir>/results.json`, which is all the report reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from study import exploration
from study.config import StudyConfig, to_dict
from study.data import check_trainable, load_dataset, subsample
from study.results import SCHEMA_VERSION, environment, validate, write_results

log = logging.getLogger(__name__)

MODEL_LABELS = {"cnn": "CNN", "vit": "ViT"}


class RunFolderError(RuntimeError):
    """The run folder belongs to a study with another config."""


@dataclass
class RunFolder:
    """Paths and stage records under one run folder."""

    root: Path

    def stage_file(self, stage: str) -> Path:
        return self.root / "stages" / f"{stage}.json"

    def load_stage(self, stage: str) -> dict | None:
        path = self.stage_file(stage)
        return json.loads(path.read_text()) if path.exists() else None

    def save_stage(self, stage: str, record: dict) -> None:
        path = self.stage_file(stage)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(path)


def _resolved(data_path: str | None) -> str | None:
    return str(Path(data_path).expanduser().resolve()) if data_path else None


def changed_keys(before, after, prefix: str = "") -> list[str]:
    """List the dotted keys whose values differ between two nested dicts.

    >>> changed_keys({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}, "d": 0})
    ['a.c', 'd']
    """
    if not isinstance(before, dict) or not isinstance(after, dict):
        return [prefix] if before != after else []
    keys = sorted(set(before) | set(after))
    changes = []
    for key in keys:
        path = f"{prefix}.{key}" if prefix else key
        changes += changed_keys(before.get(key), after.get(key), path)
    return changes


def config_hash(config: StudyConfig, data_path: str | None) -> str:
    payload = json.dumps({"config": to_dict(config), "data": _resolved(data_path)},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _check_manifest(run: RunFolder, config: StudyConfig, data_path: str | None) -> None:
    manifest = run.root / "manifest.json"
    digest = config_hash(config, data_path)
    stages = run.root / "stages"
    finished = sorted(p.stem for p in stages.glob("*.json")) if stages.exists() else []
    if manifest.exists() and finished:
        recorded = json.loads(manifest.read_text())
        if recorded.get("config_hash") != digest:
            now = {"config": to_dict(config), "data": _resolved(data_path)}
            before = {"config": recorded.get("config"), "data": _resolved(recorded.get("data"))}
            changes = changed_keys(before, now) or ["the config's format"]
            change_list = ", ".join(changes[:6])
            if len(changes) > 6:
                change_list += f" and {len(changes) - 6} more"
            raise RunFolderError(
                f"run folder {run.root} contains finished stages ({', '.join(finished)}) of a "
                f"study whose settings differ in {change_list}; its trials must not be mixed "
                "with this one. Pass another --run-dir, or delete that folder to start over"
            )
        return
    run.root.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"config_hash": digest, "config": to_dict(config),
                                    "data": data_path,
                                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                                   indent=1))


class StageTimer:
    """Run stages, log their start and end, and keep each one's wall time in seconds.

    A stage run through `cached` stores its record and time in the run
    folder; a later invocation reuses both and lists the stage in `reused`.
    """

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.reused: list[str] = []

    @contextmanager
    def stage(self, name: str):
        log.info("stage %s: started", name)
        start = time.monotonic()
        yield
        self.seconds[name] = time.monotonic() - start
        log.info("stage %s: finished in %.1f s", name, self.seconds[name])

    def cached(self, run: RunFolder, name: str, compute) -> dict:
        """Return the stage's saved record, or call `compute()` and save what it returns."""
        saved = run.load_stage(name)
        if saved is not None:
            self.seconds[name] = saved["seconds"]
            self.reused.append(name)
            log.info("stage %s: reused from an earlier run (it took %.1f s)", name,
                     saved["seconds"])
            return saved["record"]
        with self.stage(name):
            record = compute()
        run.save_stage(name, {"seconds": self.seconds[name], "record": record})
        return record


def run_study(config: StudyConfig, data_path: str | None, run_dir: Path,
              out_dir: Path | None, *, force_out: bool = False) -> dict:
    """Run every stage, write results.json, render the site and PDF into `out_dir`.

    Returns the results dict. With `out_dir` None the report is not rendered.
    """
    started = time.monotonic()
    run = RunFolder(Path(run_dir))
    _check_manifest(run, config, data_path)
    if out_dir is not None:
        from report.render import OutputFolderError, check_output_folder

        # Checked before training, so a bad --out never costs a finished study.
        if force_out and (Path(out_dir) / ".git").exists():
            raise OutputFolderError(
                f"output folder {out_dir} contains a .git folder, and --force would delete "
                "it; choose another --out")
        check_output_folder(run.root.resolve(), Path(out_dir).resolve(), force=force_out)
    timer = StageTimer()

    with timer.stage("data"):
        full = load_dataset(data_path, cache_dir=None)
        dataset = subsample(full, config.train_images, config.test_images, config.seed)
        check_trainable(dataset, config.validation_fraction)
        log.info("data: %s, %d classes, %d of %d train and %d of %d test images of %s",
                 full.source, len(full.class_names), len(dataset.y_train), len(full.y_train),
                 len(dataset.y_test), len(full.y_test), "x".join(map(str, full.image_shape)))

    def explore() -> dict:
        numbers, arrays = exploration.explore(dataset, config.exploration)
        np.savez_compressed(run.root / "exploration.npz", **arrays)
        return numbers

    explored = timer.cached(run, "exploration", explore)

    # Imported here so that loading and exploring data works without TensorFlow
    # being imported, and `--help` stays fast.
    from study.training import PreparedData, train_and_evaluate

    with timer.stage("preprocessing"):
        prepared = PreparedData.from_dataset(dataset, config)

    models = {}
    for name in ("cnn", "vit"):
        models[name] = train_and_evaluate(name, prepared, config, run, timer)
        models[name]["label"] = MODEL_LABELS[name]

    results = {
        "schema_version": SCHEMA_VERSION,
        "title": f"CNN versus Vision Transformer on {dataset.name}",
        "created": json.loads((run.root / "manifest.json").read_text()).get(
            "created", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
        "config": to_dict(config),
        "data": {
            "name": dataset.name,
            "source": dataset.display_source,
            "class_names": list(dataset.class_names),
            "image_shape": list(dataset.image_shape),
            "available": {"train": int(len(full.y_train)), "test": int(len(full.y_test))},
            "used": {"train": int(len(prepared.y_fit)), "validation": int(len(prepared.y_val)),
                     "test": int(len(dataset.y_test))},
        },
        "exploration": explored,
        "models": models,
        "environment": environment(prepared.gpus),
        # total_seconds sums the stages, counting reused ones at their original
        # time, so it is the study's cost however many invocations it took.
        "timings": {"stages": timer.seconds, "total_seconds": sum(timer.seconds.values()),
                    "reused": timer.reused, "this_run_seconds": time.monotonic() - started},
    }
    validate(results)
    write_results(run.root / "results.json", results)
    log.info("results: %s", run.root / "results.json")

    if out_dir is not None:
        from report.render import render_report

        with timer.stage("report"):
            render_report(run.root, Path(out_dir), force=force_out)
    return results
