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
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from study import exploration
from study.cluster import Cluster
from study.config import StudyConfig, to_dict
from study.config_file import ConfigError, config_toml
from study.data import check_trainable, load_dataset, subsample
from study.files import write_text_atomically
from study.results import SCHEMA_VERSION, environment, validate, write_results
from study.stop import raise_if_requested
from study.uncertainty import paired_comparison

log = logging.getLogger(__name__)

MODEL_LABELS = {"cnn": "CNN", "vit": "ViT"}
CONFIG_FILE = "config.toml"  # the resolved config, stored in the run folder


def seeds_dir(run_dir: Path, name: str) -> Path:
    """Return the folder of model `name`'s refits with further seeds."""
    return Path(run_dir) / "seeds" / name


class RunFolderError(RuntimeError):
    """The run folder contains stages computed from other settings or other data."""


# The stages whose outputs are kept in the run folder, in run order. The data
# and preprocessing steps are recomputed by every invocation (seconds), and
# the report is always rendered again.
MODELS = ("cnn", "vit")
HEARTBEAT_SECONDS = 5.0  # how often an unfinished stage records its elapsed time
# Per model: the search, the refit shown in the report, its evaluation, and
# the refits with further seeds that measure the spread of the test scores.
STEPS = ("search", "refit", "evaluation", "seeds")
# The steps computed from each step's outputs (and so recomputed with it).
_LATER_STEPS = {"search": ("refit", "evaluation", "seeds"), "refit": ("evaluation", "seeds"),
                "evaluation": (), "seeds": ()}
STAGES = ("exploration",) + tuple(f"{step}_{name}" for name in MODELS for step in STEPS)
RESTART_CHOICES = ("all", "exploration", *STEPS) + STAGES[1:]
# Names that --stages accepts: a stage, a step of both models, or the
# report (which needs every stage).
STAGE_CHOICES = ("exploration", *STEPS) + STAGES[1:] + ("report",)
STAGE_DESCRIPTIONS = {
    "exploration": "class balance, pixel histograms, samples, Fourier spectra and filters",
    "search": "Hyperband search of the model's hyperparameters",
    "refit": "training of the best configuration on the whole training sample",
    "evaluation": "test metrics, ROC, intervals, calibration and frequency robustness",
    "seeds": "refits with further seeds for the spread of the test scores",
    "report": "comparison, results.json, the site and the PDF",
}


def downstream(stage: str) -> list[str]:
    """Return the stage and every stage computed from its outputs.

    >>> downstream("search_cnn")
    ['search_cnn', 'refit_cnn', 'evaluation_cnn', 'seeds_cnn']
    >>> downstream("evaluation_vit")
    ['evaluation_vit']
    """
    if stage == "exploration":
        return ["exploration"]
    step, name = stage.split("_")
    return [f"{later}_{name}" for later in (step, *_LATER_STEPS[step])]


def restart_stages(choice: str | None) -> list[str]:
    """Expand a --restart value into the stages to recompute, in run order."""
    if choice is None:
        return []
    if choice == "all":
        return list(STAGES)
    if choice not in RESTART_CHOICES:
        raise ValueError(f"unknown stage {choice!r} for --restart: choose one of "
                         f"{', '.join(RESTART_CHOICES)}")
    roots = [f"{choice}_{name}" for name in MODELS] if choice in STEPS else [choice]
    chosen = {stage for root in roots for stage in downstream(root)}
    return [stage for stage in STAGES if stage in chosen]


def planned_stages(requested: list[str] | None) -> list[str]:
    """Expand --stages names into the stages to run, with the stages they need, in run order.

    A model's step needs the model's earlier steps, and the report needs
    every stage, so the result ends with "report" only when it is complete.

    >>> planned_stages(["refit_vit"])
    ['search_vit', 'refit_vit']
    >>> planned_stages(["exploration", "evaluation"])[-2:]
    ['refit_vit', 'evaluation_vit']
    """
    if requested is None or "report" in requested:
        return [*STAGES, "report"]
    chosen = set()
    for name in requested:
        if name not in STAGE_CHOICES:
            raise ValueError(f"unknown stage {name!r}: choose from {', '.join(STAGE_CHOICES)}")
        for stage in ([f"{name}_{model}" for model in MODELS] if name in STEPS else [name]):
            chosen.add(stage)
            if stage != "exploration":
                step, model = stage.split("_")
                chosen.update(f"{earlier}_{model}" for earlier in STEPS[:STEPS.index(step)])
    return [stage for stage in STAGES if stage in chosen]


def stage_table(run_dir: Path, config: StudyConfig | None = None) -> str:
    """Return the --list-stages text: each stage, what it computes, and its state in `run_dir`.

    With `config`, a stage computed from other settings reads "stale", as a
    run with `config` would reject it. The data are not compared here.
    """
    run = RunFolder(Path(run_dir))
    stale = Manifest(run, config, None).stale_stages() if config is not None else []
    lines = [f"stages of a study, in run order (state in {run_dir}):"]
    for stage in (*STAGES, "report"):
        if stage == "report":
            state = "finished" if (run.root / "results.json").exists() else "not run"
            if stale and state == "finished":
                state = "stale"
        elif stage in stale:
            state = "stale"
        elif run.stage_file(stage).exists():
            state = "finished"
        elif any(path.exists() for path in run.stage_outputs(stage)):
            state = "partial"
        else:
            state = "not run"
        step = stage.split("_")[0]
        lines.append(f"  {stage:<16} {state:<9} {STAGE_DESCRIPTIONS[step]}")
    if stale:
        lines.append("Stale stages were computed from other settings than these, so a run "
                     f"rejects them unless --restart {restart_choice(stale)} recomputes them.")
    lines.append("A model's seeds stage runs only when --seeds or the preset asks for more "
                 "than one refit. Steps without a model suffix (search, refit, evaluation, "
                 "seeds) name both models' stages.")
    return "\n".join(lines)


def stages_affected(key: str) -> list[str]:
    """List the stages whose outputs depend on the dotted config key `key`."""
    parts = key.split(".")
    if parts[0] == "config" and len(parts) > 1:
        section = parts[1]
        if section == "preset":
            return []  # only a name; every value it sets is compared on its own
        if section == "exploration":
            return ["exploration"]
        # NOTE: accelerator settings are compared as written ('auto'), not as
        # resolved, so a run folder moved from a CPU to a GPU mixes precisions.
        if section in ("augmentation", "accelerator"):  # how both models train
            return [stage for stage in STAGES if stage != "exploration"]
        if section == "evaluation":
            return [f"evaluation_{name}" for name in MODELS]
        for name in MODELS:
            if section == f"{name}_space":
                return downstream(f"search_{name}")
            if section == name and parts[2:4] == ["refit", "seeds"]:
                return [f"seeds_{name}"]  # the number of extra refits only
            if section == name and len(parts) > 2 and parts[2] in ("search", "refit"):
                return downstream(f"{parts[2]}_{name}")
    return list(STAGES)  # the seed, the image counts, the split, the data


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
        write_text_atomically(path, json.dumps(record, indent=1))

    def elapsed_file(self, stage: str) -> Path:
        """Return the heartbeat file of an unfinished stage (its seconds so far)."""
        return self.root / "stages" / f"{stage}.elapsed"

    def stage_outputs(self, stage: str) -> list[Path]:
        """Everything a stage writes, finished or partial, its record last."""
        if stage == "exploration":
            outputs = [self.root / "exploration.npz"]
        else:
            step, name = stage.split("_")
            outputs = {
                "search": [self.root / "search" / name],
                "refit": [self.root / "models" / f"{name}.keras",
                          self.root / "models" / f"{name}_history.json",
                          self.root / "backup" / f"refit_{name}"],
                "evaluation": [self.root / f"predictions_{name}.npz"],
                "seeds": [seeds_dir(self.root, name)],
            }[step]
        return outputs + [self.elapsed_file(stage), self.stage_file(stage)]

    def present_stages(self) -> list[str]:
        """Stages with a record or partial outputs in the folder."""
        return [stage for stage in STAGES
                if any(path.exists() for path in self.stage_outputs(stage))]

    def remove_stage(self, stage: str) -> None:
        # The record goes first, so an interrupted removal leaves a partial
        # stage, never a record without its outputs.
        for path in reversed(self.stage_outputs(stage)):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


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


def _value_at(tree, key: str):
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def config_hash(config: StudyConfig) -> str:
    payload = json.dumps(to_dict(config), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def data_fingerprint(dataset) -> str:
    """Hash the sampled images, labels and class names that a study trains on."""
    digest = hashlib.sha256()
    for array in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(list(dataset.class_names)).encode())
    return digest.hexdigest()[:16]


def restart_choice(conflict: list[str]) -> str:
    """Return the --restart value that recomputes the `conflict` stages and the ones after."""
    roots = [stage for stage in conflict
             if not any(stage in downstream(other)[1:] for other in conflict)]
    steps = {root.split("_")[0] for root in roots}
    if len(roots) == 1:
        return roots[0]
    if len(steps) == 1 and "exploration" not in steps:
        return steps.pop()  # the same step of both models
    return "all"


def _conflict_message(run: RunFolder, conflict: list[str], reasons: list[str]) -> str:
    restart = restart_choice(conflict)
    return (f"run folder {run.root} contains stages ({', '.join(conflict)}) computed from "
            f"{'; '.join(reasons)}; they must not be mixed with this run. Add "
            f"--restart {restart} to recompute them (and the stages after them), or pass "
            "another --run-dir to keep that study")


class Manifest:
    """The settings and data a run folder's stages were computed from.

    `check_config` runs before the data are loaded and `check_data` after;
    `commit` then removes the stages to restart and records the new state.
    """

    def __init__(self, run: RunFolder, config: StudyConfig, data_path: str | None,
                 restart: str | None = None):
        self.run = run
        self.path = run.root / "manifest.json"
        self.resolved = config
        self.config = to_dict(config)
        self.digest = config_hash(config)
        self.data_path = data_path
        self.restart = restart_stages(restart)
        self.recorded = json.loads(self.path.read_text()) if self.path.exists() else None
        self.present = run.present_stages()

    def _reject_conflicts(self, affected: list[str], reasons: list[str]) -> None:
        conflict = [s for s in self.present if s in affected and s not in self.restart]
        if conflict:
            raise RunFolderError(_conflict_message(self.run, conflict, reasons))

    def _config_changes(self) -> tuple[dict, dict, list[str]]:
        """Return the recorded and current config, under "config.", and the changed keys."""
        # Keys are compared under "config." so they read as in results.json.
        before = {"config": (self.recorded or {}).get("config") or {}}
        now = {"config": self.config}
        if self.recorded is None or self.recorded.get("config_hash") == self.digest:
            return before, now, []
        # A changed space name (--cnn-space, --vit-space) explains the many
        # range changes under it, so it is named first.
        changes = sorted(changed_keys(before, now), key=lambda key: not key.endswith("_space.name"))
        return before, now, changes

    def stale_stages(self) -> list[str]:
        """List the stages in the folder that were computed from other settings."""
        changes = self._config_changes()[2]
        affected = {stage for key in changes for stage in stages_affected(key)}
        return [stage for stage in self.present if stage in affected]

    def check_config(self) -> None:
        before, now, changes = self._config_changes()
        if not changes:
            return
        affected = {stage for key in changes for stage in stages_affected(key)}
        described = [f"{key} {_value_at(before, key)!r} -> {_value_at(now, key)!r}"
                     for key in changes[:4]]
        if len(changes) > 4:
            described.append(f"{len(changes) - 4} more")
        self._reject_conflicts([s for s in STAGES if s in affected],
                               [f"other settings ({', '.join(described)})"])

    def check_data(self, fingerprint: str) -> None:
        recorded = (self.recorded or {}).get("data_fingerprint")
        if recorded is None or recorded == fingerprint:
            return
        cache = "the Keras CIFAR-10 cache"
        self._reject_conflicts(list(STAGES), [
            f"other data (fingerprint {recorded} from {self.recorded.get('data') or cache}; "
            f"now {fingerprint} from {self.data_path or cache})"])

    def commit(self, fingerprint: str) -> None:
        removed = [stage for stage in self.restart if stage in self.present]
        for stage in removed:
            self.run.remove_stage(stage)
        if removed:
            log.info("restart: removed the stages %s from %s", ", ".join(removed), self.run.root)
            (self.run.root / "results.json").unlink(missing_ok=True)
        created = (self.recorded or {}).get("created")
        if created is None or not self.run.present_stages():
            created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.run.root.mkdir(parents=True, exist_ok=True)
        record = {"config_hash": self.digest, "config": self.config, "data": self.data_path,
                  "data_fingerprint": fingerprint, "created": created}
        write_text_atomically(self.path, json.dumps(record, indent=1))
        # The resolved config in the form --config reads, to rerun or vary the study.
        write_text_atomically(self.run.root / CONFIG_FILE, config_toml(self.resolved))


class Heartbeat:
    """Write a stage's elapsed seconds to a file every `interval` seconds, from a thread.

    A run killed part-way through a stage leaves the file behind, so the
    run that finishes the stage can add the earlier time, losing at most
    `interval` seconds of it.
    """

    def __init__(self, path: Path, earlier: float, interval: float = HEARTBEAT_SECONDS):
        self.path = path
        self.earlier = earlier
        self.interval = interval
        self._start = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat {path.stem}",
                                        daemon=True)

    def _beat(self) -> None:
        while not self._done.wait(self.interval):
            seconds = self.earlier + time.monotonic() - self._start
            try:
                write_text_atomically(self.path, json.dumps({"seconds": seconds}))
            except OSError as error:  # a full disk must not end the stage itself
                log.warning("could not record the elapsed time in %s: %s", self.path, error)

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._done.set()
        self._thread.join()


class StageTimer:
    """Run stages, log their start and end, and keep each one's wall time in seconds.

    A stage run through `cached` stores its record and time in the run
    folder; a later invocation reuses both and lists the stage in `reused`.
    A stage that an earlier invocation began but did not finish adds that
    invocation's time (from its heartbeat file) and is listed in `resumed`.
    """

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.reused: list[str] = []
        self.resumed: dict[str, float] = {}
        self._records: dict[str, dict] = {}  # the records this invocation has returned

    @contextmanager
    def stage(self, name: str):
        raise_if_requested()
        log.info("stage %s: started", name)
        start = time.monotonic()
        yield
        self.seconds[name] = time.monotonic() - start
        log.info("stage %s: finished in %.1f s", name, self.seconds[name])
        raise_if_requested()

    def cached(self, run: RunFolder, name: str, compute) -> dict:
        """Return the stage's saved record, or call `compute()` and save what it returns.

        A stage asked for twice in one invocation is computed once.
        """
        if name in self._records:
            return self._records[name]
        saved = run.load_stage(name)
        if saved is not None:
            self.seconds[name] = saved["seconds"]
            self.reused.append(name)
            if saved.get("earlier_seconds"):
                self.resumed[name] = saved["earlier_seconds"]
            log.info("stage %s: reused from an earlier run (it took %.1f s)", name,
                     saved["seconds"])
            self._records[name] = saved["record"]
            return saved["record"]
        elapsed = run.elapsed_file(name)
        earlier = json.loads(elapsed.read_text())["seconds"] if elapsed.exists() else 0.0
        if earlier:
            log.info("stage %s: continuing after %.1f s spent in earlier, interrupted runs",
                     name, earlier)
        with self.stage(name), Heartbeat(elapsed, earlier):
            record = compute()
        self.seconds[name] += earlier
        if earlier:
            self.resumed[name] = earlier
            log.info("stage %s: %.1f s in all, with the earlier, interrupted runs", name,
                     self.seconds[name])
        run.save_stage(name, {"seconds": self.seconds[name], "earlier_seconds": earlier,
                              "record": record})
        elapsed.unlink(missing_ok=True)
        self._records[name] = record
        return record


def compare_models(run: RunFolder, config: StudyConfig) -> dict:
    """Compare the two refit models on the same test images (study.uncertainty).

    Reads the saved probabilities, so a rerun that reuses both evaluations
    gives the same numbers.
    """
    saved = {name: np.load(run.root / f"predictions_{name}.npz") for name in MODELS}
    first, second = MODELS
    comparison = paired_comparison(
        saved[first]["y_true"], saved[first]["y_score"], saved[second]["y_score"],
        resamples=config.evaluation.bootstrap_resamples,
        confidence=config.evaluation.confidence, seed=config.seed)
    log.info("comparison: %s minus %s accuracy %+.4f (%.0f%% interval %+.4f to %+.4f); "
             "McNemar: %d images only %s gets right, %d only %s, p = %.3g", first, second,
             comparison["accuracy_difference"], 100 * comparison["confidence"],
             *comparison["interval"], comparison["only_a"], first, comparison["only_b"],
             second, comparison["p_value"])
    return {"models": list(MODELS), **comparison}


def load_sample(config: StudyConfig, data_path: str | None):
    """Load the data set and draw the study's sample; return both, the sample checked trainable."""
    full = load_dataset(data_path, cache_dir=None)
    dataset = subsample(full, config.train_images, config.test_images, config.seed)
    check_trainable(dataset, config.validation_fraction)
    return full, dataset


def run_study(config: StudyConfig, data_path: str | None, run_dir: Path,
              out_dir: Path | None, *, force_out: bool = False,
              restart: str | None = None, stages: list[str] | None = None,
              page_size: str = "A4", cluster: Cluster | None = None) -> dict | None:
    """Run every stage, write results.json, render the site and PDF into `out_dir`.

    Returns the results dict. With `out_dir` None the report is not rendered.
    `restart` (a RESTART_CHOICES value) recomputes those stages and the ones
    after them instead of reusing their outputs. `stages` (STAGE_CHOICES
    names) runs only those stages and the ones they need; unless that
    includes "report", nothing after them runs and None is returned.
    `cluster` spreads the searches over processes: the chief serves both
    searches before any refit and then goes on as one process would; a
    worker runs search trials for the chief (see `work_for_chief`) and
    returns None.
    """
    cluster = cluster or Cluster()
    if cluster.role == "worker":
        return work_for_chief(config, data_path, Path(run_dir), cluster)
    planned = planned_stages(stages)
    if "report" not in planned:
        out_dir = None  # no report, so the output folder is neither checked nor written
    started = time.monotonic()
    run = RunFolder(Path(run_dir))
    manifest = Manifest(run, config, data_path, restart)
    manifest.check_config()
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
        full, dataset = load_sample(config, data_path)
        fingerprint = data_fingerprint(dataset)
        manifest.check_data(fingerprint)
        manifest.commit(fingerprint)
        log.info("data: %s, %d classes, %d of %d train and %d of %d test images of %s",
                 full.source, len(full.class_names), len(dataset.y_train), len(full.y_train),
                 len(dataset.y_test), len(full.y_test), "x".join(map(str, full.image_shape)))

    def explore() -> dict:
        numbers, arrays = exploration.explore(dataset, config.exploration)
        np.savez_compressed(run.root / "exploration.npz", **arrays)
        return numbers

    explored = timer.cached(run, "exploration", explore) if "exploration" in planned else None
    if not any(stage.split("_")[0] in STEPS for stage in planned):
        return _partial_run(run, planned, config)

    # Imported here so that loading and exploring data works without TensorFlow
    # being imported, and `--help` stays fast.
    from study.training import PreparedData, check_spaces, train_and_evaluate

    with timer.stage("preprocessing"):
        prepared = PreparedData.from_dataset(dataset, config)
        try:
            check_spaces(config, prepared)
        except ValueError as error:
            raise ConfigError(f"the search spaces do not suit the data ({error}); change "
                              "cnn_space or vit_space in a --config file, or choose another "
                              "space with --cnn-space or --vit-space") from None

    if cluster.role == "chief":
        # Both searches come first, so that no worker waits while the chief refits.
        for name in MODELS:
            if f"search_{name}" in planned:
                train_and_evaluate(name, prepared, config, run, timer, ["search"], cluster)
    models = {}
    for name in MODELS:
        steps = [stage.split("_")[0] for stage in planned if stage.endswith(f"_{name}")]
        models[name] = train_and_evaluate(name, prepared, config, run, timer, steps, cluster)
        if models[name] is not None:
            models[name]["label"] = MODEL_LABELS[name]
    if "report" not in planned:
        return _partial_run(run, planned, config)

    with timer.stage("comparison"):
        comparison = compare_models(run, config)

    results = {
        "schema_version": SCHEMA_VERSION,
        "title": f"CNN versus Vision Transformer on {dataset.name}",
        "created": json.loads((run.root / "manifest.json").read_text()).get(
            "created", time.strftime("%Y-%m-%dT%H:%M:%S%z")),
        "config": to_dict(config),
        "data": {
            "name": dataset.name,
            "source": dataset.display_source,
            "fingerprint": fingerprint,
            "class_names": list(dataset.class_names),
            "image_shape": list(dataset.image_shape),
            "available": {"train": int(len(full.y_train)), "test": int(len(full.y_test))},
            "used": {"train": int(len(prepared.y_fit)), "validation": int(len(prepared.y_val)),
                     "test": int(len(dataset.y_test))},
        },
        "exploration": explored,
        "models": models,
        "comparison": comparison,
        "environment": {**environment(prepared.gpus), "accelerator": prepared.accelerator},
        # total_seconds sums the stages, counting reused ones at their original
        # time and resumed ones with their interrupted runs, so it is the
        # study's cost however many invocations it took.
        "timings": {"stages": timer.seconds, "total_seconds": sum(timer.seconds.values()),
                    "reused": timer.reused, "resumed": timer.resumed,
                    "heartbeat_seconds": HEARTBEAT_SECONDS,
                    "this_run_seconds": time.monotonic() - started},
    }
    validate(results)
    write_results(run.root / "results.json", results)
    log.info("results: %s", run.root / "results.json")

    if out_dir is not None:
        from report.render import render_report

        with timer.stage("report"):
            render_report(run.root, Path(out_dir), page_size=page_size, force=force_out)
    return results


def work_for_chief(config: StudyConfig, data_path: str | None, run_dir: Path,
                   cluster: Cluster) -> None:
    """Run trials of each unfinished search for the chief, then return None.

    The worker loads the same data as the chief and checks them, and its
    settings, against the manifest the chief wrote in the shared run folder,
    so its trials belong to the chief's study. It writes no stage record.
    """
    run = RunFolder(run_dir)
    _, dataset = load_sample(config, data_path)
    check_chief_manifest(run, config, data_fingerprint(dataset), data_path)

    from study.training import PreparedData, search_for_chief

    prepared = PreparedData.from_dataset(dataset, config)
    for name in MODELS:
        if run.stage_file(f"search_{name}").exists():
            log.info("%s search: already finished in %s; no trials to run", name, run.root)
            continue
        search_for_chief(name, prepared, config, run, cluster)
    log.info("worker %s: both searches in %s have ended; the rest of the study is the "
             "chief's", cluster.worker_id, run.root)
    return None


CHIEF_WAIT_SECONDS = 3600.0  # how long a worker waits for the chief's manifest
MISMATCH_WAIT_SECONDS = 60.0  # how long a worker waits for a differing manifest to change
MANIFEST_POLL_SECONDS = 2.0


def check_chief_manifest(run: RunFolder, config: StudyConfig, fingerprint: str,
                         data_path: str | None, wait_s: float = CHIEF_WAIT_SECONDS,
                         mismatch_wait_s: float = MISMATCH_WAIT_SECONDS) -> None:
    """Wait for the chief's manifest in the run folder; raise RunFolderError if it differs.

    A manifest that differs is read again for `mismatch_wait_s` seconds,
    because a chief started with --restart rewrites the one an earlier
    study left.
    """
    path = run.root / "manifest.json"
    digest = config_hash(config)
    start = time.monotonic()
    reported = None  # the last kind of wait written to the log
    while True:
        recorded = json.loads(path.read_text()) if path.exists() else None
        if recorded and recorded.get("config_hash") == digest and \
                recorded.get("data_fingerprint") == fingerprint:
            return
        waited = time.monotonic() - start
        mismatch = recorded and _worker_mismatch(run, recorded, config, fingerprint, data_path)
        if recorded is None and waited > wait_s:
            raise RunFolderError(
                f"no chief recorded its settings in {path} within {wait_s:.0f} s; start the "
                "chief with the same --run-dir, in a folder this worker shares")
        if mismatch and waited > mismatch_wait_s:
            raise RunFolderError(mismatch)
        if recorded is None and reported != "missing":
            log.info("waiting up to %.0f s for the chief to record its settings in %s", wait_s,
                     path)
            reported = "missing"
        elif mismatch and reported != "mismatch":
            log.warning("%s. Waiting up to %.0f s in case a chief started with --restart "
                        "rewrites %s", mismatch, mismatch_wait_s, path)
            reported = "mismatch"
        time.sleep(MANIFEST_POLL_SECONDS)


def _worker_mismatch(run: RunFolder, recorded: dict, config: StudyConfig, fingerprint: str,
                     data_path: str | None) -> str:
    if recorded.get("config_hash") != config_hash(config):
        chief = {"config": recorded.get("config") or {}}
        worker = {"config": to_dict(config)}
        changes = changed_keys(chief, worker)
        described = [f"{key} {_value_at(chief, key)!r} in the chief, "
                     f"{_value_at(worker, key)!r} here" for key in changes[:4]]
        if len(changes) > 4:
            described.append(f"{len(changes) - 4} more")
        return (f"this worker's settings differ from the chief's in {run.root} "
                f"({'; '.join(described)}); start the worker with the chief's settings, "
                f"for example --config {run.root / CONFIG_FILE}")
    cache = "the Keras CIFAR-10 cache"
    return (f"this worker's data (fingerprint {fingerprint} from {data_path or cache}) differ "
            f"from the chief's ({recorded.get('data_fingerprint')} from "
            f"{recorded.get('data') or cache}); pass the chief's --data")


def _partial_run(run: RunFolder, planned: list[str], config: StudyConfig) -> None:
    """Log which stages a --stages run left for later; return None (no results)."""
    finished = [stage for stage in STAGES if run.stage_file(stage).exists()]
    # A seeds stage exists only when more than one refit per model is asked for.
    needed = [stage for stage in STAGES if not stage.startswith("seeds_")
              or config.model_settings(stage.split("_")[1]).refit.seeds > 1]
    left = [stage for stage in needed if stage not in finished]
    log.info("ran the stages: %s; finished in %s: %s; still to run: %s", ", ".join(planned),
             run.root, ", ".join(finished) or "none", ", ".join(left) or "none")
    return None
