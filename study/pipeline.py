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
from study.data import load_dataset, subsample
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


def config_hash(config: StudyConfig, data_path: str | None) -> str:
    data = str(Path(data_path).expanduser().resolve()) if data_path else None
    payload = json.dumps({"config": to_dict(config), "data": data}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _check_manifest(run: RunFolder, config: StudyConfig, data_path: str | None) -> None:
    manifest = run.root / "manifest.json"
    digest = config_hash(config, data_path)
    stages = run.root / "stages"
    finished = sorted(p.stem for p in stages.glob("*.json")) if stages.exists() else []
    if manifest.exists() and finished:
        recorded = json.loads(manifest.read_text())
        if recorded.get("config_hash") != digest:
            raise RunFolderError(
                f"run folder {run.root} contains a study with another config or data "
                f"(hash {recorded.get('config_hash')}, now {digest}); its trials must "
                f"not be mixed with this one (finished stages: {', '.join(finished)}). "
                "Pass another --run-dir, or delete that folder"
            )
        return
    run.root.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({"config_hash": digest, "config": to_dict(config),
                                    "data": data_path}, indent=1))


class StageTimer:
    """Log each stage's start and end and keep its wall time in seconds."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        log.info("stage %s: started", name)
        start = time.monotonic()
        yield
        self.seconds[name] = time.monotonic() - start
        log.info("stage %s: finished in %.1f s", name, self.seconds[name])


def run_study(config: StudyConfig, data_path: str | None, run_dir: Path,
              out_dir: Path | None, *, force_out: bool = False) -> dict:
    """Run every stage, write results.json, render the site and PDF into `out_dir`.

    Returns the results dict. With `out_dir` None the report is not rendered.
    """
    started = time.monotonic()
    run = RunFolder(Path(run_dir))
    _check_manifest(run, config, data_path)
    if out_dir is not None:
        from report.render import check_output_folder

        # Checked before training, so a bad --out never costs a finished study.
        check_output_folder(run.root.resolve(), Path(out_dir).resolve(), force=force_out)
    timer = StageTimer()

    with timer.stage("data"):
        full = load_dataset(data_path, cache_dir=None)
        dataset = subsample(full, config.train_images, config.test_images, config.seed)
        log.info("data: %s, %d classes, %d of %d train and %d of %d test images of %s",
                 full.source, len(full.class_names), len(dataset.y_train), len(full.y_train),
                 len(dataset.y_test), len(full.y_test), "x".join(map(str, full.image_shape)))

    with timer.stage("exploration"):
        explored = run.load_stage("exploration")
        if explored is None:
            explored, arrays = exploration.explore(dataset, config.exploration)
            np.savez_compressed(run.root / "exploration.npz", **arrays)
            run.save_stage("exploration", explored)

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
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": to_dict(config),
        "data": {
            "name": dataset.name,
            "source": dataset.source,
            "class_names": list(dataset.class_names),
            "image_shape": list(dataset.image_shape),
            "available": {"train": int(len(full.y_train)), "test": int(len(full.y_test))},
            "used": {"train": int(len(prepared.y_fit)), "validation": int(len(prepared.y_val)),
                     "test": int(len(dataset.y_test))},
        },
        "exploration": explored,
        "models": models,
        "environment": environment(prepared.gpus),
        "timings": {"stages": timer.seconds, "total_seconds": time.monotonic() - started},
    }
    validate(results)
    write_results(run.root / "results.json", results)
    log.info("results: %s", run.root / "results.json")

    if out_dir is not None:
        from report.render import render_report

        with timer.stage("report"):
            render_report(run.root, Path(out_dir), force=force_out)
    return results
